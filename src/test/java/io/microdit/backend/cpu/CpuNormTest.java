package io.microdit.backend.cpu;

import static io.microdit.backend.cpu.CpuElementwiseTest.assertMessage;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class CpuNormTest {
    private static final CpuBackend BACKEND = new CpuBackend(3);
    private static final CpuBackend SINGLE_THREAD = new CpuBackend(1);
    private static final float EPS = 1e-6f;

    @AfterAll
    static void close() {
        BACKEND.close();
        SINGLE_THREAD.close();
    }

    /** Float64 LayerNorm and its backward, straight from the definitions. */
    private record Reference(double[] out, double[] mean, double[] rstd, double[] dx, double[] dWeight) {
        static Reference of(float[] x, float[] weight, float[] dOut, int rows, int width, double eps) {
            double[] out = new double[x.length], dx = new double[x.length];
            double[] mean = new double[rows], rstd = new double[rows], dWeight = new double[width];
            for (int r = 0; r < rows; r++) {
                double m = 0;
                for (int c = 0; c < width; c++) {
                    m += x[r * width + c];
                }
                m /= width;
                double v = 0;
                for (int c = 0; c < width; c++) {
                    double d = x[r * width + c] - m;
                    v += d * d;
                }
                double s = 1 / Math.sqrt(v / width + eps);
                mean[r] = m;
                rstd[r] = s;
                double[] xHat = new double[width], dy = new double[width];
                double meanDy = 0, meanDyXHat = 0;
                for (int c = 0; c < width; c++) {
                    int i = r * width + c;
                    double w = weight == null ? 1 : weight[c];
                    xHat[c] = (x[i] - m) * s;
                    out[i] = xHat[c] * w;
                    dy[c] = dOut[i] * w;
                    meanDy += dy[c] / width;
                    meanDyXHat += dy[c] * xHat[c] / width;
                    dWeight[c] += dOut[i] * xHat[c];
                }
                for (int c = 0; c < width; c++) {
                    dx[r * width + c] = s * (dy[c] - meanDy - xHat[c] * meanDyXHat);
                }
            }
            return new Reference(out, mean, rstd, dx, dWeight);
        }
    }

    private static void assertClose(float[] actual, double[] expected, double tolerance, String what) {
        double error = TestData.maxRelativeError(actual, expected);
        assertTrue(error <= tolerance, what + ": max relative error " + error + " > " + tolerance);
    }

    @ParameterizedTest
    @CsvSource({"5,1,true", "5,3,true", "5,17,false", "4,33,true", "3,77,false", "6,100,true", "6,100,false",
                "700,100,true", "301,517,false"})
    void forwardAndBackwardMatchFloat64(int rows, int width, boolean affine) {
        Random random = new Random(rows * 1000L + width);
        try (MemoryScope scope = new MemoryScope("test")) {
            float[] x = TestData.uniform(random, rows * width);
            for (int i = 0; i < x.length; i++) {
                x[i] = x[i] * 3f + 0.5f; // non-zero mean, variance 3
            }
            float[] weight = affine ? TestData.uniform(random, width) : null;
            float[] dOut = TestData.uniform(random, rows * width);
            float[] dWeightStart = TestData.uniform(random, width);
            Reference ref = Reference.of(x, weight, dOut, rows, width, EPS);
            check(scope, x, weight, dOut, dWeightStart, rows, width, ref, 2e-6, 2e-5);
        }
    }

    @Test
    void statisticsStayAccurateForLargeMean() {
        int rows = 9, width = 1024;
        Random random = new Random(77);
        try (MemoryScope scope = new MemoryScope("test")) {
            float[] x = TestData.uniform(random, rows * width);
            for (int i = 0; i < x.length; i++) {
                x[i] = 300f + x[i];
            }
            float[] weight = TestData.uniform(random, width);
            float[] dOut = TestData.uniform(random, rows * width);
            Reference ref = Reference.of(x, weight, dOut, rows, width, EPS);
            // The forward centres with full precision. The backward recomputes x̂ from the saved float mean,
            // which is only known to half an ulp of 300 (1.5e-5, about 3e-5 of the spread).
            check(scope, x, weight, dOut, new float[width], rows, width, ref, 2e-6, 1e-4);
        }
    }

    private static void check(MemoryScope scope, float[] x, float[] weight, float[] dOut, float[] dWeightStart,
                              int rows, int width, Reference ref, double tolerance, double backwardTolerance) {
        Tensor xt = Tensor.of(scope, x, rows, width);
        Tensor wt = weight == null ? null : Tensor.of(scope, weight, width);
        Tensor out = TestData.poisoned(scope, rows, width);
        Tensor mean = TestData.poisoned(scope, rows);
        Tensor rstd = TestData.poisoned(scope, rows);
        BACKEND.layerNorm(xt, wt, EPS, out, mean, rstd);
        assertClose(out.toFloatArray(), ref.out(), tolerance, "out");
        assertClose(mean.toFloatArray(), ref.mean(), tolerance, "mean");
        assertClose(rstd.toFloatArray(), ref.rstd(), tolerance, "rstd");

        Tensor dx = TestData.poisoned(scope, rows, width);
        Tensor dWeight = weight == null ? null : Tensor.of(scope, dWeightStart.clone(), width);
        BACKEND.layerNormBackward(Tensor.of(scope, dOut, rows, width), xt, wt, mean, rstd, dx, dWeight);
        assertClose(dx.toFloatArray(), ref.dx(), backwardTolerance, "dx");
        if (weight != null) {
            double[] expected = ref.dWeight().clone();
            for (int c = 0; c < width; c++) {
                expected[c] += dWeightStart[c]; // accumulates onto what is there
            }
            assertClose(dWeight.toFloatArray(), expected, backwardTolerance, "dWeight");
        }
    }

    @Test
    void backwardIsBitIdenticalForAnyThreadCount() {
        int rows = 1000, width = 77;
        Random random = new Random(3);
        try (MemoryScope scope = new MemoryScope("test")) {
            Tensor x = TestData.uniform(scope, random, rows, width);
            Tensor weight = TestData.uniform(scope, random, width);
            Tensor dOut = TestData.uniform(scope, random, rows, width);
            Tensor out = scope.zeros(rows, width), mean = scope.zeros(rows), rstd = scope.zeros(rows);
            BACKEND.layerNorm(x, weight, EPS, out, mean, rstd);
            float[][] results = new float[2][];
            float[][] dxs = new float[2][];
            CpuBackend[] backends = {BACKEND, SINGLE_THREAD};
            for (int b = 0; b < 2; b++) {
                Tensor dx = scope.zeros(rows, width), dWeight = scope.zeros(width);
                backends[b].layerNormBackward(dOut, x, weight, mean, rstd, dx, dWeight);
                results[b] = dWeight.toFloatArray();
                dxs[b] = dx.toFloatArray();
            }
            assertArrayEquals(results[0], results[1], 0f, "dWeight differs between 3 threads and 1");
            assertArrayEquals(dxs[0], dxs[1], 0f, "dx differs between 3 threads and 1");
        }
    }

    @Test
    void badArgumentsThrowNamingOpAndArgument() {
        try (MemoryScope scope = new MemoryScope("test")) {
            Tensor x = scope.zeros(4, 8);
            Tensor stats = scope.zeros(4);
            assertMessage(() -> BACKEND.layerNorm(x, scope.zeros(7), EPS, scope.zeros(4, 8), stats, stats),
                    "layerNorm", "weight");
            assertMessage(() -> BACKEND.layerNorm(x, null, EPS, scope.zeros(4, 8), scope.zeros(5), stats),
                    "layerNorm", "mean");
            assertMessage(() -> BACKEND.layerNorm(x, null, EPS, scope.zeros(8, 4), stats, stats),
                    "layerNorm", "out");
            assertMessage(() -> BACKEND.layerNorm(x, null, -1f, scope.zeros(4, 8), stats, stats),
                    "layerNorm", "eps");
            assertMessage(() -> BACKEND.layerNorm(scope.zeros(4, 0), null, EPS, scope.zeros(4, 0), stats, stats),
                    "layerNorm", "last dimension");
            assertMessage(() -> BACKEND.layerNormBackward(x, x, null, stats, stats, scope.zeros(4, 8),
                    scope.zeros(8)), "layerNormBackward", "dWeight");
            assertMessage(() -> BACKEND.layerNormBackward(x, x, scope.zeros(8), stats, scope.zeros(3),
                    scope.zeros(4, 8), scope.zeros(8)), "layerNormBackward", "rstd");
            assertMessage(() -> BACKEND.layerNormBackward(scope.zeros(4, 7), x, null, stats, stats,
                    scope.zeros(4, 8), null), "layerNormBackward", "dOut");
        }
    }
}
