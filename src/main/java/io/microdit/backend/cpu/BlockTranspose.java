package io.microdit.backend.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * A 16 × 16 float block transposed in vector registers (512-bit vectors only): four stages of two-source
 * rearranges, stage s swapping the off-diagonal 2^(3−s)-lane blocks of rows i and i + 2^(3−s). It replaces the
 * attention's lane scatters (a row into a column of a query-major tile), which cost three times as much per block
 * on the AMD EPYC guest (a microcoded scatter per row). The values are only moved, and scaled by one multiply as
 * the scatter's caller scaled them, so the bits are the same.
 */
final class BlockTranspose {
    static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    /** The block's side: the lanes of a 512-bit float vector. */
    static final int SIDE = 16;
    /** Whether this JVM's preferred vectors have 16 float lanes, which the block needs. */
    static final boolean AVAILABLE = SPECIES.length() == SIDE;

    /** Stage s (distance h = 8 >> s): the lanes of row i (LOW) and of row i + h (HIGH), from rows i and i + h. */
    private static final VectorShuffle<Float> LOW0 = stage(8, false), HIGH0 = stage(8, true);
    private static final VectorShuffle<Float> LOW1 = stage(4, false), HIGH1 = stage(4, true);
    private static final VectorShuffle<Float> LOW2 = stage(2, false), HIGH2 = stage(2, true);
    private static final VectorShuffle<Float> LOW3 = stage(1, false), HIGH3 = stage(1, true);

    private BlockTranspose() {
    }

    /**
     * Lane l of the new row i (high: row i + h) takes, for a lane with bit h clear, lane l (l + h) of row i, else
     * lane l − h (l) of row i + h; a negative index selects from the second vector (lane index + SIDE).
     */
    private static VectorShuffle<Float> stage(int h, boolean high) {
        if (!AVAILABLE) {
            return null;
        }
        int[] lanes = new int[SIDE];
        for (int lane = 0; lane < SIDE; lane++) {
            boolean first = (lane & h) == 0;
            lanes[lane] = high ? (first ? lane + h : lane - SIDE) : (first ? lane : lane - h - SIDE);
        }
        return VectorShuffle.fromArray(SPECIES, lanes, 0);
    }

    /**
     * {@code target[targetOffset + c·targetStride + r] = scale · source[offset + r·stride + c]} for r, c &lt; 16.
     * Written out register by register: vectors held in an array are boxed and run five times slower.
     */
    static void transpose(float[] source, int offset, int stride, float[] target, int targetOffset,
                          int targetStride, float scale) {
        FloatVector r0 = FloatVector.fromArray(SPECIES, source, offset + 0 * stride).mul(scale);
        FloatVector r1 = FloatVector.fromArray(SPECIES, source, offset + 1 * stride).mul(scale);
        FloatVector r2 = FloatVector.fromArray(SPECIES, source, offset + 2 * stride).mul(scale);
        FloatVector r3 = FloatVector.fromArray(SPECIES, source, offset + 3 * stride).mul(scale);
        FloatVector r4 = FloatVector.fromArray(SPECIES, source, offset + 4 * stride).mul(scale);
        FloatVector r5 = FloatVector.fromArray(SPECIES, source, offset + 5 * stride).mul(scale);
        FloatVector r6 = FloatVector.fromArray(SPECIES, source, offset + 6 * stride).mul(scale);
        FloatVector r7 = FloatVector.fromArray(SPECIES, source, offset + 7 * stride).mul(scale);
        FloatVector r8 = FloatVector.fromArray(SPECIES, source, offset + 8 * stride).mul(scale);
        FloatVector r9 = FloatVector.fromArray(SPECIES, source, offset + 9 * stride).mul(scale);
        FloatVector r10 = FloatVector.fromArray(SPECIES, source, offset + 10 * stride).mul(scale);
        FloatVector r11 = FloatVector.fromArray(SPECIES, source, offset + 11 * stride).mul(scale);
        FloatVector r12 = FloatVector.fromArray(SPECIES, source, offset + 12 * stride).mul(scale);
        FloatVector r13 = FloatVector.fromArray(SPECIES, source, offset + 13 * stride).mul(scale);
        FloatVector r14 = FloatVector.fromArray(SPECIES, source, offset + 14 * stride).mul(scale);
        FloatVector r15 = FloatVector.fromArray(SPECIES, source, offset + 15 * stride).mul(scale);
        FloatVector s1a = r0.rearrange(LOW0, r8), s1b = r0.rearrange(HIGH0, r8);
        FloatVector s2a = r1.rearrange(LOW0, r9), s2b = r1.rearrange(HIGH0, r9);
        FloatVector s3a = r2.rearrange(LOW0, r10), s3b = r2.rearrange(HIGH0, r10);
        FloatVector s4a = r3.rearrange(LOW0, r11), s4b = r3.rearrange(HIGH0, r11);
        FloatVector s5a = r4.rearrange(LOW0, r12), s5b = r4.rearrange(HIGH0, r12);
        FloatVector s6a = r5.rearrange(LOW0, r13), s6b = r5.rearrange(HIGH0, r13);
        FloatVector s7a = r6.rearrange(LOW0, r14), s7b = r6.rearrange(HIGH0, r14);
        FloatVector s8a = r7.rearrange(LOW0, r15), s8b = r7.rearrange(HIGH0, r15);
        FloatVector s9a = s1a.rearrange(LOW1, s5a), s9b = s1a.rearrange(HIGH1, s5a);
        FloatVector s10a = s2a.rearrange(LOW1, s6a), s10b = s2a.rearrange(HIGH1, s6a);
        FloatVector s11a = s3a.rearrange(LOW1, s7a), s11b = s3a.rearrange(HIGH1, s7a);
        FloatVector s12a = s4a.rearrange(LOW1, s8a), s12b = s4a.rearrange(HIGH1, s8a);
        FloatVector s13a = s1b.rearrange(LOW1, s5b), s13b = s1b.rearrange(HIGH1, s5b);
        FloatVector s14a = s2b.rearrange(LOW1, s6b), s14b = s2b.rearrange(HIGH1, s6b);
        FloatVector s15a = s3b.rearrange(LOW1, s7b), s15b = s3b.rearrange(HIGH1, s7b);
        FloatVector s16a = s4b.rearrange(LOW1, s8b), s16b = s4b.rearrange(HIGH1, s8b);
        FloatVector s17a = s9a.rearrange(LOW2, s11a), s17b = s9a.rearrange(HIGH2, s11a);
        FloatVector s18a = s10a.rearrange(LOW2, s12a), s18b = s10a.rearrange(HIGH2, s12a);
        FloatVector s19a = s9b.rearrange(LOW2, s11b), s19b = s9b.rearrange(HIGH2, s11b);
        FloatVector s20a = s10b.rearrange(LOW2, s12b), s20b = s10b.rearrange(HIGH2, s12b);
        FloatVector s21a = s13a.rearrange(LOW2, s15a), s21b = s13a.rearrange(HIGH2, s15a);
        FloatVector s22a = s14a.rearrange(LOW2, s16a), s22b = s14a.rearrange(HIGH2, s16a);
        FloatVector s23a = s13b.rearrange(LOW2, s15b), s23b = s13b.rearrange(HIGH2, s15b);
        FloatVector s24a = s14b.rearrange(LOW2, s16b), s24b = s14b.rearrange(HIGH2, s16b);
        FloatVector s25a = s17a.rearrange(LOW3, s18a), s25b = s17a.rearrange(HIGH3, s18a);
        FloatVector s26a = s17b.rearrange(LOW3, s18b), s26b = s17b.rearrange(HIGH3, s18b);
        FloatVector s27a = s19a.rearrange(LOW3, s20a), s27b = s19a.rearrange(HIGH3, s20a);
        FloatVector s28a = s19b.rearrange(LOW3, s20b), s28b = s19b.rearrange(HIGH3, s20b);
        FloatVector s29a = s21a.rearrange(LOW3, s22a), s29b = s21a.rearrange(HIGH3, s22a);
        FloatVector s30a = s21b.rearrange(LOW3, s22b), s30b = s21b.rearrange(HIGH3, s22b);
        FloatVector s31a = s23a.rearrange(LOW3, s24a), s31b = s23a.rearrange(HIGH3, s24a);
        FloatVector s32a = s23b.rearrange(LOW3, s24b), s32b = s23b.rearrange(HIGH3, s24b);
        s25a.intoArray(target, targetOffset + 0 * targetStride);
        s25b.intoArray(target, targetOffset + 1 * targetStride);
        s26a.intoArray(target, targetOffset + 2 * targetStride);
        s26b.intoArray(target, targetOffset + 3 * targetStride);
        s27a.intoArray(target, targetOffset + 4 * targetStride);
        s27b.intoArray(target, targetOffset + 5 * targetStride);
        s28a.intoArray(target, targetOffset + 6 * targetStride);
        s28b.intoArray(target, targetOffset + 7 * targetStride);
        s29a.intoArray(target, targetOffset + 8 * targetStride);
        s29b.intoArray(target, targetOffset + 9 * targetStride);
        s30a.intoArray(target, targetOffset + 10 * targetStride);
        s30b.intoArray(target, targetOffset + 11 * targetStride);
        s31a.intoArray(target, targetOffset + 12 * targetStride);
        s31b.intoArray(target, targetOffset + 13 * targetStride);
        s32a.intoArray(target, targetOffset + 14 * targetStride);
        s32b.intoArray(target, targetOffset + 15 * targetStride);
    }
}
