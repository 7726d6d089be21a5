// GELU (exact erf form and the tanh approximation), SiLU and the SwiGLU gate, forward and backward, and softmax
// over the last dimension with its backward.
// Pointwise ops: grid-stride loops, one element per thread per step, the CPU backend's formulas (CpuActivations):
// every sigmoid-shaped factor is one exponential, σ(u) = 1/(1 + e^(−u)); the slopes form 1 − σ as e·σ with the
// exponent capped at 80, so nothing cancels where σ is near 1 and nothing overflows to ∞·0 (activation.cuh, shared with
// gemm.cu's fused epilogues).
// Softmax: one warp per row (rows are often a few experts wide); each lane walks its strided columns, the warp
// combines max and sum by a butterfly in a fixed order, so a row gives the same bits on every run. Three passes
// (max, exp and sum written to out, scale); backward two (dot dOut·y, then dx = y·(dOut − dot)). In place is
// allowed: every element is read before it is written.
// The _bf16out forwards of GELU and the SwiGLU gate compute in f32 and store bf16 (nearest even, as convert
// rounds): for an output only a bf16 matrix product reads, no f32 copy is written, kept and converted. Their
// backwards read the inputs, never the output, so nothing else changes. The _bf16in forms (forward and backward)
// read x, or a and b, as bf16 (outputs of bf16 linear layers) through mdt::load_as_float: exactly the results for
// the inputs' f32 upcast, 2 bytes per input element less.
// The _bf16grad backwards (GELU's and the gate's) take dOut and the input gradients each as f32 or bf16
// (mdt::GradIn/GradOut, a flag per operand): in a bf16 graph the gradient of a bf16 value is bf16, so the pointwise
// backward reads and writes 2 bytes per gradient element instead of 4, with results bit for bit the f32 ones on the
// upcast, converted.
// Cost per element (FLOPs, bytes): GELU exact ~30, tanh ~10, SiLU 4, SwiGLU 5 (backwards a few more), 8-12 bytes
// forward (6-10 with a bf16 output), 12-20 backward; softmax 5 FLOPs and 12 bytes, backward 4 FLOPs and 12 bytes.
#include "common.cuh"
#include "activation.cuh"
#include "grad_operand.cuh"

#include <math.h>

namespace {

constexpr int kThreads = 256;
constexpr int kSoftmaxThreads = 128;
using mdt::gelu::capped_exp;
using mdt::swiglu::silu_slope;

enum Pointwise { kGeluExact = 0, kGeluTanh = 1, kSilu = 2 };

__device__ __forceinline__ float forward_value(int kind, float x) {
    if (kind != kSilu) return mdt::gelu::value(kind == kGeluTanh, x);
    return x / (1.0f + expf(-x));
}

__device__ __forceinline__ float slope_value(int kind, float x) {
    if (kind != kSilu) return mdt::gelu::slope(kind == kGeluTanh, x);
    return silu_slope(x, capped_exp(-x));
}

// In and Out: float, or uint16_t for bf16 bits (f32 maths, one rounding at the store).
template <class In, class Out>
__global__ void pointwise_kernel(int kind, const In *x, Out *out, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        mdt::store_out(out, i, forward_value(kind, mdt::load_as_float(x, i)));
    }
}

template <class In>
__global__ void pointwise_backward_kernel(int kind, mdt::GradIn d_out, const In *x, mdt::GradOut dx, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        dx.store(i, slope_value(kind, mdt::load_as_float(x, i)) * d_out[i]);
    }
}

template <class In, class Out>
__global__ void swiglu_kernel(const In *a, const In *b, Out *out, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        mdt::store_out(out, i, mdt::swiglu::value(mdt::load_as_float(a, i), mdt::load_as_float(b, i)));
    }
}

template <class In>
__global__ void swiglu_backward_kernel(mdt::GradIn d_out, const In *a, const In *b, mdt::GradOut da, mdt::GradOut db,
                                       int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float grad_a, grad_b;
        mdt::swiglu::gradients(d_out[i], mdt::load_as_float(a, i), mdt::load_as_float(b, i), &grad_a, &grad_b);
        db.store(i, grad_b);
        da.store(i, grad_a);
    }
}

__device__ __forceinline__ float warp_max(float value) {
    for (int offset = 16; offset > 0; offset >>= 1) value = fmaxf(value, __shfl_xor_sync(mdt::kFullMask, value, offset));
    return value;
}

__global__ void softmax_kernel(const float *x, float *out, int64_t rows, int64_t width) {
    int lane = threadIdx.x % 32;
    int64_t warps_per_grid = (int64_t)gridDim.x * (blockDim.x / 32);
    for (int64_t row = blockIdx.x * (int64_t)(blockDim.x / 32) + threadIdx.x / 32; row < rows; row += warps_per_grid) {
        const float *xr = x + row * width;
        float *outr = out + row * width;
        float max = -__builtin_inff();
        for (int64_t c = lane; c < width; c += 32) max = fmaxf(max, xr[c]);
        max = warp_max(max);
        float sum = 0.0f;
        for (int64_t c = lane; c < width; c += 32) {
            float e = expf(xr[c] - max);
            outr[c] = e;
            sum += e;
        }
        float inverse = 1.0f / mdt::warp_sum(sum);
        for (int64_t c = lane; c < width; c += 32) outr[c] *= inverse;
    }
}

__global__ void softmax_backward_kernel(const float *d_out, const float *y, float *dx, int64_t rows, int64_t width) {
    int lane = threadIdx.x % 32;
    int64_t warps_per_grid = (int64_t)gridDim.x * (blockDim.x / 32);
    for (int64_t row = blockIdx.x * (int64_t)(blockDim.x / 32) + threadIdx.x / 32; row < rows; row += warps_per_grid) {
        const float *g = d_out + row * width, *yr = y + row * width;
        float dot = 0.0f;
        for (int64_t c = lane; c < width; c += 32) dot = fmaf(g[c], yr[c], dot);
        dot = mdt::warp_sum(dot);
        for (int64_t c = lane; c < width; c += 32) dx[row * width + c] = (g[c] - dot) * yr[c];
    }
}

int check_count(const char *op, int64_t n) {
    MDT_REQUIRE(n >= 0, "%s: negative element count %lld", op, (long long)n);
    return MDT_SUCCESS;
}

template <class In, class Out>
int gelu_forward(const char *op, mdt_stream_t stream, const In *x, Out *out, int64_t n, int tanh_approximation) {
    if (int s = check_count(op, n)) return s;
    if (n == 0) return MDT_SUCCESS;
    MDT_REQUIRE(x && out, "%s: NULL tensor pointer", op);
    // Through a pointer named after the kernel: the launch macro's argument cannot hold the template's comma.
    auto *pointwise = &pointwise_kernel<In, Out>;
    return MDT_LAUNCH(pointwise, mdt::blocks_for(n, kThreads), kThreads, 0, stream,
                      tanh_approximation ? kGeluTanh : kGeluExact, x, out, n);
}

template <class In, class Out>
int swiglu_forward(const char *op, mdt_stream_t stream, const In *a, const In *b, Out *out, int64_t n) {
    if (int s = check_count(op, n)) return s;
    if (n == 0) return MDT_SUCCESS;
    MDT_REQUIRE(a && b && out, "%s: NULL tensor pointer", op);
    auto *swiglu = &swiglu_kernel<In, Out>;
    return MDT_LAUNCH(swiglu, mdt::blocks_for(n, kThreads), kThreads, 0, stream, a, b, out, n);
}

// bf16_grads: bit 0 dOut, bit 1 dx (the _bf16grad entries; 0 for the others).
template <class In>
int gelu_backward(const char *op, mdt_stream_t stream, const void *d_out, const In *x, void *dx, int64_t n,
                  int tanh_approximation, int bf16_grads) {
    if (int s = check_count(op, n)) return s;
    MDT_REQUIRE(mdt::valid_grads(bf16_grads, 2), "%s: bf16_grads %d names operands past dOut and dx", op, bf16_grads);
    if (n == 0) return MDT_SUCCESS;
    MDT_REQUIRE(d_out && x && dx, "%s: NULL tensor pointer", op);
    return MDT_LAUNCH(pointwise_backward_kernel<In>, mdt::blocks_for(n, kThreads), kThreads, 0, stream,
                      tanh_approximation ? kGeluTanh : kGeluExact, mdt::grad_in(d_out, bf16_grads, 0), x,
                      mdt::grad_out(dx, bf16_grads, 1), n);
}

// bf16_grads: bit 0 dOut, bit 1 da, bit 2 db.
template <class In>
int swiglu_backward(const char *op, mdt_stream_t stream, const void *d_out, const In *a, const In *b, void *da,
                    void *db, int64_t n, int bf16_grads) {
    if (int s = check_count(op, n)) return s;
    MDT_REQUIRE(mdt::valid_grads(bf16_grads, 3), "%s: bf16_grads %d names operands past dOut, da and db", op,
                bf16_grads);
    if (n == 0) return MDT_SUCCESS;
    MDT_REQUIRE(d_out && a && b && da && db, "%s: NULL tensor pointer", op);
    return MDT_LAUNCH(swiglu_backward_kernel<In>, mdt::blocks_for(n, kThreads), kThreads, 0, stream,
                      mdt::grad_in(d_out, bf16_grads, 0), a, b, mdt::grad_out(da, bf16_grads, 1),
                      mdt::grad_out(db, bf16_grads, 2), n);
}

}  // namespace

extern "C" {

int mdt_activations_gelu_fwd(mdt_stream_t stream, const float *x, float *out, int64_t n, int tanh_approximation) {
    return gelu_forward("mdt_activations_gelu_fwd", stream, x, out, n, tanh_approximation);
}

int mdt_activations_gelu_fwd_bf16out(mdt_stream_t stream, const float *x, uint16_t *out, int64_t n,
                                     int tanh_approximation) {
    return gelu_forward("mdt_activations_gelu_fwd_bf16out", stream, x, out, n, tanh_approximation);
}

int mdt_activations_gelu_fwd_bf16in(mdt_stream_t stream, const uint16_t *x, float *out, int64_t n,
                                    int tanh_approximation) {
    return gelu_forward("mdt_activations_gelu_fwd_bf16in", stream, x, out, n, tanh_approximation);
}

int mdt_activations_gelu_fwd_bf16in_bf16out(mdt_stream_t stream, const uint16_t *x, uint16_t *out, int64_t n,
                                            int tanh_approximation) {
    return gelu_forward("mdt_activations_gelu_fwd_bf16in_bf16out", stream, x, out, n, tanh_approximation);
}

int mdt_activations_gelu_bwd(mdt_stream_t stream, const float *d_out, const float *x, float *dx, int64_t n,
                             int tanh_approximation) {
    return gelu_backward("mdt_activations_gelu_bwd", stream, d_out, x, dx, n, tanh_approximation, 0);
}

int mdt_activations_gelu_bwd_bf16in(mdt_stream_t stream, const float *d_out, const uint16_t *x, float *dx, int64_t n,
                                    int tanh_approximation) {
    return gelu_backward("mdt_activations_gelu_bwd_bf16in", stream, d_out, x, dx, n, tanh_approximation, 0);
}

int mdt_activations_gelu_bwd_bf16grad(mdt_stream_t stream, const void *d_out, const float *x, void *dx, int64_t n,
                                      int tanh_approximation, int bf16_grads) {
    return gelu_backward("mdt_activations_gelu_bwd_bf16grad", stream, d_out, x, dx, n, tanh_approximation,
                         bf16_grads);
}

int mdt_activations_gelu_bwd_bf16in_bf16grad(mdt_stream_t stream, const void *d_out, const uint16_t *x, void *dx,
                                             int64_t n, int tanh_approximation, int bf16_grads) {
    return gelu_backward("mdt_activations_gelu_bwd_bf16in_bf16grad", stream, d_out, x, dx, n, tanh_approximation,
                         bf16_grads);
}

int mdt_activations_silu_fwd(mdt_stream_t stream, const float *x, float *out, int64_t n) {
    if (int s = check_count("mdt_activations_silu_fwd", n)) return s;
    if (n == 0) return MDT_SUCCESS;
    MDT_REQUIRE(x && out, "mdt_activations_silu_fwd: NULL tensor pointer");
    auto *pointwise = &pointwise_kernel<float, float>;
    return MDT_LAUNCH(pointwise, mdt::blocks_for(n, kThreads), kThreads, 0, stream, kSilu, x, out, n);
}

int mdt_activations_silu_bwd(mdt_stream_t stream, const float *d_out, const float *x, float *dx, int64_t n) {
    if (int s = check_count("mdt_activations_silu_bwd", n)) return s;
    if (n == 0) return MDT_SUCCESS;
    MDT_REQUIRE(d_out && x && dx, "mdt_activations_silu_bwd: NULL tensor pointer");
    return MDT_LAUNCH(pointwise_backward_kernel<float>, mdt::blocks_for(n, kThreads), kThreads, 0, stream, kSilu,
                      mdt::GradIn{d_out, false}, x, mdt::GradOut{dx, false}, n);
}

int mdt_activations_swiglu_fwd(mdt_stream_t stream, const float *a, const float *b, float *out, int64_t n) {
    return swiglu_forward("mdt_activations_swiglu_fwd", stream, a, b, out, n);
}

int mdt_activations_swiglu_fwd_bf16out(mdt_stream_t stream, const float *a, const float *b, uint16_t *out,
                                       int64_t n) {
    return swiglu_forward("mdt_activations_swiglu_fwd_bf16out", stream, a, b, out, n);
}

int mdt_activations_swiglu_fwd_bf16in(mdt_stream_t stream, const uint16_t *a, const uint16_t *b, float *out,
                                      int64_t n) {
    return swiglu_forward("mdt_activations_swiglu_fwd_bf16in", stream, a, b, out, n);
}

int mdt_activations_swiglu_fwd_bf16in_bf16out(mdt_stream_t stream, const uint16_t *a, const uint16_t *b,
                                              uint16_t *out, int64_t n) {
    return swiglu_forward("mdt_activations_swiglu_fwd_bf16in_bf16out", stream, a, b, out, n);
}

int mdt_activations_swiglu_bwd(mdt_stream_t stream, const float *d_out, const float *a, const float *b, float *da,
                               float *db, int64_t n) {
    return swiglu_backward("mdt_activations_swiglu_bwd", stream, d_out, a, b, da, db, n, 0);
}

int mdt_activations_swiglu_bwd_bf16in(mdt_stream_t stream, const float *d_out, const uint16_t *a, const uint16_t *b,
                                      float *da, float *db, int64_t n) {
    return swiglu_backward("mdt_activations_swiglu_bwd_bf16in", stream, d_out, a, b, da, db, n, 0);
}

int mdt_activations_swiglu_bwd_bf16grad(mdt_stream_t stream, const void *d_out, const float *a, const float *b,
                                        void *da, void *db, int64_t n, int bf16_grads) {
    return swiglu_backward("mdt_activations_swiglu_bwd_bf16grad", stream, d_out, a, b, da, db, n, bf16_grads);
}

int mdt_activations_swiglu_bwd_bf16in_bf16grad(mdt_stream_t stream, const void *d_out, const uint16_t *a,
                                               const uint16_t *b, void *da, void *db, int64_t n, int bf16_grads) {
    return swiglu_backward("mdt_activations_swiglu_bwd_bf16in_bf16grad", stream, d_out, a, b, da, db, n,
                           bf16_grads);
}

int mdt_activations_softmax_fwd(mdt_stream_t stream, const float *x, float *out, int64_t rows, int64_t width) {
    MDT_REQUIRE(rows >= 0 && width >= 0, "mdt_activations_softmax_fwd: negative size (rows %lld, width %lld)",
                (long long)rows, (long long)width);
    if (rows == 0 || width == 0) return MDT_SUCCESS;
    MDT_REQUIRE(x && out, "mdt_activations_softmax_fwd: NULL tensor pointer");
    return MDT_LAUNCH(softmax_kernel, mdt::blocks_for(rows, kSoftmaxThreads / 32), kSoftmaxThreads, 0, stream, x, out,
                      rows, width);
}

int mdt_activations_softmax_bwd(mdt_stream_t stream, const float *d_out, const float *y, float *dx, int64_t rows,
                                int64_t width) {
    MDT_REQUIRE(rows >= 0 && width >= 0, "mdt_activations_softmax_bwd: negative size (rows %lld, width %lld)",
                (long long)rows, (long long)width);
    if (rows == 0 || width == 0) return MDT_SUCCESS;
    MDT_REQUIRE(d_out && y && dx, "mdt_activations_softmax_bwd: NULL tensor pointer");
    return MDT_LAUNCH(softmax_backward_kernel, mdt::blocks_for(rows, kSoftmaxThreads / 32), kSoftmaxThreads, 0, stream,
                      d_out, y, dx, rows, width);
}

}  // extern "C"
