package io.microdit.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.backend.Backend;
import io.microdit.backend.cpu.CpuBackend;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * QK-norm fused into attention (layerNormStatistics, normalizedAttention and its backward) against the separate ops
 * it replaces (layerNorm with a BF16 output of q and of k, attention, attentionBackward), bit for bit on each
 * backend: the statistics, out, lse and the gradients of the normalised q and k and of v. Sizes leave tails in the
 * 64-row tiles (77 caption keys, 70 and 130 queries), q carries a large mean (the rough mean and its correction
 * both matter), head dimensions 32 and 64 take the tensor-core kernels that normalise as they load, 16 the CUDA
 * backend's renormalising fallback. CUDA against the CPU within the bf16 attention tolerance. Outputs start as NaN.
 */
@Tag("emu")
class CudaNormalizedAttentionTest {
    /** CudaBf16AttentionTest's: the tensor cores round P, dO and dS to bf16 where the CPU keeps F32. */
    private static final double TOLERANCE = 1e-2;
    private static final float EPS = 1e-6f;
    private static CpuBackend cpu;
    private static CudaBackend cuda;

    @BeforeAll
    static void start() {
        cpu = new CpuBackend(2);
        cuda = new CudaBackend();
    }

    @AfterAll
    static void stop() {
        cuda.close();
        cpu.close();
    }

    @ParameterizedTest
    @CsvSource({"2,3,64,70,77,true", "1,2,32,130,130,true", "2,2,64,1,5,false", "2,2,16,5,9,true",
        "1,4,32,64,64,false"})
    void fusedEqualsTheSeparateOpsOnBothBackendsAndCudaMatchesCpu(int batch, int heads, int headDim, int queries,
                                                                    int keys, boolean bf16Gradients) {
        Random random = new Random(batch * 1009L + heads * 101L + headDim * 11L + queries * 7L + keys);
        int width = heads * headDim;
        try (MemoryScope host = new MemoryScope("host")) {
            Tensor q = bf16(host, random, 3f, 40f, batch, queries, width);
            Tensor k = bf16(host, random, 2f, -1.5f, batch, keys, width);
            Tensor v = bf16(host, random, 1f, 0f, batch, keys, width);
            Tensor dOut = bf16(host, random, 1f, 0f, batch, queries, width);
            Map<String, float[]> cpuFused = null;
            for (Backend be : new Backend[] {cpu, cuda}) {
                String name = be == cpu ? "CPU" : "CUDA";
                Map<String, float[]> separate = separate(be, host, q, k, v, dOut, heads, bf16Gradients);
                Map<String, float[]> fused = fused(be, host, q, k, v, dOut, heads, bf16Gradients);
                for (var e : separate.entrySet()) {
                    float[] got = fused.get(e.getKey());
                    for (float value : got) {
                        assertTrue(!Float.isNaN(value), name + ": " + e.getKey() + " has an unwritten element");
                    }
                    assertArrayEquals(e.getValue(), got, name + ": " + e.getKey() + " differs from the separate ops");
                }
                if (be == cpu) {
                    cpuFused = fused;
                    continue;
                }
                for (String output : new String[] {"out", "dq", "dk", "dv"}) {
                    double error = TestData.maxRelativeError(fused.get(output),
                            TestData.toDouble(cpuFused.get(output)));
                    assertTrue(error <= TOLERANCE, output + ": CUDA differs from the CPU by " + error);
                }
            }
        }
    }

    /** layerNorm of q and k (BF16 outputs), attention and its backward. */
    private static Map<String, float[]> separate(Backend be, MemoryScope host, Tensor q, Tensor k, Tensor v,
                                                 Tensor dOut, int heads, boolean bf16Gradients) {
        try (MemoryScope scope = scope(be)) {
            int qRows = Math.toIntExact(q.rowCount()), kRows = Math.toIntExact(k.rowCount());
            Tensor qs = on(be, scope, q), ks = on(be, scope, k), vs = on(be, scope, v);
            Tensor qn = poisoned(be, scope, DType.BF16, q.shape()), kn = poisoned(be, scope, DType.BF16, k.shape());
            Tensor qMean = poisoned(be, scope, DType.F32, qRows), qRstd = poisoned(be, scope, DType.F32, qRows);
            Tensor kMean = poisoned(be, scope, DType.F32, kRows), kRstd = poisoned(be, scope, DType.F32, kRows);
            be.layerNorm(qs, null, EPS, qn, qMean, qRstd);
            be.layerNorm(ks, null, EPS, kn, kMean, kRstd);
            Tensor out = poisoned(be, scope, DType.BF16, q.shape());
            Tensor lse = poisoned(be, scope, DType.F32, q.dim(0), heads, q.dim(1));
            be.attention(qn, kn, vs, heads, out, lse);
            DType gradient = bf16Gradients ? DType.BF16 : DType.F32;
            Tensor dq = poisoned(be, scope, gradient, q.shape()), dk = poisoned(be, scope, gradient, k.shape());
            Tensor dv = poisoned(be, scope, gradient, v.shape());
            be.attentionBackward(on(be, scope, dOut), qn, kn, vs, out, lse, heads, dq, dk, dv);
            return download(be, host, new String[] {"qMean", "qRstd", "kMean", "kRstd", "out", "lse", "dq", "dk",
                "dv"}, qMean, qRstd, kMean, kRstd, out, lse, dq, dk, dv);
        }
    }

    /** layerNormStatistics of q and k, normalizedAttention and its backward. */
    private static Map<String, float[]> fused(Backend be, MemoryScope host, Tensor q, Tensor k, Tensor v,
                                              Tensor dOut, int heads, boolean bf16Gradients) {
        try (MemoryScope scope = scope(be)) {
            int qRows = Math.toIntExact(q.rowCount()), kRows = Math.toIntExact(k.rowCount());
            Tensor qs = on(be, scope, q), ks = on(be, scope, k), vs = on(be, scope, v);
            Tensor qMean = poisoned(be, scope, DType.F32, qRows), qRstd = poisoned(be, scope, DType.F32, qRows);
            Tensor kMean = poisoned(be, scope, DType.F32, kRows), kRstd = poisoned(be, scope, DType.F32, kRows);
            Tensor qCenter = poisoned(be, scope, DType.F32, qRows, 2);
            Tensor kCenter = poisoned(be, scope, DType.F32, kRows, 2);
            be.layerNormStatistics(qs, EPS, qMean, qRstd, qCenter);
            be.layerNormStatistics(ks, EPS, kMean, kRstd, kCenter);
            Tensor out = poisoned(be, scope, DType.BF16, q.shape());
            Tensor lse = poisoned(be, scope, DType.F32, q.dim(0), heads, q.dim(1));
            be.normalizedAttention(qs, ks, vs, heads, EPS, qCenter, qRstd, kCenter, kRstd, out, lse);
            DType gradient = bf16Gradients ? DType.BF16 : DType.F32;
            Tensor dq = poisoned(be, scope, gradient, q.shape()), dk = poisoned(be, scope, gradient, k.shape());
            Tensor dv = poisoned(be, scope, gradient, v.shape());
            be.normalizedAttentionBackward(on(be, scope, dOut), qs, ks, vs, out, lse, heads, EPS, qCenter, qRstd,
                    kCenter, kRstd, dq, dk, dv);
            return download(be, host, new String[] {"qMean", "qRstd", "kMean", "kRstd", "out", "lse", "dq", "dk",
                "dv"}, qMean, qRstd, kMean, kRstd, out, lse, dq, dk, dv);
        }
    }

    /** offset + uniform in [-amplitude, amplitude), rounded to bf16. */
    private static Tensor bf16(MemoryScope scope, Random random, float amplitude, float offset, int... shape) {
        Tensor t = TestData.uniform(scope, random, shape);
        for (long i = 0; i < t.numel(); i++) {
            t.setFloat(i, offset + t.getFloat(i) * amplitude);
        }
        return t.to(DType.BF16, scope);
    }

    private static MemoryScope scope(Backend be) {
        return be == cuda ? cuda.scope("device") : new MemoryScope("cpu");
    }

    private static Tensor on(Backend be, MemoryScope scope, Tensor host) {
        return be == cuda ? cuda.upload(host, scope) : Tensor.empty(scope, host.dtype(), host.shape()).copyFrom(host);
    }

    private static Tensor poisoned(Backend be, MemoryScope scope, DType dtype, int... shape) {
        try (MemoryScope staging = new MemoryScope("poison")) {
            return on(be, scope, TestData.poisoned(staging, shape).to(dtype, staging));
        }
    }

    private static Map<String, float[]> download(Backend be, MemoryScope host, String[] names, Tensor... tensors) {
        Map<String, float[]> values = new LinkedHashMap<>();
        for (int i = 0; i < names.length; i++) {
            Tensor t = be == cuda ? cuda.download(tensors[i], host) : tensors[i];
            values.put(names[i], t.to(DType.F32, host).toFloatArray());
        }
        return values;
    }
}
