package io.microdit.backend.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The two building blocks of the CPU attention kernels, on thread-local float[] tiles.
 *
 * <p>{@link #multiply} is one broadcast-FMA product {@code C[r, lanes] (+)= sum_s B[r, s] · M[s, lanes]}: a
 * scalar of B is broadcast and multiplied with a contiguous row of M, so the columns of C live in vector lanes
 * and the reduction runs in registers (blocks of 4 rows × 4 vectors, 16 accumulators). B is addressed with two
 * strides, which lets the same kernel read K or V row-major (scores: reduction over head_dim) or column-major
 * (output: reduction over keys) and a probability tile as [key, query]. Every product of the forward and the
 * backward is one call of it; columns are always whole vectors because the callers pad their tiles.
 *
 * <p>{@link #exp} is a vector exponential (Cody–Waite range reduction, degree-6 polynomial, exponent bits built
 * directly), about 2 ulp, exactly 0 below e^-87.3; inlined, it is several times cheaper than a library call.
 */
final class AttentionKernels {
    static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    static final int LANES = SPECIES.length();

    private static final float LOG2_E = 1.44269504088896341f;
    private static final float LN2_HIGH = 0.693359375f;
    private static final float LN2_LOW = -2.12194440e-4f;
    private static final float EXP_LOWEST = -87.33654f;
    private static final float EXP_HIGHEST = 88.0f;
    private static final float ROUNDING = 12582912f; // 1.5 · 2^23: adding it rounds to an integer
    private static final float P0 = 1.9875691500e-4f;
    private static final float P1 = 1.3981999507e-3f;
    private static final float P2 = 8.3334519073e-3f;
    private static final float P3 = 4.1665795894e-2f;
    private static final float P4 = 1.6666665459e-1f;
    private static final float P5 = 5.0000001201e-1f;

    private AttentionKernels() {
    }

    static FloatVector exp(FloatVector x) {
        FloatVector clamped = x.max(EXP_LOWEST).min(EXP_HIGHEST);
        FloatVector whole = clamped.fma(LOG2_E, ROUNDING).sub(ROUNDING);
        FloatVector r = whole.fma(constant(-LN2_HIGH), clamped);
        r = whole.fma(constant(-LN2_LOW), r);
        FloatVector poly = r.fma(P0, P1).fma(r, constant(P2)).fma(r, constant(P3)).fma(r, constant(P4))
                .fma(r, constant(P5));
        poly = poly.fma(r.mul(r), r).add(1f);
        IntVector exponent = (IntVector) whole.convert(VectorOperators.F2I, 0);
        FloatVector scale = exponent.add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
        return poly.mul(scale).blend(0f, x.compare(VectorOperators.LT, EXP_LOWEST));
    }

    private static FloatVector constant(float value) {
        return FloatVector.broadcast(SPECIES, value);
    }

    /**
     * {@code c[cOffset + r·cRowStride + v·LANES + lane] (+)= sum over s < reduction of
     * b[bOffset + r·bRowStride + s·bReductionStride] · m[mOffset + s·mRowStride + v·LANES + lane]} for
     * r < rows, v < vectors; overwrites c unless {@code accumulate}.
     */
    static void multiply(float[] b, int bOffset, int bRowStride, int bReductionStride,
                         float[] m, int mOffset, int mRowStride,
                         float[] c, int cOffset, int cRowStride,
                         int rows, int vectors, int reduction, boolean accumulate) {
        int r = 0;
        for (; r + 4 <= rows; r += 4) {
            int v = 0;
            for (; v + 4 <= vectors; v += 4) {
                block4x4(b, bOffset + r * bRowStride, bRowStride, bReductionStride, m, mOffset + v * LANES,
                        mRowStride, c, cOffset + r * cRowStride + v * LANES, cRowStride, reduction, accumulate);
            }
            for (; v + 2 <= vectors; v += 2) {
                block4x2(b, bOffset + r * bRowStride, bRowStride, bReductionStride, m, mOffset + v * LANES,
                        mRowStride, c, cOffset + r * cRowStride + v * LANES, cRowStride, reduction, accumulate);
            }
            for (; v < vectors; v++) {
                block4x1(b, bOffset + r * bRowStride, bRowStride, bReductionStride, m, mOffset + v * LANES,
                        mRowStride, c, cOffset + r * cRowStride + v * LANES, cRowStride, reduction, accumulate);
            }
        }
        for (; r < rows; r++) {
            for (int v = 0; v < vectors; v++) {
                block1x1(b, bOffset + r * bRowStride, bReductionStride, m, mOffset + v * LANES, mRowStride, c,
                        cOffset + r * cRowStride + v * LANES, reduction, accumulate);
            }
        }
    }

    private static FloatVector start(float[] c, int index, boolean accumulate) {
        return accumulate ? FloatVector.fromArray(SPECIES, c, index) : FloatVector.zero(SPECIES);
    }

    private static void block4x4(float[] b, int bBase, int bRow, int bStep, float[] m, int mBase, int mRow,
                                 float[] c, int cBase, int cRow, int reduction, boolean accumulate) {
        int c1 = cBase + cRow, c2 = c1 + cRow, c3 = c2 + cRow;
        FloatVector a00 = start(c, cBase, accumulate), a01 = start(c, cBase + LANES, accumulate);
        FloatVector a02 = start(c, cBase + 2 * LANES, accumulate), a03 = start(c, cBase + 3 * LANES, accumulate);
        FloatVector a10 = start(c, c1, accumulate), a11 = start(c, c1 + LANES, accumulate);
        FloatVector a12 = start(c, c1 + 2 * LANES, accumulate), a13 = start(c, c1 + 3 * LANES, accumulate);
        FloatVector a20 = start(c, c2, accumulate), a21 = start(c, c2 + LANES, accumulate);
        FloatVector a22 = start(c, c2 + 2 * LANES, accumulate), a23 = start(c, c2 + 3 * LANES, accumulate);
        FloatVector a30 = start(c, c3, accumulate), a31 = start(c, c3 + LANES, accumulate);
        FloatVector a32 = start(c, c3 + 2 * LANES, accumulate), a33 = start(c, c3 + 3 * LANES, accumulate);
        for (int s = 0; s < reduction; s++) {
            int mi = mBase + s * mRow;
            FloatVector m0 = FloatVector.fromArray(SPECIES, m, mi);
            FloatVector m1 = FloatVector.fromArray(SPECIES, m, mi + LANES);
            FloatVector m2 = FloatVector.fromArray(SPECIES, m, mi + 2 * LANES);
            FloatVector m3 = FloatVector.fromArray(SPECIES, m, mi + 3 * LANES);
            int bi = bBase + s * bStep;
            FloatVector b0 = FloatVector.broadcast(SPECIES, b[bi]);
            a00 = m0.fma(b0, a00);
            a01 = m1.fma(b0, a01);
            a02 = m2.fma(b0, a02);
            a03 = m3.fma(b0, a03);
            FloatVector b1 = FloatVector.broadcast(SPECIES, b[bi + bRow]);
            a10 = m0.fma(b1, a10);
            a11 = m1.fma(b1, a11);
            a12 = m2.fma(b1, a12);
            a13 = m3.fma(b1, a13);
            FloatVector b2 = FloatVector.broadcast(SPECIES, b[bi + 2 * bRow]);
            a20 = m0.fma(b2, a20);
            a21 = m1.fma(b2, a21);
            a22 = m2.fma(b2, a22);
            a23 = m3.fma(b2, a23);
            FloatVector b3 = FloatVector.broadcast(SPECIES, b[bi + 3 * bRow]);
            a30 = m0.fma(b3, a30);
            a31 = m1.fma(b3, a31);
            a32 = m2.fma(b3, a32);
            a33 = m3.fma(b3, a33);
        }
        a00.intoArray(c, cBase);
        a01.intoArray(c, cBase + LANES);
        a02.intoArray(c, cBase + 2 * LANES);
        a03.intoArray(c, cBase + 3 * LANES);
        a10.intoArray(c, c1);
        a11.intoArray(c, c1 + LANES);
        a12.intoArray(c, c1 + 2 * LANES);
        a13.intoArray(c, c1 + 3 * LANES);
        a20.intoArray(c, c2);
        a21.intoArray(c, c2 + LANES);
        a22.intoArray(c, c2 + 2 * LANES);
        a23.intoArray(c, c2 + 3 * LANES);
        a30.intoArray(c, c3);
        a31.intoArray(c, c3 + LANES);
        a32.intoArray(c, c3 + 2 * LANES);
        a33.intoArray(c, c3 + 3 * LANES);
    }

    private static void block4x2(float[] b, int bBase, int bRow, int bStep, float[] m, int mBase, int mRow,
                                 float[] c, int cBase, int cRow, int reduction, boolean accumulate) {
        int c1 = cBase + cRow, c2 = c1 + cRow, c3 = c2 + cRow;
        FloatVector a00 = start(c, cBase, accumulate), a01 = start(c, cBase + LANES, accumulate);
        FloatVector a10 = start(c, c1, accumulate), a11 = start(c, c1 + LANES, accumulate);
        FloatVector a20 = start(c, c2, accumulate), a21 = start(c, c2 + LANES, accumulate);
        FloatVector a30 = start(c, c3, accumulate), a31 = start(c, c3 + LANES, accumulate);
        for (int s = 0; s < reduction; s++) {
            int mi = mBase + s * mRow;
            FloatVector m0 = FloatVector.fromArray(SPECIES, m, mi);
            FloatVector m1 = FloatVector.fromArray(SPECIES, m, mi + LANES);
            int bi = bBase + s * bStep;
            FloatVector b0 = FloatVector.broadcast(SPECIES, b[bi]);
            a00 = m0.fma(b0, a00);
            a01 = m1.fma(b0, a01);
            FloatVector b1 = FloatVector.broadcast(SPECIES, b[bi + bRow]);
            a10 = m0.fma(b1, a10);
            a11 = m1.fma(b1, a11);
            FloatVector b2 = FloatVector.broadcast(SPECIES, b[bi + 2 * bRow]);
            a20 = m0.fma(b2, a20);
            a21 = m1.fma(b2, a21);
            FloatVector b3 = FloatVector.broadcast(SPECIES, b[bi + 3 * bRow]);
            a30 = m0.fma(b3, a30);
            a31 = m1.fma(b3, a31);
        }
        a00.intoArray(c, cBase);
        a01.intoArray(c, cBase + LANES);
        a10.intoArray(c, c1);
        a11.intoArray(c, c1 + LANES);
        a20.intoArray(c, c2);
        a21.intoArray(c, c2 + LANES);
        a30.intoArray(c, c3);
        a31.intoArray(c, c3 + LANES);
    }

    private static void block4x1(float[] b, int bBase, int bRow, int bStep, float[] m, int mBase, int mRow,
                                 float[] c, int cBase, int cRow, int reduction, boolean accumulate) {
        int c1 = cBase + cRow, c2 = c1 + cRow, c3 = c2 + cRow;
        FloatVector a0 = start(c, cBase, accumulate), a1 = start(c, c1, accumulate);
        FloatVector a2 = start(c, c2, accumulate), a3 = start(c, c3, accumulate);
        for (int s = 0; s < reduction; s++) {
            FloatVector m0 = FloatVector.fromArray(SPECIES, m, mBase + s * mRow);
            int bi = bBase + s * bStep;
            a0 = m0.fma(FloatVector.broadcast(SPECIES, b[bi]), a0);
            a1 = m0.fma(FloatVector.broadcast(SPECIES, b[bi + bRow]), a1);
            a2 = m0.fma(FloatVector.broadcast(SPECIES, b[bi + 2 * bRow]), a2);
            a3 = m0.fma(FloatVector.broadcast(SPECIES, b[bi + 3 * bRow]), a3);
        }
        a0.intoArray(c, cBase);
        a1.intoArray(c, c1);
        a2.intoArray(c, c2);
        a3.intoArray(c, c3);
    }

    private static void block1x1(float[] b, int bBase, int bStep, float[] m, int mBase, int mRow,
                                 float[] c, int cBase, int reduction, boolean accumulate) {
        FloatVector a = start(c, cBase, accumulate);
        for (int s = 0; s < reduction; s++) {
            a = FloatVector.fromArray(SPECIES, m, mBase + s * mRow)
                    .fma(FloatVector.broadcast(SPECIES, b[bBase + s * bStep]), a);
        }
        a.intoArray(c, cBase);
    }
}
