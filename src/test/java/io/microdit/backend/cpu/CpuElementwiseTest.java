package io.microdit.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
import java.lang.foreign.ValueLayout;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class CpuElementwiseTest {
    /** Three threads on any machine, so the parallel splits (uneven, mid-row) are exercised. */
    private static final CpuBackend BACKEND = new CpuBackend(3);
    private static final double TOLERANCE = 1e-6;

    @AfterAll
    static void close() {
        BACKEND.close();
    }

    private static void assertClose(Tensor actual, double[] expected, String what) {
        double error = TestData.maxRelativeError(actual.toFloatArray(), expected);
        assertTrue(error <= TOLERANCE, what + ": max relative error " + error);
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 3, 17, 33, 77, 100})
    void addAndMulSameShapeAndBroadcast(int width) {
        Random random = new Random(width);
        try (MemoryScope scope = new MemoryScope("test")) {
            Tensor a = TestData.uniform(scope, random, 2, 3, width);
            float[] av = a.toFloatArray();
            for (int[] bShape : new int[][] {{2, 3, width}, {3, width}, {width}}) {
                Tensor b = TestData.uniform(scope, random, bShape);
                float[] bv = b.toFloatArray();
                double[] sum = new double[av.length], product = new double[av.length];
                for (int i = 0; i < av.length; i++) {
                    double x = av[i], y = bv[i % bv.length];
                    sum[i] = x + y;
                    product[i] = x * y;
                }
                Tensor out = TestData.poisoned(scope, 2, 3, width);
                BACKEND.add(a, b, out);
                assertClose(out, sum, "add with b " + b.describe());
                out.fill(Float.NaN);
                BACKEND.mul(a, b, out);
                assertClose(out, product, "mul with b " + b.describe());
            }
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 3, 17, 33, 77, 100})
    void scaleAndAxpy(int width) {
        Random random = new Random(100 + width);
        try (MemoryScope scope = new MemoryScope("test")) {
            Tensor x = TestData.uniform(scope, random, 5, width);
            Tensor y = TestData.uniform(scope, random, 5, width);
            float[] xv = x.toFloatArray(), yv = y.toFloatArray();
            float alpha = -1.75f;
            double[] scaled = new double[xv.length], updated = new double[xv.length];
            for (int i = 0; i < xv.length; i++) {
                scaled[i] = alpha * (double) xv[i];
                updated[i] = yv[i] + alpha * (double) xv[i];
            }
            Tensor out = TestData.poisoned(scope, 5, width);
            BACKEND.scale(x, alpha, out);
            assertClose(out, scaled, "scale");
            BACKEND.axpy(alpha, x, y);
            assertClose(y, updated, "axpy");
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 3, 17, 33, 77, 100, 600})
    void modulateForwardAndBackward(int width) {
        int samples = 2, tokens = 5;
        Random random = new Random(200 + width);
        try (MemoryScope scope = new MemoryScope("test")) {
            checkModulate(scope, random, samples, tokens, width);
        }
    }

    private static void checkModulate(MemoryScope scope, Random random, int samples, int tokens, int width) {
        Tensor x = TestData.uniform(scope, random, samples, tokens, width);
        Tensor shift = TestData.uniform(scope, random, samples, width);
        Tensor scale = TestData.uniform(scope, random, samples, width);
        Tensor dOut = TestData.uniform(scope, random, samples, tokens, width);
        float[] xv = x.toFloatArray(), sh = shift.toFloatArray(), sc = scale.toFloatArray(), g = dOut.toFloatArray();
        double[] out = new double[xv.length], dx = new double[xv.length];
        double[] dShift = new double[sh.length], dScale = new double[sc.length];
        for (int n = 0; n < samples; n++) {
            for (int t = 0; t < tokens; t++) {
                for (int c = 0; c < width; c++) {
                    int i = (n * tokens + t) * width + c, j = n * width + c;
                    out[i] = xv[i] * (1.0 + sc[j]) + sh[j];
                    dx[i] = g[i] * (1.0 + sc[j]);
                    dShift[j] += g[i];
                    dScale[j] += (double) g[i] * xv[i];
                }
            }
        }
        Tensor actual = TestData.poisoned(scope, samples, tokens, width);
        BACKEND.modulate(x, shift, scale, actual);
        assertClose(actual, out, "modulate");
        Tensor actualDx = TestData.poisoned(scope, samples, tokens, width);
        Tensor actualDShift = TestData.poisoned(scope, samples, width);
        Tensor actualDScale = TestData.poisoned(scope, samples, width);
        BACKEND.modulateBackward(dOut, x, scale, actualDx, actualDShift, actualDScale);
        assertClose(actualDx, dx, "modulate dx");
        assertClose(actualDShift, dShift, "modulate dShift");
        assertClose(actualDScale, dScale, "modulate dScale");
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 3, 17, 33, 77, 100, 600})
    void gatedResidualForwardAndBackward(int width) {
        int samples = 3, tokens = 4;
        Random random = new Random(300 + width);
        try (MemoryScope scope = new MemoryScope("test")) {
            checkGatedResidual(scope, random, samples, tokens, width);
        }
    }

    private static void checkGatedResidual(MemoryScope scope, Random random, int samples, int tokens, int width) {
        Tensor x = TestData.uniform(scope, random, samples, tokens, width);
        Tensor gate = TestData.uniform(scope, random, samples, width);
        Tensor f = TestData.uniform(scope, random, samples, tokens, width);
        Tensor dOut = TestData.uniform(scope, random, samples, tokens, width);
        float[] xv = x.toFloatArray(), gv = gate.toFloatArray(), fv = f.toFloatArray(), g = dOut.toFloatArray();
        double[] out = new double[xv.length], dF = new double[xv.length], dGate = new double[gv.length];
        for (int n = 0; n < samples; n++) {
            for (int t = 0; t < tokens; t++) {
                for (int c = 0; c < width; c++) {
                    int i = (n * tokens + t) * width + c, j = n * width + c;
                    out[i] = xv[i] + (double) gv[j] * fv[i];
                    dF[i] = (double) gv[j] * g[i];
                    dGate[j] += (double) g[i] * fv[i];
                }
            }
        }
        Tensor actual = TestData.poisoned(scope, samples, tokens, width);
        BACKEND.gatedResidual(x, gate, f, actual);
        assertClose(actual, out, "gatedResidual");
        Tensor actualDGate = TestData.poisoned(scope, samples, width);
        Tensor actualDF = TestData.poisoned(scope, samples, tokens, width);
        BACKEND.gatedResidualBackward(dOut, gate, f, actualDGate, actualDF);
        assertClose(actualDGate, dGate, "gatedResidual dGate");
        assertClose(actualDF, dF, "gatedResidual dF");
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 3, 17, 33, 77, 100})
    void sliceColumnsCopiesAndBackwardAccumulates(int width) {
        int rows = 7, columns = 3 * width + 2, start = width + 1;
        Random random = new Random(400 + width);
        try (MemoryScope scope = new MemoryScope("test")) {
            Tensor x = TestData.uniform(scope, random, rows, columns);
            Tensor out = TestData.poisoned(scope, rows, width);
            BACKEND.sliceColumns(x, start, out);
            float[] xv = x.toFloatArray();
            double[] expected = new double[rows * width];
            for (int r = 0; r < rows; r++) {
                for (int c = 0; c < width; c++) {
                    expected[r * width + c] = xv[r * columns + start + c];
                }
            }
            assertClose(out, expected, "sliceColumns");

            Tensor dOut = TestData.uniform(scope, random, rows, width);
            Tensor dx = TestData.uniform(scope, random, rows, columns);
            double[] dxExpected = TestData.toDouble(dx.toFloatArray());
            float[] g = dOut.toFloatArray();
            for (int r = 0; r < rows; r++) {
                for (int c = 0; c < width; c++) {
                    dxExpected[r * columns + start + c] += g[r * width + c];
                }
            }
            BACKEND.sliceColumnsBackward(dOut, start, dx);
            assertClose(dx, dxExpected, "sliceColumnsBackward");
        }
    }

    @Test
    void largeTensorsSplitOverThreadsMidRow() {
        Random random = new Random(5);
        try (MemoryScope scope = new MemoryScope("test")) {
            Tensor a = TestData.uniform(scope, random, 200, 301);
            Tensor b = TestData.uniform(scope, random, 301);
            float[] av = a.toFloatArray(), bv = b.toFloatArray();
            double[] expected = new double[av.length];
            for (int i = 0; i < av.length; i++) {
                expected[i] = av[i] + bv[i % 301];
            }
            Tensor out = TestData.poisoned(scope, 200, 301);
            BACKEND.add(a, b, out);
            assertClose(out, expected, "large broadcast add");
            checkModulate(scope, random, 4, 60, 600);
            checkGatedResidual(scope, random, 4, 60, 600);
        }
    }

    // ---------------------------------------------------------------- bf16 conversion

    @ParameterizedTest
    @ValueSource(ints = {1, 3, 17, 33, 77, 100, 70001})
    void convertMatchesScalarRoundingOnRandomBitPatterns(int n) {
        Random random = new Random(n);
        try (MemoryScope scope = new MemoryScope("test")) {
            Tensor source = scope.zeros(n);
            for (int i = 0; i < n; i++) {
                // half random bit patterns (NaN, infinities, subnormals included), half ordinary values
                int bits = i % 2 == 0 ? random.nextInt() : Float.floatToIntBits((random.nextFloat() - 0.5f) * 1e3f);
                source.segment().setAtIndex(ValueLayout.JAVA_INT, i, bits);
            }
            Tensor bf16 = scope.zeros(DType.BF16, n);
            bf16.segment().fill((byte) 0x55);
            BACKEND.convert(source, bf16);
            for (int i = 0; i < n; i++) {
                float value = source.segment().getAtIndex(ValueLayout.JAVA_FLOAT, i);
                assertEquals(DType.floatToBf16(value), bf16.segment().getAtIndex(ValueLayout.JAVA_SHORT, i),
                        "bf16 of bits " + Integer.toHexString(Float.floatToRawIntBits(value)));
            }
            Tensor back = TestData.poisoned(scope, n);
            BACKEND.convert(bf16, back);
            for (int i = 0; i < n; i++) {
                short h = bf16.segment().getAtIndex(ValueLayout.JAVA_SHORT, i);
                assertEquals((h & 0xffff) << 16, back.segment().getAtIndex(ValueLayout.JAVA_INT, i),
                        "f32 of bf16 " + Integer.toHexString(h & 0xffff));
                float original = source.segment().getAtIndex(ValueLayout.JAVA_FLOAT, i);
                float roundTrip = back.segment().getAtIndex(ValueLayout.JAVA_FLOAT, i);
                if (Float.isFinite(roundTrip) && Float.isFinite(original)) {
                    // half a bf16 ulp: 2^-8 relative for normal numbers, 2^-134 absolute among subnormals
                    assertTrue(Math.abs(roundTrip - original) <= Math.max(Math.abs(original) * 0x1p-8f, 0x1p-134f),
                            original + " round-trips to " + roundTrip + ", more than half a bf16 ulp away");
                }
            }
        }
    }

    @Test
    void convertRoundsToNearestEven() {
        int[][] cases = {
            {0x3f800000, 0x3f80}, // 1.0 exactly
            {0x3f808000, 0x3f80}, // exactly halfway between 0x3f80 and 0x3f81: to the even 0x3f80
            {0x3f818000, 0x3f82}, // exactly halfway between 0x3f81 and 0x3f82: to the even 0x3f82
            {0x3f808001, 0x3f81}, // just above halfway: up
            {0x3f817fff, 0x3f81}, // just below halfway: down
            {0xbf808000, 0xbf80}, // negative halfway: to even, sign kept
            {0xbf818000, 0xbf82},
            {0x7f7fffff, 0x7f80}, // the largest float rounds up to infinity
            {0x7f800000, 0x7f80}, // +infinity
            {0xff800000, 0xff80}, // -infinity
            {0x80000000, 0x8000}, // -0
            {0x00000001, 0x0000}, // the smallest subnormal rounds to +0
            {0x00008000, 0x0000}, // subnormal exactly halfway: to the even 0
            {0x00018000, 0x0002},
        };
        int n = cases.length * 3; // repeated so both the vector lanes and the scalar tail see every case
        try (MemoryScope scope = new MemoryScope("test")) {
            Tensor source = scope.zeros(n);
            for (int i = 0; i < n; i++) {
                source.segment().setAtIndex(ValueLayout.JAVA_INT, i, cases[i % cases.length][0]);
            }
            Tensor bf16 = scope.zeros(DType.BF16, n);
            BACKEND.convert(source, bf16);
            for (int i = 0; i < n; i++) {
                int[] c = cases[i % cases.length];
                assertEquals(c[1], bf16.segment().getAtIndex(ValueLayout.JAVA_SHORT, i) & 0xffff,
                        "bf16 of " + Integer.toHexString(c[0]));
            }
        }
    }

    @Test
    void convertKeepsNaNs() {
        int[] nans = {0x7fc00000, 0x7f800001, 0xffffffff, 0x7f80ffff, 0xff812345};
        int n = nans.length * 7;
        try (MemoryScope scope = new MemoryScope("test")) {
            Tensor source = scope.zeros(n);
            for (int i = 0; i < n; i++) {
                source.segment().setAtIndex(ValueLayout.JAVA_INT, i, nans[i % nans.length]);
            }
            Tensor bf16 = scope.zeros(DType.BF16, n);
            BACKEND.convert(source, bf16);
            for (int i = 0; i < n; i++) {
                int h = bf16.segment().getAtIndex(ValueLayout.JAVA_SHORT, i) & 0xffff;
                assertTrue((h & 0x7f80) == 0x7f80 && (h & 0x7f) != 0, "NaN " + Integer.toHexString(nans[i % nans.length])
                        + " became bf16 " + Integer.toHexString(h) + ", not a NaN");
            }
        }
    }

    // ---------------------------------------------------------------- bad arguments

    @Test
    void badShapesThrowNamingOpAndArgument() {
        try (MemoryScope scope = new MemoryScope("test")) {
            Tensor a = scope.zeros(2, 3, 4);
            assertMessage(() -> BACKEND.add(a, scope.zeros(3), scope.zeros(2, 3, 4)), "add", "b");
            assertMessage(() -> BACKEND.mul(a, scope.zeros(4), scope.zeros(2, 3, 5)), "mul", "out");
            assertMessage(() -> BACKEND.axpy(1f, a, scope.zeros(24)), "axpy", "y");
            assertMessage(() -> BACKEND.scale(a, 2f, scope.zeros(DType.BF16, 2, 3, 4)), "scale", "out");
            assertMessage(() -> BACKEND.modulate(a, scope.zeros(2, 5), scope.zeros(2, 4), scope.zeros(2, 3, 4)),
                    "modulate", "shift");
            assertMessage(() -> BACKEND.modulate(scope.zeros(6, 4), scope.zeros(2, 4), scope.zeros(2, 4),
                    scope.zeros(6, 4)), "modulate", "x");
            assertMessage(() -> BACKEND.modulateBackward(a, a, scope.zeros(2, 4), scope.zeros(2, 3, 4),
                    scope.zeros(2, 4), scope.zeros(3, 4)), "modulateBackward", "dScale");
            assertMessage(() -> BACKEND.gatedResidual(a, scope.zeros(2, 4), scope.zeros(2, 3, 3), a),
                    "gatedResidual", "f");
            assertMessage(() -> BACKEND.gatedResidualBackward(a, scope.zeros(1, 4), a, scope.zeros(2, 4), a),
                    "gatedResidualBackward", "gate");
            assertMessage(() -> BACKEND.sliceColumns(scope.zeros(3, 8), 6, scope.zeros(3, 3)), "sliceColumns",
                    "columns [6, 9)");
            assertMessage(() -> BACKEND.sliceColumns(scope.zeros(3, 8), 0, scope.zeros(2, 3)), "sliceColumns",
                    "out");
            assertMessage(() -> BACKEND.sliceColumnsBackward(scope.zeros(3, 3), -1, scope.zeros(3, 8)),
                    "sliceColumnsBackward", "columns [-1, 2)");
            assertMessage(() -> BACKEND.convert(scope.zeros(4), scope.zeros(DType.BF16, 5)), "convert", "target");
            assertMessage(() -> BACKEND.convert(scope.zeros(DType.I32, 4), scope.zeros(4)), "convert", "I32");
        }
    }

    static void assertMessage(Runnable call, String op, String mention) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call::run);
        assertTrue(e.getMessage().startsWith(op + ":") && e.getMessage().contains(mention),
                "message '" + e.getMessage() + "' should start with '" + op + ":' and mention '" + mention + "'");
    }
}
