package io.microdit.backend.cpu;

import io.microdit.backend.Checks;
import io.microdit.backend.FlopCounter;
import io.microdit.tensor.DType;
import io.microdit.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * Elementwise ops, the adaLN modulation and gated residual, column slices and dtype conversion. Every kernel is
 * one memory-bound pass: Vector API lanes (SPECIES_PREFERRED) with a scalar tail, split over threads in
 * contiguous element or row ranges (small tensors run inline). Broadcasting ({@code b} a suffix of {@code a})
 * walks each range in pieces that stay inside one copy of {@code b}, so the inner loop is always contiguous.
 * The backward reductions over tokens (dShift, dScale, dGate) are split by (sample, column block) instead of
 * rows, so every output element is summed by one thread in token order: deterministic, no atomics.
 * add's b and the gated residual's f may be BF16 (outputs of bf16 linear layers), loaded as their exact floats, so
 * the results are those for their F32 upcast, bit for bit.
 * FLOPs count the arithmetic per element (a multiply-add is 2); pure data movement counts none.
 */
final class CpuElementwise {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final int LANES = SPECIES.length();
    private static final VectorSpecies<Integer> INT_SPECIES =
            VectorSpecies.of(int.class, VectorShape.forBitSize(SPECIES.vectorBitSize()));
    /** Same lane count as {@link #INT_SPECIES}: one bf16 per float. */
    private static final VectorSpecies<Short> SHORT_SPECIES =
            VectorSpecies.of(short.class, VectorShape.forBitSize(SPECIES.vectorBitSize() / 2));
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT;
    private static final ValueLayout.OfShort S = ValueLayout.JAVA_SHORT;
    /** Elements per thread below which splitting costs more than it saves. */
    private static final int MIN_CHUNK = 1 << 14;
    /** Columns per task of the token reductions: a multiple of every vector width, small enough to stay in L1. */
    private static final int COLUMN_BLOCK = 256;

    private final Parallel parallel;
    private final FlopCounter flops;

    CpuElementwise(Parallel parallel, FlopCounter flops) {
        this.parallel = parallel;
        this.flops = flops;
    }

    void add(Tensor a, Tensor b, Tensor out) {
        broadcast("add", a, b, out, false);
    }

    void mul(Tensor a, Tensor b, Tensor out) {
        broadcast("mul", a, b, out, true);
    }

    /** add's b may be BF16, read as its exact floats (the F32 upcast's result, bit for bit); mul's is F32. */
    private void broadcast(String op, Tensor a, Tensor b, Tensor out, boolean multiply) {
        if (multiply) {
            Checks.broadcast(op, a, b, out);
        } else {
            Checks.add(a, b, out);
        }
        boolean bf16B = b.dtype() == DType.BF16;
        int n = Math.toIntExact(a.numel());
        int inner = Math.toIntExact(b.numel());
        if (n == 0) {
            return;
        }
        MemorySegment as = a.segment(), bs = b.segment(), os = out.segment();
        parallel.forRange(n, MIN_CHUNK, (start, end) -> {
            int i = start;
            while (i < end) {
                int offsetInB = i % inner;
                int length = Math.min(end - i, inner - offsetInB);
                long aBase = (long) i * 4;
                int j = 0;
                for (; j <= length - LANES; j += LANES) {
                    FloatVector va = FloatVector.fromMemorySegment(SPECIES, as, aBase + j * 4L, ORDER);
                    FloatVector vb = VectorMath.load(bs, offsetInB + j, bf16B);
                    (multiply ? va.mul(vb) : va.add(vb)).intoMemorySegment(os, aBase + j * 4L, ORDER);
                }
                for (; j < length; j++) {
                    float x = as.getAtIndex(F, i + j), y = VectorMath.loadOne(bs, offsetInB + j, bf16B);
                    os.setAtIndex(F, i + j, multiply ? x * y : x + y);
                }
                i += length;
            }
        });
        flops.add(op, n);
    }

    void scale(Tensor x, float alpha, Tensor out) {
        Checks.sameShapeF32("scale", "x", x, "out", out);
        MemorySegment xs = x.segment(), os = out.segment();
        parallel.forRange(Math.toIntExact(x.numel()), MIN_CHUNK, (start, end) -> {
            int i = start;
            for (; i <= end - LANES; i += LANES) {
                FloatVector.fromMemorySegment(SPECIES, xs, i * 4L, ORDER).mul(alpha)
                        .intoMemorySegment(os, i * 4L, ORDER);
            }
            for (; i < end; i++) {
                os.setAtIndex(F, i, alpha * xs.getAtIndex(F, i));
            }
        });
        flops.add("scale", x.numel());
    }

    void axpy(float alpha, Tensor x, Tensor y) {
        Checks.sameShapeF32("axpy", "x", x, "y", y);
        MemorySegment xs = x.segment(), ys = y.segment();
        FloatVector vAlpha = FloatVector.broadcast(SPECIES, alpha);
        parallel.forRange(Math.toIntExact(x.numel()), MIN_CHUNK, (start, end) -> {
            int i = start;
            for (; i <= end - LANES; i += LANES) {
                FloatVector vy = FloatVector.fromMemorySegment(SPECIES, ys, i * 4L, ORDER);
                FloatVector.fromMemorySegment(SPECIES, xs, i * 4L, ORDER).fma(vAlpha, vy)
                        .intoMemorySegment(ys, i * 4L, ORDER);
            }
            for (; i < end; i++) {
                ys.setAtIndex(F, i, Math.fma(alpha, xs.getAtIndex(F, i), ys.getAtIndex(F, i)));
            }
        });
        flops.add("axpy", 2 * x.numel());
    }

    void modulate(Tensor x, Tensor shift, Tensor scale, Tensor out) {
        String op = "modulate";
        int[] s = Checks.modulate(x, shift, scale, out);
        int samples = s[0], tokens = s[1], width = s[2];
        MemorySegment xs = x.segment(), shs = shift.segment(), scs = scale.segment(), os = out.segment();
        parallel.forRange(samples * tokens, rowsPerChunk(width), (start, end) -> {
            for (int row = start; row < end; row++) {
                long rowBase = (long) row * width * 4, sampleBase = (long) (row / tokens) * width * 4;
                int c = 0;
                for (; c <= width - LANES; c += LANES) {
                    FloatVector vx = FloatVector.fromMemorySegment(SPECIES, xs, rowBase + c * 4L, ORDER);
                    FloatVector vScale = FloatVector.fromMemorySegment(SPECIES, scs, sampleBase + c * 4L, ORDER);
                    FloatVector vShift = FloatVector.fromMemorySegment(SPECIES, shs, sampleBase + c * 4L, ORDER);
                    vx.fma(vScale.add(1f), vShift).intoMemorySegment(os, rowBase + c * 4L, ORDER);
                }
                for (; c < width; c++) {
                    float xv = xs.get(F, rowBase + c * 4L);
                    float sc = scs.get(F, sampleBase + c * 4L), sh = shs.get(F, sampleBase + c * 4L);
                    os.set(F, rowBase + c * 4L, Math.fma(xv, 1f + sc, sh));
                }
            }
        });
        flops.add(op, 3 * x.numel());
    }

    void modulateBackward(Tensor dOut, Tensor x, Tensor scale, Tensor dx, Tensor dShift, Tensor dScale) {
        String op = "modulateBackward";
        int[] s = Checks.modulateBackward(dOut, x, scale, dx, dShift, dScale);
        int samples = s[0], tokens = s[1], width = s[2];
        MemorySegment gs = dOut.segment(), xs = x.segment(), scs = scale.segment(), dxs = dx.segment(),
                dShs = dShift.segment(), dScs = dScale.segment();
        int blocks = (width + COLUMN_BLOCK - 1) / COLUMN_BLOCK;
        parallel.forRange(samples * blocks, blocksPerChunk(tokens), (start, end) -> {
            for (int task = start; task < end; task++) {
                int sample = task / blocks, c0 = task % blocks * COLUMN_BLOCK;
                int c1 = Math.min(width, c0 + COLUMN_BLOCK);
                long sampleBase = (long) sample * width * 4;
                dShs.asSlice(sampleBase + c0 * 4L, (c1 - c0) * 4L).fill((byte) 0);
                dScs.asSlice(sampleBase + c0 * 4L, (c1 - c0) * 4L).fill((byte) 0);
                for (int t = 0; t < tokens; t++) {
                    long rowBase = ((long) sample * tokens + t) * width * 4;
                    int c = c0;
                    for (; c <= c1 - LANES; c += LANES) {
                        long rowOffset = rowBase + c * 4L, sampleOffset = sampleBase + c * 4L;
                        FloatVector g = FloatVector.fromMemorySegment(SPECIES, gs, rowOffset, ORDER);
                        FloatVector vx = FloatVector.fromMemorySegment(SPECIES, xs, rowOffset, ORDER);
                        FloatVector vScale = FloatVector.fromMemorySegment(SPECIES, scs, sampleOffset, ORDER);
                        g.fma(vScale, g).intoMemorySegment(dxs, rowOffset, ORDER);
                        FloatVector.fromMemorySegment(SPECIES, dShs, sampleOffset, ORDER).add(g)
                                .intoMemorySegment(dShs, sampleOffset, ORDER);
                        g.fma(vx, FloatVector.fromMemorySegment(SPECIES, dScs, sampleOffset, ORDER))
                                .intoMemorySegment(dScs, sampleOffset, ORDER);
                    }
                    for (; c < c1; c++) {
                        long rowOffset = rowBase + c * 4L, sampleOffset = sampleBase + c * 4L;
                        float g = gs.get(F, rowOffset);
                        dxs.set(F, rowOffset, Math.fma(g, scs.get(F, sampleOffset), g));
                        dShs.set(F, sampleOffset, dShs.get(F, sampleOffset) + g);
                        dScs.set(F, sampleOffset, Math.fma(g, xs.get(F, rowOffset), dScs.get(F, sampleOffset)));
                    }
                }
            }
        });
        flops.add(op, 5 * x.numel());
    }

    void gatedResidual(Tensor x, Tensor gate, Tensor f, Tensor out) {
        String op = "gatedResidual";
        int[] s = Checks.gatedResidual(x, gate, f, out);
        int samples = s[0], tokens = s[1], width = s[2];
        MemorySegment xs = x.segment(), gates = gate.segment(), fs = f.segment(), os = out.segment();
        boolean bf16F = f.dtype() == DType.BF16;
        parallel.forRange(samples * tokens, rowsPerChunk(width), (start, end) -> {
            for (int row = start; row < end; row++) {
                long rowBase = (long) row * width * 4, sampleBase = (long) (row / tokens) * width * 4;
                int c = 0;
                for (; c <= width - LANES; c += LANES) {
                    FloatVector vf = VectorMath.load(fs, rowBase / 4 + c, bf16F);
                    FloatVector vGate = FloatVector.fromMemorySegment(SPECIES, gates, sampleBase + c * 4L, ORDER);
                    FloatVector vx = FloatVector.fromMemorySegment(SPECIES, xs, rowBase + c * 4L, ORDER);
                    vf.fma(vGate, vx).intoMemorySegment(os, rowBase + c * 4L, ORDER);
                }
                for (; c < width; c++) {
                    os.set(F, rowBase + c * 4L, Math.fma(VectorMath.loadOne(fs, rowBase / 4 + c, bf16F),
                            gates.get(F, sampleBase + c * 4L), xs.get(F, rowBase + c * 4L)));
                }
            }
        });
        flops.add(op, 2 * x.numel());
    }

    void gatedResidualBackward(Tensor dOut, Tensor gate, Tensor f, Tensor dGate, Tensor dF) {
        String op = "gatedResidualBackward";
        int[] s = Checks.gatedResidualBackward(dOut, gate, f, dGate, dF);
        if (Bf16Operands.any(dF)) {
            Bf16Operands.run(g -> gatedResidualBackward(dOut, gate, f, dGate, g.out(dF)));
            return;
        }
        int samples = s[0], tokens = s[1], width = s[2];
        MemorySegment gs = dOut.segment(), gates = gate.segment(), fs = f.segment(), dGates = dGate.segment(),
                dFs = dF.segment();
        boolean bf16F = f.dtype() == DType.BF16;
        int blocks = (width + COLUMN_BLOCK - 1) / COLUMN_BLOCK;
        parallel.forRange(samples * blocks, blocksPerChunk(tokens), (start, end) -> {
            for (int task = start; task < end; task++) {
                int sample = task / blocks, c0 = task % blocks * COLUMN_BLOCK;
                int c1 = Math.min(width, c0 + COLUMN_BLOCK);
                long sampleBase = (long) sample * width * 4;
                dGates.asSlice(sampleBase + c0 * 4L, (c1 - c0) * 4L).fill((byte) 0);
                for (int t = 0; t < tokens; t++) {
                    long rowBase = ((long) sample * tokens + t) * width * 4;
                    int c = c0;
                    for (; c <= c1 - LANES; c += LANES) {
                        long rowOffset = rowBase + c * 4L, sampleOffset = sampleBase + c * 4L;
                        FloatVector g = FloatVector.fromMemorySegment(SPECIES, gs, rowOffset, ORDER);
                        FloatVector vf = VectorMath.load(fs, rowOffset / 4, bf16F);
                        FloatVector vGate = FloatVector.fromMemorySegment(SPECIES, gates, sampleOffset, ORDER);
                        g.mul(vGate).intoMemorySegment(dFs, rowOffset, ORDER);
                        g.fma(vf, FloatVector.fromMemorySegment(SPECIES, dGates, sampleOffset, ORDER))
                                .intoMemorySegment(dGates, sampleOffset, ORDER);
                    }
                    for (; c < c1; c++) {
                        long rowOffset = rowBase + c * 4L, sampleOffset = sampleBase + c * 4L;
                        float g = gs.get(F, rowOffset);
                        dFs.set(F, rowOffset, g * gates.get(F, sampleOffset));
                        dGates.set(F, sampleOffset,
                                Math.fma(g, VectorMath.loadOne(fs, rowOffset / 4, bf16F), dGates.get(F, sampleOffset)));
                    }
                }
            }
        });
        flops.add(op, 3 * f.numel());
    }

    void sliceColumns(Tensor x, int start, Tensor out) {
        int[] s = Checks.sliceColumns(x, start, out);
        int rows = s[0], columns = s[1], width = s[2];
        MemorySegment xs = x.segment(), os = out.segment();
        parallel.forRange(rows, rowsPerChunk(width), (first, end) -> {
            for (int r = first; r < end; r++) {
                MemorySegment.copy(xs, ((long) r * columns + start) * 4, os, (long) r * width * 4, width * 4L);
            }
        });
    }

    void sliceColumnsBackward(Tensor dOut, int start, Tensor dx) {
        String op = "sliceColumnsBackward";
        int[] s = Checks.sliceColumnsBackward(dOut, start, dx);
        int rows = s[0], columns = s[1], width = s[2];
        MemorySegment gs = dOut.segment(), dxs = dx.segment();
        parallel.forRange(rows, rowsPerChunk(width), (first, end) -> {
            for (int r = first; r < end; r++) {
                long dxBase = ((long) r * columns + start) * 4, gBase = (long) r * width * 4;
                int c = 0;
                for (; c <= width - LANES; c += LANES) {
                    FloatVector.fromMemorySegment(SPECIES, dxs, dxBase + c * 4L, ORDER)
                            .add(FloatVector.fromMemorySegment(SPECIES, gs, gBase + c * 4L, ORDER))
                            .intoMemorySegment(dxs, dxBase + c * 4L, ORDER);
                }
                for (; c < width; c++) {
                    dxs.set(F, dxBase + c * 4L, dxs.get(F, dxBase + c * 4L) + gs.get(F, gBase + c * 4L));
                }
            }
        });
        flops.add(op, dOut.numel());
    }

    /** F32 to BF16 rounds to nearest even exactly as {@link DType#floatToBf16}; BF16 to F32 is exact. */
    void convert(Tensor source, Tensor target) {
        Checks.convert(source, target);
        MemorySegment src = source.segment(), dst = target.segment();
        if (source.dtype() == target.dtype()) {
            MemorySegment.copy(src, 0, dst, 0, source.byteSize());
            return;
        }
        boolean toBf16 = target.dtype() == DType.BF16;
        parallel.forRange(Math.toIntExact(source.numel()), MIN_CHUNK, (start, end) -> {
            if (toBf16) {
                floatsToBf16(src, dst, start, end);
            } else {
                bf16ToFloats(src, dst, start, end);
            }
        });
    }

    private static void floatsToBf16(MemorySegment src, MemorySegment dst, int start, int end) {
        int i = start;
        for (; i <= end - LANES; i += LANES) {
            VectorMath.bitsIntoBf16(IntVector.fromMemorySegment(INT_SPECIES, src, i * 4L, ORDER), dst, i);
        }
        for (; i < end; i++) {
            dst.setAtIndex(S, i, DType.floatToBf16(src.getAtIndex(F, i)));
        }
    }

    private static void bf16ToFloats(MemorySegment src, MemorySegment dst, int start, int end) {
        int i = start;
        for (; i <= end - LANES; i += LANES) {
            ShortVector bf16 = ShortVector.fromMemorySegment(SHORT_SPECIES, src, i * 2L, ORDER);
            IntVector widened = (IntVector) bf16.convertShape(VectorOperators.S2I, INT_SPECIES, 0);
            widened.lanewise(VectorOperators.LSHL, 16).intoMemorySegment(dst, i * 4L, ORDER);
        }
        for (; i < end; i++) {
            dst.setAtIndex(F, i, DType.bf16ToFloat(src.getAtIndex(S, i)));
        }
    }

    private static int rowsPerChunk(int width) {
        return Math.max(1, MIN_CHUNK / Math.max(1, width));
    }

    /** Tasks of COLUMN_BLOCK columns × tokens rows per thread, at least MIN_CHUNK elements of work. */
    private static int blocksPerChunk(int tokens) {
        return Math.max(1, MIN_CHUNK / (COLUMN_BLOCK * Math.max(1, tokens)));
    }
}
