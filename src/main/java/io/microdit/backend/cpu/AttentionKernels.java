package io.microdit.backend.cpu;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Objects;
import java.util.stream.IntStream;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The building blocks of the CPU attention kernels, on thread-local float[] tiles: one product, the softmax
 * steps, and the transposes between a tensor's token rows and a tile's query columns.
 *
 * <p>{@link #multiply} is one broadcast-FMA product {@code C[r, lanes] (+)= sum_s B[r, s] · M[s, lanes]}: a
 * scalar of B is broadcast and multiplied with a contiguous row of M, so the columns of C live in vector lanes
 * and the reduction runs in registers (blocks of 4 rows × 4 vectors, 16 accumulators). B is addressed with two
 * strides, which lets the same kernel read K or V row-major (scores: reduction over head_dim) or column-major
 * (output: reduction over keys) and a probability tile as [key, query]. Every product of the forward and the
 * backward is one call of it; columns are always whole vectors because the callers pad their tiles.
 *
 * <p>The softmax steps use {@link VectorMath#exp}, not the Vector API's EXP: the SVML intrinsic is about twice as
 * fast, but it rounds differently from the interpreted fallback, so a step would give other bits before and after
 * the JIT warmed up (and bit-exact resume would break). All methods here take arrays, never vectors, so nothing
 * is boxed when C2 does not inline a call (the polynomial's many operations can exceed C2's inlining budget in the
 * large per-head loops).
 */
final class AttentionKernels {
    static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    static final int LANES = SPECIES.length();
    /** Queries per tile: four vectors, the width of the 4×4 product block. */
    static final int QUERY_BLOCK = 4 * LANES;
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();
    /** Lane k at k·QUERY_BLOCK: walks a column of a query-major tile. */
    private static final int[] COLUMN = IntStream.range(0, LANES).map(k -> k * QUERY_BLOCK).toArray();

    private AttentionKernels() {
    }

    /**
     * Online-softmax step for the queries in lanes [lane, lane + LANES) of a [rows, stride] score tile: folds the
     * block into the running max and sum, turns the scores into exp(score − new max) in place and writes the
     * factor exp(old max − new max), by which the caller's accumulator must be rescaled, to {@code rescale}.
     */
    static void onlineSoftmax(float[] scores, int stride, int rows, int lane, float[] max, float[] sum,
                              float[] rescale) {
        FloatVector oldMax = FloatVector.fromArray(SPECIES, max, lane);
        // Four independent chains: a lone chain of Java-semantics max (several instructions each) is latency-bound.
        FloatVector max0 = oldMax, max1 = oldMax, max2 = oldMax, max3 = oldMax;
        int j = 0;
        for (; j + 4 <= rows; j += 4) {
            int index = j * stride + lane;
            max0 = max0.max(FloatVector.fromArray(SPECIES, scores, index));
            max1 = max1.max(FloatVector.fromArray(SPECIES, scores, index + stride));
            max2 = max2.max(FloatVector.fromArray(SPECIES, scores, index + 2 * stride));
            max3 = max3.max(FloatVector.fromArray(SPECIES, scores, index + 3 * stride));
        }
        for (; j < rows; j++) {
            max0 = max0.max(FloatVector.fromArray(SPECIES, scores, j * stride + lane));
        }
        FloatVector newMax = max0.max(max1).max(max2.max(max3));
        FloatVector blockSum = FloatVector.zero(SPECIES);
        for (j = 0; j < rows; j++) {
            int index = j * stride + lane;
            FloatVector p = VectorMath.exp(FloatVector.fromArray(SPECIES, scores, index).sub(newMax));
            p.intoArray(scores, index);
            blockSum = blockSum.add(p);
        }
        FloatVector factor = VectorMath.exp(oldMax.sub(newMax));
        factor.intoArray(rescale, lane);
        newMax.intoArray(max, lane);
        FloatVector.fromArray(SPECIES, sum, lane).fma(factor, blockSum).intoArray(sum, lane);
    }

    /**
     * {@code c[r·stride + d] *= factor[r]} for r < rows, d < stride: the online softmax's rescaling of a row-major
     * output accumulator (stride a whole number of vectors).
     */
    static void scaleRows(float[] c, int stride, int rows, float[] factor) {
        for (int r = 0; r < rows; r++) {
            FloatVector f = FloatVector.broadcast(SPECIES, factor[r]);
            for (int d = 0; d < stride; d += LANES) {
                int index = r * stride + d;
                FloatVector.fromArray(SPECIES, c, index).mul(f).intoArray(c, index);
            }
        }
    }

    /**
     * Backward softmax for the queries in lanes [lane, lane + LANES) of [rows, stride] tiles: scores become
     * P = exp(score − lse) and gradScores (holding dP) become dS = P ∘ (dP − delta); lse and delta are read at
     * {@code statsOffset + lane}.
     */
    static void softmaxGradient(float[] scores, float[] gradScores, int stride, int rows, int lane, float[] lse,
                                float[] delta, int statsOffset) {
        FloatVector l = FloatVector.fromArray(SPECIES, lse, statsOffset + lane);
        FloatVector d = FloatVector.fromArray(SPECIES, delta, statsOffset + lane);
        for (int j = 0; j < rows; j++) {
            int index = j * stride + lane;
            FloatVector p = VectorMath.exp(FloatVector.fromArray(SPECIES, scores, index).sub(l));
            p.intoArray(scores, index);
            p.mul(FloatVector.fromArray(SPECIES, gradScores, index).sub(d)).intoArray(gradScores, index);
        }
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
        if (vectors <= 2) {
            // Narrow products (a head's 16 queries, head_dim 32): eight rows, so that eight or sixteen independent
            // accumulators hide the FMA latency that four chains of one vector leave exposed.
            for (; r + 8 <= rows; r += 8) {
                int bRows = bOffset + r * bRowStride, cRows = cOffset + r * cRowStride;
                if (vectors == 2) {
                    block8x2(b, bRows, bRowStride, bReductionStride, m, mOffset, mRowStride, c, cRows, cRowStride,
                            reduction, accumulate);
                } else if (vectors == 1) {
                    block8x1(b, bRows, bRowStride, bReductionStride, m, mOffset, mRowStride, c, cRows, cRowStride,
                            reduction, accumulate);
                }
            }
        }
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

    /**
     * Transposes one token row of a [N, tokens, H·Dh] tensor, scaled, into column {@code column} of a
     * [count, QUERY_BLOCK] tile: {@code tile[d·QUERY_BLOCK + column] = scale · source[byteOffset + d]}.
     */
    static void rowToColumn(MemorySegment source, long byteOffset, int count, float scale, float[] tile,
                            int column) {
        int d = 0;
        for (; d + LANES <= count; d += LANES) {
            FloatVector.fromMemorySegment(SPECIES, source, byteOffset + (long) d * Float.BYTES, ORDER).mul(scale)
                    .intoArray(tile, d * QUERY_BLOCK + column, COLUMN, 0);
        }
        for (; d < count; d++) {
            tile[d * QUERY_BLOCK + column] =
                    scale * source.get(ValueLayout.JAVA_FLOAT, byteOffset + (long) d * Float.BYTES);
        }
    }

    /** {@code tile[offset + d] = source[byteOffset + d]} for d < count: whole vectors, then a scalar tail. */
    static void copyRow(MemorySegment source, long byteOffset, float[] tile, int offset, int count) {
        int d = 0;
        for (; d + LANES <= count; d += LANES) {
            FloatVector.fromMemorySegment(SPECIES, source, byteOffset + (long) d * Float.BYTES, ORDER)
                    .intoArray(tile, offset + d);
        }
        for (; d < count; d++) {
            tile[offset + d] = source.get(ValueLayout.JAVA_FLOAT, byteOffset + (long) d * Float.BYTES);
        }
    }

    /**
     * {@code dots[r] = sum over d < count of a[offset + r·stride + d] · b[offset + r·stride + d]} for r < rows, each
     * sum in d's order from 0 (a product rounded, then the add), eight rows at a time: one row's sum is a chain of
     * dependent adds, and eight independent chains keep the adder busy.
     */
    static void rowDots(float[] a, float[] b, int offset, int stride, int count, int rows, float[] dots) {
        int r = 0;
        for (; r + 8 <= rows; r += 8) {
            float s0 = 0f, s1 = 0f, s2 = 0f, s3 = 0f, s4 = 0f, s5 = 0f, s6 = 0f, s7 = 0f;
            int i0 = offset + r * stride, i1 = i0 + stride, i2 = i1 + stride, i3 = i2 + stride, i4 = i3 + stride;
            int i5 = i4 + stride, i6 = i5 + stride, i7 = i6 + stride;
            for (int d = 0; d < count; d++) {
                s0 += a[i0 + d] * b[i0 + d];
                s1 += a[i1 + d] * b[i1 + d];
                s2 += a[i2 + d] * b[i2 + d];
                s3 += a[i3 + d] * b[i3 + d];
                s4 += a[i4 + d] * b[i4 + d];
                s5 += a[i5 + d] * b[i5 + d];
                s6 += a[i6 + d] * b[i6 + d];
                s7 += a[i7 + d] * b[i7 + d];
            }
            dots[r] = s0;
            dots[r + 1] = s1;
            dots[r + 2] = s2;
            dots[r + 3] = s3;
            dots[r + 4] = s4;
            dots[r + 5] = s5;
            dots[r + 6] = s6;
            dots[r + 7] = s7;
        }
        for (; r < rows; r++) {
            float sum = 0f;
            for (int d = 0; d < count; d++) {
                sum += a[offset + r * stride + d] * b[offset + r * stride + d];
            }
            dots[r] = sum;
        }
    }

    /** Lane k at k·stride: the index map that walks a column of a tile whose rows are {@code stride} floats long. */
    static int[] columnMap(int stride) {
        return IntStream.range(0, LANES).map(k -> k * stride).toArray();
    }

    /**
     * {@code tile[d·stride + column] = scale · source[offset + d]} for d < count, with {@code columns} the
     * {@link #columnMap} of stride: a row of an array tile scattered into a column of a query-major one.
     */
    static void rowToColumn(float[] source, int offset, int count, float scale, float[] tile, int column,
                            int stride, int[] columns) {
        int d = 0;
        for (; d + LANES <= count; d += LANES) {
            FloatVector.fromArray(SPECIES, source, offset + d).mul(scale)
                    .intoArray(tile, d * stride + column, columns, 0);
        }
        for (; d < count; d++) {
            tile[d * stride + column] = scale * source[offset + d];
        }
    }

    /** {@code target[byteOffset + d] = scale · source[offset + d]} for d < count. */
    static void scaleRow(float[] source, int offset, int count, float scale, MemorySegment target, long byteOffset) {
        int d = 0;
        for (; d + LANES <= count; d += LANES) {
            FloatVector.fromArray(SPECIES, source, offset + d).mul(scale)
                    .intoMemorySegment(target, byteOffset + (long) d * Float.BYTES, ORDER);
        }
        for (; d < count; d++) {
            target.set(ValueLayout.JAVA_FLOAT, byteOffset + (long) d * Float.BYTES, scale * source[offset + d]);
        }
    }

    private static FloatVector start(float[] c, int index, boolean accumulate) {
        return accumulate ? FloatVector.fromArray(SPECIES, c, index) : FloatVector.zero(SPECIES);
    }

    /**
     * Checks the last element each operand's loop reads once, up front; with indices advanced by adding strides
     * (rather than multiplying the step) C2 then drops most per-iteration checks: about 20% faster.
     */
    private static void checkReach(float[] b, int bBase, int bLastOffset, int bStep, float[] m, int mBase,
                                   int mWidth, int mRow, int reduction) {
        if (reduction > 0) {
            Objects.checkIndex(bBase + (reduction - 1) * bStep + bLastOffset, b.length);
            Objects.checkIndex(mBase + (reduction - 1) * mRow + mWidth - 1, m.length);
        }
    }

    private static void block4x4(float[] b, int bBase, int bRow, int bStep, float[] m, int mBase, int mRow,
                                 float[] c, int cBase, int cRow, int reduction, boolean accumulate) {
        checkReach(b, bBase, 3 * bRow, bStep, m, mBase, 4 * LANES, mRow, reduction);
        int c1 = cBase + cRow, c2 = c1 + cRow, c3 = c2 + cRow;
        FloatVector a00 = start(c, cBase, accumulate), a01 = start(c, cBase + LANES, accumulate);
        FloatVector a02 = start(c, cBase + 2 * LANES, accumulate), a03 = start(c, cBase + 3 * LANES, accumulate);
        FloatVector a10 = start(c, c1, accumulate), a11 = start(c, c1 + LANES, accumulate);
        FloatVector a12 = start(c, c1 + 2 * LANES, accumulate), a13 = start(c, c1 + 3 * LANES, accumulate);
        FloatVector a20 = start(c, c2, accumulate), a21 = start(c, c2 + LANES, accumulate);
        FloatVector a22 = start(c, c2 + 2 * LANES, accumulate), a23 = start(c, c2 + 3 * LANES, accumulate);
        FloatVector a30 = start(c, c3, accumulate), a31 = start(c, c3 + LANES, accumulate);
        FloatVector a32 = start(c, c3 + 2 * LANES, accumulate), a33 = start(c, c3 + 3 * LANES, accumulate);
        int mi = mBase, bi = bBase;
        for (int s = 0; s < reduction; s++, mi += mRow, bi += bStep) {
            FloatVector m0 = FloatVector.fromArray(SPECIES, m, mi);
            FloatVector m1 = FloatVector.fromArray(SPECIES, m, mi + LANES);
            FloatVector m2 = FloatVector.fromArray(SPECIES, m, mi + 2 * LANES);
            FloatVector m3 = FloatVector.fromArray(SPECIES, m, mi + 3 * LANES);
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
        checkReach(b, bBase, 3 * bRow, bStep, m, mBase, 2 * LANES, mRow, reduction);
        int c1 = cBase + cRow, c2 = c1 + cRow, c3 = c2 + cRow;
        FloatVector a00 = start(c, cBase, accumulate), a01 = start(c, cBase + LANES, accumulate);
        FloatVector a10 = start(c, c1, accumulate), a11 = start(c, c1 + LANES, accumulate);
        FloatVector a20 = start(c, c2, accumulate), a21 = start(c, c2 + LANES, accumulate);
        FloatVector a30 = start(c, c3, accumulate), a31 = start(c, c3 + LANES, accumulate);
        int mi = mBase, bi = bBase;
        for (int s = 0; s < reduction; s++, mi += mRow, bi += bStep) {
            FloatVector m0 = FloatVector.fromArray(SPECIES, m, mi);
            FloatVector m1 = FloatVector.fromArray(SPECIES, m, mi + LANES);
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

    private static void block8x2(float[] b, int bBase, int bRow, int bStep, float[] m, int mBase, int mRow,
                                 float[] c, int cBase, int cRow, int reduction, boolean accumulate) {
        checkReach(b, bBase, 7 * bRow, bStep, m, mBase, 2 * LANES, mRow, reduction);
        int c1 = cBase + cRow, c2 = c1 + cRow, c3 = c2 + cRow, c4 = c3 + cRow, c5 = c4 + cRow, c6 = c5 + cRow;
        int c7 = c6 + cRow;
        FloatVector a00 = start(c, cBase, accumulate), a01 = start(c, cBase + LANES, accumulate);
        FloatVector a10 = start(c, c1, accumulate), a11 = start(c, c1 + LANES, accumulate);
        FloatVector a20 = start(c, c2, accumulate), a21 = start(c, c2 + LANES, accumulate);
        FloatVector a30 = start(c, c3, accumulate), a31 = start(c, c3 + LANES, accumulate);
        FloatVector a40 = start(c, c4, accumulate), a41 = start(c, c4 + LANES, accumulate);
        FloatVector a50 = start(c, c5, accumulate), a51 = start(c, c5 + LANES, accumulate);
        FloatVector a60 = start(c, c6, accumulate), a61 = start(c, c6 + LANES, accumulate);
        FloatVector a70 = start(c, c7, accumulate), a71 = start(c, c7 + LANES, accumulate);
        int mi = mBase, bi = bBase;
        for (int s = 0; s < reduction; s++, mi += mRow, bi += bStep) {
            FloatVector m0 = FloatVector.fromArray(SPECIES, m, mi);
            FloatVector m1 = FloatVector.fromArray(SPECIES, m, mi + LANES);
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
            FloatVector b4 = FloatVector.broadcast(SPECIES, b[bi + 4 * bRow]);
            a40 = m0.fma(b4, a40);
            a41 = m1.fma(b4, a41);
            FloatVector b5 = FloatVector.broadcast(SPECIES, b[bi + 5 * bRow]);
            a50 = m0.fma(b5, a50);
            a51 = m1.fma(b5, a51);
            FloatVector b6 = FloatVector.broadcast(SPECIES, b[bi + 6 * bRow]);
            a60 = m0.fma(b6, a60);
            a61 = m1.fma(b6, a61);
            FloatVector b7 = FloatVector.broadcast(SPECIES, b[bi + 7 * bRow]);
            a70 = m0.fma(b7, a70);
            a71 = m1.fma(b7, a71);
        }
        a00.intoArray(c, cBase);
        a01.intoArray(c, cBase + LANES);
        a10.intoArray(c, c1);
        a11.intoArray(c, c1 + LANES);
        a20.intoArray(c, c2);
        a21.intoArray(c, c2 + LANES);
        a30.intoArray(c, c3);
        a31.intoArray(c, c3 + LANES);
        a40.intoArray(c, c4);
        a41.intoArray(c, c4 + LANES);
        a50.intoArray(c, c5);
        a51.intoArray(c, c5 + LANES);
        a60.intoArray(c, c6);
        a61.intoArray(c, c6 + LANES);
        a70.intoArray(c, c7);
        a71.intoArray(c, c7 + LANES);
    }

    private static void block8x1(float[] b, int bBase, int bRow, int bStep, float[] m, int mBase, int mRow,
                                 float[] c, int cBase, int cRow, int reduction, boolean accumulate) {
        checkReach(b, bBase, 7 * bRow, bStep, m, mBase, LANES, mRow, reduction);
        int c1 = cBase + cRow, c2 = c1 + cRow, c3 = c2 + cRow, c4 = c3 + cRow, c5 = c4 + cRow, c6 = c5 + cRow;
        int c7 = c6 + cRow;
        FloatVector a0 = start(c, cBase, accumulate), a1 = start(c, c1, accumulate);
        FloatVector a2 = start(c, c2, accumulate), a3 = start(c, c3, accumulate);
        FloatVector a4 = start(c, c4, accumulate), a5 = start(c, c5, accumulate);
        FloatVector a6 = start(c, c6, accumulate), a7 = start(c, c7, accumulate);
        int mi = mBase, bi = bBase;
        for (int s = 0; s < reduction; s++, mi += mRow, bi += bStep) {
            FloatVector m0 = FloatVector.fromArray(SPECIES, m, mi);
            a0 = m0.fma(FloatVector.broadcast(SPECIES, b[bi]), a0);
            a1 = m0.fma(FloatVector.broadcast(SPECIES, b[bi + bRow]), a1);
            a2 = m0.fma(FloatVector.broadcast(SPECIES, b[bi + 2 * bRow]), a2);
            a3 = m0.fma(FloatVector.broadcast(SPECIES, b[bi + 3 * bRow]), a3);
            a4 = m0.fma(FloatVector.broadcast(SPECIES, b[bi + 4 * bRow]), a4);
            a5 = m0.fma(FloatVector.broadcast(SPECIES, b[bi + 5 * bRow]), a5);
            a6 = m0.fma(FloatVector.broadcast(SPECIES, b[bi + 6 * bRow]), a6);
            a7 = m0.fma(FloatVector.broadcast(SPECIES, b[bi + 7 * bRow]), a7);
        }
        a0.intoArray(c, cBase);
        a1.intoArray(c, c1);
        a2.intoArray(c, c2);
        a3.intoArray(c, c3);
        a4.intoArray(c, c4);
        a5.intoArray(c, c5);
        a6.intoArray(c, c6);
        a7.intoArray(c, c7);
    }

    private static void block4x1(float[] b, int bBase, int bRow, int bStep, float[] m, int mBase, int mRow,
                                 float[] c, int cBase, int cRow, int reduction, boolean accumulate) {
        checkReach(b, bBase, 3 * bRow, bStep, m, mBase, LANES, mRow, reduction);
        int c1 = cBase + cRow, c2 = c1 + cRow, c3 = c2 + cRow;
        FloatVector a0 = start(c, cBase, accumulate), a1 = start(c, c1, accumulate);
        FloatVector a2 = start(c, c2, accumulate), a3 = start(c, c3, accumulate);
        int mi = mBase, bi = bBase;
        for (int s = 0; s < reduction; s++, mi += mRow, bi += bStep) {
            FloatVector m0 = FloatVector.fromArray(SPECIES, m, mi);
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
        int mi = mBase, bi = bBase;
        for (int s = 0; s < reduction; s++, mi += mRow, bi += bStep) {
            a = FloatVector.fromArray(SPECIES, m, mi).fma(FloatVector.broadcast(SPECIES, b[bi]), a);
        }
        a.intoArray(c, cBase);
    }
}
