package io.microdit.autograd;

import static org.junit.jupiter.api.Assertions.assertEquals;
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
import org.junit.jupiter.params.provider.CsvSource;

class LossFunctionsTest {
    private static final CpuBackend BACKEND = new CpuBackend();

    @AfterAll
    static void close() {
        BACKEND.close();
    }

    /** Spec §3.2 per element: mean over samples of the kept-patch mean of weight·(D − x)² patch means. */
    private static double reference(double[] denoised, double[] target, double[] weight, float[] mask, int samples,
                                    int channels, int height, int width, int patch) {
        int gridW = width / patch, patches = (height / patch) * gridW;
        double total = 0;
        for (int n = 0; n < samples; n++) {
            double[] patchMeans = new double[patches];
            for (int c = 0; c < channels; c++) {
                for (int y = 0; y < height; y++) {
                    for (int x = 0; x < width; x++) {
                        int i = ((n * channels + c) * height + y) * width + x;
                        double d = denoised[i] - target[i];
                        patchMeans[(y / patch) * gridW + x / patch] += weight[n] * d * d
                                / (channels * patch * patch);
                    }
                }
            }
            double kept = 0, keepSum = 0;
            for (int p = 0; p < patches; p++) {
                double keep = mask == null ? 1 : 1 - mask[n * patches + p];
                kept += patchMeans[p] * keep;
                keepSum += keep;
            }
            total += kept / keepSum;
        }
        return total / samples;
    }

    @ParameterizedTest
    @CsvSource({"2,3,6,10,2,true", "2,3,6,10,2,false", "3,2,6,9,3,true", "3,1,5,7,1,true"})
    void edmLossGradient(int samples, int channels, int height, int width, int patch, boolean masked) {
        Random random = new Random(samples * 100L + width + (masked ? 1 : 0));
        int pixels = samples * channels * height * width, patches = (height / patch) * (width / patch);
        float[] target = TestData.uniform(random, pixels);
        float[] weight = new float[samples];
        for (int n = 0; n < samples; n++) {
            weight[n] = 0.3f + 2f * random.nextFloat();
        }
        float[] mask = null;
        if (masked) {
            mask = new float[samples * patches];
            for (int n = 0; n < samples; n++) {
                for (int p = 0; p < patches; p++) {
                    mask[n * patches + p] = p % 3 == n % 3 ? 0f : 1f;
                }
            }
        }
        float[] maskValues = mask;
        double[] targetValues = TestData.toDouble(target), weightValues = TestData.toDouble(weight);
        GradientCheck.of(BACKEND, 12)
                .input("denoised", TestData.uniform(random, pixels), samples, channels, height, width)
                .maxElementsPerInput(200)
                .check((g, v) -> LossFunctions.edmLoss(g, v[0], Tensor.of(g.scope(), target, samples, channels,
                                height, width), Tensor.of(g.scope(), weight, samples),
                                maskValues == null ? null : Tensor.of(g.scope(), maskValues, samples, patches), patch),
                        r -> new double[] {reference(r[0], targetValues, weightValues, maskValues, samples, channels,
                                height, width, patch)});
    }

    @Test
    void lossIsAScalarAndAllMaskedSamplesAreRejected() {
        try (MemoryScope scope = new MemoryScope("test")) {
            Graph g = new Graph(BACKEND, scope);
            Random random = new Random(2);
            Variable denoised = g.constant(TestData.uniform(scope, random, 2, 1, 2, 2));
            Tensor target = scope.zeros(2, 1, 2, 2);
            Tensor weight = Tensor.of(scope, new float[] {1f, 1f}, 2);
            Variable loss = LossFunctions.edmLoss(g, denoised, target, weight, null, 1);
            assertEquals(1, loss.value().numel());
            double expected = 0;
            for (float v : denoised.value().toFloatArray()) {
                expected += v * (double) v / 8;
            }
            assertEquals(expected, loss.value().getFloat(0), 1e-6);
            Tensor allRemoved = Tensor.of(scope, new float[] {0f, 0f, 0f, 0f, 1f, 1f, 1f, 1f}, 2, 4);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> LossFunctions.edmLoss(g, denoised, target, weight, allRemoved, 1));
            assertTrue(e.getMessage().contains("keeps no patch"), e.getMessage());
        }
    }
}
