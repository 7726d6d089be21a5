package io.microdit.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.random.Philox;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
import java.util.Arrays;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class CpuRandomTest {
    private static final CpuBackend ONE_THREAD = new CpuBackend(1);
    private static final CpuBackend TWO_THREADS = new CpuBackend(2);
    private static final CpuBackend FIVE_THREADS = new CpuBackend(5);

    @AfterAll
    static void close() {
        ONE_THREAD.close();
        TWO_THREADS.close();
        FIVE_THREADS.close();
    }

    @ParameterizedTest
    @CsvSource({"1, 0", "3, 1", "17, 2", "33, 5", "77, 4097", "4099, 3", "12289, 1000000007"})
    void fillsMatchPhiloxElementByElement(int n, long offset) {
        try (MemoryScope scope = new MemoryScope("random")) {
            Tensor uniform = TestData.poisoned(scope, n);
            Tensor normal = TestData.poisoned(scope, n);
            TWO_THREADS.uniform(42, 7, offset, uniform);
            TWO_THREADS.normal(42, 7, offset, normal);
            float[] expectedUniform = new float[n];
            float[] expectedNormal = new float[n];
            for (int i = 0; i < n; i++) {
                expectedUniform[i] = Philox.uniform(42, 7, offset + i);
                expectedNormal[i] = Philox.normal(42, 7, offset + i);
            }
            assertArrayEquals(expectedUniform, uniform.toFloatArray());
            assertArrayEquals(expectedNormal, normal.toFloatArray());
        }
    }

    @Test
    void multiDimensionalTensorsAreFilledInRowMajorOrder() {
        try (MemoryScope scope = new MemoryScope("random")) {
            Tensor out = TestData.poisoned(scope, 3, 5, 7);
            Tensor flat = TestData.poisoned(scope, 105);
            ONE_THREAD.normal(5, 1, 11, out);
            ONE_THREAD.normal(5, 1, 11, flat);
            assertArrayEquals(flat.toFloatArray(), out.toFloatArray());
        }
    }

    @Test
    void resultDoesNotDependOnTheThreadCount() {
        int n = (1 << 18) + 13;
        try (MemoryScope scope = new MemoryScope("random")) {
            for (boolean normal : new boolean[] {false, true}) {
                float[][] results = new float[3][];
                CpuBackend[] backends = {ONE_THREAD, TWO_THREADS, FIVE_THREADS};
                for (int b = 0; b < backends.length; b++) {
                    Tensor out = TestData.poisoned(scope, n);
                    if (normal) {
                        backends[b].normal(99, 4, 6, out);
                    } else {
                        backends[b].uniform(99, 4, 6, out);
                    }
                    results[b] = out.toFloatArray();
                }
                assertArrayEquals(results[0], results[1], normal ? "normal" : "uniform");
                assertArrayEquals(results[0], results[2], normal ? "normal" : "uniform");
            }
        }
    }

    @ParameterizedTest
    @CsvSource({"0, 5", "1, 3", "4094, 5", "4096, 4097"})
    void laterOffsetsContinueTheSameSequence(long offset, int shift) {
        int n = 9000;
        try (MemoryScope scope = new MemoryScope("random")) {
            Tensor whole = TestData.poisoned(scope, n);
            Tensor tail = TestData.poisoned(scope, n - shift);
            TWO_THREADS.normal(3, 2, offset, whole);
            TWO_THREADS.normal(3, 2, offset + shift, tail);
            assertArrayEquals(Arrays.copyOfRange(whole.toFloatArray(), shift, n), tail.toFloatArray());
            TWO_THREADS.uniform(3, 2, offset, whole);
            TWO_THREADS.uniform(3, 2, offset + shift, tail);
            assertArrayEquals(Arrays.copyOfRange(whole.toFloatArray(), shift, n), tail.toFloatArray());
        }
    }

    @Test
    void zeroSizedOutputIsANoOp() {
        try (MemoryScope scope = new MemoryScope("random")) {
            Tensor empty = scope.zeros(0, 4);
            TWO_THREADS.uniform(1, 1, 0, empty);
            TWO_THREADS.normal(1, 1, 0, empty);
            assertEquals(0, empty.numel());
        }
    }

    @Test
    void flopsAreCounted() {
        try (MemoryScope scope = new MemoryScope("random")) {
            CpuBackend backend = new CpuBackend(1);
            try (backend) {
                backend.uniform(1, 1, 0, scope.zeros(10));
                backend.normal(1, 1, 0, scope.zeros(10));
                assertEquals(10, backend.flops().of("uniform"));
                assertEquals(50, backend.flops().of("normal"));
            }
        }
    }

    @Test
    void badArgumentsAreRejected() {
        try (MemoryScope scope = new MemoryScope("random")) {
            Tensor bf16 = scope.zeros(DType.BF16, 4);
            IllegalArgumentException dtype = assertThrows(IllegalArgumentException.class,
                    () -> TWO_THREADS.uniform(1, 1, 0, bf16));
            assertTrue(dtype.getMessage().contains("uniform: out must be F32"), dtype.getMessage());
            Tensor out = scope.zeros(4);
            IllegalArgumentException offset = assertThrows(IllegalArgumentException.class,
                    () -> TWO_THREADS.normal(1, 1, -4, out));
            assertTrue(offset.getMessage().contains("normal: offset must be non-negative"), offset.getMessage());
            IllegalArgumentException overflow = assertThrows(IllegalArgumentException.class,
                    () -> TWO_THREADS.uniform(1, 1, Long.MAX_VALUE - 2, out));
            assertTrue(overflow.getMessage().contains("uniform: 4 elements from offset"), overflow.getMessage());
            IllegalArgumentException nullOut = assertThrows(IllegalArgumentException.class,
                    () -> TWO_THREADS.normal(1, 1, 0, null));
            assertTrue(nullOut.getMessage().contains("normal: out is null"), nullOut.getMessage());
        }
    }
}
