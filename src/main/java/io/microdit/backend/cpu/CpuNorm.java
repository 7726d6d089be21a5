package io.microdit.backend.cpu;

import io.microdit.backend.Checks;
import io.microdit.backend.FlopCounter;
import io.microdit.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * LayerNorm over the last dimension without bias, optionally with a weight (none for QK-norm). Rows are
 * independent, so threads take contiguous row ranges; each row (a few KB) stays in L1 across its passes.
 *
 * <p>Forward, three vector passes per row: a rough float mean m0, then the shifted sums s1 = Σ(x−m0) and
 * s2 = Σ(x−m0)² (the corrected two-pass algorithm: mean = m0 + s1/D, var = s2/D − (s1/D)², accurate even when
 * |mean| ≫ std), then the output from (x − m0) − s1/D. rstd is formed in double. About 8 FLOPs per element.
 *
 * <p>Backward, two passes per row: the row means of dŷ and dŷ·x̂ (dŷ = dOut·weight), then
 * dx = rstd·(dŷ − mean(dŷ) − x̂·mean(dŷ·x̂)), x̂ recomputed from the saved mean and rstd. The weight gradient
 * Σ_rows dOut·x̂ goes to per-block partial sums over fixed blocks of rows (the blocking depends only on the row
 * count, never on the thread count), which are added in block order at the end: the result is deterministic
 * and identical for any number of threads. About 14 FLOPs per element.
 */
final class CpuNorm {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final int LANES = SPECIES.length();
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT;
    /** Elements per thread below which splitting costs more than it saves. */
    private static final int MIN_CHUNK = 1 << 14;
    /** Upper bound on the weight gradient's partial sums: blocks of rows, each summed by one task. */
    private static final int MAX_ROW_BLOCKS = 64;

    private final Parallel parallel;
    private final FlopCounter flops;

    CpuNorm(Parallel parallel, FlopCounter flops) {
        this.parallel = parallel;
        this.flops = flops;
    }

    void layerNorm(Tensor x, Tensor weight, float eps, Tensor out, Tensor mean, Tensor rstd) {
        String op = "layerNorm";
        int width = Checks.layerNorm(x, weight, eps, out, mean, rstd);
        int rows = Math.toIntExact(x.rowCount());
        MemorySegment xs = x.segment(), os = out.segment(), ms = mean.segment(), rs = rstd.segment();
        float[] w = weight == null ? null : weight.toFloatArray();
        parallel.forRange(rows, rowsPerChunk(width), (start, end) -> {
            for (int r = start; r < end; r++) {
                long base = (long) r * width * 4;
                float m0 = sum(xs, base, width) / width;
                FloatVector s1 = FloatVector.zero(SPECIES), s2 = FloatVector.zero(SPECIES);
                int c = 0;
                for (; c <= width - LANES; c += LANES) {
                    FloatVector d = FloatVector.fromMemorySegment(SPECIES, xs, base + c * 4L, ORDER).sub(m0);
                    s1 = s1.add(d);
                    s2 = d.fma(d, s2);
                }
                double shiftedSum = VectorMath.sumLanes(s1), squares = VectorMath.sumLanes(s2);
                for (; c < width; c++) {
                    double d = xs.get(F, base + c * 4L) - m0;
                    shiftedSum += d;
                    squares += d * d;
                }
                double correction = shiftedSum / width;
                double variance = Math.max(0, squares / width - correction * correction);
                float rowRstd = (float) (1 / Math.sqrt(variance + eps));
                ms.setAtIndex(F, r, (float) (m0 + correction));
                rs.setAtIndex(F, r, rowRstd);
                normalizeRow(xs, os, base, width, m0, (float) correction, rowRstd, w);
            }
        });
        flops.add(op, (weight == null ? 7L : 8L) * x.numel());
    }

    private static float sum(MemorySegment xs, long base, int width) {
        FloatVector acc = FloatVector.zero(SPECIES);
        int c = 0;
        for (; c <= width - LANES; c += LANES) {
            acc = acc.add(FloatVector.fromMemorySegment(SPECIES, xs, base + c * 4L, ORDER));
        }
        float total = VectorMath.sumLanes(acc);
        for (; c < width; c++) {
            total += xs.get(F, base + c * 4L);
        }
        return total;
    }

    /**
     * Centres with the rough mean and its small correction separately: x − m0 is exact for x near m0, so the
     * centred values keep full float precision even when the mean itself cannot be represented that finely.
     */
    private static void normalizeRow(MemorySegment xs, MemorySegment os, long base, int width, float m0,
                                     float correction, float rowRstd, float[] w) {
        int c = 0;
        for (; c <= width - LANES; c += LANES) {
            FloatVector y = FloatVector.fromMemorySegment(SPECIES, xs, base + c * 4L, ORDER).sub(m0).sub(correction)
                    .mul(rowRstd);
            if (w != null) {
                y = y.mul(FloatVector.fromArray(SPECIES, w, c));
            }
            y.intoMemorySegment(os, base + c * 4L, ORDER);
        }
        for (; c < width; c++) {
            float y = (xs.get(F, base + c * 4L) - m0 - correction) * rowRstd;
            os.set(F, base + c * 4L, w == null ? y : y * w[c]);
        }
    }

    void layerNormBackward(Tensor dOut, Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dx,
                           Tensor dWeight) {
        String op = "layerNormBackward";
        int width = Checks.layerNormBackward(dOut, x, weight, mean, rstd, dx, dWeight);
        int rows = Math.toIntExact(x.rowCount());
        MemorySegment gs = dOut.segment(), xs = x.segment(), ms = mean.segment(), rs = rstd.segment(),
                dxs = dx.segment();
        float[] w = weight == null ? null : weight.toFloatArray();
        boolean weightGradient = dWeight != null;
        int rowsPerBlock = Math.max(1, (rows + MAX_ROW_BLOCKS - 1) / MAX_ROW_BLOCKS);
        int blocks = rows == 0 ? 0 : (rows + rowsPerBlock - 1) / rowsPerBlock;
        float[] partials = weightGradient ? new float[blocks * width] : null;
        int blocksPerChunk = Math.max(1, rowsPerChunk(width) / rowsPerBlock);
        parallel.forRange(blocks, blocksPerChunk, (startBlock, endBlock) -> {
            float[] rowScratch = new float[width];
            for (int block = startBlock; block < endBlock; block++) {
                int end = Math.min(rows, (block + 1) * rowsPerBlock);
                for (int r = block * rowsPerBlock; r < end; r++) {
                    backwardRow(gs, xs, dxs, (long) r * width * 4, width,
                            ms.getAtIndex(F, r),
                            rs.getAtIndex(F, r), w,
                            partials, block * width, rowScratch);
                }
            }
        });
        if (weightGradient) {
            addPartials(partials, blocks, width, dWeight.segment());
        }
        flops.add(op, (weight == null ? 11L : weightGradient ? 16L : 14L) * x.numel());
    }

    /**
     * One row of the backward. {@code partials} (may be null) receives dOut·x̂ at {@code partialBase};
     * {@code xHat} is scratch of the row's width, so x̂ is computed once.
     */
    private static void backwardRow(MemorySegment gs, MemorySegment xs, MemorySegment dxs, long base, int width,
                                    float rowMean, float rowRstd, float[] w, float[] partials, int partialBase,
                                    float[] xHat) {
        FloatVector sumDy = FloatVector.zero(SPECIES), sumDyXHat = FloatVector.zero(SPECIES);
        int c = 0;
        for (; c <= width - LANES; c += LANES) {
            FloatVector g = FloatVector.fromMemorySegment(SPECIES, gs, base + c * 4L, ORDER);
            FloatVector h = FloatVector.fromMemorySegment(SPECIES, xs, base + c * 4L, ORDER).sub(rowMean).mul(rowRstd);
            h.intoArray(xHat, c);
            if (partials != null) {
                g.fma(h, FloatVector.fromArray(SPECIES, partials, partialBase + c))
                        .intoArray(partials, partialBase + c);
            }
            FloatVector dy = w == null ? g : g.mul(FloatVector.fromArray(SPECIES, w, c));
            sumDy = sumDy.add(dy);
            sumDyXHat = dy.fma(h, sumDyXHat);
        }
        float totalDy = VectorMath.sumLanes(sumDy);
        float totalDyXHat = VectorMath.sumLanes(sumDyXHat);
        for (int tail = c; tail < width; tail++) {
            float g = gs.get(F, base + tail * 4L);
            float h = (xs.get(F, base + tail * 4L) - rowMean) * rowRstd;
            xHat[tail] = h;
            if (partials != null) {
                partials[partialBase + tail] = Math.fma(g, h, partials[partialBase + tail]);
            }
            float dy = w == null ? g : g * w[tail];
            totalDy += dy;
            totalDyXHat = Math.fma(dy, h, totalDyXHat);
        }
        float meanDy = totalDy / width, meanDyXHat = totalDyXHat / width;
        FloatVector negMeanDyXHat = FloatVector.broadcast(SPECIES, -meanDyXHat);
        c = 0;
        for (; c <= width - LANES; c += LANES) {
            FloatVector g = FloatVector.fromMemorySegment(SPECIES, gs, base + c * 4L, ORDER);
            FloatVector dy = w == null ? g : g.mul(FloatVector.fromArray(SPECIES, w, c));
            FloatVector h = FloatVector.fromArray(SPECIES, xHat, c);
            h.fma(negMeanDyXHat, dy.sub(meanDy)).mul(rowRstd).intoMemorySegment(dxs, base + c * 4L, ORDER);
        }
        for (; c < width; c++) {
            float g = gs.get(F, base + c * 4L);
            float dy = w == null ? g : g * w[c];
            dxs.set(F, base + c * 4L,
                    Math.fma(xHat[c], -meanDyXHat, dy - meanDy) * rowRstd);
        }
    }

    /** {@code dWeight[c] += Σ_block partials[block][c]}, blocks in order, columns split over threads. */
    private void addPartials(float[] partials, int blocks, int width, MemorySegment dWeight) {
        parallel.forRange(width, Math.max(LANES, MIN_CHUNK / Math.max(1, blocks)), (start, end) -> {
            int c = start;
            for (; c <= end - LANES; c += LANES) {
                FloatVector acc = FloatVector.fromMemorySegment(SPECIES, dWeight, c * 4L, ORDER);
                for (int b = 0; b < blocks; b++) {
                    acc = acc.add(FloatVector.fromArray(SPECIES, partials, b * width + c));
                }
                acc.intoMemorySegment(dWeight, c * 4L, ORDER);
            }
            for (; c < end; c++) {
                float acc = dWeight.getAtIndex(F, c);
                for (int b = 0; b < blocks; b++) {
                    acc += partials[b * width + c];
                }
                dWeight.setAtIndex(F, c, acc);
            }
        });
    }

    private static int rowsPerChunk(int width) {
        return Math.max(1, MIN_CHUNK / width);
    }
}
