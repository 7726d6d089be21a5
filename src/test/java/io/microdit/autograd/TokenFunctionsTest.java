package io.microdit.autograd;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.backend.cpu.CpuBackend;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.GradientCheck;
import io.microdit.testing.TestData;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class TokenFunctionsTest {
    private static final CpuBackend BACKEND = new CpuBackend();

    @AfterAll
    static void close() {
        BACKEND.close();
    }

    @Test
    void gatherRowsGradient() {
        int samples = 3, tokens = 7, kept = 4, width = 17;
        Random random = new Random(1);
        int[] ids = TestData.keepIds(random, samples, kept, tokens);
        GradientCheck.of(BACKEND, 2)
                .input("x", TestData.uniform(random, samples * tokens * width), samples, tokens, width)
                .maxElementsPerInput(400)
                .check((g, v) -> TokenFunctions.gatherRows(g, v[0], Tensor.ofInts(g.scope(), ids, samples, kept)),
                        r -> {
                            double[] out = new double[samples * kept * width];
                            for (int n = 0; n < samples; n++) {
                                for (int j = 0; j < kept; j++) {
                                    System.arraycopy(r[0], (n * tokens + ids[n * kept + j]) * width, out,
                                            (n * kept + j) * width, width);
                                }
                            }
                            return out;
                        });
    }

    @Test
    void scatterRowsGradient() {
        int samples = 3, tokens = 7, kept = 4, width = 17;
        Random random = new Random(3);
        int[] ids = TestData.keepIds(random, samples, kept, tokens);
        GradientCheck.of(BACKEND, 4)
                .input("x", TestData.uniform(random, samples * kept * width), samples, kept, width)
                .maxElementsPerInput(400)
                .check((g, v) -> TokenFunctions.scatterRows(g, v[0], Tensor.ofInts(g.scope(), ids, samples, kept),
                        tokens), r -> {
                            double[] out = new double[samples * tokens * width];
                            for (int n = 0; n < samples; n++) {
                                for (int j = 0; j < kept; j++) {
                                    System.arraycopy(r[0], (n * kept + j) * width, out,
                                            (n * tokens + ids[n * kept + j]) * width, width);
                                }
                            }
                            return out;
                        });
    }

    @Test
    void maskThenUnmaskThenPoolComposes() {
        // The deferred-mask round trip: only the kept tokens reach the mean, so only they get a gradient.
        int samples = 2, tokens = 9, kept = 3, width = 5;
        Random random = new Random(5);
        int[] ids = TestData.keepIds(random, samples, kept, tokens);
        GradientCheck.of(BACKEND, 6)
                .input("x", TestData.uniform(random, samples * tokens * width), samples, tokens, width)
                .check((g, v) -> {
                    Tensor idTensor = Tensor.ofInts(g.scope(), ids, samples, kept);
                    Variable keptTokens = TokenFunctions.gatherRows(g, v[0], idTensor);
                    return TokenFunctions.meanTokens(g, TokenFunctions.scatterRows(g, keptTokens, idTensor, tokens));
                }, r -> {
                    double[] out = new double[samples * width];
                    for (int i = 0; i < ids.length; i++) {
                        int n = i / kept;
                        for (int d = 0; d < width; d++) {
                            out[n * width + d] += r[0][(n * tokens + ids[i]) * width + d] / tokens;
                        }
                    }
                    return out;
                });
    }

    @ParameterizedTest
    @CsvSource({"3,7,17", "1,1,1", "2,77,33"})
    void meanTokensGradient(int samples, int tokens, int width) {
        Random random = new Random(tokens);
        GradientCheck.of(BACKEND, 8)
                .input("x", TestData.uniform(random, samples * tokens * width), samples, tokens, width)
                .check((g, v) -> TokenFunctions.meanTokens(g, v[0]), r -> {
                    double[] out = new double[samples * width];
                    for (int i = 0; i < r[0].length; i++) {
                        out[i / (tokens * width) * width + i % width] += r[0][i] / tokens;
                    }
                    return out;
                });
    }

    @ParameterizedTest
    @CsvSource({"2,3,6,10,2", "2,3,6,10,1", "2,3,6,9,3"})
    void patchifyGradient(int samples, int channels, int height, int width, int patch) {
        Random random = new Random(patch * 11L);
        int gridW = width / patch, features = channels * patch * patch;
        GradientCheck.of(BACKEND, 9)
                .input("image", TestData.uniform(random, samples * channels * height * width), samples, channels,
                        height, width)
                .check((g, v) -> TokenFunctions.patchify(g, v[0], patch), r -> {
                    double[] out = new double[r[0].length];
                    for (int i = 0; i < r[0].length; i++) {
                        int x = i % width, y = i / width % height, c = i / (width * height) % channels;
                        int n = i / (width * height * channels);
                        int token = (n * (height / patch) + y / patch) * gridW + x / patch;
                        out[token * features + (c * patch + y % patch) * patch + x % patch] = r[0][i];
                    }
                    return out;
                });
    }

    @ParameterizedTest
    @CsvSource({"2,3,6,10,2", "2,3,6,10,1", "2,3,6,9,3"})
    void unpatchifyGradient(int samples, int channels, int height, int width, int patch) {
        Random random = new Random(patch * 13L);
        int gridH = height / patch, gridW = width / patch;
        GradientCheck.of(BACKEND, 10)
                .input("tokens", TestData.uniform(random, samples * channels * height * width), samples,
                        gridH * gridW, patch * patch * channels)
                .check((g, v) -> TokenFunctions.unpatchify(g, v[0], patch, channels, height, width), r -> {
                    double[] out = new double[r[0].length];
                    for (int n = 0; n < samples; n++) {
                        for (int c = 0; c < channels; c++) {
                            for (int y = 0; y < height; y++) {
                                for (int x = 0; x < width; x++) {
                                    int token = (n * gridH + y / patch) * gridW + x / patch;
                                    int feature = ((y % patch) * patch + x % patch) * channels + c;
                                    out[((n * channels + c) * height + y) * width + x] =
                                            r[0][token * patch * patch * channels + feature];
                                }
                            }
                        }
                    }
                    return out;
                });
    }

    @Test
    void scatterWithDuplicateIdsIsRejected() {
        try (MemoryScope scope = new MemoryScope("test")) {
            Graph g = new Graph(BACKEND, scope);
            Variable x = g.constant(scope.zeros(1, 2, 3));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> TokenFunctions.scatterRows(g, x, Tensor.ofInts(scope, new int[] {2, 2}, 1, 2), 4));
            assertTrue(e.getMessage().contains("not distinct"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> TokenFunctions.scatterRows(g, x, Tensor.ofInts(scope, new int[] {0, 1}, 1, 2), 1));
            assertTrue(e.getMessage().contains("cannot hold"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> TokenFunctions.patchify(g, x, 2));
            assertTrue(e.getMessage().contains("patchify: image must have rank 4"), e.getMessage());
        }
    }
}
