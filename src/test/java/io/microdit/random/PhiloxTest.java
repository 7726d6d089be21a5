package io.microdit.random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class PhiloxTest {
    private static final long SEED = 0x0123_4567_89AB_CDEFL;

    /** Random123's known-answer vectors for philox4x32-10 (tests/kat_vectors): counter, key, expected output. */
    @ParameterizedTest
    @CsvSource({
        "00000000 00000000 00000000 00000000, 00000000 00000000, 6627e8d5 e169c58d bc57ac4c 9b00dbd8",
        "ffffffff ffffffff ffffffff ffffffff, ffffffff ffffffff, 408f276d 41c83b0e a20bc7c6 6d5451fd",
        "243f6a88 85a308d3 13198a2e 03707344, a4093822 299f31d0, d16cfe09 94fdcceb 5001e420 24126ea1"})
    void blockMatchesRandom123KnownAnswers(String counter, String key, String expected) {
        assertArrayEquals(words(expected), Philox.block(words(counter), words(key)));
    }

    private static int[] words(String hex) {
        return Arrays.stream(hex.trim().split("\\s+")).mapToInt(w -> Integer.parseUnsignedInt(w, 16)).toArray();
    }

    @Test
    void blockRejectsWrongWordCounts() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Philox.block(new int[3], new int[2]));
        assertTrue(e.getMessage().contains("4 counter words"), e.getMessage());
    }

    @Test
    void elementsFollowTheDocumentedCounterLayout() {
        long stream = 0x0000_0007_0000_0003L;
        long offset = (5L << 32) + 13; // counter index above 2^32 exercises the high counter word
        float[] uniforms = new float[11];
        float[] normals = new float[11];
        Philox.fillUniform(SEED, stream, offset, uniforms);
        Philox.fillNormal(SEED, stream, offset, normals);
        for (int i = 0; i < uniforms.length; i++) {
            long e = offset + i;
            long c = e >>> 2;
            int[] w = Philox.block(new int[] {(int) c, (int) (c >>> 32), 3, 7},
                    new int[] {0x89AB_CDEF, 0x0123_4567});
            int word = w[(int) (e % 4)];
            assertEquals((float) ((word >>> 8) / 16777216.0), uniforms[i], "uniform element " + e);
            int a = w[(int) (e % 4) / 2 * 2];
            int b = w[(int) (e % 4) / 2 * 2 + 1];
            double u1 = (Integer.toUnsignedLong(a) + 1.0) / 4294967296.0;
            double u2 = Integer.toUnsignedLong(b) / 4294967296.0;
            double r = Math.sqrt(-2 * StrictMath.log(u1));
            double theta = 2 * Math.PI * u2;
            float expected = (float) (r * (e % 2 == 0 ? StrictMath.cos(theta) : StrictMath.sin(theta)));
            assertEquals(expected, normals[i], "normal element " + e);
            assertEquals(word, Philox.bits(SEED, stream, e));
            assertEquals(uniforms[i], Philox.uniform(SEED, stream, e));
            assertEquals(normals[i], Philox.normal(SEED, stream, e));
        }
    }

    @Test
    void uniformMappingIsExactAndBelowOne() {
        assertEquals(0f, Philox.uniformOf(0));
        assertEquals(0f, Philox.uniformOf(0xFF)); // the low 8 bits are dropped
        assertEquals(0x1.0p-24f, Philox.uniformOf(0x100));
        assertEquals(0.5f, Philox.uniformOf(0x8000_0000));
        float largest = Philox.uniformOf(0xFFFF_FFFF);
        assertEquals(1.0 - 0x1.0p-24, largest, 0.0);
        assertTrue(largest < 1f);
    }

    @Test
    void normalMappingNeverTakesLogOfZero() {
        // a = 0 is the smallest u1 = 2^-32: the largest radius sqrt(64 ln 2), finite.
        assertEquals(Math.sqrt(64 * Math.log(2)), Philox.normalOf(0, 0, false), 1e-5);
        assertEquals(0f, Philox.normalOf(0, 0, true), 0f);
        // a = 2^32 - 1 gives u1 = 1 and radius 0.
        assertEquals(0f, Philox.normalOf(0xFFFF_FFFF, 0x1234_5678, false), 0f);
        assertEquals(0f, Philox.normalOf(0xFFFF_FFFF, 0x1234_5678, true), 0f);
        // b = 2^30 is a quarter turn: all of the radius goes to the sine branch.
        float radius = Philox.normalOf(0x8000_0000, 0, false);
        assertEquals(Math.sqrt(-2 * Math.log(0.5 + 0x1.0p-32)), radius, 1e-6);
        assertEquals(radius, Philox.normalOf(0x8000_0000, 0x4000_0000, true), 1e-6);
        assertEquals(0f, Philox.normalOf(0x8000_0000, 0x4000_0000, false), 1e-6);
    }

    @ParameterizedTest
    @CsvSource({"0, 1", "0, 5", "3, 5", "4, 5", "6, 1", "7, 3", "1000001, 5", "1000002, 17"})
    void requestAtALaterOffsetIsASuffix(long offset, int shift) {
        float[] uniforms = new float[77];
        float[] normals = new float[77];
        Philox.fillUniform(SEED, 9, offset, uniforms);
        Philox.fillNormal(SEED, 9, offset, normals);
        float[] laterUniforms = new float[77 - shift];
        float[] laterNormals = new float[77 - shift];
        Philox.fillUniform(SEED, 9, offset + shift, laterUniforms);
        Philox.fillNormal(SEED, 9, offset + shift, laterNormals);
        assertArrayEquals(Arrays.copyOfRange(uniforms, shift, 77), laterUniforms);
        assertArrayEquals(Arrays.copyOfRange(normals, shift, 77), laterNormals);
    }

    @Test
    void fillWritesOnlyItsWindow() {
        float[] out = new float[20];
        Arrays.fill(out, Float.NaN);
        Philox.fillNormal(SEED, 1, 3, out, 5, 9);
        for (int i = 0; i < out.length; i++) {
            boolean inside = i >= 5 && i < 14;
            assertEquals(inside, !Float.isNaN(out[i]), "index " + i);
            if (inside) {
                assertEquals(Philox.normal(SEED, 1, 3 + i - 5), out[i]);
            }
        }
    }

    @Test
    void streamsAndSeedsGiveDifferentNumbers() {
        float[] base = uniforms(SEED, 0);
        long[][] variants = {
            {SEED, 1}, {SEED, 1L << 32}, {SEED + 1, 0}, {SEED + (1L << 32), 0}, {SEED, -1}};
        for (long[] v : variants) {
            float[] other = uniforms(v[0], v[1]);
            int equal = 0;
            for (int i = 0; i < base.length; i++) {
                equal += base[i] == other[i] ? 1 : 0;
            }
            // Independent uniforms on a 2^-24 grid coincide with probability 2^-24 each.
            assertTrue(equal <= 1, "seed " + v[0] + " stream " + v[1] + " repeats " + equal + " of 1000 values");
        }
    }

    private static float[] uniforms(long seed, long stream) {
        float[] out = new float[1000];
        Philox.fillUniform(seed, stream, 0, out);
        return out;
    }

    @Test
    void uniformsHaveTheMomentsAndDistributionOfU01() {
        int n = 1_000_000;
        float[] u = new float[n];
        Philox.fillUniform(SEED, 2, 123, u);
        double sum = 0;
        double sumSquares = 0;
        for (float v : u) {
            assertTrue(v >= 0f && v < 1f, "uniform out of [0, 1): " + v);
            sum += v;
            sumSquares += (double) v * v;
        }
        double mean = sum / n;
        double variance = sumSquares / n - mean * mean;
        // Five standard errors: sd(mean) = sqrt(1/12/n), sd(variance) = sqrt((1/80 - 1/144)/n).
        assertEquals(0.5, mean, 5 * Math.sqrt(1.0 / 12 / n));
        assertEquals(1.0 / 12, variance, 5 * Math.sqrt((1.0 / 80 - 1.0 / 144) / n));
        double d = kolmogorovSmirnov(u, x -> x);
        assertTrue(d < 1.95 / Math.sqrt(n), "KS distance to U(0,1) " + d);
    }

    @Test
    void normalsHaveTheMomentsAndDistributionOfN01() {
        int n = 100_000;
        float[] z = new float[n];
        Philox.fillNormal(SEED, 3, 7, z);
        double sum = 0;
        double sumSquares = 0;
        double lagProducts = 0;
        for (int i = 0; i < n; i++) {
            assertTrue(Float.isFinite(z[i]), "normal not finite: " + z[i]);
            sum += z[i];
            sumSquares += (double) z[i] * z[i];
            if (i + 1 < n) {
                lagProducts += (double) z[i] * z[i + 1];
            }
        }
        double mean = sum / n;
        double variance = sumSquares / n - mean * mean;
        assertEquals(0, mean, 5 / Math.sqrt(n));
        assertEquals(1, variance, 5 * Math.sqrt(2.0 / n));
        // The cosine and sine of one pair are independent: no correlation between neighbours.
        assertEquals(0, lagProducts / (n - 1), 5 / Math.sqrt(n));
        double d = kolmogorovSmirnov(z, PhiloxTest::normalCdf);
        // 1.95 / sqrt(n) is the 0.1% critical value of the KS statistic.
        assertTrue(d < 1.95 / Math.sqrt(n), "KS distance to N(0,1) " + d);
    }

    @Test
    void ksCheckRejectsAWrongDistribution() {
        int n = 100_000;
        float[] z = new float[n];
        Philox.fillNormal(SEED, 3, 7, z);
        for (int i = 0; i < n; i++) {
            z[i] *= 1.05f;
        }
        assertTrue(kolmogorovSmirnov(z, PhiloxTest::normalCdf) > 1.95 / Math.sqrt(n));
    }

    private static double kolmogorovSmirnov(float[] sample, java.util.function.DoubleUnaryOperator cdf) {
        float[] sorted = sample.clone();
        Arrays.sort(sorted);
        int n = sorted.length;
        double d = 0;
        for (int i = 0; i < n; i++) {
            double f = cdf.applyAsDouble(sorted[i]);
            d = Math.max(d, Math.max(f - (double) i / n, (double) (i + 1) / n - f));
        }
        return d;
    }

    /** Φ(x) through erfc by Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7, far under the KS bound). */
    private static double normalCdf(double x) {
        double t = Math.abs(x) / Math.sqrt(2);
        double k = 1 / (1 + 0.3275911 * t);
        double poly = k * (0.254829592 + k * (-0.284496736 + k * (1.421413741 + k * (-1.453152027
                + k * 1.061405429))));
        double erfc = poly * Math.exp(-t * t);
        return x >= 0 ? 1 - erfc / 2 : erfc / 2;
    }

    @Test
    void badRangesAreRejected() {
        IllegalArgumentException negative = assertThrows(IllegalArgumentException.class,
                () -> Philox.fillUniform(1, 0, -1, new float[3]));
        assertTrue(negative.getMessage().contains("offset must be non-negative"), negative.getMessage());
        IllegalArgumentException overflow = assertThrows(IllegalArgumentException.class,
                () -> Philox.fillNormal(1, 0, Long.MAX_VALUE - 1, new float[3]));
        assertTrue(overflow.getMessage().contains("2^63 - 1"), overflow.getMessage());
        assertThrows(IndexOutOfBoundsException.class, () -> Philox.fillUniform(1, 0, 0, new float[3], 2, 2));
        assertFalse(Float.isNaN(Philox.uniform(1, 0, Long.MAX_VALUE - 1)));
        assertNotEquals(Philox.bits(1, 0, 0), Philox.bits(1, 0, 1));
    }
}
