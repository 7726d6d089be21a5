// AdamW (decoupled weight decay, gradient pre-scaled by gradScale for global-norm clipping), EMA and the sum of
// squares for the global gradient norm. AdamW and EMA are one fused elementwise pass each (param, grad, m, v
// read once and written once); the step-dependent scalars (decay, step size, √bias-correction) are computed on
// the host in double exactly as the CPU backend does. Sum of squares: a grid of up to kPartials blocks (sized by
// the element count alone), each thread squaring a strided slice in double, a block tree reduction into one
// partial per block, then one block adding the partials in index order: the same bits on every run,
// independent of scheduling.
// Cost per call with E elements: AdamW 13E FLOPs, 28E bytes; EMA 3E FLOPs, 12E bytes; sum of squares 2E FLOPs,
// 4E bytes.
#include <math.h>

#include "common.cuh"

namespace {

constexpr int kThreads = 256;
constexpr int kPartials = 256;

__global__ void adamw_kernel(float *param, const float *grad, float *m, float *v, int64_t n, float decay,
                             float step_size, float correction2_sqrt, float first_weight, float beta2,
                             float second_weight, float epsilon, float grad_scale) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float gradient = grad[i] * grad_scale;
        float moment1 = m[i];
        moment1 = moment1 + (gradient - moment1) * first_weight;
        float moment2 = v[i] * beta2 + gradient * gradient * second_weight;
        float denominator = sqrtf(moment2) / correction2_sqrt + epsilon;
        m[i] = moment1;
        v[i] = moment2;
        param[i] = param[i] * decay - moment1 / denominator * step_size;
    }
}

__global__ void ema_kernel(float *ema, const float *param, int64_t n, float decay, float param_weight) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        ema[i] = ema[i] * decay + param[i] * param_weight;
    }
}

__global__ void squares_kernel(const float *x, int64_t n, double *partials) {
    __shared__ double scratch[32];
    double sum = 0.0;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        double value = x[i];
        sum += value * value;
    }
    sum = mdt::block_sum(sum, scratch);
    if (threadIdx.x == 0) partials[blockIdx.x] = sum;
}

__global__ void add_partials_kernel(const double *partials, int count, double *result) {
    if (threadIdx.x == 0) {
        double total = 0.0;
        for (int i = 0; i < count; i++) total += partials[i];
        *result = total;
    }
}

}  // namespace

extern "C" {

int mdt_optim_adamw(mdt_stream_t stream, float *param, const float *grad, float *m, float *v, int64_t n,
                    float learning_rate, float beta1, float beta2, float epsilon, float weight_decay, int64_t step,
                    float grad_scale) {
    MDT_REQUIRE(n >= 0, "mdt_optim_adamw: n must be non-negative, got %lld", (long long)n);
    MDT_REQUIRE(step >= 1, "mdt_optim_adamw: step counts from 1, got %lld", (long long)step);
    MDT_REQUIRE(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, "mdt_optim_adamw: betas must lie in [0, 1)");
    MDT_REQUIRE(epsilon > 0, "mdt_optim_adamw: epsilon must be positive");
    if (n == 0) return MDT_SUCCESS;
    MDT_REQUIRE(param && grad && m && v, "mdt_optim_adamw: NULL tensor pointer");
    float decay = static_cast<float>(1.0 - static_cast<double>(learning_rate) * weight_decay);
    float step_size = static_cast<float>(learning_rate / (1.0 - pow(static_cast<double>(beta1), static_cast<double>(step))));
    float correction2_sqrt = static_cast<float>(sqrt(1.0 - pow(static_cast<double>(beta2), static_cast<double>(step))));
    float first_weight = static_cast<float>(1.0 - beta1), second_weight = static_cast<float>(1.0 - beta2);
    return MDT_LAUNCH(adamw_kernel, mdt::blocks_for(n, kThreads), kThreads, 0, stream, param, grad, m, v, n, decay,
                      step_size, correction2_sqrt, first_weight, beta2, second_weight, epsilon, grad_scale);
}

int mdt_optim_ema(mdt_stream_t stream, float *ema, const float *param, int64_t n, float decay) {
    MDT_REQUIRE(n >= 0, "mdt_optim_ema: n must be non-negative, got %lld", (long long)n);
    MDT_REQUIRE(decay >= 0 && decay <= 1, "mdt_optim_ema: decay must lie in [0, 1], got %g", decay);
    if (n == 0) return MDT_SUCCESS;
    MDT_REQUIRE(ema && param, "mdt_optim_ema: NULL tensor pointer");
    float param_weight = static_cast<float>(1.0 - decay);
    return MDT_LAUNCH(ema_kernel, mdt::blocks_for(n, kThreads), kThreads, 0, stream, ema, param, n, decay, param_weight);
}

int mdt_optim_sum_of_squares(mdt_stream_t stream, const float *x, int64_t n, double *partials,
                             int64_t partial_capacity, double *result) {
    MDT_REQUIRE(n >= 0, "mdt_optim_sum_of_squares: n must be non-negative, got %lld", (long long)n);
    MDT_REQUIRE(partial_capacity >= kPartials, "mdt_optim_sum_of_squares: partials must hold %d doubles, got %lld",
                kPartials, (long long)partial_capacity);
    MDT_REQUIRE(partials && result && (x || n == 0), "mdt_optim_sum_of_squares: NULL pointer");
    // As many blocks as the tensor fills, at most kPartials: the count depends on n alone (and on the platform's
    // grid cap), so the sum order is fixed; small tensors (most parameters) do not pay for 256 mostly idle blocks.
    unsigned blocks = mdt::blocks_for(n, kThreads);
    if (blocks > static_cast<unsigned>(kPartials)) blocks = kPartials;
    int status = MDT_LAUNCH(squares_kernel, blocks, kThreads, 0, stream, x, n, partials);
    if (status != MDT_SUCCESS) return status;
    return MDT_LAUNCH(add_partials_kernel, 1, 32, 0, stream, partials, static_cast<int>(blocks), result);
}

}  // extern "C"
