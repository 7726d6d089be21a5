package io.microdit.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
import java.lang.foreign.ValueLayout;
import java.util.Random;
import java.util.function.BiConsumer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The BF16 outputs of LayerNorm, LayerNorm+modulate, GELU and the SwiGLU gate are bit for bit the F32 op followed by
 * convert (one rounding to nearest even of the same F32 result), and the row statistics are unchanged.
 */
class CpuBf16OutputTest {
    /** Three threads, so the parallel splits (uneven, mid-vector) are exercised. */
    private static final CpuBackend BACKEND = new CpuBackend(3);

    @AfterAll
    static void close() {
        BACKEND.close();
    }

    /** The raw bits of a BF16 tensor (NaN payloads included). */
    static short[] bits(Tensor t) {
        assertEquals(DType.BF16, t.dtype());
        return t.segment().toArray(ValueLayout.JAVA_SHORT);
    }

    /** BF16 poisoned with 0xFFFF (a NaN), so an element the op skips cannot pass. */
    private static Tensor poisonedBf16(MemoryScope scope, int... shape) {
        Tensor t = Tensor.zeros(scope, DType.BF16, shape);
        t.segment().fill((byte) 0xFF);
        return t;
    }

    /** {@code op(out)} into BF16 vs {@code op(out)} into F32 then convert: the same bits. */
    private static void assertBf16IsF32ThenConvert(String what, int[] shape,
                                                   BiConsumer<Tensor, Boolean> op) {
        try (MemoryScope scope = new MemoryScope("bf16-out")) {
            Tensor f32 = TestData.poisoned(scope, shape);
            op.accept(f32, false);
            Tensor converted = poisonedBf16(scope, shape);
            BACKEND.convert(f32, converted);
            Tensor direct = poisonedBf16(scope, shape);
            op.accept(direct, true);
            assertArrayEquals(bits(converted), bits(direct), what);
        }
    }

    /** Uniform in [-range, range) with a few specials (the rounding's NaN and infinity paths). */
    private static Tensor inputs(MemoryScope scope, Random random, float range, boolean specials, int... shape) {
        Tensor t = TestData.uniform(scope, random, shape);
        for (long i = 0; i < t.numel(); i++) {
            t.setFloat(i, t.getFloat(i) * range);
        }
        if (specials) {
            t.setFloat(0, Float.NaN);
            t.setFloat(1, Float.POSITIVE_INFINITY);
            t.setFloat(2, Float.NEGATIVE_INFINITY);
            t.setFloat(3, -0f);
        }
        return t;
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 7, 37, 200})
    void layerNormWithAndWithoutWeight(int width) {
        Random random = new Random(width);
        int rows = 3 * 11;
        try (MemoryScope scope = new MemoryScope("inputs")) {
            Tensor x = inputs(scope, random, 5f, false, 3, 11, width);
            Tensor weight = inputs(scope, random, 2f, false, width);
            for (Tensor w : new Tensor[] {weight, null}) {
                float[][] statistics = new float[2][];
                assertBf16IsF32ThenConvert("layerNorm width " + width + (w == null ? "" : " with weight"),
                        x.shape(), (out, bf16) -> {
                            Tensor mean = TestData.poisoned(scope, rows), rstd = TestData.poisoned(scope, rows);
                            BACKEND.layerNorm(x, w, 1e-6f, out, mean, rstd);
                            float[][] now = {mean.toFloatArray(), rstd.toFloatArray()};
                            if (bf16) {
                                assertArrayEquals(statistics[0], now[0], "mean");
                                assertArrayEquals(statistics[1], now[1], "rstd");
                            } else {
                                statistics[0] = now[0];
                                statistics[1] = now[1];
                            }
                        });
            }
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 7, 37, 200})
    void layerNormModulate(int width) {
        Random random = new Random(100 + width);
        int samples = 3, tokens = 13;
        try (MemoryScope scope = new MemoryScope("inputs")) {
            Tensor x = inputs(scope, random, 5f, false, samples, tokens, width);
            Tensor weight = inputs(scope, random, 2f, false, width);
            Tensor shift = inputs(scope, random, 1f, false, samples, width);
            Tensor scale = inputs(scope, random, 1f, false, samples, width);
            float[][] statistics = new float[2][];
            assertBf16IsF32ThenConvert("layerNormModulate width " + width, x.shape(), (out, bf16) -> {
                Tensor mean = TestData.poisoned(scope, samples * tokens);
                Tensor rstd = TestData.poisoned(scope, samples * tokens);
                BACKEND.layerNormModulate(x, weight, shift, scale, 1e-6f, out, mean, rstd);
                float[][] now = {mean.toFloatArray(), rstd.toFloatArray()};
                if (bf16) {
                    assertArrayEquals(statistics[0], now[0], "mean");
                    assertArrayEquals(statistics[1], now[1], "rstd");
                } else {
                    statistics[0] = now[0];
                    statistics[1] = now[1];
                }
            });
        }
    }

    /** Past the threads' minimum chunk (16384) with an odd tail, so the split and the scalar tail both store bf16. */
    @ParameterizedTest
    @ValueSource(ints = {5, 40_003})
    void geluBothFormsAndTheSwigluGate(int n) {
        Random random = new Random(n);
        try (MemoryScope scope = new MemoryScope("inputs")) {
            Tensor x = inputs(scope, random, 6f, true, n);
            for (boolean tanh : new boolean[] {true, false}) {
                assertBf16IsF32ThenConvert("gelu n " + n + (tanh ? " tanh" : " exact"), x.shape(),
                        (out, bf16) -> BACKEND.gelu(x, out, tanh));
            }
            Tensor b = inputs(scope, random, 3f, false, n);
            assertBf16IsF32ThenConvert("swigluGate n " + n, x.shape(), (out, bf16) -> BACKEND.swigluGate(x, b, out));
        }
    }

    @Test
    void outputsOfOtherDtypesOrShapesAreRefusedByName() {
        try (MemoryScope scope = new MemoryScope("bad")) {
            Tensor x = TestData.uniform(scope, new Random(1), 2, 3, 4);
            Tensor mean = TestData.poisoned(scope, 6), rstd = TestData.poisoned(scope, 6);
            Tensor ints = Tensor.zeros(scope, DType.I32, 2, 3, 4);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> BACKEND.layerNorm(x, null, 1e-6f, ints, mean, rstd));
            assertTrue(e.getMessage().startsWith("layerNorm: out must be F32 or BF16"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> BACKEND.gelu(x, Tensor.zeros(scope, DType.BF16, 2, 3, 5), true));
            assertTrue(e.getMessage().startsWith("gelu: out") && e.getMessage().contains("must have the shape of x"),
                    e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> BACKEND.swigluGate(x.to(DType.BF16, scope), x, Tensor.zeros(scope, DType.BF16, 2, 3, 4)));
            assertTrue(e.getMessage().startsWith("swigluGate: a and b must be both F32 or both BF16"),
                    e.getMessage());
            // SiLU has no bf16 output: nothing reads one.
            e = assertThrows(IllegalArgumentException.class,
                    () -> BACKEND.silu(x, Tensor.zeros(scope, DType.BF16, 2, 3, 4)));
            assertTrue(e.getMessage().startsWith("silu: out must be F32"), e.getMessage());
        }
    }
}
