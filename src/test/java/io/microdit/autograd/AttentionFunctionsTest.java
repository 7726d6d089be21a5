package io.microdit.autograd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.backend.cpu.CpuAttentionTest;
import io.microdit.backend.cpu.CpuBackend;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.GradientCheck;
import io.microdit.testing.TestData;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class AttentionFunctionsTest {
    private static final CpuBackend BACKEND = new CpuBackend(2);

    @AfterAll
    static void close() {
        BACKEND.close();
    }

    @ParameterizedTest(name = "N={0} H={1} Tq={2} Tk={3} Dh={4}")
    @CsvSource({
        "2, 2, 5, 7, 3",
        "2, 2, 6, 6, 3",
        "1, 3, 4, 9, 1",
        "1, 1, 17, 3, 5",
        "2, 1, 3, 77, 2",
    })
    void gradientsOfQueryKeyAndValueMatchFiniteDifferences(int batch, int heads, int queries, int keys,
                                                           int headDim) {
        int width = heads * headDim;
        Random random = new Random(queries * 131L + keys);
        GradientCheck.of(BACKEND, 17)
                .input("q", TestData.uniform(random, batch * queries * width), batch, queries, width)
                .input("k", TestData.uniform(random, batch * keys * width), batch, keys, width)
                .input("v", TestData.uniform(random, batch * keys * width), batch, keys, width)
                .check((g, in) -> AttentionFunctions.attention(g, in[0], in[1], in[2], heads),
                        r -> CpuAttentionTest.reference(r[0], r[1], r[2], batch, queries, keys, heads, headDim)[0]);
    }

    @Test
    void selfAttentionOnOneVariableSumsTheThreeGradients() {
        int batch = 2, heads = 2, tokens = 5, headDim = 3, width = heads * headDim;
        Random random = new Random(23);
        GradientCheck.of(BACKEND, 29)
                .input("x", TestData.uniform(random, batch * tokens * width), batch, tokens, width)
                .check((g, in) -> AttentionFunctions.attention(g, in[0], in[0], in[0], heads),
                        r -> CpuAttentionTest.reference(r[0], r[0], r[0], batch, tokens, tokens, heads, headDim)[0]);
    }

    @Test
    void constantKeysAndValuesGetNoGradientButQueriesDo() {
        int batch = 1, heads = 2, queries = 4, keys = 6, headDim = 2, width = heads * headDim;
        Random random = new Random(31);
        GradientCheck.of(BACKEND, 37)
                .input("q", TestData.uniform(random, batch * queries * width), batch, queries, width)
                .constant("k", TestData.uniform(random, batch * keys * width), batch, keys, width)
                .constant("v", TestData.uniform(random, batch * keys * width), batch, keys, width)
                .check((g, in) -> AttentionFunctions.attention(g, in[0], in[1], in[2], heads),
                        r -> CpuAttentionTest.reference(r[0], r[1], r[2], batch, queries, keys, heads, headDim)[0]);
    }

    @ParameterizedTest(name = "N={0} H={1} Tq={2} Tk={3} Dh={4}")
    @CsvSource({"2, 2, 5, 7, 3", "1, 3, 4, 9, 2"})
    void normalizedAttentionGradientsMatchFiniteDifferences(int batch, int heads, int queries, int keys,
                                                            int headDim) {
        int width = heads * headDim;
        float eps = 1e-5f;
        Random random = new Random(queries * 37L + keys);
        GradientCheck.of(BACKEND, 41)
                .input("q", TestData.uniform(random, batch * queries * width), batch, queries, width)
                .input("k", TestData.uniform(random, batch * keys * width), batch, keys, width)
                .input("v", TestData.uniform(random, batch * keys * width), batch, keys, width)
                .check((g, in) -> AttentionFunctions.normalizedAttention(g, in[0], in[1], in[2], heads, eps,
                                DType.F32),
                        r -> CpuAttentionTest.reference(normalized(r[0], width, eps), normalized(r[1], width, eps),
                                r[2], batch, queries, keys, heads, headDim)[0]);
    }

    /** Non-affine LayerNorm of rows of {@code width}, in double. */
    private static double[] normalized(double[] x, int width, double eps) {
        double[] out = new double[x.length];
        for (int row = 0; row < x.length / width; row++) {
            double mean = 0, variance = 0;
            for (int c = 0; c < width; c++) {
                mean += x[row * width + c] / width;
            }
            for (int c = 0; c < width; c++) {
                double d = x[row * width + c] - mean;
                variance += d * d / width;
            }
            for (int c = 0; c < width; c++) {
                out[row * width + c] = (x[row * width + c] - mean) / Math.sqrt(variance + eps);
            }
        }
        return out;
    }

    /**
     * In a bf16 graph, q, k and v as a model makes them (bf16 outputs of linear layers): the fused op's output and
     * every parameter's gradient are bit for bit those of layerNorm (BF16 out) of q and k and attention.
     */
    @Test
    void normalizedAttentionInABf16GraphEqualsQkNormThenAttention() {
        int batch = 2, heads = 2, queries = 9, keys = 6, headDim = 4, dim = 5, width = heads * headDim;
        float eps = 1e-6f;
        List<float[]> results = new ArrayList<>();
        for (boolean fused : new boolean[] {false, true}) {
            Random random = new Random(43);
            try (MemoryScope params = new MemoryScope("params")) {
                Parameter wq = new Parameter("q.weight", TestData.uniform(params, random, width, dim));
                Parameter wk = new Parameter("k.weight", TestData.uniform(params, random, width, dim));
                Parameter wv = new Parameter("v.weight", TestData.uniform(params, random, width, dim));
                Tensor x = TestData.uniform(params, random, batch, queries, dim);
                Tensor y = TestData.uniform(params, random, batch, keys, dim);
                Tensor weights = TestData.uniform(params, random, batch * queries * width, 1);
                try (MemoryScope step = new MemoryScope("step")) {
                    Graph g = new Graph(BACKEND, step, Precision.BF16);
                    try (GradScope ignored = g.recordGradients()) {
                        Variable q = MatmulFunctions.linear(g, g.constant(x), wq, null, DType.BF16);
                        Variable k = MatmulFunctions.linear(g, g.constant(y), wk, null, DType.BF16);
                        Variable v = MatmulFunctions.linear(g, g.constant(y), wv, null, DType.BF16);
                        Variable out = fused
                                ? AttentionFunctions.normalizedAttention(g, q, k, v, heads, eps, DType.BF16)
                                : AttentionFunctions.attention(g,
                                        NormFunctions.layerNorm(g, q, null, eps, DType.BF16),
                                        NormFunctions.layerNorm(g, k, null, eps, DType.BF16), v, heads, DType.BF16);
                        results.add(out.value().to(DType.F32, step).toFloatArray());
                        // A weighted sum of every output element, so each gets its own gradient.
                        Variable loss = MatmulFunctions.matmul(g,
                                ElementwiseFunctions.reshape(g, out, 1, batch * queries * width), false,
                                g.constant(weights), false);
                        loss.backward();
                    }
                }
                for (Parameter w : List.of(wq, wk, wv)) {
                    results.add(w.grad().toFloatArray());
                }
            }
        }
        String[] names = {"out", "q.weight gradient", "k.weight gradient", "v.weight gradient"};
        for (int i = 0; i < names.length; i++) {
            assertArrayEquals(results.get(i), results.get(names.length + i), names[i] + " differs");
        }
    }

    /**
     * In a bf16 graph, self-attention over one q|k|v product and cross-attention over one k|v product (the
     * official qkv and kv_linear Linears) against one product per part (the weight's row blocks) and
     * normalizedAttention: the output and the attention weights' gradients bit for bit; the projected input's
     * gradient is one product's BF16 result where the parts' products summed it in F32 (then rounded once for the
     * product that reads it), so the gradient upstream of it agrees within bf16 rounding.
     */
    @ParameterizedTest
    @CsvSource({"true", "false"})
    void oneProductForAllPartsInABf16GraphEqualsOneProductPerPart(boolean self) {
        int batch = 2, heads = 2, queries = 9, keys = self ? 9 : 6, headDim = 4, dim = 5, width = heads * headDim;
        int parts = self ? 3 : 2;
        float eps = 1e-6f;
        List<float[]> results = new ArrayList<>();
        for (boolean onePerPart : new boolean[] {true, false}) {
            Random random = new Random(self ? 47 : 53);
            try (MemoryScope params = new MemoryScope("params")) {
                Parameter w = new Parameter("w.weight", TestData.uniform(params, random, parts * width, dim));
                Parameter wq = new Parameter("q.weight", TestData.uniform(params, random, width, dim));
                Parameter wIn = new Parameter("in.weight", TestData.uniform(params, random, dim, dim));
                Tensor x = TestData.uniform(params, random, batch, queries, dim);
                Tensor y = TestData.uniform(params, random, batch, keys, dim);
                Tensor weights = TestData.uniform(params, random, batch * queries * width, 1);
                try (MemoryScope step = new MemoryScope("step")) {
                    Graph g = new Graph(BACKEND, step, Precision.BF16);
                    try (GradScope ignored = g.recordGradients()) {
                        // The projected input is a BF16 value with no other reader, as a block's norm output is.
                        Variable input = MatmulFunctions.linear(g, g.constant(self ? x : y), wIn, null, DType.BF16);
                        Variable out;
                        if (onePerPart) {
                            Variable[] p = MatmulFunctions.linearParts(g, input, w, null,
                                    self ? new DType[] {DType.BF16, DType.BF16, DType.BF16}
                                            : new DType[] {DType.BF16, DType.BF16});
                            Variable q = self ? p[0]
                                    : MatmulFunctions.linear(g, g.constant(x), wq, null, DType.BF16);
                            out = AttentionFunctions.normalizedAttention(g, q, p[self ? 1 : 0], p[self ? 2 : 1], heads,
                                    eps, DType.BF16);
                        } else {
                            Variable projected = MatmulFunctions.linear(g, input, w, null, DType.BF16);
                            out = self ? AttentionFunctions.normalizedSelfAttention(g, projected, heads, eps, DType.BF16)
                                    : AttentionFunctions.normalizedCrossAttention(g,
                                            MatmulFunctions.linear(g, g.constant(x), wq, null, DType.BF16),
                                            projected, heads, eps, DType.BF16);
                        }
                        results.add(out.value().to(DType.F32, step).toFloatArray());
                        Variable loss = MatmulFunctions.matmul(g,
                                ElementwiseFunctions.reshape(g, out, 1, batch * queries * width), false,
                                g.constant(weights), false);
                        loss.backward();
                    }
                }
                results.add(w.grad().toFloatArray());
                results.add(self ? new float[0] : wq.grad().toFloatArray());
                results.add(wIn.grad().toFloatArray());
            }
        }
        String[] names = {"out", "w.weight gradient", "q.weight gradient"};
        for (int i = 0; i < names.length; i++) {
            assertArrayEquals(results.get(i), results.get(4 + i), names[i] + " differs");
        }
        float[] perPart = results.get(3), one = results.get(7);
        double scale = 0;
        for (float value : perPart) {
            scale = Math.max(scale, Math.abs(value));
        }
        for (int i = 0; i < perPart.length; i++) {
            // Both round the input's gradient to bf16 once (relative 2^-8), from sums in different orders.
            assertTrue(Math.abs(perPart[i] - one[i]) <= 0x1p-7 * scale, "in.weight gradient " + i + ": " + one[i]
                    + " vs " + perPart[i] + " per part");
        }
    }

    @Test
    void headsThatDoNotDivideTheWidthAreRejected() {
        try (MemoryScope scope = new MemoryScope("attention-heads")) {
            Graph g = new Graph(BACKEND, scope);
            Variable x = g.constant(scope.zeros(1, 3, 10));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> AttentionFunctions.attention(g, x, x, x, 4));
            assertTrue(e.getMessage().contains("attention: q F32[1, 3, 10]"), e.getMessage());
            assertTrue(e.getMessage().contains("4 heads"), e.getMessage());
        }
    }
}
