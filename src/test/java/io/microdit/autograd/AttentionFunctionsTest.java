package io.microdit.autograd;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.backend.cpu.CpuAttentionTest;
import io.microdit.backend.cpu.CpuBackend;
import io.microdit.tensor.MemoryScope;
import io.microdit.testing.GradientCheck;
import io.microdit.testing.TestData;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class AttentionFunctionsTest {
    private static final CpuBackend BACKEND = new CpuBackend(2);

    @AfterAll
    static void close() {
        BACKEND.close();
    }

    @ParameterizedTest(name = "N={0} H={1} Tq={2} Tk={3} Dh={4}")
    @CsvSource({
        "2, 2, 5, 7, 3",
        "2, 2, 6, 6, 3",
        "1, 3, 4, 9, 1",
        "1, 1, 17, 3, 5",
        "2, 1, 3, 77, 2",
    })
    void gradientsOfQueryKeyAndValueMatchFiniteDifferences(int batch, int heads, int queries, int keys,
                                                           int headDim) {
        int width = heads * headDim;
        Random random = new Random(queries * 131L + keys);
        GradientCheck.of(BACKEND, 17)
                .input("q", TestData.uniform(random, batch * queries * width), batch, queries, width)
                .input("k", TestData.uniform(random, batch * keys * width), batch, keys, width)
                .input("v", TestData.uniform(random, batch * keys * width), batch, keys, width)
                .check((g, in) -> AttentionFunctions.attention(g, in[0], in[1], in[2], heads),
                        r -> CpuAttentionTest.reference(r[0], r[1], r[2], batch, queries, keys, heads, headDim)[0]);
    }

    @Test
    void selfAttentionOnOneVariableSumsTheThreeGradients() {
        int batch = 2, heads = 2, tokens = 5, headDim = 3, width = heads * headDim;
        Random random = new Random(23);
        GradientCheck.of(BACKEND, 29)
                .input("x", TestData.uniform(random, batch * tokens * width), batch, tokens, width)
                .check((g, in) -> AttentionFunctions.attention(g, in[0], in[0], in[0], heads),
                        r -> CpuAttentionTest.reference(r[0], r[0], r[0], batch, tokens, tokens, heads, headDim)[0]);
    }

    @Test
    void constantKeysAndValuesGetNoGradientButQueriesDo() {
        int batch = 1, heads = 2, queries = 4, keys = 6, headDim = 2, width = heads * headDim;
        Random random = new Random(31);
        GradientCheck.of(BACKEND, 37)
                .input("q", TestData.uniform(random, batch * queries * width), batch, queries, width)
                .constant("k", TestData.uniform(random, batch * keys * width), batch, keys, width)
                .constant("v", TestData.uniform(random, batch * keys * width), batch, keys, width)
                .check((g, in) -> AttentionFunctions.attention(g, in[0], in[1], in[2], heads),
                        r -> CpuAttentionTest.reference(r[0], r[1], r[2], batch, queries, keys, heads, headDim)[0]);
    }

    @Test
    void headsThatDoNotDivideTheWidthAreRejected() {
        try (MemoryScope scope = new MemoryScope("attention-heads")) {
            Graph g = new Graph(BACKEND, scope);
            Variable x = g.constant(scope.zeros(1, 3, 10));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> AttentionFunctions.attention(g, x, x, x, 4));
            assertTrue(e.getMessage().contains("attention: q F32[1, 3, 10]"), e.getMessage());
            assertTrue(e.getMessage().contains("4 heads"), e.getMessage());
        }
    }
}
