package io.microdit.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;

class TensorMemoryTest {

    @Test
    void scopeCountsLiveBytesAndGivesThemBackOnClose() {
        long before = Device.CPU.liveBytes();
        try (MemoryScope scope = new MemoryScope("test")) {
            scope.zeros(DType.F32, 3, 5);
            scope.zeros(DType.BF16, 7);
            scope.zeros(DType.I32, 2, 2);
            assertEquals(3 * 5 * 4 + 7 * 2 + 2 * 2 * 4, scope.ownedBytes());
            assertEquals(before + scope.ownedBytes(), Device.CPU.liveBytes());
        }
        assertEquals(before, Device.CPU.liveBytes());
    }

    @Test
    void nestedScopesFreeIndependently() {
        long before = Device.CPU.liveBytes();
        try (MemoryScope parameters = new MemoryScope("parameters")) {
            Tensor weight = parameters.zeros(4, 4).fill(2f);
            for (int step = 0; step < 3; step++) {
                try (MemoryScope activations = new MemoryScope("step")) {
                    activations.zeros(128, 128);
                }
                assertEquals(before + 64, Device.CPU.liveBytes());
            }
            assertEquals(2f, weight.getFloat(15));
        }
        assertEquals(before, Device.CPU.liveBytes());
    }

    @Test
    void useAfterCloseThrowsAClearException() {
        Tensor t;
        try (MemoryScope scope = new MemoryScope("step-42")) {
            t = scope.zeros(2, 3);
            t.setFloat(0, 1f);
        }
        Tensor closed = t;
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> closed.getFloat(0));
        assertTrue(e.getMessage().contains("step-42"), e.getMessage());
        assertTrue(e.getMessage().contains("F32[2, 3]"), e.getMessage());
        assertThrows(IllegalStateException.class, closed::toFloatArray);
        assertThrows(IllegalStateException.class, closed::segment);
    }

    @Test
    void allocatingInAClosedScopeThrows() {
        MemoryScope scope = new MemoryScope("done");
        scope.close();
        assertFalse(scope.isOpen());
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> scope.zeros(1));
        assertTrue(e.getMessage().contains("done"));
        scope.close(); // closing twice is harmless
    }

    @Test
    void reshapeAndRowsAreViewsOfTheSameBytes() {
        try (MemoryScope scope = new MemoryScope("views")) {
            float[] values = new float[24];
            Random random = new Random(3);
            for (int i = 0; i < values.length; i++) {
                values[i] = random.nextFloat() - 0.5f;
            }
            Tensor t = Tensor.of(scope, values, 2, 3, 4);
            Tensor flat = t.reshape(6, -1);
            assertArrayEquals(new int[] {6, 4}, flat.shape());
            Tensor second = t.rows(1, 1);
            assertArrayEquals(new int[] {1, 3, 4}, second.shape());
            assertEquals(values[12], second.getFloat(0));
            second.setFloat(0, 9f);
            assertEquals(9f, t.getFloat(12));
            assertEquals(9f, flat.getFloat(12));
            assertThrows(IllegalArgumentException.class, () -> t.reshape(5, 5));
            assertThrows(IllegalArgumentException.class, () -> t.rows(1, 2));
            assertEquals(6, t.rowCount());
        }
    }

    @Test
    void bf16RoundsToNearestEven() {
        // 1 + 2^-8 lies exactly halfway between bf16 neighbours 1 and 1 + 2^-7: ties go to the even one (1).
        assertEquals(1f, DType.bf16ToFloat(DType.floatToBf16(1f + 0x1p-8f)));
        // 1 + 3·2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even).
        assertEquals(1f + 0x1p-6f, DType.bf16ToFloat(DType.floatToBf16(1f + 3 * 0x1p-8f)));
        assertEquals(1f + 0x1p-7f, DType.bf16ToFloat(DType.floatToBf16(1f + 0x1p-7f + 0x1p-10f)));
        assertTrue(Float.isNaN(DType.bf16ToFloat(DType.floatToBf16(Float.NaN))));
        assertEquals(Float.POSITIVE_INFINITY, DType.bf16ToFloat(DType.floatToBf16(Float.POSITIVE_INFINITY)));
        try (MemoryScope scope = new MemoryScope("bf16")) {
            Tensor t = scope.zeros(DType.BF16, 3);
            t.copyFrom(new float[] {0.1f, -2.5f, 3e20f});
            Tensor f = t.to(DType.F32, scope);
            assertEquals(DType.bf16ToFloat(DType.floatToBf16(0.1f)), f.getFloat(0));
            assertEquals(-2.5f, f.getFloat(1));
        }
    }

    @Test
    void memoryJavaCannotTouchIsRefusedNotDereferenced() {
        // An allocator like a real GPU's: its memory must not be read or written from Java.
        try (java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofConfined()) {
            MemoryScope.Allocator device = new MemoryScope.Allocator() {
                @Override
                public java.lang.foreign.MemorySegment allocate(long bytes) {
                    return arena.allocate(Math.max(bytes, 1));
                }

                @Override
                public void free(java.lang.foreign.MemorySegment segment) {
                }
            };
            try (MemoryScope scope = new MemoryScope("gpu-like", Device.CUDA, device)) {
                Tensor t = scope.zeros(2, 3);
                assertFalse(scope.hostAccessible());
                IllegalStateException e = assertThrows(IllegalStateException.class, () -> t.getFloat(0));
                assertTrue(e.getMessage().contains("CUDA memory") && e.getMessage().contains("gpu-like"),
                        e.getMessage());
                assertThrows(IllegalStateException.class, () -> t.setFloat(0, 1f));
                assertThrows(IllegalStateException.class, t::toFloatArray);
                assertThrows(IllegalStateException.class, () -> t.copyFrom(new float[6]));
                assertThrows(IllegalStateException.class, () -> t.fill(1f));
                assertThrows(IllegalStateException.class, () -> Tensor.of(scope, new float[] {1}, 1));
                t.segment(); // the pointer itself stays available to the backend
            }
        }
    }

    @Test
    void releaseGivesBackWholeBlocksOnly() {
        long before = Device.CPU.liveBytes();
        try (MemoryScope scope = new MemoryScope("release"); MemoryScope other = new MemoryScope("other")) {
            Tensor t = Tensor.empty(scope, DType.F32, 4, 6);
            t.fill(2f);
            Tensor zeroed = scope.zeros(4, 6);
            Tensor foreign = Tensor.empty(other, DType.F32, 4, 6);
            assertFalse(scope.release(t.rows(1, 2)), "a slice is not a whole allocation");
            assertFalse(scope.release(foreign), "another scope's tensor");
            long owned = scope.ownedBytes();
            assertTrue(scope.release(zeroed), "zero-filled blocks come from the same allocator");
            assertEquals(owned - zeroed.byteSize(), scope.ownedBytes());
            owned = scope.ownedBytes();
            assertTrue(scope.release(t.reshape(6, 4)), "a reshape spans the whole allocation");
            assertEquals(owned - t.byteSize(), scope.ownedBytes());
            assertFalse(scope.release(t), "released twice");
            // Tests poison released memory: a stale read shows NaN instead of the old values.
            assertTrue(MemoryScope.POISON_UNINITIALIZED);
            assertTrue(Float.isNaN(t.getFloat(0)));
        }
        assertEquals(before, Device.CPU.liveBytes(), "released and closed bytes are each counted once");
    }

    @Test
    void badShapesAndValueCountsAreRejected() {
        try (MemoryScope scope = new MemoryScope("bad")) {
            assertThrows(IllegalArgumentException.class, () -> scope.zeros(2, -1));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> Tensor.of(scope, new float[5], 2, 3));
            assertTrue(e.getMessage().contains("5"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> scope.zeros(DType.F32, 2).getInt(0));
        }
    }
}
