package io.microdit.eval;

/**
 * The Fréchet distance between two Gaussians fitted to feature sets (the formula FID uses, here over the features
 * of microdit's own Fashion-MNIST classifier, so it is reported as "FD (Fashion-MNIST classifier features)"):
 * {@code |μ1 − μ2|² + Tr(Σ1 + Σ2 − 2·(Σ1^½ Σ2 Σ1^½)^½)}.
 *
 * <p>Everything is double. The matrix square roots come from symmetric eigendecompositions by the cyclic Jacobi
 * method (O(d³) per sweep, a handful of sweeps; fine for d ≤ 256), with eigenvalues that rounding pushes below
 * zero clamped to 0, since both matrices are positive semi-definite in exact arithmetic. Σ1^½ Σ2 Σ1^½ is
 * symmetric, so unlike scipy's {@code sqrtm} of the non-symmetric Σ1·Σ2 no complex parts can appear.
 */
public final class FrechetDistance {
    private static final int MAX_SWEEPS = 100;

    private FrechetDistance() {
    }

    /** Mean and (unbiased, n − 1) covariance of a feature set. */
    public record Moments(double[] mean, double[][] covariance, long count) {
        /** The feature dimension d: the mean has d entries, the covariance d×d. */
        public int dimension() {
            return mean.length;
        }
    }

    /** A symmetric matrix's eigenvalues and its eigenvectors as the columns of {@code vectors}. */
    public record Eigen(double[] values, double[][] vectors) {
    }

    /** Moments of {@code count} feature vectors of {@code dimension} values each, row-major in {@code features}. */
    public static Moments moments(float[] features, int count, int dimension) {
        if (count < 2 || dimension < 1) {
            throw new IllegalArgumentException("FrechetDistance.moments: need at least 2 feature vectors of "
                    + "dimension ≥ 1, got " + count + " of dimension " + dimension);
        }
        if ((long) count * dimension != features.length) {
            throw new IllegalArgumentException("FrechetDistance.moments: " + features.length + " values are not "
                    + count + " vectors of dimension " + dimension);
        }
        double[] mean = new double[dimension];
        for (int n = 0; n < count; n++) {
            for (int i = 0; i < dimension; i++) {
                mean[i] += features[n * dimension + i];
            }
        }
        for (int i = 0; i < dimension; i++) {
            mean[i] /= count;
        }
        double[][] covariance = new double[dimension][dimension];
        double[] centred = new double[dimension];
        for (int n = 0; n < count; n++) {
            for (int i = 0; i < dimension; i++) {
                centred[i] = features[n * dimension + i] - mean[i];
            }
            for (int i = 0; i < dimension; i++) {
                double ci = centred[i];
                double[] row = covariance[i];
                for (int j = i; j < dimension; j++) {
                    row[j] += ci * centred[j];
                }
            }
        }
        for (int i = 0; i < dimension; i++) {
            for (int j = i; j < dimension; j++) {
                covariance[i][j] /= count - 1;
                covariance[j][i] = covariance[i][j];
            }
        }
        return new Moments(mean, covariance, count);
    }

    /** The Fréchet distance between the Gaussians with these moments. */
    public static double distance(Moments a, Moments b) {
        return distance(a.mean(), a.covariance(), b.mean(), b.covariance());
    }

    /**
     * The Fréchet distance ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½) between two Gaussians; throws
     * {@link IllegalArgumentException} when their dimensions differ.
     */
    public static double distance(double[] mean1, double[][] sigma1, double[] mean2, double[][] sigma2) {
        int d = mean1.length;
        if (mean2.length != d || sigma1.length != d || sigma2.length != d) {
            throw new IllegalArgumentException("FrechetDistance: dimensions differ: means " + mean1.length + " and "
                    + mean2.length + ", covariances " + sigma1.length + " and " + sigma2.length);
        }
        double meanTerm = 0;
        for (int i = 0; i < d; i++) {
            double diff = mean1[i] - mean2[i];
            meanTerm += diff * diff;
        }
        double[][] root1 = sqrtPsd(sigma1);
        double[][] product = multiply(multiply(root1, sigma2), root1);
        symmetrize(product);
        double traceRoot = 0;
        for (double value : symmetricEigen(product).values()) {
            traceRoot += Math.sqrt(Math.max(0, value));
        }
        return meanTerm + trace(sigma1) + trace(sigma2) - 2 * traceRoot;
    }

    /** The symmetric positive semi-definite square root V·diag(√max(λ, 0))·Vᵀ. */
    public static double[][] sqrtPsd(double[][] matrix) {
        Eigen eigen = symmetricEigen(matrix);
        int d = matrix.length;
        double[][] v = eigen.vectors();
        double[][] out = new double[d][d];
        for (int k = 0; k < d; k++) {
            double root = Math.sqrt(Math.max(0, eigen.values()[k]));
            for (int i = 0; i < d; i++) {
                double vik = v[i][k] * root;
                for (int j = 0; j < d; j++) {
                    out[i][j] += vik * v[j][k];
                }
            }
        }
        return out;
    }

    /**
     * Cyclic Jacobi: rotate away each off-diagonal element in turn until the off-diagonal mass is negligible
     * against the diagonal. The input is not modified.
     */
    public static Eigen symmetricEigen(double[][] matrix) {
        int d = matrix.length;
        double[][] a = new double[d][];
        for (int i = 0; i < d; i++) {
            if (matrix[i].length != d) {
                throw new IllegalArgumentException("symmetricEigen: the matrix is not square (row " + i + " has "
                        + matrix[i].length + " values, expected " + d + ")");
            }
            a[i] = matrix[i].clone();
        }
        double[][] v = new double[d][d];
        for (int i = 0; i < d; i++) {
            v[i][i] = 1;
        }
        for (int sweep = 0; sweep < MAX_SWEEPS; sweep++) {
            double off = 0, diagonal = 0;
            for (int i = 0; i < d; i++) {
                diagonal += a[i][i] * a[i][i];
                for (int j = i + 1; j < d; j++) {
                    off += a[i][j] * a[i][j];
                }
            }
            if (off <= 1e-30 * Math.max(diagonal, Double.MIN_NORMAL)) {
                break;
            }
            for (int p = 0; p < d - 1; p++) {
                for (int q = p + 1; q < d; q++) {
                    if (a[p][q] != 0) {
                        rotate(a, v, p, q);
                    }
                }
            }
        }
        double[] values = new double[d];
        for (int i = 0; i < d; i++) {
            values[i] = a[i][i];
        }
        return new Eigen(values, v);
    }

    /** One Jacobi rotation zeroing a[p][q] (Golub and Van Loan's stable choice of the angle). */
    private static void rotate(double[][] a, double[][] v, int p, int q) {
        double theta = (a[q][q] - a[p][p]) / (2 * a[p][q]);
        double t = Math.signum(theta) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        if (theta == 0) {
            t = 1;
        }
        double c = 1 / Math.sqrt(t * t + 1), s = t * c;
        int d = a.length;
        for (int k = 0; k < d; k++) {
            double akp = a[k][p], akq = a[k][q];
            a[k][p] = c * akp - s * akq;
            a[k][q] = s * akp + c * akq;
        }
        for (int k = 0; k < d; k++) {
            double apk = a[p][k], aqk = a[q][k];
            a[p][k] = c * apk - s * aqk;
            a[q][k] = s * apk + c * aqk;
        }
        for (int k = 0; k < d; k++) {
            double vkp = v[k][p], vkq = v[k][q];
            v[k][p] = c * vkp - s * vkq;
            v[k][q] = s * vkp + c * vkq;
        }
    }

    static double[][] multiply(double[][] x, double[][] y) {
        int n = x.length, m = y[0].length, inner = y.length;
        double[][] out = new double[n][m];
        for (int i = 0; i < n; i++) {
            for (int k = 0; k < inner; k++) {
                double xik = x[i][k];
                double[] yk = y[k];
                double[] row = out[i];
                for (int j = 0; j < m; j++) {
                    row[j] += xik * yk[j];
                }
            }
        }
        return out;
    }

    private static void symmetrize(double[][] m) {
        for (int i = 0; i < m.length; i++) {
            for (int j = i + 1; j < m.length; j++) {
                double average = 0.5 * (m[i][j] + m[j][i]);
                m[i][j] = average;
                m[j][i] = average;
            }
        }
    }

    private static double trace(double[][] m) {
        double t = 0;
        for (int i = 0; i < m.length; i++) {
            t += m[i][i];
        }
        return t;
    }
}
