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
#include "common.cuh"

#include <math.h>

namespace {

constexpr int kThreads = 128;
constexpr int kQueryTile = 16;
constexpr int kKeyTile = 32;
constexpr int kBackwardKeyTile = 16;
constexpr int kMaxHeadDim = 128;
constexpr int kColumnsPerThread = kMaxHeadDim / 8;  // 8 threads share a row of Dh columns

struct Attention {
    int64_t samples, queries, keys, heads, head_dim;
    float scale;
    __device__ int64_t width() const { return heads * head_dim; }
};

/**
 * Copies rows [first, first + count) of head h of sample n from a [N, T, H·Dh] tensor into tile[rows][Dh],
 * times {@code factor}; rows past count or past the tensor's T are zero.
 */
__device__ void load_tile(const float *source, int64_t n, int64_t tokens, int64_t h, const Attention &a,
                          int64_t first, int rows, float factor, float *tile) {
    int64_t dh = a.head_dim, width = a.width();
    for (int64_t e = threadIdx.x; e < rows * dh; e += blockDim.x) {
        int64_t r = e / dh, d = e % dh, token = first + r;
        tile[e] = token < tokens ? source[(n * tokens + token) * width + h * dh + d] * factor : 0.0f;
    }
}

__global__ void attention_forward_kernel(const float *q, const float *k, const float *v, float *out, float *lse,
                                         Attention a) {
    MDT_DYNAMIC_SHARED(float, shared);
    __shared__ float row_max[kQueryTile], row_sum[kQueryTile], row_rescale[kQueryTile];
    int64_t dh = a.head_dim, nh = blockIdx.y, n = nh / a.heads, h = nh % a.heads;
    int64_t first_query = static_cast<int64_t>(blockIdx.x) * kQueryTile;
    float *q_tile = shared, *k_tile = q_tile + kQueryTile * dh, *v_tile = k_tile + kKeyTile * dh;
    float *p_tile = v_tile + kKeyTile * dh;  // [kQueryTile][kKeyTile]
    load_tile(q, n, a.queries, h, a, first_query, kQueryTile, a.scale, q_tile);
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
        load_tile(k, n, a.keys, h, a, first_key, kKeyTile, 1.0f, k_tile);
        load_tile(v, n, a.keys, h, a, first_key, kKeyTile, 1.0f, v_tile);
        __syncthreads();
        for (int e = threadIdx.x; e < kQueryTile * kKeyTile; e += blockDim.x) {
            int i = e / kKeyTile, j = e % kKeyTile;
            float score = 0.0f;
            for (int64_t d = 0; d < dh; d++) score = fmaf(q_tile[i * dh + d], k_tile[j * dh + d], score);
            p_tile[e] = score;
        }
        __syncthreads();
        if (threadIdx.x < kQueryTile) {
            float *scores = p_tile + threadIdx.x * kKeyTile;
            float old_max = row_max[threadIdx.x], new_max = old_max;
            for (int j = 0; j < key_count; j++) new_max = fmaxf(new_max, scores[j]);
            float sum = 0.0f;
            for (int j = 0; j < kKeyTile; j++) {
                float p = j < key_count ? expf(scores[j] - new_max) : 0.0f;
                scores[j] = p;
                sum += p;
            }
            float rescale = expf(old_max - new_max);
            row_rescale[threadIdx.x] = rescale;
            row_sum[threadIdx.x] = fmaf(row_sum[threadIdx.x], rescale, sum);
            row_max[threadIdx.x] = new_max;
        }
        __syncthreads();
        float rescale = row_rescale[row];
        const float *p_row = p_tile + row * kKeyTile;
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
 * For a query tile (q_tile, dO_tile, lse and D of its rows) against a key tile (k_tile, v_tile): writes
 * P [kQueryTile][kBackwardKeyTile] and dS = P∘(dO·Vᵀ − D) into p_tile and ds_tile; zero outside the valid rows
 * and keys.
 */
__device__ void probabilities_and_score_gradients(const float *q_tile, const float *do_tile, const float *k_tile,
                                                  const float *v_tile, const float *row_lse, const float *row_delta,
                                                  int query_count, int key_count, const Attention &a, float *p_tile,
                                                  float *ds_tile) {
    int64_t dh = a.head_dim;
    for (int e = threadIdx.x; e < kQueryTile * kBackwardKeyTile; e += blockDim.x) {
        int i = e / kBackwardKeyTile, j = e % kBackwardKeyTile;
        if (i >= query_count || j >= key_count) {
            p_tile[e] = 0.0f;
            ds_tile[e] = 0.0f;
            continue;
        }
        float score = 0.0f, dp = 0.0f;
        for (int64_t d = 0; d < dh; d++) {
            score = fmaf(q_tile[i * dh + d], k_tile[j * dh + d], score);
            dp = fmaf(do_tile[i * dh + d], v_tile[j * dh + d], dp);
        }
        float p = expf(score * a.scale - row_lse[i]);
        p_tile[e] = p;
        ds_tile[e] = p * (dp - row_delta[i]);
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
    __shared__ float row_lse[kQueryTile], row_delta[kQueryTile];
    int64_t dh = a.head_dim, nh = blockIdx.y, n = nh / a.heads, h = nh % a.heads;
    int64_t first_key = static_cast<int64_t>(blockIdx.x) * kBackwardKeyTile;
    int key_count = static_cast<int>(a.keys - first_key < kBackwardKeyTile ? a.keys - first_key : kBackwardKeyTile);
    float *k_tile = shared, *v_tile = k_tile + kBackwardKeyTile * dh, *q_tile = v_tile + kBackwardKeyTile * dh;
    float *do_tile = q_tile + kQueryTile * dh, *p_tile = do_tile + kQueryTile * dh;
    float *ds_tile = p_tile + kQueryTile * kBackwardKeyTile;
    load_tile(k, n, a.keys, h, a, first_key, kBackwardKeyTile, 1.0f, k_tile);
    load_tile(v, n, a.keys, h, a, first_key, kBackwardKeyTile, 1.0f, v_tile);
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
        load_tile(q, n, a.queries, h, a, first_query, kQueryTile, 1.0f, q_tile);
        load_tile(d_out, n, a.queries, h, a, first_query, kQueryTile, 1.0f, do_tile);
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
                    dv_value = fmaf(p_tile[r * kBackwardKeyTile + key], do_tile[r * dh + d], dv_value);
                    dk_value = fmaf(ds_tile[r * kBackwardKeyTile + key], q_tile[r * dh + d], dk_value);
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
    __shared__ float row_lse[kQueryTile], row_delta[kQueryTile];
    int64_t dh = a.head_dim, nh = blockIdx.y, n = nh / a.heads, h = nh % a.heads;
    int64_t first_query = static_cast<int64_t>(blockIdx.x) * kQueryTile;
    int query_count = static_cast<int>(a.queries - first_query < kQueryTile ? a.queries - first_query : kQueryTile);
    float *q_tile = shared, *do_tile = q_tile + kQueryTile * dh, *k_tile = do_tile + kQueryTile * dh;
    float *v_tile = k_tile + kBackwardKeyTile * dh, *p_tile = v_tile + kBackwardKeyTile * dh;
    float *ds_tile = p_tile + kQueryTile * kBackwardKeyTile;
    load_tile(q, n, a.queries, h, a, first_query, kQueryTile, 1.0f, q_tile);
    load_tile(d_out, n, a.queries, h, a, first_query, kQueryTile, 1.0f, do_tile);
    load_rows(lse, nh, first_query, query_count, a.queries, row_lse);
    load_rows(delta, nh, first_query, query_count, a.queries, row_delta);
    int row = threadIdx.x / 8, column0 = threadIdx.x % 8;
    float accumulator[kColumnsPerThread];
MDT_UNROLL
    for (int i = 0; i < kColumnsPerThread; i++) accumulator[i] = 0.0f;
    for (int64_t first_key = 0; first_key < a.keys; first_key += kBackwardKeyTile) {
        int key_count = static_cast<int>(a.keys - first_key < kBackwardKeyTile ? a.keys - first_key : kBackwardKeyTile);
        __syncthreads();
        load_tile(k, n, a.keys, h, a, first_key, kBackwardKeyTile, 1.0f, k_tile);
        load_tile(v, n, a.keys, h, a, first_key, kBackwardKeyTile, 1.0f, v_tile);
        __syncthreads();
        probabilities_and_score_gradients(q_tile, do_tile, k_tile, v_tile, row_lse, row_delta, query_count, key_count,
                                          a, p_tile, ds_tile);
        __syncthreads();
MDT_UNROLL
        for (int i = 0; i < kColumnsPerThread; i++) {
            int64_t d = column0 + 8 * i;
            if (d < dh) {
                float value = accumulator[i];
                for (int j = 0; j < key_count; j++) value = fmaf(ds_tile[row * kBackwardKeyTile + j], k_tile[j * dh + d], value);
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

extern "C" {

int mdt_attention_fwd(mdt_stream_t stream, const float *q, const float *k, const float *v, float *out, float *lse,
                      int64_t samples, int64_t queries, int64_t keys, int64_t heads, int64_t head_dim) {
    if (int s = check_attention("mdt_attention_fwd", samples, queries, keys, heads, head_dim)) return s;
    if (samples * queries == 0) return MDT_SUCCESS;
    MDT_REQUIRE(q && k && v && out && lse, "mdt_attention_fwd: NULL tensor pointer");
    Attention a{samples, queries, keys, heads, head_dim, static_cast<float>(1.0 / sqrt(static_cast<double>(head_dim)))};
    size_t shared = ((kQueryTile + 2 * kKeyTile) * head_dim + kQueryTile * kKeyTile) * sizeof(float);
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
    size_t shared = (2 * (kBackwardKeyTile + kQueryTile) * head_dim + 2 * kQueryTile * kBackwardKeyTile) * sizeof(float);
    status = MDT_LAUNCH(attention_key_gradients_kernel,
                        dim3(tiles(keys, kBackwardKeyTile), static_cast<unsigned>(samples * heads)), kThreads, shared,
                        stream, d_out, q, k, v, lse, delta, dk, dv, a);
    if (status != MDT_SUCCESS) return status;
    return MDT_LAUNCH(attention_query_gradients_kernel,
                      dim3(tiles(queries, kQueryTile), static_cast<unsigned>(samples * heads)), kThreads, shared,
                      stream, d_out, q, k, v, lse, delta, dq, a);
}

}  // extern "C"
