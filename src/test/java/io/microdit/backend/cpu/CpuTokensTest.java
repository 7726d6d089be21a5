package io.microdit.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class CpuTokensTest {
    private static final CpuBackend BACKEND = new CpuBackend();
    private static final CpuBackend SINGLE_THREAD = new CpuBackend(1);

    @AfterAll
    static void close() {
        BACKEND.close();
        SINGLE_THREAD.close();
    }

    /** Random ids in [0, tokens), distinct within a sample when asked (a random permutation's prefix). */
    private static int[] randomIds(Random random, int samples, int kept, int tokens, boolean distinct) {
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
            for (int j = 0; j < kept; j++) {
                ids[n * kept + j] = distinct ? order[j] : random.nextInt(tokens);
            }
        }
        return ids;
    }

    @ParameterizedTest
    @CsvSource({"3,7,4,17,true", "3,7,9,17,false", "1,1,1,1,true", "4,300,75,77,true", "2,5,0,3,true"})
    void gatherRowsPicksTheNamedRows(int samples, int tokens, int kept, int width, boolean distinct) {
        Random random = new Random(samples * 100L + tokens);
        int[] ids = randomIds(random, samples, kept, tokens, distinct);
        try (MemoryScope scope = new MemoryScope("test")) {
            Tensor x = TestData.uniform(scope, random, samples, tokens, width);
            Tensor idTensor = Tensor.ofInts(scope, ids, samples, kept);
            Tensor out = TestData.poisoned(scope, samples, kept, width);
            BACKEND.gatherRows(x, idTensor, out);
            float[] xs = x.toFloatArray(), actual = out.toFloatArray();
            for (int n = 0; n < samples; n++) {
                for (int j = 0; j < kept; j++) {
                    for (int d = 0; d < width; d++) {
                        assertEquals(xs[(n * tokens + ids[n * kept + j]) * width + d],
                                actual[(n * kept + j) * width + d], "out[" + n + "," + j + "," + d + "]");
                    }
                }
            }
        }
    }

    @ParameterizedTest
    @CsvSource({"3,7,4,17", "1,1,1,1", "4,300,75,77", "2,6,6,5", "2,5,0,3"})
    void scatterRowsPlacesRowsAndZeroesTheRest(int samples, int tokens, int kept, int width) {
        Random random = new Random(samples * 7L + tokens);
        int[] ids = randomIds(random, samples, kept, tokens, true);
        try (MemoryScope scope = new MemoryScope("test")) {
            Tensor x = TestData.uniform(scope, random, samples, kept, width);
            Tensor out = TestData.poisoned(scope, samples, tokens, width);
            BACKEND.scatterRows(x, Tensor.ofInts(scope, ids, samples, kept), out);
            float[] xs = x.toFloatArray();
            double[] expected = new double[samples * tokens * width];
            for (int n = 0; n < samples; n++) {
                for (int j = 0; j < kept; j++) {
                    for (int d = 0; d < width; d++) {
                        expected[(n * tokens + ids[n * kept + j]) * width + d] = xs[(n * kept + j) * width + d];
                    }
                }
            }
            assertArrayEquals(expected, TestData.toDouble(out.toFloatArray()));
        }
    }

    @Test
    void gatherAndScatterAreTheSameOnOneAndManyThreads() {
        Random random = new Random(3);
        int samples = 5, tokens = 256, kept = 64, width = 96;
        int[] ids = randomIds(random, samples, kept, tokens, true);
        try (MemoryScope scope = new MemoryScope("test")) {
            Tensor x = TestData.uniform(scope, random, samples, tokens, width);
            Tensor idTensor = Tensor.ofInts(scope, ids, samples, kept);
            Tensor gatheredMany = TestData.poisoned(scope, samples, kept, width);
            Tensor gatheredOne = TestData.poisoned(scope, samples, kept, width);
            BACKEND.gatherRows(x, idTensor, gatheredMany);
            SINGLE_THREAD.gatherRows(x, idTensor, gatheredOne);
            assertArrayEquals(gatheredOne.toFloatArray(), gatheredMany.toFloatArray());
            // Scatter after gather restores the kept rows and zeroes the others.
            Tensor restored = TestData.poisoned(scope, samples, tokens, width);
            BACKEND.scatterRows(gatheredMany, idTensor, restored);
            float[] xs = x.toFloatArray(), back = restored.toFloatArray();
            boolean[] keptRow = new boolean[samples * tokens];
            for (int r = 0; r < ids.length; r++) {
                keptRow[(r / kept) * tokens + ids[r]] = true;
            }
            for (int i = 0; i < back.length; i++) {
                assertEquals(keptRow[i / width] ? xs[i] : 0f, back[i], "element " + i);
            }
        }
    }

    @Test
    void meanTokensAndItsBackwardMatchTheReference() {
        Random random = new Random(17);
        for (int[] size : new int[][] {{3, 7, 17}, {1, 1, 1}, {2, 77, 33}, {4, 5, 64}}) {
            int samples = size[0], tokens = size[1], width = size[2];
            try (MemoryScope scope = new MemoryScope("test")) {
                Tensor x = TestData.uniform(scope, random, samples, tokens, width);
                Tensor out = TestData.poisoned(scope, samples, width);
                BACKEND.meanTokens(x, out);
                float[] xs = x.toFloatArray();
                double[] expected = new double[samples * width];
                for (int n = 0; n < samples; n++) {
                    for (int d = 0; d < width; d++) {
                        for (int t = 0; t < tokens; t++) {
                            expected[n * width + d] += xs[(n * tokens + t) * width + d] / (double) tokens;
                        }
                    }
                }
                assertTrue(TestData.maxRelativeError(out.toFloatArray(), expected) < 1e-6);

                Tensor dOut = TestData.uniform(scope, random, samples, width);
                Tensor dx = TestData.poisoned(scope, samples, tokens, width);
                BACKEND.meanTokensBackward(dOut, dx);
                float[] upstream = dOut.toFloatArray(), gradient = dx.toFloatArray();
                for (int i = 0; i < gradient.length; i++) {
                    int n = i / (tokens * width), d = i % width;
                    assertEquals(upstream[n * width + d] / (double) tokens, gradient[i], 1e-7, "dx " + i);
                }
            }
        }
    }

    /** The token array index of image element (n, c, y, x), by the definition of each layout. */
    private static int patchifyIndex(int n, int c, int y, int x, int channels, int height, int width, int patch) {
        int gridW = width / patch, tokens = (height / patch) * gridW, features = channels * patch * patch;
        int token = (y / patch) * gridW + x / patch;
        int feature = (c * patch + y % patch) * patch + x % patch;
        return (n * tokens + token) * features + feature;
    }

    @ParameterizedTest
    @CsvSource({"2,3,6,10,2", "2,3,6,10,1", "2,3,6,9,3", "1,4,8,8,2", "3,1,3,5,1", "1,2,4,4,4"})
    void patchifyMatchesTheIndexFormulaAndInverts(int samples, int channels, int height, int width, int patch) {
        Random random = new Random(height * 31L + width + patch);
        int tokens = (height / patch) * (width / patch), features = channels * patch * patch;
        try (MemoryScope scope = new MemoryScope("test")) {
            Tensor image = TestData.uniform(scope, random, samples, channels, height, width);
            Tensor out = TestData.poisoned(scope, samples, tokens, features);
            BACKEND.patchify(image, patch, out);
            float[] pixels = image.toFloatArray(), actual = out.toFloatArray();
            for (int n = 0; n < samples; n++) {
                for (int c = 0; c < channels; c++) {
                    for (int y = 0; y < height; y++) {
                        for (int x = 0; x < width; x++) {
                            assertEquals(pixels[((n * channels + c) * height + y) * width + x],
                                    actual[patchifyIndex(n, c, y, x, channels, height, width, patch)]);
                        }
                    }
                }
            }
            Tensor back = TestData.poisoned(scope, samples, channels, height, width);
            BACKEND.patchifyBackward(out, patch, back);
            assertArrayEquals(pixels, back.toFloatArray(), "patchifyBackward(patchify(x)) must be x");
        }
    }

    @Test
    void patchifyThenLinearIsTheStridedConvolution() {
        int samples = 2, channels = 3, height = 6, width = 10, patch = 2, dim = 5;
        int gridH = height / patch, gridW = width / patch, features = channels * patch * patch;
        Random random = new Random(23);
        try (MemoryScope scope = new MemoryScope("test")) {
            Tensor image = TestData.uniform(scope, random, samples, channels, height, width);
            float[] weight = TestData.uniform(random, dim * channels * patch * patch); // [D, C, p, p]
            Tensor tokens = TestData.poisoned(scope, samples, gridH * gridW, features);
            BACKEND.patchify(image, patch, tokens);
            float[] pixels = image.toFloatArray(), patches = tokens.toFloatArray();
            for (int n = 0; n < samples; n++) {
                for (int gy = 0; gy < gridH; gy++) {
                    for (int gx = 0; gx < gridW; gx++) {
                        for (int o = 0; o < dim; o++) {
                            double convolution = 0;
                            for (int c = 0; c < channels; c++) {
                                for (int i = 0; i < patch; i++) {
                                    for (int j = 0; j < patch; j++) {
                                        convolution += (double) weight[((o * channels + c) * patch + i) * patch + j]
                                                * pixels[((n * channels + c) * height + gy * patch + i) * width
                                                + gx * patch + j];
                                    }
                                }
                            }
                            double linear = 0; // weight viewed as [D, C·p·p]
                            int token = (n * gridH + gy) * gridW + gx;
                            for (int f = 0; f < features; f++) {
                                linear += (double) weight[o * features + f] * patches[token * features + f];
                            }
                            assertEquals(convolution, linear, 1e-9, "output " + o + " of token " + token);
                        }
                    }
                }
            }
        }
    }

    @ParameterizedTest
    @CsvSource({"2,3,6,10,2", "2,3,6,10,1", "2,3,6,9,3", "1,4,8,8,2", "2,5,4,6,2"})
    void unpatchifyMatchesTheOfficialEinsum(int samples, int channels, int height, int width, int patch) {
        Random random = new Random(height * 13L + width + patch);
        int gridH = height / patch, gridW = width / patch;
        try (MemoryScope scope = new MemoryScope("test")) {
            Tensor tokens = TestData.uniform(scope, random, samples, gridH * gridW, patch * patch * channels);
            Tensor out = TestData.poisoned(scope, samples, channels, height, width);
            BACKEND.unpatchify(tokens, patch, out);
            // reshape (N, h, w, p, q, c); einsum nhwpqc->nchpwq; reshape (N, c, h·p, w·p).
            float[] source = tokens.toFloatArray();
            float[] expected = new float[source.length];
            for (int n = 0; n < samples; n++) {
                for (int h = 0; h < gridH; h++) {
                    for (int w = 0; w < gridW; w++) {
                        for (int p = 0; p < patch; p++) {
                            for (int q = 0; q < patch; q++) {
                                for (int c = 0; c < channels; c++) {
                                    int from = ((((n * gridH + h) * gridW + w) * patch + p) * patch + q) * channels + c;
                                    int to = ((((n * channels + c) * gridH + h) * patch + p) * gridW + w) * patch + q;
                                    expected[to] = source[from];
                                }
                            }
                        }
                    }
                }
            }
            assertArrayEquals(expected, out.toFloatArray());
            Tensor back = TestData.poisoned(scope, samples, gridH * gridW, patch * patch * channels);
            BACKEND.unpatchifyBackward(out, patch, back);
            assertArrayEquals(source, back.toFloatArray(), "unpatchifyBackward(unpatchify(t)) must be t");
        }
    }

    @Test
    void withOneChannelUnpatchifyUndoesPatchify() {
        Random random = new Random(8);
        try (MemoryScope scope = new MemoryScope("test")) {
            Tensor image = TestData.uniform(scope, random, 2, 1, 6, 10);
            Tensor tokens = TestData.poisoned(scope, 2, 15, 4);
            Tensor back = TestData.poisoned(scope, 2, 1, 6, 10);
            BACKEND.patchify(image, 2, tokens);
            BACKEND.unpatchify(tokens, 2, back);
            assertArrayEquals(image.toFloatArray(), back.toFloatArray());
        }
    }

    @Test
    void badArgumentsAreRejectedWithClearMessages() {
        try (MemoryScope scope = new MemoryScope("test")) {
            Tensor x = scope.zeros(2, 5, 3);
            Tensor out = scope.zeros(2, 2, 3);
            Tensor floatIds = scope.zeros(2, 2);
            assertMessage("ids must be I32", () -> BACKEND.gatherRows(x, floatIds, out));
            Tensor outOfRange = Tensor.ofInts(scope, new int[] {0, 1, 4, 5}, 2, 2);
            assertMessage("ids[1, 1] = 5 is out of range [0, 5)", () -> BACKEND.gatherRows(x, outOfRange, out));
            Tensor negative = Tensor.ofInts(scope, new int[] {-1, 1, 2, 3}, 2, 2);
            assertMessage("out of range", () -> BACKEND.gatherRows(x, negative, out));
            Tensor duplicate = Tensor.ofInts(scope, new int[] {0, 1, 3, 3}, 2, 2);
            assertMessage("ids of sample 1 are not distinct", () -> BACKEND.scatterRows(out, duplicate, x));
            assertMessage("out must have shape", () -> BACKEND.gatherRows(x, negative, scope.zeros(2, 3, 3)));
            Tensor image = scope.zeros(1, 2, 5, 6);
            assertMessage("must be divisible by the patch size 2",
                    () -> BACKEND.patchify(image, 2, scope.zeros(1, 6, 8)));
            assertMessage("must be divisible by the patch size 2",
                    () -> BACKEND.unpatchify(scope.zeros(1, 6, 8), 2, image));
            assertMessage("patch must be at least 1", () -> BACKEND.patchify(image, 0, scope.zeros(1, 30, 0)));
            assertMessage("out must have shape",
                    () -> BACKEND.patchify(scope.zeros(1, 2, 4, 6), 2, scope.zeros(1, 6, 9)));
            assertMessage("x must be F32",
                    () -> BACKEND.meanTokens(scope.zeros(DType.I32, 2, 3, 4), scope.zeros(2, 4)));
        }
    }

    private static void assertMessage(String expected, org.junit.jupiter.api.function.Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().contains(expected), "message '" + e.getMessage() + "' lacks '" + expected + "'");
    }
}
