package io.microdit.autograd;

import io.microdit.backend.cpu.CpuBackend;
import io.microdit.tensor.DType;
import io.microdit.testing.GeluReference;
import io.microdit.testing.GradientCheck;
import io.microdit.testing.TestData;
import java.util.Random;
import java.util.function.DoubleUnaryOperator;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class ActivationFunctionsTest {
    private static final CpuBackend BACKEND = new CpuBackend(3);

    @AfterAll
    static void close() {
        BACKEND.close();
    }

    private static double sigmoid(double x) {
        return 1 / (1 + Math.exp(-x));
    }

    /** Inputs over [-4, 4]: both branches of erf and the curved part of every activation. */
    private static float[] inputs(Random random, int n) {
        float[] x = TestData.uniform(random, n);
        for (int i = 0; i < n; i++) {
            x[i] *= 4f;
        }
        return x;
    }

    private static GradientCheck.Reference map(DoubleUnaryOperator f) {
        return r -> {
            double[] out = new double[r[0].length];
            for (int i = 0; i < out.length; i++) {
                out[i] = f.applyAsDouble(r[0][i]);
            }
            return out;
        };
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 3, 17, 33, 77})
    void geluBothFormsAndSilu(int width) {
        Random random = new Random(width);
        GradientCheck.of(BACKEND, 1)
                .input("x", inputs(random, 3 * width), 3, width)
                .check((g, v) -> ActivationFunctions.gelu(g, v[0], false), map(x -> GeluReference.gelu(x, false)));
        GradientCheck.of(BACKEND, 2)
                .input("x", inputs(random, 3 * width), 3, width)
                .check((g, v) -> ActivationFunctions.gelu(g, v[0], true), map(x -> GeluReference.gelu(x, true)));
        GradientCheck.of(BACKEND, 3)
                .input("x", inputs(random, 3 * width), 3, width)
                .check((g, v) -> ActivationFunctions.silu(g, v[0]), map(x -> x * sigmoid(x)));
    }

    /** gelu(x·w1)·w2 of batched matrices as one function (the MoE's experts), both GELU forms. */
    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void geluProductsAgainstFiniteDifferences(boolean tanh) {
        int experts = 2, rows = 5, dim = 3, hidden = 7;
        Random random = new Random(tanh ? 21 : 22);
        GradientCheck.of(BACKEND, 5)
                .input("x", inputs(random, experts * rows * dim), experts, rows, dim)
                .input("w1", TestData.uniform(random, experts * dim * hidden), experts, dim, hidden)
                .input("w2", TestData.uniform(random, experts * hidden * dim), experts, hidden, dim)
                .check((g, v) -> MatmulFunctions.geluProducts(g, v[0], v[1], v[2], tanh, DType.F32),
                        r -> GeluReference.geluProducts(r[0], r[1], r[2], experts, rows, dim, hidden, tanh));
    }

    /** w3(silu(w1 x + b1) · (w2 x + b2)) + b3 as one function (the dense FFN). */
    @Test
    void swigluLinearsAgainstFiniteDifferences() {
        int rows = 4, dim = 3, hidden = 5, out = 2;
        Random random = new Random(23);
        GradientCheck.of(BACKEND, 6)
                .input("x", inputs(random, rows * dim), rows, dim)
                .input("w1", TestData.uniform(random, hidden * dim), hidden, dim)
                .input("b1", TestData.uniform(random, hidden), hidden)
                .input("w2", TestData.uniform(random, hidden * dim), hidden, dim)
                .input("b2", TestData.uniform(random, hidden), hidden)
                .input("w3", TestData.uniform(random, out * hidden), out, hidden)
                .input("b3", TestData.uniform(random, out), out)
                .check((g, v) -> MatmulFunctions.swigluLinears(g, v[0], v[1], v[2], v[3], v[4], v[5], v[6],
                        DType.F32), r -> {
                    double[] y = new double[rows * out];
                    for (int i = 0; i < rows; i++) {
                        for (int o = 0; o < out; o++) {
                            y[i * out + o] = r[6][o];
                        }
                        for (int h = 0; h < hidden; h++) {
                            double a = r[2][h], b = r[4][h];
                            for (int d = 0; d < dim; d++) {
                                a += r[0][i * dim + d] * r[1][h * dim + d];
                                b += r[0][i * dim + d] * r[3][h * dim + d];
                            }
                            double gate = a * sigmoid(a) * b;
                            for (int o = 0; o < out; o++) {
                                y[i * out + o] += gate * r[5][o * hidden + h];
                            }
                        }
                    }
                    return y;
                });
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 3, 17, 33, 77})
    void swigluGate(int width) {
        Random random = new Random(100 + width);
        int size = 2 * width;
        GradientCheck.of(BACKEND, 4)
                .input("a", inputs(random, size), 2, width)
                .input("b", inputs(random, size), 2, width)
                .check((g, v) -> ActivationFunctions.swigluGate(g, v[0], v[1]), r -> {
                    double[] out = new double[size];
                    for (int i = 0; i < size; i++) {
                        out[i] = r[0][i] * sigmoid(r[0][i]) * r[1][i];
                    }
                    return out;
                });
    }

    /** The same variable as both SwiGLU inputs: silu(a)·a, gradients from both paths add. */
    @Test
    void swigluGateWithOneVariableTwice() {
        Random random = new Random(7);
        GradientCheck.of(BACKEND, 5)
                .input("a", inputs(random, 21), 3, 7)
                .check((g, v) -> ActivationFunctions.swigluGate(g, v[0], v[0]), map(x -> x * sigmoid(x) * x));
    }
}
