// GEMMs: out[b] = op(A[b])·op(B[b]) + bias (+ out[b] when accumulating), either operand transposed, batched
// with a stride per operand (0 shares one matrix across the batch), in f32 on CUDA cores, on tensor cores in bf16,
// and (opt-in) f32 operands on tensor cores in tf32; and the bias-gradient row sum.
//
// BF16 tensor-core GEMM (f32 out): a 256-thread block computes a 128×128 tile of out, each of its 8 warps a
// 64×32 piece as 4×4 mma.sync m16n8k16 fragments with f32 accumulators in registers. K advances 32 at a time
// through a 4-stage cp.async pipeline in dynamic shared memory (68 KiB, opted in): while the warps multiply one
// stage, the next three are in flight (16-byte chunks, zero-filled past the matrix edge; operands whose rows are
// not 16-byte aligned take a plain element copy instead). Tiles keep each operand's own layout (a straight copy); ldmatrix (.trans where the
// operand is stored the other way) turns them into fragments. Rows 128 long (m or n contiguous) are padded by 16
// bytes, which keeps ldmatrix's 8 row reads on distinct banks; rows 32 long (k contiguous: 64 bytes) are swizzled
// instead (see k_tile_offset), since no pad keeps both ldmatrix and the cp.async stores conflict-free. Tails in M,
// N and K are zero-filled tiles. Epilogue fused: bias, optional GELU (tanh form; or the fused activations below), accumulate; a bf16 out is
// regrouped across each quad of lanes so that every lane stores 8 bytes (whole 32-byte sectors per quad). Cost: 2·batch·M·N·K FLOPs; bytes ≈ 2·batch·(M·K·⌈N/128⌉ + K·N·⌈M/128⌉) + 4·batch·M·N (8 accumulating).
// Split-K (deterministic): a small output with a long K (weight gradients dW = dYᵀ·X: 512×1536 out, K = 65536
// rows) has too few tiles for 132 SMs, so K is cut into S slices of whole 32-deep k-tiles. The rule uses only
// (batch, M, N, K) and the workspace capacity, never timing, so every run adds the same numbers in the same
// order: with T = ⌈M/128⌉·⌈N/128⌉·batch tiles and Kt = ⌈K/32⌉ k-tiles, no split when T ≥ 2·132 or Kt < 16;
// otherwise S ≤ min(Kt/8, ⌈4·132/T⌉, capacity/(batch·M·N)) minimising the wave-quantised critical path
// ⌈T·S/132⌉·⌈Kt/S⌉ (one 160+-register block per SM: a wave is 132 blocks), the smallest S on ties. Slice s of
// every tile writes raw f32 sums to workspace[s][batch][M][N] (grid z = S·batch); sum_slices_kernel then adds
// the S partials of each element in slice order and applies bias, GELU and accumulate once. Extra cost: 8·S·
// batch·M·N bytes (partials written, read back) + 4·batch·M·N (8 accumulating); (S-1)·batch·M·N FLOPs.
// E.g. 512×1536×65536: 48 → 528 blocks (S = 11); 512×512×16384: 16 → 128 blocks (S = 8).
// Fused activations (bf16 outputs): the epilogue applies activation.cuh's formulas, those of activations.cu, to
// exactly the values the separate pass would read, so the bits are those of the two passes (FusedEpilogue).
// GELU (the MoE experts' gelu(x·w1)·w2): forward (mdt_gemm_matmul_bf16_gelu) rounds the product + bias to bf16,
// stores it as pre (kept for the backward) and stores out = GELU(pre) beside it: the GELU pass's read of pre
// (2 bytes per element) is gone. Backward (mdt_gemm_matmul_bf16_gelu_bwd, on the product dHidden = dY·W2ᵀ) rounds
// the product to bf16 (the bf16 gradient the pass would read), multiplies it by GELU'(pre) read at the same
// position and stores dPre: dHidden's write and read (4 bytes per element) are gone.
// SwiGLU gate (w3(silu(w1·x)·(w2·x))): forward (mdt_gemm_matmul_bf16_swiglu, the product b = w2·x) stores b and
// out = silu(a)·b with a (w1·x, stored before) read at the same position: the gate pass's reads of a and b become
// one read of a. Backward (mdt_gemm_matmul_bf16_swiglu_bwd, the product dGate = dY·W3) rounds it to bf16 and stores
// da and db from a and b read there: dGate's write and read (4 bytes per element) are gone. Split-K applies the
// same per-element step in its second pass. Each costs a few FLOPs and 2-4 bytes per element in the epilogue.
// Gathered A (the MoE experts' dispatch inside the operand load): A's stored rows (m, or k when transposed) are rows
// of a token matrix x picked by an index array per batch entry (mdt_moe_routed_rows), a runtime pointer that is
// null for plain products, so no kernel is instantiated twice. The cp.async source address of a chunk is that row's;
// with the row width a multiple of 8 and x 16-byte aligned every chunk stays 16-byte aligned. The first expert
// product (mdt_gemm_matmul_bf16_gelu_gathered) and its weight gradient (mdt_gemm_matmul_bf16_gathered, A transposed)
// read x [N·T, D] instead of the dispatched [E, N·k, D] copy: that copy's write and read (4·E·N·k·D bytes) are gone,
// for one 4-byte index per tile row per k-tile (L1-resident). Same tiles, same sums: the bits of the dispatched call.
//
// TF32 tensor-core GEMM (f32 operands and out; opt-in like PyTorch's allow_tf32, since a tf32 keeps 10 of f32's 23
// mantissa bits): the bf16 GEMM's structure — 128×128 tiles, 8 warps of 64×32, a 4-stage cp.async pipeline of
// 32-deep k-tiles (16-byte chunks are 4 floats; rows whose length or batch stride is not a multiple of 4 floats,
// or a base not 16-byte aligned, take the element copy), the same split-K rule and second pass, the same fused
// epilogue — with mma.sync m16n8k8 .tf32 (4×4 per warp per 8-deep k step) instead of m16n8k16. ldmatrix moves
// 16-bit elements, so each lane reads its fragment elements from shared memory with plain 32-bit loads and rounds
// them with cvt.rna.tf32.f32 (nearest, ties away; the tensor cores would otherwise truncate). Padding for those
// loads: lane 4g + t reads rows g (+8) at column t (+4) of a k-contiguous tile (A, or B transposed), so a row
// stride ≡ 4 (mod 32 banks) puts the warp on banks 4g + t, all distinct: 32 + 4 = 36 floats; it reads rows t
// (+4) at column g (+8) of an m- or n-contiguous tile (A transposed, or B), so a stride ≡ 8 puts it on banks
// 8t + g: 128 + 8 = 136 floats. Both keep rows 16-byte aligned. A stage is 2 × 128·36 floats: 4 stages take
// 144 KiB of opted-in dynamic shared memory (sm_80 allows 163, sm_90 227). Cost: 2·batch·M·N·K FLOPs (counted as
// for the f32 GEMM); bytes ≈ 4·batch·(M·K·⌈N/128⌉ + K·N·⌈M/128⌉) + 4·batch·M·N (8 accumulating).
//
// F32 GEMM: the classic shared-memory tiled GEMM. A 16×16 thread block computes a 32×32 tile of out, 2×2
// outputs per thread; each step stages a 32×32 tile of op(A) and of op(B) in shared memory (padded rows avoid
// bank conflicts), with the transposes folded into the loads, and accumulates in f32 registers. Tails in M, N
// and K are handled by zero-filling out-of-range tile elements. The bias add and the accumulate are fused
// into the epilogue.
// Cost per call: 2·batch·M·N·K FLOPs; bytes ≈ 4·batch·(M·K·⌈N/32⌉ + K·N·⌈M/32⌉ + M·N (2M·N accumulating)).
// Split-K (deterministic), the same rule and second pass as the bf16 GEMM's with 32×32 tiles: the MoE router,
// kept in f32, has the weight gradient dW = dLogitsᵀ·X of 8×512 (16 tiles) over K = 16384-65536 token rows.
// Its blocks (8 KiB of shared memory, 58-64 registers: 4 resident per SM) are small, and one alone leaves
// the SM's FMA pipes waiting on shared memory, so a "wave" here is 2 blocks per SM (264): no split when T ≥ 528
// tiles, at most 4 waves = 1056 blocks (every SM filled twice). Extra cost as for bf16. E.g. 8×512×16384:
// 16 → 256 blocks (S = 16); 8×512×65536: 16 → 528 blocks (S = 33).
// Row sum (bias gradients): the two-pass column sum of column_sum.cuh, (32-column tiles) × (row chunks) blocks
// writing float partials to the caller's workspace, then one pass adding them in a fixed order; rows·C FLOPs,
// 4·rows·C bytes (+ 8·chunks·C for the partials).
#include "column_sum.cuh"
#include "common.cuh"
#include "activation.cuh"

namespace {

constexpr float kSqrt2OverPi = 0.79788456080286536f;
constexpr float kGeluCubic = 0.044715f;

/** The fused epilogue of one output: + bias, GELU (tanh form), + the old output. */
__device__ __forceinline__ float epilogue(float value, const float *bias, int64_t column, int gelu, int accumulate,
                                          const float *old) {
    if (bias) value += bias[column];
    if (gelu) {
        float u = kSqrt2OverPi * fmaf(kGeluCubic * value, value * value, value);
        value = 0.5f * value * (1.0f + tanhf(u));
    }
    if (accumulate) value += *old;
    return value;
}

/**
 * An activation fused into a bf16-output product as the separate pass would apply it (activation.cuh, the bits of
 * activations.cu's kernels), on exactly the values that pass would read (the stored bf16 tensors):
 *   kGeluKeep:    second = bf16(product + bias), the pre-activation kept for the backward; out = GELU(second).
 *   kGeluSlope:   out = bf16(product) · GELU'(in), in the stored pre-activation (GELU's backward).
 *   kSwigluGate:  second = bf16(product + bias), the gate's b kept for the backward; out = silu(in) · second.
 *   kSwigluSlope: g = bf16(product), the gate's gradient; out = da, second = db of the gate at a = in, b = in2.
 * Pointers are per call; the kernels offset them per batch entry.
 */
struct FusedEpilogue {
    enum Kind { kNone = 0, kGeluKeep = 1, kGeluSlope = 2, kSwigluGate = 3, kSwigluSlope = 4 };
    int kind;
    int tanh_form;          // GELU's form
    uint16_t *second;       // the second output (all kinds but kGeluSlope)
    const uint16_t *in;     // kGeluSlope, kSwiglu*: the stored input read at each output's position
    const uint16_t *in2;    // kSwigluSlope

    __device__ __forceinline__ bool has_second() const { return kind != kNone && kind != kGeluSlope; }

    __device__ __forceinline__ FusedEpilogue at(int64_t offset) const {
        return FusedEpilogue{kind, tanh_form, second ? second + offset : nullptr, in ? in + offset : nullptr,
                             in2 ? in2 + offset : nullptr};
    }
};

/** v rounded to bf16 (nearest even) and widened back: the value a bf16 tensor would hold. */
__device__ __forceinline__ float rounded_bf16(float v) {
    uint16_t bits;
    mdt::store_out(&bits, 0, v);
    return mdt::load_as_float(&bits, 0);
}

/**
 * The fused activation of output element at (bias already added): the value to store in out; *second gets the
 * value for fused.second where the kind has one.
 */
__device__ __forceinline__ float fused_value(const FusedEpilogue &fused, float value, int64_t at, float *second) {
    float rounded = rounded_bf16(value);
    switch (fused.kind) {
        case FusedEpilogue::kGeluKeep:
            *second = rounded;
            return mdt::gelu::value(fused.tanh_form, rounded);
        case FusedEpilogue::kGeluSlope:
            return rounded * mdt::gelu::slope(fused.tanh_form, mdt::load_as_float(fused.in, at));
        case FusedEpilogue::kSwigluGate:
            *second = rounded;
            return mdt::swiglu::value(mdt::load_as_float(fused.in, at), rounded);
        default: {
            float da;
            mdt::swiglu::gradients(rounded, mdt::load_as_float(fused.in, at), mdt::load_as_float(fused.in2, at), &da,
                                   second);
            return da;
        }
    }
}

/**
 * Split-K's second pass: out[e] = epilogue(Σ_s partials[s][e]) with the slices added in slice order, one thread
 * per element (grid-stride), so the sum has the same bits on every run; a fused activation applied after the bias.
 */
template <class Out>
__global__ void sum_slices_kernel(const float *partials, int64_t slices, int64_t elements, int64_t n,
                                  const float *bias, Out *out, int accumulate, int gelu, FusedEpilogue fused) {
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < elements; e += (int64_t)gridDim.x * blockDim.x) {
        float sum = partials[e];
        for (int64_t s = 1; s < slices; s++) sum += partials[s * elements + e];
        if (fused.kind != FusedEpilogue::kNone) {
            float second = 0.0f;
            float value = fused_value(fused, epilogue(sum, bias, e % n, 0, 0, nullptr), e, &second);
            if (fused.has_second()) mdt::store_out(fused.second, e, second);
            mdt::store_out(out, e, value);
            continue;
        }
        // A bf16 output never accumulates (the entry points refuse it), so old is read from f32 outputs only.
        mdt::store_out(out, e, epilogue(sum, bias, e % n, gelu, accumulate, reinterpret_cast<const float *>(out + e)));
    }
}

/** The fewest k-tiles (of 32) a slice walks: K ≥ 256 per slice keeps the partials' traffic small. */
constexpr int64_t kMinSliceTiles = 8;
/** Split-K never makes more than this many waves of blocks. */
constexpr int64_t kMaxSplitWaves = 4;

/** A GEMM's output tile, k-tile depth and wave (blocks that fill the chip once), for the split rule. */
struct SplitGeometry {
    int64_t tile_m, tile_n, tile_k, wave_blocks;
};

struct Split {
    int64_t slices;       // S ≥ 1
    int64_t slice_tiles;  // k-tiles per slice; the last slice may hold fewer
};

/**
 * The split of K for a call of this shape, from the shape alone (the same bits on every run): none when the tile
 * grid already fills two waves or K is short; otherwise the S ≤ max_slices (and at most 4 waves of blocks, each
 * slice at least kMinSliceTiles deep) minimising the wave-quantised critical path ⌈tiles·S / wave⌉ · ⌈k_tiles / S⌉,
 * the smallest such S on ties (fewer partials to write and add).
 */
Split choose_split(const SplitGeometry &g, int64_t batch, int64_t m, int64_t n, int64_t k, int64_t max_slices) {
    int64_t tiles = ((m + g.tile_m - 1) / g.tile_m) * ((n + g.tile_n - 1) / g.tile_n) * batch;
    int64_t k_tiles = (k + g.tile_k - 1) / g.tile_k;
    Split none{1, k_tiles > 0 ? k_tiles : 1};
    if (tiles == 0 || tiles >= 2 * g.wave_blocks || k_tiles < 2 * kMinSliceTiles) return none;
    int64_t limit = k_tiles / kMinSliceTiles;
    int64_t by_waves = (kMaxSplitWaves * g.wave_blocks + tiles - 1) / tiles;
    if (limit > by_waves) limit = by_waves;
    if (limit > max_slices) limit = max_slices;
    int64_t best = 1, best_cost = ((tiles + g.wave_blocks - 1) / g.wave_blocks) * k_tiles;
    for (int64_t s = 2; s <= limit; s++) {
        int64_t cost = ((tiles * s + g.wave_blocks - 1) / g.wave_blocks) * ((k_tiles + s - 1) / s);
        if (cost < best_cost) best = s, best_cost = cost;
    }
    if (best == 1) return none;
    int64_t slice_tiles = (k_tiles + best - 1) / best;
    return Split{(k_tiles + slice_tiles - 1) / slice_tiles, slice_tiles};  // no empty slice
}

/** Slices a workspace of this capacity holds for an output of this many floats (1 without a workspace). */
int64_t slices_that_fit(const float *workspace, int64_t capacity, int64_t elements) {
    return workspace ? capacity / elements : 1;
}

constexpr int kTile = 32;
constexpr int kThreadsPerSide = 16;
/** 2 blocks per SM of an H100 (132 SMs): see the opening comment. */
constexpr SplitGeometry kF32Split{kTile, kTile, kTile, 2 * 132};

__global__ void gemm_kernel(const float *a, int transpose_a, const float *b, int transpose_b, const float *bias,
                            float *out, int64_t batch, int64_t m, int64_t n, int64_t k, int64_t stride_a,
                            int64_t stride_b, int accumulate, int64_t slices, int64_t slice_tiles,
                            float *partials) {
    MDT_SHARED(float, a_tile, [kTile][kTile + 1]);  // a_tile[row of out][k]
    MDT_SHARED(float, b_tile, [kTile][kTile + 1]);  // b_tile[k][column of out]
    int tx = threadIdx.x, ty = threadIdx.y, linear = ty * kThreadsPerSide + tx;
    // Row tiles on grid x (up to 2^31 - 1): m = batch·tokens reaches 2^21 at MicroDiT-XL 512 px, 2^16 tiles.
    int64_t row0 = static_cast<int64_t>(blockIdx.x) * kTile, column0 = static_cast<int64_t>(blockIdx.y) * kTile;
    // Grid z walks (slice, batch) pairs; without split-K (slices 1, slice_tiles ≥ k-tiles) it is the batch alone.
    for (int64_t work = blockIdx.z; work < slices * batch; work += gridDim.z) {
        int64_t slice = work / batch, batch_index = work % batch;
        int64_t k_begin = slice * slice_tiles * kTile;
        int64_t k_end = k_begin + slice_tiles * kTile < k ? k_begin + slice_tiles * kTile : k;
        const float *ab = a + batch_index * stride_a;
        const float *bb = b + batch_index * stride_b;
        float *ob = out + batch_index * m * n;
        // A slice of split-K writes its raw partial sums; sum_slices_kernel applies the epilogue once.
        float *pb = partials ? partials + work * m * n : nullptr;
        float acc[2][2] = {{0.0f, 0.0f}, {0.0f, 0.0f}};
        for (int64_t k0 = k_begin; k0 < k_end; k0 += kTile) {
            for (int e = linear; e < kTile * kTile; e += kThreadsPerSide * kThreadsPerSide) {
                int r = e / kTile, c = e % kTile;
                // Consecutive threads walk the operand's contiguous dimension, so global loads coalesce.
                int64_t row = row0 + (transpose_a ? c : r), kk = k0 + (transpose_a ? r : c);
                float value = 0.0f;
                if (row < m && kk < k) value = transpose_a ? ab[kk * m + row] : ab[row * k + kk];
                if (transpose_a) a_tile[c][r] = value; else a_tile[r][c] = value;
                int64_t column = column0 + (transpose_b ? r : c), kb = k0 + (transpose_b ? c : r);
                value = 0.0f;
                if (column < n && kb < k) value = transpose_b ? bb[column * k + kb] : bb[kb * n + column];
                if (transpose_b) b_tile[c][r] = value; else b_tile[r][c] = value;
            }
            __syncthreads();
            for (int kk = 0; kk < kTile; kk++) {
                float a0 = a_tile[ty][kk], a1 = a_tile[ty + kThreadsPerSide][kk];
                float b0 = b_tile[kk][tx], b1 = b_tile[kk][tx + kThreadsPerSide];
                acc[0][0] = fmaf(a0, b0, acc[0][0]);
                acc[0][1] = fmaf(a0, b1, acc[0][1]);
                acc[1][0] = fmaf(a1, b0, acc[1][0]);
                acc[1][1] = fmaf(a1, b1, acc[1][1]);
            }
            __syncthreads();
        }
        for (int i = 0; i < 2; i++) {
            for (int j = 0; j < 2; j++) {
                int64_t row = row0 + ty + i * kThreadsPerSide, column = column0 + tx + j * kThreadsPerSide;
                if (row < m && column < n) {
                    if (pb) {
                        pb[row * n + column] = acc[i][j];
                    } else {
                        ob[row * n + column] =
                            epilogue(acc[i][j], bias, column, 0, accumulate, ob + row * n + column);
                    }
                }
            }
        }
    }
}

/**
 * Stores one warp's 64×32 piece of a tensor-core GEMM's output tile: 4×4 m16n8 accumulator fragments (C layout of
 * common.cuh) at (row0, column0), inside the m × n output only: through the epilogue into out (f32, or bf16 rounded
 * to nearest even once after the epilogue, for an output only bf16 products and bf16-reading ops consume), or raw
 * into the split-K partials (f32) when there are any.
 */
template <class Out>
__device__ __forceinline__ void store_warp_tile(const float (&acc)[4][4][4], int64_t row0, int64_t column0, int lane,
                                                int64_t m, int64_t n, Out *out, float *partials, const float *bias,
                                                int gelu, int accumulate, const FusedEpilogue &fused) {
    // A lane holds two adjacent columns per row (fragment registers r and r + 1): stored as one float2 (or one
    // bf16 pair) where the row's elements are aligned for it, a warp's store covers whole 32-byte sectors
    // (4 lanes × 8 bytes per row) where single floats would fill half of each.
    int group = lane / 4, pair = lane % 4 * 2;
    if constexpr (sizeof(Out) == 2) {
        // bf16 out (never accumulating, never split): 2-byte pairs would fill half of each sector, so the quad
        // regroups two fragments' columns and each lane stores 4 (n a multiple of 4: a group is wholly in or out).
        if (!partials && n % 4 == 0 && reinterpret_cast<uintptr_t>(out) % 8 == 0 &&
            (!fused.has_second() || reinterpret_cast<uintptr_t>(fused.second) % 8 == 0)) {
            MDT_UNROLL
            for (int i = 0; i < 4; i++) {
                MDT_UNROLL
                for (int h = 0; h < 2; h++) {
                    int64_t row = row0 + 16 * i + group + 8 * h;
                    MDT_UNROLL
                    for (int j = 0; j < 4; j += 2) {
                        uint32_t words[2], kept_words[2] = {0u, 0u};
                        MDT_UNROLL
                        for (int q = 0; q < 2; q++) {
                            int64_t column = column0 + 8 * (j + q) + pair;
                            bool inside = row < m && column < n;  // then column + 1 < n too
                            const float *c = acc[i][j + q] + 2 * h;
                            if (fused.kind == FusedEpilogue::kNone) {
                                words[q] = inside ? mdt::pack_bf16x2(epilogue(c[0], bias, column, gelu, 0, nullptr),
                                                                     epilogue(c[1], bias, column + 1, gelu, 0, nullptr))
                                                  : 0u;
                            } else if (inside) {
                                float kept[2] = {0.0f, 0.0f};
                                int64_t at = row * n + column;
                                float first = fused_value(fused, epilogue(c[0], bias, column, 0, 0, nullptr), at,
                                                          &kept[0]);
                                float second = fused_value(fused, epilogue(c[1], bias, column + 1, 0, 0, nullptr),
                                                           at + 1, &kept[1]);
                                words[q] = mdt::pack_bf16x2(first, second);
                                kept_words[q] = mdt::pack_bf16x2(kept[0], kept[1]);
                            } else {
                                words[q] = 0u;
                            }
                        }
                        unsigned long long four = mdt::quad_regroup_bf16(words[0], words[1]);
                        // Every lane of the quad takes part in both regroups (they shuffle within it).
                        unsigned long long kept_four = fused.has_second()
                                                           ? mdt::quad_regroup_bf16(kept_words[0], kept_words[1])
                                                           : 0ull;
                        int64_t column = column0 + 8 * j + 2 * pair;
                        if (row < m && column < n) {
                            *reinterpret_cast<unsigned long long *>(out + row * n + column) = four;
                            if (fused.has_second()) {
                                *reinterpret_cast<unsigned long long *>(fused.second + row * n + column) = kept_four;
                            }
                        }
                    }
                }
            }
            return;
        }
    }
    bool paired = n % 2 == 0 && (partials ? reinterpret_cast<uintptr_t>(partials) % 8 == 0
                                          : reinterpret_cast<uintptr_t>(out) % (2 * sizeof(Out)) == 0);
    MDT_UNROLL
    for (int i = 0; i < 4; i++) {
        MDT_UNROLL
        for (int j = 0; j < 4; j++) {
            MDT_UNROLL
            for (int h = 0; h < 2; h++) {
                int64_t row = row0 + 16 * i + group + 8 * h;
                int64_t column = column0 + 8 * j + pair;
                if (row >= m || column >= n) continue;
                bool second = column + 1 < n;
                int64_t at = row * n + column;
                float first_value = acc[i][j][2 * h], second_value = acc[i][j][2 * h + 1];
                if (partials) {
                    if (paired) {  // n even: column (even) + 1 < n
                        mdt::store_pair(partials + at, first_value, second_value);
                    } else {
                        partials[at] = first_value;
                        if (second) partials[at + 1] = second_value;
                    }
                    continue;
                }
                if (fused.kind != FusedEpilogue::kNone) {
                    float kept = 0.0f;
                    mdt::store_out(out, at, fused_value(fused, epilogue(first_value, bias, column, 0, 0, nullptr), at,
                                                        &kept));
                    if (fused.has_second()) mdt::store_out(fused.second, at, kept);
                    if (second) {
                        mdt::store_out(out, at + 1, fused_value(fused, epilogue(second_value, bias, column + 1, 0, 0,
                                                                                nullptr), at + 1, &kept));
                        if (fused.has_second()) mdt::store_out(fused.second, at + 1, kept);
                    }
                    continue;
                }
                // A bf16 output never accumulates (the entry points refuse it): old values are read from f32 only.
                const float *old = reinterpret_cast<const float *>(out + at);
                first_value = epilogue(first_value, bias, column, gelu, accumulate, old);
                if (second) second_value = epilogue(second_value, bias, column + 1, gelu, accumulate, old + 1);
                if (paired) {
                    mdt::store_pair(out + at, first_value, second_value);
                } else {
                    mdt::store_out(out, at, first_value);
                    if (second) mdt::store_out(out, at + 1, second_value);
                }
            }
        }
    }
}

bool aligned16(const void *pointer) { return reinterpret_cast<uintptr_t>(pointer) % 16 == 0; }

namespace bf16 {

constexpr int kBlockM = 128, kBlockN = 128, kBlockK = 32;
constexpr int kWarpM = 64, kWarpN = 32;  // 2 × 4 warps
constexpr int kWarpsN = kBlockN / kWarpN;
constexpr int kThreads = 256;
// cp.async pipeline depth: tiles kStages − 1 ahead of the one the tensor cores read, so with one block per SM
// (registers) global latency hides behind three tiles of MMAs. 4 stages of A and B take 68 KiB of dynamic shared
// memory: past the default 48 KiB, hence the opt-in launch (fits sm_80's 163 KiB and sm_90's 227 KiB).
constexpr int kStages = 4;
constexpr int kPad = 8;  // bf16 per 128-long row: 16 bytes keep rows 16-byte aligned and ldmatrix's 8 rows on distinct banks
constexpr int kTileElements = (kBlockM * kBlockK > kBlockK * (kBlockM + kPad)) ? kBlockM * kBlockK
                                                                                : kBlockK * (kBlockM + kPad);
constexpr size_t kSharedBytes = 2 * kStages * kTileElements * sizeof(uint16_t);
/** Blocks of gemm_bf16_kernel resident at once on an H100 (132 SMs; 160 registers × 256 threads: one per SM). */
constexpr int64_t kWaveBlocks = 132;

/**
 * Where element (row, column) of a tile with 32-element (64-byte, four 16-byte chunks) rows lies: rows 2l and
 * 2l + 1 fill 128-byte line l (all 32 banks), and the line's chunk c = 4·(row mod 2) + column / 8 is stored at chunk
 * c XOR (l mod 8). A cp.async phase (8 lanes, 16 bytes each) stores the 8 chunks of one line: a permutation, no
 * conflict. ldmatrix reads one chunk column of 8 consecutive rows from 8·i: lines 4j..4j + 3, both halves, chunks
 * {c, c + 4} XOR 4 distinct values of l mod 8 that share bit 2: 8 distinct chunks, no conflict. (A padded stride
 * cannot do both: 80 bytes keeps ldmatrix's rows apart but puts a phase's two rows on 4 common banks.)
 */
__device__ __forceinline__ int k_tile_offset(int row, int column) {
    int line = row / 2, chunk = (row % 2 * 4 + column / 8) ^ (line % 8);
    return line * 64 + chunk * 8 + column % 8;
}

/** Where element (row, column) of a stage tile with Columns-long rows lies: swizzled if 32, padded if 128. */
template <int Columns>
__device__ __forceinline__ int tile_offset(int row, int column) {
    static_assert(Columns == kBlockK || Columns == kBlockM, "a stage tile's rows are 32 or 128 long");
    return Columns == kBlockK ? k_tile_offset(row, column) : row * (Columns + kPad) + column;
}

/**
 * Where row {@code row} of a stored operand with {@code operand_rows} rows lies in its matrix: the row itself, or,
 * for a gathered operand (rows non-null), rows[row], a row of the source matrix; -1 for a row outside the operand or
 * an index outside [0, source_rows): a zero row, so nothing outside the matrix is read whatever the indices hold.
 */
struct Gather {
    const int32_t *rows;  // this batch entry's row indices, or null
    int64_t source_rows;

    __device__ __forceinline__ int64_t source(int64_t row, int64_t operand_rows) const {
        if (row >= operand_rows) return -1;
        if (!rows) return row;
        int64_t s = rows[row];
        return s < source_rows ? s : -1;
    }
};

/**
 * Copies the Rows × Columns tile at (row0, column0) of a row-major bf16 matrix with {@code lead} columns and
 * {@code rows} rows into shared memory (tile_offset's layout), zero outside the matrix; a gathered operand's row r
 * is the source matrix's row gather.rows[r]. Vectorized: lead, the base and the batch stride are multiples of 8
 * elements, so every 16-byte chunk is wholly in or out (and 16-byte aligned whichever row a gather picks).
 */
template <int Rows, int Columns>
__device__ __forceinline__ void load_tile(uint16_t *tile, const uint16_t *matrix, int64_t rows, int64_t lead,
                                          int64_t row0, int64_t column0, bool vectorized, Gather gather = Gather{}) {
    if (vectorized) {
        constexpr int kChunksPerRow = Columns / 8;
        MDT_UNROLL
        for (int c = threadIdx.x; c < Rows * kChunksPerRow; c += kThreads) {
            int r = c / kChunksPerRow, column = c % kChunksPerRow * 8;
            int64_t gr = gather.source(row0 + r, rows), gc = column0 + column;
            bool inside = gr >= 0 && gc < lead;
            mdt::cp_async_16(tile + tile_offset<Columns>(r, column), inside ? matrix + gr * lead + gc : matrix,
                             inside ? 16 : 0);
        }
    } else {
        for (int e = threadIdx.x; e < Rows * Columns; e += kThreads) {
            int r = e / Columns, column = e % Columns;
            int64_t gr = gather.source(row0 + r, rows), gc = column0 + column;
            tile[tile_offset<Columns>(r, column)] = gr >= 0 && gc < lead ? matrix[gr * lead + gc] : uint16_t{0};
        }
    }
}

template <bool TransposeA, bool TransposeB, class Out>
__global__ void __launch_bounds__(kThreads, 1)
gemm_bf16_kernel(const uint16_t *a, const uint16_t *b, const float *bias, Out *out, int64_t batch, int64_t m,
                 int64_t n, int64_t k, int64_t stride_a, int64_t stride_b, int accumulate, int gelu,
                 int vector_a, int vector_b, int64_t slices, int64_t slice_tiles, float *partials, FusedEpilogue fused,
                 Gather gather_a) {
    // Stage s of A: [m][k] (swizzled), or [k][m] (padded) when transposed; of B: [k][n] (padded), or [n][k]
    // (swizzled); tile_offset places the elements. The kStages A tiles, then the kStages B tiles.
    MDT_DYNAMIC_SHARED(uint16_t, tiles);
    uint16_t *a_tiles = tiles, *b_tiles = tiles + kStages * kTileElements;
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    int warp_m = warp / kWarpsN * kWarpM, warp_n = warp % kWarpsN * kWarpN;
    // ldmatrix: lane l addresses row l mod 8 of 8×8 matrix l/8; the matrices step by 8 along the two tile axes.
    int matrix_row = lane % 8, near = (lane / 8) % 2 * 8, far = lane / 16 * 8;
    int64_t row0 = static_cast<int64_t>(blockIdx.y) * kBlockM, column0 = static_cast<int64_t>(blockIdx.x) * kBlockN;
    int64_t k_tiles = (k + kBlockK - 1) / kBlockK;
    // Grid z walks (slice, batch) pairs; without split-K (slices 1, slice_tiles ≥ k_tiles) it is the batch alone.
    for (int64_t work = blockIdx.z; work < slices * batch; work += gridDim.z) {
        int64_t slice = work / batch, batch_index = work % batch;
        int64_t kt_begin = slice * slice_tiles;
        int64_t kt_end = kt_begin + slice_tiles < k_tiles ? kt_begin + slice_tiles : k_tiles;
        const uint16_t *ab = a + batch_index * stride_a;
        const uint16_t *bb = b + batch_index * stride_b;
        // A gathered A (the MoE's routed rows read from the token matrix) has an index array per batch entry.
        Gather gather{gather_a.rows ? gather_a.rows + batch_index * (TransposeA ? k : m) : nullptr,
                      gather_a.source_rows};
        // Loads k tile kt (if inside this slice) into its stage and commits one cp.async group either way, so that
        // the group count stays uniform and cp_async_wait<kStages − 2> always means "tile kt has landed".
        auto load_stage = [&](int64_t kt) {
            if (kt < kt_end) {
                int stage = static_cast<int>((kt - kt_begin) % kStages);
                int64_t k0 = kt * kBlockK;
                if (TransposeA) {
                    load_tile<kBlockK, kBlockM>(a_tiles + stage * kTileElements, ab, k, m, k0, row0, vector_a, gather);
                } else {
                    load_tile<kBlockM, kBlockK>(a_tiles + stage * kTileElements, ab, m, k, row0, k0, vector_a, gather);
                }
                if (TransposeB) {
                    load_tile<kBlockN, kBlockK>(b_tiles + stage * kTileElements, bb, n, k, column0, k0, vector_b);
                } else {
                    load_tile<kBlockK, kBlockN>(b_tiles + stage * kTileElements, bb, k, n, k0, column0, vector_b);
                }
            }
            mdt::cp_async_commit();
        };
        float acc[4][4][4];
        MDT_UNROLL
        for (int i = 0; i < 4; i++) {
            MDT_UNROLL
            for (int j = 0; j < 4; j++) {
                MDT_UNROLL
                for (int r = 0; r < 4; r++) acc[i][j][r] = 0.0f;
            }
        }
        for (int s = 0; s < kStages - 1; s++) load_stage(kt_begin + s);
        for (int64_t kt = kt_begin; kt < kt_end; kt++) {
            int stage = static_cast<int>((kt - kt_begin) % kStages);
            mdt::cp_async_wait<kStages - 2>();
            // Tile kt is visible to every thread, and every thread is done with tile kt − 1, whose stage the next
            // load refills.
            __syncthreads();
            load_stage(kt + kStages - 1);
            const uint16_t *as = a_tiles + stage * kTileElements, *bs = b_tiles + stage * kTileElements;
            MDT_UNROLL
            for (int kk = 0; kk < kBlockK; kk += 16) {
                uint32_t af[4][4];
                MDT_UNROLL
                for (int i = 0; i < 4; i++) {
                    // Quarters a0..a3: (m 0-7, k 0-7), (m 8-15, k 0-7), (m 0-7, k 8-15), (m 8-15, k 8-15).
                    int mi = warp_m + 16 * i;
                    if (TransposeA) {
                        mdt::ldmatrix_x4_trans(af[i], as + tile_offset<kBlockM>(kk + far + matrix_row, mi + near));
                    } else {
                        mdt::ldmatrix_x4(af[i], as + tile_offset<kBlockK>(mi + near + matrix_row, kk + far));
                    }
                }
                MDT_UNROLL
                for (int p = 0; p < 2; p++) {
                    // Two n8 fragments: quarters (k 0-7, n 0-7), (k 8-15, n 0-7), (k 0-7, n 8-15), (k 8-15, n 8-15).
                    int nj = warp_n + 16 * p;
                    uint32_t bf[4];
                    if (TransposeB) {
                        mdt::ldmatrix_x4(bf, bs + tile_offset<kBlockK>(nj + far + matrix_row, kk + near));
                    } else {
                        mdt::ldmatrix_x4_trans(bf, bs + tile_offset<kBlockN>(kk + near + matrix_row, nj + far));
                    }
                    MDT_UNROLL
                    for (int i = 0; i < 4; i++) {
                        mdt::mma_m16n8k16_bf16(acc[i][2 * p], af[i], bf, acc[i][2 * p]);
                        mdt::mma_m16n8k16_bf16(acc[i][2 * p + 1], af[i], bf + 2, acc[i][2 * p + 1]);
                    }
                }
            }
        }
        // Groups past the slice are empty; the next (slice, batch) pair reuses the stages after this barrier.
        mdt::cp_async_wait<0>();
        __syncthreads();
        // A slice of split-K writes its raw partial sums; sum_slices_kernel applies the epilogue once.
        store_warp_tile(acc, row0 + warp_m, column0 + warp_n, lane, m, n, out + batch_index * m * n,
                        partials ? partials + work * m * n : nullptr, bias, gelu, accumulate,
                        fused.at(batch_index * m * n));
    }
}

/** A 160+-register block per SM: a wave is 132 blocks (one per SM of an H100). */
constexpr SplitGeometry kSplit{kBlockM, kBlockN, kBlockK, kWaveBlocks};

}  // namespace bf16

namespace tf32 {

constexpr int kBlockM = 128, kBlockN = 128, kBlockK = 32;
constexpr int kWarpM = 64, kWarpN = 32;  // 2 × 4 warps
constexpr int kWarpsN = kBlockN / kWarpN;
constexpr int kThreads = 256;
constexpr int kStages = 4;
// Row padding in floats (see the opening comment): rows kBlockK long (k contiguous) get 4, a stride of 36 ≡ 4
// (mod 32 banks); rows 128 long (m or n contiguous) get 8, a stride of 136 ≡ 8. Both keep rows 16-byte aligned.
constexpr int kPadK = 4, kPadMn = 8;
constexpr int kStrideK = kBlockK + kPadK, kStrideMn = kBlockM + kPadMn;
constexpr int kTileElements = kBlockM * kStrideK > kBlockK * kStrideMn ? kBlockM * kStrideK : kBlockK * kStrideMn;
constexpr size_t kSharedBytes = 2 * kStages * kTileElements * sizeof(float);
/** One 256-thread block per SM (registers, and 144 KiB of shared memory): a wave is 132 blocks on an H100. */
constexpr SplitGeometry kSplit{kBlockM, kBlockN, kBlockK, 132};

/**
 * Copies the Rows × Columns tile at (row0, column0) of a row-major f32 matrix with {@code lead} columns and
 * {@code rows} rows into shared memory (row stride Columns + its padding), zero outside the matrix. Vectorized:
 * lead, the base and the batch stride are multiples of 4 floats, so every 16-byte chunk is wholly in or out.
 */
template <int Rows, int Columns>
__device__ __forceinline__ void load_tile(float *tile, const float *matrix, int64_t rows, int64_t lead, int64_t row0,
                                          int64_t column0, bool vectorized) {
    constexpr int kStride = Columns == kBlockK ? kStrideK : kStrideMn;
    if (vectorized) {
        constexpr int kChunksPerRow = Columns / 4;
        MDT_UNROLL
        for (int c = threadIdx.x; c < Rows * kChunksPerRow; c += kThreads) {
            int r = c / kChunksPerRow, column = c % kChunksPerRow * 4;
            int64_t gr = row0 + r, gc = column0 + column;
            bool inside = gr < rows && gc < lead;
            mdt::cp_async_16(tile + r * kStride + column, inside ? matrix + gr * lead + gc : matrix, inside ? 16 : 0);
        }
    } else {
        for (int e = threadIdx.x; e < Rows * Columns; e += kThreads) {
            int r = e / Columns, column = e % Columns;
            int64_t gr = row0 + r, gc = column0 + column;
            tile[r * kStride + column] = gr < rows && gc < lead ? matrix[gr * lead + gc] : 0.0f;
        }
    }
}

template <bool TransposeA, bool TransposeB>
__global__ void __launch_bounds__(kThreads, 1)
gemm_tf32_kernel(const float *a, const float *b, const float *bias, float *out, int64_t batch, int64_t m, int64_t n,
                 int64_t k, int64_t stride_a, int64_t stride_b, int accumulate, int gelu, int vector_a, int vector_b,
                 int64_t slices, int64_t slice_tiles, float *partials) {
    // Stage s of A: [m][k] (row stride kStrideK), or [k][m] (kStrideMn) when transposed; of B: [k][n] (kStrideMn),
    // or [n][k] (kStrideK). The kStages A tiles, then the kStages B tiles.
    MDT_DYNAMIC_SHARED(float, tiles);
    float *a_tiles = tiles, *b_tiles = tiles + kStages * kTileElements;
    constexpr int kStrideA = TransposeA ? kStrideMn : kStrideK;
    constexpr int kStrideB = TransposeB ? kStrideK : kStrideMn;
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    int group = lane / 4, t = lane % 4;
    int warp_m = warp / kWarpsN * kWarpM, warp_n = warp % kWarpsN * kWarpN;
    int64_t row0 = static_cast<int64_t>(blockIdx.y) * kBlockM, column0 = static_cast<int64_t>(blockIdx.x) * kBlockN;
    int64_t k_tiles = (k + kBlockK - 1) / kBlockK;
    // Grid z walks (slice, batch) pairs; without split-K (slices 1, slice_tiles ≥ k_tiles) it is the batch alone.
    for (int64_t work = blockIdx.z; work < slices * batch; work += gridDim.z) {
        int64_t slice = work / batch, batch_index = work % batch;
        int64_t kt_begin = slice * slice_tiles;
        int64_t kt_end = kt_begin + slice_tiles < k_tiles ? kt_begin + slice_tiles : k_tiles;
        const float *ab = a + batch_index * stride_a;
        const float *bb = b + batch_index * stride_b;
        // Loads k tile kt (if inside this slice) into its stage and commits one cp.async group either way, so that
        // the group count stays uniform and cp_async_wait<kStages − 2> always means "tile kt has landed".
        auto load_stage = [&](int64_t kt) {
            if (kt < kt_end) {
                int stage = static_cast<int>((kt - kt_begin) % kStages);
                int64_t k0 = kt * kBlockK;
                if (TransposeA) {
                    load_tile<kBlockK, kBlockM>(a_tiles + stage * kTileElements, ab, k, m, k0, row0, vector_a);
                } else {
                    load_tile<kBlockM, kBlockK>(a_tiles + stage * kTileElements, ab, m, k, row0, k0, vector_a);
                }
                if (TransposeB) {
                    load_tile<kBlockN, kBlockK>(b_tiles + stage * kTileElements, bb, n, k, column0, k0, vector_b);
                } else {
                    load_tile<kBlockK, kBlockN>(b_tiles + stage * kTileElements, bb, k, n, k0, column0, vector_b);
                }
            }
            mdt::cp_async_commit();
        };
        float acc[4][4][4];
        MDT_UNROLL
        for (int i = 0; i < 4; i++) {
            MDT_UNROLL
            for (int j = 0; j < 4; j++) {
                MDT_UNROLL
                for (int r = 0; r < 4; r++) acc[i][j][r] = 0.0f;
            }
        }
        for (int s = 0; s < kStages - 1; s++) load_stage(kt_begin + s);
        for (int64_t kt = kt_begin; kt < kt_end; kt++) {
            int stage = static_cast<int>((kt - kt_begin) % kStages);
            mdt::cp_async_wait<kStages - 2>();
            // Tile kt is visible to every thread, and every thread is done with tile kt − 1, whose stage the next
            // load refills.
            __syncthreads();
            load_stage(kt + kStages - 1);
            const float *as = a_tiles + stage * kTileElements, *bs = b_tiles + stage * kTileElements;
            MDT_UNROLL
            for (int kk = 0; kk < kBlockK; kk += 8) {
                // Element (row, k) of A and (k, column) of B in this stage, whichever way each is stored.
                auto a_at = [&](int row, int kx) {
                    return TransposeA ? as[(kk + kx) * kStrideA + row] : as[row * kStrideA + kk + kx];
                };
                auto b_at = [&](int kx, int column) {
                    return TransposeB ? bs[column * kStrideB + kk + kx] : bs[(kk + kx) * kStrideB + column];
                };
                uint32_t af[4][4], bf[4][2];
                MDT_UNROLL
                for (int i = 0; i < 4; i++) {
                    // a0..a3: (g, t), (g + 8, t), (g, t + 4), (g + 8, t + 4) of the 16×8 piece at row mi.
                    int mi = warp_m + 16 * i + group;
                    af[i][0] = mdt::to_tf32(a_at(mi, t));
                    af[i][1] = mdt::to_tf32(a_at(mi + 8, t));
                    af[i][2] = mdt::to_tf32(a_at(mi, t + 4));
                    af[i][3] = mdt::to_tf32(a_at(mi + 8, t + 4));
                }
                MDT_UNROLL
                for (int j = 0; j < 4; j++) {
                    // b0, b1: (t, g), (t + 4, g) of the 8×8 piece at column nj.
                    int nj = warp_n + 8 * j + group;
                    bf[j][0] = mdt::to_tf32(b_at(t, nj));
                    bf[j][1] = mdt::to_tf32(b_at(t + 4, nj));
                }
                MDT_UNROLL
                for (int i = 0; i < 4; i++) {
                    MDT_UNROLL
                    for (int j = 0; j < 4; j++) mdt::mma_m16n8k8_tf32(acc[i][j], af[i], bf[j], acc[i][j]);
                }
            }
        }
        // Groups past the slice are empty; the next (slice, batch) pair reuses the stages after this barrier.
        mdt::cp_async_wait<0>();
        __syncthreads();
        // A slice of split-K writes its raw partial sums; sum_slices_kernel applies the epilogue once.
        store_warp_tile(acc, row0 + warp_m, column0 + warp_n, lane, m, n, out + batch_index * m * n,
                        partials ? partials + work * m * n : nullptr, bias, gelu, accumulate, FusedEpilogue{});
    }
}

}  // namespace tf32

/** The workspace a split-K product of this shape prefers (0 without a split), for the *_workspace queries. */
int workspace_floats(const char *op, const SplitGeometry &geometry, int64_t batch, int64_t m, int64_t n, int64_t k,
                     int64_t *floats) {
    MDT_REQUIRE(batch >= 0 && m >= 0 && n >= 0 && k >= 0, "%s: negative size (batch %lld, m %lld, n %lld, k %lld)",
                op, (long long)batch, (long long)m, (long long)n, (long long)k);
    MDT_REQUIRE(floats, "%s: NULL result pointer", op);
    Split split = choose_split(geometry, batch, m, n, k, INT64_MAX);
    *floats = split.slices > 1 ? split.slices * batch * m * n : 0;
    return MDT_SUCCESS;
}

/** How a tensor-core GEMM (bf16 or TF32) launches: its operands' copy path, the split-K and the grid. */
struct TensorCoreLaunch {
    bool empty;            // nothing to compute (batch, m or n is 0)
    int vector_a, vector_b;  // rows and batch strides allow 16-byte cp.async copies
    int64_t elements;      // batch · m · n
    Split split;
    dim3 grid;
};

/** The argument checks and launch plan both tensor-core GEMM entries share; an MDT status naming {@code op}. */
template <class Element>
int plan_tensor_core(const char *op, const SplitGeometry &geometry, const Element *a, int transpose_a,
                     const Element *b, int transpose_b, const void *out, int64_t batch, int64_t m, int64_t n,
                     int64_t k, int64_t stride_a, int64_t stride_b, int accumulate, int gelu, const float *workspace,
                     int64_t workspace_capacity, TensorCoreLaunch *plan) {
    MDT_REQUIRE(batch >= 0 && m >= 0 && n >= 0 && k >= 0, "%s: negative size (batch %lld, m %lld, n %lld, k %lld)",
                op, (long long)batch, (long long)m, (long long)n, (long long)k);
    MDT_REQUIRE(stride_a >= 0 && stride_b >= 0, "%s: negative batch stride", op);
    MDT_REQUIRE(workspace_capacity >= 0, "%s: negative workspace capacity %lld", op, (long long)workspace_capacity);
    MDT_REQUIRE((transpose_a == 0 || transpose_a == 1) && (transpose_b == 0 || transpose_b == 1) &&
                    (accumulate == 0 || accumulate == 1) && (gelu == 0 || gelu == 1),
                "%s: transpose_a, transpose_b, accumulate and gelu must be 0 or 1", op);
    MDT_REQUIRE((m + geometry.tile_m - 1) / geometry.tile_m <= 65535, "%s: m %lld exceeds the grid's y limit", op,
                (long long)m);
    plan->empty = batch == 0 || m == 0 || n == 0;
    if (plan->empty) return MDT_SUCCESS;
    MDT_REQUIRE(out && (k == 0 || (a && b)), "%s: NULL tensor pointer", op);
    constexpr int64_t kChunk = 16 / sizeof(Element);  // elements per 16-byte copy
    int64_t lead_a = transpose_a ? m : k, lead_b = transpose_b ? k : n;
    plan->vector_a = lead_a % kChunk == 0 && stride_a % kChunk == 0 && aligned16(a);
    plan->vector_b = lead_b % kChunk == 0 && stride_b % kChunk == 0 && aligned16(b);
    // A workspace smaller than the preferred split's takes fewer slices (down to none): never an error.
    plan->elements = batch * m * n;
    plan->split = choose_split(geometry, batch, m, n, k, slices_that_fit(workspace, workspace_capacity,
                                                                         plan->elements));
    int64_t z = plan->split.slices * batch;
    plan->grid = dim3(static_cast<unsigned>((n + geometry.tile_n - 1) / geometry.tile_n),
                      static_cast<unsigned>((m + geometry.tile_m - 1) / geometry.tile_m),
                      static_cast<unsigned>(z < 65535 ? z : 65535));
    return MDT_SUCCESS;
}

// In: float, or uint16_t for a bf16 x (a bf16 graph's dy, the bias gradient's rows), widened exactly.
template <class In>
struct SumRowsTerm {
    const In *x;
    int64_t columns;
    __device__ float operator()(float sum, int64_t row, int64_t column) const {
        return sum + mdt::load_as_float(x, row * columns + column);
    }
};

/** Both row-sum entries (f32 or bf16 x). */
template <class In>
int sum_rows(const char *op, mdt_stream_t stream, const In *x, float *out, int64_t rows, int64_t columns,
             int accumulate, float *workspace, int64_t workspace_capacity) {
    MDT_REQUIRE(rows >= 0 && columns > 0, "%s: need rows >= 0 and columns > 0, got %lld and %lld", op,
                (long long)rows, (long long)columns);
    MDT_REQUIRE(out && (x || rows == 0), "%s: NULL tensor pointer", op);
    return mdt::column_sum::run(op, stream, SumRowsTerm<In>{x, columns}, rows, columns, out, accumulate, workspace,
                                workspace_capacity);
}

/** The bf16 GEMM entries: f32 or bf16 outputs from one kernel template (split-K partials stay f32). */
template <class Out>
int matmul_bf16(const char *op, mdt_stream_t stream, const uint16_t *a, int transpose_a, const uint16_t *b,
                int transpose_b, const float *bias, Out *out, int64_t batch, int64_t m, int64_t n, int64_t k,
                int64_t stride_a, int64_t stride_b, int accumulate, int gelu, float *workspace,
                int64_t workspace_capacity, FusedEpilogue fused = FusedEpilogue{},
                bf16::Gather gather_a = bf16::Gather{}) {
    using namespace bf16;
    TensorCoreLaunch plan;
    if (int s = plan_tensor_core(op, kSplit, a, transpose_a, b, transpose_b, out, batch, m, n, k, stride_a, stride_b,
                                 accumulate, gelu, workspace, workspace_capacity, &plan)) {
        return s;
    }
    if (plan.empty) return MDT_SUCCESS;
    auto *gemm_bf16 = transpose_a ? (transpose_b ? &gemm_bf16_kernel<true, true, Out>
                                                 : &gemm_bf16_kernel<true, false, Out>)
                                  : (transpose_b ? &gemm_bf16_kernel<false, true, Out>
                                                 : &gemm_bf16_kernel<false, false, Out>);
    if (plan.split.slices == 1) {
        return MDT_LAUNCH_OPT_IN(gemm_bf16, plan.grid, kThreads, kSharedBytes, stream, a, b, bias, out, batch, m, n,
                                 k, stride_a, stride_b, accumulate, gelu, plan.vector_a, plan.vector_b, 1,
                                 plan.split.slice_tiles, static_cast<float *>(nullptr), fused, gather_a);
    }
    int status = MDT_LAUNCH_OPT_IN(gemm_bf16, plan.grid, kThreads, kSharedBytes, stream, a, b,
                                   static_cast<const float *>(nullptr), out, batch, m, n, k, stride_a, stride_b, 0, 0,
                                   plan.vector_a, plan.vector_b, plan.split.slices, plan.split.slice_tiles,
                                   workspace, FusedEpilogue{}, gather_a);
    if (status != MDT_SUCCESS) return status;
    return MDT_LAUNCH(sum_slices_kernel<Out>, mdt::blocks_for(plan.elements, 256), 256, 0, stream, workspace,
                      plan.split.slices, plan.elements, n, bias, out, accumulate, gelu, fused);
}

/** The fused-activation entries' own checks, then the bf16-output GEMM with that epilogue. */
int matmul_bf16_fused(const char *op, mdt_stream_t stream, const uint16_t *a, int transpose_a, const uint16_t *b,
                      int transpose_b, const float *bias, uint16_t *out, int64_t batch, int64_t m, int64_t n,
                      int64_t k, int64_t stride_a, int64_t stride_b, FusedEpilogue fused, float *workspace,
                      int64_t workspace_capacity, bf16::Gather gather_a = bf16::Gather{}) {
    MDT_REQUIRE(fused.tanh_form == 0 || fused.tanh_form == 1, "%s: tanh_approximation must be 0 or 1", op);
    bool empty = batch <= 0 || m <= 0 || n <= 0;
    bool needs_second = fused.kind != FusedEpilogue::kGeluSlope;
    bool needs_in = fused.kind != FusedEpilogue::kGeluKeep;
    bool needs_in2 = fused.kind == FusedEpilogue::kSwigluSlope;
    MDT_REQUIRE(empty || ((!needs_second || fused.second) && (!needs_in || fused.in) && (!needs_in2 || fused.in2)),
                "%s: NULL tensor pointer", op);
    return matmul_bf16(op, stream, a, transpose_a, b, transpose_b, bias, out, batch, m, n, k, stride_a, stride_b, 0,
                       0, workspace, workspace_capacity, fused, gather_a);
}

/**
 * The gathered entries' own checks: A's rows come from x [x_rows, lead] through rows [batch][A's stored rows]. The
 * gather keeps the 16-byte cp.async path only when every row starts 16-byte aligned, so lead must be a multiple of 8
 * and x 16-byte aligned: refused otherwise rather than silently taking the element copy.
 */
int check_gather(const char *op, const uint16_t *x, const int32_t *rows, int64_t x_rows, int64_t lead, int64_t batch,
                 int64_t m, int64_t n) {
    MDT_REQUIRE(x_rows >= 0, "%s: negative x_rows %lld", op, (long long)x_rows);
    if (batch <= 0 || m <= 0 || n <= 0) return MDT_SUCCESS;
    MDT_REQUIRE(x && rows, "%s: NULL tensor pointer", op);
    MDT_REQUIRE(lead % 8 == 0 && aligned16(x),
                "%s: the gathered rows need a width that is a multiple of 8 bf16 (16 bytes) and a 16-byte aligned "
                "base, got width %lld", op, (long long)lead);
    return MDT_SUCCESS;
}

}  // namespace

extern "C" {

int mdt_gemm_matmul(mdt_stream_t stream, const float *a, int transpose_a, const float *b, int transpose_b,
                    const float *bias, float *out, int64_t batch, int64_t m, int64_t n, int64_t k, int64_t stride_a,
                    int64_t stride_b, int accumulate, float *workspace, int64_t workspace_capacity) {
    MDT_REQUIRE(batch >= 0 && m >= 0 && n >= 0 && k >= 0,
                "mdt_gemm_matmul: negative size (batch %lld, m %lld, n %lld, k %lld)", (long long)batch,
                (long long)m, (long long)n, (long long)k);
    MDT_REQUIRE(stride_a >= 0 && stride_b >= 0, "mdt_gemm_matmul: negative batch stride");
    MDT_REQUIRE(workspace_capacity >= 0, "mdt_gemm_matmul: negative workspace capacity %lld",
                (long long)workspace_capacity);
    MDT_REQUIRE((n + kTile - 1) / kTile <= 65535 && (m + kTile - 1) / kTile <= 2147483647LL,
                "mdt_gemm_matmul: m %lld or n %lld exceeds the grid's limits", (long long)m, (long long)n);
    if (batch == 0 || m == 0 || n == 0) return MDT_SUCCESS;
    MDT_REQUIRE(out && (k == 0 || (a && b)), "mdt_gemm_matmul: NULL tensor pointer");
    // A workspace smaller than the preferred split's takes fewer slices (down to none): never an error.
    int64_t elements = batch * m * n;
    Split split = choose_split(kF32Split, batch, m, n, k, slices_that_fit(workspace, workspace_capacity, elements));
    int64_t z = split.slices * batch;
    dim3 grid(static_cast<unsigned>((m + kTile - 1) / kTile), static_cast<unsigned>((n + kTile - 1) / kTile),
              static_cast<unsigned>(z < 65535 ? z : 65535));
    dim3 block(kThreadsPerSide, kThreadsPerSide);
    if (split.slices == 1) {
        return MDT_LAUNCH(gemm_kernel, grid, block, 0, stream, a, transpose_a, b, transpose_b, bias, out, batch, m, n,
                          k, stride_a, stride_b, accumulate, split.slices, split.slice_tiles,
                          static_cast<float *>(nullptr));
    }
    int status = MDT_LAUNCH(gemm_kernel, grid, block, 0, stream, a, transpose_a, b, transpose_b,
                            static_cast<const float *>(nullptr), out, batch, m, n, k, stride_a, stride_b, 0,
                            split.slices, split.slice_tiles, workspace);
    if (status != MDT_SUCCESS) return status;
    return MDT_LAUNCH(sum_slices_kernel<float>, mdt::blocks_for(elements, 256), 256, 0, stream, workspace, split.slices,
                      elements, n, bias, out, accumulate, 0, FusedEpilogue{});
}

int mdt_gemm_matmul_workspace(int64_t batch, int64_t m, int64_t n, int64_t k, int64_t *floats) {
    return workspace_floats("mdt_gemm_matmul_workspace", kF32Split, batch, m, n, k, floats);
}

int mdt_gemm_matmul_bf16(mdt_stream_t stream, const uint16_t *a, int transpose_a, const uint16_t *b, int transpose_b,
                         const float *bias, float *out, int64_t batch, int64_t m, int64_t n, int64_t k,
                         int64_t stride_a, int64_t stride_b, int accumulate, int gelu, float *workspace,
                         int64_t workspace_capacity) {
    return matmul_bf16("mdt_gemm_matmul_bf16", stream, a, transpose_a, b, transpose_b, bias, out, batch, m, n, k,
                       stride_a, stride_b, accumulate, gelu, workspace, workspace_capacity);
}

int mdt_gemm_matmul_bf16_out(mdt_stream_t stream, const uint16_t *a, int transpose_a, const uint16_t *b,
                             int transpose_b, const float *bias, uint16_t *out, int64_t batch, int64_t m, int64_t n,
                             int64_t k, int64_t stride_a, int64_t stride_b, int gelu, float *workspace,
                             int64_t workspace_capacity) {
    return matmul_bf16("mdt_gemm_matmul_bf16_out", stream, a, transpose_a, b, transpose_b, bias, out, batch, m, n, k,
                       stride_a, stride_b, 0, gelu, workspace, workspace_capacity);
}

int mdt_gemm_matmul_bf16_gelu(mdt_stream_t stream, const uint16_t *a, int transpose_a, const uint16_t *b,
                              int transpose_b, const float *bias, uint16_t *pre, uint16_t *out, int64_t batch,
                              int64_t m, int64_t n, int64_t k, int64_t stride_a, int64_t stride_b,
                              int tanh_approximation, float *workspace, int64_t workspace_capacity) {
    return matmul_bf16_fused("mdt_gemm_matmul_bf16_gelu", stream, a, transpose_a, b, transpose_b, bias, out, batch, m,
                             n, k, stride_a, stride_b,
                             FusedEpilogue{FusedEpilogue::kGeluKeep, tanh_approximation, pre, nullptr, nullptr},
                             workspace, workspace_capacity);
}

int mdt_gemm_matmul_bf16_gelu_bwd(mdt_stream_t stream, const uint16_t *a, int transpose_a, const uint16_t *b,
                                  int transpose_b, const uint16_t *pre, uint16_t *d_pre, int64_t batch, int64_t m,
                                  int64_t n, int64_t k, int64_t stride_a, int64_t stride_b, int tanh_approximation,
                                  float *workspace, int64_t workspace_capacity) {
    return matmul_bf16_fused("mdt_gemm_matmul_bf16_gelu_bwd", stream, a, transpose_a, b, transpose_b, nullptr, d_pre,
                             batch, m, n, k, stride_a, stride_b,
                             FusedEpilogue{FusedEpilogue::kGeluSlope, tanh_approximation, nullptr, pre, nullptr},
                             workspace, workspace_capacity);
}

int mdt_gemm_matmul_bf16_swiglu(mdt_stream_t stream, const uint16_t *a, int transpose_a, const uint16_t *b,
                                int transpose_b, const float *bias, const uint16_t *gate_a, uint16_t *gate_b,
                                uint16_t *out, int64_t batch, int64_t m, int64_t n, int64_t k, int64_t stride_a,
                                int64_t stride_b, float *workspace, int64_t workspace_capacity) {
    return matmul_bf16_fused("mdt_gemm_matmul_bf16_swiglu", stream, a, transpose_a, b, transpose_b, bias, out, batch,
                             m, n, k, stride_a, stride_b,
                             FusedEpilogue{FusedEpilogue::kSwigluGate, 0, gate_b, gate_a, nullptr}, workspace,
                             workspace_capacity);
}

int mdt_gemm_matmul_bf16_swiglu_bwd(mdt_stream_t stream, const uint16_t *a, int transpose_a, const uint16_t *b,
                                    int transpose_b, const uint16_t *gate_a, const uint16_t *gate_b, uint16_t *d_gate_a,
                                    uint16_t *d_gate_b, int64_t batch, int64_t m, int64_t n, int64_t k,
                                    int64_t stride_a, int64_t stride_b, float *workspace, int64_t workspace_capacity) {
    return matmul_bf16_fused("mdt_gemm_matmul_bf16_swiglu_bwd", stream, a, transpose_a, b, transpose_b, nullptr,
                             d_gate_a, batch, m, n, k, stride_a, stride_b,
                             FusedEpilogue{FusedEpilogue::kSwigluSlope, 0, d_gate_b, gate_a, gate_b}, workspace,
                             workspace_capacity);
}

int mdt_gemm_matmul_bf16_gelu_gathered(mdt_stream_t stream, const uint16_t *x, const int32_t *rows, int64_t x_rows,
                                       const uint16_t *b, int transpose_b, const float *bias, uint16_t *pre,
                                       uint16_t *out, int64_t batch, int64_t m, int64_t n, int64_t k, int64_t stride_b,
                                       int tanh_approximation, float *workspace, int64_t workspace_capacity) {
    const char *op = "mdt_gemm_matmul_bf16_gelu_gathered";
    if (int s = check_gather(op, x, rows, x_rows, k, batch, m, n)) return s;
    return matmul_bf16_fused(op, stream, x, 0, b, transpose_b, bias, out, batch, m, n, k, 0, stride_b,
                             FusedEpilogue{FusedEpilogue::kGeluKeep, tanh_approximation, pre, nullptr, nullptr},
                             workspace, workspace_capacity, bf16::Gather{rows, x_rows});
}

int mdt_gemm_matmul_bf16_gathered(mdt_stream_t stream, const uint16_t *x, const int32_t *rows, int64_t x_rows,
                                  int transpose_a, const uint16_t *b, int transpose_b, const float *bias, float *out,
                                  int64_t batch, int64_t m, int64_t n, int64_t k, int64_t stride_b, int accumulate,
                                  float *workspace, int64_t workspace_capacity) {
    const char *op = "mdt_gemm_matmul_bf16_gathered";
    if (int s = check_gather(op, x, rows, x_rows, transpose_a ? m : k, batch, m, n)) return s;
    return matmul_bf16(op, stream, x, transpose_a, b, transpose_b, bias, out, batch, m, n, k, 0, stride_b, accumulate,
                       0, workspace, workspace_capacity, FusedEpilogue{}, bf16::Gather{rows, x_rows});
}

int mdt_gemm_matmul_bf16_workspace(int64_t batch, int64_t m, int64_t n, int64_t k, int64_t *floats) {
    return workspace_floats("mdt_gemm_matmul_bf16_workspace", bf16::kSplit, batch, m, n, k, floats);
}

int mdt_gemm_matmul_tf32(mdt_stream_t stream, const float *a, int transpose_a, const float *b, int transpose_b,
                         const float *bias, float *out, int64_t batch, int64_t m, int64_t n, int64_t k,
                         int64_t stride_a, int64_t stride_b, int accumulate, int gelu, float *workspace,
                         int64_t workspace_capacity) {
    using namespace tf32;
    TensorCoreLaunch plan;
    if (int s = plan_tensor_core("mdt_gemm_matmul_tf32", kSplit, a, transpose_a, b, transpose_b, out, batch, m, n, k,
                                 stride_a, stride_b, accumulate, gelu, workspace, workspace_capacity, &plan)) {
        return s;
    }
    if (plan.empty) return MDT_SUCCESS;
    auto *gemm_tf32 = transpose_a ? (transpose_b ? &gemm_tf32_kernel<true, true> : &gemm_tf32_kernel<true, false>)
                                  : (transpose_b ? &gemm_tf32_kernel<false, true> : &gemm_tf32_kernel<false, false>);
    if (plan.split.slices == 1) {
        return MDT_LAUNCH_OPT_IN(gemm_tf32, plan.grid, kThreads, kSharedBytes, stream, a, b, bias, out, batch, m, n,
                                 k, stride_a, stride_b, accumulate, gelu, plan.vector_a, plan.vector_b, 1,
                                 plan.split.slice_tiles, static_cast<float *>(nullptr));
    }
    int status = MDT_LAUNCH_OPT_IN(gemm_tf32, plan.grid, kThreads, kSharedBytes, stream, a, b,
                                   static_cast<const float *>(nullptr), out, batch, m, n, k, stride_a, stride_b, 0, 0,
                                   plan.vector_a, plan.vector_b, plan.split.slices, plan.split.slice_tiles,
                                   workspace);
    if (status != MDT_SUCCESS) return status;
    return MDT_LAUNCH(sum_slices_kernel<float>, mdt::blocks_for(plan.elements, 256), 256, 0, stream, workspace,
                      plan.split.slices, plan.elements, n, bias, out, accumulate, gelu, FusedEpilogue{});
}

int mdt_gemm_matmul_tf32_workspace(int64_t batch, int64_t m, int64_t n, int64_t k, int64_t *floats) {
    return workspace_floats("mdt_gemm_matmul_tf32_workspace", tf32::kSplit, batch, m, n, k, floats);
}

int mdt_gemm_sum_rows(mdt_stream_t stream, const float *x, float *out, int64_t rows, int64_t columns, int accumulate,
                      float *workspace, int64_t workspace_capacity) {
    return sum_rows("mdt_gemm_sum_rows", stream, x, out, rows, columns, accumulate, workspace, workspace_capacity);
}

int mdt_gemm_sum_rows_bf16in(mdt_stream_t stream, const uint16_t *x, float *out, int64_t rows, int64_t columns,
                             int accumulate, float *workspace, int64_t workspace_capacity) {
    return sum_rows("mdt_gemm_sum_rows_bf16in", stream, x, out, rows, columns, accumulate, workspace,
                    workspace_capacity);
}

int mdt_gemm_sum_rows_workspace_floats(int64_t rows, int64_t columns, int64_t *floats) {
    MDT_REQUIRE(rows >= 0 && columns > 0,
                "mdt_gemm_sum_rows_workspace_floats: need rows >= 0 and columns > 0, got %lld and %lld",
                (long long)rows, (long long)columns);
    MDT_REQUIRE(floats, "mdt_gemm_sum_rows_workspace_floats: NULL result pointer");
    *floats = mdt::column_sum::workspace_floats(rows, columns);
    return MDT_SUCCESS;
}

}  // extern "C"
