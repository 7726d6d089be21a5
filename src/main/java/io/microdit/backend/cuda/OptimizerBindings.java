package io.microdit.backend.cuda;

import static io.microdit.backend.cuda.Downcalls.handle;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

/**
 * FFM bindings of {@code native/include/microdit.h}'s optimizer ops ({@code kernels/optim.cu}: AdamW, EMA, sums of
 * squares for the gradient norm, over one tensor or a device list of them), in the header's order; {@link Downcalls}
 * says how they resolve.
 */
final class OptimizerBindings {
    private static final MethodHandle MDT_OPTIM_ADAMW = handle("mdt_optim_adamw");
    private static final MethodHandle MDT_OPTIM_EMA = handle("mdt_optim_ema");
    private static final MethodHandle MDT_OPTIM_SUM_OF_SQUARES = handle("mdt_optim_sum_of_squares");
    private static final MethodHandle MDT_OPTIM_ADAMW_MULTI = handle("mdt_optim_adamw_multi");
    private static final MethodHandle MDT_OPTIM_ADAMW_BF16_COPY_MULTI = handle("mdt_optim_adamw_bf16_copy_multi");
    private static final MethodHandle MDT_OPTIM_EMA_MULTI = handle("mdt_optim_ema_multi");
    private static final MethodHandle MDT_OPTIM_SUM_OF_SQUARES_MULTI = handle("mdt_optim_sum_of_squares_multi");

    private OptimizerBindings() {
    }

    public static int mdt_optim_adamw(MemorySegment stream, MemorySegment param, MemorySegment grad, MemorySegment m, MemorySegment v, long n, float learningRate, float beta1, float beta2, float epsilon, float weightDecay, long step, float gradScale) {
        try {
            return (int) MDT_OPTIM_ADAMW.invokeExact(stream, param, grad, m, v, n, learningRate, beta1, beta2, epsilon, weightDecay, step, gradScale);
        } catch (Throwable error) {
            throw new AssertionError("mdt_optim_adamw threw", error);
        }
    }

    public static int mdt_optim_ema(MemorySegment stream, MemorySegment ema, MemorySegment param, long n, float decay) {
        try {
            return (int) MDT_OPTIM_EMA.invokeExact(stream, ema, param, n, decay);
        } catch (Throwable error) {
            throw new AssertionError("mdt_optim_ema threw", error);
        }
    }

    public static int mdt_optim_sum_of_squares(MemorySegment stream, MemorySegment x, long n, MemorySegment partials, long partialCapacity, MemorySegment result) {
        try {
            return (int) MDT_OPTIM_SUM_OF_SQUARES.invokeExact(stream, x, n, partials, partialCapacity, result);
        } catch (Throwable error) {
            throw new AssertionError("mdt_optim_sum_of_squares threw", error);
        }
    }

    public static int mdt_optim_adamw_multi(MemorySegment stream, MemorySegment entries, long count, long total, float learningRate, float beta1, float beta2, float epsilon, float weightDecay, long step, float gradScale, MemorySegment errorRecord) {
        try {
            return (int) MDT_OPTIM_ADAMW_MULTI.invokeExact(stream, entries, count, total, learningRate, beta1, beta2, epsilon, weightDecay, step, gradScale, errorRecord);
        } catch (Throwable error) {
            throw new AssertionError("mdt_optim_adamw_multi threw", error);
        }
    }

    public static int mdt_optim_adamw_bf16_copy_multi(MemorySegment stream, MemorySegment entries, MemorySegment copies, long count, long total, float learningRate, float beta1, float beta2, float epsilon, float weightDecay, long step, float gradScale, MemorySegment errorRecord) {
        try {
            return (int) MDT_OPTIM_ADAMW_BF16_COPY_MULTI.invokeExact(stream, entries, copies, count, total, learningRate, beta1, beta2, epsilon, weightDecay, step, gradScale, errorRecord);
        } catch (Throwable error) {
            throw new AssertionError("mdt_optim_adamw_bf16_copy_multi threw", error);
        }
    }

    public static int mdt_optim_ema_multi(MemorySegment stream, MemorySegment entries, long count, long total, float decay, MemorySegment errorRecord) {
        try {
            return (int) MDT_OPTIM_EMA_MULTI.invokeExact(stream, entries, count, total, decay, errorRecord);
        } catch (Throwable error) {
            throw new AssertionError("mdt_optim_ema_multi threw", error);
        }
    }

    public static int mdt_optim_sum_of_squares_multi(MemorySegment stream, MemorySegment entries, long count, long totalPartials, MemorySegment partials, long partialCapacity, MemorySegment results, MemorySegment errorRecord) {
        try {
            return (int) MDT_OPTIM_SUM_OF_SQUARES_MULTI.invokeExact(stream, entries, count, totalPartials, partials, partialCapacity, results, errorRecord);
        } catch (Throwable error) {
            throw new AssertionError("mdt_optim_sum_of_squares_multi threw", error);
        }
    }
}
