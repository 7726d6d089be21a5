package io.microdit.backend.cuda;

import static io.microdit.backend.cuda.AttentionOperands.download;
import static io.microdit.backend.cuda.AttentionOperands.on;
import static io.microdit.backend.cuda.AttentionOperands.poisoned;
import static io.microdit.backend.cuda.AttentionOperands.randomBf16;
import static io.microdit.backend.cuda.AttentionOperands.scopeOf;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.backend.Backend;
import io.microdit.backend.cpu.CpuBackend;
import io.microdit.backend.cuda.AttentionOperands.Statistics;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
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
            Tensor q = randomBf16(host, random, 3f, 40f, batch, queries, width);
            Tensor k = randomBf16(host, random, 2f, -1.5f, batch, keys, width);
            Tensor v = randomBf16(host, random, 1f, 0f, batch, keys, width);
            Tensor dOut = randomBf16(host, random, 1f, 0f, batch, queries, width);
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
        try (MemoryScope scope = scopeOf(be)) {
            AttentionOperands a = AttentionOperands.on(be, scope, q, k, v, heads, DType.BF16,
                    bf16Gradients ? DType.BF16 : DType.F32);
            Statistics s = a.statistics;
            Tensor qn = poisoned(be, scope, DType.BF16, q.shape()), kn = poisoned(be, scope, DType.BF16, k.shape());
            be.layerNorm(a.q, null, EPS, qn, s.qMean(), s.qRstd());
            be.layerNorm(a.k, null, EPS, kn, s.kMean(), s.kRstd());
            be.attention(qn, kn, a.v, heads, a.out, a.lse);
            be.attentionBackward(on(be, scope, dOut), qn, kn, a.v, a.out, a.lse, heads, a.dq, a.dk, a.dv);
            return results(be, host, a);
        }
    }

    /** layerNormStatistics of q and k, normalizedAttention and its backward. */
    private static Map<String, float[]> fused(Backend be, MemoryScope host, Tensor q, Tensor k, Tensor v,
                                              Tensor dOut, int heads, boolean bf16Gradients) {
        try (MemoryScope scope = scopeOf(be)) {
            AttentionOperands a = AttentionOperands.on(be, scope, q, k, v, heads, DType.BF16,
                    bf16Gradients ? DType.BF16 : DType.F32);
            a.normalizedAttentionAndBackward(be, on(be, scope, dOut), heads, EPS);
            return results(be, host, a);
        }
    }

    /** What both forms compute (the centers only the fused one has). */
    private static Map<String, float[]> results(Backend be, MemoryScope host, AttentionOperands a) {
        Statistics s = a.statistics;
        return download(be, host, new String[] {"qMean", "qRstd", "kMean", "kRstd", "out", "lse", "dq", "dk", "dv"},
                s.qMean(), s.qRstd(), s.kMean(), s.kRstd(), a.out, a.lse, a.dq, a.dk, a.dv);
    }
}
