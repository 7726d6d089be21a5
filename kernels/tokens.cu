// Token rows: the deferred mask's gather (kept tokens after the patch-mixer) and its inverse scatter with the
// zero mask token, and the mean over tokens. Gather and scatter copy whole rows: one block per row, threads
// across the row's width (coalesced reads and writes). The scatter zero-fills the output first (memset), then
// copies the kept rows, so rows no id names hold the zero mask token. Ids are checked on the device, without a
// host round trip: an id out of [0, T) is skipped and reported into the caller's error record (microdit.h); the
// scatter's ids of a sample must be distinct (else two rows race for one target), which one block per sample
// checks first with a bitmap of T bits in shared memory (N·K id reads, T/8 bytes of shared memory); the scatter's
// blocks then copy nothing when it found a duplicate.
// Mean over tokens: one thread per (sample, column) summing tokens in order (deterministic).
// Cost per call: gather/scatter 0 FLOPs, 8·N·K·D bytes (+4·N·T·D for the scatter's fill, +4·N·K for its id
// check); mean N·T·D FLOPs, 4·N·T·D bytes.
#include "common.cuh"

namespace {

constexpr int kThreads = 128;

constexpr int64_t kMaxDistinctTokens = 48 * 1024 * 8;  // one bit per token in 48 KiB of shared memory

__global__ void copy_rows_kernel(const float *x, const int32_t *ids, float *out, int64_t tokens, int64_t kept,
                                 int64_t width, int scatter, int32_t *error) {
    int64_t row = blockIdx.x;  // (sample, j) over samples·kept
    int64_t sample = row / kept;
    if (scatter) {
        // Duplicate ids, which distinct_ids_kernel reported before this launch, would have two blocks race for one
        // target row: the scatter then copies nothing. The read is atomic since this launch's blocks may be
        // reporting a range error into the same word.
        MDT_SHARED(int, duplicates, [1]);
        if (threadIdx.x == 0) {
            duplicates[0] = error && static_cast<int>(atomicOr(reinterpret_cast<unsigned *>(error), 0u)) ==
                                         MDT_CHECK_TOKENS_SCATTER_DISTINCT;
        }
        __syncthreads();
        if (duplicates[0]) return;
    }
    int32_t id = ids[row];
    if (id < 0 || id >= tokens) {  // the whole block leaves
        if (threadIdx.x == 0) {
            mdt::report_error(error, scatter ? MDT_CHECK_TOKENS_SCATTER_RANGE : MDT_CHECK_TOKENS_GATHER_RANGE, id,
                              tokens, sample, row % kept, 0);
        }
        return;
    }
    const float *source = scatter ? x + row * width : x + (sample * tokens + id) * width;
    float *target = scatter ? out + (sample * tokens + id) * width : out + row * width;
    for (int64_t c = threadIdx.x; c < width; c += blockDim.x) target[c] = source[c];
}

/** One block per sample: reports the first two positions of an id the sample's ids hold twice. */
__global__ void distinct_ids_kernel(const int32_t *ids, int64_t tokens, int64_t kept, int32_t *error) {
    MDT_DYNAMIC_SHARED(unsigned, seen);
    const int32_t *sample_ids = ids + blockIdx.x * kept;
    for (int64_t w = threadIdx.x; w < (tokens + 31) / 32; w += blockDim.x) seen[w] = 0u;
    __syncthreads();
    for (int64_t j = threadIdx.x; j < kept; j += blockDim.x) {
        int32_t id = sample_ids[j];
        if (id < 0 || id >= tokens) continue;  // the copy reports it
        unsigned bit = 1u << (id % 32);
        if ((atomicOr(&seen[id / 32], bit) & bit) == 0) continue;
        int64_t first = 0;
        while (sample_ids[first] != id) first++;
        int64_t second = first + 1;
        while (sample_ids[second] != id) second++;
        mdt::report_error(error, MDT_CHECK_TOKENS_SCATTER_DISTINCT, id, tokens, blockIdx.x, first, second);
    }
}

__global__ void mean_tokens_kernel(const float *x, float *out, int64_t samples, int64_t tokens, int64_t width) {
    int64_t count = samples * width;
    for (int64_t p = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; p < count; p += (int64_t)gridDim.x * blockDim.x) {
        int64_t sample = p / width, column = p % width;
        float sum = 0.0f;
        for (int64_t t = 0; t < tokens; t++) sum += x[(sample * tokens + t) * width + column];
        out[p] = sum / static_cast<float>(tokens);
    }
}

__global__ void mean_tokens_backward_kernel(const float *d_out, float *dx, int64_t tokens, int64_t width, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t column = i % width, sample = i / (tokens * width);
        dx[i] = d_out[sample * width + column] / static_cast<float>(tokens);
    }
}

int check_rows(const char *op, const float *x, const int32_t *ids, const float *out, int64_t samples, int64_t tokens,
               int64_t kept, int64_t width) {
    MDT_REQUIRE(samples >= 0 && tokens >= 0 && kept >= 0 && width >= 0,
                "%s: negative size (samples %lld, tokens %lld, kept %lld, width %lld)", op, (long long)samples,
                (long long)tokens, (long long)kept, (long long)width);
    MDT_REQUIRE(kept <= tokens, "%s: %lld kept tokens exceed the %lld tokens", op, (long long)kept, (long long)tokens);
    MDT_REQUIRE(samples * kept <= 2147483647, "%s: %lld rows exceed the grid", op, (long long)(samples * kept));
    MDT_REQUIRE(samples * tokens * width == 0 || (x && ids && out) || kept == 0, "%s: NULL tensor pointer", op);
    return MDT_SUCCESS;
}

}  // namespace

extern "C" {

int mdt_tokens_gather_rows(mdt_stream_t stream, const float *x, const int32_t *ids, float *out, int64_t samples,
                           int64_t tokens, int64_t kept, int64_t width, int32_t *error) {
    if (int s = check_rows("mdt_tokens_gather_rows", x, ids, out, samples, tokens, kept, width)) return s;
    if (samples * kept * width == 0) return MDT_SUCCESS;
    return MDT_LAUNCH(copy_rows_kernel, static_cast<unsigned>(samples * kept), kThreads, 0, stream, x, ids, out, tokens,
                      kept, width, 0, error);
}

int mdt_tokens_scatter_rows(mdt_stream_t stream, const float *x, const int32_t *ids, float *out, int64_t samples,
                            int64_t tokens, int64_t kept, int64_t width, int32_t *error) {
    if (int s = check_rows("mdt_tokens_scatter_rows", x, ids, out, samples, tokens, kept, width)) return s;
    MDT_REQUIRE(!error || tokens <= kMaxDistinctTokens,
                "mdt_tokens_scatter_rows: %lld tokens exceed the %lld whose ids the distinctness check holds",
                (long long)tokens, (long long)kMaxDistinctTokens);
    if (samples * tokens * width == 0) return MDT_SUCCESS;
    MDT_REQUIRE(out, "mdt_tokens_scatter_rows: NULL output pointer");
    if (int s = mdt_memset(out, 0, static_cast<size_t>(samples * tokens * width) * sizeof(float), stream)) return s;
    if (kept == 0) return MDT_SUCCESS;
    if (error) {
        size_t bitmap = static_cast<size_t>((tokens + 31) / 32) * sizeof(unsigned);
        if (int s = MDT_LAUNCH(distinct_ids_kernel, static_cast<unsigned>(samples), kThreads, bitmap, stream, ids,
                               tokens, kept, error)) {
            return s;
        }
    }
    return MDT_LAUNCH(copy_rows_kernel, static_cast<unsigned>(samples * kept), kThreads, 0, stream, x, ids, out, tokens,
                      kept, width, 1, error);
}

int mdt_tokens_mean_fwd(mdt_stream_t stream, const float *x, float *out, int64_t samples, int64_t tokens,
                        int64_t width) {
    MDT_REQUIRE(samples >= 0 && tokens > 0 && width >= 0,
                "mdt_tokens_mean_fwd: need tokens > 0 and non-negative sizes, got %lld, %lld, %lld",
                (long long)samples, (long long)tokens, (long long)width);
    if (samples * width == 0) return MDT_SUCCESS;
    MDT_REQUIRE(x && out, "mdt_tokens_mean_fwd: NULL tensor pointer");
    return MDT_LAUNCH(mean_tokens_kernel, mdt::blocks_for(samples * width, kThreads), kThreads, 0, stream, x, out,
                      samples, tokens, width);
}

int mdt_tokens_mean_bwd(mdt_stream_t stream, const float *d_out, float *dx, int64_t samples, int64_t tokens,
                        int64_t width) {
    MDT_REQUIRE(samples >= 0 && tokens >= 0 && width >= 0, "mdt_tokens_mean_bwd: negative size");
    int64_t n = samples * tokens * width;
    if (n == 0) return MDT_SUCCESS;
    MDT_REQUIRE(d_out && dx, "mdt_tokens_mean_bwd: NULL tensor pointer");
    return MDT_LAUNCH(mean_tokens_backward_kernel, mdt::blocks_for(n, kThreads), kThreads, 0, stream, d_out, dx, tokens,
                      width, n);
}

}  // extern "C"
