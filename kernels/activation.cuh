// GELU's value and slope (exact erf form, and PyTorch's tanh approximation) and the SwiGLU gate silu(a)·b with its
// two partial derivatives, shared by the pointwise kernels of activations.cu and the GEMM epilogues of gemm.cu, so
// an activation fused into a product gives the bits of the separate pass. The formulas are the CPU backend's
// (CpuActivations): every sigmoid is one exponential, σ(u) = 1/(1 + e^(−u)); the slopes form 1 − σ as e·σ with the
// exponent capped at 80, so nothing cancels where σ is near 1 and nothing overflows to ∞·0. erf is CUDA's erff.
#pragma once

#include "common.cuh"

#include <math.h>

namespace mdt {
namespace gelu {

constexpr float kExponentCap = 80.0f;
constexpr float kSqrtHalf = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;
constexpr float kSqrt2OverPi = 0.79788456080286536f;
constexpr float kCubic = 0.044715f;
constexpr float kTanhExponentLinear = -2 * kSqrt2OverPi;
constexpr float kTanhExponentCubic = -2 * kSqrt2OverPi * kCubic;
constexpr float kTanhSlopeLinear = 2 * kSqrt2OverPi;
constexpr float kTanhSlopeCubic = 6 * kCubic * kSqrt2OverPi;

__device__ __forceinline__ float capped_exp(float u) { return expf(fminf(u, kExponentCap)); }

/** GELU(x): exact, 0.5·x·(1 + erf(x/√2)), or the tanh form. */
__device__ __forceinline__ float value(bool tanh_form, float x) {
    if (!tanh_form) return 0.5f * x * (1.0f + erff(x * kSqrtHalf));
    return x / (1.0f + expf(fmaf(x * x, kTanhExponentCubic, kTanhExponentLinear) * x));
}

/** GELU'(x) of the same form. */
__device__ __forceinline__ float slope(bool tanh_form, float x) {
    if (!tanh_form) {
        float density = expf(-0.5f * x * x) * kInvSqrt2Pi;
        return fmaf(x, density, 0.5f * (1.0f + erff(x * kSqrtHalf)));
    }
    float x2 = x * x;
    float e = capped_exp(fmaf(x2, kTanhExponentCubic, kTanhExponentLinear) * x);
    float s = 1.0f / (1.0f + e);
    return fmaf(x * s * (e * s), fmaf(x2, kTanhSlopeCubic, kTanhSlopeLinear), s);
}

}  // namespace gelu

namespace swiglu {

/** d/dx x·σ(x) = σ·(1 + x·(1 − σ)), given e = e^(−x). */
__device__ __forceinline__ float silu_slope(float x, float e) {
    float s = 1.0f / (1.0f + e);
    return s * (1.0f + x * e * s);
}

/** The gate silu(a)·b. */
__device__ __forceinline__ float value(float a, float b) { return a / (1.0f + expf(-a)) * b; }

/** The gate's backward for incoming gradient g: da = g·b·silu'(a), db = g·silu(a). */
__device__ __forceinline__ void gradients(float g, float a, float b, float *da, float *db) {
    float e = gelu::capped_exp(-a);
    *db = g * a / (1.0f + e);
    *da = g * b * silu_slope(a, e);
}

}  // namespace swiglu
}  // namespace mdt
