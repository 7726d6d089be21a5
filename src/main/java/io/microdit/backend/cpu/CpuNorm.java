package io.microdit.backend.cpu;

import io.microdit.backend.AttentionChecks;
import io.microdit.backend.Checks;
import io.microdit.backend.FlopCounter;
import io.microdit.backend.NormChecks;
import io.microdit.tensor.DType;
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
 *
 * <p>layerNormModulate fuses the adaLN modulation {@code y·(1 + scale) + shift} into the forward's last pass and
 * its backward into the backward's passes, so the normalised rows are neither written nor kept; the results round
 * exactly as layerNorm followed by modulate, except the per-sample and weight sums, which are summed in a
 * different (still fixed) order.
 *
 * <p>Both forwards may write a BF16 output (for an output only bf16 matrix products read): the same F32 results,
 * each rounded as {@link DType#floatToBf16} rounds, so bit for bit the F32 op followed by convert. layerNorm's x may
 * be BF16 (QK-norm of bf16 q and k), forward and backward: loaded as its exact floats, so every result is that for
 * x's F32 upcast, bit for bit; statistics and gradients stay F32.
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
        int width = NormChecks.layerNorm(x, weight, eps, out, mean, rstd);
        forward(x, null, weight, null, null, 1, width, eps, out, mean, rstd, null);
        flops.add(op, (weight == null ? 7L : 8L) * x.numel());
    }

    /**
     * layerNorm of the kept rows x[n, ids[n, r], :] into out[n, r, :] (see Backend#gatherLayerNorm): the same row
     * loop with x's row looked up, so bit for bit gatherRows followed by layerNorm, without the gathered copy.
     */
    void gatherLayerNorm(Tensor x, Tensor ids, Tensor weight, float eps, Tensor out, Tensor mean, Tensor rstd) {
        String op = "gatherLayerNorm";
        int[] s = NormChecks.gatherLayerNorm(x, ids, weight, eps, out, mean, rstd);
        int[] xRows = CpuTokens.sourceRows(op, ids, s[1]);
        forward(x, xRows, weight, null, null, 1, s[3], eps, out, mean, rstd, null);
        flops.add(op, (weight == null ? 7L : 8L) * out.numel());
    }

    void layerNormModulate(Tensor x, Tensor weight, Tensor shift, Tensor scale, float eps, Tensor out, Tensor mean,
                           Tensor rstd) {
        String op = "layerNormModulate";
        int[] s = NormChecks.layerNormModulate(x, weight, shift, scale, eps, out, mean, rstd);
        forward(x, null, weight, shift.segment(), scale.segment(), s[1], s[2], eps, out, mean, rstd, null);
        flops.add(op, (weight == null ? 10L : 11L) * x.numel());
    }

    /** The statistics of a non-affine LayerNorm and the rows' two offsets (see Backend#layerNormStatistics). */
    void layerNormStatistics(Tensor x, float eps, Tensor mean, Tensor rstd, Tensor center) {
        AttentionChecks.layerNormStatistics(x, eps, mean, rstd, center);
        forward(x, null, null, null, null, 1, x.dim(-1), eps, null, mean, rstd, center.segment());
        flops.add("layerNormStatistics", 4L * x.numel());
    }

    /**
     * x normalised from its {@link #layerNormStatistics} into out (F32, or BF16 rounded as convert rounds), the
     * arithmetic of layerNorm's output: bit for bit layerNorm's out for the same x. Counts its 3 FLOPs per element
     * under {@code op} when not null (a forward; a backward's renormalisation is not model work).
     */
    void normalize(Tensor x, Tensor center, Tensor rstd, Tensor out, String op) {
        int rows = Math.toIntExact(x.rowCount()), width = x.dim(-1);
        MemorySegment xs = x.segment(), cs = center.segment(), rs = rstd.segment(), os = out.segment();
        boolean bf16In = x.dtype() == DType.BF16, bf16 = out.dtype() == DType.BF16;
        parallel.forRange(rows, rowsPerChunk(width), (start, end) -> {
            for (int r = start; r < end; r++) {
                normalizeRow(xs, bf16In, (long) r * width, os, bf16, (long) r * width * 4, width,
                        cs.getAtIndex(F, 2L * r), cs.getAtIndex(F, 2L * r + 1), rs.getAtIndex(F, r), null, null,
                        null, 0);
            }
        });
        if (op != null) {
            flops.add(op, 3L * x.numel());
        }
    }

    /**
     * LayerNorm, then adaLN modulation by sample ({@code shift} null: none); {@code tokens} rows per sample. out
     * null: the statistics alone; center (may be null) gets each row's m0 and correction. xRows (null: row r
     * itself) names x's row for each row r of out and the statistics.
     */
    private void forward(Tensor x, int[] xRows, Tensor weight, MemorySegment shift, MemorySegment scale, int tokens,
                         int width, float eps, Tensor out, Tensor mean, Tensor rstd, MemorySegment center) {
        int rows = xRows == null ? Math.toIntExact(x.rowCount()) : xRows.length;
        MemorySegment xs = x.segment(), os = out == null ? null : out.segment(), ms = mean.segment(),
                rs = rstd.segment();
        float[] w = weight == null ? null : weight.toFloatArray();
        boolean bf16In = x.dtype() == DType.BF16, bf16 = out != null && out.dtype() == DType.BF16;
        parallel.forRange(rows, rowsPerChunk(width), (start, end) -> {
            for (int r = start; r < end; r++) {
                long base = (long) r * width * 4, first = (long) (xRows == null ? r : xRows[r]) * width;
                float m0 = sum(xs, first, bf16In, width) / width;
                FloatVector s1 = FloatVector.zero(SPECIES), s2 = FloatVector.zero(SPECIES);
                int c = 0;
                for (; c <= width - LANES; c += LANES) {
                    FloatVector d = VectorMath.load(xs, first + c, bf16In).sub(m0);
                    s1 = s1.add(d);
                    s2 = d.fma(d, s2);
                }
                double shiftedSum = VectorMath.sumLanes(s1), squares = VectorMath.sumLanes(s2);
                for (; c < width; c++) {
                    double d = VectorMath.loadOne(xs, first + c, bf16In) - m0;
                    shiftedSum += d;
                    squares += d * d;
                }
                double correction = shiftedSum / width;
                double variance = Math.max(0, squares / width - correction * correction);
                float rowRstd = (float) (1 / Math.sqrt(variance + eps));
                ms.setAtIndex(F, r, (float) (m0 + correction));
                rs.setAtIndex(F, r, rowRstd);
                if (center != null) {
                    center.setAtIndex(F, 2L * r, m0);
                    center.setAtIndex(F, 2L * r + 1, (float) correction);
                }
                if (os == null) {
                    continue;
                }
                normalizeRow(xs, bf16In, first, os, bf16, base, width, m0, (float) correction, rowRstd, w, shift, scale,
                        (long) (r / tokens) * width * 4);
            }
        });
    }

    /** The sum of the row of {@code width} elements from element {@code first}. */
    private static float sum(MemorySegment xs, long first, boolean bf16In, int width) {
        FloatVector acc = FloatVector.zero(SPECIES);
        int c = 0;
        for (; c <= width - LANES; c += LANES) {
            acc = acc.add(VectorMath.load(xs, first + c, bf16In));
        }
        float total = VectorMath.sumLanes(acc);
        for (; c < width; c++) {
            total += VectorMath.loadOne(xs, first + c, bf16In);
        }
        return total;
    }

    /**
     * Centres with the rough mean and its small correction separately: x − m0 is exact for x near m0, so the
     * centred values keep full float precision even when the mean itself cannot be represented that finely.
     * With {@code shift} the result is modulated, {@code y·(1 + scale) + shift} at {@code sampleBase}, rounded
     * as the separate modulate op rounds it. A {@code bf16} output gets each result rounded as convert rounds it;
     * {@code bf16In}: x is BF16. {@code first} is x's row's first element, {@code base} the output row's byte offset
     * in an F32 tensor.
     */
    private static void normalizeRow(MemorySegment xs, boolean bf16In, long first, MemorySegment os, boolean bf16,
                                     long base,
                                     int width, float m0, float correction, float rowRstd, float[] w,
                                     MemorySegment shift, MemorySegment scale, long sampleBase) {
        int c = 0;
        for (; c <= width - LANES; c += LANES) {
            FloatVector y = VectorMath.load(xs, first + c, bf16In).sub(m0).sub(correction).mul(rowRstd);
            if (w != null) {
                y = y.mul(FloatVector.fromArray(SPECIES, w, c));
            }
            if (shift != null) {
                y = y.fma(FloatVector.fromMemorySegment(SPECIES, scale, sampleBase + c * 4L, ORDER).add(1f),
                        FloatVector.fromMemorySegment(SPECIES, shift, sampleBase + c * 4L, ORDER));
            }
            if (bf16) {
                VectorMath.intoBf16(y, os, base / 4 + c);
            } else {
                y.intoMemorySegment(os, base + c * 4L, ORDER);
            }
        }
        for (; c < width; c++) {
            float y = (VectorMath.loadOne(xs, first + c, bf16In) - m0 - correction) * rowRstd;
            if (w != null) {
                y *= w[c];
            }
            if (shift != null) {
                y = Math.fma(y, 1f + scale.get(F, sampleBase + c * 4L), shift.get(F, sampleBase + c * 4L));
            }
            if (bf16) {
                VectorMath.intoBf16(y, os, base / 4 + c);
            } else {
                os.set(F, base + c * 4L, y);
            }
        }
    }

    void layerNormBackward(Tensor dOut, Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dx,
                           Tensor dWeight) {
        layerNormBackward(dOut, x, weight, mean, rstd, dx, dWeight, null, null);
    }

    /**
     * {@link #layerNormBackward}, with {@code addend} (F32 of dx's shape, may be dx itself; null: none) added to
     * each element of dx as it is stored: one rounded add, bit for bit the dx written and then added by axpy
     * (axpy's fma(1, a, b) rounds a + b once), without a scratch tensor or a second pass over memory. With
     * {@code copy} (F32 of dx's shape; null: none) each element of dx is stored there too, as a copy of dx after
     * the op would give it (a residual add's other input has the same gradient).
     */
    void layerNormBackward(Tensor dOut, Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dx,
                           Tensor dWeight, Tensor addend, Tensor copy) {
        String op = "layerNormBackward";
        int width = NormChecks.layerNormBackward(dOut, x, weight, mean, rstd, dx, dWeight);
        if (addend != null) {
            Checks.sameShapeF32(op, "addend", addend, "dx", dx);
        }
        if (copy != null) {
            Checks.sameShapeF32(op, "copy", copy, "dx", dx);
        }
        if (Bf16Operands.any(dOut, dx)) {
            Bf16Operands.run(g -> layerNormBackward(g.in(dOut), x, weight, mean, rstd, g.out(dx), dWeight, addend,
                    copy));
            return;
        }
        backward(dOut, x, null, weight, mean, rstd, dx, dWeight, addend, copy);
        flops.add(op, ((weight == null ? 11L : dWeight != null ? 16L : 14L) + (addend == null ? 0 : 1)) * x.numel());
    }

    /**
     * {@link #gatherLayerNorm}'s backward (see Backend#gatherLayerNormBackward): layerNormBackward's row loop with
     * x's row looked up, its dx stored (or, when accumulating, added) into that row of the full-size dx; without
     * accumulate the rows no id names are zeroed. Bit for bit layerNormBackward into a kept-row gradient, then
     * scatterRows of it (and, accumulating, axpy into dx).
     */
    void gatherLayerNormBackward(Tensor dOut, Tensor x, Tensor ids, Tensor weight, Tensor mean, Tensor rstd,
                                 Tensor dx, Tensor dWeight, boolean accumulate) {
        String op = "gatherLayerNormBackward";
        int[] s = NormChecks.gatherLayerNormBackward(dOut, x, ids, weight, mean, rstd, dx, dWeight);
        if (Bf16Operands.any(dOut)) {
            Bf16Operands.run(g -> gatherLayerNormBackward(g.in(dOut), x, ids, weight, mean, rstd, dx, dWeight,
                    accumulate));
            return;
        }
        int samples = s[0], tokens = s[1], width = s[3];
        // Distinct ids, as scatterRows requires: two kept rows writing one row of dx would race.
        int[] keptRowOf = CpuTokens.keptRowOf(op, ids, tokens);
        if (!accumulate) {
            MemorySegment dxs = dx.segment();
            long rowBytes = (long) width * Float.BYTES;
            parallel.forRange(samples * tokens, rowsPerChunk(width), (start, end) -> {
                for (int r = start; r < end; r++) {
                    if (keptRowOf[r] < 0) {
                        dxs.asSlice(r * rowBytes, rowBytes).fill((byte) 0);
                    }
                }
            });
        }
        backward(dOut, x, CpuTokens.sourceRows(op, ids, tokens), weight, mean, rstd, dx, dWeight,
                accumulate ? dx : null, null);
        flops.add(op, ((weight == null ? 11L : dWeight != null ? 16L : 14L) + (accumulate ? 1 : 0)) * dOut.numel());
    }

    /**
     * The LayerNorm backward over the rows of dOut, mean and rstd; xRows (null: row r itself) names the row of x, dx,
     * addend and copy (either may be null) of each.
     */
    private void backward(Tensor dOut, Tensor x, int[] xRows, Tensor weight, Tensor mean, Tensor rstd, Tensor dx,
                          Tensor dWeight, Tensor addend, Tensor copy) {
        int width = x.dim(-1);
        int rows = Math.toIntExact(dOut.rowCount());
        MemorySegment gs = dOut.segment(), xs = x.segment(), ms = mean.segment(), rs = rstd.segment(),
                dxs = dx.segment(), as = addend == null ? null : addend.segment(),
                cs = copy == null ? null : copy.segment();
        float[] w = weight == null ? null : weight.toFloatArray();
        boolean weightGradient = dWeight != null, bf16In = x.dtype() == DType.BF16;
        int rowsPerBlock = Math.max(1, (rows + MAX_ROW_BLOCKS - 1) / MAX_ROW_BLOCKS);
        int blocks = rows == 0 ? 0 : (rows + rowsPerBlock - 1) / rowsPerBlock;
        float[] partials = weightGradient ? new float[blocks * width] : null;
        int blocksPerChunk = Math.max(1, rowsPerChunk(width) / rowsPerBlock);
        parallel.forRange(blocks, blocksPerChunk, (startBlock, endBlock) -> {
            float[] rowScratch = new float[width];
            for (int block = startBlock; block < endBlock; block++) {
                int end = Math.min(rows, (block + 1) * rowsPerBlock);
                for (int r = block * rowsPerBlock; r < end; r++) {
                    long xRow = xRows == null ? r : xRows[r];
                    backwardRow(gs, xs, bf16In, dxs, as, cs, (long) r * width * 4, xRow * width * 4, width,
                            ms.getAtIndex(F, r), rs.getAtIndex(F, r), w, partials, block * width, rowScratch);
                }
            }
        });
        if (weightGradient) {
            addPartials(partials, blocks, width, dWeight.segment());
        }
    }

    /**
     * One row of the backward ({@code bf16In}: x is BF16), dOut's row at byte {@code base}, x's, dx's and addend's
     * at {@code xBase} (bytes of an F32 row). {@code partials} (may be null) receives dOut·x̂ at
     * {@code partialBase}; {@code xHat} is scratch of the row's width, so x̂ is computed once. {@code addend}
     * (may be null) is added to dx as it is stored; the result goes to {@code copy} too (may be null).
     */
    private static void backwardRow(MemorySegment gs, MemorySegment xs, boolean bf16In, MemorySegment dxs,
                                    MemorySegment addend, MemorySegment copy, long base, long xBase, int width,
                                    float rowMean, float rowRstd, float[] w, float[] partials, int partialBase,
                                    float[] xHat) {
        FloatVector sumDy = FloatVector.zero(SPECIES), sumDyXHat = FloatVector.zero(SPECIES);
        int c = 0;
        for (; c <= width - LANES; c += LANES) {
            FloatVector g = FloatVector.fromMemorySegment(SPECIES, gs, base + c * 4L, ORDER);
            FloatVector h = VectorMath.load(xs, xBase / 4 + c, bf16In).sub(rowMean).mul(rowRstd);
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
            float h = (VectorMath.loadOne(xs, xBase / 4 + tail, bf16In) - rowMean) * rowRstd;
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
            FloatVector d = h.fma(negMeanDyXHat, dy.sub(meanDy)).mul(rowRstd);
            storeDx(d, addend, dxs, copy, xBase + c * 4L);
        }
        for (; c < width; c++) {
            float g = gs.get(F, base + c * 4L);
            float dy = w == null ? g : g * w[c];
            storeDx(Math.fma(xHat[c], -meanDyXHat, dy - meanDy) * rowRstd, addend, dxs, copy, xBase + c * 4L);
        }
    }

    /**
     * Stores a vector of dx at byte {@code offset}, plus addend's elements there when addend is not null, and the
     * same into copy when copy is not null.
     */
    private static void storeDx(FloatVector d, MemorySegment addend, MemorySegment dxs, MemorySegment copy,
                                long offset) {
        if (addend != null) {
            d = d.add(FloatVector.fromMemorySegment(SPECIES, addend, offset, ORDER));
        }
        d.intoMemorySegment(dxs, offset, ORDER);
        if (copy != null) {
            d.intoMemorySegment(copy, offset, ORDER);
        }
    }

    /** {@link #storeDx(FloatVector, MemorySegment, MemorySegment, MemorySegment, long)} for one element. */
    private static void storeDx(float d, MemorySegment addend, MemorySegment dxs, MemorySegment copy, long offset) {
        float value = addend == null ? d : d + addend.get(F, offset);
        dxs.set(F, offset, value);
        if (copy != null) {
            copy.set(F, offset, value);
        }
    }

    /**
     * With g = dOut and ŷ = x̂·weight: dShift = Σ_t g, dScale = Σ_t g·ŷ = weight·S with S = Σ_t g·x̂, and the
     * LayerNorm sees dOut' = g·(1 + scale), so dWeight += Σ_n (1 + scale)·S. Blocks of rows never cross a sample;
     * each holds the sample's partial Σg and S over its rows (blocking fixed by the shape alone, as above), summed
     * in block order at the end.
     */
    void layerNormModulateBackward(Tensor dOut, Tensor x, Tensor weight, Tensor scale, Tensor mean, Tensor rstd,
                                   Tensor dx, Tensor dWeight, Tensor dShift, Tensor dScale) {
        layerNormModulateBackward(dOut, x, weight, scale, mean, rstd, dx, dWeight, dShift, dScale, null, null);
    }

    /**
     * {@link #layerNormModulateBackward} with {@code addend} added to dx as it is stored and the result copied to
     * {@code copy}, as in layerNormBackward.
     */
    void layerNormModulateBackward(Tensor dOut, Tensor x, Tensor weight, Tensor scale, Tensor mean, Tensor rstd,
                                   Tensor dx, Tensor dWeight, Tensor dShift, Tensor dScale, Tensor addend,
                                   Tensor copy) {
        String op = "layerNormModulateBackward";
        int[] s = NormChecks.layerNormModulateBackward(dOut, x, weight, scale, mean, rstd, dx, dWeight, dShift, dScale);
        if (addend != null) {
            Checks.sameShapeF32(op, "addend", addend, "dx", dx);
        }
        if (copy != null) {
            Checks.sameShapeF32(op, "copy", copy, "dx", dx);
        }
        if (Bf16Operands.any(dOut)) {
            Bf16Operands.run(g -> layerNormModulateBackward(g.in(dOut), x, weight, scale, mean, rstd, dx, dWeight,
                    dShift, dScale, addend, copy));
            return;
        }
        int samples = s[0], tokens = s[1], width = s[2];
        int rows = Math.toIntExact(x.rowCount());
        MemorySegment gs = dOut.segment(), xs = x.segment(), scs = scale.segment(), ms = mean.segment(),
                rs = rstd.segment(), dxs = dx.segment(), as = addend == null ? null : addend.segment(),
                cs = copy == null ? null : copy.segment();
        float[] w = weight == null ? null : weight.toFloatArray();
        int rowsPerBlock = Math.max(1, (rows + MAX_ROW_BLOCKS - 1) / MAX_ROW_BLOCKS);
        int blocksPerSample = (tokens + rowsPerBlock - 1) / rowsPerBlock;
        int blocks = samples * blocksPerSample;
        float[] partials = new float[blocks * 2 * width]; // per block: Σg over its rows, then Σg·x̂
        int blocksPerChunk = Math.max(1, rowsPerChunk(width) / rowsPerBlock);
        parallel.forRange(blocks, blocksPerChunk, (startBlock, endBlock) -> {
            float[] xHat = new float[width], dy = new float[width];
            for (int block = startBlock; block < endBlock; block++) {
                int sample = block / blocksPerSample, first = block % blocksPerSample * rowsPerBlock;
                int end = Math.min(tokens, first + rowsPerBlock);
                for (int t = first; t < end; t++) {
                    int r = sample * tokens + t;
                    modulatedBackwardRow(gs, xs, dxs, as, cs, (long) r * width * 4, width, ms.getAtIndex(F, r),
                            rs.getAtIndex(F, r), w, scs, (long) sample * width * 4, partials, block * 2 * width,
                            xHat, dy);
                }
            }
        });
        MemorySegment dShs = dShift.segment(), dScs = dScale.segment();
        MemorySegment dWs = dWeight == null ? null : dWeight.segment();
        parallel.forRange(width, Math.max(1, MIN_CHUNK / Math.max(1, blocks)), (start, end) -> {
            for (int c = start; c < end; c++) {
                float weightSum = 0f;
                for (int n = 0; n < samples; n++) {
                    float sumG = 0f, sumGXHat = 0f;
                    for (int b = n * blocksPerSample; b < (n + 1) * blocksPerSample; b++) {
                        sumG += partials[b * 2 * width + c];
                        sumGXHat += partials[b * 2 * width + width + c];
                    }
                    long p = ((long) n * width + c) * 4;
                    dShs.set(F, p, sumG);
                    dScs.set(F, p, w == null ? sumGXHat : sumGXHat * w[c]);
                    weightSum = Math.fma(1f + scs.get(F, p), sumGXHat, weightSum);
                }
                if (dWs != null) {
                    dWs.setAtIndex(F, c, dWs.getAtIndex(F, c) + weightSum);
                }
            }
        });
        flops.add(op, ((weight == null ? 14L : 15L) + (addend == null ? 0 : 1)) * x.numel());
    }

    /**
     * One row of {@link #layerNormModulateBackward}: dOut' = fma(g, scale, g) (rounded as the separate modulate
     * backward rounds it), then {@link #backwardRow}'s dx; adds Σg and g·x̂ into {@code partials} at
     * {@code partialBase} and {@code partialBase + width}. {@code xHat} and {@code dy} are scratch of the row's width;
     * {@code addend} (may be null) is added to dx as it is stored, and the result copied to {@code copy} (may be null).
     */
    private static void modulatedBackwardRow(MemorySegment gs, MemorySegment xs, MemorySegment dxs,
                                             MemorySegment addend, MemorySegment copy, long base,
                                             int width, float rowMean, float rowRstd, float[] w, MemorySegment scs,
                                             long sampleBase, float[] partials, int partialBase, float[] xHat,
                                             float[] dy) {
        FloatVector sumDy = FloatVector.zero(SPECIES), sumDyXHat = FloatVector.zero(SPECIES);
        int shiftBase = partialBase, scaleBase = partialBase + width;
        int c = 0;
        for (; c <= width - LANES; c += LANES) {
            FloatVector g = FloatVector.fromMemorySegment(SPECIES, gs, base + c * 4L, ORDER);
            FloatVector h = FloatVector.fromMemorySegment(SPECIES, xs, base + c * 4L, ORDER).sub(rowMean).mul(rowRstd);
            h.intoArray(xHat, c);
            FloatVector.fromArray(SPECIES, partials, shiftBase + c).add(g).intoArray(partials, shiftBase + c);
            g.fma(h, FloatVector.fromArray(SPECIES, partials, scaleBase + c)).intoArray(partials, scaleBase + c);
            FloatVector d = g.fma(FloatVector.fromMemorySegment(SPECIES, scs, sampleBase + c * 4L, ORDER), g);
            if (w != null) {
                d = d.mul(FloatVector.fromArray(SPECIES, w, c));
            }
            d.intoArray(dy, c);
            sumDy = sumDy.add(d);
            sumDyXHat = d.fma(h, sumDyXHat);
        }
        float totalDy = VectorMath.sumLanes(sumDy);
        float totalDyXHat = VectorMath.sumLanes(sumDyXHat);
        for (; c < width; c++) {
            float g = gs.get(F, base + c * 4L);
            float h = (xs.get(F, base + c * 4L) - rowMean) * rowRstd;
            xHat[c] = h;
            partials[shiftBase + c] += g;
            partials[scaleBase + c] = Math.fma(g, h, partials[scaleBase + c]);
            float d = Math.fma(g, scs.get(F, sampleBase + c * 4L), g);
            if (w != null) {
                d *= w[c];
            }
            dy[c] = d;
            totalDy += d;
            totalDyXHat = Math.fma(d, h, totalDyXHat);
        }
        float meanDy = totalDy / width, meanDyXHat = totalDyXHat / width;
        FloatVector negMeanDyXHat = FloatVector.broadcast(SPECIES, -meanDyXHat);
        c = 0;
        for (; c <= width - LANES; c += LANES) {
            FloatVector h = FloatVector.fromArray(SPECIES, xHat, c);
            storeDx(h.fma(negMeanDyXHat, FloatVector.fromArray(SPECIES, dy, c).sub(meanDy)).mul(rowRstd), addend,
                    dxs, copy, base + c * 4L);
        }
        for (; c < width; c++) {
            storeDx(Math.fma(xHat[c], -meanDyXHat, dy[c] - meanDy) * rowRstd, addend, dxs, copy, base + c * 4L);
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
