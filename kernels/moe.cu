// Expert-choice MoE routing (CpuMoe semantics): top-k tokens per (sample, expert), the expert-major gather of the
// routed rows (dispatch), the weighted scatter back to tokens (combine), and their backwards.
// Top-k: one block per (n, e). Each token's probability becomes one 64-bit key that orders candidates totally as
// the CPU does: the float's order-preserving integer (Float.compare order, NaN canonical) in the high half, the
// complemented token index in the low half (the lower index wins a tie). The block sorts the T keys (padded to
// a power of two with the smallest key) descending by a bitonic network in shared memory and writes the first k:
// indices bit-identical to the CPU's, gates the raw probabilities. T log²T compare-exchanges per (n, e), T ≤ 4096.
// Top-k backward: one thread per routing slot (n, e, j) adds its gate gradient into dProbs[n, token, e]: the k
// tokens of one (n, e) are distinct, so no two threads share an element (no atomics, the CPU's bits), and
// N·E·k threads fill a GPU where N·E (2,048 at N=256, E=8: 16 blocks) could not. Dispatch: one block per routed row copies D floats (8·E·N·k·D bytes).
// Token→slot map (mdt_moe_token_slots), built once per routing (CudaMoe: by the top-k, kept with its indices) and
// read by combine and the dispatch backward: per sample, CSR offsets [T+1] and slots [E·k], each token's slots
// s = e·k + j ascending. One block per sample: count per token (integer atomics on the offsets), an exclusive scan,
// a fill, then each token's short list sorted by slot, so the map depends on the indices only. Cost per sample:
// 2·E·k index reads, T+1 offsets scanned, E·k slots written; N blocks of 256 threads.
// Combine and dispatch backward: one block per (n, token) row (grid-stride) reads the token's two offsets and its
// c slots (c = capacity on average: the experts that chose it), then each thread owns columns and walks them in
// order — the CPU's fixed summation order (first term a product, then fused multiply-adds; the backward adds to
// dx), so results are deterministic with no float atomics and bit-equal to the CPU's. Cost: N·T blocks of O(c + c·D)
// (was O(E·k) slot reads per token, a scan of the sample's whole routing: O(T²) per sample), 2·E·N·k·D FLOPs
// (combine) or E·N·k·D (dispatch backward).
// Combine backward: one block per routed row writes dH = gate·dOut[token] and dGates = dOut[token]·h (a fixed
// order block reduction): 3·E·N·k·D FLOPs, 12·E·N·k·D bytes.
// The _bf16grad backwards take the gradient of a bf16 value as bf16 (a bf16 graph): the dispatch backward reads a
// bf16 dOut (the routed rows' gradient) widened exactly, the combine backward writes dH rounded once to nearest even
// (mdt::GradOut); dx and dGates stay f32. 2 bytes per element less each. In a bf16 graph the combine stores its
// output bf16 (the f32 sum rounded once, as autocast's one-hot einsum stores it) and its backward reads that
// value's bf16 gradient (mdt::GradIn): the residual norm after the MoE reads 2 bytes per element, not 4, both ways.
// Routed rows (mdt_moe_routed_rows), built with the map: the row of x [N·T, D] behind each routed row [E, N·k],
// for the experts' first product, which reads its A rows straight from x through them (gemm.cu's gathered entries)
// instead of a dispatched [E, N·k, D] copy; 4·E·N·k bytes written once per routing.
// Index checks (no host round trip): every kernel that reads an index skips one outside [0, T) and reports it into
// the caller's error record (microdit.h); combine and the dispatch backward read no index: the map's builder checks
// them, under the code of the op the map is built for.
#include "common.cuh"
#include "grad_operand.cuh"

namespace {

constexpr int kThreads = 128;
constexpr int kSortThreads = 256;
constexpr int kMapThreads = 256;
constexpr int64_t kMaxSortedTokens = 4096;

__device__ __forceinline__ long long routing_key(float value, int token) {
    int bits = value != value ? 0x7fc00000 : __float_as_int(value);
    int ordered = bits ^ ((bits >> 31) & 0x7fffffff);
    unsigned long long high = static_cast<unsigned long long>(static_cast<unsigned>(ordered)) << 32;
    return static_cast<long long>(high | static_cast<unsigned>(~token));
}

__global__ void topk_kernel(const float *probs, float *gates, int32_t *indices, int64_t tokens, int64_t experts,
                            int64_t k, int64_t padded) {
    MDT_DYNAMIC_SHARED(long long, keys);
    int64_t item = blockIdx.x, n = item / experts, e = item % experts;
    const float *column = probs + n * tokens * experts + e;
    for (int64_t t = threadIdx.x; t < padded; t += blockDim.x) {
        keys[t] = t < tokens ? routing_key(column[t * experts], static_cast<int>(t)) : (-0x7fffffffffffffffLL - 1);
    }
    __syncthreads();
    for (int64_t size = 2; size <= padded; size <<= 1) {
        for (int64_t stride = size / 2; stride > 0; stride >>= 1) {
            for (int64_t i = threadIdx.x; i < padded; i += blockDim.x) {
                int64_t j = i ^ stride;
                if (j > i) {
                    long long a = keys[i], b = keys[j];
                    bool descending = (i & size) == 0;
                    if (descending ? a < b : a > b) {
                        keys[i] = b;
                        keys[j] = a;
                    }
                }
            }
            __syncthreads();
        }
    }
    for (int64_t j = threadIdx.x; j < k; j += blockDim.x) {
        int token = ~static_cast<int>(keys[j] & 0xffffffffLL);
        indices[item * k + j] = token;
        gates[item * k + j] = column[static_cast<int64_t>(token) * experts];
    }
}

/** Whether a routing index is a token of the sample; reports it as slot (n, e, j) of op {@code code} if not. */
__device__ __forceinline__ bool valid_token(int32_t token, int64_t tokens, int32_t *error, int code, int64_t n,
                                            int64_t e, int64_t j) {
    if (token >= 0 && token < tokens) return true;
    mdt::report_error(error, code, token, tokens, n, e, j);
    return false;
}

__global__ void topk_backward_kernel(const float *d_gates, const int32_t *indices, float *d_probs, int64_t samples,
                                     int64_t tokens, int64_t experts, int64_t k, int32_t *error) {
    int64_t count = samples * experts * k;
    for (int64_t slot = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; slot < count;
         slot += (int64_t)gridDim.x * blockDim.x) {
        int64_t item = slot / k, n = item / experts, e = item % experts, j = slot % k;
        int32_t token = indices[slot];
        if (!valid_token(token, tokens, error, MDT_CHECK_MOE_TOPK_BWD, n, e, j)) continue;
        d_probs[(n * tokens + token) * experts + e] += d_gates[slot];
    }
}

/** Row of the expert-major [E, N·k, D] layout for routing slot (n, s = e·k + j). */
__device__ __forceinline__ int64_t routed_row(int64_t n, int64_t slot, int64_t samples, int64_t k) {
    int64_t e = slot / k, j = slot % k;
    return (e * samples + n) * k + j;
}

// Out: float, or uint16_t for bf16 rows (rounded to nearest even) that only the experts' bf16 products read.
template <class Out>
__global__ void dispatch_kernel(const float *x, const int32_t *indices, Out *out, int64_t samples, int64_t tokens,
                                int64_t experts, int64_t k, int64_t dim, int32_t *error) {
    int64_t row = blockIdx.x, e = row / (samples * k), within = row % (samples * k);
    int64_t n = within / k, j = within % k;
    int32_t token = indices[(n * experts + e) * k + j];
    if (token < 0 || token >= tokens) {  // the whole block leaves
        if (threadIdx.x == 0) mdt::report_error(error, MDT_CHECK_MOE_DISPATCH_FWD, token, tokens, n, e, j);
        return;
    }
    const float *source = x + (n * tokens + token) * dim;
    for (int64_t c = threadIdx.x; c < dim; c += blockDim.x) mdt::store_out(out, row * dim + c, source[c]);
}

/**
 * The routed rows as row numbers of x [N·T, D] (mdt_moe_routed_rows): rows[e·N·k + n·k + j] = n·T + indices[n,e,j],
 * -1 (a zero row to the gathered GEMM) for an index outside [0, T), reported under {@code check}. One thread per row.
 */
__global__ void routed_rows_kernel(const int32_t *indices, int32_t *rows, int64_t samples, int64_t tokens,
                                   int64_t experts, int64_t k, int check, int32_t *error) {
    int64_t count = experts * samples * k;
    for (int64_t row = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; row < count;
         row += (int64_t)gridDim.x * blockDim.x) {
        int64_t e = row / (samples * k), within = row % (samples * k), n = within / k, j = within % k;
        int32_t token = indices[(n * experts + e) * k + j];
        bool valid = token >= 0 && token < tokens;
        if (!valid) mdt::report_error(error, check, token, tokens, n, e, j);
        rows[row] = valid ? static_cast<int32_t>(n * tokens + token) : -1;
    }
}

/**
 * Exclusive prefix sum of one int per thread over the block (blockDim.x a multiple of 32); {@code total} gets the
 * block's sum on every thread. {@code warp_totals} holds 32 ints of shared memory, free again on return.
 */
__device__ int block_exclusive_scan(int value, int *warp_totals, int &total) {
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    int inclusive = value;
    for (int offset = 1; offset < 32; offset <<= 1) {
        int lower = __shfl_up_sync(mdt::kFullMask, inclusive, offset);
        if (lane >= offset) inclusive += lower;
    }
    if (lane == 31) warp_totals[warp] = inclusive;
    __syncthreads();
    int before = 0;
    total = 0;
    for (int w = 0; w < warps; w++) {
        if (w < warp) before += warp_totals[w];
        total += warp_totals[w];
    }
    __syncthreads();
    return before + inclusive - value;
}

/**
 * The token→slot map of one sample per block (grid-stride over samples): token t's slots, ascending, in
 * slots[offsets[t], offsets[t+1]). Offsets double as the counters: token t counts into offsets[t+1], an in-place
 * exclusive scan turns that into t's start, and the fill advances it to t's end, which is t+1's start. The fill's
 * order within a token follows the atomics' timing, so each token's short list (at most E entries for a top-k's
 * indices) is then sorted by one thread: the map depends on the indices only.
 */
__global__ void token_slots_kernel(const int32_t *indices, int32_t *offsets, int32_t *slots, int64_t samples,
                                   int64_t tokens, int64_t experts, int64_t k, int check, int32_t *error) {
    MDT_SHARED(int, warp_totals, [32]);
    int64_t count = experts * k;
    for (int64_t n = blockIdx.x; n < samples; n += gridDim.x) {
        const int32_t *sample = indices + n * count;
        int32_t *offset = offsets + n * (tokens + 1), *slot = slots + n * count;
        for (int64_t t = threadIdx.x; t <= tokens; t += blockDim.x) offset[t] = 0;
        __syncthreads();
        for (int64_t s = threadIdx.x; s < count; s += blockDim.x) {
            int32_t token = sample[s];
            if (valid_token(token, tokens, error, check, n, s / k, s % k)) atomicAdd(&offset[token + 1], 1);
        }
        __syncthreads();
        int carry = 0;
        for (int64_t base = 0; base < tokens; base += blockDim.x) {
            int64_t t = base + threadIdx.x;
            int chunk, before = block_exclusive_scan(t < tokens ? offset[t + 1] : 0, warp_totals, chunk);
            if (t < tokens) offset[t + 1] = carry + before;
            carry += chunk;
        }
        __syncthreads();
        for (int64_t s = threadIdx.x; s < count; s += blockDim.x) {
            int32_t token = sample[s];
            if (token >= 0 && token < tokens) slot[atomicAdd(&offset[token + 1], 1)] = static_cast<int32_t>(s);
        }
        __syncthreads();
        for (int64_t t = threadIdx.x; t < tokens; t += blockDim.x) {
            int32_t begin = offset[t], end = offset[t + 1];
            for (int32_t i = begin + 1; i < end; i++) {
                int32_t value = slot[i], j = i;
                for (; j > begin && slot[j - 1] > value; j--) slot[j] = slot[j - 1];
                slot[j] = value;
            }
        }
        __syncthreads();  // the next sample reuses warp_totals only after every thread left this one
    }
}

/**
 * Rows [n, token] (grid-stride): combine sums gate·h over the token's slots, the first term a product, then fused
 * multiply-adds (CpuMoe's order, since the map lists slots ascending); the dispatch backward adds the routed
 * gradient rows to dx in the same order. A map entry outside the sample's slots is skipped, so a map not made by
 * mdt_moe_token_slots can make no access outside the sample's rows.
 */
// Routed: the rows' type, float (gradients; f32 expert outputs) or uint16_t (bf16 expert outputs, widened exactly).
// Out: float, or uint16_t for combine's bf16 output (the f32 sum rounded once at the store).
template <class Routed, class Out>
__global__ void token_rows_kernel(const Routed *routed, const float *gates, const int32_t *offsets,
                                  const int32_t *slots, Out *out, int64_t samples, int64_t tokens, int64_t experts,
                                  int64_t k, int64_t dim, int combine) {
    int64_t count = experts * k;
    for (int64_t row = blockIdx.x; row < samples * tokens; row += gridDim.x) {
        int64_t n = row / tokens, token = row % tokens;
        const int32_t *offset = offsets + n * (tokens + 1) + token, *list = slots + n * count;
        int64_t begin = offset[0] < 0 ? 0 : offset[0], end = offset[1] > count ? count : offset[1];
        Out *target = out + row * dim;
        for (int64_t c = threadIdx.x; c < dim; c += blockDim.x) {
            float value = combine ? 0.0f : mdt::load_as_float(target, c);
            bool first = true;
            for (int64_t i = begin; i < end; i++) {
                int32_t s = list[i];
                if (s < 0 || s >= count) continue;
                float h = mdt::load_as_float(routed, routed_row(n, s, samples, k) * dim + c);
                if (combine) {
                    float gate = gates[n * count + s];
                    value = first ? gate * h : fmaf(h, gate, value);
                } else {
                    value += h;
                }
                first = false;
            }
            mdt::store_out(target, c, value);
        }
    }
}

template <class H>
__global__ void combine_backward_kernel(mdt::GradIn d_out, const H *h, const float *gates,
                                        const int32_t *indices, mdt::GradOut d_h, float *d_gates, int64_t samples,
                                        int64_t tokens, int64_t experts, int64_t k, int64_t dim, int32_t *error) {
    MDT_SHARED(float, scratch, [32]);
    int64_t row = blockIdx.x, e = row / (samples * k), within = row % (samples * k);
    int64_t n = within / k, j = within % k, slot = (n * experts + e) * k + j;
    int32_t token = indices[slot];
    if (token < 0 || token >= tokens) {  // the whole block leaves, before the block reduction's barriers
        if (threadIdx.x == 0) mdt::report_error(error, MDT_CHECK_MOE_COMBINE_BWD, token, tokens, n, e, j);
        return;
    }
    int64_t base = (n * tokens + token) * dim;
    float gate = gates[slot], dot = 0.0f;
    for (int64_t c = threadIdx.x; c < dim; c += blockDim.x) {
        float g = d_out[base + c];
        d_h.store(row * dim + c, gate * g);
        dot = fmaf(g, mdt::load_as_float(h, row * dim + c), dot);
    }
    dot = mdt::block_sum(dot, scratch);
    if (threadIdx.x == 0) d_gates[slot] = dot;
}

int check_routing(const char *op, int64_t samples, int64_t tokens, int64_t experts, int64_t k, int64_t dim) {
    MDT_REQUIRE(samples >= 0 && tokens >= 0 && experts >= 0 && k >= 0 && dim >= 0,
                "%s: negative size (samples %lld, tokens %lld, experts %lld, k %lld, dim %lld)", op,
                (long long)samples, (long long)tokens, (long long)experts, (long long)k, (long long)dim);
    MDT_REQUIRE(k <= tokens || samples * experts == 0, "%s: k %lld exceeds the %lld tokens", op, (long long)k,
                (long long)tokens);
    MDT_REQUIRE(samples * tokens <= 2147483647 && experts * samples * k <= 2147483647, "%s: rows exceed the grid", op);
    return MDT_SUCCESS;
}

/** Blocks of a grid-stride launch over {@code items} (rows or samples), one item per block up to the grid cap. */
unsigned item_blocks(int64_t items) {
    int64_t cap = mdt::max_grid_blocks();
    return static_cast<unsigned>(items < cap ? items : cap);
}

/** Both dispatch entries (f32 or bf16 rows). */
template <class Out>
int dispatch(const char *op, mdt_stream_t stream, const float *x, const int32_t *indices, Out *out, int64_t samples,
             int64_t tokens, int64_t experts, int64_t k, int64_t dim, int32_t *error) {
    if (int s = check_routing(op, samples, tokens, experts, k, dim)) return s;
    if (experts * samples * k * dim == 0) return MDT_SUCCESS;
    MDT_REQUIRE(x && indices && out, "%s: NULL tensor pointer", op);
    return MDT_LAUNCH(dispatch_kernel<Out>, static_cast<unsigned>(experts * samples * k), kThreads, 0, stream, x,
                      indices, out, samples, tokens, experts, k, dim, error);
}

/** Every combine entry (f32 or bf16 expert outputs h, f32 or bf16 out). */
template <class H, class Out>
int combine(const char *op, mdt_stream_t stream, const H *h, const float *gates, const int32_t *offsets,
            const int32_t *slots, Out *out, int64_t samples, int64_t tokens, int64_t experts, int64_t k,
            int64_t dim) {
    if (int s = check_routing(op, samples, tokens, experts, k, dim)) return s;
    if (samples * tokens * dim == 0) return MDT_SUCCESS;
    MDT_REQUIRE(out && offsets && (experts * k == 0 || (h && gates && slots)), "%s: NULL tensor pointer", op);
    return MDT_LAUNCH((token_rows_kernel<H, Out>), item_blocks(samples * tokens), kThreads, 0, stream, h, gates,
                      offsets, slots, out, samples, tokens, experts, k, dim, 1);
}

/** Every combine backward entry (f32 or bf16 expert outputs h); bf16_grads: bit 0 dH, bit 1 dOut. */
template <class H>
int combine_backward(const char *op, mdt_stream_t stream, const void *d_out, const H *h, const float *gates,
                     const int32_t *indices, void *d_h, float *d_gates, int64_t samples, int64_t tokens,
                     int64_t experts, int64_t k, int64_t dim, int bf16_grads, int32_t *error) {
    if (int s = check_routing(op, samples, tokens, experts, k, dim)) return s;
    MDT_REQUIRE(mdt::valid_grads(bf16_grads, 2), "%s: bf16_grads %d names operands past dH and dOut", op,
                bf16_grads);
    if (experts * samples * k == 0) return MDT_SUCCESS;
    MDT_REQUIRE(d_out && h && gates && indices && d_h && d_gates, "%s: NULL tensor pointer", op);
    return MDT_LAUNCH(combine_backward_kernel<H>, static_cast<unsigned>(experts * samples * k), kThreads, 0, stream,
                      mdt::grad_in(d_out, bf16_grads, 1), h, gates, indices, mdt::grad_out(d_h, bf16_grads, 0),
                      d_gates, samples, tokens, experts, k, dim, error);
}

/** Both dispatch backward entries; bf16_grads: bit 0 dOut, read by the bf16 instance of the token-rows kernel. */
int dispatch_backward(const char *op, mdt_stream_t stream, const void *d_out, const int32_t *offsets,
                      const int32_t *slots, float *dx, int64_t samples, int64_t tokens, int64_t experts, int64_t k,
                      int64_t dim, int bf16_grads) {
    if (int s = check_routing(op, samples, tokens, experts, k, dim)) return s;
    MDT_REQUIRE(mdt::valid_grads(bf16_grads, 1), "%s: bf16_grads %d names operands past dOut", op, bf16_grads);
    if (samples * tokens * dim == 0) return MDT_SUCCESS;
    MDT_REQUIRE(dx && offsets && (experts * k == 0 || (d_out && slots)), "%s: NULL tensor pointer", op);
    if (mdt::bf16_grad(bf16_grads, 0)) {
        return MDT_LAUNCH((token_rows_kernel<uint16_t, float>), item_blocks(samples * tokens), kThreads, 0, stream,
                          static_cast<const uint16_t *>(d_out), nullptr, offsets, slots, dx, samples, tokens, experts,
                          k, dim, 0);
    }
    return MDT_LAUNCH((token_rows_kernel<float, float>), item_blocks(samples * tokens), kThreads, 0, stream,
                      static_cast<const float *>(d_out), nullptr, offsets, slots, dx, samples, tokens, experts, k, dim,
                      0);
}

}  // namespace

extern "C" {

int mdt_moe_topk_fwd(mdt_stream_t stream, const float *probs, float *gates, int32_t *indices, int64_t samples,
                     int64_t tokens, int64_t experts, int64_t k) {
    if (int s = check_routing("mdt_moe_topk_fwd", samples, tokens, experts, k, 0)) return s;
    MDT_REQUIRE(k >= 1, "mdt_moe_topk_fwd: k must be at least 1, got %lld", (long long)k);
    MDT_REQUIRE(tokens <= kMaxSortedTokens, "mdt_moe_topk_fwd: %lld tokens exceed the %lld one block sorts",
                (long long)tokens, (long long)kMaxSortedTokens);
    if (samples * experts == 0) return MDT_SUCCESS;
    MDT_REQUIRE(probs && gates && indices, "mdt_moe_topk_fwd: NULL tensor pointer");
    int64_t padded = 1;
    while (padded < tokens) padded <<= 1;
    return MDT_LAUNCH(topk_kernel, static_cast<unsigned>(samples * experts), kSortThreads,
                      static_cast<size_t>(padded) * sizeof(long long), stream, probs, gates, indices, tokens, experts,
                      k, padded);
}

int mdt_moe_topk_bwd(mdt_stream_t stream, const float *d_gates, const int32_t *indices, float *d_probs,
                     int64_t samples, int64_t tokens, int64_t experts, int64_t k, int32_t *error) {
    if (int s = check_routing("mdt_moe_topk_bwd", samples, tokens, experts, k, 0)) return s;
    if (samples * experts * k == 0) return MDT_SUCCESS;
    MDT_REQUIRE(d_gates && indices && d_probs, "mdt_moe_topk_bwd: NULL tensor pointer");
    return MDT_LAUNCH(topk_backward_kernel, mdt::blocks_for(samples * experts * k, kThreads), kThreads, 0, stream,
                      d_gates, indices, d_probs, samples, tokens, experts, k, error);
}

int mdt_moe_dispatch_fwd(mdt_stream_t stream, const float *x, const int32_t *indices, float *out, int64_t samples,
                         int64_t tokens, int64_t experts, int64_t k, int64_t dim, int32_t *error) {
    return dispatch("mdt_moe_dispatch_fwd", stream, x, indices, out, samples, tokens, experts, k, dim, error);
}

int mdt_moe_dispatch_fwd_bf16out(mdt_stream_t stream, const float *x, const int32_t *indices, uint16_t *out,
                                 int64_t samples, int64_t tokens, int64_t experts, int64_t k, int64_t dim,
                                 int32_t *error) {
    return dispatch("mdt_moe_dispatch_fwd_bf16out", stream, x, indices, out, samples, tokens, experts, k, dim, error);
}

int mdt_moe_token_slots(mdt_stream_t stream, const int32_t *indices, int32_t *offsets, int32_t *slots,
                        int64_t samples, int64_t tokens, int64_t experts, int64_t k, int check,
                        int32_t *error_record) {
    if (int s = check_routing("mdt_moe_token_slots", samples, tokens, experts, k, 0)) return s;
    MDT_REQUIRE(tokens < 2147483647 && experts * k <= 2147483647, "mdt_moe_token_slots: %lld tokens or %lld slots "
                "per sample exceed int32 offsets", (long long)tokens, (long long)(experts * k));
    MDT_REQUIRE(check > 0 || !error_record, "mdt_moe_token_slots: check %d is no MDT_CHECK_* code", check);
    if (samples == 0) return MDT_SUCCESS;
    MDT_REQUIRE(offsets && (experts * k == 0 || (indices && slots)), "mdt_moe_token_slots: NULL tensor pointer");
    return MDT_LAUNCH(token_slots_kernel, item_blocks(samples), kMapThreads, 0, stream, indices, offsets, slots,
                      samples, tokens, experts, k, check, error_record);
}

int mdt_moe_routed_rows(mdt_stream_t stream, const int32_t *indices, int32_t *rows, int64_t samples, int64_t tokens,
                        int64_t experts, int64_t k, int check, int32_t *error_record) {
    if (int s = check_routing("mdt_moe_routed_rows", samples, tokens, experts, k, 0)) return s;
    MDT_REQUIRE(check > 0 || !error_record, "mdt_moe_routed_rows: check %d is no MDT_CHECK_* code", check);
    if (experts * samples * k == 0) return MDT_SUCCESS;
    MDT_REQUIRE(indices && rows, "mdt_moe_routed_rows: NULL tensor pointer");
    return MDT_LAUNCH(routed_rows_kernel, mdt::blocks_for(experts * samples * k, kThreads), kThreads, 0, stream,
                      indices, rows, samples, tokens, experts, k, check, error_record);
}

int mdt_moe_dispatch_bwd(mdt_stream_t stream, const float *d_out, const int32_t *offsets, const int32_t *slots,
                         float *dx, int64_t samples, int64_t tokens, int64_t experts, int64_t k, int64_t dim) {
    return dispatch_backward("mdt_moe_dispatch_bwd", stream, d_out, offsets, slots, dx, samples, tokens, experts, k,
                             dim, 0);
}

int mdt_moe_dispatch_bwd_bf16grad(mdt_stream_t stream, const void *d_out, const int32_t *offsets,
                                  const int32_t *slots, float *dx, int64_t samples, int64_t tokens, int64_t experts,
                                  int64_t k, int64_t dim, int bf16_grads) {
    return dispatch_backward("mdt_moe_dispatch_bwd_bf16grad", stream, d_out, offsets, slots, dx, samples, tokens,
                             experts, k, dim, bf16_grads);
}

int mdt_moe_combine_fwd(mdt_stream_t stream, const float *h, const float *gates, const int32_t *offsets,
                        const int32_t *slots, float *out, int64_t samples, int64_t tokens, int64_t experts, int64_t k,
                        int64_t dim) {
    return combine("mdt_moe_combine_fwd", stream, h, gates, offsets, slots, out, samples, tokens, experts, k, dim);
}

int mdt_moe_combine_fwd_bf16in(mdt_stream_t stream, const uint16_t *h, const float *gates, const int32_t *offsets,
                               const int32_t *slots, float *out, int64_t samples, int64_t tokens, int64_t experts,
                               int64_t k, int64_t dim) {
    return combine("mdt_moe_combine_fwd_bf16in", stream, h, gates, offsets, slots, out, samples, tokens, experts, k,
                   dim);
}

int mdt_moe_combine_fwd_bf16in_bf16out(mdt_stream_t stream, const uint16_t *h, const float *gates,
                                       const int32_t *offsets, const int32_t *slots, uint16_t *out, int64_t samples,
                                       int64_t tokens, int64_t experts, int64_t k, int64_t dim) {
    return combine("mdt_moe_combine_fwd_bf16in_bf16out", stream, h, gates, offsets, slots, out, samples, tokens,
                   experts, k, dim);
}

int mdt_moe_combine_bwd(mdt_stream_t stream, const float *d_out, const float *h, const float *gates,
                        const int32_t *indices, float *d_h, float *d_gates, int64_t samples, int64_t tokens,
                        int64_t experts, int64_t k, int64_t dim, int32_t *error) {
    return combine_backward("mdt_moe_combine_bwd", stream, d_out, h, gates, indices, d_h, d_gates, samples, tokens,
                            experts, k, dim, 0, error);
}

int mdt_moe_combine_bwd_bf16in(mdt_stream_t stream, const float *d_out, const uint16_t *h, const float *gates,
                               const int32_t *indices, float *d_h, float *d_gates, int64_t samples, int64_t tokens,
                               int64_t experts, int64_t k, int64_t dim, int32_t *error) {
    return combine_backward("mdt_moe_combine_bwd_bf16in", stream, d_out, h, gates, indices, d_h, d_gates, samples,
                            tokens, experts, k, dim, 0, error);
}

int mdt_moe_combine_bwd_bf16grad(mdt_stream_t stream, const void *d_out, const float *h, const float *gates,
                                 const int32_t *indices, void *d_h, float *d_gates, int64_t samples, int64_t tokens,
                                 int64_t experts, int64_t k, int64_t dim, int bf16_grads, int32_t *error) {
    return combine_backward("mdt_moe_combine_bwd_bf16grad", stream, d_out, h, gates, indices, d_h, d_gates, samples,
                            tokens, experts, k, dim, bf16_grads, error);
}

int mdt_moe_combine_bwd_bf16in_bf16grad(mdt_stream_t stream, const void *d_out, const uint16_t *h,
                                        const float *gates, const int32_t *indices, void *d_h, float *d_gates,
                                        int64_t samples, int64_t tokens, int64_t experts, int64_t k, int64_t dim,
                                        int bf16_grads, int32_t *error) {
    return combine_backward("mdt_moe_combine_bwd_bf16in_bf16grad", stream, d_out, h, gates, indices, d_h, d_gates,
                            samples, tokens, experts, k, dim, bf16_grads, error);
}

}  // extern "C"
