package io.microdit.autograd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.backend.cpu.CpuBackend;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.function.BiFunction;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * Mixed precision: a bf16 graph must compute exactly what an F32 graph computes on the bf16-rounded operands (the
 * CPU backend multiplies bf16 numbers as their exact F32 values), forward and backward, while norms, biases and
 * gradients stay F32.
 */
class PrecisionTest {
    private static final CpuBackend BACKEND = new CpuBackend(2);

    @AfterAll
    static void close() {
        BACKEND.close();
    }

    private static float[] rounded(float[] values) {
        float[] out = new float[values.length];
        for (int i = 0; i < values.length; i++) {
            out[i] = DType.bf16ToFloat(DType.floatToBf16(values[i]));
        }
        return out;
    }

    private record Run(float[] output, List<float[]> gradients) {
    }

    /**
     * Runs {@code op} on leaves made from {@code inputs} in a graph of {@code precision}, back-propagating
     * {@code seed}; returns the output and each leaf's gradient.
     */
    private static Run run(Precision precision, List<float[]> inputs, List<int[]> shapes, float[] seed,
                           BiFunction<Graph, Variable[], Variable> op) {
        try (MemoryScope scope = new MemoryScope("precision-test")) {
            Graph g = new Graph(BACKEND, scope, precision);
            Variable[] leaves = new Variable[inputs.size()];
            for (int i = 0; i < leaves.length; i++) {
                leaves[i] = g.leaf(Tensor.of(scope, inputs.get(i), shapes.get(i)));
            }
            float[] output;
            try (GradScope ignored = g.recordGradients()) {
                Variable out = op.apply(g, leaves);
                output = out.value().toFloatArray();
                g.backward(out, Tensor.of(scope, seed, out.shape()));
            }
            return new Run(output, Arrays.stream(leaves).map(v -> v.grad().toFloatArray()).toList());
        }
    }

    /** bf16 graph on raw values vs F32 graph on rounded values (the rounded positions in {@code roundedInputs}). */
    private static void assertSameAsF32OnRoundedOperands(List<float[]> inputs, boolean[] roundedInputs,
                                                         List<int[]> shapes, int outputSize,
                                                         BiFunction<Graph, Variable[], Variable> op) {
        Random random = new Random(outputSize);
        float[] seed = rounded(TestData.uniform(random, outputSize)); // representable: both graphs see the same dy
        List<float[]> roundedValues = new java.util.ArrayList<>();
        for (int i = 0; i < inputs.size(); i++) {
            roundedValues.add(roundedInputs[i] ? rounded(inputs.get(i)) : inputs.get(i));
        }
        Run mixed = run(Precision.BF16, inputs, shapes, seed, op);
        Run reference = run(Precision.F32, roundedValues, shapes, seed, op);
        assertClose(reference.output(), mixed.output(), "output");
        for (int i = 0; i < inputs.size(); i++) {
            assertClose(reference.gradients().get(i), mixed.gradients().get(i), "gradient of input " + i);
        }
        Run exact = run(Precision.F32, inputs, shapes, seed, op);
        assertNotEquals(0.0, maxDifference(exact.output(), mixed.output()),
                "the bf16 graph rounded nothing: its output equals the unrounded F32 one");
    }

    private static double maxDifference(float[] a, float[] b) {
        double worst = 0;
        for (int i = 0; i < a.length; i++) {
            worst = Math.max(worst, Math.abs(a[i] - b[i]));
        }
        return worst;
    }

    private static void assertClose(float[] expected, float[] actual, String what) {
        double err = TestData.maxRelativeError(actual, TestData.toDouble(expected));
        assertTrue(err <= 1e-6, what + ": max relative error " + err);
    }

    @Test
    void linearMultipliesBf16OperandsAndKeepsTheBiasF32() {
        Random random = new Random(41);
        int rows = 2 * 7, in = 19, out = 13;
        assertSameAsF32OnRoundedOperands(
                List.of(TestData.uniform(random, rows * in), TestData.uniform(random, out * in),
                        TestData.uniform(random, out)),
                new boolean[] {true, true, false}, List.of(new int[] {2, 7, in}, new int[] {out, in}, new int[] {out}),
                rows * out, (g, v) -> MatmulFunctions.linear(g, v[0], v[1], v[2]));
    }

    @Test
    void batchedMatmulWithTransposesMultipliesBf16Operands() {
        Random random = new Random(43);
        assertSameAsF32OnRoundedOperands(
                List.of(TestData.uniform(random, 3 * 9 * 5), TestData.uniform(random, 3 * 11 * 9)),
                new boolean[] {true, true}, List.of(new int[] {3, 9, 5}, new int[] {3, 11, 9}), 3 * 5 * 11,
                (g, v) -> MatmulFunctions.matmul(g, v[0], true, v[1], true));
    }

    @Test
    void attentionReadsBf16QueriesKeysAndValues() {
        Random random = new Random(47);
        int batch = 2, queries = 9, keys = 13, width = 2 * 8;
        assertSameAsF32OnRoundedOperands(
                List.of(TestData.uniform(random, batch * queries * width),
                        TestData.uniform(random, batch * keys * width),
                        TestData.uniform(random, batch * keys * width)),
                new boolean[] {true, true, true},
                List.of(new int[] {batch, queries, width}, new int[] {batch, keys, width},
                        new int[] {batch, keys, width}),
                batch * queries * width, (g, v) -> AttentionFunctions.attention(g, v[0], v[1], v[2], 2));
    }

    @Test
    void anF32LinearInsideABf16GraphDoesNotRound() {
        Random random = new Random(53);
        List<float[]> inputs = List.of(TestData.uniform(random, 6 * 10), TestData.uniform(random, 4 * 10));
        List<int[]> shapes = List.of(new int[] {6, 10}, new int[] {4, 10});
        float[] seed = TestData.uniform(random, 24);
        Run forced = run(Precision.BF16, inputs, shapes, seed,
                (g, v) -> MatmulFunctions.linear(g, v[0], v[1], null, Precision.F32));
        Run exact = run(Precision.F32, inputs, shapes, seed, (g, v) -> MatmulFunctions.linear(g, v[0], v[1], null));
        assertEquals(0.0, maxDifference(exact.output(), forced.output()));
        assertEquals(0.0, maxDifference(exact.gradients().get(1), forced.gradients().get(1)));
    }

    @Test
    void aWeightIsRoundedOncePerGraphAndF32GraphsUseTheValueItself() {
        try (MemoryScope scope = new MemoryScope("precision-cache")) {
            Tensor w = TestData.uniform(scope, new Random(59), 5, 3);
            Graph mixed = new Graph(BACKEND, scope, Precision.BF16);
            Variable weight = mixed.constant(w);
            Tensor first = mixed.matmulOperand(weight);
            assertEquals(DType.BF16, first.dtype());
            assertSame(first, mixed.matmulOperand(weight));
            Graph full = new Graph(BACKEND, scope);
            Variable same = full.constant(w);
            assertSame(w, full.matmulOperand(same));
            assertSame(w, full.matmulGradient(w));
        }
    }

    /**
     * A DiT block's ops in miniature (adaLN LayerNorm into q|k|v, QK-norm into attention, LayerNorm into a linear,
     * the SwiGLU gate into w3, an expert's GELU into its second product), with the outputs that only matrix
     * products read in {@code type}.
     */
    private static Variable miniBlock(Graph g, Variable[] v, DType type) {
        float eps = 1e-6f;
        Variable x = v[0];
        Variable h = NormFunctions.layerNormModulate(g, x, v[4], v[1], v[2], eps, type);
        assertEquals(type, h.value().dtype());
        Variable[] qkv = MatmulFunctions.linearParts(g, h, v[5], v[6], 3);
        Variable qn = NormFunctions.layerNorm(g, qkv[0], null, eps, type);
        Variable kn = NormFunctions.layerNorm(g, qkv[1], null, eps, type);
        Variable attended = AttentionFunctions.attention(g, qn, kn, qkv[2], 2);
        x = ElementwiseFunctions.gatedResidual(g, x, v[3], MatmulFunctions.linear(g, attended, v[7], v[8]));
        x = ElementwiseFunctions.add(g, x,
                MatmulFunctions.linear(g, NormFunctions.layerNorm(g, x, v[9], eps, type), v[10], null));
        h = NormFunctions.layerNormModulate(g, x, v[11], v[12], v[13], eps, type);
        Variable gate = ActivationFunctions.swigluGate(g, MatmulFunctions.linear(g, h, v[14], null),
                MatmulFunctions.linear(g, h, v[15], null), type);
        assertEquals(type, gate.value().dtype());
        Variable f = MatmulFunctions.linear(g, gate, v[16], null);
        Variable hidden = ActivationFunctions.gelu(g, MatmulFunctions.matmul(g, f, false, v[17], false), false, type);
        return ElementwiseFunctions.add(g, x, MatmulFunctions.matmul(g, hidden, false, v[18], false));
    }

    @Test
    void bf16OutputsOfNormsAndActivationsGiveTheSameBlockAsF32OutputsConverted() {
        Random random = new Random(61);
        int n = 2, t = 5, d = 16, hidden = 24;
        int[][] shapes = {{n, t, d}, {n, d}, {n, d}, {n, d}, {d}, {3 * d, d}, {3 * d}, {d, d}, {d}, {d}, {d, d}, {d},
            {n, d}, {n, d}, {hidden, d}, {hidden, d}, {d, hidden}, {n, d, hidden}, {n, hidden, d}};
        List<float[]> inputs = new java.util.ArrayList<>();
        for (int[] shape : shapes) {
            inputs.add(TestData.uniform(random, Arrays.stream(shape).reduce(1, (a, b) -> a * b)));
        }
        float[] seed = TestData.uniform(random, n * t * d);
        Run before = run(Precision.BF16, inputs, List.of(shapes), seed, (g, v) -> miniBlock(g, v, DType.F32));
        Run after = run(Precision.BF16, inputs, List.of(shapes), seed,
                (g, v) -> miniBlock(g, v, g.matmulOperandType()));
        // The products read the same bf16 numbers either way: the same forward bits. The backward keeps a bf16
        // output's gradient in bf16 (rounded once, as autocast keeps it), so the gradients agree to bf16 rounding,
        // accumulated over the block's ops: relative L2 within 1e-2 (bf16's unit roundoff is 3.9e-3).
        assertArrayEquals(before.output(), after.output(), "block output");
        for (int i = 0; i < shapes.length; i++) {
            float[] expected = before.gradients().get(i), actual = after.gradients().get(i);
            double difference = 0, norm = 0;
            for (int j = 0; j < expected.length; j++) {
                difference += Math.pow(actual[j] - expected[j], 2);
                norm += Math.pow(expected[j], 2);
            }
            double relative = Math.sqrt(difference / norm);
            int input = i;
            assertTrue(relative <= 1e-2, () -> "gradient of input " + input + ": relative L2 " + relative);
        }
        Run f32 = run(Precision.F32, inputs, List.of(shapes), seed, (g, v) -> miniBlock(g, v, g.matmulOperandType()));
        assertNotEquals(0.0, maxDifference(f32.output(), after.output()), "an F32 graph must not round");
    }

    @Test
    void parsingNamesWhatItReads() {
        assertEquals(Precision.BF16, Precision.parse("BF16", "--precision"));
        assertEquals(Precision.F32, Precision.parse("f32", "--precision"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Precision.parse("fp16", "--precision"));
        assertTrue(e.getMessage().contains("--precision") && e.getMessage().contains("fp16"), e.getMessage());
    }
}
