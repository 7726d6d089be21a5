package io.microdit.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The tf32 tensor-core wrappers of kernels/common.cuh (self-test mma_tf32 of kernels/selftest.cu): one m16n8k8 MMA
 * whose fragments the kernel builds by the PTX ISA's layout, against D = A·B + C from the same operand formulas,
 * and cvt.rna.tf32.f32 on ties, near-ties, overflow, infinities, NaN and subnormals against {@link #tf32}.
 */
@Tag("emu")
class Tf32PrimitivesTest {
    /** The self-test's rounding inputs (bits), in its order. */
    private static final int[] INPUTS = {0x3f801000, 0x3f803000, 0xbf801000, 0x3f800fff, 0x3f801001, 0x3fffffff,
            0x7f7fffff, 0x7f800000, 0xff800000, 0x7fc00000, 0x00000fff, 0x00001000, 0x807ff000, 0x00000000,
            0x80000000, 0x4049ce3f};

    /** cvt.rna.tf32.f32: 10 mantissa bits, nearest, ties away from zero (on the magnitude); NaN stays NaN. */
    static float tf32(float value) {
        if (Float.isNaN(value)) {
            return value;
        }
        return Float.intBitsToFloat((Float.floatToRawIntBits(value) + 0x1000) & 0xffffe000);
    }

    /** The self-test's operand: a nonzero integer in [-3, 3] less 2^-12. */
    private static float operand(int v) {
        return (v >= 0 ? v + 1 : v) - 0x1p-12f;
    }

    private static float mmaA(int row, int k) {
        return operand((row * 5 + k * 3) % 6 - 3);
    }

    private static float mmaB(int k, int column) {
        return operand((k * 3 + column * 2) % 6 - 3);
    }

    private static float[] run() {
        try (Arena arena = Arena.ofConfined()) {
            int capacity = 128 + INPUTS.length;
            MemorySegment out = arena.allocate(ValueLayout.JAVA_FLOAT, capacity);
            int status = RuntimeBindings.mdt_selftest_run(arena.allocateFrom("mma_tf32"), 1, 32, 0, out, capacity);
            assertEquals(CudaRuntime.SUCCESS, status, () -> CudaRuntime.describe(status));
            return out.toArray(ValueLayout.JAVA_FLOAT);
        }
    }

    @Test
    void referenceRoundingHasTiesAwayFromZero() {
        assertEquals(Float.intBitsToFloat(0x3f802000), tf32(Float.intBitsToFloat(0x3f801000))); // even kept bit: up
        assertEquals(Float.intBitsToFloat(0xbf802000), tf32(Float.intBitsToFloat(0xbf801000)));
        assertEquals(Float.POSITIVE_INFINITY, tf32(Float.MAX_VALUE));
        assertEquals(3.0f, tf32(operand(2)));
        assertEquals(-1.0f, tf32(operand(-1)));
    }

    @Test
    void mmaMultipliesRoundedFragmentsByTheIsaLayout() {
        float[] out = run();
        for (int row = 0; row < 16; row++) {
            for (int column = 0; column < 8; column++) {
                // Rounded operands are integers: every product and partial sum is exact, in any order.
                double expected = row - 2 * column + 0.25;
                for (int k = 0; k < 8; k++) {
                    float a = tf32(mmaA(row, k)), b = tf32(mmaB(k, column));
                    assertEquals(Math.rint(a), a);
                    expected += (double) a * b;
                }
                assertEquals((float) expected, out[row * 8 + column], "D[" + row + "][" + column + "]");
            }
        }
    }

    @Test
    void roundingIsToNearestTiesAwayKeepingInfinitiesAndNan() {
        float[] out = run();
        for (int i = 0; i < INPUTS.length; i++) {
            float input = Float.intBitsToFloat(INPUTS[i]);
            int bits = Float.floatToRawIntBits(out[128 + i]);
            String what = String.format("to_tf32(0x%08x) = 0x%08x", INPUTS[i], bits);
            if (Float.isNaN(input)) {
                assertTrue(Float.isNaN(out[128 + i]), what);
            } else {
                // The tf32 is the upper 19 bits; the low 13 are zero.
                assertEquals(Float.floatToRawIntBits(tf32(input)), bits, what);
            }
        }
        assertEquals(0x3f802000, Float.floatToRawIntBits(out[128])); // a tie with an even kept bit goes away, not to even
        assertEquals(0x40000000, Float.floatToRawIntBits(out[128 + 5])); // the carry reaches the exponent
        assertEquals(0x7f800000, Float.floatToRawIntBits(out[128 + 6])); // past the largest tf32: infinity
        assertEquals(0x80800000, Float.floatToRawIntBits(out[128 + 12])); // a subnormal tie rounds up to the smallest normal
    }
}
