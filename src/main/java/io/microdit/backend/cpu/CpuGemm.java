package io.microdit.backend.cpu;

import static io.microdit.backend.cpu.GemmKernel.COLUMNS;
import static io.microdit.backend.cpu.GemmKernel.LANES;
import static io.microdit.backend.cpu.GemmKernel.ROWS;
import static io.microdit.backend.cpu.GemmKernel.SPECIES;

import io.microdit.backend.Checks;
import io.microdit.backend.FlopCounter;
import io.microdit.backend.MatmulShape;
import io.microdit.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;

/**
 * Batched F32 matrix multiply, blocked as in GotoBLAS/BLIS. For each block of {@link #BLOCK_COLUMNS} columns
 * and {@link #BLOCK_DEPTH} steps of k, B's block is packed once (it stays in L2) and, row panel by row panel,
 * A's panel is packed, or its rows copied as they are when A is row-major (it stays in L1), and multiplied by every column panel of the block in
 * {@link GemmKernel}'s register tile. Each tile's result is added to C with vector stores (masked at the right
 * edge): the first k block writes bias (plus C when accumulating), later ones add to C, so C is read and
 * written once per k block; a whole row-major tile with nothing to add is stored by the kernel itself. Threads share out row panels across the batch, or column panels when there are too
 * few rows or when that reads fewer operands ({@link #columnSplitReadsLess}), each packing its own operands, so no
 * thread waits on another. A rank-2 B shared by a batched,
 * untransposed A folds the batch into M. Products too small for packing to pay run a direct loop.
 * Cost: 2·batch·M·N·K FLOPs.
 */
final class CpuGemm {
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT;
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();
    /** Steps of k per packed block: an A panel (ROWS × depth, 24 KiB) stays in L1 while B streams past. */
    static final int BLOCK_DEPTH = 512;
    /** Columns per packed B block: depth × columns floats (1 MiB) stay in L2. */
    static final int BLOCK_COLUMNS = 16 * COLUMNS;
    /** Below this many multiply-adds a direct loop beats packing. */
    private static final long DIRECT_LIMIT = 4096;
    /** Multiply-adds a thread must get before the work is split. */
    private static final long MIN_WORK_PER_THREAD = 1L << 20;

    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);
    /** Per calling thread, B packed once for all threads (see {@link #packShared}). */
    private static final ThreadLocal<float[]> SHARED_B = ThreadLocal.withInitial(() -> new float[0]);

    /** One thread's packing buffers and result tile, reused across calls. */
    private static final class Scratch {
        final float[] panelA = new float[BLOCK_DEPTH * ROWS + LANES];
        final float[] rowsA = new float[ROWS * GemmKernel.STAGED_ROW];
        final float[] blockB = new float[BLOCK_DEPTH * BLOCK_COLUMNS + LANES];
        final float[] tile = new float[ROWS * COLUMNS];
        final float[] staging = new float[BLOCK_DEPTH * COLUMNS];
        float[] bias = new float[0];
    }

    /**
     * Elementwise work on finished elements of C, run by the thread that finished them while they are still in its
     * cache: a GEMM epilogue (GELU, the SwiGLU gate, or their backwards in place). It gets elements [start, end) of
     * out in flat order, once each, in ranges that depend on the blocking, so it must not depend on where a range
     * starts or ends.
     */
    @FunctionalInterface
    interface Epilogue {
        /** Finishes elements [start, end) of out. */
        void finish(int start, int end);
    }

    /** The shapes of one matmul call, after the batch fold. */
    private record Problem(MemorySegment a, boolean transposeA, MemorySegment b, boolean transposeB,
                           MemorySegment bias, MemorySegment out, boolean accumulate, int batch, int m, int n,
                           int k, long strideA, long strideB, Epilogue epilogue) {
    }

    private final Parallel parallel;
    private final FlopCounter flops;

    CpuGemm(Parallel parallel, FlopCounter flops) {
        this.parallel = parallel;
        this.flops = flops;
    }

    void matmul(Tensor a, boolean transposeA, Tensor b, boolean transposeB, Tensor bias, Tensor out,
                boolean accumulate) {
        matmul(a, transposeA, b, transposeB, bias, out, accumulate, null);
    }

    /**
     * {@link #matmul} followed by {@code epilogue} over every element of out (F32 operands only), each row panel's
     * elements as soon as the last depth block has been added to them: the bits of the product then an elementwise
     * pass, without that pass reading out back from memory.
     */
    void matmul(Tensor a, boolean transposeA, Tensor b, boolean transposeB, Tensor bias, Tensor out,
                boolean accumulate, Epilogue epilogue) {
        MatmulShape shape = MatmulShape.of(a, transposeA, b, transposeB, bias, out, accumulate);
        if (epilogue != null && (Bf16Operands.any(a, b, out) || out.numel() > Integer.MAX_VALUE)) {
            throw new IllegalArgumentException("matmul: an epilogue needs F32 operands and out of at most 2^31 - 1 "
                    + "elements, got a " + a.describe() + ", b " + b.describe() + ", out " + out.describe());
        }
        if (Bf16Operands.any(a, out)) {
            // BF16 operands: the exact F32 values of their bf16 numbers, multiplied like F32 ones; a BF16 out is the
            // F32 product rounded once, as the CUDA kernel rounds its f32 epilogue at the store.
            Bf16Operands.run(g -> matmul(g.in(a), transposeA, g.in(b), transposeB, bias, g.out(out), accumulate));
            return;
        }
        int m = shape.m(), n = shape.n(), k = shape.k();
        long batchA = shape.batchA(), batchB = shape.batchB();
        flops.add("matmul", shape.flops());
        if (out.numel() == 0) {
            return;
        }
        int batch = Math.toIntExact(shape.batch());
        long strideA = shape.strideA(), strideB = shape.strideB();
        if (batch > 1 && batchB == 1 && batchA == batch && !transposeA) {
            m = Math.multiplyExact(m, batch); // [batch·M, K] · [K, N]: one tall product instead of many short ones
            batch = 1;
            strideA = 0;
        }
        Problem problem = new Problem(a.segment(), transposeA, b.segment(), transposeB,
                bias == null ? null : bias.segment(), out.segment(), accumulate, batch, m, n, k, strideA, strideB,
                epilogue);
        if ((long) m * n * k <= DIRECT_LIMIT) {
            direct(problem);
            if (epilogue != null) {
                epilogue.finish(0, Math.toIntExact(out.numel()));
            }
        } else {
            blocked(problem);
        }
    }

    /** The textbook triple loop, for products too small to amortise packing; K = 0 (bias or zeros) comes here. */
    private void direct(Problem p) {
        parallel.forRange(Math.toIntExact((long) p.batch() * p.m()), Math.max(1, (int) (MIN_WORK_PER_THREAD / Math.max(1L,
                (long) p.n() * p.k()))), (start, end) -> {
            for (int row = start; row < end; row++) {
                int batchIndex = row / p.m(), i = row % p.m();
                long aBase = batchIndex * p.strideA(), bBase = batchIndex * p.strideB();
                long cBase = (long) row * p.n();
                for (int j = 0; j < p.n(); j++) {
                    float sum = 0f;
                    for (int depth = 0; depth < p.k(); depth++) {
                        float av = p.a().getAtIndex(F, aBase + (p.transposeA()
                                ? (long) depth * p.m() + i : (long) i * p.k() + depth));
                        float bv = p.b().getAtIndex(F, bBase + (p.transposeB()
                                ? (long) j * p.k() + depth : (long) depth * p.n() + j));
                        sum += av * bv;
                    }
                    if (p.bias() != null) {
                        sum += p.bias().getAtIndex(F, j);
                    }
                    if (p.accumulate()) {
                        sum += p.out().getAtIndex(F, cBase + j);
                    }
                    p.out().setAtIndex(F, cBase + j, sum);
                }
            }
        });
    }

    private void blocked(Problem p) {
        int rowPanels = (p.m() + ROWS - 1) / ROWS;
        int columnPanels = (p.n() + COLUMNS - 1) / COLUMNS;
        long rowUnits = (long) p.batch() * rowPanels;
        int threads = parallel.threads();
        int rowChunk = (int) Math.max(1, MIN_WORK_PER_THREAD / ((long) ROWS * p.n() * p.k()));
        boolean fewRows = rowUnits < 2L * threads;
        if (p.n() > COLUMNS && (fewRows || columnSplitReadsLess(p, threads, parallel.pieces(
                Math.toIntExact(rowUnits), rowChunk)))) {
            // Few rows: one contiguous run of column panels per thread, so that each thread packs A once and
            // reuses each of its B blocks for every row panel.
            int minChunk = fewRows
                    ? (int) Math.max(1, MIN_WORK_PER_THREAD / ((long) COLUMNS * p.m() * p.k() * p.batch()))
                    : Math.max(1, columnPanels / threads);
            parallel.forRange(columnPanels, minChunk, (start, end) -> {
                for (int batchIndex = 0; batchIndex < p.batch(); batchIndex++) {
                    block(p, batchIndex, 0, p.m(), start * COLUMNS, Math.min(p.n(), end * COLUMNS), null);
                }
            });
        } else {
            float[] sharedB = threads > 1 && p.batch() == 1 && rowUnits >= 2L * rowChunk ? packShared(p) : null;
            parallel.forRange(Math.toIntExact(rowUnits), rowChunk, (start, end) -> {
                for (int unit = start; unit < end; ) {
                    int batchIndex = unit / rowPanels, firstPanel = unit % rowPanels;
                    int lastPanel = Math.min(rowPanels, firstPanel + end - unit);
                    block(p, batchIndex, firstPanel * ROWS, Math.min(p.m(), lastPanel * ROWS), 0, p.n(), sharedB);
                    unit += lastPanel - firstPanel;
                }
            });
        }
    }

    /**
     * Whether splitting the columns between the threads reads fewer operand floats than splitting the rows into
     * {@code rowRanges} ranges. With more than one depth block, B's blocks do not stay in cache from one range to
     * the next, so each row range of a batch entry reads all of that entry's B again (N·K floats), while each
     * thread of a column split reads all of A (M·K) and its share of B. For a weight gradient (M = 128, N = 128,
     * K = 16384, 8 row ranges of one or two panels) that is 128 + 8·128 against 2·128 + 128 floats per step of k.
     * Where each element is summed does not depend on the split, so neither do the bits.
     */
    private static boolean columnSplitReadsLess(Problem p, int threads, int rowRanges) {
        if (p.k() <= BLOCK_DEPTH || threads == 1) {
            return false;
        }
        long rowRangesPerEntry = Math.max(1, (rowRanges + p.batch() - 1) / p.batch());
        long rowSplit = p.m() + (long) p.n() * rowRangesPerEntry;
        long columnSplit = (long) p.m() * threads + p.n();
        return columnSplit < rowSplit;
    }

    /**
     * All of op(B) (batch 1) packed once, the threads sharing the work, for a row split whose ranges would
     * otherwise each pack all of B: with few rows per range (a weight gradient: M = 128, K = 2048) that
     * duplicated packing cost as much as the multiply. Column block c's depth block at depthStart starts at
     * {@link #sharedOffset}; the layout and so the products are the same as when each range packs its own.
     */
    private float[] packShared(Problem p) {
        int n = p.n(), k = p.k();
        int panels = (n + COLUMNS - 1) / COLUMNS, depthBlocks = (k + BLOCK_DEPTH - 1) / BLOCK_DEPTH;
        int length = Math.addExact(Math.multiplyExact(panels * COLUMNS, k), LANES);
        float[] shared = SHARED_B.get();
        if (shared.length < length) {
            shared = new float[length];
            SHARED_B.set(shared);
        }
        float[] target = shared;
        parallel.forRange(panels * depthBlocks, 1, (start, end) -> {
            float[] staging = SCRATCH.get().staging;
            for (int unit = start; unit < end; unit++) {
                int panel = unit % panels, depthStart = unit / panels * BLOCK_DEPTH;
                int column = panel * COLUMNS, blockColumn = column / BLOCK_COLUMNS * BLOCK_COLUMNS;
                int depth = Math.min(BLOCK_DEPTH, k - depthStart);
                GemmPacking.packB(p.b(), 0, p.transposeB(), n, k, depthStart, depth, column,
                        Math.min(COLUMNS, n - column), target,
                        sharedOffset(n, k, blockColumn, depthStart) + (column - blockColumn) * depth, staging);
            }
        });
        return shared;
    }

    /** Where the column block from {@code column} and the depth block from {@code depthStart} start in shared B. */
    private static int sharedOffset(int n, int k, int column, int depthStart) {
        int width = Math.min(BLOCK_COLUMNS, n - column);
        int paddedWidth = (width + COLUMNS - 1) / COLUMNS * COLUMNS;
        return column * k + depthStart * paddedWidth;
    }

    /**
     * C[rowStart:rowEnd, columnStart:columnEnd] of one batch entry (K > 0), on the calling thread; B's blocks are
     * read from {@code sharedB} when it is not null (batch 1, all columns), else packed here.
     */
    private static void block(Problem p, int batchIndex, int rowStart, int rowEnd, int columnStart,
                              int columnEnd, float[] sharedB) {
        Scratch scratch = SCRATCH.get();
        float[] bias = p.bias() == null ? null : packedBias(p, scratch);
        int m = p.m(), n = p.n(), k = p.k();
        long aBase = batchIndex * p.strideA(), bBase = batchIndex * p.strideB(), cBase = (long) batchIndex * m * n;
        long rowBytes = (long) n * Float.BYTES;
        for (int column = columnStart; column < columnEnd; column += BLOCK_COLUMNS) {
            int width = Math.min(BLOCK_COLUMNS, columnEnd - column);
            for (int depthStart = 0; depthStart < k; depthStart += BLOCK_DEPTH) {
                int depth = Math.min(BLOCK_DEPTH, k - depthStart);
                float[] blockB = scratch.blockB;
                int blockOffset = 0;
                if (sharedB == null) {
                    GemmPacking.packB(p.b(), bBase, p.transposeB(), n, k, depthStart, depth, column, width,
                            blockB, scratch.staging);
                } else {
                    blockB = sharedB;
                    blockOffset = sharedOffset(n, k, column, depthStart);
                }
                boolean firstBlock = depthStart == 0;
                boolean load = !firstBlock || p.accumulate();
                float[] blockBias = firstBlock ? bias : null;
                boolean lastBlock = depthStart + depth >= k;
                for (int row = rowStart; row < rowEnd; row += ROWS) {
                    int rows = Math.min(ROWS, rowEnd - row);
                    if (p.transposeA()) {
                        GemmPacking.packTransposedA(p.a(), aBase, m, row, rows, depthStart, depth, scratch.panelA);
                    } else {
                        GemmPacking.stageRowsA(p.a(), aBase, k, row, rows, depthStart, depth, scratch.rowsA);
                    }
                    for (int panel = 0; panel < width; panel += COLUMNS) {
                        int columns = Math.min(COLUMNS, width - panel);
                        int j = column + panel;
                        if (p.transposeA()) {
                            GemmKernel.multiply(scratch.panelA, 0, blockB, blockOffset + panel * depth, depth,
                                    scratch.tile);
                        } else {
                            // A whole tile with nothing to add is stored by the kernel itself.
                            boolean direct = rows == ROWS && columns == COLUMNS && !load && blockBias == null;
                            GemmKernel.multiplyRows(scratch.rowsA, blockB, blockOffset + panel * depth, depth,
                                    scratch.tile, direct ? p.out() : null,
                                    (cBase + (long) row * n + j) * Float.BYTES, rowBytes);
                            if (direct) {
                                continue;
                            }
                        }
                        store(scratch.tile, p.out(), (cBase + (long) row * n + j) * Float.BYTES, rowBytes, rows,
                                columns, load, blockBias, j);
                    }
                    if (lastBlock && p.epilogue() != null) {
                        finish(p.epilogue(), cBase + (long) row * n + column, rows, width, n);
                    }
                }
            }
        }
    }

    /** Runs the epilogue over rows × width elements of C from element {@code first}, rows n apart. */
    private static void finish(Epilogue epilogue, long first, int rows, int width, int n) {
        if (width == n) {
            epilogue.finish((int) first, (int) (first + (long) rows * n)); // whole rows: one contiguous range
            return;
        }
        for (int r = 0; r < rows; r++) {
            long start = first + (long) r * n;
            epilogue.finish((int) start, (int) (start + width));
        }
    }

    /**
     * C[0:rows, 0:columns] = tile (+ bias[biasOffset:] when not null) (+ C when {@code load}), C at byte offset
     * {@code cOffset} with rows {@code rowBytes} apart; a scalar loop finishes a row cut by the edge of C, with the
     * lanes' additions in the lanes' order. Not a masked vector store: the Vector API checks a masked segment
     * access lane by lane in Java (1.6% of a patch-4 step's samples, under input-gradient products).
     */
    private static void store(float[] tile, MemorySegment out, long cOffset, long rowBytes, int rows, int columns,
                              boolean load, float[] bias, int biasOffset) {
        int vectorColumns = columns / LANES * LANES;
        for (int r = 0; r < rows; r++) {
            long rowOffset = cOffset + r * rowBytes;
            for (int c = 0; c < vectorColumns; c += LANES) {
                long offset = rowOffset + (long) c * Float.BYTES;
                FloatVector value = FloatVector.fromArray(SPECIES, tile, r * COLUMNS + c);
                if (bias != null) {
                    value = value.add(FloatVector.fromArray(SPECIES, bias, biasOffset + c));
                }
                if (load) {
                    value = value.add(FloatVector.fromMemorySegment(SPECIES, out, offset, ORDER));
                }
                value.intoMemorySegment(out, offset, ORDER);
            }
            for (int c = vectorColumns; c < columns; c++) {
                long offset = rowOffset + (long) c * Float.BYTES;
                float value = tile[r * COLUMNS + c];
                if (bias != null) {
                    value += bias[biasOffset + c];
                }
                if (load) {
                    value += out.get(F, offset);
                }
                out.set(F, offset, value);
            }
        }
    }

    /** The bias copied to a float[] padded by a panel, so the kernel reads whole vectors past the last column. */
    private static float[] packedBias(Problem p, Scratch scratch) {
        int length = p.n() + COLUMNS;
        if (scratch.bias.length < length) {
            scratch.bias = new float[length];
        }
        MemorySegment.copy(p.bias(), F, 0, scratch.bias, 0, p.n());
        return scratch.bias;
    }

    void sumRows(Tensor x, Tensor out, boolean accumulate) {
        int cols = Math.toIntExact(Checks.sumRows(x, out));
        if (Bf16Operands.any(x)) {
            Bf16Operands.run(g -> sumRows(g.in(x), out, accumulate));
            return;
        }
        long rows = x.numel() / cols;
        MemorySegment xs = x.segment(), os = out.segment();
        long rowBytes = (long) cols * Float.BYTES;
        int chunks = (cols + LANES - 1) / LANES;
        int minChunk = (int) Math.max(1, MIN_WORK_PER_THREAD / Math.max(1, rows * LANES));
        parallel.forRange(chunks, minChunk, (start, end) -> {
            int columnEnd = Math.min(cols, end * LANES);
            int c = start * LANES;
            for (; c + LANES <= columnEnd; c += LANES) {
                long offset = (long) c * Float.BYTES;
                FloatVector sum = accumulate ? FloatVector.fromMemorySegment(SPECIES, os, offset, ORDER)
                        : FloatVector.zero(SPECIES);
                for (long r = 0; r < rows; r++) {
                    sum = sum.add(FloatVector.fromMemorySegment(SPECIES, xs, r * rowBytes + offset, ORDER));
                }
                sum.intoMemorySegment(os, offset, ORDER);
            }
            for (; c < columnEnd; c++) {
                float sum = accumulate ? os.getAtIndex(F, c) : 0f;
                for (long r = 0; r < rows; r++) {
                    sum += xs.getAtIndex(F, r * cols + c);
                }
                os.setAtIndex(F, c, sum);
            }
        });
        flops.add("sumRows", x.numel());
    }

    static String vectorDescription() {
        return "Vector API F32 GEMM, " + SPECIES.vectorBitSize() + "-bit (" + LANES + " lanes), "
                + ROWS + "×" + COLUMNS + " register tile";
    }
}
