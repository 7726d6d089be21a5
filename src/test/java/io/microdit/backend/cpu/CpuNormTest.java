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

    /** Float64 LayerNorm fused with modulate and its backward: the LayerNorm reference on dOut·(1 + scale). */
    private record ModulatedReference(double[] out, double[] mean, double[] rstd, double[] dx, double[] dWeight,
                                      double[] dShift, double[] dScale) {
        static ModulatedReference of(float[] x, float[] weight, float[] shift, float[] scale, float[] dOut,
                                     int samples, int tokens, int width) {
            int rows = samples * tokens;
            double[] dShift = new double[samples * width], dScale = new double[samples * width];
            Reference plain = Reference.of(x, null, dOut, rows, width, EPS); // its out is x̂
            for (int i = 0; i < dOut.length; i++) {
                int p = i / (tokens * width) * width + i % width;
                dShift[p] += dOut[i];
                dScale[p] += dOut[i] * plain.out()[i] * (weight == null ? 1 : weight[i % width]);
            }
            // LayerNorm's backward is linear in its output gradient: run it in float64 on dOut·(1 + scale).
            double[] out = new double[x.length], dx = new double[x.length], dWeight = new double[width];
            for (int r = 0; r < rows; r++) {
                int sample = r / tokens;
                double s = plain.rstd()[r];
                double meanDy = 0, meanDyXHat = 0;
                double[] dy = new double[width];
                for (int c = 0; c < width; c++) {
                    int i = r * width + c, p = sample * width + c;
                    double w = weight == null ? 1 : weight[c], xHat = plain.out()[i];
                    out[i] = xHat * w * (1 + (double) scale[p]) + shift[p];
                    double g = dOut[i] * (1 + (double) scale[p]);
                    dy[c] = g * w;
                    meanDy += dy[c] / width;
                    meanDyXHat += dy[c] * xHat / width;
                    dWeight[c] += g * xHat;
                }
                for (int c = 0; c < width; c++) {
                    int i = r * width + c;
                    dx[i] = s * (dy[c] - meanDy - plain.out()[i] * meanDyXHat);
                }
            }
            return new ModulatedReference(out, plain.mean(), plain.rstd(), dx, dWeight, dShift, dScale);
        }
    }

    @ParameterizedTest
    @CsvSource({"3,5,37,true", "3,5,37,false", "1,1,1,true", "2,9,8,false", "3,300,37,true", "5,70,130,false",
                "2,4,517,true"})
    void layerNormModulateMatchesFloat64(int samples, int tokens, int width, boolean affine) {
        Random random = new Random(samples * 100_000L + tokens * 1000L + width);
        int rows = samples * tokens;
        try (MemoryScope scope = new MemoryScope("test")) {
            float[] x = TestData.uniform(random, rows * width);
            for (int i = 0; i < x.length; i++) {
                x[i] = x[i] * 3f + 0.5f;
            }
            float[] weight = affine ? TestData.uniform(random, width) : null;
            float[] shift = TestData.uniform(random, samples * width), scale = TestData.uniform(random, samples * width);
            float[] dOut = TestData.uniform(random, rows * width);
            float[] dWeightStart = TestData.uniform(random, width);
            ModulatedReference ref = ModulatedReference.of(x, weight, shift, scale, dOut, samples, tokens, width);

            Tensor xt = Tensor.of(scope, x, samples, tokens, width);
            Tensor wt = weight == null ? null : Tensor.of(scope, weight, width);
            Tensor st = Tensor.of(scope, scale, samples, width);
            Tensor out = TestData.poisoned(scope, samples, tokens, width);
            Tensor mean = TestData.poisoned(scope, rows), rstd = TestData.poisoned(scope, rows);
            BACKEND.layerNormModulate(xt, wt, Tensor.of(scope, shift, samples, width), st, EPS, out, mean, rstd);
            assertClose(out.toFloatArray(), ref.out(), 4e-6, "out");
            assertClose(mean.toFloatArray(), ref.mean(), 2e-6, "mean");
            assertClose(rstd.toFloatArray(), ref.rstd(), 2e-6, "rstd");

            Tensor dx = TestData.poisoned(scope, samples, tokens, width);
            Tensor dShift = TestData.poisoned(scope, samples, width), dScale = TestData.poisoned(scope, samples, width);
            Tensor dWeight = weight == null ? null : Tensor.of(scope, dWeightStart.clone(), width);
            BACKEND.layerNormModulateBackward(Tensor.of(scope, dOut, samples, tokens, width), xt, wt, st, mean, rstd,
                    dx, dWeight, dShift, dScale);
            assertClose(dx.toFloatArray(), ref.dx(), 2e-5, "dx");
            assertClose(dShift.toFloatArray(), ref.dShift(), 2e-5, "dShift");
            assertClose(dScale.toFloatArray(), ref.dScale(), 2e-5, "dScale");
            if (weight != null) {
                double[] expected = ref.dWeight().clone();
                for (int c = 0; c < width; c++) {
                    expected[c] += dWeightStart[c];
                }
                assertClose(dWeight.toFloatArray(), expected, 2e-5, "dWeight");
            }
        }
    }

    /** A weight that takes no gradient (dWeight null) still scales dx and dScale. */
    @Test
    void layerNormModulateWithAFrozenWeight() {
        int samples = 2, tokens = 6, width = 19;
        Random random = new Random(19);
        try (MemoryScope scope = new MemoryScope("test")) {
            float[] x = TestData.uniform(random, samples * tokens * width), weight = TestData.uniform(random, width);
            float[] shift = TestData.uniform(random, samples * width), scale = TestData.uniform(random, samples * width);
            float[] dOut = TestData.uniform(random, x.length);
            ModulatedReference ref = ModulatedReference.of(x, weight, shift, scale, dOut, samples, tokens, width);
            Tensor xt = Tensor.of(scope, x, samples, tokens, width), wt = Tensor.of(scope, weight, width);
            Tensor st = Tensor.of(scope, scale, samples, width);
            Tensor mean = scope.zeros(samples * tokens), rstd = scope.zeros(samples * tokens);
            BACKEND.layerNormModulate(xt, wt, Tensor.of(scope, shift, samples, width), st, EPS,
                    scope.zeros(samples, tokens, width), mean, rstd);
            Tensor dx = TestData.poisoned(scope, samples, tokens, width);
            Tensor dShift = TestData.poisoned(scope, samples, width), dScale = TestData.poisoned(scope, samples, width);
            BACKEND.layerNormModulateBackward(Tensor.of(scope, dOut, samples, tokens, width), xt, wt, st, mean, rstd,
                    dx, null, dShift, dScale);
            assertClose(dx.toFloatArray(), ref.dx(), 2e-5, "dx");
            assertClose(dShift.toFloatArray(), ref.dShift(), 2e-5, "dShift");
            assertClose(dScale.toFloatArray(), ref.dScale(), 2e-5, "dScale");
        }
    }

    /** Rows split into several blocks per sample (T = 300): the same bits with 1, 2 and 3 threads. */
    @Test
    void layerNormModulateIsBitIdenticalForAnyThreadCount() {
        int samples = 3, tokens = 300, width = 37;
        Random random = new Random(4);
        try (MemoryScope scope = new MemoryScope("test"); CpuBackend twoThreads = new CpuBackend(2)) {
            Tensor x = TestData.uniform(scope, random, samples, tokens, width);
            Tensor weight = TestData.uniform(scope, random, width);
            Tensor shift = TestData.uniform(scope, random, samples, width);
            Tensor scale = TestData.uniform(scope, random, samples, width);
            Tensor dOut = TestData.uniform(scope, random, samples, tokens, width);
            CpuBackend[] backends = {BACKEND, twoThreads, SINGLE_THREAD};
            float[][][] results = new float[backends.length][][];
            for (int b = 0; b < backends.length; b++) {
                Tensor out = scope.zeros(samples, tokens, width);
                Tensor mean = scope.zeros(samples * tokens), rstd = scope.zeros(samples * tokens);
                backends[b].layerNormModulate(x, weight, shift, scale, EPS, out, mean, rstd);
                Tensor dx = scope.zeros(samples, tokens, width), dWeight = scope.zeros(width);
                Tensor dShift = scope.zeros(samples, width), dScale = scope.zeros(samples, width);
                backends[b].layerNormModulateBackward(dOut, x, weight, scale, mean, rstd, dx, dWeight, dShift, dScale);
                results[b] = new float[][] {out.toFloatArray(), mean.toFloatArray(), rstd.toFloatArray(),
                        dx.toFloatArray(), dWeight.toFloatArray(), dShift.toFloatArray(), dScale.toFloatArray()};
            }
            String[] names = {"out", "mean", "rstd", "dx", "dWeight", "dShift", "dScale"};
            for (int b = 1; b < backends.length; b++) {
                for (int i = 0; i < names.length; i++) {
                    assertArrayEquals(results[0][i], results[b][i], 0f, names[i] + " differs between thread counts");
                }
            }
        }
    }

    @Test
    void layerNormModulateRefusesBadArguments() {
        try (MemoryScope scope = new MemoryScope("test")) {
            Tensor x = scope.zeros(2, 3, 8), perSample = scope.zeros(2, 8), stats = scope.zeros(6);
            String op = "layerNormModulate";
            assertMessage(() -> BACKEND.layerNormModulate(x, null, scope.zeros(3, 8), perSample, EPS,
                    scope.zeros(2, 3, 8), stats, stats), op, "shift");
            assertMessage(() -> BACKEND.layerNormModulate(x, null, perSample, scope.zeros(2, 7), EPS,
                    scope.zeros(2, 3, 8), stats, stats), op, "scale");
            assertMessage(() -> BACKEND.layerNormModulate(scope.zeros(6, 8), null, perSample, perSample, EPS,
                    scope.zeros(6, 8), stats, stats), op, "rank 3");
            assertMessage(() -> BACKEND.layerNormModulate(x, scope.zeros(7), perSample, perSample, EPS,
                    scope.zeros(2, 3, 8), stats, stats), op, "weight");
            assertMessage(() -> BACKEND.layerNormModulate(x, null, perSample, perSample, EPS,
                    scope.zeros(2, 3, 8), scope.zeros(5), stats), op, "mean");
            assertMessage(() -> BACKEND.layerNormModulate(x, null, perSample, perSample, Float.NaN,
                    scope.zeros(2, 3, 8), stats, stats), op, "eps");
            String backward = "layerNormModulateBackward";
            assertMessage(() -> BACKEND.layerNormModulateBackward(x, x, null, perSample, stats, stats,
                    scope.zeros(2, 3, 8), scope.zeros(8), perSample, perSample), backward, "dWeight");
            assertMessage(() -> BACKEND.layerNormModulateBackward(x, x, null, perSample, stats, stats,
                    scope.zeros(2, 3, 8), null, scope.zeros(2, 9), perSample), backward, "dShift");
            assertMessage(() -> BACKEND.layerNormModulateBackward(x, x, null, perSample, stats, scope.zeros(7),
                    scope.zeros(2, 3, 8), null, perSample, perSample), backward, "rstd");
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
