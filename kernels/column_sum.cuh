// Deterministic column sums of a [rows, columns] matrix on many blocks, for the reductions over all rows of a
// step (bias gradients, LayerNorm weight gradients): one thread per column walking every row would launch only
// columns/128 blocks, each thread a rows-long serial chain.
//
// Pass 1: a grid of (32-column tiles) × (row chunks); a 32×8 block sums one chunk of rows for 32 columns, each
// warp reading 128 contiguous bytes of a row (coalesced) and taking every 8th row of the chunk, then the 8 warp
// sums are added in warp order through shared memory into one float partial per (chunk, column), written to
// partials[chunk][column]. Pass 2: the same kernel over the partials matrix as one chunk adds them (each thread
// every 8th chunk in order, then the 8 sums in order) and stores the total into out (+ out when accumulating).
// With a single chunk pass 1 stores the total itself and no workspace is needed.
// The chunk plan depends only on (rows, columns), never on the grid, and every block computes its (chunk, tile)
// pieces the same way whatever the grid (a grid-stride loop over both), so the bits are the same on every run,
// on any grid cap (the emulator's 4 blocks per dimension included).
// Plan: about kTargetBlocks blocks (≈ 8 resident 256-thread blocks on each of an H100's 132 SMs), each thread's
// serial chain clamped to [4, 128] rows. So whenever rows·columns ≥ 2^20 pass 1 has ≥ ~1000 blocks.
// Cost: rows·columns adds; bytes 4·rows·columns read + 8·chunks·columns for the partials (1/16 of the reads at
// the shortest chunks of 32 rows, 1/512 at the longest of 1024).
#ifndef MDT_COLUMN_SUM_CUH
#define MDT_COLUMN_SUM_CUH

#include "common.cuh"

namespace mdt {
namespace column_sum {

constexpr int kColumns = 32;             // columns per block: one warp per row segment of 128 bytes
constexpr int kRowLanes = 8;             // warps per block, each every 8th row of the chunk
constexpr int64_t kTargetBlocks = 1024;  // pass-1 blocks wanted: ~8 per SM on an H100 (132 SMs)
constexpr int64_t kMinChunkRows = 32;    // 4 rows per thread: fewer and the partials cost as much as the rows
constexpr int64_t kMaxChunkRows = 1024;  // 128 rows per thread: the longest serial chain

struct Plan {
    int64_t chunk_rows, chunks;
};

/** How pass 1 splits the rows: a function of (rows, columns) alone. */
inline Plan plan(int64_t rows, int64_t columns) {
    int64_t tiles = (columns + kColumns - 1) / kColumns;
    int64_t wanted = (kTargetBlocks + tiles - 1) / tiles;  // chunks that would give ~kTargetBlocks blocks
    int64_t chunk_rows = (rows + wanted - 1) / wanted;
    chunk_rows = chunk_rows < kMinChunkRows ? kMinChunkRows : (chunk_rows > kMaxChunkRows ? kMaxChunkRows : chunk_rows);
    int64_t chunks = (rows + chunk_rows - 1) / chunk_rows;
    return {chunk_rows, chunks < 1 ? 1 : chunks};
}

/** Floats of partials the two passes need (0 when one chunk covers the rows). */
inline int64_t workspace_floats(int64_t rows, int64_t columns) {
    Plan p = plan(rows, columns);
    return p.chunks > 1 ? p.chunks * columns : 0;
}

struct PartialStore {
    float *partials;
    int64_t columns;
    __device__ void operator()(int64_t chunk, int64_t column, float total) const {
        partials[chunk * columns + column] = total;
    }
};

/** out[c] = total (+ out[c] when accumulating); out NULL discards (a term run only for its side effect). */
struct FinalStore {
    float *out;
    int accumulate;
    __device__ void operator()(int64_t, int64_t column, float total) const {
        if (out) out[column] = accumulate ? out[column] + total : total;
    }
};

/** Pass 2's term: the partials of pass 1, rows = chunks. */
struct PartialTerm {
    const float *partials;
    int64_t columns;
    __device__ float operator()(float sum, int64_t row, int64_t column) const {
        return sum + partials[row * columns + column];
    }
};

/**
 * term(sum, row, column) returns sum plus the element's term (and may write elements of its own row and
 * column); store(chunk, column, total) takes each chunk's total. Block kColumns × kRowLanes.
 */
template <class Term, class Store>
__global__ void column_sum_kernel(Term term, Store store, int64_t rows, int64_t columns, int64_t chunk_rows,
                                  int64_t chunks) {
    MDT_SHARED(float, sums, [kRowLanes][kColumns]);
    int lane = threadIdx.x, row_lane = threadIdx.y;
    int64_t tiles = (columns + kColumns - 1) / kColumns;
    for (int64_t chunk = blockIdx.y; chunk < chunks; chunk += gridDim.y) {
        int64_t begin = chunk * chunk_rows, end = begin + chunk_rows < rows ? begin + chunk_rows : rows;
        for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
            int64_t column = tile * kColumns + lane;
            float sum = 0.0f;
            if (column < columns) {
                for (int64_t row = begin + row_lane; row < end; row += kRowLanes) sum = term(sum, row, column);
            }
            sums[row_lane][lane] = sum;
            __syncthreads();
            if (row_lane == 0 && column < columns) {
                float total = sums[0][lane];
                for (int i = 1; i < kRowLanes; i++) total += sums[i][lane];
                store(chunk, column, total);
            }
            __syncthreads();  // sums is reused by the next piece
        }
    }
}

/** Checks the caller's workspace (call it before the op launches anything, so a refusal leaves no output). */
inline int require_workspace(const char *op, int64_t rows, int64_t columns, const float *workspace,
                             int64_t workspace_capacity) {
    int64_t needed = workspace_floats(rows, columns);
    MDT_REQUIRE(needed == 0 || (workspace && workspace_capacity >= needed),
                "%s: the workspace must hold %lld floats for %lld rows and %lld columns, got %lld", op,
                (long long)needed, (long long)rows, (long long)columns,
                (long long)(workspace ? workspace_capacity : 0));
    return MDT_SUCCESS;
}

inline unsigned capped(int64_t blocks) {
    int64_t cap = max_grid_blocks();
    return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > cap ? cap : blocks));
}

/**
 * out[c] = Σ_rows term (+ out[c] when accumulating; out NULL runs the term for its side effects only), in two
 * passes through workspace (workspace_floats(rows, columns) floats, checked here and named after op).
 */
template <class Term>
int run(const char *op, mdt_stream_t stream, Term term, int64_t rows, int64_t columns, float *out, int accumulate,
        float *workspace, int64_t workspace_capacity) {
    Plan p = plan(rows, columns);
    int64_t tiles = (columns + kColumns - 1) / kColumns;
    dim3 block(kColumns, kRowLanes);
    dim3 grid(capped(tiles), capped(p.chunks));
    if (p.chunks == 1 || !out) {
        auto *column_sum_single = &column_sum_kernel<Term, FinalStore>;
        return MDT_LAUNCH(column_sum_single, grid, block, 0, stream, term, FinalStore{out, accumulate}, rows,
                          columns, p.chunk_rows, p.chunks);
    }
    if (int status = require_workspace(op, rows, columns, workspace, workspace_capacity)) return status;
    auto *column_sum_partial = &column_sum_kernel<Term, PartialStore>;
    int status = MDT_LAUNCH(column_sum_partial, grid, block, 0, stream, term, PartialStore{workspace, columns},
                            rows, columns, p.chunk_rows, p.chunks);
    if (status != MDT_SUCCESS) return status;
    auto *column_sum_total = &column_sum_kernel<PartialTerm, FinalStore>;
    return MDT_LAUNCH(column_sum_total, dim3(capped(tiles), 1), block, 0, stream,
                      PartialTerm{workspace, columns}, FinalStore{out, accumulate}, p.chunks, columns, p.chunks,
                      int64_t{1});
}

}  // namespace column_sum
}  // namespace mdt

#endif
