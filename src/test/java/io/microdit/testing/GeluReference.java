package io.microdit.testing;

/**
 * GELU in float64 for the tests' references: both forms, and the experts' gelu(x·w1)·w2 that MatmulFunctions and
 * MoeFunctions compute in one function. erf comes from its series; CpuActivationsTest checks it against tabulated
 * values.
 */
public final class GeluReference {
    private GeluReference() {
    }

    /**
     * erf from its everywhere-convergent series of positive terms,
     * erf(x) = 2/√π · e^(−x²) · Σ_n 2^n x^(2n+1) / (1·3·…·(2n+1)): no cancellation, so about 1e-16 relative.
     */
    public static double erf(double x) {
        double ax = Math.abs(x);
        if (ax > 6) {
            return Math.signum(x); // 1 − erf(6) ≈ 2e-17
        }
        double term = ax, sum = ax;
        for (int n = 0; term > 1e-18 * sum; n++) {
            term *= 2 * ax * ax / (2 * n + 3);
            sum += term;
        }
        return Math.copySign(2 / Math.sqrt(Math.PI) * Math.exp(-ax * ax) * sum, x);
    }

    /** GELU, exact (through erf) or its tanh approximation. */
    public static double gelu(double x, boolean tanh) {
        return tanh ? 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)))
                : 0.5 * x * (1 + erf(x / Math.sqrt(2)));
    }

    /** gelu(x[e]·w1[e])·w2[e] for each expert e: x [E, rows, dim], w1 [E, dim, hidden], w2 [E, hidden, dim]. */
    public static double[] geluProducts(double[] x, double[] w1, double[] w2, int experts, int rows, int dim,
                                        int hidden, boolean tanh) {
        double[] out = new double[experts * rows * dim];
        for (int e = 0; e < experts; e++) {
            for (int i = 0; i < rows; i++) {
                for (int h = 0; h < hidden; h++) {
                    double pre = 0;
                    for (int d = 0; d < dim; d++) {
                        pre += x[(e * rows + i) * dim + d] * w1[(e * dim + d) * hidden + h];
                    }
                    double activated = gelu(pre, tanh);
                    for (int j = 0; j < dim; j++) {
                        out[(e * rows + i) * dim + j] += activated * w2[(e * hidden + h) * dim + j];
                    }
                }
            }
        }
        return out;
    }
}
