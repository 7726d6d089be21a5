// Fused non-causal scaled dot-product attention, FlashAttention-2 style, f32 on CUDA cores; the Tq×Tk score
// matrix never exists. q [N, Tq, H·Dh], k and v [N, Tk, H·Dh] (heads contiguous within a token), out like q,
// lse [N, H, Tq]; any Dh up to 128, Tk ≠ Tq allowed (cross-attention), tails masked.
// Forward: one block of 128 threads per (query tile of 16, n·H + h). The tile's queries, scaled by 1/√Dh, sit in
// shared memory; K and V tiles of 32 keys stream through shared memory. Per key tile the block computes the
// 16×32 scores, each row's running max and sum are updated (online softmax, f32) and the output accumulator,
// 8 threads per query row holding Dh/8 columns in registers, is rescaled and gains P·V. Saves lse = max + log sum.
// Backward (deterministic, no float atomics): D = rowsum(dO∘O) per query (one warp each); then one block per
// (key tile of 16, n·H + h) walks all query tiles, recomputes P = exp(S − lse) and dS = P∘(dO·Vᵀ − D), and
// accumulates dV += Pᵀ·dO and dK += dSᵀ·Q in registers; a third kernel, one block per (query tile of 16,
// n·H + h), walks all key tiles, recomputes P and dS, and accumulates dQ += dS·K. Each gradient element is owned
// by one thread and summed in a fixed order.
// FLOPs: forward 4·N·H·Tq·Tk·Dh; backward 2.5× that by the FlashAttention convention (this kernel does 14·N·H·Tq·
// Tk·Dh: the recomputations). Bytes: forward reads Q once and K, V once per query tile.
//
// BF16 on tensor cores (mdt_attention_fwd_bf16 / _bwd_bf16; Dh 32, 64, 128 forward, 32 and 64 backward; f32 out,
// lse and gradients): FlashAttention-2 with mma.sync m16n8k16 (f32 accumulation) through the common.cuh wrappers.
// Forward: one block of 4 warps per (64-query tile, n·H + h), each warp 16 query rows whose Q A-fragments are
// loaded once into registers: the block's Q tile is staged through a K/V stage by cp.async (16-byte chunks, whole
// sectors, where fragments read from global memory used 8 bytes of each sector) and read by ldmatrix. K/V tiles of
// 64 keys stream through shared memory by cp.async (double-buffered for Dh ≤ 64, 48 KiB allowing; keys past Tk
// zero-filled). Per tile: S = Q·Kᵀ (ldmatrix of K), scaled by 1/√Dh·log2 e and masked to −∞ past Tk, online
// softmax in registers (row max over the quad of lanes holding a row, by shuffles; the row sum stays per lane until
// the end), exp2; P's C fragments are packed to bf16 A fragments in registers (no shared round trip) for O += P·V
// (ldmatrix .trans of V). lse = ln 2·(max + log2 sum). Outputs go 8 bytes a lane (f32 pairs; bf16 regrouped across
// the quad), so each quad writes whole 32-byte sectors.
// Backward: a prologue rounds dO to bf16 (scratch) and computes D = rowsum(dO∘O); the dK/dV kernel (4 warps × 16
// keys, K and V as A fragments, Q/dO tiles double-buffered) and the dQ kernel (4 warps × 16 queries, Q and dO as
// A fragments, K/V tiles as the forward; A fragments staged like the forward's Q) recompute P = exp2(S·scale·
// log2 e − lse·log2 e) and dS = P∘(dP − D), every product on tensor cores with the C → A register trick; each
// gradient row is owned by one warp and summed in a fixed order (deterministic, no atomics); gradients are stored
// as the forward's outputs, 8 bytes a lane (f32 pairs; bf16 regrouped across the quad): whole 32-byte sectors.
// The _bf16grad backwards take dO and dq, dk, dv each as f32 or bf16 (mdt::GradIn/GradOut): in a bf16 graph the
// gradient of a bf16 value is bf16. A bf16 dO is what the prologue would have rounded it to, so the kernels read it
// as it is (no scratch copy, 4 bytes per element less); a bf16 gradient is the f32 result rounded once at the store.
// The _qknorm entries fuse QK-norm (a non-affine LayerNorm of q and of k over the concatenated heads): they read the
// raw q and k rows with each row's offsets and rstd (mdt_norm_layer_norm_statistics) and normalise every q and k
// tile in shared memory between the barrier that publishes it and one more, rounding as the LayerNorm's bf16 output
// rounds, so every product sees the bits the separate QK-norm would have written; that normalised copy of q and k
// (2 bytes per element written, read by the forward and again by the backward, and held in between) is gone.
// Their q and k, v rows may be strided (q_stride, kv_stride): self-attention's q|k|v is one product's output
// [rows, 3·H·Dh] read in place as three column blocks, and the backward writes dq, dk, dv into the column blocks of
// one gradient of that shape, so one product gives x's gradient (K = 3·H·Dh) instead of three adding in f32.
// FLOPs: forward 4·N·H·Tq·Tk·Dh; backward 2.5× (convention; it does 14·N·H·Tq·Tk·Dh with the recomputations).
// Bytes: forward 2·N·H·Dh·(Tq + 2·Tk·⌈Tq/64⌉) + 4·N·H·Tq·(Dh + 1); backward about 2·N·H·Dh·(2·Tq·⌈Tk/64⌉ +
// 2·Tk·⌈Tq/64⌉ + 2·Tk + 2·Tq) + 4·N·H·Dh·(2·Tq + 2·Tk) (f32 dO, O read once, gradients written once; a bf16 dO
// saves its f32 read and the scratch copy, each bf16 gradient 2 bytes per element).
#include "common.cuh"
#include "grad_operand.cuh"

#include <math.h>

namespace {

constexpr int kThreads = 128;
constexpr int kQueryTile = 16;
constexpr int kKeyTile = 32;
constexpr int kBackwardKeyTile = 16;
constexpr int kMaxHeadDim = 128;
constexpr int kColumnsPerThread = kMaxHeadDim / 8;  // 8 threads share a row of Dh columns
// Shared-memory row strides. Score rows are read across lanes by row (4 rows per warp): an odd stride puts each
// row in another bank. K (and in the backward V) tiles are read with one key per lane: an odd stride makes the
// 32 lanes' rows hit 32 different banks where a head_dim multiple of 32 would put them all in one.
constexpr int kScoreStride = kKeyTile + 1;
constexpr int kBackwardScoreStride = kBackwardKeyTile + 1;
__host__ __device__ constexpr int64_t key_stride(int64_t head_dim) { return head_dim | 1; }

struct Attention {
    int64_t samples, queries, keys, heads, head_dim;
    float scale;
    __device__ int64_t width() const { return heads * head_dim; }
};

/**
 * Copies rows [first, first + count) of head h of sample n from a [N, T, H·Dh] tensor into tile[rows][stride]
 * (the first Dh columns of each row), times {@code factor}; rows past count or past the tensor's T are zero.
 */
__device__ void load_tile(const float *source, int64_t n, int64_t tokens, int64_t h, const Attention &a,
                          int64_t first, int rows, float factor, float *tile, int64_t stride) {
    int64_t dh = a.head_dim, width = a.width();
    for (int64_t e = threadIdx.x; e < rows * dh; e += blockDim.x) {
        int64_t r = e / dh, d = e % dh, token = first + r;
        tile[r * stride + d] = token < tokens ? source[(n * tokens + token) * width + h * dh + d] * factor : 0.0f;
    }
}

__global__ void attention_forward_kernel(const float *q, const float *k, const float *v, float *out, float *lse,
                                         Attention a) {
    MDT_DYNAMIC_SHARED(float, shared);
    MDT_SHARED(float, row_max, [kQueryTile]);
    MDT_SHARED(float, row_sum, [kQueryTile]);
    int64_t dh = a.head_dim, ks = key_stride(dh), nh = blockIdx.y, n = nh / a.heads, h = nh % a.heads;
    int64_t first_query = static_cast<int64_t>(blockIdx.x) * kQueryTile;
    float *q_tile = shared, *k_tile = q_tile + kQueryTile * dh, *v_tile = k_tile + kKeyTile * ks;
    float *p_tile = v_tile + kKeyTile * dh;  // [kQueryTile][kScoreStride]
    load_tile(q, n, a.queries, h, a, first_query, kQueryTile, a.scale, q_tile, dh);
    if (threadIdx.x < kQueryTile) {
        row_max[threadIdx.x] = -__builtin_inff();
        row_sum[threadIdx.x] = 0.0f;
    }
    int row = threadIdx.x / 8, column0 = threadIdx.x % 8;
    float accumulator[kColumnsPerThread];
MDT_UNROLL
    for (int i = 0; i < kColumnsPerThread; i++) accumulator[i] = 0.0f;
    for (int64_t first_key = 0; first_key < a.keys; first_key += kKeyTile) {
        int key_count = static_cast<int>(a.keys - first_key < kKeyTile ? a.keys - first_key : kKeyTile);
        __syncthreads();
        load_tile(k, n, a.keys, h, a, first_key, kKeyTile, 1.0f, k_tile, ks);
        load_tile(v, n, a.keys, h, a, first_key, kKeyTile, 1.0f, v_tile, dh);
        __syncthreads();
        for (int e = threadIdx.x; e < kQueryTile * kKeyTile; e += blockDim.x) {
            int i = e / kKeyTile, j = e % kKeyTile;
            float score = 0.0f;
            for (int64_t d = 0; d < dh; d++) score = fmaf(q_tile[i * dh + d], k_tile[j * ks + d], score);
            p_tile[i * kScoreStride + j] = score;
        }
        __syncthreads();
        // Online softmax update by the row's 8 threads (every thread of the block), each over every 8th key, with
        // butterfly shuffles: each lane adds the same pairs, so all 8 hold the same bits. The shuffles also order
        // the reads of row_max and row_sum before the one write.
        float *scores = p_tile + row * kScoreStride;
        float old_max = row_max[row], tile_max = old_max;
        for (int j = column0; j < key_count; j += 8) tile_max = fmaxf(tile_max, scores[j]);
        for (int lanes = 4; lanes > 0; lanes >>= 1) {
            tile_max = fmaxf(tile_max, __shfl_xor_sync(mdt::kFullMask, tile_max, lanes));
        }
        float sum = 0.0f;
        for (int j = column0; j < kKeyTile; j += 8) {
            float p = j < key_count ? expf(scores[j] - tile_max) : 0.0f;
            scores[j] = p;
            sum += p;
        }
        for (int lanes = 4; lanes > 0; lanes >>= 1) sum += __shfl_xor_sync(mdt::kFullMask, sum, lanes);
        float rescale = expf(old_max - tile_max);
        if (column0 == 0) {
            row_sum[row] = fmaf(row_sum[row], rescale, sum);
            row_max[row] = tile_max;
        }
        __syncthreads();
        const float *p_row = p_tile + row * kScoreStride;
MDT_UNROLL
        for (int i = 0; i < kColumnsPerThread; i++) {
            int64_t d = column0 + 8 * i;
            if (d < dh) {
                float value = accumulator[i] * rescale;
                for (int j = 0; j < key_count; j++) value = fmaf(p_row[j], v_tile[j * dh + d], value);
                accumulator[i] = value;
            }
        }
    }
    __syncthreads();
    int64_t query = first_query + row;
    if (query < a.queries) {
        float inverse = 1.0f / row_sum[row];
        float *target = out + (n * a.queries + query) * a.width() + h * dh;
MDT_UNROLL
        for (int i = 0; i < kColumnsPerThread; i++) {
            int64_t d = column0 + 8 * i;
            if (d < dh) target[d] = accumulator[i] * inverse;
        }
        if (column0 == 0) lse[nh * a.queries + query] = row_max[row] + logf(row_sum[row]);
    }
}

/** D[n, h, q] = Σ_d dO·O over one head's columns: one warp per (n, q, h). */
__global__ void attention_row_dot_kernel(const float *d_out, const float *out, float *delta, Attention a) {
    int lane = threadIdx.x % 32;
    int64_t rows = a.samples * a.queries * a.heads, warps = (int64_t)gridDim.x * (blockDim.x / 32);
    for (int64_t r = blockIdx.x * (int64_t)(blockDim.x / 32) + threadIdx.x / 32; r < rows; r += warps) {
        int64_t h = r % a.heads, token = r / a.heads;  // token = n·Tq + q
        const float *g = d_out + token * a.width() + h * a.head_dim, *o = out + token * a.width() + h * a.head_dim;
        float dot = 0.0f;
        for (int64_t d = lane; d < a.head_dim; d += 32) dot = fmaf(g[d], o[d], dot);
        dot = mdt::warp_sum(dot);
        int64_t n = token / a.queries, q = token % a.queries;
        if (lane == 0) delta[(n * a.heads + h) * a.queries + q] = dot;
    }
}

/**
 * For a query tile (q_tile, dO_tile [kQueryTile][Dh], lse and D of its rows) against a key tile (k_tile, v_tile
 * [kBackwardKeyTile][key_stride]): writes P [kQueryTile][kBackwardScoreStride] and dS = P∘(dO·Vᵀ − D) into p_tile
 * and ds_tile; zero outside the valid rows and keys.
 */
__device__ void probabilities_and_score_gradients(const float *q_tile, const float *do_tile, const float *k_tile,
                                                  const float *v_tile, const float *row_lse, const float *row_delta,
                                                  int query_count, int key_count, const Attention &a, float *p_tile,
                                                  float *ds_tile) {
    int64_t dh = a.head_dim;
    for (int e = threadIdx.x; e < kQueryTile * kBackwardKeyTile; e += blockDim.x) {
        int i = e / kBackwardKeyTile, j = e % kBackwardKeyTile;
        if (i >= query_count || j >= key_count) {
            p_tile[i * kBackwardScoreStride + j] = 0.0f;
            ds_tile[i * kBackwardScoreStride + j] = 0.0f;
            continue;
        }
        float score = 0.0f, dp = 0.0f;
        int64_t ks = key_stride(dh);
        for (int64_t d = 0; d < dh; d++) {
            score = fmaf(q_tile[i * dh + d], k_tile[j * ks + d], score);
            dp = fmaf(do_tile[i * dh + d], v_tile[j * ks + d], dp);
        }
        float p = expf(score * a.scale - row_lse[i]);
        p_tile[i * kBackwardScoreStride + j] = p;
        ds_tile[i * kBackwardScoreStride + j] = p * (dp - row_delta[i]);
    }
}

__device__ void load_rows(const float *source, int64_t nh, int64_t first, int count, int64_t total, float *target) {
    for (int i = threadIdx.x; i < kQueryTile; i += blockDim.x) {
        target[i] = i < count ? source[nh * total + first + i] : 0.0f;
    }
}

__global__ void attention_key_gradients_kernel(const float *d_out, const float *q, const float *k, const float *v,
                                               const float *lse, const float *delta, float *dk, float *dv,
                                               Attention a) {
    MDT_DYNAMIC_SHARED(float, shared);
    MDT_SHARED(float, row_lse, [kQueryTile]);
    MDT_SHARED(float, row_delta, [kQueryTile]);
    int64_t dh = a.head_dim, ks = key_stride(dh), nh = blockIdx.y, n = nh / a.heads, h = nh % a.heads;
    int64_t first_key = static_cast<int64_t>(blockIdx.x) * kBackwardKeyTile;
    int key_count = static_cast<int>(a.keys - first_key < kBackwardKeyTile ? a.keys - first_key : kBackwardKeyTile);
    float *k_tile = shared, *v_tile = k_tile + kBackwardKeyTile * ks, *q_tile = v_tile + kBackwardKeyTile * ks;
    float *do_tile = q_tile + kQueryTile * dh, *p_tile = do_tile + kQueryTile * dh;
    float *ds_tile = p_tile + kQueryTile * kBackwardScoreStride;
    load_tile(k, n, a.keys, h, a, first_key, kBackwardKeyTile, 1.0f, k_tile, ks);
    load_tile(v, n, a.keys, h, a, first_key, kBackwardKeyTile, 1.0f, v_tile, ks);
    int key = threadIdx.x / 8, column0 = threadIdx.x % 8;
    float dk_acc[kColumnsPerThread], dv_acc[kColumnsPerThread];
MDT_UNROLL
    for (int i = 0; i < kColumnsPerThread; i++) {
        dk_acc[i] = 0.0f;
        dv_acc[i] = 0.0f;
    }
    for (int64_t first_query = 0; first_query < a.queries; first_query += kQueryTile) {
        int query_count =
            static_cast<int>(a.queries - first_query < kQueryTile ? a.queries - first_query : kQueryTile);
        __syncthreads();
        load_tile(q, n, a.queries, h, a, first_query, kQueryTile, 1.0f, q_tile, dh);
        load_tile(d_out, n, a.queries, h, a, first_query, kQueryTile, 1.0f, do_tile, dh);
        load_rows(lse, nh, first_query, query_count, a.queries, row_lse);
        load_rows(delta, nh, first_query, query_count, a.queries, row_delta);
        __syncthreads();
        probabilities_and_score_gradients(q_tile, do_tile, k_tile, v_tile, row_lse, row_delta, query_count, key_count,
                                          a, p_tile, ds_tile);
        __syncthreads();
MDT_UNROLL
        for (int i = 0; i < kColumnsPerThread; i++) {
            int64_t d = column0 + 8 * i;
            if (d < dh) {
                float dk_value = dk_acc[i], dv_value = dv_acc[i];
                for (int r = 0; r < query_count; r++) {
                    dv_value = fmaf(p_tile[r * kBackwardScoreStride + key], do_tile[r * dh + d], dv_value);
                    dk_value = fmaf(ds_tile[r * kBackwardScoreStride + key], q_tile[r * dh + d], dk_value);
                }
                dk_acc[i] = dk_value;
                dv_acc[i] = dv_value;
            }
        }
    }
    int64_t token = first_key + key;
    if (key < key_count) {
        int64_t base = (n * a.keys + token) * a.width() + h * dh;
MDT_UNROLL
        for (int i = 0; i < kColumnsPerThread; i++) {
            int64_t d = column0 + 8 * i;
            if (d < dh) {
                dk[base + d] = dk_acc[i] * a.scale;
                dv[base + d] = dv_acc[i];
            }
        }
    }
}

__global__ void attention_query_gradients_kernel(const float *d_out, const float *q, const float *k, const float *v,
                                                 const float *lse, const float *delta, float *dq, Attention a) {
    MDT_DYNAMIC_SHARED(float, shared);
    MDT_SHARED(float, row_lse, [kQueryTile]);
    MDT_SHARED(float, row_delta, [kQueryTile]);
    int64_t dh = a.head_dim, ks = key_stride(dh), nh = blockIdx.y, n = nh / a.heads, h = nh % a.heads;
    int64_t first_query = static_cast<int64_t>(blockIdx.x) * kQueryTile;
    int query_count = static_cast<int>(a.queries - first_query < kQueryTile ? a.queries - first_query : kQueryTile);
    float *q_tile = shared, *do_tile = q_tile + kQueryTile * dh, *k_tile = do_tile + kQueryTile * dh;
    float *v_tile = k_tile + kBackwardKeyTile * ks, *p_tile = v_tile + kBackwardKeyTile * ks;
    float *ds_tile = p_tile + kQueryTile * kBackwardScoreStride;
    load_tile(q, n, a.queries, h, a, first_query, kQueryTile, 1.0f, q_tile, dh);
    load_tile(d_out, n, a.queries, h, a, first_query, kQueryTile, 1.0f, do_tile, dh);
    load_rows(lse, nh, first_query, query_count, a.queries, row_lse);
    load_rows(delta, nh, first_query, query_count, a.queries, row_delta);
    int row = threadIdx.x / 8, column0 = threadIdx.x % 8;
    float accumulator[kColumnsPerThread];
MDT_UNROLL
    for (int i = 0; i < kColumnsPerThread; i++) accumulator[i] = 0.0f;
    for (int64_t first_key = 0; first_key < a.keys; first_key += kBackwardKeyTile) {
        int key_count = static_cast<int>(a.keys - first_key < kBackwardKeyTile ? a.keys - first_key : kBackwardKeyTile);
        __syncthreads();
        load_tile(k, n, a.keys, h, a, first_key, kBackwardKeyTile, 1.0f, k_tile, ks);
        load_tile(v, n, a.keys, h, a, first_key, kBackwardKeyTile, 1.0f, v_tile, ks);
        __syncthreads();
        probabilities_and_score_gradients(q_tile, do_tile, k_tile, v_tile, row_lse, row_delta, query_count, key_count,
                                          a, p_tile, ds_tile);
        __syncthreads();
MDT_UNROLL
        for (int i = 0; i < kColumnsPerThread; i++) {
            int64_t d = column0 + 8 * i;
            if (d < dh) {
                float value = accumulator[i];
                for (int j = 0; j < key_count; j++) {
                    value = fmaf(ds_tile[row * kBackwardScoreStride + j], k_tile[j * ks + d], value);
                }
                accumulator[i] = value;
            }
        }
    }
    int64_t query = first_query + row;
    if (row < query_count) {
        float *target = dq + (n * a.queries + query) * a.width() + h * dh;
MDT_UNROLL
        for (int i = 0; i < kColumnsPerThread; i++) {
            int64_t d = column0 + 8 * i;
            if (d < dh) target[d] = accumulator[i] * a.scale;
        }
    }
}

// ---------------------------------------------------------------- bf16 on tensor cores
namespace tc {

constexpr int kThreads = 128;  // 4 warps, 16 query (or key) rows each
constexpr int kRowsPerWarp = 16;
constexpr int kQueryTile = 64;
constexpr int kKeyTile = 64;
constexpr int kPad = 8;  // bf16 per shared row: rows stay 16-byte aligned and ldmatrix's 8 row reads hit distinct banks
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.69314718055994531f;

/** Double-buffered K/V stages where two fit in 48 KiB of shared memory (Dh ≤ 64), one otherwise. */
template <int Dh>
__host__ __device__ constexpr int forward_stages() { return Dh <= 64 ? 2 : 1; }
template <int Dh>
constexpr size_t tile_bytes() { return static_cast<size_t>(kKeyTile) * (Dh + kPad) * sizeof(uint16_t); }
template <int Dh>
constexpr size_t forward_shared_bytes() { return forward_stages<Dh>() * 2 * tile_bytes<Dh>(); }

struct Shape {
    int64_t samples, queries, keys, heads;
    float scale_log2;  // 1/√Dh · log2 e: scores go straight into exp2
    // Row strides (elements) of q and dq, and of k, v, dk and dv: H·Dh, or wider for column blocks of one q|k|v.
    int64_t q_stride, kv_stride;
};

/**
 * The row of the c-th of a staged Dh = 32 tile's groups (kGroups a row: 16-byte chunks or 4-byte words) when one
 * shared-memory phase takes 2·kGroups consecutive c (8 lanes of 16 bytes; 32 of 4): rows r and r + 4, 320 bytes
 * apart (16 banks), where rows r and r + 1, 80 bytes apart, would share 4 banks (two wavefronts). A bijection on
 * each 8 rows; the group within the row stays c mod kGroups, and a warp still reads whole 64-byte rows from global.
 */
template <int kGroups>
__device__ __forceinline__ int paired_row(int c) {
    int phase = c / (2 * kGroups);
    return phase / 4 * 8 + phase % 4 + c / kGroups % 2 * 4;
}

/**
 * Issues cp.async copies of rows [first, first + 64) of head h of sample n of a [N, tokens, H·Dh] bf16 tensor
 * into tile[64][Dh + kPad]; rows past {@code tokens} are zero-filled (no read), so masked keys meet zero V rows.
 */
template <int Dh>
__device__ __forceinline__ void load_rows_async(uint16_t *tile, const uint16_t *source, int64_t n, int64_t tokens,
                                                int64_t h, int64_t width, int64_t first) {
    constexpr int kChunks = Dh / 8;  // 16-byte chunks per row
    for (int c = threadIdx.x; c < kKeyTile * kChunks; c += kThreads) {
        int r = Dh == 32 ? paired_row<kChunks>(c) : c / kChunks, column = c % kChunks * 8;
        int64_t token = first + r;
        bool inside = token < tokens;
        const uint16_t *from = inside ? source + (n * tokens + token) * width + h * Dh + column : source;
        mdt::cp_async_16(tile + r * (Dh + kPad) + column, from, inside ? 16 : 0);
    }
}

/**
 * QK-norm applied as q or k tiles arrive (the _qknorm entries): a non-affine LayerNorm's per-row offsets (center
 * [rows, 2]: the rough mean m0 and its correction, from mdt_norm_layer_norm_statistics) and rstd [rows]. NULL rstd:
 * the operand is used as it is.
 */
#ifdef __CUDACC__
#define MDT_ROLLED _Pragma("unroll 1")
#else
#define MDT_ROLLED
#endif

struct RowNorm {
    const float *center, *rstd;
};
struct QkNorm {
    RowNorm q, k;
};

/**
 * Normalises the rows of a staged tile [64][Dh + kPad] in place, each element rounded to bf16 as the LayerNorm
 * kernel rounds its bf16 output ((x − m0 − correction)·rstd, nearest even), so the tensor cores get the very bits
 * a separate QK-norm would have written; zero-filled rows past {@code tokens} stay zero. The 64 rows' offsets and
 * rstd are staged first in {@code rows} [3·64] (whole sectors; each lane then reads its row's by broadcast). One
 * 4-byte word (two columns) a thread, consecutive lanes on consecutive words: a warp's words lie in one row for
 * Dh ≥ 64, in rows r and r + 4 for Dh = 32 (paired_row), so in 32 banks. Call between the barrier that publishes
 * the tile and one more before it is read.
 */
template <int Dh>
__device__ __forceinline__ void normalize_rows(uint16_t *tile, float *rows, RowNorm norm, int64_t n,
                                               int64_t tokens, int64_t first) {
    int64_t base = n * tokens + first;
    for (int i = threadIdx.x; i < 2 * kKeyTile; i += kThreads) {
        rows[i] = first + i / 2 < tokens ? norm.center[2 * base + i] : 0.0f;
    }
    for (int i = threadIdx.x; i < kKeyTile; i += kThreads) {
        rows[2 * kKeyTile + i] = first + i < tokens ? norm.rstd[base + i] : 0.0f;
    }
    __syncthreads();
    constexpr int kWords = Dh / 2;
    // Kept a loop: unrolled, its loads would be hoisted into registers the products around it need.
    MDT_ROLLED
    for (int c = threadIdx.x; c < kKeyTile * kWords; c += kThreads) {
        int r = Dh == 32 ? paired_row<kWords>(c) : c / kWords;
        if (first + r >= tokens) continue;
        float m0 = rows[2 * r], correction = rows[2 * r + 1], rstd = rows[2 * kKeyTile + r];
        uint32_t *pair = reinterpret_cast<uint32_t *>(tile + r * (Dh + kPad)) + c % kWords;
        uint32_t bits = *pair;
        float low = __uint_as_float(bits << 16), high = __uint_as_float(bits & 0xffff0000u);
        *pair = mdt::pack_bf16x2((low - m0 - correction) * rstd, (high - m0 - correction) * rstd);
    }
}

/**
 * One warp's 16 rows × Dh of a staged tile [64][Dh + kPad] (load_rows_async) as m16n8k16 A fragments, by ldmatrix:
 * quarters (rows 0-7, d 0-7), (rows 8-15, d 0-7), (rows 0-7, d 8-15), (rows 8-15, d 8-15) of each 16-wide chunk.
 */
template <int Dh>
__device__ __forceinline__ void tile_a_fragments(uint32_t fragments[][4], const uint16_t *tile) {
    int lane = threadIdx.x % 32, matrix_row = lane % 8, near = (lane / 8) % 2 * 8, far = lane / 16 * 8;
    const uint16_t *rows = tile + (threadIdx.x / 32 * kRowsPerWarp + near + matrix_row) * (Dh + kPad) + far;
    MDT_UNROLL
    for (int kc = 0; kc < Dh / 16; kc++) mdt::ldmatrix_x4(fragments[kc], rows + 16 * kc);
}

/** Row max / sum over the quad of lanes that hold one accumulator row. */
__device__ __forceinline__ float quad_max(float x) {
    x = fmaxf(x, __shfl_xor_sync(mdt::kFullMask, x, 1));
    return fmaxf(x, __shfl_xor_sync(mdt::kFullMask, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
    x += __shfl_xor_sync(mdt::kFullMask, x, 1);
    return x + __shfl_xor_sync(mdt::kFullMask, x, 2);
}

/**
 * Converts the C fragments of a 16 × 16k block (accumulators c[2i], c[2i + 1] for columns 16i..16i + 15) into
 * the A fragment of columns 16i..16i + 15: the C layout of two n8 tiles is exactly the A layout of one k16 chunk.
 */
__device__ __forceinline__ void c_to_a(uint32_t a[4], const float left[4], const float right[4]) {
    a[0] = mdt::pack_bf16x2(left[0], left[1]);
    a[1] = mdt::pack_bf16x2(left[2], left[3]);
    a[2] = mdt::pack_bf16x2(right[0], right[1]);
    a[3] = mdt::pack_bf16x2(right[2], right[3]);
}

template <int N>
__device__ __forceinline__ void zero(float c[N][4]) {
    MDT_UNROLL
    for (int j = 0; j < N; j++) {
        MDT_UNROLL
        for (int r = 0; r < 4; r++) c[j][r] = 0.0f;
    }
}

/**
 * c[16 × 64] = A·Tᵀ for a warp's A fragments (16 rows × Dh) and a shared tile T [64 rows][Dh]: T is B (k = d,
 * n = row) stored n-major, so plain ldmatrix. Used for S = Q·Kᵀ, dP = dO·Vᵀ and their transposes.
 */
template <int Dh>
__device__ __forceinline__ void multiply_a_tt(float c[kKeyTile / 8][4], const uint32_t a[Dh / 16][4],
                                              const uint16_t *tile) {
    // ldmatrix: lane l addresses row l mod 8 of 8×8 matrix l/8; the matrices step by 8 along the two tile axes.
    int lane = threadIdx.x % 32, matrix_row = lane % 8, near = (lane / 8) % 2 * 8, far = lane / 16 * 8;
    zero<kKeyTile / 8>(c);
    MDT_UNROLL
    for (int kc = 0; kc < Dh / 16; kc++) {
        MDT_UNROLL
        for (int p = 0; p < kKeyTile / 16; p++) {
            uint32_t b[4];  // quarters (rows 0-7, d 0-7), (rows 0-7, d 8-15), (rows 8-15, d 0-7), (rows 8-15, d 8-15)
            mdt::ldmatrix_x4(b, tile + (16 * p + far + matrix_row) * (Dh + kPad) + 16 * kc + near);
            mdt::mma_m16n8k16_bf16(c[2 * p], a[kc], b, c[2 * p]);
            mdt::mma_m16n8k16_bf16(c[2 * p + 1], a[kc], b + 2, c[2 * p + 1]);
        }
    }
}

/**
 * acc[16 × Dh] += P·T for P [16 × 64] held as f32 C fragments (rounded to bf16 A fragments in registers, no
 * shared-memory round trip) and a shared tile T [64 rows][Dh]: T is B (k = row, n = d) stored k-major, so
 * ldmatrix .trans. Used for O += P·V, dV += Pᵀ·dO, dK += dSᵀ·Q and dQ += dS·K.
 */
template <int Dh>
__device__ __forceinline__ void multiply_c_t(float acc[Dh / 8][4], const float c[kKeyTile / 8][4],
                                             const uint16_t *tile) {
    int lane = threadIdx.x % 32, matrix_row = lane % 8, near = (lane / 8) % 2 * 8, far = lane / 16 * 8;
    MDT_UNROLL
    for (int kc = 0; kc < kKeyTile / 16; kc++) {
        uint32_t a[4];
        c_to_a(a, c[2 * kc], c[2 * kc + 1]);
        MDT_UNROLL
        for (int p = 0; p < Dh / 16; p++) {
            uint32_t b[4];  // quarters (rows 0-7, d 0-7), (rows 8-15, d 0-7), (rows 0-7, d 8-15), (rows 8-15, d 8-15)
            mdt::ldmatrix_x4_trans(b, tile + (16 * kc + near + matrix_row) * (Dh + kPad) + 16 * p + far);
            mdt::mma_m16n8k16_bf16(acc[2 * p], a, b, acc[2 * p]);
            mdt::mma_m16n8k16_bf16(acc[2 * p + 1], a, b + 2, acc[2 * p + 1]);
        }
    }
}

// Out: float, or uint16_t for a bf16 output (rounded once from the f32 result) that the backward reads as it is.
template <int Dh, class Out>
__global__ void __launch_bounds__(kThreads)
attention_forward_bf16_kernel(const uint16_t *q, const uint16_t *k, const uint16_t *v, Out *out, float *lse,
                              Shape s, QkNorm norm) {
    constexpr int kStages = forward_stages<Dh>(), kStride = Dh + kPad, kTile = kKeyTile * kStride;
    MDT_DYNAMIC_SHARED(uint16_t, shared);  // stage i: K tile at 2i·kTile, V tile after it
    MDT_SHARED(float, norm_rows, [3 * kKeyTile]);  // QK-norm: a tile's row offsets and rstd
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, t = lane % 4;
    int64_t nh = blockIdx.y, n = nh / s.heads, h = nh % s.heads, width = s.heads * Dh;
    int64_t row = static_cast<int64_t>(blockIdx.x) * kQueryTile + warp * kRowsPerWarp + lane / 4;  // and row + 8
    float o[Dh / 8][4];
    zero<Dh / 8>(o);
    // Rows g and g + 8 of the warp: running max (log2 units) and this lane's part of the running sum.
    float row_max[2] = {-__builtin_inff(), -__builtin_inff()}, row_sum[2] = {0.0f, 0.0f};
    int64_t key_tiles = (s.keys + kKeyTile - 1) / kKeyTile;
    auto load_stage = [&](int stage, int64_t first_key) {
        load_rows_async<Dh>(shared + 2 * stage * kTile, k, n, s.keys, h, s.kv_stride, first_key);
        load_rows_async<Dh>(shared + (2 * stage + 1) * kTile, v, n, s.keys, h, s.kv_stride, first_key);
        mdt::cp_async_commit();
    };
    // The Q tile goes through the K slot of the last stage, which the loop fills only after the barrier below.
    uint16_t *q_tile = shared + 2 * (kStages - 1) * kTile;
    load_rows_async<Dh>(q_tile, q, n, s.queries, h, s.q_stride, static_cast<int64_t>(blockIdx.x) * kQueryTile);
    mdt::cp_async_commit();
    if (kStages == 2) {
        load_stage(0, 0);
        mdt::cp_async_wait<1>();
    } else {
        mdt::cp_async_wait<0>();
    }
    __syncthreads();
    if (norm.q.rstd) {
        normalize_rows<Dh>(q_tile, norm_rows, norm.q, n, s.queries, static_cast<int64_t>(blockIdx.x) * kQueryTile);
        __syncthreads();
    }
    uint32_t qf[Dh / 16][4];
    tile_a_fragments<Dh>(qf, q_tile);
    __syncthreads();
    for (int64_t kt = 0; kt < key_tiles; kt++) {
        int stage = kStages == 2 ? static_cast<int>(kt & 1) : 0;
        if (kStages == 1) {
            load_stage(0, kt * kKeyTile);
            mdt::cp_async_wait<0>();
        } else if (kt + 1 < key_tiles) {
            load_stage(stage ^ 1, (kt + 1) * kKeyTile);  // the next tile loads while this one is used
            mdt::cp_async_wait<1>();
        } else {
            mdt::cp_async_wait<0>();
        }
        __syncthreads();
        if (norm.k.rstd) {
            normalize_rows<Dh>(shared + 2 * stage * kTile, norm_rows, norm.k, n, s.keys, kt * kKeyTile);
            __syncthreads();
        }
        const uint16_t *ks = shared + 2 * stage * kTile, *vs = ks + kTile;
        // S = Q·Kᵀ, 16 × 64 per warp.
        float sc[kKeyTile / 8][4];
        multiply_a_tt<Dh>(sc, qf, ks);
        // Online softmax in log2 units; keys past the end are -inf before the max (a tile has at least one key).
        int64_t key0 = kt * kKeyTile + 2 * t;
        float tile_max[2] = {-__builtin_inff(), -__builtin_inff()};
        MDT_UNROLL
        for (int j = 0; j < kKeyTile / 8; j++) {
            MDT_UNROLL
            for (int r = 0; r < 4; r++) {
                float x = key0 + 8 * j + r % 2 < s.keys ? sc[j][r] * s.scale_log2 : -__builtin_inff();
                sc[j][r] = x;
                tile_max[r / 2] = fmaxf(tile_max[r / 2], x);
            }
        }
        float rescale[2];
        MDT_UNROLL
        for (int i = 0; i < 2; i++) {
            float new_max = fmaxf(row_max[i], quad_max(tile_max[i]));
            rescale[i] = exp2f(row_max[i] - new_max);  // 0 on the first tile (row_max −∞)
            row_max[i] = new_max;
            row_sum[i] *= rescale[i];
        }
        MDT_UNROLL
        for (int j = 0; j < kKeyTile / 8; j++) {
            MDT_UNROLL
            for (int r = 0; r < 4; r++) {
                float p = exp2f(sc[j][r] - row_max[r / 2]);
                sc[j][r] = p;
                row_sum[r / 2] += p;
            }
        }
        MDT_UNROLL
        for (int j = 0; j < Dh / 8; j++) {
            o[j][0] *= rescale[0];
            o[j][1] *= rescale[0];
            o[j][2] *= rescale[1];
            o[j][3] *= rescale[1];
        }
        // O += P·V, P's C fragments turned into A fragments in registers.
        multiply_c_t<Dh>(o, sc, vs);
        __syncthreads();  // the stage is refilled next iteration
    }
    MDT_UNROLL
    for (int i = 0; i < 2; i++) {
        int64_t query = row + 8 * i;
        float total = quad_sum(row_sum[i]);
        float inverse = 1.0f / total;
        Out *target = out + (n * s.queries + query) * width + h * Dh;
        if constexpr (sizeof(Out) == 2) {
            // bf16: the quad regroups two 8-column groups so that each lane stores 4 columns (8 bytes) and a quad
            // a whole 32-byte sector; every lane takes part in the shuffles, rows past the end store nothing.
            MDT_UNROLL
            for (int j = 0; j < Dh / 8; j += 2) {
                unsigned long long four = mdt::quad_regroup_bf16(
                    mdt::pack_bf16x2(o[j][2 * i] * inverse, o[j][2 * i + 1] * inverse),
                    mdt::pack_bf16x2(o[j + 1][2 * i] * inverse, o[j + 1][2 * i + 1] * inverse));
                if (query < s.queries) *reinterpret_cast<unsigned long long *>(target + 8 * j + 4 * t) = four;
            }
        } else if (query < s.queries) {
            // Columns 2t and 2t + 1 of each 8-column group: one paired store (the offset is even, allocations
            // are 16-byte aligned), so a quad of lanes writes whole 32-byte sectors of f32 rows.
            MDT_UNROLL
            for (int j = 0; j < Dh / 8; j++) {
                mdt::store_pair(target + 8 * j + 2 * t, o[j][2 * i] * inverse, o[j][2 * i + 1] * inverse);
            }
        }
        if (query < s.queries && t == 0) lse[nh * s.queries + query] = (row_max[i] + log2f(total)) * kLn2;
    }
}

/**
 * Backward prologue, one warp per (token, head) row: dO rounded to bf16 for the tensor cores (d_out_bf16 like
 * d_out; NULL for a bf16 dO, which the kernels read as it is: rounding it changes nothing), and D = Σ_d dO·O in
 * f32 of the rounded dO (delta [N, H, Tq]).
 */
template <class Out>
__global__ void attention_row_dot_bf16_kernel(mdt::GradIn d_out, const Out *out, float *delta,
                                              uint16_t *d_out_bf16, Shape s, int64_t head_dim) {
    int lane = threadIdx.x % 32;
    int64_t rows = s.samples * s.queries * s.heads, warps = (int64_t)gridDim.x * (blockDim.x / 32);
    int64_t width = s.heads * head_dim;
    for (int64_t r = blockIdx.x * (int64_t)(blockDim.x / 32) + threadIdx.x / 32; r < rows; r += warps) {
        int64_t h = r % s.heads, token = r / s.heads;  // token = n·Tq + q
        int64_t base = token * width + h * head_dim;
        float dot = 0.0f;
        for (int64_t d = lane; d < head_dim; d += 32) {
            uint16_t g = static_cast<uint16_t>(mdt::pack_bf16x2(d_out[base + d], 0.0f));  // low half: dO in bf16
            if (d_out_bf16) d_out_bf16[base + d] = g;
            // D from the rounded dO, as dP = dO·Vᵀ uses it: Σ_j P_j·dP_j = D then holds up to rounding of P.
            dot = fmaf(__uint_as_float(static_cast<uint32_t>(g) << 16), mdt::load_as_float(out, base + d), dot);
        }
        dot = mdt::warp_sum(dot);
        int64_t n = token / s.queries, q = token % s.queries;
        if (lane == 0) delta[(n * s.heads + h) * s.queries + q] = dot;
    }
}

/**
 * Stores row g + 8i of a warp's 16 × Dh gradient accumulator (C fragments; g = lane / 4), times {@code scale}, at
 * elements base..base + Dh − 1 of {@code gradient} (base a multiple of 4), 8 bytes a lane so that each quad of
 * lanes writes a whole 32-byte sector of its row: f32 pairs as one 64-bit word; bf16 pairs (rounded once) regrouped
 * across the quad, four shuffles per 16 columns, where 4-byte pairs filled half a sector (80.8% and 88.0% of the
 * stored sectors' bytes used by the two gradient kernels with bf16 gradients). Every lane must call it (the
 * shuffles); a row past the end ({@code inside} false) stores nothing.
 */
template <int Dh>
__device__ __forceinline__ void store_gradient_row(mdt::GradOut gradient, int64_t base, const float acc[Dh / 8][4],
                                                   int i, float scale, bool inside) {
    int t = threadIdx.x % 4;
    if (gradient.bf16) {
        uint16_t *target = static_cast<uint16_t *>(gradient.data) + base;
        MDT_UNROLL
        for (int j = 0; j < Dh / 8; j += 2) {
            unsigned long long four = mdt::quad_regroup_bf16(
                mdt::pack_bf16x2(acc[j][2 * i] * scale, acc[j][2 * i + 1] * scale),
                mdt::pack_bf16x2(acc[j + 1][2 * i] * scale, acc[j + 1][2 * i + 1] * scale));
            if (inside) *reinterpret_cast<unsigned long long *>(target + 8 * j + 4 * t) = four;
        }
    } else if (inside) {
        float *target = static_cast<float *>(gradient.data) + base;
        MDT_UNROLL
        for (int j = 0; j < Dh / 8; j++) {
            mdt::store_pair(target + 8 * j + 2 * t, acc[j][2 * i] * scale, acc[j][2 * i + 1] * scale);
        }
    }
}

/** Shared bytes of a backward stage: two bf16 tiles [64][Dh + kPad] and two float rows [64]. */
template <int Dh>
__host__ __device__ constexpr size_t backward_stage_bytes() {
    return 2 * static_cast<size_t>(kKeyTile) * (Dh + kPad) * sizeof(uint16_t) + 2 * kKeyTile * sizeof(float);
}

/**
 * dK and dV for one tile of 64 keys (16 per warp, K and V held as A fragments), walking every query tile:
 * Q and dO tiles (and the tile's lse in log2 units and D) are double-buffered in shared memory; per tile
 * Sᵀ = K·Qᵀ, Pᵀ = exp2(Sᵀ·scale·log2 e − lse₂), dV += Pᵀ·dO, dPᵀ = V·dOᵀ, dSᵀ = Pᵀ∘(dPᵀ − D), dK += dSᵀ·Q.
 * Each key row is owned by one warp and summed in query order: deterministic.
 */
// Min blocks 1: without it ptxas caps the Dh = 32 instance at 128 registers on sm_80 and spills.
template <int Dh>
__global__ void __launch_bounds__(kThreads, 1)
attention_key_gradients_bf16_kernel(const uint16_t *q, const uint16_t *k, const uint16_t *v,
                                    const uint16_t *d_out_bf16, const float *lse, const float *delta,
                                    mdt::GradOut dk, mdt::GradOut dv, Shape s, float scale, QkNorm norm) {
    constexpr int kStride = Dh + kPad, kTile = kQueryTile * kStride;
    constexpr size_t kStageBytes = backward_stage_bytes<Dh>();
    MDT_DYNAMIC_SHARED(unsigned char, shared);  // stage i at i·kStageBytes: Q tile, dO tile, lse₂ row, D row
    MDT_SHARED(float, norm_rows, [3 * kKeyTile]);  // QK-norm: a tile's row offsets and rstd
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, t = lane % 4;
    int64_t nh = blockIdx.y, n = nh / s.heads, h = nh % s.heads, width = s.heads * Dh;
    int64_t row = static_cast<int64_t>(blockIdx.x) * kKeyTile + warp * kRowsPerWarp + lane / 4;  // key, and + 8
    float dk_acc[Dh / 8][4], dv_acc[Dh / 8][4];
    zero<Dh / 8>(dk_acc);
    zero<Dh / 8>(dv_acc);
    auto stage_q = [&](int stage) { return reinterpret_cast<uint16_t *>(shared + stage * kStageBytes); };
    auto stage_rows = [&](int stage) { return reinterpret_cast<float *>(stage_q(stage) + 2 * kTile); };
    auto load_stage = [&](int stage, int64_t first_query) {
        uint16_t *tiles = stage_q(stage);
        load_rows_async<Dh>(tiles, q, n, s.queries, h, s.q_stride, first_query);
        load_rows_async<Dh>(tiles + kTile, d_out_bf16, n, s.queries, h, width, first_query);
        mdt::cp_async_commit();
        float *rows = stage_rows(stage);
        for (int i = threadIdx.x; i < kQueryTile; i += kThreads) {
            bool inside = first_query + i < s.queries;
            // Queries past the end: lse +∞ makes P = 0 and D = 0 keeps dS = 0.
            rows[i] = inside ? lse[nh * s.queries + first_query + i] * kLog2e : __builtin_inff();
            rows[kQueryTile + i] = inside ? delta[nh * s.queries + first_query + i] : 0.0f;
        }
    };
    int64_t query_tiles = (s.queries + kQueryTile - 1) / kQueryTile;  // ≥ 1: the entry handles no queries
    float scale_log2 = s.scale_log2;
    // The K and V tiles go through stage 1's Q and dO slots, which the loop fills only after the barrier below.
    uint16_t *k_tile = stage_q(1), *v_tile = k_tile + kTile;
    load_rows_async<Dh>(k_tile, k, n, s.keys, h, s.kv_stride, static_cast<int64_t>(blockIdx.x) * kKeyTile);
    load_rows_async<Dh>(v_tile, v, n, s.keys, h, s.kv_stride, static_cast<int64_t>(blockIdx.x) * kKeyTile);
    mdt::cp_async_commit();
    load_stage(0, 0);
    mdt::cp_async_wait<1>();
    __syncthreads();
    if (norm.k.rstd) {
        normalize_rows<Dh>(k_tile, norm_rows, norm.k, n, s.keys, static_cast<int64_t>(blockIdx.x) * kKeyTile);
        __syncthreads();
    }
    uint32_t kf[Dh / 16][4], vf[Dh / 16][4];
    tile_a_fragments<Dh>(kf, k_tile);
    tile_a_fragments<Dh>(vf, v_tile);
    __syncthreads();
    for (int64_t qt = 0; qt < query_tiles; qt++) {
        int stage = static_cast<int>(qt & 1);
        if (qt + 1 < query_tiles) {
            load_stage(stage ^ 1, (qt + 1) * kQueryTile);
            mdt::cp_async_wait<1>();
        } else {
            mdt::cp_async_wait<0>();
        }
        __syncthreads();
        if (norm.q.rstd) {
            normalize_rows<Dh>(stage_q(stage), norm_rows, norm.q, n, s.queries, qt * kQueryTile);
            __syncthreads();
        }
        const uint16_t *qs = stage_q(stage), *dos = qs + kTile;
        const float *lse2 = stage_rows(stage), *row_delta = lse2 + kQueryTile;
        float pt[kQueryTile / 8][4];
        multiply_a_tt<Dh>(pt, kf, qs);  // Sᵀ: rows are this warp's keys, columns the tile's queries
        MDT_UNROLL
        for (int j = 0; j < kQueryTile / 8; j++) {
            MDT_UNROLL
            for (int r = 0; r < 4; r++) pt[j][r] = exp2f(pt[j][r] * scale_log2 - lse2[8 * j + 2 * t + r % 2]);
        }
        multiply_c_t<Dh>(dv_acc, pt, dos);
        float dst[kQueryTile / 8][4];
        multiply_a_tt<Dh>(dst, vf, dos);  // dPᵀ
        MDT_UNROLL
        for (int j = 0; j < kQueryTile / 8; j++) {
            MDT_UNROLL
            for (int r = 0; r < 4; r++) dst[j][r] = pt[j][r] * (dst[j][r] - row_delta[8 * j + 2 * t + r % 2]);
        }
        multiply_c_t<Dh>(dk_acc, dst, qs);
        __syncthreads();  // the stage is refilled next iteration
    }
    MDT_UNROLL
    for (int i = 0; i < 2; i++) {
        int64_t key = row + 8 * i, base = (n * s.keys + key) * s.kv_stride + h * Dh;
        store_gradient_row<Dh>(dk, base, dk_acc, i, scale, key < s.keys);
        store_gradient_row<Dh>(dv, base, dv_acc, i, 1.0f, key < s.keys);
    }
}

/**
 * dQ for one tile of 64 queries (16 per warp, Q and dO held as A fragments), walking every key tile with K and
 * V double-buffered in shared memory (as the forward): S = Q·Kᵀ, P = exp2(S·scale·log2 e − lse₂) (keys past the
 * end −∞), dP = dO·Vᵀ, dS = P∘(dP − D), dQ += dS·K. Each query row is owned by one warp: deterministic.
 */
// Min blocks: the blocks that an SM's 64K registers held before the bf16 stores were regrouped (Dh 64: 167
// registers, 3 blocks; Dh 32: 100-127, 4). Left free, ptxas gave Dh 64 174 registers on sm_90 (2 blocks); a bound
// of 3 for both gave Dh 32 142 (3 blocks).
template <int Dh>
__global__ void __launch_bounds__(kThreads, Dh == 32 ? 4 : 3)
attention_query_gradients_bf16_kernel(const uint16_t *q, const uint16_t *k, const uint16_t *v,
                                      const uint16_t *d_out_bf16, const float *lse, const float *delta,
                                      mdt::GradOut dq, Shape s, float scale, QkNorm norm) {
    constexpr int kStride = Dh + kPad, kTile = kKeyTile * kStride;
    MDT_DYNAMIC_SHARED(uint16_t, shared);  // stage i: K tile at 2i·kTile, V tile after it
    MDT_SHARED(float, norm_rows, [3 * kKeyTile]);  // QK-norm: a tile's row offsets and rstd
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, t = lane % 4;
    int64_t nh = blockIdx.y, n = nh / s.heads, h = nh % s.heads, width = s.heads * Dh;
    int64_t row = static_cast<int64_t>(blockIdx.x) * kQueryTile + warp * kRowsPerWarp + lane / 4;  // and row + 8
    float row_lse2[2], row_delta[2];
    MDT_UNROLL
    for (int i = 0; i < 2; i++) {
        bool inside = row + 8 * i < s.queries;
        row_lse2[i] = inside ? lse[nh * s.queries + row + 8 * i] * kLog2e : __builtin_inff();
        row_delta[i] = inside ? delta[nh * s.queries + row + 8 * i] : 0.0f;
    }
    float dq_acc[Dh / 8][4];
    zero<Dh / 8>(dq_acc);
    auto load_stage = [&](int stage, int64_t first_key) {
        load_rows_async<Dh>(shared + 2 * stage * kTile, k, n, s.keys, h, s.kv_stride, first_key);
        load_rows_async<Dh>(shared + (2 * stage + 1) * kTile, v, n, s.keys, h, s.kv_stride, first_key);
        mdt::cp_async_commit();
    };
    int64_t key_tiles = (s.keys + kKeyTile - 1) / kKeyTile;
    // The Q and dO tiles go through stage 1's K and V slots, which the loop fills only after the barrier below.
    uint16_t *q_tile = shared + 2 * kTile, *d_out_tile = q_tile + kTile;
    load_rows_async<Dh>(q_tile, q, n, s.queries, h, s.q_stride, static_cast<int64_t>(blockIdx.x) * kQueryTile);
    load_rows_async<Dh>(d_out_tile, d_out_bf16, n, s.queries, h, width,
                        static_cast<int64_t>(blockIdx.x) * kQueryTile);
    mdt::cp_async_commit();
    load_stage(0, 0);
    mdt::cp_async_wait<1>();
    __syncthreads();
    if (norm.q.rstd) {
        normalize_rows<Dh>(q_tile, norm_rows, norm.q, n, s.queries, static_cast<int64_t>(blockIdx.x) * kQueryTile);
        __syncthreads();
    }
    uint32_t qf[Dh / 16][4], dof[Dh / 16][4];
    tile_a_fragments<Dh>(qf, q_tile);
    tile_a_fragments<Dh>(dof, d_out_tile);
    __syncthreads();
    for (int64_t kt = 0; kt < key_tiles; kt++) {
        int stage = static_cast<int>(kt & 1);
        if (kt + 1 < key_tiles) {
            load_stage(stage ^ 1, (kt + 1) * kKeyTile);
            mdt::cp_async_wait<1>();
        } else {
            mdt::cp_async_wait<0>();
        }
        __syncthreads();
        if (norm.k.rstd) {
            normalize_rows<Dh>(shared + 2 * stage * kTile, norm_rows, norm.k, n, s.keys, kt * kKeyTile);
            __syncthreads();
        }
        const uint16_t *ks = shared + 2 * stage * kTile, *vs = ks + kTile;
        float p[kKeyTile / 8][4];
        multiply_a_tt<Dh>(p, qf, ks);
        int64_t key0 = kt * kKeyTile + 2 * t;
        MDT_UNROLL
        for (int j = 0; j < kKeyTile / 8; j++) {
            MDT_UNROLL
            for (int r = 0; r < 4; r++) {
                p[j][r] = key0 + 8 * j + r % 2 < s.keys ? exp2f(p[j][r] * s.scale_log2 - row_lse2[r / 2]) : 0.0f;
            }
        }
        float ds[kKeyTile / 8][4];
        multiply_a_tt<Dh>(ds, dof, vs);  // dP
        MDT_UNROLL
        for (int j = 0; j < kKeyTile / 8; j++) {
            MDT_UNROLL
            for (int r = 0; r < 4; r++) ds[j][r] = p[j][r] * (ds[j][r] - row_delta[r / 2]);
        }
        multiply_c_t<Dh>(dq_acc, ds, ks);
        __syncthreads();  // the stage is refilled next iteration
    }
    MDT_UNROLL
    for (int i = 0; i < 2; i++) {
        int64_t query = row + 8 * i;
        store_gradient_row<Dh>(dq, (n * s.queries + query) * s.q_stride + h * Dh, dq_acc, i, scale,
                               query < s.queries);
    }
}

template <int Dh>
int backward(mdt_stream_t stream, const uint16_t *q, const uint16_t *k, const uint16_t *v,
             const uint16_t *d_out_bf16, const float *lse, const float *delta, mdt::GradOut dq, mdt::GradOut dk,
             mdt::GradOut dv, const Shape &shape, float scale, const QkNorm &norm) {
    unsigned nh = static_cast<unsigned>(shape.samples * shape.heads);
    int status = MDT_LAUNCH(attention_key_gradients_bf16_kernel<Dh>,
                            dim3(static_cast<unsigned>((shape.keys + kKeyTile - 1) / kKeyTile), nh), kThreads,
                            2 * backward_stage_bytes<Dh>(), stream, q, k, v, d_out_bf16, lse, delta, dk, dv, shape,
                            scale, norm);
    if (status != MDT_SUCCESS) return status;
    return MDT_LAUNCH(attention_query_gradients_bf16_kernel<Dh>,
                      dim3(static_cast<unsigned>((shape.queries + kQueryTile - 1) / kQueryTile), nh), kThreads,
                      2 * 2 * tile_bytes<Dh>(), stream, q, k, v, d_out_bf16, lse, delta, dq, shape, scale, norm);
}

}  // namespace tc

int check_attention(const char *op, int64_t samples, int64_t queries, int64_t keys, int64_t heads,
                    int64_t head_dim) {
    MDT_REQUIRE(samples >= 0 && queries >= 0, "%s: negative size (samples %lld, queries %lld)", op,
                (long long)samples, (long long)queries);
    MDT_REQUIRE(keys >= 1 && heads >= 1 && head_dim >= 1, "%s: need keys, heads and head_dim >= 1, got %lld, %lld, %lld",
                op, (long long)keys, (long long)heads, (long long)head_dim);
    MDT_REQUIRE(head_dim <= kMaxHeadDim, "%s: head_dim %lld exceeds %d", op, (long long)head_dim, kMaxHeadDim);
    MDT_REQUIRE(samples * heads <= 65535, "%s: %lld (sample, head) pairs exceed the grid's y limit", op,
                (long long)(samples * heads));
    return MDT_SUCCESS;
}

unsigned tiles(int64_t count, int tile) { return static_cast<unsigned>((count + tile - 1) / tile); }

}  // namespace

namespace {

// q_stride, kv_stride: the row strides of q (and dq) and of k and v (and dk, dv); 0 for H·Dh (contiguous rows).
int check_strides(const char *op, int64_t heads, int64_t head_dim, int64_t &q_stride, int64_t &kv_stride) {
    int64_t width = heads * head_dim;
    if (q_stride == 0) q_stride = width;
    if (kv_stride == 0) kv_stride = width;
    // Rows stay 16-byte aligned for the cp.async loads: a stride of a multiple of 8 bf16.
    MDT_REQUIRE(q_stride >= width && kv_stride >= width && q_stride % 8 == 0 && kv_stride % 8 == 0,
                "%s: row strides %lld (q) and %lld (k, v) must be multiples of 8 and at least heads·head_dim %lld", op,
                (long long)q_stride, (long long)kv_stride, (long long)width);
    return MDT_SUCCESS;
}

template <class Out>
int forward_bf16(const char *op, mdt_stream_t stream, const uint16_t *q, const uint16_t *k, const uint16_t *v,
                 Out *out, float *lse, int64_t samples, int64_t queries, int64_t keys, int64_t heads,
                 int64_t head_dim, const tc::QkNorm &norm = tc::QkNorm{}, int64_t q_stride = 0,
                 int64_t kv_stride = 0) {
    if (int s = check_attention(op, samples, queries, keys, heads, head_dim)) return s;
    if (int s = check_strides(op, heads, head_dim, q_stride, kv_stride)) return s;
    MDT_REQUIRE(head_dim == 32 || head_dim == 64 || head_dim == 128,
                "%s: head_dim %lld is not supported by the tensor-core kernel (32, 64 or 128)", op,
                (long long)head_dim);
    MDT_REQUIRE((queries + tc::kQueryTile - 1) / tc::kQueryTile <= 2147483647LL,
                "%s: %lld queries exceed the grid's x limit", op, (long long)queries);
    if (samples * queries == 0) return MDT_SUCCESS;
    MDT_REQUIRE(q && k && v && out && lse, "%s: NULL tensor pointer", op);
    MDT_REQUIRE(reinterpret_cast<uintptr_t>(q) % 16 == 0 && reinterpret_cast<uintptr_t>(k) % 16 == 0 &&
                    reinterpret_cast<uintptr_t>(v) % 16 == 0,
                "%s: q, k and v must be 16-byte aligned", op);
    MDT_REQUIRE(reinterpret_cast<uintptr_t>(out) % 8 == 0, "%s: out must be 8-byte aligned (stored 8 bytes a lane)",
                op);
    tc::Shape shape{samples, queries, keys, heads,
                    static_cast<float>(tc::kLog2e / sqrt(static_cast<double>(head_dim))), q_stride, kv_stride};
    dim3 grid(tiles(queries, tc::kQueryTile), static_cast<unsigned>(samples * heads));
    switch (head_dim) {
        case 32:
            return MDT_LAUNCH((tc::attention_forward_bf16_kernel<32, Out>), grid, tc::kThreads,
                              tc::forward_shared_bytes<32>(), stream, q, k, v, out, lse, shape, norm);
        case 64:
            return MDT_LAUNCH((tc::attention_forward_bf16_kernel<64, Out>), grid, tc::kThreads,
                              tc::forward_shared_bytes<64>(), stream, q, k, v, out, lse, shape, norm);
        default:
            return MDT_LAUNCH((tc::attention_forward_bf16_kernel<128, Out>), grid, tc::kThreads,
                              tc::forward_shared_bytes<128>(), stream, q, k, v, out, lse, shape, norm);
    }
}

// bf16_grads: bit 0 dO, 1 dq, 2 dk, 3 dv (the _bf16grad entries; 0 for the others).
template <class Out>
int backward_bf16(const char *op, mdt_stream_t stream, const void *d_out, const uint16_t *q, const uint16_t *k,
                  const uint16_t *v, const Out *out, const float *lse, float *delta, uint16_t *d_out_bf16, void *dq,
                  void *dk, void *dv, int64_t samples, int64_t queries, int64_t keys, int64_t heads, int64_t head_dim,
                  int bf16_grads, const tc::QkNorm &norm = tc::QkNorm{}, int64_t q_stride = 0,
                  int64_t kv_stride = 0) {
    if (int s = check_attention(op, samples, queries, keys, heads, head_dim)) return s;
    if (int s = check_strides(op, heads, head_dim, q_stride, kv_stride)) return s;
    // With no queries dk and dv are zeroed whole: only contiguous rows.
    MDT_REQUIRE(queries > 0 || kv_stride == heads * head_dim, "%s: no queries with strided k and v gradients", op);
    MDT_REQUIRE(head_dim == 32 || head_dim == 64,
                "%s: head_dim %lld is not supported by the tensor-core backward (32 or 64)", op, (long long)head_dim);
    MDT_REQUIRE((queries + tc::kQueryTile - 1) / tc::kQueryTile <= 2147483647LL &&
                    (keys + tc::kKeyTile - 1) / tc::kKeyTile <= 2147483647LL,
                "%s: %lld queries or %lld keys exceed the grid's x limit", op, (long long)queries, (long long)keys);
    MDT_REQUIRE(mdt::valid_grads(bf16_grads, 4), "%s: bf16_grads %d names operands past dO, dq, dk and dv", op,
                bf16_grads);
    if (samples == 0) return MDT_SUCCESS;
    // A bf16 dO is the tensor cores' operand itself: no scratch is written, d_out_bf16 may be NULL.
    mdt::GradIn g = mdt::grad_in(d_out, bf16_grads, 0);
    if (g.bf16) d_out_bf16 = nullptr;
    const uint16_t *d_out_operand = g.bf16 ? static_cast<const uint16_t *>(d_out) : d_out_bf16;
    MDT_REQUIRE(d_out && q && k && v && out && lse && delta && d_out_operand && dq && dk && dv,
                "%s: NULL tensor pointer", op);
    MDT_REQUIRE(reinterpret_cast<uintptr_t>(q) % 16 == 0 && reinterpret_cast<uintptr_t>(k) % 16 == 0 &&
                    reinterpret_cast<uintptr_t>(v) % 16 == 0 && reinterpret_cast<uintptr_t>(d_out_operand) % 16 == 0,
                "%s: q, k, v and d_out_bf16 (a bf16 d_out itself) must be 16-byte aligned", op);
    MDT_REQUIRE(reinterpret_cast<uintptr_t>(dq) % 8 == 0 && reinterpret_cast<uintptr_t>(dk) % 8 == 0 &&
                    reinterpret_cast<uintptr_t>(dv) % 8 == 0,
                "%s: dq, dk and dv must be 8-byte aligned (gradients are stored 8 bytes a lane)", op);
    double scale = 1.0 / sqrt(static_cast<double>(head_dim));
    tc::Shape shape{samples, queries, keys, heads, static_cast<float>(tc::kLog2e * scale), q_stride, kv_stride};
    if (queries == 0) {
        size_t elements = static_cast<size_t>(samples * keys * heads * head_dim);
        if (int s = mdt_memset(dk, 0, elements * mdt::grad_bytes(bf16_grads, 2), stream)) return s;
        return mdt_memset(dv, 0, elements * mdt::grad_bytes(bf16_grads, 3), stream);
    }
    int status = MDT_LAUNCH(tc::attention_row_dot_bf16_kernel<Out>, mdt::blocks_for(samples * queries * heads, kThreads / 32),
                            kThreads, 0, stream, g, out, delta, d_out_bf16, shape, head_dim);
    if (status != MDT_SUCCESS) return status;
    mdt::GradOut gq = mdt::grad_out(dq, bf16_grads, 1), gk = mdt::grad_out(dk, bf16_grads, 2),
                 gv = mdt::grad_out(dv, bf16_grads, 3);
    if (head_dim == 32) {
        return tc::backward<32>(stream, q, k, v, d_out_operand, lse, delta, gq, gk, gv, shape,
                                static_cast<float>(scale), norm);
    }
    return tc::backward<64>(stream, q, k, v, d_out_operand, lse, delta, gq, gk, gv, shape, static_cast<float>(scale),
                            norm);
}

}  // namespace

extern "C" {

int mdt_attention_fwd(mdt_stream_t stream, const float *q, const float *k, const float *v, float *out, float *lse,
                      int64_t samples, int64_t queries, int64_t keys, int64_t heads, int64_t head_dim) {
    if (int s = check_attention("mdt_attention_fwd", samples, queries, keys, heads, head_dim)) return s;
    if (samples * queries == 0) return MDT_SUCCESS;
    MDT_REQUIRE(q && k && v && out && lse, "mdt_attention_fwd: NULL tensor pointer");
    Attention a{samples, queries, keys, heads, head_dim, static_cast<float>(1.0 / sqrt(static_cast<double>(head_dim)))};
    size_t shared = ((kQueryTile + kKeyTile) * head_dim + kKeyTile * key_stride(head_dim) + kQueryTile * kScoreStride) *
                    sizeof(float);
    return MDT_LAUNCH(attention_forward_kernel, dim3(tiles(queries, kQueryTile), static_cast<unsigned>(samples * heads)),
                      kThreads, shared, stream, q, k, v, out, lse, a);
}

int mdt_attention_bwd(mdt_stream_t stream, const float *d_out, const float *q, const float *k, const float *v,
                      const float *out, const float *lse, float *delta, float *dq, float *dk, float *dv,
                      int64_t samples, int64_t queries, int64_t keys, int64_t heads, int64_t head_dim) {
    if (int s = check_attention("mdt_attention_bwd", samples, queries, keys, heads, head_dim)) return s;
    if (samples == 0) return MDT_SUCCESS;
    MDT_REQUIRE(d_out && q && k && v && out && lse && delta && dq && dk && dv, "mdt_attention_bwd: NULL tensor pointer");
    Attention a{samples, queries, keys, heads, head_dim, static_cast<float>(1.0 / sqrt(static_cast<double>(head_dim)))};
    if (queries == 0) {
        size_t bytes = static_cast<size_t>(samples * keys * heads * head_dim) * sizeof(float);
        if (int s = mdt_memset(dk, 0, bytes, stream)) return s;
        return mdt_memset(dv, 0, bytes, stream);
    }
    int status = MDT_LAUNCH(attention_row_dot_kernel, mdt::blocks_for(samples * queries * heads, kThreads / 32),
                            kThreads, 0, stream, d_out, out, delta, a);
    if (status != MDT_SUCCESS) return status;
    size_t shared = (2 * kBackwardKeyTile * key_stride(head_dim) + 2 * kQueryTile * head_dim +
                     2 * kQueryTile * kBackwardScoreStride) * sizeof(float);
    status = MDT_LAUNCH(attention_key_gradients_kernel,
                        dim3(tiles(keys, kBackwardKeyTile), static_cast<unsigned>(samples * heads)), kThreads, shared,
                        stream, d_out, q, k, v, lse, delta, dk, dv, a);
    if (status != MDT_SUCCESS) return status;
    return MDT_LAUNCH(attention_query_gradients_kernel,
                      dim3(tiles(queries, kQueryTile), static_cast<unsigned>(samples * heads)), kThreads, shared,
                      stream, d_out, q, k, v, lse, delta, dq, a);
}

int mdt_attention_fwd_bf16(mdt_stream_t stream, const uint16_t *q, const uint16_t *k, const uint16_t *v, float *out,
                           float *lse, int64_t samples, int64_t queries, int64_t keys, int64_t heads,
                           int64_t head_dim) {
    return forward_bf16("mdt_attention_fwd_bf16", stream, q, k, v, out, lse, samples, queries, keys, heads, head_dim);
}

int mdt_attention_fwd_bf16_out(mdt_stream_t stream, const uint16_t *q, const uint16_t *k, const uint16_t *v,
                               uint16_t *out, float *lse, int64_t samples, int64_t queries, int64_t keys,
                               int64_t heads, int64_t head_dim) {
    return forward_bf16("mdt_attention_fwd_bf16_out", stream, q, k, v, out, lse, samples, queries, keys, heads,
                        head_dim);
}

int mdt_attention_bwd_bf16(mdt_stream_t stream, const float *d_out, const uint16_t *q, const uint16_t *k,
                           const uint16_t *v, const float *out, const float *lse, float *delta, uint16_t *d_out_bf16,
                           float *dq, float *dk, float *dv, int64_t samples, int64_t queries, int64_t keys,
                           int64_t heads, int64_t head_dim) {
    return backward_bf16("mdt_attention_bwd_bf16", stream, d_out, q, k, v, out, lse, delta, d_out_bf16, dq, dk, dv,
                         samples, queries, keys, heads, head_dim, 0);
}

int mdt_attention_bwd_bf16_out(mdt_stream_t stream, const float *d_out, const uint16_t *q, const uint16_t *k,
                               const uint16_t *v, const uint16_t *out, const float *lse, float *delta,
                               uint16_t *d_out_bf16, float *dq, float *dk, float *dv, int64_t samples,
                               int64_t queries, int64_t keys, int64_t heads, int64_t head_dim) {
    return backward_bf16("mdt_attention_bwd_bf16_out", stream, d_out, q, k, v, out, lse, delta, d_out_bf16, dq, dk,
                         dv, samples, queries, keys, heads, head_dim, 0);
}

int mdt_attention_bwd_bf16_bf16grad(mdt_stream_t stream, const void *d_out, const uint16_t *q, const uint16_t *k,
                                    const uint16_t *v, const float *out, const float *lse, float *delta,
                                    uint16_t *d_out_bf16, void *dq, void *dk, void *dv, int64_t samples,
                                    int64_t queries, int64_t keys, int64_t heads, int64_t head_dim, int bf16_grads) {
    return backward_bf16("mdt_attention_bwd_bf16_bf16grad", stream, d_out, q, k, v, out, lse, delta, d_out_bf16, dq,
                         dk, dv, samples, queries, keys, heads, head_dim, bf16_grads);
}

int mdt_attention_bwd_bf16_out_bf16grad(mdt_stream_t stream, const void *d_out, const uint16_t *q, const uint16_t *k,
                                        const uint16_t *v, const uint16_t *out, const float *lse, float *delta,
                                        uint16_t *d_out_bf16, void *dq, void *dk, void *dv, int64_t samples,
                                        int64_t queries, int64_t keys, int64_t heads, int64_t head_dim,
                                        int bf16_grads) {
    return backward_bf16("mdt_attention_bwd_bf16_out_bf16grad", stream, d_out, q, k, v, out, lse, delta, d_out_bf16,
                         dq, dk, dv, samples, queries, keys, heads, head_dim, bf16_grads);
}

int mdt_attention_fwd_bf16_out_qknorm(mdt_stream_t stream, const uint16_t *q, const uint16_t *k, const uint16_t *v,
                                      const float *q_center, const float *q_rstd, const float *k_center,
                                      const float *k_rstd, uint16_t *out, float *lse, int64_t samples,
                                      int64_t queries, int64_t keys, int64_t heads, int64_t head_dim,
                                      int64_t q_stride, int64_t kv_stride) {
    const char *op = "mdt_attention_fwd_bf16_out_qknorm";
    MDT_REQUIRE(samples * queries == 0 || (q_center && q_rstd && k_center && k_rstd),
                "%s: NULL QK-norm statistics pointer", op);
    return forward_bf16(op, stream, q, k, v, out, lse, samples, queries, keys, heads, head_dim,
                        tc::QkNorm{{q_center, q_rstd}, {k_center, k_rstd}}, q_stride, kv_stride);
}

int mdt_attention_bwd_bf16_out_bf16grad_qknorm(mdt_stream_t stream, const void *d_out, const uint16_t *q,
                                               const uint16_t *k, const uint16_t *v, const float *q_center,
                                               const float *q_rstd, const float *k_center, const float *k_rstd,
                                               const uint16_t *out, const float *lse, float *delta,
                                               uint16_t *d_out_bf16, void *dq, void *dk, void *dv, int64_t samples,
                                               int64_t queries, int64_t keys, int64_t heads, int64_t head_dim,
                                               int64_t q_stride, int64_t kv_stride, int bf16_grads) {
    const char *op = "mdt_attention_bwd_bf16_out_bf16grad_qknorm";
    MDT_REQUIRE(samples == 0 || (q_center && q_rstd && k_center && k_rstd), "%s: NULL QK-norm statistics pointer",
                op);
    return backward_bf16(op, stream, d_out, q, k, v, out, lse, delta, d_out_bf16, dq, dk, dv, samples, queries, keys,
                         heads, head_dim, bf16_grads, tc::QkNorm{{q_center, q_rstd}, {k_center, k_rstd}}, q_stride,
                         kv_stride);
}

}  // extern "C"
