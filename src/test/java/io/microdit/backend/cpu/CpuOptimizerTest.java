package io.microdit.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class CpuOptimizerTest {
    private static final CpuBackend BACKEND = new CpuBackend();
    private static final CpuBackend SINGLE_THREAD = new CpuBackend(1);

    @AfterAll
    static void close() {
        BACKEND.close();
        SINGLE_THREAD.close();
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 17, 77, 100_003})
    void sumOfSquaresMatchesDouble(int size) {
        Random random = new Random(size);
        float[] values = TestData.uniform(random, size);
        double expected = 0;
        for (float v : values) {
            expected += (double) v * v;
        }
        try (MemoryScope scope = new MemoryScope("test")) {
            assertEquals(expected, BACKEND.sumOfSquares(Tensor.of(scope, values, size)), 1e-12 * expected);
        }
    }

    @Test
    void sumOfSquaresIsTheSameOnOneAndManyThreads() {
        Random random = new Random(99);
        try (MemoryScope scope = new MemoryScope("test")) {
            Tensor x = TestData.uniform(scope, random, 300_001);
            assertEquals(SINGLE_THREAD.sumOfSquares(x), BACKEND.sumOfSquares(x), 0.0);
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 77, 70_001})
    void adamwFollowsThePyTorchFormulaOverSeveralSteps(int size) {
        float learningRate = 0.01f, beta1 = 0.9f, beta2 = 0.999f, epsilon = 1e-8f, weightDecay = 0.1f;
        Random random = new Random(size + 5L);
        float[] initial = TestData.uniform(random, size);
        double[] p = TestData.toDouble(initial), m = new double[size], v = new double[size];
        try (MemoryScope scope = new MemoryScope("test")) {
            Tensor param = Tensor.of(scope, initial, size);
            Tensor first = scope.zeros(size), second = scope.zeros(size);
            for (int step = 1; step <= 5; step++) {
                float[] grad = TestData.uniform(random, size);
                float gradScale = step % 2 == 0 ? 0.6f : 1f;
                BACKEND.adamw(param, Tensor.of(scope, grad, size), first, second, learningRate, beta1, beta2,
                        epsilon, weightDecay, step, gradScale);
                for (int i = 0; i < size; i++) {
                    double g = (double) grad[i] * gradScale;
                    p[i] *= 1 - (double) learningRate * weightDecay;
                    m[i] = beta1 * m[i] + (1 - (double) beta1) * g;
                    v[i] = beta2 * v[i] + (1 - (double) beta2) * g * g;
                    double mHat = m[i] / (1 - Math.pow(beta1, step));
                    double vHat = v[i] / (1 - Math.pow(beta2, step));
                    p[i] -= learningRate * mHat / (Math.sqrt(vHat) + epsilon);
                }
            }
            assertClose(p, param.toFloatArray(), 1e-6, "param");
            assertClose(m, first.toFloatArray(), 1e-6, "m");
            assertClose(v, second.toFloatArray(), 1e-6, "v");
        }
    }

    @Test
    void firstAdamwStepMovesEachParameterByTheLearningRate() {
        // With zero moments the bias-corrected first step is lr · g / |g|, whatever the gradient's size.
        float[] params = {0.5f, -0.25f, 2f};
        float[] grads = {3e-3f, -40f, 0.7f};
        try (MemoryScope scope = new MemoryScope("test")) {
            Tensor param = Tensor.of(scope, params, 3);
            BACKEND.adamw(param, Tensor.of(scope, grads, 3), scope.zeros(3), scope.zeros(3), 0.05f, 0.9f, 0.999f,
                    1e-8f, 0f, 1, 1f);
            float[] after = param.toFloatArray();
            for (int i = 0; i < 3; i++) {
                assertEquals(params[i] - 0.05 * Math.signum(grads[i]), after[i], 1e-5, "param " + i);
            }
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 77, 70_001})
    void emaUpdateMatchesTheReference(int size) {
        Random random = new Random(size * 3L);
        float decay = 0.9975f;
        float[] ema = TestData.uniform(random, size), param = TestData.uniform(random, size);
        double[] expected = new double[size];
        for (int i = 0; i < size; i++) {
            expected[i] = decay * (double) ema[i] + (1 - (double) decay) * param[i];
        }
        try (MemoryScope scope = new MemoryScope("test")) {
            Tensor average = Tensor.of(scope, ema, size);
            BACKEND.emaUpdate(average, Tensor.of(scope, param, size), decay);
            assertClose(expected, average.toFloatArray(), 1e-6, "ema");
        }
    }

    @Test
    void badArgumentsAreRejected() {
        try (MemoryScope scope = new MemoryScope("test")) {
            Tensor a = scope.zeros(5), b = scope.zeros(5), c = scope.zeros(5), d = scope.zeros(5);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> BACKEND.adamw(a, b, c, d, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, 0, 1f));
            assertTrue(e.getMessage().contains("step counts from 1"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> BACKEND.adamw(a, scope.zeros(6), c, d, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, 1, 1f));
            assertTrue(e.getMessage().contains("adamw: grad"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> BACKEND.emaUpdate(a, scope.zeros(DType.I32, 5), 0.99f));
            assertTrue(e.getMessage().contains("emaUpdate: param must be F32"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> BACKEND.sumOfSquares(scope.zeros(DType.BF16, 5)));
            assertTrue(e.getMessage().contains("sumOfSquares: x must be F32"), e.getMessage());
        }
    }

    private static void assertClose(double[] expected, float[] actual, double tolerance, String what) {
        double error = TestData.maxRelativeError(actual, expected);
        assertTrue(error <= tolerance, what + ": max relative error " + error + " > " + tolerance);
    }
}
