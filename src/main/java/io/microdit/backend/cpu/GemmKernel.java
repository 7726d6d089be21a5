package io.microdit.backend.cpu;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The GEMM micro-kernel: the product of a packed ROWS-row panel of A (ROWS floats per step of k, read as
 * broadcasts) and a packed COLUMNS-column panel of B (COLUMNS floats per step of k, read as whole vectors).
 * The ROWS × COLUMNS / LANES accumulators stay in vector registers for the whole depth, so each step of k costs
 * ROWS broadcasts, COLUMNS / LANES loads and ROWS × COLUMNS / LANES fused multiply-adds: the loads hide behind
 * the FMAs, which run at the core's peak. The unrolling by hand keeps every accumulator in a named local, and
 * so in a register; the starting zero is a local too, because a static vector constant merged into the loop
 * makes C2 box the accumulators.
 *
 * <p>A comes in one of two layouts. {@link #multiply} reads a packed panel (the ROWS values of one step of k side
 * by side), which a transposed A ([K, M]: each step of k one contiguous run) packs cheaply. {@link #multiplyRows}
 * reads ROWS rows of A copied as they are, {@link #STAGED_ROW} floats apart: for a row-major A this replaces
 * the transpose into a panel (a third of the kernel's own time in the profile) by a bulk copy, and because
 * the row distance is a constant, each broadcast's address is the step's index plus a fixed displacement, so
 * the twelve rows cost no registers. Both add the same products in the same order, so they give the same bits.
 */
final class GemmKernel {
    static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    static final int LANES = SPECIES.length();
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();
    /** Bytes from a row's first vector to its second. */
    private static final long SECOND = (long) LANES * Float.BYTES;
    /** Rows of A per micro-panel: the broadcasts per step of k. */
    static final int ROWS = 12;
    /** Columns of B per micro-panel: 2 vectors. */
    static final int COLUMNS = 2 * LANES;
    /**
     * Floats between the staged rows of A for {@link #multiplyRows}: the deepest block plus one cache line, so
     * that the twelve rows do not all fall into the same L1 sets.
     */
    static final int STAGED_ROW = CpuGemm.BLOCK_DEPTH + 16;

    private GemmKernel() {
    }

    /**
     * {@code tile = a · b} over {@code depth} steps of k: a is [depth][ROWS] from {@code aOffset}, b is
     * [depth][COLUMNS] from {@code bOffset}, tile is [ROWS][COLUMNS].
     */
    static void multiply(float[] a, int aOffset, float[] b, int bOffset, int depth, float[] tile) {
        FloatVector zero = FloatVector.zero(SPECIES);
        FloatVector c00 = zero, c01 = zero;
        FloatVector c10 = zero, c11 = zero;
        FloatVector c20 = zero, c21 = zero;
        FloatVector c30 = zero, c31 = zero;
        FloatVector c40 = zero, c41 = zero;
        FloatVector c50 = zero, c51 = zero;
        FloatVector c60 = zero, c61 = zero;
        FloatVector c70 = zero, c71 = zero;
        FloatVector c80 = zero, c81 = zero;
        FloatVector c90 = zero, c91 = zero;
        FloatVector c100 = zero, c101 = zero;
        FloatVector c110 = zero, c111 = zero;
        for (int p = 0; p < depth; p++) {
            int ai = aOffset + p * ROWS, bi = bOffset + p * COLUMNS;
            FloatVector b0 = FloatVector.fromArray(SPECIES, b, bi);
            FloatVector b1 = FloatVector.fromArray(SPECIES, b, bi + LANES);
            FloatVector a0 = FloatVector.broadcast(SPECIES, a[ai]);
            c00 = b0.fma(a0, c00); c01 = b1.fma(a0, c01);
            FloatVector a1 = FloatVector.broadcast(SPECIES, a[ai + 1]);
            c10 = b0.fma(a1, c10); c11 = b1.fma(a1, c11);
            FloatVector a2 = FloatVector.broadcast(SPECIES, a[ai + 2]);
            c20 = b0.fma(a2, c20); c21 = b1.fma(a2, c21);
            FloatVector a3 = FloatVector.broadcast(SPECIES, a[ai + 3]);
            c30 = b0.fma(a3, c30); c31 = b1.fma(a3, c31);
            FloatVector a4 = FloatVector.broadcast(SPECIES, a[ai + 4]);
            c40 = b0.fma(a4, c40); c41 = b1.fma(a4, c41);
            FloatVector a5 = FloatVector.broadcast(SPECIES, a[ai + 5]);
            c50 = b0.fma(a5, c50); c51 = b1.fma(a5, c51);
            FloatVector a6 = FloatVector.broadcast(SPECIES, a[ai + 6]);
            c60 = b0.fma(a6, c60); c61 = b1.fma(a6, c61);
            FloatVector a7 = FloatVector.broadcast(SPECIES, a[ai + 7]);
            c70 = b0.fma(a7, c70); c71 = b1.fma(a7, c71);
            FloatVector a8 = FloatVector.broadcast(SPECIES, a[ai + 8]);
            c80 = b0.fma(a8, c80); c81 = b1.fma(a8, c81);
            FloatVector a9 = FloatVector.broadcast(SPECIES, a[ai + 9]);
            c90 = b0.fma(a9, c90); c91 = b1.fma(a9, c91);
            FloatVector a10 = FloatVector.broadcast(SPECIES, a[ai + 10]);
            c100 = b0.fma(a10, c100); c101 = b1.fma(a10, c101);
            FloatVector a11 = FloatVector.broadcast(SPECIES, a[ai + 11]);
            c110 = b0.fma(a11, c110); c111 = b1.fma(a11, c111);
        }
        c00.intoArray(tile, 0 * COLUMNS); c01.intoArray(tile, 0 * COLUMNS + LANES);
        c10.intoArray(tile, 1 * COLUMNS); c11.intoArray(tile, 1 * COLUMNS + LANES);
        c20.intoArray(tile, 2 * COLUMNS); c21.intoArray(tile, 2 * COLUMNS + LANES);
        c30.intoArray(tile, 3 * COLUMNS); c31.intoArray(tile, 3 * COLUMNS + LANES);
        c40.intoArray(tile, 4 * COLUMNS); c41.intoArray(tile, 4 * COLUMNS + LANES);
        c50.intoArray(tile, 5 * COLUMNS); c51.intoArray(tile, 5 * COLUMNS + LANES);
        c60.intoArray(tile, 6 * COLUMNS); c61.intoArray(tile, 6 * COLUMNS + LANES);
        c70.intoArray(tile, 7 * COLUMNS); c71.intoArray(tile, 7 * COLUMNS + LANES);
        c80.intoArray(tile, 8 * COLUMNS); c81.intoArray(tile, 8 * COLUMNS + LANES);
        c90.intoArray(tile, 9 * COLUMNS); c91.intoArray(tile, 9 * COLUMNS + LANES);
        c100.intoArray(tile, 10 * COLUMNS); c101.intoArray(tile, 10 * COLUMNS + LANES);
        c110.intoArray(tile, 11 * COLUMNS); c111.intoArray(tile, 11 * COLUMNS + LANES);
    }

    /**
     * {@link #multiply} with A as ROWS rows {@link #STAGED_ROW} floats apart: row r's step p at
     * {@code a[r·STAGED_ROW + p]}. With {@code out} not null the tile is C's own, whole and with nothing to add
     * (no bias, no earlier depth block, not accumulating): row r goes to {@code out} at byte offset
     * {@code outOffset + r·rowBytes} instead of into {@code tile}. The same values either way. A bias added here
     * as well measured no faster (paired step A/B +0.6, −0.4, +0.7%), so a biased tile takes the store pass.
     */
    static void multiplyRows(float[] a, float[] b, int bOffset, int depth, float[] tile, MemorySegment out,
                             long outOffset, long rowBytes) {
        FloatVector zero = FloatVector.zero(SPECIES);
        FloatVector c00 = zero, c01 = zero;
        FloatVector c10 = zero, c11 = zero;
        FloatVector c20 = zero, c21 = zero;
        FloatVector c30 = zero, c31 = zero;
        FloatVector c40 = zero, c41 = zero;
        FloatVector c50 = zero, c51 = zero;
        FloatVector c60 = zero, c61 = zero;
        FloatVector c70 = zero, c71 = zero;
        FloatVector c80 = zero, c81 = zero;
        FloatVector c90 = zero, c91 = zero;
        FloatVector c100 = zero, c101 = zero;
        FloatVector c110 = zero, c111 = zero;
        for (int p = 0; p < depth; p++) {
            int bi = bOffset + p * COLUMNS;
            FloatVector b0 = FloatVector.fromArray(SPECIES, b, bi);
            FloatVector b1 = FloatVector.fromArray(SPECIES, b, bi + LANES);
            FloatVector a0 = FloatVector.broadcast(SPECIES, a[p]);
            c00 = b0.fma(a0, c00); c01 = b1.fma(a0, c01);
            FloatVector a1 = FloatVector.broadcast(SPECIES, a[1 * STAGED_ROW + p]);
            c10 = b0.fma(a1, c10); c11 = b1.fma(a1, c11);
            FloatVector a2 = FloatVector.broadcast(SPECIES, a[2 * STAGED_ROW + p]);
            c20 = b0.fma(a2, c20); c21 = b1.fma(a2, c21);
            FloatVector a3 = FloatVector.broadcast(SPECIES, a[3 * STAGED_ROW + p]);
            c30 = b0.fma(a3, c30); c31 = b1.fma(a3, c31);
            FloatVector a4 = FloatVector.broadcast(SPECIES, a[4 * STAGED_ROW + p]);
            c40 = b0.fma(a4, c40); c41 = b1.fma(a4, c41);
            FloatVector a5 = FloatVector.broadcast(SPECIES, a[5 * STAGED_ROW + p]);
            c50 = b0.fma(a5, c50); c51 = b1.fma(a5, c51);
            FloatVector a6 = FloatVector.broadcast(SPECIES, a[6 * STAGED_ROW + p]);
            c60 = b0.fma(a6, c60); c61 = b1.fma(a6, c61);
            FloatVector a7 = FloatVector.broadcast(SPECIES, a[7 * STAGED_ROW + p]);
            c70 = b0.fma(a7, c70); c71 = b1.fma(a7, c71);
            FloatVector a8 = FloatVector.broadcast(SPECIES, a[8 * STAGED_ROW + p]);
            c80 = b0.fma(a8, c80); c81 = b1.fma(a8, c81);
            FloatVector a9 = FloatVector.broadcast(SPECIES, a[9 * STAGED_ROW + p]);
            c90 = b0.fma(a9, c90); c91 = b1.fma(a9, c91);
            FloatVector a10 = FloatVector.broadcast(SPECIES, a[10 * STAGED_ROW + p]);
            c100 = b0.fma(a10, c100); c101 = b1.fma(a10, c101);
            FloatVector a11 = FloatVector.broadcast(SPECIES, a[11 * STAGED_ROW + p]);
            c110 = b0.fma(a11, c110); c111 = b1.fma(a11, c111);
        }
        if (out != null) {
            // Straight from the registers into C: no tile, and no store pass reading it back.
            c00.intoMemorySegment(out, outOffset + 0 * rowBytes, ORDER);
            c01.intoMemorySegment(out, outOffset + 0 * rowBytes + SECOND, ORDER);
            c10.intoMemorySegment(out, outOffset + 1 * rowBytes, ORDER);
            c11.intoMemorySegment(out, outOffset + 1 * rowBytes + SECOND, ORDER);
            c20.intoMemorySegment(out, outOffset + 2 * rowBytes, ORDER);
            c21.intoMemorySegment(out, outOffset + 2 * rowBytes + SECOND, ORDER);
            c30.intoMemorySegment(out, outOffset + 3 * rowBytes, ORDER);
            c31.intoMemorySegment(out, outOffset + 3 * rowBytes + SECOND, ORDER);
            c40.intoMemorySegment(out, outOffset + 4 * rowBytes, ORDER);
            c41.intoMemorySegment(out, outOffset + 4 * rowBytes + SECOND, ORDER);
            c50.intoMemorySegment(out, outOffset + 5 * rowBytes, ORDER);
            c51.intoMemorySegment(out, outOffset + 5 * rowBytes + SECOND, ORDER);
            c60.intoMemorySegment(out, outOffset + 6 * rowBytes, ORDER);
            c61.intoMemorySegment(out, outOffset + 6 * rowBytes + SECOND, ORDER);
            c70.intoMemorySegment(out, outOffset + 7 * rowBytes, ORDER);
            c71.intoMemorySegment(out, outOffset + 7 * rowBytes + SECOND, ORDER);
            c80.intoMemorySegment(out, outOffset + 8 * rowBytes, ORDER);
            c81.intoMemorySegment(out, outOffset + 8 * rowBytes + SECOND, ORDER);
            c90.intoMemorySegment(out, outOffset + 9 * rowBytes, ORDER);
            c91.intoMemorySegment(out, outOffset + 9 * rowBytes + SECOND, ORDER);
            c100.intoMemorySegment(out, outOffset + 10 * rowBytes, ORDER);
            c101.intoMemorySegment(out, outOffset + 10 * rowBytes + SECOND, ORDER);
            c110.intoMemorySegment(out, outOffset + 11 * rowBytes, ORDER);
            c111.intoMemorySegment(out, outOffset + 11 * rowBytes + SECOND, ORDER);
            return;
        }
        c00.intoArray(tile, 0 * COLUMNS); c01.intoArray(tile, 0 * COLUMNS + LANES);
        c10.intoArray(tile, 1 * COLUMNS); c11.intoArray(tile, 1 * COLUMNS + LANES);
        c20.intoArray(tile, 2 * COLUMNS); c21.intoArray(tile, 2 * COLUMNS + LANES);
        c30.intoArray(tile, 3 * COLUMNS); c31.intoArray(tile, 3 * COLUMNS + LANES);
        c40.intoArray(tile, 4 * COLUMNS); c41.intoArray(tile, 4 * COLUMNS + LANES);
        c50.intoArray(tile, 5 * COLUMNS); c51.intoArray(tile, 5 * COLUMNS + LANES);
        c60.intoArray(tile, 6 * COLUMNS); c61.intoArray(tile, 6 * COLUMNS + LANES);
        c70.intoArray(tile, 7 * COLUMNS); c71.intoArray(tile, 7 * COLUMNS + LANES);
        c80.intoArray(tile, 8 * COLUMNS); c81.intoArray(tile, 8 * COLUMNS + LANES);
        c90.intoArray(tile, 9 * COLUMNS); c91.intoArray(tile, 9 * COLUMNS + LANES);
        c100.intoArray(tile, 10 * COLUMNS); c101.intoArray(tile, 10 * COLUMNS + LANES);
        c110.intoArray(tile, 11 * COLUMNS); c111.intoArray(tile, 11 * COLUMNS + LANES);
    }
}
