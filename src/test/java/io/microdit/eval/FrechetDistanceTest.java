package io.microdit.eval;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;

class FrechetDistanceTest {
    private static double[][] identity(int d) {
        double[][] r = new double[d][d];
        for (int k = 0; k < d; k++) {
            r[k][k] = 1;
        }
        return r;
    }

    /** A rotation of the plane by angle a, embedded in the coordinates (i, j) of a d×d identity. */
    private static double[][] givens(int d, int i, int j, double a) {
        double[][] r = identity(d);
        r[i][i] = Math.cos(a);
        r[j][j] = Math.cos(a);
        r[i][j] = -Math.sin(a);
        r[j][i] = Math.sin(a);
        return r;
    }

    private static double[][] transpose(double[][] m) {
        double[][] t = new double[m[0].length][m.length];
        for (int i = 0; i < m.length; i++) {
            for (int j = 0; j < m[0].length; j++) {
                t[j][i] = m[i][j];
            }
        }
        return t;
    }

    /** R·diag(values)·Rᵀ. */
    private static double[][] rotatedDiagonal(double[][] rotation, double[] values) {
        double[][] diagonal = new double[values.length][values.length];
        for (int i = 0; i < values.length; i++) {
            diagonal[i][i] = values[i];
        }
        return FrechetDistance.multiply(FrechetDistance.multiply(rotation, diagonal), transpose(rotation));
    }

    /** A random orthogonal matrix: a product of Givens rotations over every pair of coordinates. */
    private static double[][] randomRotation(int d, Random random) {
        double[][] r = identity(d);
        for (int i = 0; i < d; i++) {
            for (int j = i + 1; j < d; j++) {
                r = FrechetDistance.multiply(r, givens(d, i, j, random.nextDouble() * 2 * Math.PI));
            }
        }
        return r;
    }

    /**
     * Covariances diagonal in one shared basis commute, and the distance is |μ1 − μ2|² + Σ (√a_i − √b_i)²: the
     * rotation must not change it.
     */
    @Test
    void sharedBasisMatchesTheClosedForm() {
        Random random = new Random(1);
        int d = 17;
        double[] a = new double[d], b = new double[d], mean1 = new double[d], mean2 = new double[d];
        double expected = 0;
        for (int i = 0; i < d; i++) {
            a[i] = 0.1 + 3 * random.nextDouble();
            b[i] = 0.1 + 3 * random.nextDouble();
            mean1[i] = random.nextGaussian();
            mean2[i] = random.nextGaussian();
            expected += Math.pow(mean1[i] - mean2[i], 2) + Math.pow(Math.sqrt(a[i]) - Math.sqrt(b[i]), 2);
        }
        assertEquals(expected, FrechetDistance.distance(mean1, rotatedDiagonal(identity(d), a), mean2,
                rotatedDiagonal(identity(d), b)), 1e-9 * expected);
        double[][] rotation = randomRotation(d, random);
        assertEquals(expected, FrechetDistance.distance(mean1, rotatedDiagonal(rotation, a), mean2,
                rotatedDiagonal(rotation, b)), 1e-9 * expected);
    }

    /**
     * Non-commuting 2×2 covariances: for a 2×2 positive semi-definite M, Tr √M = √(Tr M + 2√det M), and
     * M = Σ1^½ Σ2 Σ1^½ has Tr M = Tr(Σ1 Σ2) and det M = det Σ1 · det Σ2.
     */
    @Test
    void nonCommutingTwoByTwoMatchesTheClosedForm() {
        double[][] s1 = rotatedDiagonal(givens(2, 0, 1, 0.3), new double[] {4, 0.25});
        double[][] s2 = rotatedDiagonal(givens(2, 0, 1, 1.2), new double[] {1.5, 0.7});
        double[][] product = FrechetDistance.multiply(s1, s2);
        double traceProduct = product[0][0] + product[1][1];
        double det1 = s1[0][0] * s1[1][1] - s1[0][1] * s1[1][0];
        double det2 = s2[0][0] * s2[1][1] - s2[0][1] * s2[1][0];
        double traceRoot = Math.sqrt(traceProduct + 2 * Math.sqrt(det1 * det2));
        double[] mean1 = {0.5, -1}, mean2 = {2, 1};
        double expected = 1.5 * 1.5 + 2 * 2 + s1[0][0] + s1[1][1] + s2[0][0] + s2[1][1] - 2 * traceRoot;
        double actual = FrechetDistance.distance(mean1, s1, mean2, s2);
        assertEquals(expected, actual, 1e-10);
        assertTrue(actual > 0);
    }

    @Test
    void eigendecompositionReconstructsTheMatrix() {
        Random random = new Random(2);
        int d = 33;
        double[][] m = new double[d][d];
        for (int i = 0; i < d; i++) {
            for (int j = i; j < d; j++) {
                m[i][j] = random.nextGaussian();
                m[j][i] = m[i][j];
            }
        }
        FrechetDistance.Eigen eigen = FrechetDistance.symmetricEigen(m);
        double[][] v = eigen.vectors();
        for (int i = 0; i < d; i++) {
            for (int j = 0; j < d; j++) {
                double rebuilt = 0, orthogonality = 0;
                for (int k = 0; k < d; k++) {
                    rebuilt += v[i][k] * eigen.values()[k] * v[j][k];
                    orthogonality += v[k][i] * v[k][j];
                }
                assertEquals(m[i][j], rebuilt, 1e-10);
                assertEquals(i == j ? 1 : 0, orthogonality, 1e-10);
            }
        }
    }

    /** Samples of two correlated Gaussians: the sample FD approaches the exact one (bias O(d/n)). */
    @Test
    void samplesApproachTheExactDistance() {
        Random random = new Random(3);
        int d = 5, n = 40_000;
        double[][] rotation = randomRotation(d, random);
        double[] a = {2, 1, 0.5, 0.3, 0.1}, b = {1, 1.5, 0.2, 0.6, 0.05};
        double[] mean1 = {0, 1, 0, -1, 0.5}, mean2 = {0.3, 1, -0.2, -1, 0.5};
        double[][] root1 = FrechetDistance.sqrtPsd(rotatedDiagonal(rotation, a));
        double[][] unrelated = randomRotation(d, random);
        double[][] s2 = rotatedDiagonal(unrelated, b);
        double exact = FrechetDistance.distance(mean1, rotatedDiagonal(rotation, a), mean2, s2);
        double[][] root2 = FrechetDistance.sqrtPsd(s2);
        float[] x = sample(random, n, mean1, root1);
        float[] y = sample(random, n, mean2, root2);
        double estimate = FrechetDistance.distance(FrechetDistance.moments(x, n, d),
                FrechetDistance.moments(y, n, d));
        assertEquals(exact, estimate, 0.03 * exact + 0.01, "exact " + exact + ", from samples " + estimate);
        double self = FrechetDistance.distance(FrechetDistance.moments(x, n, d), FrechetDistance.moments(x, n, d));
        assertEquals(0, self, 1e-9);
    }

    private static float[] sample(Random random, int n, double[] mean, double[][] root) {
        int d = mean.length;
        float[] out = new float[n * d];
        double[] z = new double[d];
        for (int s = 0; s < n; s++) {
            for (int i = 0; i < d; i++) {
                z[i] = random.nextGaussian();
            }
            for (int i = 0; i < d; i++) {
                double value = mean[i];
                for (int j = 0; j < d; j++) {
                    value += root[i][j] * z[j];
                }
                out[s * d + i] = (float) value;
            }
        }
        return out;
    }

    @Test
    void badArgumentsAreRejected() {
        IllegalArgumentException few = assertThrows(IllegalArgumentException.class,
                () -> FrechetDistance.moments(new float[3], 1, 3));
        assertTrue(few.getMessage().contains("at least 2"), few.getMessage());
        IllegalArgumentException size = assertThrows(IllegalArgumentException.class,
                () -> FrechetDistance.moments(new float[7], 2, 3));
        assertTrue(size.getMessage().contains("7 values"), size.getMessage());
        FrechetDistance.Moments two = FrechetDistance.moments(new float[] {1, 2, 3, 5}, 2, 2);
        FrechetDistance.Moments three = FrechetDistance.moments(new float[] {1, 2, 3, 5, 6, 7}, 2, 3);
        IllegalArgumentException dims = assertThrows(IllegalArgumentException.class,
                () -> FrechetDistance.distance(two, three));
        assertTrue(dims.getMessage().contains("dimensions differ"), dims.getMessage());
    }
}
