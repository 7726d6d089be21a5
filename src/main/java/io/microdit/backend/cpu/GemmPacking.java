package io.microdit.backend.cpu;

import static io.microdit.backend.cpu.GemmKernel.COLUMNS;
import static io.microdit.backend.cpu.GemmKernel.LANES;
import static io.microdit.backend.cpu.GemmKernel.ROWS;
import static io.microdit.backend.cpu.GemmKernel.SPECIES;
import static io.microdit.backend.cpu.GemmKernel.STAGED_ROW;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;

/**
 * Copies blocks of the GEMM operands out of their tensors into the layouts the micro-kernel reads: A as panels
 * of {@link GemmKernel#ROWS} rows stored k-major (the ROWS values of one step of k side by side) when it is
 * transposed, else as its rows copied unchanged (the kernel's row-major variant), B as panels
 * of {@link GemmKernel#COLUMNS} columns stored k-major. Packing absorbs the transposes, so one kernel serves
 * all four combinations, and it zero-pads the last panel, so the kernel never needs a tail. Each element of A
 * is packed once per column block and each of B once per row range, which is small next to the
 * 2·M·N·K FLOPs the packed data feeds.
 */
final class GemmPacking {
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT;
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();

    /** Vectors that cover a panel's ROWS values of one step of k. */
    private static final int PANEL_VECTORS = (ROWS + LANES - 1) / LANES;

    /** Per thread, the start of each staged row: the gather's index map. */
    private static final ThreadLocal<int[]> ROW_STARTS = ThreadLocal.withInitial(() -> new int[COLUMNS]);

    private GemmPacking() {
    }

    /**
     * Packs rows [row, row + rows) and k in [depthStart, depthStart + depth) of op(A) = Aᵀ into {@code panel} as
     * [depth][ROWS], rows past {@code rows} zero, for {@link GemmKernel#multiply}. A is [K, M] at element
     * {@code base} of {@code a}: each step of k is one contiguous run.
     */
    static void packTransposedA(MemorySegment a, long base, int m, int row, int rows, int depthStart, int depth,
                                float[] panel) {
        long lastRead = base + (long) (depthStart + depth - 1) * m + row + PANEL_VECTORS * LANES;
        if (rows == ROWS && lastRead * Float.BYTES <= a.byteSize()) {
            // Whole vectors, unmasked: a masked load checks its mask against the segment's end on every call
            // (a fifth of the kernel's samples at patch 2). The lanes past ROWS read the next rows' values and
            // land in the next step's slots, which that step then overwrites, or in the panel's LANES of slack.
            for (int p = 0; p < depth; p++) {
                long sourceBytes = (base + (long) (depthStart + p) * m + row) * Float.BYTES;
                for (int v = 0; v < ROWS; v += LANES) {
                    FloatVector.fromMemorySegment(SPECIES, a, sourceBytes + (long) v * Float.BYTES, ORDER)
                            .intoArray(panel, p * ROWS + v);
                }
            }
            return;
        }
        if (rows < ROWS) {
            Arrays.fill(panel, 0, depth * ROWS, 0f);
        }
        // Masked vector copies: a scalar loop cost as much as the multiply of a weight gradient's panel.
        for (int v = 0; v < rows; v += LANES) {
            VectorMask<Float> inside = SPECIES.indexInRange(v, rows);
            for (int p = 0; p < depth; p++) {
                long source = base + (long) (depthStart + p) * m + row + v;
                FloatVector.fromMemorySegment(SPECIES, a, source * Float.BYTES, ORDER, inside)
                        .intoArray(panel, p * ROWS + v, inside);
            }
        }
    }

    /**
     * Copies rows [row, row + rows) and k in [depthStart, depthStart + depth) of a row-major A ([M, K] at element
     * {@code base} of {@code a}) to {@code staged}, row r at r·{@link GemmKernel#STAGED_ROW}, rows past
     * {@code rows} zero, for {@link GemmKernel#multiplyRows}: one bulk copy per row and no transpose.
     */
    static void stageRowsA(MemorySegment a, long base, int k, int row, int rows, int depthStart, int depth,
                           float[] staged) {
        for (int r = 0; r < rows; r++) {
            MemorySegment.copy(a, F, ((long) (row + r) * k + depthStart + base) * Float.BYTES, staged,
                    r * STAGED_ROW, depth);
        }
        for (int r = rows; r < ROWS; r++) {
            Arrays.fill(staged, r * STAGED_ROW, r * STAGED_ROW + depth, 0f);
        }
    }

    /**
     * {@code target[offset + p·count + i] = source[i·length + p]}: count rows of {@code length} floats become
     * length rows of count floats, one masked gather and store per vector of count. Reading from a float[]
     * (the rows copied there in bulk) is what allows the gather; target needs LANES floats of slack at its end.
     */
    private static void transpose(float[] source, int count, int length, float[] target, int offset) {
        int[] rowStarts = ROW_STARTS.get();
        for (int i = 0; i < count; i++) {
            rowStarts[i] = i * length;
        }
        for (int v = 0; v < count; v += LANES) {
            VectorMask<Float> inside = SPECIES.indexInRange(v, count);
            for (int p = 0; p < length; p++) {
                FloatVector.fromArray(SPECIES, source, p, rowStarts, v, inside).intoArray(target, offset + p * count + v,
                        inside);
            }
        }
    }

    /**
     * {@link #transpose} of COLUMNS rows of {@code depth} floats (a multiple of 16) by 16 × 16 register blocks
     * ({@link BlockTranspose}), about three times faster than the lane gathers on the AMD EPYC guest; the values
     * are only moved, so the packed panel is the same.
     */
    private static void transposeBlocks(float[] source, int depth, float[] target, int offset) {
        int side = BlockTranspose.SIDE;
        for (int column = 0; column < COLUMNS; column += side) {
            for (int p = 0; p < depth; p += side) {
                BlockTranspose.transpose(source, column * depth + p, depth, target, offset + p * COLUMNS + column,
                        COLUMNS, 1f);
            }
        }
    }

    /**
     * Packs k in [depthStart, depthStart + depth) and columns [column, column + width) of op(B) into
     * {@code block} as panels of COLUMNS columns, panel q at q·depth·COLUMNS laid out [depth][COLUMNS], columns
     * past {@code width} zero. B is [K, N] at element {@code base} of {@code b}, or [N, K] when
     * {@code transposed}: then its columns are copied in bulk to {@code staging} and transposed from there.
     */
    static void packB(MemorySegment b, long base, boolean transposed, int n, int k, int depthStart, int depth,
                      int column, int width, float[] block, float[] staging) {
        packB(b, base, transposed, n, k, depthStart, depth, column, width, block, 0, staging);
    }

    /** {@link #packB} into {@code block} from element {@code blockOffset} on. */
    static void packB(MemorySegment b, long base, boolean transposed, int n, int k, int depthStart, int depth,
                      int column, int width, float[] block, int blockOffset, float[] staging) {
        for (int panelStart = 0; panelStart < width; panelStart += COLUMNS) {
            int columns = Math.min(COLUMNS, width - panelStart);
            int panel = blockOffset + panelStart / COLUMNS * depth * COLUMNS;
            if (columns < COLUMNS) {
                Arrays.fill(block, panel, panel + depth * COLUMNS, 0f);
            }
            if (transposed) {
                for (int c = 0; c < columns; c++) {
                    MemorySegment.copy(b, F, ((long) (column + panelStart + c) * k + depthStart + base) * Float.BYTES,
                            staging, c * depth, depth);
                }
                Arrays.fill(staging, columns * depth, COLUMNS * depth, 0f);
                if (BlockTranspose.AVAILABLE && depth % BlockTranspose.SIDE == 0) {
                    transposeBlocks(staging, depth, block, panel);
                } else {
                    transpose(staging, COLUMNS, depth, block, panel);
                }
            } else if (columns == COLUMNS) {
                for (int p = 0; p < depth; p++) {
                    long sourceBytes = (base + (long) (depthStart + p) * n + column + panelStart) * Float.BYTES;
                    int target = panel + p * COLUMNS;
                    for (int v = 0; v < COLUMNS; v += LANES) {
                        FloatVector.fromMemorySegment(SPECIES, b, sourceBytes + (long) v * Float.BYTES, ORDER)
                                .intoArray(block, target + v);
                    }
                }
            } else {
                for (int p = 0; p < depth; p++) {
                    long source = base + (long) (depthStart + p) * n + column + panelStart;
                    int target = panel + p * COLUMNS;
                    for (int c = 0; c < columns; c++) {
                        block[target + c] = b.getAtIndex(F, source + c);
                    }
                }
            }
        }
    }
}
