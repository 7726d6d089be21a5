package io.microdit.backend.cpu;

import io.microdit.backend.Checks;
import io.microdit.backend.FlopCounter;
import io.microdit.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Softmax over the last dimension, one row per task range.
 *
 * <p>Forward: three passes over a row, all vectorised with a scalar tail: the row maximum, then
 * {@code e = exp(x - max)} written straight into the output while summing, then a scale by {@code 1/sum}.
 * Subtracting the maximum keeps every exponent ≤ 0, so nothing overflows and the largest term is exactly 1.
 * Backward: {@code dx = y · (dOut - Σ dOut·y)}, two passes (the dot product, then the fused update).
 * The exponential is our own (Cephes' expf: range reduction by ln 2, a degree-6 polynomial, about 1 ulp),
 * built from IEEE adds, multiplies and fused multiply-adds only, and lane sums are added in lane order rather
 * than by {@code reduceLanes}: the intrinsic and interpreted forms of the Vector API's EXP and ADD reduction may
 * round differently, and a step must give the same bits whether or not its kernel is JIT-compiled yet. The
 * scalar tail computes the same function, and every row is computed by one thread in a fixed order, so results
 * depend neither on the thread count nor on an element's position in the row. Both kernels may run in place
 * (out = x, dx = dOut): each element is read before it is written.
 * Cost: about 5 FLOPs per element forward (max, subtract, exp, add, scale) and 4 backward.
 */
final class CpuSoftmax {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final int LANES = SPECIES.length();
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT;
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();
    /** Elements per task at least: a row of a few experts is too little work to hand to another thread alone. */
    private static final int MIN_ELEMENTS_PER_TASK = 1 << 13;

    private static final float LOG2E = 1.44269504088896341f;
    /** ln 2 split so that n·LN2_HIGH is exact for every n the reduction produces. */
    private static final float LN2_HIGH = 0.693359375f;
    private static final float LN2_LOW = -2.12194440e-4f;
    /** ln(Float.MIN_NORMAL): below it exp underflows and is taken as 0. */
    private static final float UNDERFLOW = -87.33654475f;
    /** 1.5·2²³: adding it rounds to an integer, which then sits in the low mantissa bits. */
    private static final float ROUNDER = 12582912f;
    private static final int ROUNDER_BITS = 0x4B400000;
    private static final float P0 = 1.9875691500e-4f;
    private static final float P1 = 1.3981999507e-3f;
    private static final float P2 = 8.3334519073e-3f;
    private static final float P3 = 4.1665795894e-2f;
    private static final float P4 = 1.6666665459e-1f;
    private static final float P5 = 5.0000001201e-1f;

    private final Parallel parallel;
    private final FlopCounter flops;

    CpuSoftmax(Parallel parallel, FlopCounter flops) {
        this.parallel = parallel;
        this.flops = flops;
    }

    void softmax(Tensor x, Tensor out) {
        String op = "softmax";
        Checks.sameShapeF32(op, "x", x, "out", out);
        Checks.argument(x.rank() >= 1, op, "x must have rank 1 or more, got " + x.describe());
        int width = x.dim(-1);
        int rows = Math.toIntExact(x.rowCount());
        if (width == 0 || rows == 0) {
            return;
        }
        MemorySegment xs = x.segment(), os = out.segment();
        parallel.forRange(rows, minRows(width), (start, end) -> {
            for (int row = start; row < end; row++) {
                softmaxRow(xs, os, (long) row * width, width);
            }
        });
        flops.add(op, 5L * x.numel());
    }

    void softmaxBackward(Tensor dOut, Tensor y, Tensor dx) {
        String op = "softmaxBackward";
        Checks.sameShapeF32(op, "y", y, "dOut", dOut);
        Checks.sameShapeF32(op, "y", y, "dx", dx);
        Checks.argument(y.rank() >= 1, op, "y must have rank 1 or more, got " + y.describe());
        int width = y.dim(-1);
        int rows = Math.toIntExact(y.rowCount());
        if (width == 0 || rows == 0) {
            return;
        }
        MemorySegment gs = dOut.segment(), ys = y.segment(), ds = dx.segment();
        parallel.forRange(rows, minRows(width), (start, end) -> {
            for (int row = start; row < end; row++) {
                softmaxBackwardRow(gs, ys, ds, (long) row * width, width);
            }
        });
        flops.add(op, 4L * y.numel());
    }

    private static int minRows(int width) {
        return Math.max(1, MIN_ELEMENTS_PER_TASK / width);
    }

    private static void softmaxRow(MemorySegment xs, MemorySegment os, long base, int width) {
        int vectorEnd = SPECIES.loopBound(width);
        float max = Float.NEGATIVE_INFINITY;
        int i = 0;
        if (vectorEnd > 0) {
            FloatVector maxVector = FloatVector.broadcast(SPECIES, Float.NEGATIVE_INFINITY);
            for (; i < vectorEnd; i += LANES) {
                maxVector = maxVector.max(load(xs, base + i));
            }
            max = maxVector.reduceLanes(VectorOperators.MAX);
        }
        for (; i < width; i++) {
            max = Math.max(max, xs.getAtIndex(FLOAT, base + i));
        }

        float sum = 0f;
        i = 0;
        if (vectorEnd > 0) {
            FloatVector maxVector = FloatVector.broadcast(SPECIES, max);
            FloatVector sumVector = FloatVector.zero(SPECIES);
            for (; i < vectorEnd; i += LANES) {
                FloatVector e = expNonPositive(load(xs, base + i).sub(maxVector));
                e.intoMemorySegment(os, (base + i) * Float.BYTES, ORDER);
                sumVector = sumVector.add(e);
            }
            sum = sumLanes(sumVector);
        }
        for (; i < width; i++) {
            float e = expNonPositive(xs.getAtIndex(FLOAT, base + i) - max);
            os.setAtIndex(FLOAT, base + i, e);
            sum += e;
        }

        float inverse = 1f / sum;
        i = 0;
        for (; i < vectorEnd; i += LANES) {
            load(os, base + i).mul(inverse).intoMemorySegment(os, (base + i) * Float.BYTES, ORDER);
        }
        for (; i < width; i++) {
            os.setAtIndex(FLOAT, base + i, os.getAtIndex(FLOAT, base + i) * inverse);
        }
    }

    private static void softmaxBackwardRow(MemorySegment gs, MemorySegment ys, MemorySegment ds, long base,
                                           int width) {
        int vectorEnd = SPECIES.loopBound(width);
        float dot = 0f;
        int i = 0;
        if (vectorEnd > 0) {
            FloatVector dotVector = FloatVector.zero(SPECIES);
            for (; i < vectorEnd; i += LANES) {
                dotVector = load(gs, base + i).fma(load(ys, base + i), dotVector);
            }
            dot = sumLanes(dotVector);
        }
        for (; i < width; i++) {
            dot = Math.fma(gs.getAtIndex(FLOAT, base + i), ys.getAtIndex(FLOAT, base + i), dot);
        }

        i = 0;
        for (; i < vectorEnd; i += LANES) {
            load(gs, base + i).sub(dot).mul(load(ys, base + i))
                    .intoMemorySegment(ds, (base + i) * Float.BYTES, ORDER);
        }
        for (; i < width; i++) {
            ds.setAtIndex(FLOAT, base + i, (gs.getAtIndex(FLOAT, base + i) - dot) * ys.getAtIndex(FLOAT, base + i));
        }
    }

    /** The lanes' sum, added in lane order (reproducible, unlike {@code reduceLanes(ADD)}). */
    static float sumLanes(FloatVector v) {
        float sum = 0f;
        for (int lane = 0; lane < LANES; lane++) {
            sum += v.lane(lane);
        }
        return sum;
    }

    /**
     * exp(x) for x ≤ 0 (the domain after subtracting the row maximum); 0 below ln(Float.MIN_NORMAL), NaN for NaN.
     * x = n·ln2 + r with |r| ≤ ln2/2, n rounded to nearest by the 1.5·2²³ trick; exp(r) by Cephes' polynomial;
     * 2ⁿ assembled in the exponent bits.
     */
    static FloatVector expNonPositive(FloatVector x) {
        FloatVector clamped = x.max(UNDERFLOW);
        FloatVector shifted = clamped.fma(LOG2E, ROUNDER);
        FloatVector n = shifted.sub(ROUNDER);
        FloatVector r = n.fma(FloatVector.broadcast(SPECIES, -LN2_HIGH), clamped);
        r = n.fma(FloatVector.broadcast(SPECIES, -LN2_LOW), r);
        FloatVector p = r.fma(P0, P1);
        p = p.fma(r, FloatVector.broadcast(SPECIES, P2));
        p = p.fma(r, FloatVector.broadcast(SPECIES, P3));
        p = p.fma(r, FloatVector.broadcast(SPECIES, P4));
        p = p.fma(r, FloatVector.broadcast(SPECIES, P5));
        FloatVector expR = p.fma(r.mul(r), r.add(1f));
        FloatVector twoToN = ((IntVector) shifted.reinterpretAsInts()).sub(ROUNDER_BITS - 127)
                .lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
        return expR.mul(twoToN).blend(0f, x.lt(UNDERFLOW));
    }

    /** The scalar twin of {@link #expNonPositive(FloatVector)}: bit-identical per element. */
    static float expNonPositive(float x) {
        if (x < UNDERFLOW) {
            return 0f;
        }
        float shifted = Math.fma(x, LOG2E, ROUNDER);
        float n = shifted - ROUNDER;
        float r = Math.fma(n, -LN2_HIGH, x);
        r = Math.fma(n, -LN2_LOW, r);
        float p = Math.fma(r, P0, P1);
        p = Math.fma(p, r, P2);
        p = Math.fma(p, r, P3);
        p = Math.fma(p, r, P4);
        p = Math.fma(p, r, P5);
        float expR = Math.fma(p, r * r, r + 1f);
        float twoToN = Float.intBitsToFloat((Float.floatToRawIntBits(shifted) - (ROUNDER_BITS - 127)) << 23);
        return expR * twoToN;
    }

    private static FloatVector load(MemorySegment segment, long index) {
        return FloatVector.fromMemorySegment(SPECIES, segment, index * Float.BYTES, ORDER);
    }
}
