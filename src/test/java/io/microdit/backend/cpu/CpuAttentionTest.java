package io.microdit.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

public class CpuAttentionTest {
    private static final CpuBackend BACKEND = new CpuBackend(2);
    private static final CpuBackend SINGLE_THREAD = new CpuBackend(1);

    @AfterAll
    static void close() {
        BACKEND.close();
        SINGLE_THREAD.close();
    }

    /**
     * Direct float64 attention with an explicit softmax of Q·Kᵀ/sqrt(Dh): returns {out [N,Tq,H·Dh], lse [N,H,Tq]}.
     */
    public static double[][] reference(double[] q, double[] k, double[] v, int batch, int queries, int keys,
                                       int heads, int headDim) {
        int width = heads * headDim;
        double scale = 1 / Math.sqrt(headDim);
        double[] out = new double[batch * queries * width];
        double[] lse = new double[batch * heads * queries];
        double[] scores = new double[keys];
        for (int n = 0; n < batch; n++) {
            for (int h = 0; h < heads; h++) {
                for (int i = 0; i < queries; i++) {
                    int qRow = (n * queries + i) * width + h * headDim;
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < keys; j++) {
                        int kRow = (n * keys + j) * width + h * headDim;
                        double dot = 0;
                        for (int d = 0; d < headDim; d++) {
                            dot += q[qRow + d] * k[kRow + d];
                        }
                        scores[j] = dot * scale;
                        max = Math.max(max, scores[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < keys; j++) {
                        scores[j] = Math.exp(scores[j] - max);
                        sum += scores[j];
                    }
                    for (int j = 0; j < keys; j++) {
                        int vRow = (n * keys + j) * width + h * headDim;
                        for (int d = 0; d < headDim; d++) {
                            out[qRow + d] += scores[j] / sum * v[vRow + d];
                        }
                    }
                    lse[(n * heads + h) * queries + i] = max + Math.log(sum);
                }
            }
        }
        return new double[][] {out, lse};
    }

    /**
     * Float64 gradients of sum(out · dOut) through the explicit softmax Jacobian,
     * dS = P ∘ (dP − rowsum(P ∘ dP)): returns {dq, dk, dv}.
     */
    static double[][] referenceBackward(double[] q, double[] k, double[] v, double[] dOut, int batch, int queries,
                                        int keys, int heads, int headDim) {
        int width = heads * headDim;
        double scale = 1 / Math.sqrt(headDim);
        double[] dq = new double[q.length], dk = new double[k.length], dv = new double[v.length];
        double[] p = new double[keys], dp = new double[keys];
        for (int n = 0; n < batch; n++) {
            for (int h = 0; h < heads; h++) {
                for (int i = 0; i < queries; i++) {
                    int qRow = (n * queries + i) * width + h * headDim;
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < keys; j++) {
                        int kRow = (n * keys + j) * width + h * headDim;
                        double dot = 0;
                        for (int d = 0; d < headDim; d++) {
                            dot += q[qRow + d] * k[kRow + d];
                        }
                        p[j] = dot * scale;
                        max = Math.max(max, p[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < keys; j++) {
                        p[j] = Math.exp(p[j] - max);
                        sum += p[j];
                    }
                    double pDotDp = 0;
                    for (int j = 0; j < keys; j++) {
                        p[j] /= sum;
                        int vRow = (n * keys + j) * width + h * headDim;
                        double dot = 0;
                        for (int d = 0; d < headDim; d++) {
                            dot += dOut[qRow + d] * v[vRow + d];
                            dv[vRow + d] += p[j] * dOut[qRow + d];
                        }
                        dp[j] = dot;
                        pDotDp += p[j] * dot;
                    }
                    for (int j = 0; j < keys; j++) {
                        double ds = p[j] * (dp[j] - pDotDp) * scale;
                        int kRow = (n * keys + j) * width + h * headDim;
                        for (int d = 0; d < headDim; d++) {
                            dq[qRow + d] += ds * k[kRow + d];
                            dk[kRow + d] += ds * q[qRow + d];
                        }
                    }
                }
            }
        }
        return new double[][] {dq, dk, dv};
    }

    private record Inputs(float[] q, float[] k, float[] v, float[] dOut) {
        static Inputs random(long seed, float magnitude, int batch, int queries, int keys, int width) {
            Random random = new Random(seed);
            return new Inputs(scaled(TestData.uniform(random, batch * queries * width), magnitude),
                    scaled(TestData.uniform(random, batch * keys * width), magnitude),
                    TestData.uniform(random, batch * keys * width),
                    TestData.uniform(random, batch * queries * width));
        }

        private static float[] scaled(float[] values, float magnitude) {
            for (int i = 0; i < values.length; i++) {
                values[i] *= magnitude;
            }
            return values;
        }
    }

    /** Runs forward and backward on {@code backend}: {out, lse, dq, dk, dv}, every output poisoned first. */
    private static float[][] run(CpuBackend backend, Inputs in, int batch, int queries, int keys, int heads,
                                 int headDim) {
        int width = heads * headDim;
        try (MemoryScope scope = new MemoryScope("attention-test")) {
            Tensor q = Tensor.of(scope, in.q(), batch, queries, width);
            Tensor k = Tensor.of(scope, in.k(), batch, keys, width);
            Tensor v = Tensor.of(scope, in.v(), batch, keys, width);
            Tensor dOut = Tensor.of(scope, in.dOut(), batch, queries, width);
            Tensor out = TestData.poisoned(scope, batch, queries, width);
            Tensor lse = TestData.poisoned(scope, batch, heads, queries);
            Tensor dq = TestData.poisoned(scope, batch, queries, width);
            Tensor dk = TestData.poisoned(scope, batch, keys, width);
            Tensor dv = TestData.poisoned(scope, batch, keys, width);
            backend.attention(q, k, v, heads, out, lse);
            backend.attentionBackward(dOut, q, k, v, out, lse, heads, dq, dk, dv);
            return new float[][] {out.toFloatArray(), lse.toFloatArray(), dq.toFloatArray(), dk.toFloatArray(),
                    dv.toFloatArray()};
        }
    }

    private static void assertClose(String what, float[] actual, double[] expected, double tolerance) {
        double error = TestData.maxRelativeError(actual, expected);
        assertTrue(error <= tolerance, what + ": max relative error " + error + " > " + tolerance);
    }

    @ParameterizedTest(name = "N={0} H={1} Tq={2} Tk={3} Dh={4} magnitude={5}")
    @CsvSource({
        "1, 1, 1, 1, 1, 1",
        "2, 3, 5, 7, 7, 1",
        "1, 2, 63, 77, 32, 1",
        "2, 2, 130, 5, 64, 1",
        "1, 1, 77, 77, 7, 1",
        "3, 1, 17, 130, 1, 1",
        "1, 4, 1, 200, 64, 1",
        "2, 2, 65, 129, 3, 1",
        "1, 2, 300, 300, 32, 1",
        "1, 2, 100, 150, 32, 6",
        "3, 4, 64, 64, 32, 1",
        "2, 4, 16, 8, 32, 1",
        "2, 3, 32, 48, 16, 1",
        "1, 2, 128, 77, 64, 3",
    })
    void forwardAndBackwardMatchFloat64Reference(int batch, int heads, int queries, int keys, int headDim,
                                                 float magnitude) {
        Inputs in = Inputs.random(batch * 1000L + queries * 31L + keys, magnitude, batch, queries, keys,
                heads * headDim);
        float[][] actual = run(BACKEND, in, batch, queries, keys, heads, headDim);
        double[] q = TestData.toDouble(in.q()), k = TestData.toDouble(in.k()), v = TestData.toDouble(in.v());
        double[][] forward = reference(q, k, v, batch, queries, keys, heads, headDim);
        assertClose("out", actual[0], forward[0], 2e-5);
        assertClose("lse", actual[1], forward[1], 2e-5);
        double[][] backward = referenceBackward(q, k, v, TestData.toDouble(in.dOut()), batch, queries, keys, heads,
                headDim);
        assertClose("dq", actual[2], backward[0], 1e-4);
        assertClose("dk", actual[3], backward[1], 1e-4);
        assertClose("dv", actual[4], backward[2], 1e-4);
    }

    /** Token counts off and on the whole 16 × 16 blocks of the block transposes (the second: 64 queries, width 96). */
    @ParameterizedTest
    @CsvSource({"2, 3, 130, 77, 32", "5, 3, 64, 40, 32"})
    void oneAndTwoThreadsGiveBitIdenticalResults(int batch, int heads, int queries, int keys, int headDim) {
        Inputs in = Inputs.random(42, 1, batch, queries, keys, heads * headDim);
        float[][] two = run(BACKEND, in, batch, queries, keys, heads, headDim);
        float[][] one = run(SINGLE_THREAD, in, batch, queries, keys, heads, headDim);
        String[] names = {"out", "lse", "dq", "dk", "dv"};
        for (int i = 0; i < names.length; i++) {
            assertArrayEquals(one[i], two[i], names[i] + " differs between 1 and 2 threads");
        }
    }

    /**
     * The per-thread tiles are kept from call to call, per shape: a call after others (of the same shape with other
     * values, of another shape, of the same token counts and head_dim with more heads, whose sample rows are wider,
     * and of more shapes than a thread keeps, which resets what it keeps) gives the same bits as the first call.
     */
    @Test
    void backwardTilesKeptAcrossCallsChangeNoResult() {
        int batch = 2, heads = 2, queries = 37, keys = 21, headDim = 20;
        Inputs in = Inputs.random(7, 1, batch, queries, keys, heads * headDim);
        float[][] first = run(SINGLE_THREAD, in, batch, queries, keys, heads, headDim);
        run(SINGLE_THREAD, Inputs.random(8, 4, batch, queries, keys, heads * headDim), batch, queries, keys, heads,
                headDim);
        run(SINGLE_THREAD, Inputs.random(9, 4, 1, 50, 13, 3 * 16), 1, 50, 13, 3, 16);
        run(SINGLE_THREAD, Inputs.random(10, 4, batch, queries, keys, heads * headDim), batch, queries, keys, heads,
                headDim);
        run(SINGLE_THREAD, Inputs.random(11, 4, batch, queries, keys, 2 * heads * headDim), batch, queries, keys,
                2 * heads, headDim);
        // Whole 16 × 16 blocks: the kept sample tiles of the block transposes, then the same shape with more heads.
        Inputs blocks = Inputs.random(12, 1, 3, 32, 24, 2 * 16);
        float[][] firstBlocks = run(SINGLE_THREAD, blocks, 3, 32, 24, 2, 16);
        run(SINGLE_THREAD, Inputs.random(13, 4, 3, 32, 24, 2 * 16), 3, 32, 24, 2, 16);
        run(SINGLE_THREAD, Inputs.random(14, 4, 3, 32, 24, 4 * 16), 3, 32, 24, 4, 16);
        float[][] againBlocks = run(SINGLE_THREAD, blocks, 3, 32, 24, 2, 16);
        float[][] again = run(SINGLE_THREAD, in, batch, queries, keys, heads, headDim);
        for (int otherKeys = 1; otherKeys <= TilesByShape.KEPT + 1; otherKeys++) {
            run(SINGLE_THREAD, Inputs.random(20 + otherKeys, 4, 1, 16, otherKeys, 2 * 16), 1, 16, otherKeys, 2, 16);
        }
        float[][] afterReset = run(SINGLE_THREAD, in, batch, queries, keys, heads, headDim);
        String[] names = {"out", "lse", "dq", "dk", "dv"};
        for (int i = 0; i < names.length; i++) {
            assertArrayEquals(first[i], again[i], names[i] + " differs after other calls");
            assertArrayEquals(firstBlocks[i], againBlocks[i], names[i] + " (whole blocks) differs after other calls");
            assertArrayEquals(first[i], afterReset[i], names[i] + " differs after more shapes than a thread keeps");
        }
    }

    @Test
    void countsForwardAndBackwardFlops() {
        int batch = 2, heads = 2, queries = 5, keys = 9, headDim = 3;
        try (CpuBackend backend = new CpuBackend(1)) {
            run(backend, Inputs.random(3, 1, batch, queries, keys, heads * headDim), batch, queries, keys, heads,
                    headDim);
            long forward = 4L * batch * heads * queries * keys * headDim;
            assertEquals(forward, backend.flops().of("attention"));
            assertEquals(forward * 5 / 2, backend.flops().of("attentionBackward"));
        }
    }

    @Test
    void badShapesThrowNamingTheArgument() {
        try (MemoryScope scope = new MemoryScope("attention-bad")) {
            Tensor q = scope.zeros(2, 5, 12), k = scope.zeros(2, 7, 12), v = scope.zeros(2, 7, 12);
            Tensor out = scope.zeros(2, 5, 12), lse = scope.zeros(2, 3, 5);
            assertMessage("attention: k must have shape [2, *, 12]",
                    () -> BACKEND.attention(q, scope.zeros(2, 7, 8), v, 3, out, lse));
            assertMessage("attention: v must have shape [2, 7, 12]",
                    () -> BACKEND.attention(q, k, scope.zeros(2, 6, 12), 3, out, lse));
            assertMessage("attention: lse must have shape [2, 3, 5]",
                    () -> BACKEND.attention(q, k, v, 3, out, scope.zeros(2, 5, 3)));
            assertMessage("attention: heads 5 must be positive and divide the width 12",
                    () -> BACKEND.attention(q, k, v, 5, out, lse));
            assertMessage("attention: heads 0 must be positive",
                    () -> BACKEND.attention(q, k, v, 0, out, lse));
            assertMessage("attention: out must have shape [2, 5, 12]",
                    () -> BACKEND.attention(q, k, v, 3, scope.zeros(2, 7, 12), lse));
            assertMessage("attention: k must have rank 3",
                    () -> BACKEND.attention(q, scope.zeros(14, 12), v, 3, out, lse));
            assertMessage("attention: k F32[2, 0, 12] must have at least one token",
                    () -> BACKEND.attention(q, scope.zeros(2, 0, 12), scope.zeros(2, 0, 12), 3, out, lse));
            assertMessage("attentionBackward: dk",
                    () -> BACKEND.attentionBackward(out, q, k, v, out, lse, 3, scope.zeros(2, 5, 12),
                            scope.zeros(2, 5, 12), scope.zeros(2, 7, 12)));
            assertMessage("attentionBackward: dOut",
                    () -> BACKEND.attentionBackward(scope.zeros(2, 5, 6), q, k, v, out, lse, 3,
                            scope.zeros(2, 5, 12), scope.zeros(2, 7, 12), scope.zeros(2, 7, 12)));
        }
    }

    private static void assertMessage(String expectedStart, Runnable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call::run);
        assertTrue(e.getMessage().startsWith(expectedStart), () -> "message '" + e.getMessage()
                + "' should start with '" + expectedStart + "'");
    }
}
