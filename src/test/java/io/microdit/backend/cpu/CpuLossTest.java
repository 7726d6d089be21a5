package io.microdit.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class CpuLossTest {
    private static final CpuBackend BACKEND = new CpuBackend();
    private static final CpuBackend SINGLE_THREAD = new CpuBackend(1);

    @AfterAll
    static void close() {
        BACKEND.close();
        SINGLE_THREAD.close();
    }

    /** A 0/1 mask (1 = removed) that keeps at least one patch per sample. */
    static float[] randomMask(Random random, int samples, int patches) {
        float[] mask = new float[samples * patches];
        for (int n = 0; n < samples; n++) {
            int surely = random.nextInt(patches);
            for (int p = 0; p < patches; p++) {
                mask[n * patches + p] = p != surely && random.nextFloat() < 0.7f ? 1f : 0f;
            }
        }
        return mask;
    }

    static float[] positiveWeights(Random random, int samples) {
        float[] weight = new float[samples];
        for (int n = 0; n < samples; n++) {
            weight[n] = 0.2f + 3f * random.nextFloat();
        }
        return weight;
    }

    /**
     * The official code step by step in float64: per-pixel weighted squared error, mean over channels,
     * avg_pool2d(p), flatten, then sum(loss·keep)/sum(keep) per sample (or the plain mean without a mask).
     * Returns the per-sample losses.
     */
    static double[] officialPerSample(double[] denoised, double[] target, double[] weight, double[] mask,
                                      int samples, int channels, int height, int width, int patch) {
        int gridH = height / patch, gridW = width / patch;
        double[] perSample = new double[samples];
        for (int n = 0; n < samples; n++) {
            double[][] channelMean = new double[height][width];
            for (int c = 0; c < channels; c++) {
                for (int y = 0; y < height; y++) {
                    for (int x = 0; x < width; x++) {
                        int i = ((n * channels + c) * height + y) * width + x;
                        double d = denoised[i] - target[i];
                        channelMean[y][x] += weight[n] * d * d / channels;
                    }
                }
            }
            if (mask == null) {
                double sum = 0;
                for (double[] row : channelMean) {
                    for (double v : row) {
                        sum += v;
                    }
                }
                perSample[n] = sum / (height * width);
                continue;
            }
            double kept = 0, keepSum = 0;
            for (int gy = 0; gy < gridH; gy++) {
                for (int gx = 0; gx < gridW; gx++) {
                    double pooled = 0;
                    for (int i = 0; i < patch; i++) {
                        for (int j = 0; j < patch; j++) {
                            pooled += channelMean[gy * patch + i][gx * patch + j] / (patch * patch);
                        }
                    }
                    double keep = 1 - mask[n * gridH * gridW + gy * gridW + gx];
                    kept += pooled * keep;
                    keepSum += keep;
                }
            }
            perSample[n] = kept / keepSum;
        }
        return perSample;
    }

    static double mean(double[] values) {
        double sum = 0;
        for (double v : values) {
            sum += v;
        }
        return sum / values.length;
    }

    @ParameterizedTest
    @CsvSource({"2,3,6,10,2,true", "2,3,6,10,2,false", "3,4,6,9,3,true", "3,1,5,7,1,true", "3,1,5,7,1,false",
        "4,4,32,32,2,true"})
    void lossAndGradientMatchTheOfficialFormula(int samples, int channels, int height, int width, int patch,
                                                boolean masked) {
        Random random = new Random(samples * 1000L + height * 10L + patch);
        int patches = (height / patch) * (width / patch);
        int pixels = samples * channels * height * width;
        float[] denoised = TestData.uniform(random, pixels), target = TestData.uniform(random, pixels);
        float[] weight = positiveWeights(random, samples);
        float[] mask = masked ? randomMask(random, samples, patches) : null;
        double[] expectedPerSample = officialPerSample(TestData.toDouble(denoised), TestData.toDouble(target),
                TestData.toDouble(weight), masked ? TestData.toDouble(mask) : null, samples, channels, height,
                width, patch);
        try (MemoryScope scope = new MemoryScope("test")) {
            Tensor d = Tensor.of(scope, denoised, samples, channels, height, width);
            Tensor t = Tensor.of(scope, target, samples, channels, height, width);
            Tensor w = Tensor.of(scope, weight, samples);
            Tensor m = masked ? Tensor.of(scope, mask, samples, patches) : null;
            Tensor perSample = TestData.poisoned(scope, samples);
            float loss = BACKEND.edmLoss(d, t, w, m, patch, perSample);
            assertEquals(mean(expectedPerSample), loss, 1e-6 * Math.abs(mean(expectedPerSample)));
            assertTrue(TestData.maxRelativeError(perSample.toFloatArray(), expectedPerSample) < 1e-6);

            float dLoss = 0.75f;
            Tensor gradient = TestData.poisoned(scope, samples, channels, height, width);
            BACKEND.edmLossBackward(dLoss, d, t, w, m, patch, gradient);
            double[] expected = new double[pixels];
            for (int i = 0; i < pixels; i++) {
                int n = i / (channels * height * width);
                int y = i / width % height, x = i % width;
                double keep = 1, keepSum = patches;
                if (masked) {
                    keep = 1 - mask[n * patches + (y / patch) * (width / patch) + x / patch];
                    keepSum = 0;
                    for (int p = 0; p < patches; p++) {
                        keepSum += 1 - mask[n * patches + p];
                    }
                }
                expected[i] = dLoss / samples * weight[n] * 2 * ((double) denoised[i] - target[i]) * keep
                        / (keepSum * channels * patch * patch);
            }
            float[] actual = gradient.toFloatArray();
            assertTrue(TestData.maxRelativeError(actual, expected) < 1e-6);
            for (int i = 0; i < pixels; i++) {
                if (expected[i] == 0) {
                    assertEquals(0f, actual[i], 0f, "removed pixel " + i + " must get an exact 0");
                }
            }
        }
    }

    @Test
    void maskedLossIsTheMeanOverKeptPixelsOnly() {
        int samples = 3, channels = 4, height = 8, width = 6, patch = 2, gridW = width / patch;
        int patches = (height / patch) * gridW, pixels = samples * channels * height * width;
        Random random = new Random(41);
        float[] denoised = TestData.uniform(random, pixels), target = TestData.uniform(random, pixels);
        float[] weight = positiveWeights(random, samples);
        float[] mask = randomMask(random, samples, patches);
        // Every patch has the same pixel count, so the mean of kept patch means is the mean over kept pixels.
        double expected = 0;
        for (int n = 0; n < samples; n++) {
            double sum = 0;
            int count = 0;
            for (int c = 0; c < channels; c++) {
                for (int y = 0; y < height; y++) {
                    for (int x = 0; x < width; x++) {
                        if (mask[n * patches + (y / patch) * gridW + x / patch] == 0f) {
                            int i = ((n * channels + c) * height + y) * width + x;
                            double diff = (double) denoised[i] - target[i];
                            sum += weight[n] * diff * diff;
                            count++;
                        }
                    }
                }
            }
            expected += sum / count / samples;
        }
        try (MemoryScope scope = new MemoryScope("test")) {
            Tensor d = Tensor.of(scope, denoised, samples, channels, height, width);
            Tensor t = Tensor.of(scope, target, samples, channels, height, width);
            Tensor w = Tensor.of(scope, weight, samples);
            Tensor m = Tensor.of(scope, mask, samples, patches);
            float loss = BACKEND.edmLoss(d, t, w, m, patch, scope.zeros(samples));
            assertEquals(expected, loss, 1e-6 * expected);

            // What the removed patches hold cannot change the loss, not even NaN.
            float[] changed = denoised.clone();
            for (int i = 0; i < pixels; i++) {
                int n = i / (channels * height * width), y = i / width % height, x = i % width;
                if (mask[n * patches + (y / patch) * gridW + x / patch] == 1f) {
                    changed[i] = i % 2 == 0 ? Float.NaN : 100f;
                }
            }
            Tensor dChanged = Tensor.of(scope, changed, samples, channels, height, width);
            assertEquals(loss, BACKEND.edmLoss(dChanged, t, w, m, patch, scope.zeros(samples)), 0f);
            Tensor gradient = TestData.poisoned(scope, samples, channels, height, width);
            BACKEND.edmLossBackward(1f, dChanged, t, w, m, patch, gradient);
            float[] g = gradient.toFloatArray();
            for (int i = 0; i < pixels; i++) {
                assertTrue(Float.isFinite(g[i]), "gradient " + i + " is " + g[i]);
            }
        }
    }

    @Test
    void resultDoesNotDependOnTheThreadCount() {
        int samples = 8, channels = 4, height = 32, width = 32, patch = 2, patches = 256;
        Random random = new Random(5);
        int pixels = samples * channels * height * width;
        try (MemoryScope scope = new MemoryScope("test")) {
            Tensor d = Tensor.of(scope, TestData.uniform(random, pixels), samples, channels, height, width);
            Tensor t = Tensor.of(scope, TestData.uniform(random, pixels), samples, channels, height, width);
            Tensor w = Tensor.of(scope, positiveWeights(random, samples), samples);
            Tensor m = Tensor.of(scope, randomMask(random, samples, patches), samples, patches);
            Tensor many = scope.zeros(samples), one = scope.zeros(samples);
            assertEquals(SINGLE_THREAD.edmLoss(d, t, w, m, patch, one), BACKEND.edmLoss(d, t, w, m, patch, many), 0f);
            assertArrayEquals(one.toFloatArray(), many.toFloatArray());
        }
    }

    @Test
    void badArgumentsAreRejected() {
        try (MemoryScope scope = new MemoryScope("test")) {
            Tensor d = scope.zeros(2, 3, 4, 6), t = scope.zeros(2, 3, 4, 6), w = scope.zeros(2);
            float[] allRemovedInSecond = new float[12];
            for (int p = 6; p < 12; p++) {
                allRemovedInSecond[p] = 1f;
            }
            Tensor m = Tensor.of(scope, allRemovedInSecond, 2, 6);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> BACKEND.edmLoss(d, t, w, m, 2, scope.zeros(2)));
            assertTrue(e.getMessage().contains("sample 1 keeps no patch"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> BACKEND.edmLossBackward(1f, d, t, w, m, 2, scope.zeros(2, 3, 4, 6)));
            assertTrue(e.getMessage().contains("sample 1 keeps no patch"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> BACKEND.edmLoss(d, t, w, null, 4, scope.zeros(2)));
            assertTrue(e.getMessage().contains("divisible by the patch size 4"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> BACKEND.edmLoss(d, scope.zeros(2, 3, 4, 5), w, null, 1, scope.zeros(2)));
            assertTrue(e.getMessage().contains("target"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> BACKEND.edmLoss(d, t, scope.zeros(3), null, 2, scope.zeros(2)));
            assertTrue(e.getMessage().contains("weight must have shape"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> BACKEND.edmLoss(d, t, w, scope.zeros(2, 24), 2, scope.zeros(2)));
            assertTrue(e.getMessage().contains("mask must have shape [2, 6]"), e.getMessage());
        }
    }
}
