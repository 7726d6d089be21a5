package io.microdit.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.autograd.SoftmaxFunctions;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.GradientCheck;
import io.microdit.testing.TestData;
import java.util.Random;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class CpuSoftmaxTest {
    private static final CpuBackend BACKEND = new CpuBackend(2);
    private static final CpuBackend SINGLE_THREAD = new CpuBackend(1);

    @AfterAll
    static void close() {
        BACKEND.close();
        SINGLE_THREAD.close();
    }

    /** Softmax over the last dimension of a [rows, width] matrix, in float64. */
    private static double[] referenceSoftmax(double[] x, int rows, int width) {
        double[] y = new double[x.length];
        for (int r = 0; r < rows; r++) {
            double max = Double.NEGATIVE_INFINITY;
            for (int c = 0; c < width; c++) {
                max = Math.max(max, x[r * width + c]);
            }
            double sum = 0;
            for (int c = 0; c < width; c++) {
                y[r * width + c] = Math.exp(x[r * width + c] - max);
                sum += y[r * width + c];
            }
            for (int c = 0; c < width; c++) {
                y[r * width + c] /= sum;
            }
        }
        return y;
    }

    private static float[] scaled(float[] values, float factor) {
        float[] out = values.clone();
        for (int i = 0; i < out.length; i++) {
            out[i] *= factor;
        }
        return out;
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 3, 8, 17, 77})
    void forwardAndBackwardMatchFloat64(int width) {
        int batch = 3, rows = 5;
        Random random = new Random(width);
        float[] x = scaled(TestData.uniform(random, batch * rows * width), 3f);
        GradientCheck.of(BACKEND, width)
                .input("x", x, batch, rows, width)
                .check((g, v) -> SoftmaxFunctions.softmax(g, v[0]),
                        r -> referenceSoftmax(r[0], batch * rows, width));
    }

    @Test
    void exponentialIsAccurateAndTheVectorFormMatchesTheScalarBitForBit() {
        VectorSpecies<Float> species = FloatVector.SPECIES_PREFERRED;
        float[] x = new float[species.length() * 4096];
        Random random = new Random(2);
        for (int i = 0; i < x.length; i++) {
            x[i] = i % 97 == 0 ? -random.nextFloat() * 1e-6f : -random.nextFloat() * 95f;
        }
        x[0] = 0f;
        x[1] = -0f;
        x[2] = Float.NEGATIVE_INFINITY;
        x[3] = -87.3f;
        x[4] = Float.NaN;
        for (int start = 0; start < x.length; start += species.length()) {
            FloatVector v = VectorMath.exp(FloatVector.fromArray(species, x, start));
            for (int lane = 0; lane < species.length(); lane++) {
                float scalar = VectorMath.exp(x[start + lane]);
                assertEquals(Float.floatToRawIntBits(scalar), Float.floatToRawIntBits(v.lane(lane)),
                        "exp(" + x[start + lane] + "): vector " + v.lane(lane) + ", scalar " + scalar);
            }
        }
        for (int i = 5; i < x.length; i++) {
            double expected = Math.exp(x[i]);
            float actual = VectorMath.exp(x[i]);
            if (expected < Float.MIN_NORMAL) {
                assertEquals(0f, actual, "exp(" + x[i] + ") underflows to 0");
            } else {
                assertEquals(expected, actual, 3e-7 * expected, "exp(" + x[i] + ")");
            }
        }
        assertEquals(1f, VectorMath.exp(0f));
        assertEquals(1f, VectorMath.exp(-0f));
        assertEquals(0f, VectorMath.exp(Float.NEGATIVE_INFINITY));
        assertTrue(Float.isNaN(VectorMath.exp(Float.NaN)));
    }

    @Test
    void largeLogitsDoNotOverflow() {
        int rows = 4, width = 33;
        Random random = new Random(3);
        float[] x = TestData.uniform(random, rows * width);
        for (int i = 0; i < x.length; i++) {
            x[i] = x[i] * 40f + (i % 2 == 0 ? 500f : -500f);
        }
        try (MemoryScope scope = new MemoryScope("softmax-large")) {
            Tensor out = TestData.poisoned(scope, rows, width);
            BACKEND.softmax(Tensor.of(scope, x, rows, width), out);
            double[] expected = referenceSoftmax(TestData.toDouble(x), rows, width);
            float[] actual = out.toFloatArray();
            for (int i = 0; i < actual.length; i++) {
                assertEquals(expected[i], actual[i], 1e-6, "element " + i);
            }
        }
    }

    @Test
    void rowsSumToOneAndOutputIsFullyWritten() {
        int rows = 129, width = 8;
        Random random = new Random(4);
        try (MemoryScope scope = new MemoryScope("softmax-sum")) {
            Tensor out = TestData.poisoned(scope, rows, width);
            BACKEND.softmax(TestData.uniform(scope, random, rows, width), out);
            float[] y = out.toFloatArray();
            for (int r = 0; r < rows; r++) {
                double sum = 0;
                for (int c = 0; c < width; c++) {
                    assertTrue(y[r * width + c] > 0f, "row " + r + " column " + c + " is " + y[r * width + c]);
                    sum += y[r * width + c];
                }
                assertEquals(1.0, sum, 1e-6, "row " + r);
            }
        }
    }

    @Test
    void backwardWritesEveryElementAndCanRunInPlace() {
        int rows = 7, width = 19;
        Random random = new Random(5);
        try (MemoryScope scope = new MemoryScope("softmax-backward")) {
            Tensor y = scope.zeros(rows, width);
            BACKEND.softmax(TestData.uniform(scope, random, rows, width), y);
            Tensor dOut = TestData.uniform(scope, random, rows, width);
            Tensor dx = TestData.poisoned(scope, rows, width);
            BACKEND.softmaxBackward(dOut, y, dx);
            float[] yv = y.toFloatArray(), gv = dOut.toFloatArray(), expected = dx.toFloatArray();
            for (int r = 0; r < rows; r++) {
                double dot = 0;
                for (int c = 0; c < width; c++) {
                    dot += (double) gv[r * width + c] * yv[r * width + c];
                }
                for (int c = 0; c < width; c++) {
                    int i = r * width + c;
                    assertEquals(yv[i] * (gv[i] - dot), expected[i], 1e-6, "element " + i);
                }
            }
            BACKEND.softmaxBackward(dOut, y, dOut);
            assertArrayEquals(expected, dOut.toFloatArray(), "in place (dx = dOut) differs from out of place");
        }
    }

    @Test
    void oneAndTwoThreadsAreBitIdentical() {
        int rows = 1000, width = 77;
        Random random = new Random(6);
        try (MemoryScope scope = new MemoryScope("softmax-threads")) {
            Tensor x = TestData.uniform(scope, random, rows, width);
            Tensor dOut = TestData.uniform(scope, random, rows, width);
            Tensor y1 = scope.zeros(rows, width), y2 = scope.zeros(rows, width);
            Tensor dx1 = scope.zeros(rows, width), dx2 = scope.zeros(rows, width);
            SINGLE_THREAD.softmax(x, y1);
            BACKEND.softmax(x, y2);
            SINGLE_THREAD.softmaxBackward(dOut, y1, dx1);
            BACKEND.softmaxBackward(dOut, y1, dx2);
            assertArrayEquals(y1.toFloatArray(), y2.toFloatArray());
            assertArrayEquals(dx1.toFloatArray(), dx2.toFloatArray());
        }
    }

    @Test
    void flopsAreCounted() {
        try (MemoryScope scope = new MemoryScope("softmax-flops")) {
            long before = BACKEND.flops().of("softmax");
            BACKEND.softmax(TestData.uniform(scope, new Random(7), 3, 17), scope.zeros(3, 17));
            assertEquals(5L * 3 * 17, BACKEND.flops().of("softmax") - before);
        }
    }

    @Test
    void badArgumentsThrow() {
        try (MemoryScope scope = new MemoryScope("softmax-bad")) {
            Tensor x = TestData.uniform(scope, new Random(8), 3, 5);
            IllegalArgumentException shape = assertThrows(IllegalArgumentException.class,
                    () -> BACKEND.softmax(x, scope.zeros(3, 4)));
            assertTrue(shape.getMessage().contains("softmax") && shape.getMessage().contains("out"),
                    shape.getMessage());
            IllegalArgumentException dtype = assertThrows(IllegalArgumentException.class,
                    () -> BACKEND.softmax(scope.zeros(DType.I32, 3, 5), scope.zeros(3, 5)));
            assertTrue(dtype.getMessage().contains("F32"), dtype.getMessage());
            IllegalArgumentException backward = assertThrows(IllegalArgumentException.class,
                    () -> BACKEND.softmaxBackward(scope.zeros(5, 3), x, scope.zeros(3, 5)));
            assertTrue(backward.getMessage().contains("softmaxBackward") && backward.getMessage().contains("dOut"),
                    backward.getMessage());
        }
    }
}
