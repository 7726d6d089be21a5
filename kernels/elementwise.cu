// Elementwise ops, adaLN modulate, gated residual, column slices, fill and F32<->BF16 conversion.
// Algorithm: grid-stride loops, one element per thread per step; the per-sample (N, D) reductions of the
// backwards (dShift, dScale, dGate) give each (sample, column) to one thread that walks the tokens in order,
// so they are deterministic and need no atomics. Fusions: modulate is one FMA pass (x·(1+scale)+shift); its
// backward writes dx, dShift and dScale from one read of dOut and x. Cost per call with E elements: add/mul
// E FLOPs, 12E bytes; scale E FLOPs, 8E bytes; axpy 2E FLOPs, 12E bytes; fill 4E bytes; modulate 3E FLOPs, 8E
// bytes (+ the small per-sample rows); modulate backward 5E FLOPs, 12E bytes; gated residual 2E FLOPs, 12E bytes
// and backward 3E FLOPs, 12E bytes; conversions 6E bytes.
// The _bf16in forms read one operand as bf16 (add's b, the gated residual's f: outputs of bf16 linear layers)
// through mdt::load_as_float, exactly the results for its f32 upcast, 2 bytes per element less. The _bf16grad
// gated residual backward writes dF as f32 or bf16 (mdt::GradOut): the gradient of a bf16 f is bf16 in a bf16 graph.
#include "common.cuh"
#include "grad_operand.cuh"

namespace {

constexpr int kThreads = 256;

// B: float, or uint16_t for bf16 bits.
template <class B>
__global__ void broadcast_kernel(const float *a, const B *b, float *out, int64_t n, int64_t b_n, int multiply) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float y = mdt::load_as_float(b, i % b_n);
        out[i] = multiply ? a[i] * y : a[i] + y;
    }
}

__global__ void scale_kernel(const float *x, float alpha, float *out, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        out[i] = alpha * x[i];
    }
}

__global__ void axpy_kernel(float alpha, const float *x, float *y, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        y[i] = fmaf(alpha, x[i], y[i]);
    }
}

__global__ void fill_kernel(float *out, float value, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        out[i] = value;
    }
}

__global__ void modulate_kernel(const float *x, const float *shift, const float *scale, float *out, int64_t tokens,
                                int64_t width, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t column = i % width, sample = i / (tokens * width);
        int64_t p = sample * width + column;
        out[i] = fmaf(x[i], 1.0f + scale[p], shift[p]);
    }
}

__global__ void modulate_backward_kernel(const float *d_out, const float *x, const float *scale, float *dx,
                                         float *d_shift, float *d_scale, int64_t samples, int64_t tokens,
                                         int64_t width) {
    int64_t count = samples * width;
    for (int64_t p = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; p < count; p += (int64_t)gridDim.x * blockDim.x) {
        int64_t sample = p / width, column = p % width;
        float s = scale[p], shift_sum = 0.0f, scale_sum = 0.0f;
        for (int64_t t = 0; t < tokens; t++) {
            int64_t i = (sample * tokens + t) * width + column;
            float g = d_out[i];
            dx[i] = fmaf(g, s, g);
            shift_sum += g;
            scale_sum = fmaf(g, x[i], scale_sum);
        }
        d_shift[p] = shift_sum;
        d_scale[p] = scale_sum;
    }
}

// F: float, or uint16_t for bf16 bits.
template <class F>
__global__ void gated_residual_kernel(const float *x, const float *gate, const F *f, float *out, int64_t tokens,
                                      int64_t width, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t column = i % width, sample = i / (tokens * width);
        out[i] = fmaf(mdt::load_as_float(f, i), gate[sample * width + column], x[i]);
    }
}

template <class F>
__global__ void gated_residual_backward_kernel(const float *d_out, const float *gate, const F *f, float *d_gate,
                                               mdt::GradOut d_f, int64_t samples, int64_t tokens, int64_t width) {
    int64_t count = samples * width;
    for (int64_t p = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; p < count; p += (int64_t)gridDim.x * blockDim.x) {
        int64_t sample = p / width, column = p % width;
        float g_value = gate[p], sum = 0.0f;
        for (int64_t t = 0; t < tokens; t++) {
            int64_t i = (sample * tokens + t) * width + column;
            float g = d_out[i];
            d_f.store(i, g * g_value);
            sum = fmaf(g, mdt::load_as_float(f, i), sum);
        }
        d_gate[p] = sum;
    }
}

__global__ void slice_columns_kernel(const float *x, int64_t start, float *out, int64_t rows, int64_t columns,
                                     int64_t width, int backward) {
    int64_t n = rows * width;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / width, c = i % width;
        if (backward) {
            // x is dOut [rows, width], out is dx [rows, columns]
            out[r * columns + start + c] += x[i];
        } else {
            out[i] = x[r * columns + start + c];
        }
    }
}

__global__ void to_bf16_kernel(const float *source, uint16_t *target, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        __nv_bfloat16 b = __float2bfloat16_rn(source[i]);
        target[i] = *reinterpret_cast<uint16_t *>(&b);
    }
}

__global__ void from_bf16_kernel(const uint16_t *source, float *target, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        __nv_bfloat16 b;
        *reinterpret_cast<uint16_t *>(&b) = source[i];
        target[i] = __bfloat162float(b);
    }
}

template <class B>
int broadcast(const char *op, mdt_stream_t stream, const float *a, const B *b, float *out, int64_t n, int64_t b_n,
              int multiply) {
    MDT_REQUIRE(n >= 0 && b_n >= 0, "%s: sizes must be non-negative, got n %lld and b_n %lld", op, (long long)n,
                (long long)b_n);
    if (n == 0) return MDT_SUCCESS;
    MDT_REQUIRE(b_n > 0 && n % b_n == 0, "%s: b_n %lld must divide n %lld", op, (long long)b_n, (long long)n);
    MDT_REQUIRE(a && b && out, "%s: NULL tensor pointer", op);
    return MDT_LAUNCH(broadcast_kernel<B>, mdt::blocks_for(n, kThreads), kThreads, 0, stream, a, b, out, n, b_n,
                      multiply);
}

int check_tokens(const char *op, int64_t samples, int64_t tokens, int64_t width) {
    MDT_REQUIRE(samples >= 0 && tokens >= 0 && width >= 0, "%s: negative size (samples %lld, tokens %lld, width %lld)",
                op, (long long)samples, (long long)tokens, (long long)width);
    return MDT_SUCCESS;
}

template <class F>
int gated_residual_forward(const char *op, mdt_stream_t stream, const float *x, const float *gate, const F *f,
                           float *out, int64_t samples, int64_t tokens, int64_t width) {
    if (int s = check_tokens(op, samples, tokens, width)) return s;
    int64_t n = samples * tokens * width;
    if (n == 0) return MDT_SUCCESS;
    MDT_REQUIRE(x && gate && f && out, "%s: NULL tensor pointer", op);
    return MDT_LAUNCH(gated_residual_kernel<F>, mdt::blocks_for(n, kThreads), kThreads, 0, stream, x, gate, f, out,
                      tokens, width, n);
}

template <class F>
int gated_residual_backward(const char *op, mdt_stream_t stream, const float *d_out, const float *gate, const F *f,
                            float *d_gate, void *d_f, int64_t samples, int64_t tokens, int64_t width,
                            int bf16_grads) {
    if (int s = check_tokens(op, samples, tokens, width)) return s;
    MDT_REQUIRE(mdt::valid_grads(bf16_grads, 1), "%s: bf16_grads %d names operands past dF", op, bf16_grads);
    if (samples * width == 0) return MDT_SUCCESS;
    MDT_REQUIRE(d_out && gate && f && d_gate && d_f, "%s: NULL tensor pointer", op);
    return MDT_LAUNCH(gated_residual_backward_kernel<F>, mdt::blocks_for(samples * width, kThreads), kThreads, 0,
                      stream, d_out, gate, f, d_gate, mdt::grad_out(d_f, bf16_grads, 0), samples, tokens, width);
}

}  // namespace

extern "C" {

int mdt_elementwise_add(mdt_stream_t stream, const float *a, const float *b, float *out, int64_t n, int64_t b_n) {
    return broadcast("mdt_elementwise_add", stream, a, b, out, n, b_n, 0);
}

int mdt_elementwise_add_bf16in(mdt_stream_t stream, const float *a, const uint16_t *b, float *out, int64_t n,
                               int64_t b_n) {
    return broadcast("mdt_elementwise_add_bf16in", stream, a, b, out, n, b_n, 0);
}

int mdt_elementwise_mul(mdt_stream_t stream, const float *a, const float *b, float *out, int64_t n, int64_t b_n) {
    return broadcast("mdt_elementwise_mul", stream, a, b, out, n, b_n, 1);
}

int mdt_elementwise_scale(mdt_stream_t stream, const float *x, float alpha, float *out, int64_t n) {
    MDT_REQUIRE(n >= 0, "mdt_elementwise_scale: n must be non-negative, got %lld", (long long)n);
    if (n == 0) return MDT_SUCCESS;
    MDT_REQUIRE(x && out, "mdt_elementwise_scale: NULL tensor pointer");
    return MDT_LAUNCH(scale_kernel, mdt::blocks_for(n, kThreads), kThreads, 0, stream, x, alpha, out, n);
}

int mdt_elementwise_axpy(mdt_stream_t stream, float alpha, const float *x, float *y, int64_t n) {
    MDT_REQUIRE(n >= 0, "mdt_elementwise_axpy: n must be non-negative, got %lld", (long long)n);
    if (n == 0) return MDT_SUCCESS;
    MDT_REQUIRE(x && y, "mdt_elementwise_axpy: NULL tensor pointer");
    return MDT_LAUNCH(axpy_kernel, mdt::blocks_for(n, kThreads), kThreads, 0, stream, alpha, x, y, n);
}

int mdt_elementwise_fill(mdt_stream_t stream, float *out, float value, int64_t n) {
    MDT_REQUIRE(n >= 0, "mdt_elementwise_fill: n must be non-negative, got %lld", (long long)n);
    if (n == 0) return MDT_SUCCESS;
    MDT_REQUIRE(out, "mdt_elementwise_fill: NULL tensor pointer");
    return MDT_LAUNCH(fill_kernel, mdt::blocks_for(n, kThreads), kThreads, 0, stream, out, value, n);
}

int mdt_elementwise_modulate_fwd(mdt_stream_t stream, const float *x, const float *shift, const float *scale,
                                 float *out, int64_t samples, int64_t tokens, int64_t width) {
    if (int s = check_tokens("mdt_elementwise_modulate_fwd", samples, tokens, width)) return s;
    int64_t n = samples * tokens * width;
    if (n == 0) return MDT_SUCCESS;
    MDT_REQUIRE(x && shift && scale && out, "mdt_elementwise_modulate_fwd: NULL tensor pointer");
    return MDT_LAUNCH(modulate_kernel, mdt::blocks_for(n, kThreads), kThreads, 0, stream, x, shift, scale, out, tokens,
                      width, n);
}

int mdt_elementwise_modulate_bwd(mdt_stream_t stream, const float *d_out, const float *x, const float *scale,
                                 float *dx, float *d_shift, float *d_scale, int64_t samples, int64_t tokens,
                                 int64_t width) {
    if (int s = check_tokens("mdt_elementwise_modulate_bwd", samples, tokens, width)) return s;
    if (samples * width == 0) return MDT_SUCCESS;
    MDT_REQUIRE(d_out && x && scale && dx && d_shift && d_scale, "mdt_elementwise_modulate_bwd: NULL tensor pointer");
    return MDT_LAUNCH(modulate_backward_kernel, mdt::blocks_for(samples * width, kThreads), kThreads, 0, stream, d_out,
                      x, scale, dx, d_shift, d_scale, samples, tokens, width);
}

int mdt_elementwise_gated_residual_fwd(mdt_stream_t stream, const float *x, const float *gate, const float *f,
                                       float *out, int64_t samples, int64_t tokens, int64_t width) {
    return gated_residual_forward("mdt_elementwise_gated_residual_fwd", stream, x, gate, f, out, samples, tokens,
                                  width);
}

int mdt_elementwise_gated_residual_fwd_bf16in(mdt_stream_t stream, const float *x, const float *gate,
                                              const uint16_t *f, float *out, int64_t samples, int64_t tokens,
                                              int64_t width) {
    return gated_residual_forward("mdt_elementwise_gated_residual_fwd_bf16in", stream, x, gate, f, out, samples,
                                  tokens, width);
}

int mdt_elementwise_gated_residual_bwd(mdt_stream_t stream, const float *d_out, const float *gate, const float *f,
                                       float *d_gate, float *d_f, int64_t samples, int64_t tokens, int64_t width) {
    return gated_residual_backward("mdt_elementwise_gated_residual_bwd", stream, d_out, gate, f, d_gate, d_f, samples,
                                   tokens, width, 0);
}

int mdt_elementwise_gated_residual_bwd_bf16in(mdt_stream_t stream, const float *d_out, const float *gate,
                                              const uint16_t *f, float *d_gate, float *d_f, int64_t samples,
                                              int64_t tokens, int64_t width) {
    return gated_residual_backward("mdt_elementwise_gated_residual_bwd_bf16in", stream, d_out, gate, f, d_gate, d_f,
                                   samples, tokens, width, 0);
}

int mdt_elementwise_gated_residual_bwd_bf16grad(mdt_stream_t stream, const float *d_out, const float *gate,
                                                const float *f, float *d_gate, void *d_f, int64_t samples,
                                                int64_t tokens, int64_t width, int bf16_grads) {
    return gated_residual_backward("mdt_elementwise_gated_residual_bwd_bf16grad", stream, d_out, gate, f, d_gate, d_f,
                                   samples, tokens, width, bf16_grads);
}

int mdt_elementwise_gated_residual_bwd_bf16in_bf16grad(mdt_stream_t stream, const float *d_out, const float *gate,
                                                       const uint16_t *f, float *d_gate, void *d_f, int64_t samples,
                                                       int64_t tokens, int64_t width, int bf16_grads) {
    return gated_residual_backward("mdt_elementwise_gated_residual_bwd_bf16in_bf16grad", stream, d_out, gate, f,
                                   d_gate, d_f, samples, tokens, width, bf16_grads);
}

int mdt_elementwise_slice_columns_fwd(mdt_stream_t stream, const float *x, int64_t start, float *out, int64_t rows,
                                      int64_t columns, int64_t width) {
    MDT_REQUIRE(rows >= 0 && columns >= 0 && width >= 0 && start >= 0 && start + width <= columns,
                "mdt_elementwise_slice_columns_fwd: columns [%lld, %lld) outside [0, %lld) or negative rows %lld",
                (long long)start, (long long)(start + width), (long long)columns, (long long)rows);
    if (rows * width == 0) return MDT_SUCCESS;
    MDT_REQUIRE(x && out, "mdt_elementwise_slice_columns_fwd: NULL tensor pointer");
    return MDT_LAUNCH(slice_columns_kernel, mdt::blocks_for(rows * width, kThreads), kThreads, 0, stream, x, start, out,
                      rows, columns, width, 0);
}

int mdt_elementwise_slice_columns_bwd(mdt_stream_t stream, const float *d_out, int64_t start, float *dx, int64_t rows,
                                      int64_t columns, int64_t width) {
    MDT_REQUIRE(rows >= 0 && columns >= 0 && width >= 0 && start >= 0 && start + width <= columns,
                "mdt_elementwise_slice_columns_bwd: columns [%lld, %lld) outside [0, %lld) or negative rows %lld",
                (long long)start, (long long)(start + width), (long long)columns, (long long)rows);
    if (rows * width == 0) return MDT_SUCCESS;
    MDT_REQUIRE(d_out && dx, "mdt_elementwise_slice_columns_bwd: NULL tensor pointer");
    return MDT_LAUNCH(slice_columns_kernel, mdt::blocks_for(rows * width, kThreads), kThreads, 0, stream, d_out, start,
                      dx, rows, columns, width, 1);
}

int mdt_elementwise_f32_to_bf16(mdt_stream_t stream, const float *source, uint16_t *target, int64_t n) {
    MDT_REQUIRE(n >= 0, "mdt_elementwise_f32_to_bf16: n must be non-negative, got %lld", (long long)n);
    if (n == 0) return MDT_SUCCESS;
    MDT_REQUIRE(source && target, "mdt_elementwise_f32_to_bf16: NULL tensor pointer");
    return MDT_LAUNCH(to_bf16_kernel, mdt::blocks_for(n, kThreads), kThreads, 0, stream, source, target, n);
}

int mdt_elementwise_bf16_to_f32(mdt_stream_t stream, const uint16_t *source, float *target, int64_t n) {
    MDT_REQUIRE(n >= 0, "mdt_elementwise_bf16_to_f32: n must be non-negative, got %lld", (long long)n);
    if (n == 0) return MDT_SUCCESS;
    MDT_REQUIRE(source && target, "mdt_elementwise_bf16_to_f32: NULL tensor pointer");
    return MDT_LAUNCH(from_bf16_kernel, mdt::blocks_for(n, kThreads), kThreads, 0, stream, source, target, n);
}

}  // extern "C"
