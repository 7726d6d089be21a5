// LayerNorm without bias, weight-only (weight [D]) or non-affine (weight NULL, as QK-norm), forward and backward.
// Forward: one block of 128 threads per row. The mean comes in two steps as on the CPU backend: a rough mean
// m0, then the sum of (x - m0) and of its squares (float per thread, combined in double), so x - m0 stays exact
// and the variance keeps full precision when |mean| >> std. Saves mean and rstd per row.
// Backward: one block per row computes dy = dOut·w and x̂ = (x - mean)·rstd, reduces Σdy and Σdy·x̂, and writes
// dx = (dy - mean(dy) - x̂·mean(dy·x̂))·rstd; the weight gradient Σ_rows dOut·x̂ is a second kernel with one
// thread per column walking the rows in order (deterministic, no atomics), added into dWeight.
// Cost per call with E = rows·D elements: forward 8E FLOPs, 12E bytes (x read twice from cache, out written);
// backward 14E FLOPs (+3E with dWeight), 12E bytes (+8E for dWeight's pass).
#include "common.cuh"

namespace {

constexpr int kThreads = 128;

__global__ void layer_norm_kernel(const float *x, const float *weight, float eps, float *out, float *mean, float *rstd,
                                  int64_t width) {
    __shared__ float float_scratch[32];
    __shared__ double double_scratch[32];
    int64_t row = blockIdx.x;
    const float *xr = x + row * width;
    float *outr = out + row * width;
    float sum = 0.0f;
    for (int64_t c = threadIdx.x; c < width; c += blockDim.x) sum += xr[c];
    float m0 = mdt::block_sum(sum, float_scratch) / static_cast<float>(width);
    float shifted = 0.0f, squares = 0.0f;
    for (int64_t c = threadIdx.x; c < width; c += blockDim.x) {
        float d = xr[c] - m0;
        shifted += d;
        squares = fmaf(d, d, squares);
    }
    double shifted_total = mdt::block_sum(static_cast<double>(shifted), double_scratch);
    double squares_total = mdt::block_sum(static_cast<double>(squares), double_scratch);
    double correction = shifted_total / width;
    double variance = squares_total / width - correction * correction;
    if (variance < 0) variance = 0;
    float row_rstd = static_cast<float>(1.0 / sqrt(variance + eps));
    float correction_f = static_cast<float>(correction);
    if (threadIdx.x == 0) {
        mean[row] = static_cast<float>(m0 + correction);
        rstd[row] = row_rstd;
    }
    for (int64_t c = threadIdx.x; c < width; c += blockDim.x) {
        float y = (xr[c] - m0 - correction_f) * row_rstd;
        outr[c] = weight ? y * weight[c] : y;
    }
}

__global__ void layer_norm_backward_kernel(const float *d_out, const float *x, const float *weight, const float *mean,
                                           const float *rstd, float *dx, int64_t width) {
    __shared__ float scratch[32];
    int64_t row = blockIdx.x;
    const float *g = d_out + row * width;
    const float *xr = x + row * width;
    float m = mean[row], r = rstd[row];
    float sum_dy = 0.0f, sum_dy_xhat = 0.0f;
    for (int64_t c = threadIdx.x; c < width; c += blockDim.x) {
        float dy = weight ? g[c] * weight[c] : g[c];
        float xhat = (xr[c] - m) * r;
        sum_dy += dy;
        sum_dy_xhat = fmaf(dy, xhat, sum_dy_xhat);
    }
    float mean_dy = mdt::block_sum(sum_dy, scratch) / static_cast<float>(width);
    float mean_dy_xhat = mdt::block_sum(sum_dy_xhat, scratch) / static_cast<float>(width);
    for (int64_t c = threadIdx.x; c < width; c += blockDim.x) {
        float dy = weight ? g[c] * weight[c] : g[c];
        float xhat = (xr[c] - m) * r;
        dx[row * width + c] = fmaf(xhat, -mean_dy_xhat, dy - mean_dy) * r;
    }
}

__global__ void layer_norm_weight_gradient_kernel(const float *d_out, const float *x, const float *mean,
                                                  const float *rstd, float *d_weight, int64_t rows, int64_t width) {
    for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < width; c += (int64_t)gridDim.x * blockDim.x) {
        float sum = 0.0f;
        for (int64_t row = 0; row < rows; row++) {
            float xhat = (x[row * width + c] - mean[row]) * rstd[row];
            sum = fmaf(d_out[row * width + c], xhat, sum);
        }
        d_weight[c] += sum;
    }
}

}  // namespace

extern "C" {

int mdt_norm_layer_norm_fwd(mdt_stream_t stream, const float *x, const float *weight, float eps, float *out,
                            float *mean, float *rstd, int64_t rows, int64_t width) {
    MDT_REQUIRE(rows >= 0 && width > 0, "mdt_norm_layer_norm_fwd: need rows >= 0 and width > 0, got %lld and %lld",
                (long long)rows, (long long)width);
    MDT_REQUIRE(eps >= 0.0f && eps < __builtin_inff(), "mdt_norm_layer_norm_fwd: eps must be finite and >= 0");
    MDT_REQUIRE(rows <= 2147483647, "mdt_norm_layer_norm_fwd: %lld rows exceed the grid", (long long)rows);
    if (rows == 0) return MDT_SUCCESS;
    MDT_REQUIRE(x && out && mean && rstd, "mdt_norm_layer_norm_fwd: NULL tensor pointer");
    return MDT_LAUNCH(layer_norm_kernel, static_cast<unsigned>(rows), kThreads, 0, stream, x, weight, eps, out, mean,
                      rstd, width);
}

int mdt_norm_layer_norm_bwd(mdt_stream_t stream, const float *d_out, const float *x, const float *weight,
                            const float *mean, const float *rstd, float *dx, float *d_weight, int64_t rows,
                            int64_t width) {
    MDT_REQUIRE(rows >= 0 && width > 0, "mdt_norm_layer_norm_bwd: need rows >= 0 and width > 0, got %lld and %lld",
                (long long)rows, (long long)width);
    MDT_REQUIRE(weight || !d_weight, "mdt_norm_layer_norm_bwd: d_weight given for a LayerNorm without weight");
    MDT_REQUIRE(rows <= 2147483647, "mdt_norm_layer_norm_bwd: %lld rows exceed the grid", (long long)rows);
    if (rows == 0) return MDT_SUCCESS;
    MDT_REQUIRE(d_out && x && mean && rstd && dx, "mdt_norm_layer_norm_bwd: NULL tensor pointer");
    int status = MDT_LAUNCH(layer_norm_backward_kernel, static_cast<unsigned>(rows), kThreads, 0, stream, d_out, x,
                            weight, mean, rstd, dx, width);
    if (status != MDT_SUCCESS || !d_weight) return status;
    return MDT_LAUNCH(layer_norm_weight_gradient_kernel, mdt::blocks_for(width, kThreads), kThreads, 0, stream, d_out,
                      x, mean, rstd, d_weight, rows, width);
}

}  // extern "C"
