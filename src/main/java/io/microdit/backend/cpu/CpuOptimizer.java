package io.microdit.backend.cpu;

import io.microdit.backend.Checks;
import io.microdit.backend.FlopCounter;
import io.microdit.tensor.DType;
import io.microdit.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * Optimizer-side elementwise passes, vectorised and split over the threads in fixed blocks of elements.
 *
 * <p>sumOfSquares: each float is widened to double before squaring (the square of a float is exact in double),
 * accumulated per block in double lanes; block partials are added serially in block order, so the sum is the
 * same for any thread count. 2 FLOPs per element.
 *
 * <p>adamw follows PyTorch's single-tensor AdamW step in float32 with its scalar constants computed in double:
 * {@code g = grad·gradScale; p *= 1 − lr·wd; m += (1 − β1)(g − m)} (torch's lerp form);
 * {@code v = v·β2 + (1 − β2)·g²; p −= (lr / (1 − β1^t)) · m / (sqrt(v) / sqrt(1 − β2^t) + eps)}. 13 FLOPs per
 * element. emaUpdate is {@code ema = decay·ema + (1 − decay)·param}, 3 FLOPs per element.
 */
final class CpuOptimizer {
    private static final VectorSpecies<Float> FLOATS = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Double> DOUBLES = DoubleVector.SPECIES_PREFERRED;
    /** Floats that widen into exactly one double vector. */
    private static final VectorSpecies<Float> WIDENED_FLOATS = VectorSpecies.of(float.class,
            VectorShape.forBitSize(DOUBLES.vectorBitSize() / 2));
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT;
    /** Elements per block: the unit of parallel work and, for sumOfSquares, of the deterministic combine. */
    private static final int BLOCK = 1 << 15;

    private final Parallel parallel;
    private final FlopCounter flops;

    CpuOptimizer(Parallel parallel, FlopCounter flops) {
        this.parallel = parallel;
        this.flops = flops;
    }

    double sumOfSquares(Tensor x) {
        Checks.dtype("sumOfSquares", "x", x, DType.F32);
        long count = x.numel();
        MemorySegment values = x.segment();
        int blocks = blockCount(count);
        double[] partials = new double[blocks];
        int lanes = WIDENED_FLOATS.length();
        parallel.forRange(blocks, 1, (start, end) -> {
            double[] laneSums = new double[DOUBLES.length()];
            for (int block = start; block < end; block++) {
                long first = (long) block * BLOCK, last = Math.min(count, first + BLOCK);
                long bound = first + (last - first) / lanes * lanes;
                DoubleVector sum = DoubleVector.zero(DOUBLES);
                long i = first;
                for (; i < bound; i += lanes) {
                    DoubleVector wide = (DoubleVector) FloatVector.fromMemorySegment(WIDENED_FLOATS, values,
                            i * Float.BYTES, ORDER).convertShape(VectorOperators.F2D, DOUBLES, 0);
                    sum = wide.fma(wide, sum);
                }
                // Lanes are added in a fixed order: reduceLanes may reassociate.
                sum.intoArray(laneSums, 0);
                double total = 0;
                for (double laneSum : laneSums) {
                    total += laneSum;
                }
                for (; i < last; i++) {
                    double value = values.getAtIndex(FLOAT, i);
                    total += value * value;
                }
                partials[block] = total;
            }
        });
        double total = 0;
        for (double partial : partials) {
            total += partial;
        }
        flops.add("sumOfSquares", 2 * count);
        return total;
    }

    void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, float learningRate, float beta1, float beta2,
               float epsilon, float weightDecay, long step, float gradScale) {
        String op = "adamw";
        Checks.adamw(param, grad, m, v, beta1, beta2, epsilon, step);
        float decay = (float) (1.0 - (double) learningRate * weightDecay);
        float stepSize = (float) (learningRate / (1.0 - Math.pow(beta1, step)));
        float correction2Sqrt = (float) Math.sqrt(1.0 - Math.pow(beta2, step));
        float firstWeight = (float) (1.0 - beta1), secondWeight = (float) (1.0 - beta2);
        long count = param.numel();
        MemorySegment p = param.segment(), g = grad.segment(), first = m.segment(), second = v.segment();
        int lanes = FLOATS.length();
        parallel.forRange(blockCount(count), 1, (start, end) -> {
            long from = (long) start * BLOCK, to = Math.min(count, (long) end * BLOCK);
            long bound = from + (to - from) / lanes * lanes;
            long i = from;
            for (; i < bound; i += lanes) {
                long offset = i * Float.BYTES;
                FloatVector gradient = FloatVector.fromMemorySegment(FLOATS, g, offset, ORDER).mul(gradScale);
                FloatVector moment1 = FloatVector.fromMemorySegment(FLOATS, first, offset, ORDER);
                FloatVector moment2 = FloatVector.fromMemorySegment(FLOATS, second, offset, ORDER);
                moment1 = moment1.add(gradient.sub(moment1).mul(firstWeight));
                moment2 = moment2.mul(beta2).add(gradient.mul(gradient).mul(secondWeight));
                FloatVector denominator = moment2.sqrt().div(correction2Sqrt).add(epsilon);
                FloatVector value = FloatVector.fromMemorySegment(FLOATS, p, offset, ORDER).mul(decay);
                value = value.sub(moment1.div(denominator).mul(stepSize));
                moment1.intoMemorySegment(first, offset, ORDER);
                moment2.intoMemorySegment(second, offset, ORDER);
                value.intoMemorySegment(p, offset, ORDER);
            }
            for (; i < to; i++) {
                float gradient = g.getAtIndex(FLOAT, i) * gradScale;
                float moment1 = first.getAtIndex(FLOAT, i);
                moment1 = moment1 + (gradient - moment1) * firstWeight;
                float moment2 = second.getAtIndex(FLOAT, i) * beta2 + gradient * gradient * secondWeight;
                float denominator = (float) Math.sqrt(moment2) / correction2Sqrt + epsilon;
                float value = p.getAtIndex(FLOAT, i) * decay - moment1 / denominator * stepSize;
                first.setAtIndex(FLOAT, i, moment1);
                second.setAtIndex(FLOAT, i, moment2);
                p.setAtIndex(FLOAT, i, value);
            }
        });
        flops.add(op, 13 * count);
    }

    void emaUpdate(Tensor ema, Tensor param, float decay) {
        String op = "emaUpdate";
        Checks.emaUpdate(ema, param, decay);
        float paramWeight = (float) (1.0 - decay);
        long count = ema.numel();
        MemorySegment average = ema.segment(), current = param.segment();
        int lanes = FLOATS.length();
        parallel.forRange(blockCount(count), 1, (start, end) -> {
            long from = (long) start * BLOCK, to = Math.min(count, (long) end * BLOCK);
            long bound = from + (to - from) / lanes * lanes;
            long i = from;
            for (; i < bound; i += lanes) {
                long offset = i * Float.BYTES;
                FloatVector.fromMemorySegment(FLOATS, average, offset, ORDER).mul(decay)
                        .add(FloatVector.fromMemorySegment(FLOATS, current, offset, ORDER).mul(paramWeight))
                        .intoMemorySegment(average, offset, ORDER);
            }
            for (; i < to; i++) {
                average.setAtIndex(FLOAT, i, average.getAtIndex(FLOAT, i) * decay
                        + current.getAtIndex(FLOAT, i) * paramWeight);
            }
        });
        flops.add(op, 3 * count);
    }

    private static int blockCount(long count) {
        return Math.toIntExact((count + BLOCK - 1) / BLOCK);
    }
}
