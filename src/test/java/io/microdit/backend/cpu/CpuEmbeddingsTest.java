package io.microdit.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class CpuEmbeddingsTest {
    private static final CpuBackend BACKEND = new CpuBackend();

    @AfterAll
    static void close() {
        BACKEND.close();
    }

    /** Spec §1.3, written per element: channel ch of the token at row h, column w. */
    private static double positionReference(int h, int w, int ch, int dim, double scale) {
        int half = dim / 2, quarter = dim / 4;
        double position = ch < half ? w / scale : h / scale;
        int local = ch % half;
        int k = local % quarter;
        double angle = position / Math.pow(10000.0, (double) k / quarter);
        return local < quarter ? Math.sin(angle) : Math.cos(angle);
    }

    @ParameterizedTest
    @CsvSource({"3,5,8,1.0", "3,5,8,2.0", "4,6,64,2.0", "1,1,4,1.0", "16,16,1024,1.0", "2,7,12,1.5"})
    void positionEmbeddingMatchesTheFormula(int gridH, int gridW, int dim, float scale) {
        try (MemoryScope scope = new MemoryScope("test")) {
            Tensor out = TestData.poisoned(scope, gridH * gridW, dim);
            BACKEND.positionEmbedding2d(gridH, gridW, scale, out);
            float[] actual = out.toFloatArray();
            for (int h = 0; h < gridH; h++) {
                for (int w = 0; w < gridW; w++) {
                    for (int ch = 0; ch < dim; ch++) {
                        int token = h * gridW + w;
                        assertEquals(positionReference(h, w, ch, dim, scale), actual[token * dim + ch], 1e-6,
                                "token (" + h + ", " + w + ") channel " + ch);
                    }
                }
            }
        }
    }

    @Test
    void positionEmbeddingFirstRowsAreSinZeroCosOne() {
        int gridH = 3, gridW = 5, dim = 8;
        try (MemoryScope scope = new MemoryScope("test")) {
            Tensor out = TestData.poisoned(scope, gridH * gridW, dim);
            BACKEND.positionEmbedding2d(gridH, gridW, 1f, out);
            float[] e = out.toFloatArray();
            // Position (0, 0): every sine 0 and every cosine 1, in both halves.
            float[] origin = {0, 0, 1, 1, 0, 0, 1, 1};
            for (int ch = 0; ch < dim; ch++) {
                assertEquals(origin[ch], e[ch], 0f, "token 0 channel " + ch);
            }
            // Token 1 is (h 0, w 1): the first half sees x = 1 (ω_0 = 1, ω_1 = 1/100), the second half y = 0.
            float[] next = {(float) Math.sin(1), (float) Math.sin(0.01), (float) Math.cos(1), (float) Math.cos(0.01),
                0, 0, 1, 1};
            for (int ch = 0; ch < dim; ch++) {
                assertEquals(next[ch], e[dim + ch], 1e-7f, "token 1 channel " + ch);
            }
            // Token gridW is (h 1, w 0): the halves swap roles.
            for (int ch = 0; ch < dim; ch++) {
                assertEquals(next[(ch + dim / 2) % dim], e[gridW * dim + ch], 1e-7f, "token " + gridW + " channel " + ch);
            }
        }
    }

    private static double[] timestepReference(float[] t, int size) {
        int half = size / 2;
        double[] out = new double[t.length * size];
        for (int n = 0; n < t.length; n++) {
            for (int k = 0; k < half; k++) {
                double frequency = Math.exp(-Math.log(10000) * k / half);
                out[n * size + k] = Math.cos(t[n] * frequency);
                out[n * size + half + k] = Math.sin(t[n] * frequency);
            }
        }
        return out;
    }

    @ParameterizedTest
    @CsvSource({"3,512", "5,7", "1,2", "4,33", "2,1"})
    void timestepEmbeddingIsCosThenSin(int samples, int size) {
        Random random = new Random(samples * 10L + size);
        float[] t = new float[samples];
        for (int n = 0; n < samples; n++) {
            t[n] = -2f + 3.1f * random.nextFloat(); // c_noise = ln(σ)/4 lies in about [-2, 1.1]
        }
        try (MemoryScope scope = new MemoryScope("test")) {
            Tensor out = TestData.poisoned(scope, samples, size);
            BACKEND.timestepEmbedding(Tensor.of(scope, t, samples), out);
            float[] actual = out.toFloatArray();
            double[] expected = timestepReference(t, size);
            for (int i = 0; i < actual.length; i++) {
                assertEquals(expected[i], actual[i], 2e-6, "element " + i);
            }
            if (size % 2 == 1) {
                for (int n = 0; n < samples; n++) {
                    assertEquals(0f, actual[n * size + size - 1], 0f, "padding column of sample " + n);
                }
            }
        }
    }

    @Test
    void timestepZeroGivesCosOneSinZero() {
        try (MemoryScope scope = new MemoryScope("test")) {
            Tensor out = TestData.poisoned(scope, 1, 6);
            BACKEND.timestepEmbedding(Tensor.of(scope, new float[] {0f}, 1), out);
            float[] e = out.toFloatArray();
            for (int k = 0; k < 3; k++) {
                assertEquals(1f, e[k], 0f);
                assertEquals(0f, e[3 + k], 0f);
            }
        }
    }

    @Test
    void badArgumentsAreRejected() {
        try (MemoryScope scope = new MemoryScope("test")) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> BACKEND.positionEmbedding2d(2, 2, 1f, scope.zeros(4, 6)));
            assertTrue(e.getMessage().contains("multiple of 4"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> BACKEND.positionEmbedding2d(2, 3, 1f, scope.zeros(4, 8)));
            assertTrue(e.getMessage().contains("out must have shape"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> BACKEND.positionEmbedding2d(2, 2, 0f, scope.zeros(4, 8)));
            assertTrue(e.getMessage().contains("interpolationScale"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> BACKEND.timestepEmbedding(scope.zeros(3), scope.zeros(2, 8)));
            assertTrue(e.getMessage().contains("timestepEmbedding: out must have shape"), e.getMessage());
        }
    }
}
