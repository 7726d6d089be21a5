package io.microdit.random;

import java.util.Objects;

/**
 * Philox4x32-10 (Salmon, Moraes, Dror and Shaw, "Parallel random numbers: as easy as 1, 2, 3", SC 2011; the
 * Random123 library) and the project's recipe for turning its output into uniform and normal floats. The recipe
 * below is a contract: the CUDA kernels implement it word for word, so a CPU run and a GPU run with one seed draw
 * the same noise, σ and masks. Changing anything here changes every seeded result of the project.
 *
 * <h2>The block function</h2>
 * A 128-bit counter {@code (x0, x1, x2, x3)} and a 64-bit key {@code (k0, k1)}, all unsigned 32-bit words, go
 * through 10 rounds. One round, with {@code mulhilo(a, b)} the high and low words of the 64-bit product:
 * <pre>
 *   (hi0, lo0) = mulhilo(0xD2511F53, x0)
 *   (hi1, lo1) = mulhilo(0xCD9E8D57, x2)
 *   (x0, x1, x2, x3) = (hi1 ^ x1 ^ k0, lo1, hi0 ^ x3 ^ k1, lo0)
 * </pre>
 * Between rounds (9 times) the key is bumped by the Weyl constants: {@code k0 += 0x9E3779B9},
 * {@code k1 += 0xBB67AE85} (mod 2^32). The output is the counter after round 10, words {@code w0..w3}. This is
 * Random123's {@code philox4x32_R(10, ctr, key)}; the tests check its published known-answer vectors.
 *
 * <h2>Which block and word element i of a request uses</h2>
 * A request {@code (seed, stream, offset)} fills {@code n} elements. Element {@code i} has the absolute index
 * {@code e = offset + i} (a non-negative 64-bit integer; requests must keep {@code offset + n <= 2^63 - 1}), and
 * is computed from <em>e alone</em>, so the result never depends on how the work is split among threads or
 * requests. With {@code c = e >>> 2} and {@code j = e & 3}:
 * <pre>
 *   key     = (k0, k1)         = (seed &amp; 0xFFFFFFFF, seed >>> 32)
 *   counter = (x0, x1, x2, x3) = (c &amp; 0xFFFFFFFF, c >>> 32, stream &amp; 0xFFFFFFFF, stream >>> 32)
 *   (w0, w1, w2, w3) = philox4x32_10(counter, key)
 * </pre>
 *
 * <h2>Uniform floats in [0, 1)</h2>
 * {@code u = (float) (w_j >>> 8) * 2^-24}: the top 24 bits of word j. Both the conversion and the product are
 * exact in float32, so uniforms are bit-identical everywhere; the largest value is {@code 1 - 2^-24}, never 1.
 * CUDA: {@code __uint2float_rn(w >> 8) * 0x1p-24f}.
 *
 * <h2>Standard normal floats</h2>
 * Box–Muller on a pair of words of the element's own block: elements {@code 4c} and {@code 4c+1} use words
 * {@code (a, b) = (w0, w1)}, elements {@code 4c+2} and {@code 4c+3} use {@code (a, b) = (w2, w3)}. All in
 * float64 (IEEE binary64, no fused operations; none of the products below feeds an addition, so FMA contraction
 * cannot change anything):
 * <pre>
 *   u1    = ((double) a + 1.0) * 2^-32          in (0, 1], exact: log never sees 0
 *   u2    = (double) b * 2^-32                  in [0, 1), exact
 *   r     = sqrt(-2.0 * log(u1))                r in [0, 6.6604]
 *   theta = 6.283185307179586 * u2              (2π rounded to double, 0x401921FB54442D18)
 *   z     = (float) (r * cos(theta))   for even e       (elements 4c, 4c+2)
 *   z     = (float) (r * sin(theta))   for odd e        (elements 4c+1, 4c+3)
 * </pre>
 * with round-to-nearest-even for the final conversion to float32. Java evaluates log, sin and cos with
 * {@link StrictMath} (fdlibm, the same bits on every JVM and CPU); sqrt is correctly rounded on both sides. CUDA
 * evaluates them with its double-precision {@code log}, {@code sin}, {@code cos} (or {@code sincos}), which are
 * within 1–2 ulp of double but not always identical to fdlibm. These three functions are the only source of
 * disagreement: a double-ulp difference survives the rounding to float32 only when the exact value lies within a
 * few 2^-53 of a float32 rounding boundary, about one element in 10^8, and then the two floats differ by one
 * float32 ulp. Uniforms agree bit for bit always.
 */
public final class Philox {
    /** Round multipliers. */
    public static final int M0 = 0xD2511F53;
    /** The second round multiplier, of counter word x2 ({@link #M0} multiplies x0). */
    public static final int M1 = 0xCD9E8D57;
    /** Weyl key increments (golden ratio and sqrt(3) - 1, as 32-bit fractions). */
    public static final int W0 = 0x9E3779B9;
    /** The Weyl increment of key word k1 ({@link #W0} bumps k0). */
    public static final int W1 = 0xBB67AE85;
    /** Rounds of the block function: Random123's default, a safety margin over the fewest that pass BigCrush. */
    public static final int ROUNDS = 10;

    private static final long UNSIGNED = 0xFFFFFFFFL;
    private static final long M0_UNSIGNED = M0 & UNSIGNED;
    private static final long M1_UNSIGNED = M1 & UNSIGNED;
    private static final float TWO_POW_MINUS_24 = 0x1.0p-24f;
    private static final double TWO_POW_MINUS_32 = 0x1.0p-32;
    private static final double TWO_PI = 0x1.921fb54442d18p2;

    private Philox() {
    }

    /** The block function: Philox4x32-10 of {@code counter} under {@code key}, written into {@code out[0..3]}. */
    public static void block(int x0, int x1, int x2, int x3, int k0, int k1, int[] out) {
        for (int round = 0; round < ROUNDS; round++) {
            if (round > 0) {
                k0 += W0;
                k1 += W1;
            }
            long product0 = M0_UNSIGNED * (x0 & UNSIGNED);
            long product1 = M1_UNSIGNED * (x2 & UNSIGNED);
            int y0 = (int) (product1 >>> 32) ^ x1 ^ k0;
            int y2 = (int) (product0 >>> 32) ^ x3 ^ k1;
            x1 = (int) product1;
            x3 = (int) product0;
            x0 = y0;
            x2 = y2;
        }
        out[0] = x0;
        out[1] = x1;
        out[2] = x2;
        out[3] = x3;
    }

    /** The block function on arrays: 4 counter words and 2 key words in, 4 words out. */
    public static int[] block(int[] counter, int[] key) {
        if (counter.length != 4 || key.length != 2) {
            throw new IllegalArgumentException("Philox4x32 takes 4 counter words and 2 key words, got "
                    + counter.length + " and " + key.length);
        }
        int[] out = new int[4];
        block(counter[0], counter[1], counter[2], counter[3], key[0], key[1], out);
        return out;
    }

    /** The block of counter index {@code c} for (seed, stream), as in the class documentation. */
    public static void block(long seed, long stream, long c, int[] out) {
        block((int) c, (int) (c >>> 32), (int) stream, (int) (stream >>> 32), (int) seed, (int) (seed >>> 32), out);
    }

    /** The raw 32-bit word behind element {@code index} (word {@code index & 3} of block {@code index >>> 2}). */
    public static int bits(long seed, long stream, long index) {
        checkRange(index, 1);
        int[] words = new int[4];
        block(seed, stream, index >>> 2, words);
        return words[(int) (index & 3)];
    }

    /** The uniform float in [0, 1) that a word maps to: its top 24 bits times 2^-24. */
    public static float uniformOf(int word) {
        return (word >>> 8) * TWO_POW_MINUS_24;
    }

    /**
     * The Box–Muller normal of the word pair (a, b): the cosine branch for {@code sine == false} (even elements),
     * the sine branch otherwise.
     */
    public static float normalOf(int a, int b, boolean sine) {
        double radius = radius(a);
        double theta = TWO_PI * ((b & UNSIGNED) * TWO_POW_MINUS_32);
        return (float) (radius * (sine ? StrictMath.sin(theta) : StrictMath.cos(theta)));
    }

    private static double radius(int a) {
        double u1 = ((a & UNSIGNED) + 1.0) * TWO_POW_MINUS_32;
        return Math.sqrt(-2.0 * StrictMath.log(u1));
    }

    /** Element {@code index} of the uniform stream (seed, stream). */
    public static float uniform(long seed, long stream, long index) {
        return uniformOf(bits(seed, stream, index));
    }

    /** Element {@code index} of the normal stream (seed, stream). */
    public static float normal(long seed, long stream, long index) {
        checkRange(index, 1);
        int[] words = new int[4];
        block(seed, stream, index >>> 2, words);
        int pair = (int) (index & 2);
        return normalOf(words[pair], words[pair + 1], (index & 1) != 0);
    }

    /** Fills {@code out} with elements {@code offset .. offset + out.length - 1} of the uniform stream. */
    public static void fillUniform(long seed, long stream, long offset, float[] out) {
        fillUniform(seed, stream, offset, out, 0, out.length);
    }

    /** Fills {@code out[from .. from + count)} with elements {@code offset .. offset + count - 1} of the uniform stream. */
    public static void fillUniform(long seed, long stream, long offset, float[] out, int from, int count) {
        checkRange(offset, count);
        Objects.checkFromIndexSize(from, count, out.length);
        int[] words = new int[4];
        long end = offset + count;
        long e = offset;
        while (e < end) {
            block(seed, stream, e >>> 2, words);
            long blockEnd = Math.min(end, (e | 3) + 1);
            for (; e < blockEnd; e++) {
                out[from + (int) (e - offset)] = uniformOf(words[(int) (e & 3)]);
            }
        }
    }

    /** Fills {@code out} with elements {@code offset .. offset + out.length - 1} of the normal stream. */
    public static void fillNormal(long seed, long stream, long offset, float[] out) {
        fillNormal(seed, stream, offset, out, 0, out.length);
    }

    /** Fills {@code out[from .. from + count)} with elements {@code offset .. offset + count - 1} of the normal stream. */
    public static void fillNormal(long seed, long stream, long offset, float[] out, int from, int count) {
        checkRange(offset, count);
        Objects.checkFromIndexSize(from, count, out.length);
        int[] words = new int[4];
        long end = offset + count;
        long e = offset;
        while (e < end) {
            block(seed, stream, e >>> 2, words);
            long blockEnd = Math.min(end, (e | 3) + 1);
            while (e < blockEnd) {
                // One radius and angle serve both elements of a pair; the sine is skipped when the pair is cut.
                int pair = (int) (e & 2);
                int a = words[pair];
                int b = words[pair + 1];
                double radius = radius(a);
                double theta = TWO_PI * ((b & UNSIGNED) * TWO_POW_MINUS_32);
                if ((e & 1) == 0) {
                    out[from + (int) (e - offset)] = (float) (radius * StrictMath.cos(theta));
                    e++;
                }
                if (e < blockEnd) {
                    out[from + (int) (e - offset)] = (float) (radius * StrictMath.sin(theta));
                    e++;
                }
            }
        }
    }

    /** Requires element indices offset .. offset + count - 1 to be non-negative and below 2^63 - 1. */
    public static void checkRange(long offset, long count) {
        if (offset < 0) {
            throw new IllegalArgumentException("Philox: offset must be non-negative, got " + offset);
        }
        if (count < 0 || offset > Long.MAX_VALUE - count) {
            throw new IllegalArgumentException("Philox: " + count + " elements from offset " + offset
                    + " run past the last counter index 2^63 - 1");
        }
    }
}
