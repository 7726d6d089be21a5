package io.microdit.autograd;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.backend.cpu.CpuBackend;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.GradientCheck;
import io.microdit.testing.TestData;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class NormFunctionsTest {
    private static final CpuBackend BACKEND = new CpuBackend(3);
    private static final float EPS = 1e-6f;

    @AfterAll
    static void close() {
        BACKEND.close();
    }

    /** LayerNorm over the last dimension in float64; weight null for the non-affine form. */
    private static double[] layerNorm(double[] x, double[] weight, int width) {
        double[] out = new double[x.length];
        for (int r = 0; r < x.length / width; r++) {
            double mean = 0, variance = 0;
            for (int c = 0; c < width; c++) {
                mean += x[r * width + c] / width;
            }
            for (int c = 0; c < width; c++) {
                double d = x[r * width + c] - mean;
                variance += d * d / width;
            }
            double rstd = 1 / Math.sqrt(variance + EPS);
            for (int c = 0; c < width; c++) {
                out[r * width + c] = (x[r * width + c] - mean) * rstd * (weight == null ? 1 : weight[c]);
            }
        }
        return out;
    }

    /** LN(x)·(1 + scale) + shift in float64; x [N, T, D], shift and scale [N, D]. */
    private static double[] layerNormModulate(double[] x, double[] weight, double[] shift, double[] scale,
                                              int tokens, int width) {
        double[] out = layerNorm(x, weight, width);
        for (int i = 0; i < out.length; i++) {
            int p = i / (tokens * width) * width + i % width;
            out[i] = out[i] * (1 + scale[p]) + shift[p];
        }
        return out;
    }

    /** Inputs with a non-zero mean and a spread of about ±2 per row, so the normalisation is far from trivial. */
    private static float[] inputs(Random random, int n) {
        float[] x = TestData.uniform(random, n);
        for (int i = 0; i < n; i++) {
            x[i] = 2f * x[i] + 0.3f;
        }
        return x;
    }

    @ParameterizedTest
    @CsvSource({"1,true", "3,true", "3,false", "17,true", "33,false", "77,true", "100,false"})
    void layerNormMatchesReferenceAndFiniteDifferences(int width, boolean affine) {
        Random random = new Random(width * 2L + (affine ? 1 : 0));
        int rows = 2 * 3;
        GradientCheck check = GradientCheck.of(BACKEND, width)
                .input("x", inputs(random, rows * width), 2, 3, width);
        if (affine) {
            check.input("weight", TestData.uniform(random, width), width)
                    .check((g, v) -> NormFunctions.layerNorm(g, v[0], v[1], EPS), r -> layerNorm(r[0], r[1], width));
        } else {
            check.check((g, v) -> NormFunctions.layerNorm(g, v[0], null, EPS), r -> layerNorm(r[0], null, width));
        }
    }

    /**
     * The gathered LayerNorm (the deferred mask's kept rows, normalised in place) against gathering then LayerNorm in
     * float64, and its gradients, x's over every row (zero where no id names it), against central differences.
     */
    @ParameterizedTest
    @CsvSource({"3,7,4,17,true", "2,5,5,9,false", "2,6,1,33,true", "1,4,2,1,true"})
    void gatherLayerNormMatchesReferenceAndFiniteDifferences(int samples, int tokens, int kept, int width,
                                                             boolean affine) {
        Random random = new Random(samples * 1000L + tokens * 100L + kept * 10L + width + (affine ? 1 : 0));
        int[] ids = new int[samples * kept];
        for (int n = 0; n < samples; n++) {
            for (int j = 0; j < kept; j++) {
                ids[n * kept + j] = (3 * j + n + 1) % tokens; // distinct while kept ≤ tokens and gcd(3, tokens) = 1
            }
        }
        GradientCheck check = GradientCheck.of(BACKEND, samples + width)
                .input("x", inputs(random, samples * tokens * width), samples, tokens, width)
                .maxElementsPerInput(samples * tokens * width);
        GradientCheck.Reference reference = r -> {
            double[] gathered = new double[samples * kept * width];
            for (int row = 0; row < samples * kept; row++) {
                System.arraycopy(r[0], (row / kept * tokens + ids[row]) * width, gathered, row * width, width);
            }
            return layerNorm(gathered, affine ? r[1] : null, width);
        };
        if (affine) {
            check.input("weight", TestData.uniform(random, width), width)
                    .check((g, v) -> NormFunctions.gatherLayerNorm(g, v[0], Tensor.ofInts(g.scope(), ids, samples,
                            kept), v[1], EPS, DType.F32), reference);
        } else {
            check.check((g, v) -> NormFunctions.gatherLayerNorm(g, v[0], Tensor.ofInts(g.scope(), ids, samples, kept),
                    null, EPS, DType.F32), reference);
        }
    }

    /** QK-norm normalises q of all heads jointly: one LayerNorm over H·Dh, applied to a slice of qkv. */
    @Test
    void nonAffineNormOfASliceAsInQkNorm() {
        int tokens = 4, hidden = 12;
        Random random = new Random(9);
        GradientCheck.of(BACKEND, 11)
                .input("qkv", inputs(random, tokens * 3 * hidden), tokens, 3 * hidden)
                .check((g, v) -> NormFunctions.layerNorm(g, ElementwiseFunctions.sliceColumns(g, v[0], hidden, hidden),
                        null, EPS), r -> {
                            double[] k = new double[tokens * hidden];
                            for (int t = 0; t < tokens; t++) {
                                System.arraycopy(r[0], t * 3 * hidden + hidden, k, t * hidden, hidden);
                            }
                            return layerNorm(k, null, hidden);
                        });
    }

    @ParameterizedTest
    @CsvSource({"3,5,37,true", "3,5,37,false", "1,1,1,true", "2,7,8,false"})
    void layerNormModulateMatchesReferenceAndFiniteDifferences(int samples, int tokens, int width, boolean affine) {
        Random random = new Random(samples * 1000L + tokens * 100L + width + (affine ? 1 : 0));
        GradientCheck check = GradientCheck.of(BACKEND, width + 5)
                .input("x", inputs(random, samples * tokens * width), samples, tokens, width);
        if (affine) {
            check.input("weight", TestData.uniform(random, width), width);
        }
        check.input("shift", TestData.uniform(random, samples * width), samples, width)
                .input("scale", TestData.uniform(random, samples * width), samples, width);
        if (affine) {
            check.check((g, v) -> NormFunctions.layerNormModulate(g, v[0], v[1], v[2], v[3], EPS),
                    r -> layerNormModulate(r[0], r[1], r[2], r[3], tokens, width));
        } else {
            check.check((g, v) -> NormFunctions.layerNormModulate(g, v[0], null, v[1], v[2], EPS),
                    r -> layerNormModulate(r[0], null, r[1], r[2], tokens, width));
        }
    }

    /** The fused op against layerNorm then modulate, forward and every gradient, on the same inputs. */
    @ParameterizedTest
    @CsvSource({"true", "false"})
    void layerNormModulateEqualsTheComposition(boolean affine) {
        int samples = 3, tokens = 5, width = 37;
        Random random = new Random(affine ? 41 : 42);
        float[] x = inputs(random, samples * tokens * width), weight = TestData.uniform(random, width);
        float[] shift = TestData.uniform(random, samples * width), scale = TestData.uniform(random, samples * width);
        float[] seed = TestData.uniform(random, x.length);
        float[][][] results = new float[2][][];
        for (int fused = 0; fused < 2; fused++) {
            try (MemoryScope scope = new MemoryScope("composition")) {
                Graph g = new Graph(BACKEND, scope);
                try (GradScope ignored = g.recordGradients()) {
                    Variable xv = g.leaf(Tensor.of(scope, x.clone(), samples, tokens, width));
                    Variable wv = affine ? g.leaf(Tensor.of(scope, weight.clone(), width)) : null;
                    Variable shv = g.leaf(Tensor.of(scope, shift.clone(), samples, width));
                    Variable scv = g.leaf(Tensor.of(scope, scale.clone(), samples, width));
                    Variable out = fused == 1 ? NormFunctions.layerNormModulate(g, xv, wv, shv, scv, EPS)
                            : ElementwiseFunctions.modulate(g, NormFunctions.layerNorm(g, xv, wv, EPS), shv, scv);
                    g.backward(out, Tensor.of(scope, seed, out.shape()));
                    results[fused] = new float[][] {out.value().toFloatArray(), xv.grad().toFloatArray(),
                            shv.grad().toFloatArray(), scv.grad().toFloatArray(),
                            affine ? wv.grad().toFloatArray() : new float[0]};
                }
            }
        }
        String[] names = {"out", "dx", "dShift", "dScale", "dWeight"};
        for (int i = 0; i < names.length; i++) {
            double error = TestData.maxRelativeError(results[1][i], TestData.toDouble(results[0][i]));
            assertTrue(error <= (i == 0 ? 1e-6 : 1e-5), names[i] + " differs from the composition by " + error);
        }
    }

    @Test
    void weightWithoutGradientStillScalesTheInputGradient() {
        int width = 9;
        Random random = new Random(12);
        GradientCheck.of(BACKEND, 13)
                .input("x", inputs(random, 3 * width), 3, width)
                .constant("weight", TestData.uniform(random, width), width)
                .check((g, v) -> NormFunctions.layerNorm(g, v[0], v[1], EPS), r -> layerNorm(r[0], r[1], width));
    }
    /**
     * residualLayerNorm against float64 and central differences: x' = x + gate·f (or x + f), LN(x') modulated or
     * not; the loss reads the normed rows and x' ({@code both}: normed + x'/2, as a block's next add and norm do),
     * only the normed rows (the last block before the final norm), or only x' (the normed rows reach nothing).
     */
    @ParameterizedTest
    @CsvSource({"true,true,both", "true,false,both", "false,true,both", "false,false,both", "true,true,normed",
        "false,false,normed", "true,true,residual", "false,true,residual"})
    void residualLayerNormMatchesReferenceAndFiniteDifferences(boolean gated, boolean modulated, String reads) {
        int samples = 2, tokens = 3, width = 13;
        Random random = new Random((gated ? 1 : 0) + (modulated ? 2 : 0) + reads.hashCode());
        int n = samples * tokens * width;
        GradientCheck check = GradientCheck.of(BACKEND, width + reads.length())
                .input("x", inputs(random, n), samples, tokens, width)
                .input("f", TestData.uniform(random, n), samples, tokens, width)
                .input("weight", TestData.uniform(random, width), width)
                .input("gate", TestData.uniform(random, samples * width), samples, width)
                .input("shift", TestData.uniform(random, samples * width), samples, width)
                .input("scale", TestData.uniform(random, samples * width), samples, width);
        check.check((g, v) -> {
            NormFunctions.ResidualNorm r = NormFunctions.residualLayerNorm(g, v[0], gated ? v[3] : null, v[1], v[2],
                    modulated ? v[4] : null, modulated ? v[5] : null, EPS, io.microdit.tensor.DType.F32);
            return switch (reads) {
                case "normed" -> r.normed();
                case "residual" -> ElementwiseFunctions.scale(g, r.residual(), 0.5f);
                default -> ElementwiseFunctions.add(g, r.normed(), ElementwiseFunctions.scale(g, r.residual(), 0.5f));
            };
        }, ref -> {
            double[] residual = new double[n];
            for (int i = 0; i < n; i++) {
                int p = i / (tokens * width) * width + i % width;
                residual[i] = ref[0][i] + (gated ? ref[3][p] : 1) * ref[1][i];
            }
            double[] normed = modulated ? layerNormModulate(residual, ref[2], ref[4], ref[5], tokens, width)
                    : layerNorm(residual, ref[2], width);
            double[] out = new double[n];
            for (int i = 0; i < n; i++) {
                out[i] = switch (reads) {
                    case "normed" -> normed[i];
                    case "residual" -> 0.5 * residual[i];
                    default -> normed[i] + 0.5 * residual[i];
                };
            }
            return out;
        });
    }

    /**
     * residualLayerNormWithBf16Copy in a bf16 graph: F32 normed rows (an F32 reader's, as the MoE's router) whose
     * matrix-product operand is the op's own bf16 copy, not a convert made later; a linear of them and every gradient
     * are bit for bit those of residualLayerNorm with an F32 output, whose linear converts it.
     */
    @Test
    void theNormsBf16CopyIsTheMatrixProductsOperandWithTheConvertsBits() {
        int samples = 2, tokens = 5, width = 24, out = 7;
        Random random = new Random(43);
        float[] x = inputs(random, samples * tokens * width), f = TestData.uniform(random, x.length);
        float[] gate = TestData.uniform(random, samples * width), weight = TestData.uniform(random, width);
        float[] shift = TestData.uniform(random, samples * width), scale = TestData.uniform(random, samples * width);
        float[] w = TestData.uniform(random, out * width), seed = TestData.uniform(random, samples * tokens * out);
        float[][][] results = new float[2][][];
        for (int copied = 0; copied < 2; copied++) {
            try (MemoryScope scope = new MemoryScope("bf16-copy")) {
                Graph g = new Graph(BACKEND, scope, Precision.BF16);
                try (GradScope ignored = g.recordGradients()) {
                    Variable xv = g.leaf(Tensor.of(scope, x.clone(), samples, tokens, width));
                    Variable fv = g.leaf(Tensor.of(scope, f.clone(), samples, tokens, width));
                    Variable gv = g.leaf(Tensor.of(scope, gate.clone(), samples, width));
                    Variable wv = g.leaf(Tensor.of(scope, weight.clone(), width));
                    Variable shv = g.leaf(Tensor.of(scope, shift.clone(), samples, width));
                    Variable scv = g.leaf(Tensor.of(scope, scale.clone(), samples, width));
                    Variable linear = g.leaf(Tensor.of(scope, w.clone(), out, width));
                    NormFunctions.ResidualNorm r = copied == 1
                            ? NormFunctions.residualLayerNormWithBf16Copy(g, xv, gv, fv, wv, shv, scv, EPS)
                            : NormFunctions.residualLayerNorm(g, xv, gv, fv, wv, shv, scv, EPS,
                                    io.microdit.tensor.DType.F32);
                    assertTrue(r.normed().value().dtype() == io.microdit.tensor.DType.F32, "the normed rows stay F32");
                    Tensor operand = g.matmulOperand(r.normed());
                    if (copied == 1) {
                        Tensor converted = Tensor.empty(scope, io.microdit.tensor.DType.BF16, r.normed().shape());
                        BACKEND.convert(r.normed().value(), converted);
                        org.junit.jupiter.api.Assertions.assertArrayEquals(converted.toFloatArray(),
                                operand.toFloatArray(), "the copy has convert's bits");
                        assertTrue(operand == g.matmulOperand(r.normed()), "one operand, kept");
                    }
                    Variable y = MatmulFunctions.linear(g, r.normed(), linear, null);
                    g.backward(y, Tensor.of(scope, seed, y.shape()));
                    results[copied] = new float[][] {y.value().toFloatArray(), r.residual().value().toFloatArray(),
                            xv.grad().toFloatArray(), fv.grad().toFloatArray(), gv.grad().toFloatArray(),
                            wv.grad().toFloatArray(), shv.grad().toFloatArray(), scv.grad().toFloatArray(),
                            linear.grad().toFloatArray()};
                }
            }
        }
        for (int i = 0; i < results[0].length; i++) {
            org.junit.jupiter.api.Assertions.assertArrayEquals(results[0][i], results[1][i], "result " + i);
        }
    }
}
