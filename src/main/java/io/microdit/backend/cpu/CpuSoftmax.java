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

    private final Parallel parallel;
    private final FlopCounter flops;

    CpuSoftmax(Parallel parallel, FlopCounter flops) {
        this.parallel = parallel;
        this.flops = flops;
    }

    void softmax(Tensor x, Tensor out) {
        String op = "softmax";
        Checks.softmax(x, out);
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
        Checks.softmaxBackward(dOut, y, dx);
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
                FloatVector e = VectorMath.exp(load(xs, base + i).sub(maxVector));
                e.intoMemorySegment(os, (base + i) * Float.BYTES, ORDER);
                sumVector = sumVector.add(e);
            }
            sum = VectorMath.sumLanes(sumVector);
        }
        for (; i < width; i++) {
            float e = VectorMath.exp(xs.getAtIndex(FLOAT, base + i) - max);
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
            dot = VectorMath.sumLanes(dotVector);
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

    private static FloatVector load(MemorySegment segment, long index) {
        return FloatVector.fromMemorySegment(SPECIES, segment, index * Float.BYTES, ORDER);
    }
}
