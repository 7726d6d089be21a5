package io.microdit.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

class CpuMoeTest {
    private static final CpuBackend BACKEND = new CpuBackend(2);
    private static final CpuBackend SINGLE_THREAD = new CpuBackend(1);

    @AfterAll
    static void close() {
        BACKEND.close();
        SINGLE_THREAD.close();
    }

    // ---------------------------------------------------------------- references (plain loops)

    /** The top-k as documented: sort all tokens by Float.compare descending, then by token index ascending. */
    private static int[] referenceTopK(float[] probs, int samples, int tokens, int experts, int k) {
        int[] indices = new int[samples * experts * k];
        for (int n = 0; n < samples; n++) {
            for (int e = 0; e < experts; e++) {
                int sample = n, expert = e;
                Integer[] order = new Integer[tokens];
                Arrays.setAll(order, t -> t);
                Arrays.sort(order, (a, b) -> {
                    int byValue = Float.compare(probs[(sample * tokens + b) * experts + expert],
                            probs[(sample * tokens + a) * experts + expert]);
                    return byValue != 0 ? byValue : Integer.compare(a, b);
                });
                for (int j = 0; j < k; j++) {
                    indices[(n * experts + e) * k + j] = order[j];
                }
            }
        }
        return indices;
    }

    private static double[] referenceDispatch(float[] x, int[] indices, int samples, int tokens, int dim,
                                              int experts, int k) {
        double[] out = new double[experts * samples * k * dim];
        for (int e = 0; e < experts; e++) {
            for (int n = 0; n < samples; n++) {
                for (int j = 0; j < k; j++) {
                    int t = indices[(n * experts + e) * k + j];
                    for (int d = 0; d < dim; d++) {
                        out[((e * samples + n) * k + j) * dim + d] = x[(n * tokens + t) * dim + d];
                    }
                }
            }
        }
        return out;
    }

    private static double[] referenceCombine(float[] h, float[] gates, int[] indices, int samples, int tokens,
                                             int dim, int experts, int k) {
        double[] out = new double[samples * tokens * dim];
        for (int n = 0; n < samples; n++) {
            for (int e = 0; e < experts; e++) {
                for (int j = 0; j < k; j++) {
                    int slot = (n * experts + e) * k + j, t = indices[slot], row = (e * samples + n) * k + j;
                    for (int d = 0; d < dim; d++) {
                        out[(n * tokens + t) * dim + d] += (double) gates[slot] * h[row * dim + d];
                    }
                }
            }
        }
        return out;
    }

    private static void assertClose(double[] expected, float[] actual, double tolerance, String what) {
        assertEquals(expected.length, actual.length, what + ": length");
        for (int i = 0; i < expected.length; i++) {
            assertEquals(expected[i], actual[i], tolerance * Math.max(1, Math.abs(expected[i])), what + "[" + i + "]");
        }
    }

    /** Random per-token softmax probabilities [N, T, E]. */
    private static float[] randomProbabilities(Random random, int samples, int tokens, int experts) {
        float[] probs = new float[samples * tokens * experts];
        for (int row = 0; row < samples * tokens; row++) {
            double sum = 0;
            for (int e = 0; e < experts; e++) {
                probs[row * experts + e] = 0.05f + random.nextFloat();
                sum += probs[row * experts + e];
            }
            for (int e = 0; e < experts; e++) {
                probs[row * experts + e] /= (float) sum;
            }
        }
        return probs;
    }

    /** Random indices into [0, tokens), repeats allowed (within and across experts). */
    private static int[] randomIndices(Random random, int count, int tokens) {
        int[] indices = new int[count];
        for (int i = 0; i < count; i++) {
            indices[i] = random.nextInt(tokens);
        }
        return indices;
    }

    // ---------------------------------------------------------------- routing

    @Test
    void handComputedRoutingDispatchAndCombine() {
        // One sample, 6 tokens, 2 experts, k = 3 tokens per expert. probs[t] = [p(expert 0), p(expert 1)].
        float[] probs = {
            0.1f, 0.9f,    // t0
            0.7f, 0.3f,    // t1
            0.4f, 0.6f,    // t2
            0.7f, 0.3f,    // t3
            0.25f, 0.75f,  // t4
            0.4f, 0.6f,    // t5
        };
        // Expert 0 sees 0.1, 0.7, 0.4, 0.7, 0.25, 0.4: the two 0.7 come first, t1 before t3 (lower index wins
        // the tie); then 0.4 is shared by t2 and t5 at the k boundary, and t2 wins it, so t5 is left out.
        // Expert 1 sees 0.9, 0.3, 0.6, 0.3, 0.75, 0.6: t0 (0.9), t4 (0.75), then t2 over t5 (0.6 tie).
        int[] expectedIndices = {1, 3, 2, 0, 4, 2};
        float[] expectedGates = {0.7f, 0.7f, 0.4f, 0.9f, 0.75f, 0.6f};
        try (MemoryScope scope = new MemoryScope("moe-hand")) {
            Tensor gates = TestData.poisoned(scope, 1, 2, 3);
            Tensor indices = scope.zeros(DType.I32, 1, 2, 3);
            BACKEND.expertChoiceTopK(Tensor.of(scope, probs, 1, 6, 2), 3, gates, indices);
            assertArrayEquals(expectedIndices, indices.toIntArray());
            assertArrayEquals(expectedGates, gates.toFloatArray());

            // x[t] = [t, 10 + t]; expert 0's rows are tokens 1, 3, 2 and expert 1's are 0, 4, 2.
            float[] x = {0, 10, 1, 11, 2, 12, 3, 13, 4, 14, 5, 15};
            Tensor routed = TestData.poisoned(scope, 2, 3, 2);
            BACKEND.moeDispatch(Tensor.of(scope, x, 1, 6, 2), indices, routed);
            assertArrayEquals(new float[] {1, 11, 3, 13, 2, 12, 0, 10, 4, 14, 2, 12}, routed.toFloatArray());

            // Combining the dispatched rows themselves: each chosen token gets (sum of its gates) · x[t];
            // t2 is chosen by both experts (0.4 + 0.6 = 1.0), t5 by none (zeros).
            Tensor out = TestData.poisoned(scope, 1, 6, 2);
            BACKEND.moeCombine(routed, gates, indices, out);
            float[] expectedOut = {
                0.9f * 0, 0.9f * 10, 0.7f * 1, 0.7f * 11, 2, 12, 0.7f * 3, 0.7f * 13, 0.75f * 4, 0.75f * 14, 0, 0};
            float[] actual = out.toFloatArray();
            for (int i = 0; i < expectedOut.length; i++) {
                assertEquals(expectedOut[i], actual[i], 1e-5, "out element " + i);
            }
        }
    }

    @Test
    void allEqualProbabilitiesPickTheFirstTokensInOrder() {
        int samples = 2, tokens = 7, experts = 3, k = 4;
        float[] probs = new float[samples * tokens * experts];
        Arrays.fill(probs, 1f / experts);
        try (MemoryScope scope = new MemoryScope("moe-ties")) {
            Tensor gates = TestData.poisoned(scope, samples, experts, k);
            Tensor indices = scope.zeros(DType.I32, samples, experts, k).fill(-1);
            BACKEND.expertChoiceTopK(Tensor.of(scope, probs, samples, tokens, experts), k, gates, indices);
            int[] actual = indices.toIntArray();
            for (int row = 0; row < samples * experts; row++) {
                assertArrayEquals(new int[] {0, 1, 2, 3}, Arrays.copyOfRange(actual, row * k, row * k + k),
                        "sample/expert row " + row);
            }
            for (float gate : gates.toFloatArray()) {
                assertEquals(1f / experts, gate);
            }
        }
    }

    @ParameterizedTest
    @CsvSource({"1,1,1,1", "3,37,5,1", "3,37,5,9", "3,37,5,37", "2,64,8,16", "1,300,4,150"})
    void topKMatchesAFullSortWithManyTies(int samples, int tokens, int experts, int k) {
        Random random = new Random(tokens * 131L + k);
        float[] probs = new float[samples * tokens * experts];
        for (int i = 0; i < probs.length; i++) {
            probs[i] = random.nextInt(6) / 8f; // few distinct values: ties everywhere, also across the k boundary
        }
        if (probs.length > 4) {
            probs[1] = -0f; // -0.0 ranks below 0.0
            probs[2] = Float.NaN; // NaN ranks above every number
        }
        try (MemoryScope scope = new MemoryScope("moe-topk")) {
            Tensor gates = TestData.poisoned(scope, samples, experts, k);
            Tensor indices = scope.zeros(DType.I32, samples, experts, k).fill(-1);
            BACKEND.expertChoiceTopK(Tensor.of(scope, probs, samples, tokens, experts), k, gates, indices);
            int[] expected = referenceTopK(probs, samples, tokens, experts, k);
            int[] actual = indices.toIntArray();
            assertArrayEquals(expected, actual);
            float[] actualGates = gates.toFloatArray();
            for (int i = 0; i < actual.length; i++) {
                int n = i / (experts * k), e = i / k % experts;
                float expectedGate = probs[(n * tokens + actual[i]) * experts + e];
                assertEquals(Float.floatToRawIntBits(expectedGate), Float.floatToRawIntBits(actualGates[i]),
                        "gate " + i);
            }
        }
    }

    @Test
    void topKBackwardAccumulatesIntoTheChosenProbabilities() {
        int samples = 3, tokens = 11, experts = 4, k = 5;
        Random random = new Random(12);
        int[] indices = randomIndices(random, samples * experts * k, tokens);
        float[] dGates = TestData.uniform(random, samples * experts * k);
        float[] initial = TestData.uniform(random, samples * tokens * experts);
        double[] expected = TestData.toDouble(initial);
        for (int n = 0; n < samples; n++) {
            for (int e = 0; e < experts; e++) {
                for (int j = 0; j < k; j++) {
                    int slot = (n * experts + e) * k + j;
                    expected[(n * tokens + indices[slot]) * experts + e] += dGates[slot];
                }
            }
        }
        try (MemoryScope scope = new MemoryScope("moe-topk-backward")) {
            Tensor dProbs = Tensor.of(scope, initial, samples, tokens, experts);
            BACKEND.expertChoiceTopKBackward(Tensor.of(scope, dGates, samples, experts, k),
                    Tensor.ofInts(scope, indices, samples, experts, k), dProbs);
            assertClose(expected, dProbs.toFloatArray(), 1e-6, "dProbs");
        }
    }

    // ---------------------------------------------------------------- dispatch and combine

    @ParameterizedTest
    @ValueSource(ints = {1, 3, 17, 77})
    void dispatchAndCombineMatchReferences(int dim) {
        int samples = 3, tokens = 13, experts = 4, k = 5;
        Random random = new Random(dim);
        try (MemoryScope scope = new MemoryScope("moe-forward")) {
            float[] probs = randomProbabilities(random, samples, tokens, experts);
            Tensor gates = scope.zeros(samples, experts, k);
            Tensor indices = scope.zeros(DType.I32, samples, experts, k);
            BACKEND.expertChoiceTopK(Tensor.of(scope, probs, samples, tokens, experts), k, gates, indices);
            int[] idx = indices.toIntArray();

            float[] x = TestData.uniform(random, samples * tokens * dim);
            Tensor routed = TestData.poisoned(scope, experts, samples * k, dim);
            BACKEND.moeDispatch(Tensor.of(scope, x, samples, tokens, dim), indices, routed);
            assertClose(referenceDispatch(x, idx, samples, tokens, dim, experts, k), routed.toFloatArray(), 0,
                    "dispatch");

            float[] h = TestData.uniform(random, experts * samples * k * dim);
            Tensor out = TestData.poisoned(scope, samples, tokens, dim);
            BACKEND.moeCombine(Tensor.of(scope, h, experts, samples * k, dim), gates, indices, out);
            assertClose(referenceCombine(h, gates.toFloatArray(), idx, samples, tokens, dim, experts, k),
                    out.toFloatArray(), 1e-6, "combine");
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 3, 17, 77})
    void backwardsMatchReferencesWithRepeatedTokens(int dim) {
        int samples = 2, tokens = 5, experts = 3, k = 4;
        Random random = new Random(100 + dim);
        int[] idx = randomIndices(random, samples * experts * k, tokens);
        float[] gates = TestData.uniform(random, samples * experts * k);
        float[] h = TestData.uniform(random, experts * samples * k * dim);
        float[] dOut = TestData.uniform(random, samples * tokens * dim);
        float[] dRouted = TestData.uniform(random, experts * samples * k * dim);
        float[] dxInitial = TestData.uniform(random, samples * tokens * dim);
        try (MemoryScope scope = new MemoryScope("moe-backward")) {
            Tensor indices = Tensor.ofInts(scope, idx, samples, experts, k);

            // Dispatch backward accumulates: dx = initial + Σ over slots that chose the token.
            Tensor dx = Tensor.of(scope, dxInitial, samples, tokens, dim);
            BACKEND.moeDispatchBackward(Tensor.of(scope, dRouted, experts, samples * k, dim), indices, dx);
            double[] expectedDx = referenceCombine(dRouted, filled(gates.length, 1f), idx, samples, tokens, dim,
                    experts, k);
            for (int i = 0; i < expectedDx.length; i++) {
                expectedDx[i] += dxInitial[i];
            }
            assertClose(expectedDx, dx.toFloatArray(), 1e-6, "dx");

            // Combine backward writes dH = gate · dOut[token] and dGates = dOut[token] · h.
            Tensor dH = TestData.poisoned(scope, experts, samples * k, dim);
            Tensor dGates = TestData.poisoned(scope, samples, experts, k);
            BACKEND.moeCombineBackward(Tensor.of(scope, dOut, samples, tokens, dim),
                    Tensor.of(scope, h, experts, samples * k, dim), Tensor.of(scope, gates, samples, experts, k),
                    indices, dH, dGates);
            double[] expectedDh = new double[h.length];
            double[] expectedDGates = new double[gates.length];
            for (int n = 0; n < samples; n++) {
                for (int e = 0; e < experts; e++) {
                    for (int j = 0; j < k; j++) {
                        int slot = (n * experts + e) * k + j, row = (e * samples + n) * k + j;
                        for (int d = 0; d < dim; d++) {
                            double g = dOut[(n * tokens + idx[slot]) * dim + d];
                            expectedDh[row * dim + d] = gates[slot] * g;
                            expectedDGates[slot] += g * h[row * dim + d];
                        }
                    }
                }
            }
            assertClose(expectedDh, dH.toFloatArray(), 1e-6, "dH");
            assertClose(expectedDGates, dGates.toFloatArray(), 1e-5, "dGates");
        }
    }

    private static float[] filled(int n, float value) {
        float[] out = new float[n];
        Arrays.fill(out, value);
        return out;
    }

    @Test
    void flopsAreCounted() {
        int samples = 2, tokens = 5, experts = 3, k = 2, dim = 7;
        try (MemoryScope scope = new MemoryScope("moe-flops")) {
            Tensor indices = Tensor.ofInts(scope, randomIndices(new Random(1), samples * experts * k, tokens),
                    samples, experts, k);
            long before = BACKEND.flops().of("moeCombine");
            BACKEND.moeCombine(TestData.uniform(scope, new Random(2), experts, samples * k, dim),
                    TestData.uniform(scope, new Random(3), samples, experts, k), indices,
                    scope.zeros(samples, tokens, dim));
            assertEquals(2L * experts * samples * k * dim, BACKEND.flops().of("moeCombine") - before);
        }
    }

    // ---------------------------------------------------------------- determinism

    @Test
    void oneAndTwoThreadsAreBitIdentical() {
        int samples = 2, tokens = 1024, experts = 8, k = 256, dim = 33;
        Random random = new Random(77);
        try (MemoryScope scope = new MemoryScope("moe-threads")) {
            Tensor probs = Tensor.of(scope, randomProbabilities(random, samples, tokens, experts), samples, tokens,
                    experts);
            Tensor x = TestData.uniform(scope, random, samples, tokens, dim);
            Tensor h = TestData.uniform(scope, random, experts, samples * k, dim);
            Tensor dOut = TestData.uniform(scope, random, samples, tokens, dim);
            Tensor dGatesIn = TestData.uniform(scope, random, samples, experts, k);
            float[][] results = new float[2][];
            int run = 0;
            for (CpuBackend backend : new CpuBackend[] {SINGLE_THREAD, BACKEND}) {
                Tensor gates = scope.zeros(samples, experts, k);
                Tensor indices = scope.zeros(DType.I32, samples, experts, k);
                backend.expertChoiceTopK(probs, k, gates, indices);
                Tensor dProbs = scope.zeros(samples, tokens, experts);
                backend.expertChoiceTopKBackward(dGatesIn, indices, dProbs);
                Tensor routed = scope.zeros(experts, samples * k, dim);
                backend.moeDispatch(x, indices, routed);
                Tensor dx = scope.zeros(samples, tokens, dim);
                backend.moeDispatchBackward(h, indices, dx);
                Tensor out = scope.zeros(samples, tokens, dim);
                backend.moeCombine(h, gates, indices, out);
                Tensor dH = scope.zeros(experts, samples * k, dim);
                Tensor dGates = scope.zeros(samples, experts, k);
                backend.moeCombineBackward(dOut, h, gates, indices, dH, dGates);
                results[run++] = concat(gates.toFloatArray(), indices.to(DType.F32, scope).toFloatArray(),
                        dProbs.toFloatArray(), routed.toFloatArray(), dx.toFloatArray(), out.toFloatArray(),
                        dH.toFloatArray(), dGates.toFloatArray());
            }
            assertArrayEquals(results[0], results[1]);
        }
    }

    private static float[] concat(float[]... parts) {
        int length = 0;
        for (float[] part : parts) {
            length += part.length;
        }
        float[] out = new float[length];
        int at = 0;
        for (float[] part : parts) {
            System.arraycopy(part, 0, out, at, part.length);
            at += part.length;
        }
        return out;
    }

    // ---------------------------------------------------------------- bad arguments

    private static void assertRejected(Executable call, String... fragments) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        for (String fragment : fragments) {
            assertTrue(e.getMessage().contains(fragment), "message '" + e.getMessage() + "' lacks '" + fragment + "'");
        }
    }

    @Test
    void badTopKArgumentsThrow() {
        try (MemoryScope scope = new MemoryScope("moe-bad-topk")) {
            Tensor probs = Tensor.of(scope, randomProbabilities(new Random(5), 2, 6, 3), 2, 6, 3);
            assertRejected(() -> BACKEND.expertChoiceTopK(probs, 7, scope.zeros(2, 3, 7),
                    scope.zeros(DType.I32, 2, 3, 7)), "expertChoiceTopK", "k", "got 7");
            assertRejected(() -> BACKEND.expertChoiceTopK(probs, 0, scope.zeros(2, 3, 0),
                    scope.zeros(DType.I32, 2, 3, 0)), "expertChoiceTopK", "got 0");
            assertRejected(() -> BACKEND.expertChoiceTopK(probs, 2, scope.zeros(2, 3, 2), scope.zeros(2, 3, 2)),
                    "expertChoiceTopK", "indices", "I32");
            assertRejected(() -> BACKEND.expertChoiceTopK(probs, 2, scope.zeros(2, 3, 2),
                    scope.zeros(DType.I32, 2, 2, 2)), "expertChoiceTopK", "indices", "[2, 3, 2]");
            assertRejected(() -> BACKEND.expertChoiceTopK(probs, 2, scope.zeros(3, 2, 2),
                    scope.zeros(DType.I32, 2, 3, 2)), "expertChoiceTopK", "gates");
            assertRejected(() -> BACKEND.expertChoiceTopK(probs.reshape(12, 3), 2, scope.zeros(2, 3, 2),
                    scope.zeros(DType.I32, 2, 3, 2)), "expertChoiceTopK", "probs", "rank 3");
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {-1, 6, Integer.MAX_VALUE})
    void outOfRangeIndicesThrowBeforeAnythingIsWritten(int badIndex) {
        int samples = 2, tokens = 6, experts = 3, k = 2, dim = 5;
        Random random = new Random(9);
        try (MemoryScope scope = new MemoryScope("moe-bad-index")) {
            int[] idx = randomIndices(random, samples * experts * k, tokens);
            idx[(1 * experts + 2) * k + 1] = badIndex;
            Tensor indices = Tensor.ofInts(scope, idx, samples, experts, k);
            Tensor x = TestData.uniform(scope, random, samples, tokens, dim);
            Tensor h = TestData.uniform(scope, random, experts, samples * k, dim);
            Tensor gates = TestData.uniform(scope, random, samples, experts, k);
            String where = "indices[1, 2, 1] = " + badIndex;

            Tensor routed = TestData.poisoned(scope, experts, samples * k, dim);
            assertRejected(() -> BACKEND.moeDispatch(x, indices, routed), "moeDispatch", where);
            Tensor out = TestData.poisoned(scope, samples, tokens, dim);
            assertRejected(() -> BACKEND.moeCombine(h, gates, indices, out), "moeCombine", where);
            Tensor dx = TestData.poisoned(scope, samples, tokens, dim);
            assertRejected(() -> BACKEND.moeDispatchBackward(h, indices, dx), "moeDispatchBackward", where);
            Tensor dH = TestData.poisoned(scope, experts, samples * k, dim);
            Tensor dGates = TestData.poisoned(scope, samples, experts, k);
            assertRejected(() -> BACKEND.moeCombineBackward(x, h, gates, indices, dH, dGates), "moeCombineBackward",
                    where);
            Tensor dProbs = TestData.poisoned(scope, samples, tokens, experts);
            assertRejected(() -> BACKEND.expertChoiceTopKBackward(gates, indices, dProbs),
                    "expertChoiceTopKBackward", where);
            for (Tensor untouched : new Tensor[] {routed, out, dx, dH, dGates, dProbs}) {
                for (float v : untouched.toFloatArray()) {
                    assertTrue(Float.isNaN(v), "an output was written before the indices were checked");
                }
            }
        }
    }

    @Test
    void badShapesAndDtypesInDispatchAndCombineThrow() {
        int samples = 2, tokens = 6, experts = 3, k = 2, dim = 5;
        Random random = new Random(10);
        try (MemoryScope scope = new MemoryScope("moe-bad-shapes")) {
            Tensor indices = Tensor.ofInts(scope, randomIndices(random, samples * experts * k, tokens), samples,
                    experts, k);
            Tensor x = TestData.uniform(scope, random, samples, tokens, dim);
            Tensor h = TestData.uniform(scope, random, experts, samples * k, dim);
            Tensor gates = TestData.uniform(scope, random, samples, experts, k);
            assertRejected(() -> BACKEND.moeDispatch(x, indices.to(DType.F32, scope),
                    scope.zeros(experts, samples * k, dim)), "moeDispatch", "indices", "I32");
            assertRejected(() -> BACKEND.moeDispatch(x, indices.reshape(samples, experts * k),
                    scope.zeros(experts, samples * k, dim)), "moeDispatch", "indices", "rank 3");
            assertRejected(() -> BACKEND.moeDispatch(x, indices, scope.zeros(experts, samples * k, dim + 1)),
                    "moeDispatch", "out");
            assertRejected(() -> BACKEND.moeDispatch(x.reshape(1, samples * tokens, dim), indices,
                    scope.zeros(experts, samples * k, dim)), "moeDispatch", "samples");
            assertRejected(() -> BACKEND.moeCombine(h, scope.zeros(samples, experts, k + 1), indices,
                    scope.zeros(samples, tokens, dim)), "moeCombine", "gates");
            assertRejected(() -> BACKEND.moeCombine(h, gates, indices, scope.zeros(samples, tokens, dim + 1)),
                    "moeCombine", "out");
            assertRejected(() -> BACKEND.moeCombineBackward(scope.zeros(samples, tokens, dim), h, gates, indices,
                    scope.zeros(experts, samples * k, dim), scope.zeros(samples, experts)), "moeCombineBackward",
                    "dGates");
            assertRejected(() -> BACKEND.expertChoiceTopKBackward(gates, indices, scope.zeros(samples, tokens,
                    experts + 1)), "expertChoiceTopKBackward", "dProbs");
        }
    }
}
