package io.microdit.backend.cuda;

import static io.microdit.backend.cuda.Downcalls.handle;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

/**
 * FFM bindings of {@code native/include/microdit.h}'s elementwise ops ({@code kernels/elementwise.cu}: add, scale,
 * adaLN modulate, gated residual, column slices, f32/bf16 conversion) and activations ({@code kernels/activations.cu}:
 * GELU, SiLU, SwiGLU, softmax), in the header's order; {@link Downcalls} says how they resolve.
 */
final class ElementwiseBindings {
    private static final MethodHandle MDT_ELEMENTWISE_ADD = handle("mdt_elementwise_add");
    private static final MethodHandle MDT_ELEMENTWISE_ADD_BF16IN = handle("mdt_elementwise_add_bf16in");
    private static final MethodHandle MDT_ELEMENTWISE_MUL = handle("mdt_elementwise_mul");
    private static final MethodHandle MDT_ELEMENTWISE_SCALE = handle("mdt_elementwise_scale");
    private static final MethodHandle MDT_ELEMENTWISE_AXPY = handle("mdt_elementwise_axpy");
    private static final MethodHandle MDT_ELEMENTWISE_FILL = handle("mdt_elementwise_fill");
    private static final MethodHandle MDT_ELEMENTWISE_MODULATE_FWD = handle("mdt_elementwise_modulate_fwd");
    private static final MethodHandle MDT_ELEMENTWISE_MODULATE_BWD = handle("mdt_elementwise_modulate_bwd");
    private static final MethodHandle MDT_ELEMENTWISE_GATED_RESIDUAL_FWD = handle("mdt_elementwise_gated_residual_fwd");
    private static final MethodHandle MDT_ELEMENTWISE_GATED_RESIDUAL_BWD = handle("mdt_elementwise_gated_residual_bwd");
    private static final MethodHandle MDT_ELEMENTWISE_GATED_RESIDUAL_FWD_BF16IN = handle("mdt_elementwise_gated_residual_fwd_bf16in");
    private static final MethodHandle MDT_ELEMENTWISE_GATED_RESIDUAL_BWD_BF16IN = handle("mdt_elementwise_gated_residual_bwd_bf16in");
    private static final MethodHandle MDT_ELEMENTWISE_GATED_RESIDUAL_BWD_BF16GRAD = handle("mdt_elementwise_gated_residual_bwd_bf16grad");
    private static final MethodHandle MDT_ELEMENTWISE_GATED_RESIDUAL_BWD_BF16IN_BF16GRAD = handle("mdt_elementwise_gated_residual_bwd_bf16in_bf16grad");
    private static final MethodHandle MDT_ELEMENTWISE_SLICE_COLUMNS_FWD = handle("mdt_elementwise_slice_columns_fwd");
    private static final MethodHandle MDT_ELEMENTWISE_SLICE_COLUMNS_BWD = handle("mdt_elementwise_slice_columns_bwd");
    private static final MethodHandle MDT_ELEMENTWISE_F32_TO_BF16 = handle("mdt_elementwise_f32_to_bf16");
    private static final MethodHandle MDT_ELEMENTWISE_BF16_TO_F32 = handle("mdt_elementwise_bf16_to_f32");
    private static final MethodHandle MDT_ACTIVATIONS_GELU_FWD = handle("mdt_activations_gelu_fwd");
    private static final MethodHandle MDT_ACTIVATIONS_GELU_FWD_BF16OUT = handle("mdt_activations_gelu_fwd_bf16out");
    private static final MethodHandle MDT_ACTIVATIONS_GELU_BWD = handle("mdt_activations_gelu_bwd");
    private static final MethodHandle MDT_ACTIVATIONS_GELU_FWD_BF16IN = handle("mdt_activations_gelu_fwd_bf16in");
    private static final MethodHandle MDT_ACTIVATIONS_GELU_FWD_BF16IN_BF16OUT = handle("mdt_activations_gelu_fwd_bf16in_bf16out");
    private static final MethodHandle MDT_ACTIVATIONS_GELU_BWD_BF16IN = handle("mdt_activations_gelu_bwd_bf16in");
    private static final MethodHandle MDT_ACTIVATIONS_GELU_BWD_BF16GRAD = handle("mdt_activations_gelu_bwd_bf16grad");
    private static final MethodHandle MDT_ACTIVATIONS_GELU_BWD_BF16IN_BF16GRAD = handle("mdt_activations_gelu_bwd_bf16in_bf16grad");
    private static final MethodHandle MDT_ACTIVATIONS_SILU_FWD = handle("mdt_activations_silu_fwd");
    private static final MethodHandle MDT_ACTIVATIONS_SILU_BWD = handle("mdt_activations_silu_bwd");
    private static final MethodHandle MDT_ACTIVATIONS_SWIGLU_FWD = handle("mdt_activations_swiglu_fwd");
    private static final MethodHandle MDT_ACTIVATIONS_SWIGLU_FWD_BF16OUT = handle("mdt_activations_swiglu_fwd_bf16out");
    private static final MethodHandle MDT_ACTIVATIONS_SWIGLU_BWD = handle("mdt_activations_swiglu_bwd");
    private static final MethodHandle MDT_ACTIVATIONS_SWIGLU_FWD_BF16IN = handle("mdt_activations_swiglu_fwd_bf16in");
    private static final MethodHandle MDT_ACTIVATIONS_SWIGLU_FWD_BF16IN_BF16OUT = handle("mdt_activations_swiglu_fwd_bf16in_bf16out");
    private static final MethodHandle MDT_ACTIVATIONS_SWIGLU_BWD_BF16IN = handle("mdt_activations_swiglu_bwd_bf16in");
    private static final MethodHandle MDT_ACTIVATIONS_SWIGLU_BWD_BF16GRAD = handle("mdt_activations_swiglu_bwd_bf16grad");
    private static final MethodHandle MDT_ACTIVATIONS_SWIGLU_BWD_BF16IN_BF16GRAD = handle("mdt_activations_swiglu_bwd_bf16in_bf16grad");
    private static final MethodHandle MDT_ACTIVATIONS_SOFTMAX_FWD = handle("mdt_activations_softmax_fwd");
    private static final MethodHandle MDT_ACTIVATIONS_SOFTMAX_BWD = handle("mdt_activations_softmax_bwd");

    private ElementwiseBindings() {
    }

    public static int mdt_elementwise_add(MemorySegment stream, MemorySegment a, MemorySegment b, MemorySegment out, long n, long bN) {
        try {
            return (int) MDT_ELEMENTWISE_ADD.invokeExact(stream, a, b, out, n, bN);
        } catch (Throwable error) {
            throw new AssertionError("mdt_elementwise_add threw", error);
        }
    }

    public static int mdt_elementwise_add_bf16in(MemorySegment stream, MemorySegment a, MemorySegment b, MemorySegment out, long n, long bN) {
        try {
            return (int) MDT_ELEMENTWISE_ADD_BF16IN.invokeExact(stream, a, b, out, n, bN);
        } catch (Throwable error) {
            throw new AssertionError("mdt_elementwise_add_bf16in threw", error);
        }
    }

    public static int mdt_elementwise_mul(MemorySegment stream, MemorySegment a, MemorySegment b, MemorySegment out, long n, long bN) {
        try {
            return (int) MDT_ELEMENTWISE_MUL.invokeExact(stream, a, b, out, n, bN);
        } catch (Throwable error) {
            throw new AssertionError("mdt_elementwise_mul threw", error);
        }
    }

    public static int mdt_elementwise_scale(MemorySegment stream, MemorySegment x, float alpha, MemorySegment out, long n) {
        try {
            return (int) MDT_ELEMENTWISE_SCALE.invokeExact(stream, x, alpha, out, n);
        } catch (Throwable error) {
            throw new AssertionError("mdt_elementwise_scale threw", error);
        }
    }

    public static int mdt_elementwise_axpy(MemorySegment stream, float alpha, MemorySegment x, MemorySegment y, long n) {
        try {
            return (int) MDT_ELEMENTWISE_AXPY.invokeExact(stream, alpha, x, y, n);
        } catch (Throwable error) {
            throw new AssertionError("mdt_elementwise_axpy threw", error);
        }
    }

    public static int mdt_elementwise_fill(MemorySegment stream, MemorySegment out, float value, long n) {
        try {
            return (int) MDT_ELEMENTWISE_FILL.invokeExact(stream, out, value, n);
        } catch (Throwable error) {
            throw new AssertionError("mdt_elementwise_fill threw", error);
        }
    }

    public static int mdt_elementwise_modulate_fwd(MemorySegment stream, MemorySegment x, MemorySegment shift, MemorySegment scale, MemorySegment out, long samples, long tokens, long width) {
        try {
            return (int) MDT_ELEMENTWISE_MODULATE_FWD.invokeExact(stream, x, shift, scale, out, samples, tokens, width);
        } catch (Throwable error) {
            throw new AssertionError("mdt_elementwise_modulate_fwd threw", error);
        }
    }

    public static int mdt_elementwise_modulate_bwd(MemorySegment stream, MemorySegment dOut, MemorySegment x, MemorySegment scale, MemorySegment dx, MemorySegment dShift, MemorySegment dScale, long samples, long tokens, long width) {
        try {
            return (int) MDT_ELEMENTWISE_MODULATE_BWD.invokeExact(stream, dOut, x, scale, dx, dShift, dScale, samples, tokens, width);
        } catch (Throwable error) {
            throw new AssertionError("mdt_elementwise_modulate_bwd threw", error);
        }
    }

    public static int mdt_elementwise_gated_residual_fwd(MemorySegment stream, MemorySegment x, MemorySegment gate, MemorySegment f, MemorySegment out, long samples, long tokens, long width) {
        try {
            return (int) MDT_ELEMENTWISE_GATED_RESIDUAL_FWD.invokeExact(stream, x, gate, f, out, samples, tokens, width);
        } catch (Throwable error) {
            throw new AssertionError("mdt_elementwise_gated_residual_fwd threw", error);
        }
    }

    public static int mdt_elementwise_gated_residual_bwd(MemorySegment stream, MemorySegment dOut, MemorySegment gate, MemorySegment f, MemorySegment dGate, MemorySegment dF, long samples, long tokens, long width) {
        try {
            return (int) MDT_ELEMENTWISE_GATED_RESIDUAL_BWD.invokeExact(stream, dOut, gate, f, dGate, dF, samples, tokens, width);
        } catch (Throwable error) {
            throw new AssertionError("mdt_elementwise_gated_residual_bwd threw", error);
        }
    }

    public static int mdt_elementwise_gated_residual_fwd_bf16in(MemorySegment stream, MemorySegment x, MemorySegment gate, MemorySegment f, MemorySegment out, long samples, long tokens, long width) {
        try {
            return (int) MDT_ELEMENTWISE_GATED_RESIDUAL_FWD_BF16IN.invokeExact(stream, x, gate, f, out, samples, tokens, width);
        } catch (Throwable error) {
            throw new AssertionError("mdt_elementwise_gated_residual_fwd_bf16in threw", error);
        }
    }

    public static int mdt_elementwise_gated_residual_bwd_bf16in(MemorySegment stream, MemorySegment dOut, MemorySegment gate, MemorySegment f, MemorySegment dGate, MemorySegment dF, long samples, long tokens, long width) {
        try {
            return (int) MDT_ELEMENTWISE_GATED_RESIDUAL_BWD_BF16IN.invokeExact(stream, dOut, gate, f, dGate, dF, samples, tokens, width);
        } catch (Throwable error) {
            throw new AssertionError("mdt_elementwise_gated_residual_bwd_bf16in threw", error);
        }
    }

    public static int mdt_elementwise_gated_residual_bwd_bf16grad(MemorySegment stream, MemorySegment dOut, MemorySegment gate, MemorySegment f, MemorySegment dGate, MemorySegment dF, long samples, long tokens, long width, int bf16Grads) {
        try {
            return (int) MDT_ELEMENTWISE_GATED_RESIDUAL_BWD_BF16GRAD.invokeExact(stream, dOut, gate, f, dGate, dF, samples, tokens, width, bf16Grads);
        } catch (Throwable error) {
            throw new AssertionError("mdt_elementwise_gated_residual_bwd_bf16grad threw", error);
        }
    }

    public static int mdt_elementwise_gated_residual_bwd_bf16in_bf16grad(MemorySegment stream, MemorySegment dOut, MemorySegment gate, MemorySegment f, MemorySegment dGate, MemorySegment dF, long samples, long tokens, long width, int bf16Grads) {
        try {
            return (int) MDT_ELEMENTWISE_GATED_RESIDUAL_BWD_BF16IN_BF16GRAD.invokeExact(stream, dOut, gate, f, dGate, dF, samples, tokens, width, bf16Grads);
        } catch (Throwable error) {
            throw new AssertionError("mdt_elementwise_gated_residual_bwd_bf16in_bf16grad threw", error);
        }
    }

    public static int mdt_elementwise_slice_columns_fwd(MemorySegment stream, MemorySegment x, long start, MemorySegment out, long rows, long columns, long width) {
        try {
            return (int) MDT_ELEMENTWISE_SLICE_COLUMNS_FWD.invokeExact(stream, x, start, out, rows, columns, width);
        } catch (Throwable error) {
            throw new AssertionError("mdt_elementwise_slice_columns_fwd threw", error);
        }
    }

    public static int mdt_elementwise_slice_columns_bwd(MemorySegment stream, MemorySegment dOut, long start, MemorySegment dx, long rows, long columns, long width) {
        try {
            return (int) MDT_ELEMENTWISE_SLICE_COLUMNS_BWD.invokeExact(stream, dOut, start, dx, rows, columns, width);
        } catch (Throwable error) {
            throw new AssertionError("mdt_elementwise_slice_columns_bwd threw", error);
        }
    }

    public static int mdt_elementwise_f32_to_bf16(MemorySegment stream, MemorySegment source, MemorySegment target, long n) {
        try {
            return (int) MDT_ELEMENTWISE_F32_TO_BF16.invokeExact(stream, source, target, n);
        } catch (Throwable error) {
            throw new AssertionError("mdt_elementwise_f32_to_bf16 threw", error);
        }
    }

    public static int mdt_elementwise_bf16_to_f32(MemorySegment stream, MemorySegment source, MemorySegment target, long n) {
        try {
            return (int) MDT_ELEMENTWISE_BF16_TO_F32.invokeExact(stream, source, target, n);
        } catch (Throwable error) {
            throw new AssertionError("mdt_elementwise_bf16_to_f32 threw", error);
        }
    }

    public static int mdt_activations_gelu_fwd(MemorySegment stream, MemorySegment x, MemorySegment out, long n, int tanhApproximation) {
        try {
            return (int) MDT_ACTIVATIONS_GELU_FWD.invokeExact(stream, x, out, n, tanhApproximation);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_gelu_fwd threw", error);
        }
    }

    public static int mdt_activations_gelu_fwd_bf16out(MemorySegment stream, MemorySegment x, MemorySegment out, long n, int tanhApproximation) {
        try {
            return (int) MDT_ACTIVATIONS_GELU_FWD_BF16OUT.invokeExact(stream, x, out, n, tanhApproximation);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_gelu_fwd_bf16out threw", error);
        }
    }

    public static int mdt_activations_gelu_bwd(MemorySegment stream, MemorySegment dOut, MemorySegment x, MemorySegment dx, long n, int tanhApproximation) {
        try {
            return (int) MDT_ACTIVATIONS_GELU_BWD.invokeExact(stream, dOut, x, dx, n, tanhApproximation);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_gelu_bwd threw", error);
        }
    }

    public static int mdt_activations_gelu_fwd_bf16in(MemorySegment stream, MemorySegment x, MemorySegment out, long n, int tanhApproximation) {
        try {
            return (int) MDT_ACTIVATIONS_GELU_FWD_BF16IN.invokeExact(stream, x, out, n, tanhApproximation);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_gelu_fwd_bf16in threw", error);
        }
    }

    public static int mdt_activations_gelu_fwd_bf16in_bf16out(MemorySegment stream, MemorySegment x, MemorySegment out, long n, int tanhApproximation) {
        try {
            return (int) MDT_ACTIVATIONS_GELU_FWD_BF16IN_BF16OUT.invokeExact(stream, x, out, n, tanhApproximation);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_gelu_fwd_bf16in_bf16out threw", error);
        }
    }

    public static int mdt_activations_gelu_bwd_bf16in(MemorySegment stream, MemorySegment dOut, MemorySegment x, MemorySegment dx, long n, int tanhApproximation) {
        try {
            return (int) MDT_ACTIVATIONS_GELU_BWD_BF16IN.invokeExact(stream, dOut, x, dx, n, tanhApproximation);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_gelu_bwd_bf16in threw", error);
        }
    }

    public static int mdt_activations_gelu_bwd_bf16grad(MemorySegment stream, MemorySegment dOut, MemorySegment x, MemorySegment dx, long n, int tanhApproximation, int bf16Grads) {
        try {
            return (int) MDT_ACTIVATIONS_GELU_BWD_BF16GRAD.invokeExact(stream, dOut, x, dx, n, tanhApproximation, bf16Grads);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_gelu_bwd_bf16grad threw", error);
        }
    }

    public static int mdt_activations_gelu_bwd_bf16in_bf16grad(MemorySegment stream, MemorySegment dOut, MemorySegment x, MemorySegment dx, long n, int tanhApproximation, int bf16Grads) {
        try {
            return (int) MDT_ACTIVATIONS_GELU_BWD_BF16IN_BF16GRAD.invokeExact(stream, dOut, x, dx, n, tanhApproximation, bf16Grads);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_gelu_bwd_bf16in_bf16grad threw", error);
        }
    }

    public static int mdt_activations_silu_fwd(MemorySegment stream, MemorySegment x, MemorySegment out, long n) {
        try {
            return (int) MDT_ACTIVATIONS_SILU_FWD.invokeExact(stream, x, out, n);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_silu_fwd threw", error);
        }
    }

    public static int mdt_activations_silu_bwd(MemorySegment stream, MemorySegment dOut, MemorySegment x, MemorySegment dx, long n) {
        try {
            return (int) MDT_ACTIVATIONS_SILU_BWD.invokeExact(stream, dOut, x, dx, n);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_silu_bwd threw", error);
        }
    }

    public static int mdt_activations_swiglu_fwd(MemorySegment stream, MemorySegment a, MemorySegment b, MemorySegment out, long n) {
        try {
            return (int) MDT_ACTIVATIONS_SWIGLU_FWD.invokeExact(stream, a, b, out, n);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_swiglu_fwd threw", error);
        }
    }

    public static int mdt_activations_swiglu_fwd_bf16out(MemorySegment stream, MemorySegment a, MemorySegment b, MemorySegment out, long n) {
        try {
            return (int) MDT_ACTIVATIONS_SWIGLU_FWD_BF16OUT.invokeExact(stream, a, b, out, n);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_swiglu_fwd_bf16out threw", error);
        }
    }

    public static int mdt_activations_swiglu_bwd(MemorySegment stream, MemorySegment dOut, MemorySegment a, MemorySegment b, MemorySegment da, MemorySegment db, long n) {
        try {
            return (int) MDT_ACTIVATIONS_SWIGLU_BWD.invokeExact(stream, dOut, a, b, da, db, n);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_swiglu_bwd threw", error);
        }
    }

    public static int mdt_activations_swiglu_fwd_bf16in(MemorySegment stream, MemorySegment a, MemorySegment b, MemorySegment out, long n) {
        try {
            return (int) MDT_ACTIVATIONS_SWIGLU_FWD_BF16IN.invokeExact(stream, a, b, out, n);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_swiglu_fwd_bf16in threw", error);
        }
    }

    public static int mdt_activations_swiglu_fwd_bf16in_bf16out(MemorySegment stream, MemorySegment a, MemorySegment b, MemorySegment out, long n) {
        try {
            return (int) MDT_ACTIVATIONS_SWIGLU_FWD_BF16IN_BF16OUT.invokeExact(stream, a, b, out, n);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_swiglu_fwd_bf16in_bf16out threw", error);
        }
    }

    public static int mdt_activations_swiglu_bwd_bf16in(MemorySegment stream, MemorySegment dOut, MemorySegment a, MemorySegment b, MemorySegment da, MemorySegment db, long n) {
        try {
            return (int) MDT_ACTIVATIONS_SWIGLU_BWD_BF16IN.invokeExact(stream, dOut, a, b, da, db, n);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_swiglu_bwd_bf16in threw", error);
        }
    }

    public static int mdt_activations_swiglu_bwd_bf16grad(MemorySegment stream, MemorySegment dOut, MemorySegment a, MemorySegment b, MemorySegment da, MemorySegment db, long n, int bf16Grads) {
        try {
            return (int) MDT_ACTIVATIONS_SWIGLU_BWD_BF16GRAD.invokeExact(stream, dOut, a, b, da, db, n, bf16Grads);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_swiglu_bwd_bf16grad threw", error);
        }
    }

    public static int mdt_activations_swiglu_bwd_bf16in_bf16grad(MemorySegment stream, MemorySegment dOut, MemorySegment a, MemorySegment b, MemorySegment da, MemorySegment db, long n, int bf16Grads) {
        try {
            return (int) MDT_ACTIVATIONS_SWIGLU_BWD_BF16IN_BF16GRAD.invokeExact(stream, dOut, a, b, da, db, n, bf16Grads);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_swiglu_bwd_bf16in_bf16grad threw", error);
        }
    }

    public static int mdt_activations_softmax_fwd(MemorySegment stream, MemorySegment x, MemorySegment out, long rows, long width) {
        try {
            return (int) MDT_ACTIVATIONS_SOFTMAX_FWD.invokeExact(stream, x, out, rows, width);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_softmax_fwd threw", error);
        }
    }

    public static int mdt_activations_softmax_bwd(MemorySegment stream, MemorySegment dOut, MemorySegment y, MemorySegment dx, long rows, long width) {
        try {
            return (int) MDT_ACTIVATIONS_SOFTMAX_BWD.invokeExact(stream, dOut, y, dx, rows, width);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_softmax_bwd threw", error);
        }
    }
}
