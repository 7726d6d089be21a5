package io.microdit.backend.cpu;

import io.microdit.backend.Checks;
import io.microdit.backend.FlopCounter;
import io.microdit.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The EDM loss over kept patches (spec §3.2): {@code weight[n]·(D − x)²}, averaged over channels and each p×p
 * patch (the official avg_pool2d of the channel mean), then per sample over the kept patches weighted by
 * keep = 1 − mask ({@code sum(patch·keep) / sum(keep)}); without a mask every patch counts, which is the plain
 * mean over (C, H, W). The result is the mean of the per-sample losses.
 *
 * <p>Forward: one pass over the pixels, parallel over (sample, row of patches); each work item writes only its
 * own patches' squared-error sums (double), and the per-sample and batch sums then run serially in index order,
 * so the result does not depend on the thread count. 3 FLOPs per pixel. Backward: per row of patches a row of
 * per-pixel coefficients {@code dLoss/N · weight[n] · keep / (sum(keep) · C·p·p) · 2} is built once and applied
 * as {@code coefficient · (D − x)} with vectors (3 FLOPs per pixel). Removed patches contribute nothing in
 * either direction, even when they hold non-finite values: the forward skips them and their gradient is an
 * exact 0.
 */
final class CpuLoss {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT;

    private final Parallel parallel;
    private final FlopCounter flops;

    CpuLoss(Parallel parallel, FlopCounter flops) {
        this.parallel = parallel;
        this.flops = flops;
    }

    float edmLoss(Tensor denoised, Tensor target, Tensor weight, Tensor mask, int patch, Tensor perSample) {
        String op = "edmLoss";
        int[] dims = Checks.edmLoss(denoised, target, weight, mask, patch, perSample);
        int samples = dims[0], channels = dims[1], height = dims[2], width = dims[3];
        int gridH = height / patch, gridW = width / patch, patches = gridH * gridW;
        double[] keepSums = Checks.keptPatches(op, mask, samples, patches);
        MemorySegment prediction = denoised.segment(), reference = target.segment();
        double[] patchSums = new double[samples * patches];
        parallel.forRange(samples * gridH, Math.max(1, 8192 / Math.max(1, channels * patch * width)),
                (start, end) -> {
                    for (int item = start; item < end; item++) {
                        int n = item / gridH, gy = item % gridH;
                        int firstPatch = n * patches + gy * gridW;
                        for (int c = 0; c < channels; c++) {
                            for (int i = 0; i < patch; i++) {
                                long row = (((long) n * channels + c) * height + (long) gy * patch + i) * width;
                                for (int gx = 0; gx < gridW; gx++) {
                                    double sum = 0;
                                    for (int j = 0; j < patch; j++) {
                                        long index = row + (long) gx * patch + j;
                                        double difference = (double) prediction.getAtIndex(FLOAT, index)
                                                - reference.getAtIndex(FLOAT, index);
                                        sum += difference * difference;
                                    }
                                    patchSums[firstPatch + gx] += sum;
                                }
                            }
                        }
                    }
                });
        MemorySegment weights = weight.segment(), out = perSample.segment();
        MemorySegment maskMemory = mask == null ? null : mask.segment();
        double pixelsPerPatch = (double) channels * patch * patch;
        double total = 0;
        for (int n = 0; n < samples; n++) {
            double kept = 0;
            for (int p = 0; p < patches; p++) {
                double keep = maskMemory == null ? 1 : 1 - (double) maskMemory.getAtIndex(FLOAT, (long) n * patches + p);
                if (keep != 0) {
                    kept += patchSums[n * patches + p] * keep;
                }
            }
            double loss = weights.getAtIndex(FLOAT, n) * kept / (pixelsPerPatch * keepSums[n]);
            out.setAtIndex(FLOAT, n, (float) loss);
            total += loss;
        }
        flops.add(op, 3L * samples * channels * height * width);
        return (float) (total / samples);
    }

    void edmLossBackward(float dLoss, Tensor denoised, Tensor target, Tensor weight, Tensor mask, int patch,
                         Tensor dDenoised) {
        String op = "edmLossBackward";
        int[] dims = Checks.edmLossBackward(denoised, target, weight, mask, patch, dDenoised);
        int samples = dims[0], channels = dims[1], height = dims[2], width = dims[3];
        int gridH = height / patch, gridW = width / patch, patches = gridH * gridW;
        double[] keepSums = Checks.keptPatches(op, mask, samples, patches);
        MemorySegment prediction = denoised.segment(), reference = target.segment(), gradient = dDenoised.segment();
        MemorySegment weights = weight.segment();
        MemorySegment maskMemory = mask == null ? null : mask.segment();
        double pixelsPerPatch = (double) channels * patch * patch;
        int bound = SPECIES.loopBound(width), lanes = SPECIES.length();
        parallel.forRange(samples * gridH, Math.max(1, 8192 / Math.max(1, channels * patch * width)),
                (start, end) -> {
                    float[] coefficients = new float[width];
                    for (int item = start; item < end; item++) {
                        int n = item / gridH, gy = item % gridH;
                        double sampleScale = 2.0 * dLoss / samples * weights.getAtIndex(FLOAT, n)
                                / (pixelsPerPatch * keepSums[n]);
                        for (int gx = 0; gx < gridW; gx++) {
                            double keep = maskMemory == null ? 1
                                    : 1 - (double) maskMemory.getAtIndex(FLOAT, (long) n * patches + gy * gridW + gx);
                            float coefficient = (float) (sampleScale * keep);
                            for (int j = 0; j < patch; j++) {
                                coefficients[gx * patch + j] = coefficient;
                            }
                        }
                        for (int c = 0; c < channels; c++) {
                            for (int i = 0; i < patch; i++) {
                                long row = (((long) n * channels + c) * height + (long) gy * patch + i) * width;
                                int x = 0;
                                for (; x < bound; x += lanes) {
                                    long offset = (row + x) * Float.BYTES;
                                    FloatVector difference = FloatVector.fromMemorySegment(SPECIES, prediction, offset, ORDER)
                                            .sub(FloatVector.fromMemorySegment(SPECIES, reference, offset, ORDER));
                                    FloatVector coefficient = FloatVector.fromArray(SPECIES, coefficients, x);
                                    // A removed patch (coefficient 0) gets 0 even if its prediction is not finite.
                                    difference.mul(coefficient).blend(0f, coefficient.eq(0f))
                                            .intoMemorySegment(gradient, offset, ORDER);
                                }
                                for (; x < width; x++) {
                                    float coefficient = coefficients[x];
                                    float value = coefficient == 0f ? 0f : coefficient
                                            * (prediction.getAtIndex(FLOAT, row + x) - reference.getAtIndex(FLOAT, row + x));
                                    gradient.setAtIndex(FLOAT, row + x, value);
                                }
                            }
                        }
                    }
                });
        flops.add(op, 3L * samples * channels * height * width);
    }
}
