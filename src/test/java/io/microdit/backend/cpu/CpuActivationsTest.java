package io.microdit.backend.cpu;

import static io.microdit.backend.cpu.CpuElementwiseTest.assertMessage;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.GeluReference;
import io.microdit.testing.TestData;
import java.util.Random;
import java.util.function.DoubleUnaryOperator;
import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class CpuActivationsTest {
    private static final CpuBackend BACKEND = new CpuBackend(3);
    private static final double SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

    @AfterAll
    static void close() {
        BACKEND.close();
    }

    @Test
    void erfReferenceMatchesTabulatedValues() {
        double[][] table = {
            {0.1, 0.1124629160182849}, {0.5, 0.5204998778130465}, {1.0, 0.8427007929497149},
            {1.5, 0.9661051464753108}, {2.0, 0.9953222650189527}, {3.0, 0.9999779095030014},
            {-0.7, -0.6778011938374184},
        };
        for (double[] row : table) {
            assertEquals(row[1], GeluReference.erf(row[0]), 1e-15, "erf(" + row[0] + ")");
        }
    }

    @Test
    void erfIsAccurateTo1e7EverywhereInVectorAndScalarForm() {
        int n = 2_400_000;
        float[] xs = new float[n + 64];
        for (int i = 0; i < n; i++) {
            xs[i] = -6f + 12f * i / n; // a fine grid over [-6, 6], both branches and the clamp
        }
        Random random = new Random(1);
        float[] special = {0f, -0f, 1f, -1f, Math.nextDown(1f), Math.nextUp(-1f), 4f, -4f, 1e-30f, -1e-30f,
            Float.MIN_VALUE, 20f, -300f, Float.MAX_VALUE, Float.NEGATIVE_INFINITY, Float.POSITIVE_INFINITY};
        for (int i = n; i < xs.length; i++) {
            xs[i] = i - n < special.length ? special[i - n] : (random.nextFloat() - 0.5f) * 10f;
        }
        int lanes = FloatVector.SPECIES_PREFERRED.length();
        float[] vectorResult = new float[xs.length];
        for (int i = 0; i + lanes <= xs.length; i += lanes) {
            CpuActivations.erf(FloatVector.fromArray(FloatVector.SPECIES_PREFERRED, xs, i)).intoArray(vectorResult, i);
        }
        double worstVector = 0, worstScalar = 0;
        float worstVectorAt = 0, worstScalarAt = 0;
        for (int i = 0; i < xs.length; i++) {
            double expected = GeluReference.erf(xs[i]);
            double vectorError = Math.abs(vectorResult[i] - expected);
            double scalarError = Math.abs(CpuActivations.erf(xs[i]) - expected);
            if (!(vectorError <= worstVector)) {
                worstVector = vectorError;
                worstVectorAt = xs[i];
            }
            if (!(scalarError <= worstScalar)) {
                worstScalar = scalarError;
                worstScalarAt = xs[i];
            }
        }
        assertTrue(worstVector <= 1e-7, "vector erf error " + worstVector + " at " + worstVectorAt);
        assertTrue(worstScalar <= 1e-7, "scalar erf error " + worstScalar + " at " + worstScalarAt);
        assertTrue(Float.isNaN(CpuActivations.erf(Float.NaN)), "erf(NaN)");
    }

    private static double geluExact(double x) {
        return 0.5 * x * (1 + GeluReference.erf(x / Math.sqrt(2)));
    }

    private static double geluExactSlope(double x) {
        return 0.5 * (1 + GeluReference.erf(x / Math.sqrt(2))) + x * Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
    }

    private static double geluTanh(double x) {
        return 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
    }

    private static double geluTanhSlope(double x) {
        double th = Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x));
        return 0.5 * (1 + th) + 0.5 * x * (1 - th * th) * SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x);
    }

    private static double sigmoid(double x) {
        return 1 / (1 + Math.exp(-x));
    }

    private static double silu(double x) {
        return x * sigmoid(x);
    }

    private static double siluSlope(double x) {
        double s = sigmoid(x);
        return s * (1 + x * (1 - s));
    }

    /** Inputs over [-6, 6] with a few far out (exponentials overflow there), never all small. */
    private static float[] inputs(Random random, int n) {
        float[] x = TestData.uniform(random, n);
        for (int i = 0; i < n; i++) {
            x[i] *= 6f;
        }
        float[] far = {-120f, 95f, -20f, 30f};
        for (int i = 0; i < Math.min(n / 3, far.length); i++) {
            x[i * 3] = far[i];
        }
        return x;
    }

    /** Each value's error relative to max(1, |expected|): activations are O(1) near 0 and grow like x. */
    private static void assertClose(float[] actual, DoubleUnaryOperator reference, float[] x, double tolerance,
                                    String what) {
        for (int i = 0; i < x.length; i++) {
            double expected = reference.applyAsDouble(x[i]);
            double error = Math.abs(actual[i] - expected) / Math.max(1, Math.abs(expected));
            assertTrue(error <= tolerance, what + "(" + x[i] + ") = " + actual[i] + ", expected " + expected);
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 3, 17, 33, 77, 100, 40000})
    void unaryActivationsAndSlopesMatchFloat64(int n) {
        Random random = new Random(n);
        try (MemoryScope scope = new MemoryScope("test")) {
            float[] x = inputs(random, n);
            Tensor xt = Tensor.of(scope, x, n);
            float[] g = TestData.uniform(random, n);
            Tensor dOut = Tensor.of(scope, g, n);
            Tensor out = TestData.poisoned(scope, n);

            BACKEND.gelu(xt, out, false);
            assertClose(out.toFloatArray(), CpuActivationsTest::geluExact, x, 3e-7, "gelu");
            BACKEND.gelu(xt, out.fill(Float.NaN), true);
            assertClose(out.toFloatArray(), CpuActivationsTest::geluTanh, x, 3e-7, "gelu tanh");
            BACKEND.silu(xt, out.fill(Float.NaN));
            assertClose(out.toFloatArray(), CpuActivationsTest::silu, x, 3e-7, "silu");

            BACKEND.geluBackward(dOut, xt, out.fill(Float.NaN), false);
            assertCloseWeighted(out.toFloatArray(), g, CpuActivationsTest::geluExactSlope, x, "geluBackward");
            BACKEND.geluBackward(dOut, xt, out.fill(Float.NaN), true);
            assertCloseWeighted(out.toFloatArray(), g, CpuActivationsTest::geluTanhSlope, x, "geluBackward tanh");
            BACKEND.siluBackward(dOut, xt, out.fill(Float.NaN));
            assertCloseWeighted(out.toFloatArray(), g, CpuActivationsTest::siluSlope, x, "siluBackward");
        }
    }

    /** dx = dOut·slope(x), checked against the float64 product. */
    private static void assertCloseWeighted(float[] dx, float[] dOut, DoubleUnaryOperator slope, float[] x,
                                            String what) {
        for (int i = 0; i < x.length; i++) {
            double expected = dOut[i] * slope.applyAsDouble(x[i]);
            assertTrue(Math.abs(dx[i] - expected) <= 5e-7 * Math.max(1, Math.abs(expected)),
                    what + " at x = " + x[i] + ": " + dx[i] + ", expected " + expected);
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 3, 17, 33, 77, 100, 40000})
    void swigluGateAndBackwardMatchFloat64(int n) {
        Random random = new Random(50 + n);
        try (MemoryScope scope = new MemoryScope("test")) {
            float[] a = inputs(random, n), b = TestData.uniform(random, n), g = TestData.uniform(random, n);
            Tensor at = Tensor.of(scope, a, n), bt = Tensor.of(scope, b, n), dOut = Tensor.of(scope, g, n);
            Tensor out = TestData.poisoned(scope, n);
            BACKEND.swigluGate(at, bt, out);
            Tensor da = TestData.poisoned(scope, n), db = TestData.poisoned(scope, n);
            BACKEND.swigluGateBackward(dOut, at, bt, da, db);
            float[] o = out.toFloatArray(), dav = da.toFloatArray(), dbv = db.toFloatArray();
            for (int i = 0; i < n; i++) {
                double expected = silu(a[i]) * b[i];
                double expectedDa = g[i] * b[i] * siluSlope(a[i]);
                double expectedDb = g[i] * silu(a[i]);
                assertTrue(Math.abs(o[i] - expected) <= 5e-7 * Math.max(1, Math.abs(expected)),
                        "swigluGate(" + a[i] + ", " + b[i] + ") = " + o[i] + ", expected " + expected);
                assertTrue(Math.abs(dav[i] - expectedDa) <= 5e-7 * Math.max(1, Math.abs(expectedDa)),
                        "da at " + a[i] + ": " + dav[i] + ", expected " + expectedDa);
                assertTrue(Math.abs(dbv[i] - expectedDb) <= 5e-7 * Math.max(1, Math.abs(expectedDb)),
                        "db at " + a[i] + ": " + dbv[i] + ", expected " + expectedDb);
            }
        }
    }

    /**
     * Every element gets the same bits from the vector lanes as from the scalar tail: each op over n elements
     * (lanes, then a tail) against the same op on each element alone (the tail's formula only). Where a range is
     * cut depends on the thread count, so a difference here makes results depend on it (the exact GELU backward's
     * tail once used a fused multiply-add where the lanes round a product and a sum).
     */
    @Test
    void vectorLanesAndScalarTailGiveTheSameBits() {
        int n = 3 * FloatVector.SPECIES_PREFERRED.length();
        Random random = new Random(9);
        try (MemoryScope scope = new MemoryScope("test")) {
            float[] x = inputs(random, n), b = TestData.uniform(random, n), g = TestData.uniform(random, n);
            for (int i = 0; i < n; i++) {
                x[i] += random.nextFloat() * 1e-3f; // values no simpler than the grid's, every mantissa bit in use
            }
            Tensor xs = Tensor.of(scope, x, n), bs = Tensor.of(scope, b, n), gs = Tensor.of(scope, g, n);
            float[][] whole = activations(xs, bs, gs, scope, n);
            for (int i = 0; i < n; i++) {
                float[][] alone = activations(Tensor.of(scope, new float[] {x[i]}, 1),
                        Tensor.of(scope, new float[] {b[i]}, 1), Tensor.of(scope, new float[] {g[i]}, 1), scope, 1);
                for (int op = 0; op < whole.length; op++) {
                    assertEquals(Float.floatToRawIntBits(alone[op][0]), Float.floatToRawIntBits(whole[op][i]),
                            ACTIVATION_NAMES[op] + " at x = " + x[i] + ": lanes " + whole[op][i] + ", tail "
                                    + alone[op][0]);
                }
            }
        }
    }

    private static final String[] ACTIVATION_NAMES = {"gelu", "gelu tanh", "geluBackward", "geluBackward tanh",
        "silu", "siluBackward", "swigluGate", "swigluGateBackward da", "swigluGateBackward db"};

    /** The outputs of every activation, forward and backward, in the order of {@link #ACTIVATION_NAMES}. */
    private static float[][] activations(Tensor x, Tensor b, Tensor g, MemoryScope scope, int n) {
        Tensor[] out = new Tensor[ACTIVATION_NAMES.length];
        for (int op = 0; op < out.length; op++) {
            out[op] = TestData.poisoned(scope, n);
        }
        BACKEND.gelu(x, out[0], false);
        BACKEND.gelu(x, out[1], true);
        BACKEND.geluBackward(g, x, out[2], false);
        BACKEND.geluBackward(g, x, out[3], true);
        BACKEND.silu(x, out[4]);
        BACKEND.siluBackward(g, x, out[5]);
        BACKEND.swigluGate(x, b, out[6]);
        BACKEND.swigluGateBackward(g, x, b, out[7], out[8]);
        float[][] values = new float[out.length][];
        for (int op = 0; op < out.length; op++) {
            values[op] = out[op].toFloatArray();
        }
        return values;
    }

    @Test
    void badShapesThrowNamingOpAndArgument() {
        try (MemoryScope scope = new MemoryScope("test")) {
            Tensor x = scope.zeros(3, 5);
            assertMessage(() -> BACKEND.gelu(x, scope.zeros(5, 3), true), "gelu", "out");
            assertMessage(() -> BACKEND.geluBackward(scope.zeros(3, 4), x, scope.zeros(3, 5), false),
                    "geluBackward", "dOut");
            assertMessage(() -> BACKEND.silu(x, null), "silu", "out");
            assertMessage(() -> BACKEND.siluBackward(x, x, scope.zeros(15)), "siluBackward", "dx");
            assertMessage(() -> BACKEND.swigluGate(x, scope.zeros(3, 6), scope.zeros(3, 5)), "swigluGate", "b");
            assertMessage(() -> BACKEND.swigluGateBackward(x, x, x, x, scope.zeros(1)), "swigluGateBackward", "db");
        }
    }
}
