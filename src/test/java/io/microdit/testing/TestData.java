package io.microdit.testing;

import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.util.Random;

/** Random test inputs: never all zeros, reproducible from a seed. */
public final class TestData {
    private TestData() {
    }

    /** Uniform floats in [-1, 1). */
    public static float[] uniform(Random random, int n) {
        float[] out = new float[n];
        for (int i = 0; i < n; i++) {
            out[i] = random.nextFloat() * 2f - 1f;
        }
        return out;
    }

    public static Tensor uniform(MemoryScope scope, Random random, int... shape) {
        int n = 1;
        for (int d : shape) {
            n *= d;
        }
        return Tensor.of(scope, uniform(random, n), shape);
    }

    /**
     * Kept-token ids as the deferred mask draws them: per sample, the first {@code kept} entries of a random
     * permutation of [0, tokens) (distinct within a sample), [samples × kept].
     */
    public static int[] keepIds(Random random, int samples, int kept, int tokens) {
        int[] ids = new int[samples * kept];
        for (int n = 0; n < samples; n++) {
            int[] order = new int[tokens];
            for (int t = 0; t < tokens; t++) {
                order[t] = t;
            }
            for (int t = tokens - 1; t > 0; t--) {
                int other = random.nextInt(t + 1);
                int swap = order[t];
                order[t] = order[other];
                order[other] = swap;
            }
            System.arraycopy(order, 0, ids, n * kept, kept);
        }
        return ids;
    }

    /** Output poisoned with NaN so that a kernel that skips an element is caught. */
    public static Tensor poisoned(MemoryScope scope, int... shape) {
        return scope.zeros(shape).fill(Float.NaN);
    }

    public static double[] toDouble(float[] values) {
        double[] out = new double[values.length];
        for (int i = 0; i < values.length; i++) {
            out[i] = values[i];
        }
        return out;
    }

    /** Largest |actual - expected| relative to max(1e-3, max |expected|). */
    public static double maxRelativeError(float[] actual, double[] expected) {
        double scale = 1e-3, err = 0;
        for (double e : expected) {
            scale = Math.max(scale, Math.abs(e));
        }
        for (int i = 0; i < actual.length; i++) {
            double d = Math.abs(actual[i] - expected[i]);
            if (Double.isNaN(d)) {
                return Double.POSITIVE_INFINITY;
            }
            err = Math.max(err, d);
        }
        return err / scale;
    }
}
