package io.microdit.autograd;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.backend.cpu.CpuBackend;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.GradientCheck;
import io.microdit.testing.TestData;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class ElementwiseFunctionsTest {
    private static final CpuBackend BACKEND = new CpuBackend(3);

    @AfterAll
    static void close() {
        BACKEND.close();
    }

    /** x·(1 + scale[n]) + shift[n] over x [N, T, D], in float64. */
    private static double[] modulate(double[] x, double[] shift, double[] scale, int samples, int tokens, int width) {
        double[] out = new double[x.length];
        for (int n = 0; n < samples; n++) {
            for (int t = 0; t < tokens; t++) {
                for (int c = 0; c < width; c++) {
                    int i = (n * tokens + t) * width + c;
                    out[i] = x[i] * (1 + scale[n * width + c]) + shift[n * width + c];
                }
            }
        }
        return out;
    }

    /** x + gate[n]·f over [N, T, D], in float64. */
    private static double[] gatedResidual(double[] x, double[] gate, double[] f, int samples, int tokens, int width) {
        double[] out = new double[x.length];
        for (int n = 0; n < samples; n++) {
            for (int t = 0; t < tokens; t++) {
                for (int c = 0; c < width; c++) {
                    int i = (n * tokens + t) * width + c;
                    out[i] = x[i] + gate[n * width + c] * f[i];
                }
            }
        }
        return out;
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 3, 17, 33})
    void addSameShapeAndBroadcast(int width) {
        Random random = new Random(width);
        int size = 2 * 3 * width;
        GradientCheck.of(BACKEND, 1)
                .input("a", TestData.uniform(random, size), 2, 3, width)
                .input("b", TestData.uniform(random, size), 2, 3, width)
                .check((g, v) -> ElementwiseFunctions.add(g, v[0], v[1]), r -> {
                    double[] out = new double[size];
                    for (int i = 0; i < size; i++) {
                        out[i] = r[0][i] + r[1][i];
                    }
                    return out;
                });
        for (int[] bShape : new int[][] {{width}, {3, width}}) {
            int bSize = bShape.length == 1 ? width : 3 * width;
            GradientCheck.of(BACKEND, 2)
                    .input("a", TestData.uniform(random, size), 2, 3, width)
                    .input("b", TestData.uniform(random, bSize), bShape)
                    .check((g, v) -> ElementwiseFunctions.add(g, v[0], v[1]), r -> {
                        double[] out = new double[size];
                        for (int i = 0; i < size; i++) {
                            out[i] = r[0][i] + r[1][i % bSize];
                        }
                        return out;
                    });
        }
    }

    @Test
    void addOfAVariableToItselfCountsItTwice() {
        Random random = new Random(4);
        GradientCheck.of(BACKEND, 3)
                .input("a", TestData.uniform(random, 15), 3, 5)
                .check((g, v) -> ElementwiseFunctions.add(g, v[0], v[0]), r -> {
                    double[] out = new double[15];
                    for (int i = 0; i < 15; i++) {
                        out[i] = 2 * r[0][i];
                    }
                    return out;
                });
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 3, 17, 77})
    void mulAndScale(int width) {
        Random random = new Random(10 + width);
        int size = 4 * width;
        GradientCheck.of(BACKEND, 4)
                .input("a", TestData.uniform(random, size), 4, width)
                .input("b", TestData.uniform(random, size), 4, width)
                .check((g, v) -> ElementwiseFunctions.scale(g, ElementwiseFunctions.mul(g, v[0], v[1]), -2.5f), r -> {
                    double[] out = new double[size];
                    for (int i = 0; i < size; i++) {
                        out[i] = -2.5 * r[0][i] * r[1][i];
                    }
                    return out;
                });
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 3, 17, 33})
    void modulateAndGatedResidual(int width) {
        int samples = 2, tokens = 3, size = samples * tokens * width;
        Random random = new Random(20 + width);
        GradientCheck.of(BACKEND, 5)
                .input("x", TestData.uniform(random, size), samples, tokens, width)
                .input("shift", TestData.uniform(random, samples * width), samples, width)
                .input("scale", TestData.uniform(random, samples * width), samples, width)
                .check((g, v) -> ElementwiseFunctions.modulate(g, v[0], v[1], v[2]),
                        r -> modulate(r[0], r[1], r[2], samples, tokens, width));
        GradientCheck.of(BACKEND, 6)
                .input("x", TestData.uniform(random, size), samples, tokens, width)
                .input("gate", TestData.uniform(random, samples * width), samples, width)
                .input("f", TestData.uniform(random, size), samples, tokens, width)
                .check((g, v) -> ElementwiseFunctions.gatedResidual(g, v[0], v[1], v[2]),
                        r -> gatedResidual(r[0], r[1], r[2], samples, tokens, width));
    }

    /**
     * The adaLN pattern: one conditioning output [N, 3D] chunked into shift, scale and gate, all used in the
     * same expression with x used twice; every chunk's gradient must land in its own columns and add up.
     */
    @ParameterizedTest
    @ValueSource(ints = {1, 5, 17})
    void chunksOfOneVariableUsedTogether(int width) {
        int samples = 2, tokens = 3, size = samples * tokens * width;
        Random random = new Random(30 + width);
        GradientCheck.of(BACKEND, 7)
                .input("x", TestData.uniform(random, size), samples, tokens, width)
                .input("ada", TestData.uniform(random, samples * 3 * width), samples, 3 * width)
                .check((g, v) -> {
                    Variable[] chunks = ElementwiseFunctions.chunk(g, v[1], 3);
                    Variable modulated = ElementwiseFunctions.modulate(g, v[0], chunks[0], chunks[1]);
                    return ElementwiseFunctions.gatedResidual(g, v[0], chunks[2], modulated);
                }, r -> {
                    double[] shift = new double[samples * width], scale = new double[samples * width];
                    double[] gate = new double[samples * width];
                    for (int n = 0; n < samples; n++) {
                        for (int c = 0; c < width; c++) {
                            shift[n * width + c] = r[1][n * 3 * width + c];
                            scale[n * width + c] = r[1][n * 3 * width + width + c];
                            gate[n * width + c] = r[1][n * 3 * width + 2 * width + c];
                        }
                    }
                    double[] modulated = modulate(r[0], shift, scale, samples, tokens, width);
                    return gatedResidual(r[0], gate, modulated, samples, tokens, width);
                });
    }

    /** q | k | v slices of a rank-3 qkv, combined, and an overlapping slice of the same variable on top. */
    @Test
    void slicesOfARank3VariableAccumulate() {
        int samples = 2, tokens = 3, hidden = 7, columns = 3 * hidden;
        Random random = new Random(40);
        GradientCheck.of(BACKEND, 8)
                .input("qkv", TestData.uniform(random, samples * tokens * columns), samples, tokens, columns)
                .check((g, v) -> {
                    Variable q = ElementwiseFunctions.sliceColumns(g, v[0], 0, hidden);
                    Variable k = ElementwiseFunctions.sliceColumns(g, v[0], hidden, hidden);
                    Variable value = ElementwiseFunctions.sliceColumns(g, v[0], 2 * hidden, hidden);
                    Variable overlap = ElementwiseFunctions.sliceColumns(g, v[0], 3, hidden);
                    Variable qk = ElementwiseFunctions.mul(g, q, k);
                    return ElementwiseFunctions.add(g, ElementwiseFunctions.add(g, qk, value), overlap);
                }, r -> {
                    double[] out = new double[samples * tokens * hidden];
                    for (int row = 0; row < samples * tokens; row++) {
                        for (int c = 0; c < hidden; c++) {
                            double[] x = r[0];
                            int base = row * columns;
                            out[row * hidden + c] = x[base + c] * x[base + hidden + c] + x[base + 2 * hidden + c]
                                    + x[base + 3 + c];
                        }
                    }
                    return out;
                });
    }

    @Test
    void reshapeIsAViewWhoseGradientIsReshapedBack() {
        Random random = new Random(50);
        GradientCheck.of(BACKEND, 9)
                .input("x", TestData.uniform(random, 12), 2, 6)
                .input("w", TestData.uniform(random, 12), 3, 4)
                .check((g, v) -> ElementwiseFunctions.mul(g, ElementwiseFunctions.reshape(g, v[0], 3, -1), v[1]),
                        r -> {
                            double[] out = new double[12];
                            for (int i = 0; i < 12; i++) {
                                out[i] = r[0][i] * r[1][i];
                            }
                            return out;
                        });
    }

    @Test
    void badArgumentsThrowNamingOpAndArgument() {
        try (MemoryScope scope = new MemoryScope("test")) {
            Graph g = new Graph(BACKEND, scope);
            Variable x = g.leaf(Tensor.of(scope, new float[12], 2, 6));
            Variable other = g.leaf(Tensor.of(scope, new float[12], 3, 4));
            assertMessage(() -> ElementwiseFunctions.chunk(g, x, 4), "chunk");
            assertMessage(() -> ElementwiseFunctions.mul(g, x, other), "mul");
            assertMessage(() -> ElementwiseFunctions.add(g, x, other), "add");
            assertMessage(() -> ElementwiseFunctions.sliceColumns(g, x, 4, 3), "sliceColumns");
            assertMessage(() -> ElementwiseFunctions.modulate(g, x, other, other), "modulate");
        }
    }

    private static void assertMessage(Runnable call, String op) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call::run);
        assertTrue(e.getMessage().startsWith(op + ":"), "message '" + e.getMessage() + "' should name " + op);
    }
}
