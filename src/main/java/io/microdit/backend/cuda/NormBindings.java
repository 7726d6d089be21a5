package io.microdit.backend.cuda;

import static io.microdit.backend.cuda.Downcalls.handle;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

/**
 * FFM bindings of {@code native/include/microdit.h}'s normalisation ops ({@code kernels/norm.cu}: LayerNorm and its
 * fusions with adaLN modulate, the deferred mask's gather and the gated residual), in the header's order;
 * {@link Downcalls} says how they resolve.
 */
final class NormBindings {
    private static final MethodHandle MDT_NORM_LAYER_NORM_FWD = handle("mdt_norm_layer_norm_fwd");
    private static final MethodHandle MDT_NORM_LAYER_NORM_FWD_BF16OUT = handle("mdt_norm_layer_norm_fwd_bf16out");
    private static final MethodHandle MDT_NORM_LAYER_NORM_BWD = handle("mdt_norm_layer_norm_bwd");
    private static final MethodHandle MDT_NORM_LAYER_NORM_FWD_BF16IN = handle("mdt_norm_layer_norm_fwd_bf16in");
    private static final MethodHandle MDT_NORM_LAYER_NORM_FWD_BF16IN_BF16OUT = handle("mdt_norm_layer_norm_fwd_bf16in_bf16out");
    private static final MethodHandle MDT_NORM_LAYER_NORM_STATISTICS = handle("mdt_norm_layer_norm_statistics");
    private static final MethodHandle MDT_NORM_LAYER_NORM_BWD_BF16_ROWS = handle("mdt_norm_layer_norm_bwd_bf16_rows");
    private static final MethodHandle MDT_NORM_LAYER_NORM_BWD_BF16IN = handle("mdt_norm_layer_norm_bwd_bf16in");
    private static final MethodHandle MDT_NORM_LAYER_NORM_BWD_BF16GRAD = handle("mdt_norm_layer_norm_bwd_bf16grad");
    private static final MethodHandle MDT_NORM_LAYER_NORM_BWD_BF16IN_BF16GRAD = handle("mdt_norm_layer_norm_bwd_bf16in_bf16grad");
    private static final MethodHandle MDT_NORM_LAYER_NORM_MODULATE_FWD = handle("mdt_norm_layer_norm_modulate_fwd");
    private static final MethodHandle MDT_NORM_LAYER_NORM_MODULATE_FWD_BF16OUT = handle("mdt_norm_layer_norm_modulate_fwd_bf16out");
    private static final MethodHandle MDT_NORM_LAYER_NORM_MODULATE_BWD = handle("mdt_norm_layer_norm_modulate_bwd");
    private static final MethodHandle MDT_NORM_LAYER_NORM_MODULATE_BWD_BF16GRAD = handle("mdt_norm_layer_norm_modulate_bwd_bf16grad");
    private static final MethodHandle MDT_NORM_LAYER_NORM_BWD_ACCUMULATE = handle("mdt_norm_layer_norm_bwd_accumulate");
    private static final MethodHandle MDT_NORM_LAYER_NORM_MODULATE_BWD_ACCUMULATE = handle("mdt_norm_layer_norm_modulate_bwd_accumulate");
    private static final MethodHandle MDT_NORM_GATHER_LAYER_NORM_FWD = handle("mdt_norm_gather_layer_norm_fwd");
    private static final MethodHandle MDT_NORM_GATHER_LAYER_NORM_BWD = handle("mdt_norm_gather_layer_norm_bwd");
    private static final MethodHandle MDT_NORM_RESIDUAL_LAYER_NORM_FWD = handle("mdt_norm_residual_layer_norm_fwd");
    private static final MethodHandle MDT_NORM_RESIDUAL_LAYER_NORM_FWD_BF16COPY = handle("mdt_norm_residual_layer_norm_fwd_bf16copy");
    private static final MethodHandle MDT_NORM_RESIDUAL_LAYER_NORM_BWD = handle("mdt_norm_residual_layer_norm_bwd");

    private NormBindings() {
    }

    public static int mdt_norm_layer_norm_fwd(MemorySegment stream, MemorySegment x, MemorySegment weight, float eps, MemorySegment out, MemorySegment mean, MemorySegment rstd, long rows, long width) {
        try {
            return (int) MDT_NORM_LAYER_NORM_FWD.invokeExact(stream, x, weight, eps, out, mean, rstd, rows, width);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_layer_norm_fwd threw", error);
        }
    }

    public static int mdt_norm_layer_norm_fwd_bf16out(MemorySegment stream, MemorySegment x, MemorySegment weight, float eps, MemorySegment out, MemorySegment mean, MemorySegment rstd, long rows, long width) {
        try {
            return (int) MDT_NORM_LAYER_NORM_FWD_BF16OUT.invokeExact(stream, x, weight, eps, out, mean, rstd, rows, width);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_layer_norm_fwd_bf16out threw", error);
        }
    }

    public static int mdt_norm_layer_norm_bwd(MemorySegment stream, MemorySegment dOut, MemorySegment x, MemorySegment weight, MemorySegment mean, MemorySegment rstd, MemorySegment dx, MemorySegment dWeight, long rows, long width, MemorySegment workspace, long workspaceCapacity) {
        try {
            return (int) MDT_NORM_LAYER_NORM_BWD.invokeExact(stream, dOut, x, weight, mean, rstd, dx, dWeight, rows, width, workspace, workspaceCapacity);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_layer_norm_bwd threw", error);
        }
    }

    public static int mdt_norm_layer_norm_fwd_bf16in(MemorySegment stream, MemorySegment x, MemorySegment weight, float eps, MemorySegment out, MemorySegment mean, MemorySegment rstd, long rows, long width) {
        try {
            return (int) MDT_NORM_LAYER_NORM_FWD_BF16IN.invokeExact(stream, x, weight, eps, out, mean, rstd, rows, width);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_layer_norm_fwd_bf16in threw", error);
        }
    }

    public static int mdt_norm_layer_norm_fwd_bf16in_bf16out(MemorySegment stream, MemorySegment x, MemorySegment weight, float eps, MemorySegment out, MemorySegment mean, MemorySegment rstd, long rows, long width) {
        try {
            return (int) MDT_NORM_LAYER_NORM_FWD_BF16IN_BF16OUT.invokeExact(stream, x, weight, eps, out, mean, rstd, rows, width);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_layer_norm_fwd_bf16in_bf16out threw", error);
        }
    }

    public static int mdt_norm_layer_norm_statistics(MemorySegment stream, MemorySegment x, float eps, MemorySegment out, MemorySegment mean, MemorySegment rstd, MemorySegment center, long rows, long width, long xStride, int bf16Operands) {
        try {
            return (int) MDT_NORM_LAYER_NORM_STATISTICS.invokeExact(stream, x, eps, out, mean, rstd, center, rows, width, xStride, bf16Operands);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_layer_norm_statistics threw", error);
        }
    }

    public static int mdt_norm_layer_norm_bwd_bf16_rows(MemorySegment stream, MemorySegment dOut, MemorySegment x, MemorySegment mean, MemorySegment rstd, MemorySegment dx, long rows, long width, long rowStride) {
        try {
            return (int) MDT_NORM_LAYER_NORM_BWD_BF16_ROWS.invokeExact(stream, dOut, x, mean, rstd, dx, rows, width, rowStride);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_layer_norm_bwd_bf16_rows threw", error);
        }
    }

    public static int mdt_norm_layer_norm_bwd_bf16in(MemorySegment stream, MemorySegment dOut, MemorySegment x, MemorySegment weight, MemorySegment mean, MemorySegment rstd, MemorySegment dx, MemorySegment dWeight, long rows, long width, MemorySegment workspace, long workspaceCapacity) {
        try {
            return (int) MDT_NORM_LAYER_NORM_BWD_BF16IN.invokeExact(stream, dOut, x, weight, mean, rstd, dx, dWeight, rows, width, workspace, workspaceCapacity);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_layer_norm_bwd_bf16in threw", error);
        }
    }

    public static int mdt_norm_layer_norm_bwd_bf16grad(MemorySegment stream, MemorySegment dOut, MemorySegment x, MemorySegment weight, MemorySegment mean, MemorySegment rstd, MemorySegment dx, MemorySegment dWeight, long rows, long width, MemorySegment workspace, long workspaceCapacity, int bf16Grads) {
        try {
            return (int) MDT_NORM_LAYER_NORM_BWD_BF16GRAD.invokeExact(stream, dOut, x, weight, mean, rstd, dx, dWeight, rows, width, workspace, workspaceCapacity, bf16Grads);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_layer_norm_bwd_bf16grad threw", error);
        }
    }

    public static int mdt_norm_layer_norm_bwd_bf16in_bf16grad(MemorySegment stream, MemorySegment dOut, MemorySegment x, MemorySegment weight, MemorySegment mean, MemorySegment rstd, MemorySegment dx, MemorySegment dWeight, long rows, long width, MemorySegment workspace, long workspaceCapacity, int bf16Grads) {
        try {
            return (int) MDT_NORM_LAYER_NORM_BWD_BF16IN_BF16GRAD.invokeExact(stream, dOut, x, weight, mean, rstd, dx, dWeight, rows, width, workspace, workspaceCapacity, bf16Grads);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_layer_norm_bwd_bf16in_bf16grad threw", error);
        }
    }

    public static int mdt_norm_layer_norm_modulate_fwd(MemorySegment stream, MemorySegment x, MemorySegment weight, MemorySegment shift, MemorySegment scale, float eps, MemorySegment out, MemorySegment mean, MemorySegment rstd, long samples, long tokens, long width) {
        try {
            return (int) MDT_NORM_LAYER_NORM_MODULATE_FWD.invokeExact(stream, x, weight, shift, scale, eps, out, mean, rstd, samples, tokens, width);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_layer_norm_modulate_fwd threw", error);
        }
    }

    public static int mdt_norm_layer_norm_modulate_fwd_bf16out(MemorySegment stream, MemorySegment x, MemorySegment weight, MemorySegment shift, MemorySegment scale, float eps, MemorySegment out, MemorySegment mean, MemorySegment rstd, long samples, long tokens, long width) {
        try {
            return (int) MDT_NORM_LAYER_NORM_MODULATE_FWD_BF16OUT.invokeExact(stream, x, weight, shift, scale, eps, out, mean, rstd, samples, tokens, width);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_layer_norm_modulate_fwd_bf16out threw", error);
        }
    }

    public static int mdt_norm_layer_norm_modulate_bwd(MemorySegment stream, MemorySegment dOut, MemorySegment x, MemorySegment weight, MemorySegment scale, MemorySegment mean, MemorySegment rstd, MemorySegment dx, MemorySegment dWeight, MemorySegment dShift, MemorySegment dScale, long samples, long tokens, long width, MemorySegment workspace, long workspaceCapacity) {
        try {
            return (int) MDT_NORM_LAYER_NORM_MODULATE_BWD.invokeExact(stream, dOut, x, weight, scale, mean, rstd, dx, dWeight, dShift, dScale, samples, tokens, width, workspace, workspaceCapacity);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_layer_norm_modulate_bwd threw", error);
        }
    }

    public static int mdt_norm_layer_norm_modulate_bwd_bf16grad(MemorySegment stream, MemorySegment dOut, MemorySegment x, MemorySegment weight, MemorySegment scale, MemorySegment mean, MemorySegment rstd, MemorySegment dx, MemorySegment dWeight, MemorySegment dShift, MemorySegment dScale, long samples, long tokens, long width, MemorySegment workspace, long workspaceCapacity, int bf16Grads) {
        try {
            return (int) MDT_NORM_LAYER_NORM_MODULATE_BWD_BF16GRAD.invokeExact(stream, dOut, x, weight, scale, mean, rstd, dx, dWeight, dShift, dScale, samples, tokens, width, workspace, workspaceCapacity, bf16Grads);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_layer_norm_modulate_bwd_bf16grad threw", error);
        }
    }

    public static int mdt_norm_layer_norm_bwd_accumulate(MemorySegment stream, MemorySegment dOut, MemorySegment x, MemorySegment weight, MemorySegment mean, MemorySegment rstd, MemorySegment dx, MemorySegment dWeight, long rows, long width, MemorySegment workspace, long workspaceCapacity, int bf16Operands) {
        try {
            return (int) MDT_NORM_LAYER_NORM_BWD_ACCUMULATE.invokeExact(stream, dOut, x, weight, mean, rstd, dx, dWeight, rows, width, workspace, workspaceCapacity, bf16Operands);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_layer_norm_bwd_accumulate threw", error);
        }
    }

    public static int mdt_norm_layer_norm_modulate_bwd_accumulate(MemorySegment stream, MemorySegment dOut, MemorySegment x, MemorySegment weight, MemorySegment scale, MemorySegment mean, MemorySegment rstd, MemorySegment dx, MemorySegment dWeight, MemorySegment dShift, MemorySegment dScale, long samples, long tokens, long width, MemorySegment workspace, long workspaceCapacity, int bf16Grads) {
        try {
            return (int) MDT_NORM_LAYER_NORM_MODULATE_BWD_ACCUMULATE.invokeExact(stream, dOut, x, weight, scale, mean, rstd, dx, dWeight, dShift, dScale, samples, tokens, width, workspace, workspaceCapacity, bf16Grads);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_layer_norm_modulate_bwd_accumulate threw", error);
        }
    }

    public static int mdt_norm_gather_layer_norm_fwd(MemorySegment stream, MemorySegment x, MemorySegment ids, MemorySegment weight, float eps, MemorySegment out, MemorySegment mean, MemorySegment rstd, long samples, long tokens, long kept, long width, int bf16Out, MemorySegment errorRecord) {
        try {
            return (int) MDT_NORM_GATHER_LAYER_NORM_FWD.invokeExact(stream, x, ids, weight, eps, out, mean, rstd, samples, tokens, kept, width, bf16Out, errorRecord);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_gather_layer_norm_fwd threw", error);
        }
    }

    public static int mdt_norm_gather_layer_norm_bwd(MemorySegment stream, MemorySegment dOut, MemorySegment x, MemorySegment ids, MemorySegment weight, MemorySegment mean, MemorySegment rstd, MemorySegment dx, MemorySegment dWeight, long samples, long tokens, long kept, long width, MemorySegment workspace, long workspaceCapacity, int bf16DOut, int accumulate, MemorySegment errorRecord) {
        try {
            return (int) MDT_NORM_GATHER_LAYER_NORM_BWD.invokeExact(stream, dOut, x, ids, weight, mean, rstd, dx, dWeight, samples, tokens, kept, width, workspace, workspaceCapacity, bf16DOut, accumulate, errorRecord);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_gather_layer_norm_bwd threw", error);
        }
    }

    public static int mdt_norm_residual_layer_norm_fwd(MemorySegment stream, MemorySegment x, MemorySegment gate, MemorySegment f, MemorySegment weight, MemorySegment shift, MemorySegment scale, float eps, MemorySegment residual, MemorySegment out, MemorySegment mean, MemorySegment rstd, long samples, long tokens, long width, int bf16Operands) {
        try {
            return (int) MDT_NORM_RESIDUAL_LAYER_NORM_FWD.invokeExact(stream, x, gate, f, weight, shift, scale, eps, residual, out, mean, rstd, samples, tokens, width, bf16Operands);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_residual_layer_norm_fwd threw", error);
        }
    }

    public static int mdt_norm_residual_layer_norm_fwd_bf16copy(MemorySegment stream, MemorySegment x, MemorySegment gate, MemorySegment f, MemorySegment weight, MemorySegment shift, MemorySegment scale, float eps, MemorySegment residual, MemorySegment out, MemorySegment outBf16, MemorySegment mean, MemorySegment rstd, long samples, long tokens, long width, int bf16F) {
        try {
            return (int) MDT_NORM_RESIDUAL_LAYER_NORM_FWD_BF16COPY.invokeExact(stream, x, gate, f, weight, shift, scale, eps, residual, out, outBf16, mean, rstd, samples, tokens, width, bf16F);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_residual_layer_norm_fwd_bf16copy threw", error);
        }
    }

    public static int mdt_norm_residual_layer_norm_bwd(MemorySegment stream, MemorySegment dOut, MemorySegment dResidual, MemorySegment residual, MemorySegment gate, MemorySegment f, MemorySegment weight, MemorySegment scale, MemorySegment mean, MemorySegment rstd, MemorySegment dx, MemorySegment dWeight, MemorySegment dShift, MemorySegment dScale, MemorySegment dGate, MemorySegment dF, long samples, long tokens, long width, MemorySegment workspace, long workspaceCapacity, int bf16Operands) {
        try {
            return (int) MDT_NORM_RESIDUAL_LAYER_NORM_BWD.invokeExact(stream, dOut, dResidual, residual, gate, f, weight, scale, mean, rstd, dx, dWeight, dShift, dScale, dGate, dF, samples, tokens, width, workspace, workspaceCapacity, bf16Operands);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_residual_layer_norm_bwd threw", error);
        }
    }
}
