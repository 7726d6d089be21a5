package io.microdit.diffusion;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Random;
import org.junit.jupiter.api.Test;

class EdmTest {

    @Test
    void preconditioningMakesTheTrainingTargetUnitVariance() {
        // For x ~ N(0, σd²) and n ~ N(0, σ²): the effective target (x − c_skip(x+n))/c_out has unit variance, and
        // λ(σ)·c_out² = 1, so λ·(D − x)² = (F − target)².
        Edm edm = Edm.MICRODIT_256;
        Random random = new Random(1);
        for (double sigma : new double[] {0.002, 0.05, 0.9, 3.0, 80.0}) {
            assertEquals(1.0, edm.lossWeight(sigma) * edm.cOut(sigma) * edm.cOut(sigma), 1e-12);
            double sum = 0, sumSq = 0;
            int n = 200_000;
            for (int i = 0; i < n; i++) {
                double x = 0.9 * random.nextGaussian();
                double noisy = x + sigma * random.nextGaussian();
                double target = (x - edm.cSkip(sigma) * noisy) / edm.cOut(sigma);
                sum += target;
                sumSq += target * target;
            }
            assertEquals(1.0, sumSq / n - (sum / n) * (sum / n), 0.02, "target variance at σ=" + sigma);
            double inputVariance = edm.cIn(sigma) * edm.cIn(sigma) * (0.81 + sigma * sigma);
            assertEquals(1.0, inputVariance, 1e-12);
        }
        assertEquals(Math.log(2.0) / 4, edm.cNoise(2.0), 1e-15);
        assertEquals(Math.exp(-0.6 + 1.2 * 0.5), edm.sigmaFromNormal(0.5), 1e-15);
    }

    @Test
    void karrasScheduleEndpointsAndMonotonicity() {
        double[] s = Edm.karrasSigmas(30, 0.002, 80, 7);
        assertEquals(31, s.length);
        assertEquals(80, s[0], 1e-9);
        assertEquals(0.002, s[29], 1e-12);
        assertEquals(0, s[30]);
        for (int i = 1; i < 30; i++) {
            assertEquals(true, s[i] < s[i - 1]);
        }
        double a = Math.pow(80, 1 / 7.0), b = Math.pow(0.002, 1 / 7.0);
        assertEquals(Math.pow(a + 10 / 29.0 * (b - a), 7), s[10], 1e-12);
        assertThrows(IllegalArgumentException.class, () -> Edm.karrasSigmas(0, 0.002, 80, 7));
    }
}
