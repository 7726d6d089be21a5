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
// Combine and dispatch backward: one block per (n, token) first lists the routing slots (e, j) of its sample that
// chose the token, in slot order (warp ballots and a prefix over warps, into shared memory), then each thread
// owns columns and walks that list in order — the CPU's fixed summation order (first term a product, then fused
// multiply-adds; the backward adds to dx), so results are deterministic with no float atomics and bit-equal to
// the CPU's. Cost: E·N·k slot reads per token, 2·E·N·k·D FLOPs (combine) or E·N·k·D (dispatch backward).
// Combine backward: one block per routed row writes dH = gate·dOut[token] and dGates = dOut[token]·h (a fixed
// order block reduction): 3·E·N·k·D FLOPs, 12·E·N·k·D bytes.
// Index checks (no host round trip): every kernel that reads an index skips one outside [0, T) and reports it into
// the caller's error record (microdit.h); combine and the dispatch backward check the sample's slots in the
// sample's first token block, the others check the index they read.
#include "common.cuh"

namespace {

constexpr int kThreads = 128;
constexpr int kSortThreads = 256;
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

__global__ void dispatch_kernel(const float *x, const int32_t *indices, float *out, int64_t samples, int64_t tokens,
                                int64_t experts, int64_t k, int64_t dim, int32_t *error) {
    int64_t row = blockIdx.x, e = row / (samples * k), within = row % (samples * k);
    int64_t n = within / k, j = within % k;
    int32_t token = indices[(n * experts + e) * k + j];
    if (token < 0 || token >= tokens) {  // the whole block leaves
        if (threadIdx.x == 0) mdt::report_error(error, MDT_CHECK_MOE_DISPATCH_FWD, token, tokens, n, e, j);
        return;
    }
    const float *source = x + (n * tokens + token) * dim;
    for (int64_t c = threadIdx.x; c < dim; c += blockDim.x) out[row * dim + c] = source[c];
}

/**
 * For one (n, token) block: the slots s in [0, E·k) of sample n with indices == token, ascending, into
 * {@code list}; returns their number (the same on every thread).
 */
__device__ int collect_slots(const int32_t *sample_indices, int64_t slots, int token, int *list, int *warp_counts) {
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    int total = 0;
    for (int64_t base = 0; base < slots; base += blockDim.x) {
        int64_t s = base + threadIdx.x;
        bool match = s < slots && sample_indices[s] == token;
        unsigned votes = __ballot_sync(mdt::kFullMask, match);
        if (lane == 0) warp_counts[warp] = __popc(votes);
        __syncthreads();
        int before = total, chunk = 0;
        for (int w = 0; w < warps; w++) {
            if (w < warp) before += warp_counts[w];
            chunk += warp_counts[w];
        }
        if (match) list[before + __popc(votes & ((1u << lane) - 1u))] = static_cast<int>(s);
        total += chunk;
        __syncthreads();
    }
    return total;
}

__global__ void token_rows_kernel(const float *routed, const float *gates, const int32_t *indices, float *out,
                                  int64_t samples, int64_t tokens, int64_t experts, int64_t k, int64_t dim,
                                  int combine, int32_t *error) {
    MDT_DYNAMIC_SHARED(int, list);
    MDT_SHARED(int, warp_counts, [32]);
    int64_t row = blockIdx.x, n = row / tokens;
    int token = static_cast<int>(row % tokens);
    int64_t slots = experts * k;
    if (token == 0) {  // a bad index matches no token, so it is skipped; one block per sample reports it
        for (int64_t s = threadIdx.x; s < slots; s += blockDim.x) {
            valid_token(indices[n * slots + s], tokens, error,
                        combine ? MDT_CHECK_MOE_COMBINE_FWD : MDT_CHECK_MOE_DISPATCH_BWD, n, s / k, s % k);
        }
    }
    int count = collect_slots(indices + n * slots, slots, token, list, warp_counts);
    float *target = out + row * dim;
    for (int64_t c = threadIdx.x; c < dim; c += blockDim.x) {
        if (combine) {
            float value = 0.0f;
            for (int s = 0; s < count; s++) {
                float h = routed[routed_row(n, list[s], samples, k) * dim + c];
                float gate = gates[n * slots + list[s]];
                value = s == 0 ? gate * h : fmaf(h, gate, value);
            }
            target[c] = value;
        } else {
            float value = target[c];
            for (int s = 0; s < count; s++) value += routed[routed_row(n, list[s], samples, k) * dim + c];
            target[c] = value;
        }
    }
}

__global__ void combine_backward_kernel(const float *d_out, const float *h, const float *gates,
                                        const int32_t *indices, float *d_h, float *d_gates, int64_t samples,
                                        int64_t tokens, int64_t experts, int64_t k, int64_t dim, int32_t *error) {
    MDT_SHARED(float, scratch, [32]);
    int64_t row = blockIdx.x, e = row / (samples * k), within = row % (samples * k);
    int64_t n = within / k, j = within % k, slot = (n * experts + e) * k + j;
    int32_t token = indices[slot];
    if (token < 0 || token >= tokens) {  // the whole block leaves, before the block reduction's barriers
        if (threadIdx.x == 0) mdt::report_error(error, MDT_CHECK_MOE_COMBINE_BWD, token, tokens, n, e, j);
        return;
    }
    const float *g = d_out + (n * tokens + token) * dim;
    float gate = gates[slot], dot = 0.0f;
    for (int64_t c = threadIdx.x; c < dim; c += blockDim.x) {
        d_h[row * dim + c] = gate * g[c];
        dot = fmaf(g[c], h[row * dim + c], dot);
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

/** Shared bytes of a token-rows block: one int per routing slot of a sample. */
int64_t slot_list_bytes(int64_t experts, int64_t k) { return experts * k * static_cast<int64_t>(sizeof(int)); }

/** The slot list and the kernel's static warp_counts must fit the 48 KiB a block gets without the opt-in
 *  (MDT_LAUNCH would refuse the launch; this says which argument is too large). */
int check_slot_list(const char *op, int64_t experts, int64_t k) {
    constexpr int64_t kLimit = 48 * 1024 - 32 * static_cast<int64_t>(sizeof(int));
    MDT_REQUIRE(slot_list_bytes(experts, k) <= kLimit, "%s: %lld routing slots per sample exceed the %lld that fit "
                "in shared memory", op, (long long)(experts * k), (long long)(kLimit / sizeof(int)));
    return MDT_SUCCESS;
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
    if (int s = check_routing("mdt_moe_dispatch_fwd", samples, tokens, experts, k, dim)) return s;
    if (experts * samples * k * dim == 0) return MDT_SUCCESS;
    MDT_REQUIRE(x && indices && out, "mdt_moe_dispatch_fwd: NULL tensor pointer");
    return MDT_LAUNCH(dispatch_kernel, static_cast<unsigned>(experts * samples * k), kThreads, 0, stream, x, indices,
                      out, samples, tokens, experts, k, dim, error);
}

int mdt_moe_dispatch_bwd(mdt_stream_t stream, const float *d_out, const int32_t *indices, float *dx, int64_t samples,
                         int64_t tokens, int64_t experts, int64_t k, int64_t dim, int32_t *error) {
    if (int s = check_routing("mdt_moe_dispatch_bwd", samples, tokens, experts, k, dim)) return s;
    if (int s = check_slot_list("mdt_moe_dispatch_bwd", experts, k)) return s;
    if (samples * tokens * dim == 0) return MDT_SUCCESS;
    MDT_REQUIRE(d_out && indices && dx, "mdt_moe_dispatch_bwd: NULL tensor pointer");
    return MDT_LAUNCH(token_rows_kernel, static_cast<unsigned>(samples * tokens), kThreads,
                      static_cast<size_t>(slot_list_bytes(experts, k)), stream, d_out, nullptr, indices, dx, samples,
                      tokens, experts, k, dim, 0, error);
}

int mdt_moe_combine_fwd(mdt_stream_t stream, const float *h, const float *gates, const int32_t *indices, float *out,
                        int64_t samples, int64_t tokens, int64_t experts, int64_t k, int64_t dim, int32_t *error) {
    if (int s = check_routing("mdt_moe_combine_fwd", samples, tokens, experts, k, dim)) return s;
    if (int s = check_slot_list("mdt_moe_combine_fwd", experts, k)) return s;
    if (samples * tokens * dim == 0) return MDT_SUCCESS;
    MDT_REQUIRE(out && (experts * k == 0 || (h && gates && indices)), "mdt_moe_combine_fwd: NULL tensor pointer");
    return MDT_LAUNCH(token_rows_kernel, static_cast<unsigned>(samples * tokens), kThreads,
                      static_cast<size_t>(slot_list_bytes(experts, k)), stream, h, gates, indices, out, samples,
                      tokens, experts, k, dim, 1, error);
}

int mdt_moe_combine_bwd(mdt_stream_t stream, const float *d_out, const float *h, const float *gates,
                        const int32_t *indices, float *d_h, float *d_gates, int64_t samples, int64_t tokens,
                        int64_t experts, int64_t k, int64_t dim, int32_t *error) {
    if (int s = check_routing("mdt_moe_combine_bwd", samples, tokens, experts, k, dim)) return s;
    if (experts * samples * k == 0) return MDT_SUCCESS;
    MDT_REQUIRE(d_out && h && gates && indices && d_h && d_gates, "mdt_moe_combine_bwd: NULL tensor pointer");
    return MDT_LAUNCH(combine_backward_kernel, static_cast<unsigned>(experts * samples * k), kThreads, 0, stream,
                      d_out, h, gates, indices, d_h, d_gates, samples, tokens, experts, k, dim, error);
}

}  // extern "C"
