package io.microdit.diffusion;

/**
 * EDM preconditioning (Karras et al. 2022) with MicroDiT's sigma_data = 0.9:
 * {@code D(x; σ) = c_skip·x + c_out·F(c_in·x, c_noise, y)}, trained with the weight λ(σ) so that the effective
 * target of F has unit variance.
 */
public record Edm(double sigmaData, double pMean, double pStd) {
    /** The 256-px stages' σ distribution: ln σ ~ N(-0.6, 1.2²). */
    public static final Edm MICRODIT_256 = new Edm(0.9, -0.6, 1.2);
    /** The 512-px stages': ln σ ~ N(0, 0.6²). */
    public static final Edm MICRODIT_512 = new Edm(0.9, 0.0, 0.6);

    /** Throws {@link IllegalArgumentException} unless sigma_data and P_std are positive. */
    public Edm {
        if (!(sigmaData > 0) || !(pStd > 0)) {
            throw new IllegalArgumentException("EDM needs sigma_data > 0 and P_std > 0, got " + sigmaData + ", " + pStd);
        }
    }

    /** The weight of the noisy input in D: σ_d² / (σ² + σ_d²), near 1 at low noise. */
    public double cSkip(double sigma) {
        return sigmaData * sigmaData / (sigma * sigma + sigmaData * sigmaData);
    }

    /** The weight of the network output in D: σ·σ_d / √(σ² + σ_d²). */
    public double cOut(double sigma) {
        return sigma * sigmaData / Math.sqrt(sigma * sigma + sigmaData * sigmaData);
    }

    /** The input scaling 1 / √(σ² + σ_d²), which gives the network's input unit variance at every σ. */
    public double cIn(double sigma) {
        return 1 / Math.sqrt(sigma * sigma + sigmaData * sigmaData);
    }

    /** The network's noise input: ln(σ)/4. */
    public double cNoise(double sigma) {
        return Math.log(sigma) / 4;
    }

    /** The loss weight λ(σ) = (σ² + σ_d²) / (σ·σ_d)². */
    public double lossWeight(double sigma) {
        return (sigma * sigma + sigmaData * sigmaData) / (sigma * sigmaData * sigmaData * sigma);
    }

    /** σ for a standard normal draw z: exp(P_mean + P_std·z). */
    public double sigmaFromNormal(double z) {
        return Math.exp(pMean + pStd * z);
    }

    /**
     * The Karras schedule of {@code steps} noise levels from σ_max down to σ_min with exponent ρ, followed by a
     * final 0: {@code σ_i = (σmax^(1/ρ) + i/(n−1)·(σmin^(1/ρ) − σmax^(1/ρ)))^ρ}.
     */
    public static double[] karrasSigmas(int steps, double sigmaMin, double sigmaMax, double rho) {
        if (steps < 1) {
            throw new IllegalArgumentException("sampler steps must be at least 1, got " + steps);
        }
        if (!(sigmaMin > 0) || !(sigmaMax > sigmaMin) || !(rho > 0)) {
            throw new IllegalArgumentException("Karras schedule needs 0 < sigma_min < sigma_max and rho > 0, got "
                    + sigmaMin + ", " + sigmaMax + ", " + rho);
        }
        double[] sigmas = new double[steps + 1];
        double a = Math.pow(sigmaMax, 1 / rho), b = Math.pow(sigmaMin, 1 / rho);
        for (int i = 0; i < steps; i++) {
            double fraction = steps == 1 ? 0 : (double) i / (steps - 1);
            sigmas[i] = Math.pow(a + fraction * (b - a), rho);
        }
        sigmas[steps] = 0;
        return sigmas;
    }
}
