package io.microdit.autograd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.backend.cpu.CpuBackend;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.GeluReference;
import io.microdit.testing.GradientCheck;
import io.microdit.testing.TestData;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class MoeFunctionsTest {
    private static final CpuBackend BACKEND = new CpuBackend(2);

    @AfterAll
    static void close() {
        BACKEND.close();
    }

    // ---------------------------------------------------------------- k

    /** Expected values are Python's {@code int(capacity * t / num_experts)}, as in the official code. */
    @ParameterizedTest
    @CsvSource({
        "2.0, 64, 8, 16", "2.0, 256, 8, 64", "2.0, 1024, 8, 256", // MicroDiT: masked and unmasked token counts
        "1.5, 7, 2, 5",      // 5.25 truncates
        "0.29, 100, 1, 28",  // 0.29 · 100 = 28.999999999999996 in double: truncation, not rounding
        "3.5, 90, 5, 63",    // (3.5 · 90) / 5 = 63, whereas 3.5 / 5 · 90 = 62.99999999999999
        "8.0, 10, 8, 10",    // capacity = experts: every expert takes every token
    })
    void tokensPerExpertTruncatesLikePython(double capacity, int tokens, int experts, int expected) {
        assertEquals(expected, MoeFunctions.tokensPerExpert(capacity, tokens, experts));
    }

    @Test
    void tokensPerExpertRejectsZeroAndTooMany() {
        IllegalArgumentException zero = assertThrows(IllegalArgumentException.class,
                () -> MoeFunctions.tokensPerExpert(2.0, 3, 8));
        assertTrue(zero.getMessage().contains("0 tokens per expert"), zero.getMessage());
        IllegalArgumentException many = assertThrows(IllegalArgumentException.class,
                () -> MoeFunctions.tokensPerExpert(9.0, 10, 8));
        assertTrue(many.getMessage().contains("more than the 10 tokens"), many.getMessage());
        assertThrows(IllegalArgumentException.class, () -> MoeFunctions.tokensPerExpert(Double.NaN, 64, 8));
        assertThrows(IllegalArgumentException.class, () -> MoeFunctions.tokensPerExpert(2.0, 64, 0));
    }

    // ---------------------------------------------------------------- the routed layer vs the official dense form

    private static final int SAMPLES = 2, TOKENS = 12, EXPERTS = 4, DIM = 5, OUT_DIM = 3;
    private static final int K = MoeFunctions.tokensPerExpert(2.0, TOKENS, EXPERTS);

    /** probs = softmax over experts of x · Wgᵀ, in float64: [N, T, E]. */
    private static double[] referenceProbabilities(double[] x, double[] gateWeight) {
        double[] probs = new double[SAMPLES * TOKENS * EXPERTS];
        for (int row = 0; row < SAMPLES * TOKENS; row++) {
            double max = Double.NEGATIVE_INFINITY;
            for (int e = 0; e < EXPERTS; e++) {
                double logit = 0;
                for (int d = 0; d < DIM; d++) {
                    logit += x[row * DIM + d] * gateWeight[e * DIM + d];
                }
                probs[row * EXPERTS + e] = logit;
                max = Math.max(max, logit);
            }
            double sum = 0;
            for (int e = 0; e < EXPERTS; e++) {
                probs[row * EXPERTS + e] = Math.exp(probs[row * EXPERTS + e] - max);
                sum += probs[row * EXPERTS + e];
            }
            for (int e = 0; e < EXPERTS; e++) {
                probs[row * EXPERTS + e] /= sum;
            }
        }
        return probs;
    }

    /** The tokens of sample n ordered for expert e: probability descending, then token index ascending. */
    private static Integer[] tokenOrder(double[] probs, int n, int e) {
        Integer[] order = new Integer[TOKENS];
        Arrays.setAll(order, t -> t);
        Arrays.sort(order, (a, b) -> {
            int byValue = Double.compare(probs[(n * TOKENS + b) * EXPERTS + e], probs[(n * TOKENS + a) * EXPERTS + e]);
            return byValue != 0 ? byValue : Integer.compare(a, b);
        });
        return order;
    }

    /**
     * The official FeedForwardECMoe with a linear map per expert instead of the GELU MLP, written as the
     * reference code computes it: dense one-hot dispatch and combine einsums, float64.
     * <pre>
     * probs = softmax(gate(x), dim=-1); g, m = topk(probs.permute(0,2,1), k)
     * P = one_hot(m, t)                                   # [n, e, k, t]
     * xin = einsum('nekt,ntd->nekd', P, x); h = xin @ w[e]
     * out = einsum('nekt,nek,nekd->ntd', P, g, h)
     * </pre>
     */
    private static double[] referenceLayer(double[] x, double[] gateWeight, double[] expertWeight) {
        double[] probs = referenceProbabilities(x, gateWeight);
        double[] gates = new double[SAMPLES * EXPERTS * K];
        double[] oneHot = new double[SAMPLES * EXPERTS * K * TOKENS];
        for (int n = 0; n < SAMPLES; n++) {
            for (int e = 0; e < EXPERTS; e++) {
                Integer[] order = tokenOrder(probs, n, e);
                for (int j = 0; j < K; j++) {
                    int slot = (n * EXPERTS + e) * K + j;
                    gates[slot] = probs[(n * TOKENS + order[j]) * EXPERTS + e];
                    oneHot[slot * TOKENS + order[j]] = 1;
                }
            }
        }
        double[] out = new double[SAMPLES * TOKENS * OUT_DIM];
        for (int n = 0; n < SAMPLES; n++) {
            for (int e = 0; e < EXPERTS; e++) {
                for (int j = 0; j < K; j++) {
                    int slot = (n * EXPERTS + e) * K + j;
                    double[] xin = new double[DIM];
                    for (int t = 0; t < TOKENS; t++) {
                        for (int d = 0; d < DIM; d++) {
                            xin[d] += oneHot[slot * TOKENS + t] * x[(n * TOKENS + t) * DIM + d];
                        }
                    }
                    double[] h = new double[OUT_DIM];
                    for (int o = 0; o < OUT_DIM; o++) {
                        for (int d = 0; d < DIM; d++) {
                            h[o] += xin[d] * expertWeight[(e * DIM + d) * OUT_DIM + o];
                        }
                    }
                    for (int t = 0; t < TOKENS; t++) {
                        for (int o = 0; o < OUT_DIM; o++) {
                            out[(n * TOKENS + t) * OUT_DIM + o] += oneHot[slot * TOKENS + t] * gates[slot] * h[o];
                        }
                    }
                }
            }
        }
        return out;
    }

    /**
     * The smallest gap, over all (sample, expert), between the k-th and (k+1)-th probability: finite differences
     * are only valid when no perturbation can swap a token in or out of the top k.
     */
    private static double boundaryGap(double[] probs) {
        double gap = Double.POSITIVE_INFINITY;
        for (int n = 0; n < SAMPLES; n++) {
            for (int e = 0; e < EXPERTS; e++) {
                Integer[] order = tokenOrder(probs, n, e);
                gap = Math.min(gap, probs[(n * TOKENS + order[K - 1]) * EXPERTS + e]
                        - probs[(n * TOKENS + order[K]) * EXPERTS + e]);
            }
        }
        return gap;
    }

    @Test
    void routedLayerMatchesTheOfficialOneHotFormulationAndFiniteDifferences() {
        float[] x = null, gateWeight = null, expertWeight = null;
        // Deterministic search for data whose top-k sets are well separated (gap ≥ 2e-3 against steps of 1e-4).
        for (long seed = 1; x == null; seed++) {
            Random random = new Random(seed);
            float[] candidateX = TestData.uniform(random, SAMPLES * TOKENS * DIM);
            float[] candidateGate = TestData.uniform(random, EXPERTS * DIM);
            for (int i = 0; i < candidateGate.length; i++) {
                candidateGate[i] *= 2f;
            }
            if (boundaryGap(referenceProbabilities(TestData.toDouble(candidateX),
                    TestData.toDouble(candidateGate))) >= 2e-3) {
                x = candidateX;
                gateWeight = candidateGate;
                expertWeight = TestData.uniform(random, EXPERTS * DIM * OUT_DIM);
            }
        }
        GradientCheck.of(BACKEND, 21)
                .input("x", x, SAMPLES, TOKENS, DIM)
                .input("gate weight", gateWeight, EXPERTS, DIM)
                .input("expert weights", expertWeight, EXPERTS, DIM, OUT_DIM)
                .forwardTolerance(1e-5)
                .maxElementsPerInput(120)
                .check((g, v) -> {
                    Variable probs = SoftmaxFunctions.softmax(g, MatmulFunctions.linear(g, v[0], v[1], null));
                    MoeFunctions.Routing routing = MoeFunctions.route(g, probs, K);
                    Variable routed = MoeFunctions.dispatch(g, v[0], routing.indices(), EXPERTS);
                    Variable h = MatmulFunctions.matmul(g, routed, false, v[2], false);
                    return MoeFunctions.combine(g, h, routing.gates(), routing.indices(), TOKENS, DType.F32);
                }, r -> referenceLayer(r[0], r[1], r[2]));
    }

    // ---------------------------------------------------------------- each function alone

    /** The experts' GELU MLP on the routed tokens: values against float64, gradients of x, w1, w2 against FD. */
    @Test
    void expertsGradientsWithFixedIndices() {
        int samples = 2, tokens = 6, experts = 3, k = 2, dim = 5, hidden = 7;
        Random random = new Random(33);
        int[] indices = new int[samples * experts * k];
        for (int i = 0; i < indices.length; i++) {
            indices[i] = random.nextInt(tokens);
        }
        try (MemoryScope scope = new MemoryScope("moe-experts")) {
            Tensor indexTensor = Tensor.ofInts(scope, indices, samples, experts, k);
            GradientCheck.of(BACKEND, 7)
                    .input("x", TestData.uniform(random, samples * tokens * dim), samples, tokens, dim)
                    .input("w1", TestData.uniform(random, experts * dim * hidden), experts, dim, hidden)
                    .input("w2", TestData.uniform(random, experts * hidden * dim), experts, hidden, dim)
                    .check((g, v) -> MoeFunctions.experts(g, v[0], indexTensor, v[1], v[2], DType.F32),
                            r -> GeluReference.geluProducts(dispatched(r[0], indices, samples, tokens, experts, k,
                                    dim), r[1], r[2], experts, samples * k, dim, hidden, false));
        }
    }

    /** The rows of x [N, T, D] that {@code indices} [N, E, k] route, as dispatch lays them out: [E, N·k, D]. */
    private static double[] dispatched(double[] x, int[] indices, int samples, int tokens, int experts, int k,
                                       int dim) {
        double[] out = new double[experts * samples * k * dim];
        for (int e = 0; e < experts; e++) {
            for (int n = 0; n < samples; n++) {
                for (int j = 0; j < k; j++) {
                    int t = indices[(n * experts + e) * k + j];
                    System.arraycopy(x, (n * tokens + t) * dim, out, ((e * samples + n) * k + j) * dim, dim);
                }
            }
        }
        return out;
    }

    @Test
    void dispatchAndCombineGradientsWithFixedIndices() {
        int samples = 2, tokens = 7, experts = 3, k = 3, dim = 17;
        Random random = new Random(31);
        int[] indices = new int[samples * experts * k];
        for (int i = 0; i < indices.length; i++) {
            indices[i] = random.nextInt(tokens); // repeats allowed: several experts (or slots) on one token
        }
        float[] x = TestData.uniform(random, samples * tokens * dim);
        float[] h = TestData.uniform(random, experts * samples * k * dim);
        float[] gates = TestData.uniform(random, samples * experts * k);
        try (MemoryScope scope = new MemoryScope("moe-fixed-indices")) {
            Tensor indexTensor = Tensor.ofInts(scope, indices, samples, experts, k);
            GradientCheck.of(BACKEND, 5)
                    .input("x", x, samples, tokens, dim)
                    .check((g, v) -> MoeFunctions.dispatch(g, v[0], indexTensor, experts),
                            r -> dispatched(r[0], indices, samples, tokens, experts, k, dim));
            GradientCheck.of(BACKEND, 6)
                    .input("h", h, experts, samples * k, dim)
                    .input("gates", gates, samples, experts, k)
                    .check((g, v) -> MoeFunctions.combine(g, v[0], v[1], indexTensor, tokens, DType.F32), r -> {
                        double[] out = new double[samples * tokens * dim];
                        for (int n = 0; n < samples; n++) {
                            for (int e = 0; e < experts; e++) {
                                for (int j = 0; j < k; j++) {
                                    int slot = (n * experts + e) * k + j, row = (e * samples + n) * k + j;
                                    for (int d = 0; d < dim; d++) {
                                        out[(n * tokens + indices[slot]) * dim + d] += r[1][slot] * r[0][row * dim + d];
                                    }
                                }
                            }
                        }
                        return out;
                    });
        }
    }

    @Test
    void routeGivesGatesAGradientAndIndicesAreStepScopedIntegers() {
        int samples = 1, tokens = 5, experts = 2, k = 2;
        // probs chosen by hand: expert 0 prefers tokens 3 then 0, expert 1 tokens 1 then 4.
        float[] probs = {0.6f, 0.4f, 0.2f, 0.8f, 0.5f, 0.5f, 0.9f, 0.1f, 0.3f, 0.7f};
        try (MemoryScope scope = new MemoryScope("moe-route")) {
            Graph graph = new Graph(BACKEND, scope);
            try (GradScope _ = graph.recordGradients()) {
                Variable p = graph.leaf(Tensor.of(scope, probs, samples, tokens, experts));
                MoeFunctions.Routing routing = MoeFunctions.route(graph, p, k);
                assertEquals(DType.I32, routing.indices().dtype());
                assertEquals(scope, routing.indices().scope());
                assertArrayEquals(new int[] {3, 0, 1, 4}, routing.indices().toIntArray());
                assertArrayEquals(new float[] {0.9f, 0.6f, 0.8f, 0.7f}, routing.gates().value().toFloatArray());
                graph.backward(routing.gates(), Tensor.of(scope, new float[] {1, 2, 3, 4}, samples, experts, k));
                assertNotNull(p.grad());
                // dProbs[t, e]: token 3 expert 0 gets 1, token 0 expert 0 gets 2, token 1 expert 1 gets 3,
                // token 4 expert 1 gets 4, everything else 0.
                assertArrayEquals(new float[] {2, 0, 0, 3, 0, 0, 1, 0, 0, 4}, p.grad().toFloatArray());
            }
        }
    }

    @Test
    void constantProbabilitiesRecordNothing() {
        try (MemoryScope scope = new MemoryScope("moe-constant")) {
            Graph graph = new Graph(BACKEND, scope);
            try (GradScope _ = graph.recordGradients()) {
                Variable p = graph.constant(Tensor.of(scope, new float[] {0.2f, 0.8f, 0.6f, 0.4f}, 1, 2, 2));
                MoeFunctions.Routing routing = MoeFunctions.route(graph, p, 1);
                assertFalse(routing.gates().requiresGrad());
                assertNull(p.grad());
            }
        }
    }

    @Test
    void mismatchedArgumentsThrow() {
        try (MemoryScope scope = new MemoryScope("moe-functions-bad")) {
            Graph graph = new Graph(BACKEND, scope);
            Variable x = graph.constant(TestData.uniform(scope, new Random(1), 2, 6, 4));
            Tensor indices = scope.zeros(DType.I32, 2, 3, 2);
            IllegalArgumentException experts = assertThrows(IllegalArgumentException.class,
                    () -> MoeFunctions.dispatch(graph, x, indices, 4));
            assertTrue(experts.getMessage().contains("dispatch"), experts.getMessage());
            IllegalArgumentException route = assertThrows(IllegalArgumentException.class,
                    () -> MoeFunctions.route(graph, x, 7));
            assertTrue(route.getMessage().contains("expertChoiceTopK"), route.getMessage());
        }
    }
}
