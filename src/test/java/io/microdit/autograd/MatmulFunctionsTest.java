package io.microdit.autograd;

import io.microdit.backend.cpu.CpuBackend;
import io.microdit.testing.GradientCheck;
import io.microdit.testing.TestData;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class MatmulFunctionsTest {
    private static final CpuBackend BACKEND = new CpuBackend();

    @AfterAll
    static void close() {
        BACKEND.close();
    }

    @ParameterizedTest
    @CsvSource({"1,1,1", "3,5,7", "17,19,23", "2,33,9"})
    void linearMatchesReferenceAndFiniteDifferences(int rows, int in, int out) {
        Random random = new Random(rows * 31L + in);
        GradientCheck.of(BACKEND, 7)
                .input("x", TestData.uniform(random, rows * in), rows, in)
                .input("weight", TestData.uniform(random, out * in), out, in)
                .input("bias", TestData.uniform(random, out), out)
                .check((g, v) -> MatmulFunctions.linear(g, v[0], v[1], v[2]), r -> {
                    double[] y = new double[rows * out];
                    for (int i = 0; i < rows; i++) {
                        for (int o = 0; o < out; o++) {
                            double s = r[2][o];
                            for (int p = 0; p < in; p++) {
                                s += r[0][i * in + p] * r[1][o * in + p];
                            }
                            y[i * out + o] = s;
                        }
                    }
                    return y;
                });
    }

    @ParameterizedTest
    @CsvSource({"false,false", "true,false", "false,true", "true,true"})
    void batchedMatmulEveryTransposeCombination(boolean ta, boolean tb) {
        int batch = 3, m = 5, k = 7, n = 6;
        Random random = new Random(11);
        int[] aShape = ta ? new int[] {batch, k, m} : new int[] {batch, m, k};
        int[] bShape = tb ? new int[] {batch, n, k} : new int[] {batch, k, n};
        GradientCheck.of(BACKEND, 3)
                .input("a", TestData.uniform(random, batch * m * k), aShape)
                .input("b", TestData.uniform(random, batch * k * n), bShape)
                .check((g, v) -> MatmulFunctions.matmul(g, v[0], ta, v[1], tb), r -> {
                    double[] out = new double[batch * m * n];
                    for (int bi = 0; bi < batch; bi++) {
                        for (int i = 0; i < m; i++) {
                            for (int j = 0; j < n; j++) {
                                double s = 0;
                                for (int p = 0; p < k; p++) {
                                    double av = ta ? r[0][bi * k * m + p * m + i] : r[0][bi * m * k + i * k + p];
                                    double bv = tb ? r[1][bi * n * k + j * k + p] : r[1][bi * k * n + p * n + j];
                                    s += av * bv;
                                }
                                out[(bi * m + i) * n + j] = s;
                            }
                        }
                    }
                    return out;
                });
    }

    /** linearParts against finite differences: the parts weighted 1, 2, 3 and summed, so each has its own gradient. */
    @Test
    void linearPartsMatchReferenceAndFiniteDifferences() {
        int rows = 5, in = 4, parts = 3, width = 3, out = parts * width;
        Random random = new Random(12);
        GradientCheck.of(BACKEND, 13)
                .input("x", TestData.uniform(random, rows * in), rows, in)
                .input("weight", TestData.uniform(random, out * in), out, in)
                .input("bias", TestData.uniform(random, out), out)
                .check((g, v) -> {
                    Variable[] y = MatmulFunctions.linearParts(g, v[0], v[1], v[2], parts);
                    Variable sum = y[0];
                    for (int p = 1; p < parts; p++) {
                        sum = ElementwiseFunctions.add(g, sum, ElementwiseFunctions.scale(g, y[p], p + 1));
                    }
                    return sum;
                }, r -> {
                    double[] y = new double[rows * width];
                    for (int i = 0; i < rows; i++) {
                        for (int p = 0; p < parts; p++) {
                            for (int o = 0; o < width; o++) {
                                int feature = p * width + o;
                                double s = r[2][feature];
                                for (int q = 0; q < in; q++) {
                                    s += r[0][i * in + q] * r[1][feature * in + q];
                                }
                                y[i * width + o] += (p + 1) * s;
                            }
                        }
                    }
                    return y;
                });
    }

    @Test
    void linearWithoutBias() {
        Random random = new Random(5);
        GradientCheck.of(BACKEND, 9)
                .input("x", TestData.uniform(random, 2 * 3 * 4), 2, 3, 4)
                .input("weight", TestData.uniform(random, 5 * 4), 5, 4)
                .check((g, v) -> MatmulFunctions.linear(g, v[0], v[1], null), r -> {
                    double[] y = new double[6 * 5];
                    for (int i = 0; i < 6; i++) {
                        for (int o = 0; o < 5; o++) {
                            for (int p = 0; p < 4; p++) {
                                y[i * 5 + o] += r[0][i * 4 + p] * r[1][o * 4 + p];
                            }
                        }
                    }
                    return y;
                });
    }
}
