package io.microdit.backend.cuda;

import io.microdit.backend.Backend;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;

/**
 * What the attention tests hand one attention op, its QK-norm statistics and its backward on one backend (the CPU
 * backend's memory or the CUDA backend's): q [N, Tq, W], k and v [N, Tk, W] copied from host tensors, and every
 * output poisoned (NaN) so that an element a kernel skips shows: the statistics, out [N, Tq, W], lse [N, H, Tq] and
 * the gradients dq, dk, dv of q's, k's and v's shapes. The tests draw the inputs themselves (each its seed and its
 * order of draws); this only places them, so it changes no test's values.
 */
final class AttentionOperands {
    /** QK-norm's statistics of q's rows and of k's (layerNormStatistics' mean, rstd and center [rows, 2]). */
    record Statistics(Tensor qMean, Tensor qRstd, Tensor qCenter, Tensor kMean, Tensor kRstd, Tensor kCenter) {
        static Statistics poisoned(Backend be, MemoryScope scope, long qRows, long kRows) {
            int q = Math.toIntExact(qRows), k = Math.toIntExact(kRows);
            return new Statistics(AttentionOperands.poisoned(be, scope, DType.F32, q),
                    AttentionOperands.poisoned(be, scope, DType.F32, q),
                    AttentionOperands.poisoned(be, scope, DType.F32, q, 2),
                    AttentionOperands.poisoned(be, scope, DType.F32, k),
                    AttentionOperands.poisoned(be, scope, DType.F32, k),
                    AttentionOperands.poisoned(be, scope, DType.F32, k, 2));
        }
    }

    final Tensor q, k, v;
    final Statistics statistics;
    final Tensor out, lse;
    /** Null in a forward-only test. */
    final Tensor dq, dk, dv;

    private AttentionOperands(Backend be, MemoryScope scope, Tensor q, Tensor k, Tensor v, int heads, DType outType,
                              DType gradientType) {
        this.q = on(be, scope, q);
        this.k = on(be, scope, k);
        this.v = on(be, scope, v);
        statistics = Statistics.poisoned(be, scope, q.rowCount(), k.rowCount());
        out = poisoned(be, scope, outType, q.dim(0), q.dim(1), v.dim(2));
        lse = poisoned(be, scope, DType.F32, q.dim(0), heads, q.dim(1));
        dq = gradientType == null ? null : poisoned(be, scope, gradientType, q.shape());
        dk = gradientType == null ? null : poisoned(be, scope, gradientType, k.shape());
        dv = gradientType == null ? null : poisoned(be, scope, gradientType, v.shape());
    }

    /**
     * Host {@code q}, {@code k}, {@code v} copied onto {@code be} in {@code scope}; out of {@code outType}, gradients
     * of {@code gradientType} (null: none), all poisoned.
     */
    static AttentionOperands on(Backend be, MemoryScope scope, Tensor q, Tensor k, Tensor v, int heads,
                                DType outType, DType gradientType) {
        return new AttentionOperands(be, scope, q, k, v, heads, outType, gradientType);
    }

    /**
     * QK-norm's statistics of q and k, then normalizedAttention and its backward on these operands (dOut on
     * {@code be}): out, lse and the gradients of the normalised q and k and of v.
     */
    void normalizedAttentionAndBackward(Backend be, Tensor dOut, int heads, float eps) {
        Statistics s = statistics;
        be.layerNormStatistics(q, eps, s.qMean(), s.qRstd(), s.qCenter());
        be.layerNormStatistics(k, eps, s.kMean(), s.kRstd(), s.kCenter());
        be.normalizedAttention(q, k, v, heads, eps, s.qCenter(), s.qRstd(), s.kCenter(), s.kRstd(), out, lse);
        be.normalizedAttentionBackward(dOut, q, k, v, out, lse, heads, eps, s.qCenter(), s.qRstd(), s.kCenter(),
                s.kRstd(), dq, dk, dv);
    }

    /** offset + uniform in [-amplitude, amplitude), rounded to bf16: a random input (offset 0 adds nothing). */
    static Tensor randomBf16(MemoryScope scope, Random random, float amplitude, float offset, int... shape) {
        Tensor t = TestData.uniform(scope, random, shape);
        for (long i = 0; i < t.numel(); i++) {
            t.setFloat(i, offset + t.getFloat(i) * amplitude);
        }
        return t.to(DType.BF16, scope);
    }

    /** A scope for {@code be}'s tensors: device memory for the CUDA backend, host memory for the CPU's. */
    static MemoryScope scopeOf(Backend be) {
        return be instanceof CudaBackend cuda ? cuda.scope("device") : new MemoryScope("cpu");
    }

    /** A copy of host tensor {@code host} on {@code be}. */
    static Tensor on(Backend be, MemoryScope scope, Tensor host) {
        return be instanceof CudaBackend cuda ? cuda.upload(host, scope)
                : Tensor.empty(scope, host.dtype(), host.shape()).copyFrom(host);
    }

    /** An output on {@code be} full of NaN. */
    static Tensor poisoned(Backend be, MemoryScope scope, DType dtype, int... shape) {
        try (MemoryScope staging = new MemoryScope("poison")) {
            return on(be, scope, TestData.poisoned(staging, shape).to(dtype, staging));
        }
    }

    /** The values of {@code t} (on {@code be}) as floats. */
    static float[] fetch(Backend be, MemoryScope host, Tensor t) {
        return (be instanceof CudaBackend cuda ? cuda.download(t, host) : t).to(DType.F32, host).toFloatArray();
    }

    /** {@link #fetch} of each tensor, under the name at its position in {@code names}. */
    static Map<String, float[]> download(Backend be, MemoryScope host, String[] names, Tensor... tensors) {
        Map<String, float[]> values = new LinkedHashMap<>();
        for (int i = 0; i < names.length; i++) {
            values.put(names[i], fetch(be, host, tensors[i]));
        }
        return values;
    }
}
