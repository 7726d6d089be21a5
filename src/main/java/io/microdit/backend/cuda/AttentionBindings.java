package io.microdit.backend.cuda;

import static io.microdit.backend.cuda.Downcalls.handle;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

/**
 * FFM bindings of {@code native/include/microdit.h}'s attention ({@code kernels/attention.cu}: the f32 and the bf16
 * FlashAttention forwards and backwards, QK-norm fused), in the header's order; {@link Downcalls} says how they
 * resolve.
 */
final class AttentionBindings {
    private static final MethodHandle MDT_ATTENTION_FWD = handle("mdt_attention_fwd");
    private static final MethodHandle MDT_ATTENTION_BWD = handle("mdt_attention_bwd");
    private static final MethodHandle MDT_ATTENTION_FWD_BF16 = handle("mdt_attention_fwd_bf16");
    private static final MethodHandle MDT_ATTENTION_BWD_BF16 = handle("mdt_attention_bwd_bf16");
    private static final MethodHandle MDT_ATTENTION_FWD_BF16_OUT = handle("mdt_attention_fwd_bf16_out");
    private static final MethodHandle MDT_ATTENTION_BWD_BF16_OUT = handle("mdt_attention_bwd_bf16_out");
    private static final MethodHandle MDT_ATTENTION_BWD_BF16_BF16GRAD = handle("mdt_attention_bwd_bf16_bf16grad");
    private static final MethodHandle MDT_ATTENTION_BWD_BF16_OUT_BF16GRAD = handle("mdt_attention_bwd_bf16_out_bf16grad");
    private static final MethodHandle MDT_ATTENTION_FWD_BF16_OUT_QKNORM = handle("mdt_attention_fwd_bf16_out_qknorm");
    private static final MethodHandle MDT_ATTENTION_BWD_BF16_OUT_BF16GRAD_QKNORM = handle("mdt_attention_bwd_bf16_out_bf16grad_qknorm");

    private AttentionBindings() {
    }

    public static int mdt_attention_fwd(MemorySegment stream, MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment out, MemorySegment lse, long samples, long queries, long keys, long heads, long headDim) {
        try {
            return (int) MDT_ATTENTION_FWD.invokeExact(stream, q, k, v, out, lse, samples, queries, keys, heads, headDim);
        } catch (Throwable error) {
            throw new AssertionError("mdt_attention_fwd threw", error);
        }
    }

    public static int mdt_attention_bwd(MemorySegment stream, MemorySegment dOut, MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment out, MemorySegment lse, MemorySegment delta, MemorySegment dq, MemorySegment dk, MemorySegment dv, long samples, long queries, long keys, long heads, long headDim) {
        try {
            return (int) MDT_ATTENTION_BWD.invokeExact(stream, dOut, q, k, v, out, lse, delta, dq, dk, dv, samples, queries, keys, heads, headDim);
        } catch (Throwable error) {
            throw new AssertionError("mdt_attention_bwd threw", error);
        }
    }

    public static int mdt_attention_fwd_bf16(MemorySegment stream, MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment out, MemorySegment lse, long samples, long queries, long keys, long heads, long headDim) {
        try {
            return (int) MDT_ATTENTION_FWD_BF16.invokeExact(stream, q, k, v, out, lse, samples, queries, keys, heads, headDim);
        } catch (Throwable error) {
            throw new AssertionError("mdt_attention_fwd_bf16 threw", error);
        }
    }

    public static int mdt_attention_bwd_bf16(MemorySegment stream, MemorySegment dOut, MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment out, MemorySegment lse, MemorySegment delta, MemorySegment dOutBf16, MemorySegment dq, MemorySegment dk, MemorySegment dv, long samples, long queries, long keys, long heads, long headDim) {
        try {
            return (int) MDT_ATTENTION_BWD_BF16.invokeExact(stream, dOut, q, k, v, out, lse, delta, dOutBf16, dq, dk, dv, samples, queries, keys, heads, headDim);
        } catch (Throwable error) {
            throw new AssertionError("mdt_attention_bwd_bf16 threw", error);
        }
    }

    public static int mdt_attention_fwd_bf16_out(MemorySegment stream, MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment out, MemorySegment lse, long samples, long queries, long keys, long heads, long headDim) {
        try {
            return (int) MDT_ATTENTION_FWD_BF16_OUT.invokeExact(stream, q, k, v, out, lse, samples, queries, keys, heads, headDim);
        } catch (Throwable error) {
            throw new AssertionError("mdt_attention_fwd_bf16_out threw", error);
        }
    }

    public static int mdt_attention_bwd_bf16_out(MemorySegment stream, MemorySegment dOut, MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment out, MemorySegment lse, MemorySegment delta, MemorySegment dOutBf16, MemorySegment dq, MemorySegment dk, MemorySegment dv, long samples, long queries, long keys, long heads, long headDim) {
        try {
            return (int) MDT_ATTENTION_BWD_BF16_OUT.invokeExact(stream, dOut, q, k, v, out, lse, delta, dOutBf16, dq, dk, dv, samples, queries, keys, heads, headDim);
        } catch (Throwable error) {
            throw new AssertionError("mdt_attention_bwd_bf16_out threw", error);
        }
    }

    public static int mdt_attention_bwd_bf16_bf16grad(MemorySegment stream, MemorySegment dOut, MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment out, MemorySegment lse, MemorySegment delta, MemorySegment dOutBf16, MemorySegment dq, MemorySegment dk, MemorySegment dv, long samples, long queries, long keys, long heads, long headDim, int bf16Grads) {
        try {
            return (int) MDT_ATTENTION_BWD_BF16_BF16GRAD.invokeExact(stream, dOut, q, k, v, out, lse, delta, dOutBf16, dq, dk, dv, samples, queries, keys, heads, headDim, bf16Grads);
        } catch (Throwable error) {
            throw new AssertionError("mdt_attention_bwd_bf16_bf16grad threw", error);
        }
    }

    public static int mdt_attention_bwd_bf16_out_bf16grad(MemorySegment stream, MemorySegment dOut, MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment out, MemorySegment lse, MemorySegment delta, MemorySegment dOutBf16, MemorySegment dq, MemorySegment dk, MemorySegment dv, long samples, long queries, long keys, long heads, long headDim, int bf16Grads) {
        try {
            return (int) MDT_ATTENTION_BWD_BF16_OUT_BF16GRAD.invokeExact(stream, dOut, q, k, v, out, lse, delta, dOutBf16, dq, dk, dv, samples, queries, keys, heads, headDim, bf16Grads);
        } catch (Throwable error) {
            throw new AssertionError("mdt_attention_bwd_bf16_out_bf16grad threw", error);
        }
    }

    public static int mdt_attention_fwd_bf16_out_qknorm(MemorySegment stream, MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment qCenter, MemorySegment qRstd, MemorySegment kCenter, MemorySegment kRstd, MemorySegment out, MemorySegment lse, long samples, long queries, long keys, long heads, long headDim, long qStride, long kvStride) {
        try {
            return (int) MDT_ATTENTION_FWD_BF16_OUT_QKNORM.invokeExact(stream, q, k, v, qCenter, qRstd, kCenter, kRstd, out, lse, samples, queries, keys, heads, headDim, qStride, kvStride);
        } catch (Throwable error) {
            throw new AssertionError("mdt_attention_fwd_bf16_out_qknorm threw", error);
        }
    }

    public static int mdt_attention_bwd_bf16_out_bf16grad_qknorm(MemorySegment stream, MemorySegment dOut, MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment qCenter, MemorySegment qRstd, MemorySegment kCenter, MemorySegment kRstd, MemorySegment out, MemorySegment lse, MemorySegment delta, MemorySegment dOutBf16, MemorySegment dq, MemorySegment dk, MemorySegment dv, long samples, long queries, long keys, long heads, long headDim, long qStride, long kvStride, int bf16Grads) {
        try {
            return (int) MDT_ATTENTION_BWD_BF16_OUT_BF16GRAD_QKNORM.invokeExact(stream, dOut, q, k, v, qCenter, qRstd, kCenter, kRstd, out, lse, delta, dOutBf16, dq, dk, dv, samples, queries, keys, heads, headDim, qStride, kvStride, bf16Grads);
        } catch (Throwable error) {
            throw new AssertionError("mdt_attention_bwd_bf16_out_bf16grad_qknorm threw", error);
        }
    }
}
