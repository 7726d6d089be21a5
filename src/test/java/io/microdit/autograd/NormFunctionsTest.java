package io.microdit.autograd;

import io.microdit.backend.cpu.CpuBackend;
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

    @Test
    void weightWithoutGradientStillScalesTheInputGradient() {
        int width = 9;
        Random random = new Random(12);
        GradientCheck.of(BACKEND, 13)
                .input("x", inputs(random, 3 * width), 3, width)
                .constant("weight", TestData.uniform(random, width), width)
                .check((g, v) -> NormFunctions.layerNorm(g, v[0], v[1], EPS), r -> layerNorm(r[0], r[1], width));
    }
}
