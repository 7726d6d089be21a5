// Token rows: the deferred mask's gather (kept tokens after the patch-mixer) and its inverse scatter with the
// zero mask token, and the mean over tokens. Gather and scatter copy whole rows: one block per row, threads
// across the row's width (coalesced reads and writes). The scatter zero-fills the output first (memset), then
// copies the kept rows, so rows no id names hold the zero mask token; ids of a sample are distinct (the Java
// side checks ids against T and for duplicates), so the copies never race. An id out of [0, T) is skipped.
// Mean over tokens: one thread per (sample, column) summing tokens in order (deterministic).
// Cost per call: gather/scatter 0 FLOPs, 8·N·K·D bytes (+4·N·T·D for the scatter's fill); mean N·T·D FLOPs,
// 4·N·T·D bytes.
#include "common.cuh"

namespace {

constexpr int kThreads = 128;

__global__ void copy_rows_kernel(const float *x, const int32_t *ids, float *out, int64_t tokens, int64_t kept,
                                 int64_t width, int scatter) {
    int64_t row = blockIdx.x;  // (sample, j) over samples·kept
    int64_t sample = row / kept;
    int32_t id = ids[row];
    if (id < 0 || id >= tokens) return;
    const float *source = scatter ? x + row * width : x + (sample * tokens + id) * width;
    float *target = scatter ? out + (sample * tokens + id) * width : out + row * width;
    for (int64_t c = threadIdx.x; c < width; c += blockDim.x) target[c] = source[c];
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
                           int64_t tokens, int64_t kept, int64_t width) {
    if (int s = check_rows("mdt_tokens_gather_rows", x, ids, out, samples, tokens, kept, width)) return s;
    if (samples * kept * width == 0) return MDT_SUCCESS;
    return MDT_LAUNCH(copy_rows_kernel, static_cast<unsigned>(samples * kept), kThreads, 0, stream, x, ids, out, tokens,
                      kept, width, 0);
}

int mdt_tokens_scatter_rows(mdt_stream_t stream, const float *x, const int32_t *ids, float *out, int64_t samples,
                            int64_t tokens, int64_t kept, int64_t width) {
    if (int s = check_rows("mdt_tokens_scatter_rows", x, ids, out, samples, tokens, kept, width)) return s;
    if (samples * tokens * width == 0) return MDT_SUCCESS;
    MDT_REQUIRE(out, "mdt_tokens_scatter_rows: NULL output pointer");
    if (int s = mdt_memset(out, 0, static_cast<size_t>(samples * tokens * width) * sizeof(float), stream)) return s;
    if (kept == 0) return MDT_SUCCESS;
    return MDT_LAUNCH(copy_rows_kernel, static_cast<unsigned>(samples * kept), kThreads, 0, stream, x, ids, out, tokens,
                      kept, width, 1);
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
