package io.microdit.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
import java.lang.foreign.MemorySegment;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The tensor-core GEMM (kernels/gemm.cu, mdt_gemm_matmul_bf16) behind CudaBackend.matmul with BF16 operands,
 * against the CPU backend's F32 matmul of the same bf16-rounded values, on sizes that leave tails in every
 * tile dimension, both operand copy paths (cp.async for 16-byte-aligned rows, element copies otherwise), every
 * transpose, batches, shared operands, bias, accumulate and the GELU epilogue. Outputs start as NaN.
 */
@Tag("emu")
class CudaBf16GemmTest extends GemmFixture {
    /**
     * Both sides multiply the same bf16 values exactly and add in f32, so only the summation order differs
     * (about 1e-6 here); the issue allows 2e-2 for bf16, a layout mistake would give errors near 1.
     */
    private static final double TOLERANCE = 1e-4;
    /** Uniform in [-1, 1), rounded to bf16. */
    private static Tensor bf16(MemoryScope scope, Random random, int... shape) {
        return TestData.uniform(scope, random, shape).to(DType.BF16, scope);
    }

    private static void assertClose(Random random, int batchA, int batchB, int m, int n, int k, boolean ta,
                                    boolean tb, boolean withBias, boolean accumulate) {
        double error = productOnBothBackends(DType.BF16, random, batchA, batchB, m, n, k, ta, tb, withBias,
                accumulate).error();
        assertTrue(error <= TOLERANCE, () -> String.format(
                "bf16 matmul batch %d/%d %dx%dx%d ta=%b tb=%b bias=%b accumulate=%b: relative error %.3g",
                batchA, batchB, m, n, k, ta, tb, withBias, accumulate, error));
    }

    @Test
    void awkwardSizesWithTailsInEveryDimension() {
        Random random = new Random(21);
        assertClose(random, 0, 0, 1, 1, 1, false, false, false, false);
        assertClose(random, 0, 0, 17, 33, 77, false, false, true, false);
        assertClose(random, 0, 0, 64, 40, 130, false, true, true, false);
        assertClose(random, 0, 0, 5, 7, 0, false, false, true, false); // K = 0: bias alone
    }

    @Test
    void batchesTransposesSharedOperandsAndAccumulate() {
        Random random = new Random(22);
        for (int variant = 0; variant < 4; variant++) {
            boolean ta = (variant & 1) != 0, tb = (variant & 2) != 0;
            assertClose(random, 2, variant == 2 ? 0 : 2, 33, 20, 45, ta, tb, variant != 1, variant == 3);
        }
        assertClose(random, 0, 3, 9, 12, 21, true, false, true, false); // a shared across the batch
    }

    @Test
    void alignedRowsTakeTheAsyncCopyPathAcrossSeveralTiles() {
        Random random = new Random(23);
        // Every leading dimension a multiple of 8 bf16 (16 bytes): 16-byte cp.async chunks, zero-filled past the
        // edges; M and N span two 128-wide tiles, K two 32-deep stages.
        assertClose(random, 0, 0, 136, 16, 48, true, false, true, false);
        assertClose(random, 2, 2, 8, 136, 64, false, true, false, false);
        assertClose(random, 0, 0, 24, 40, 64, false, false, true, true);
    }

    @Test
    void cpuBf16MatmulIsItsF32MatmulOfTheSameValues() {
        Random random = new Random(24);
        try (MemoryScope scope = new MemoryScope("cpu")) {
            Tensor a = bf16(scope, random, 2, 7, 9), b = bf16(scope, random, 9, 5);
            Tensor viaBf16 = TestData.poisoned(scope, 2, 7, 5), viaF32 = TestData.poisoned(scope, 2, 7, 5);
            cpu.matmul(a, false, b, false, null, viaBf16, false);
            cpu.matmul(a.to(DType.F32, scope), false, b.to(DType.F32, scope), false, null, viaF32, false);
            assertArrayEquals(viaF32.toFloatArray(), viaBf16.toFloatArray());
        }
    }

    @Test
    void geluEpilogueMatchesMatmulThenGelu() {
        Random random = new Random(25);
        int m = 19, n = 37, k = 40;
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            Tensor a = bf16(host, random, m, k), b = bf16(host, random, n, k);
            Tensor bias = TestData.uniform(host, random, n);
            Tensor product = TestData.poisoned(host, m, n), expected = TestData.poisoned(host, m, n);
            cpu.matmul(a.to(DType.F32, host), false, b.to(DType.F32, host), true, bias, product, false);
            cpu.gelu(product, expected, true);
            Tensor out = cuda.upload(TestData.poisoned(host, m, n), device);
            int status = GemmBindings.mdt_gemm_matmul_bf16(cuda.stream(), cuda.upload(a, device).segment(), 0,
                    cuda.upload(b, device).segment(), 1, cuda.upload(bias, device).segment(), out.segment(), 1, m, n,
                    k, 0, 0, 0, 1, MemorySegment.NULL, 0);
            assertEquals(CudaRuntime.SUCCESS, status, () -> CudaRuntime.describe(status));
            CudaRuntime.check(RuntimeBindings.mdt_device_synchronize(), "mdt_device_synchronize");
            double error = TestData.maxRelativeError(cuda.download(out, host).toFloatArray(),
                    TestData.toDouble(expected.toFloatArray()));
            assertTrue(error <= TOLERANCE, "gelu epilogue: relative error " + error);
        }
    }

    @Test
    void badArgumentsAreClearErrors() {
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            Tensor a = cuda.upload(host.zeros(DType.BF16, 4, 4), device);
            Tensor out = cuda.upload(host.zeros(DType.F32, 4, 4), device);
            MemorySegment none = MemorySegment.NULL;
            int negative = GemmBindings.mdt_gemm_matmul_bf16(none, a.segment(), 0, a.segment(), 0, none,
                    out.segment(), 1, -4, 4, 4, 0, 0, 0, 0, none, 0);
            assertEquals(CudaRuntime.ERROR_INVALID_ARGUMENT, negative);
            String message = CudaRuntime.describe(negative);
            assertTrue(message.contains("mdt_gemm_matmul_bf16") && message.contains("negative size"), message);
            assertEquals(CudaRuntime.ERROR_INVALID_ARGUMENT, GemmBindings.mdt_gemm_matmul_bf16(none, a.segment(), 0,
                    a.segment(), 0, none, out.segment(), 1, 4, 4, 4, 0, 0, 0, 2, none, 0));
            assertEquals(CudaRuntime.ERROR_INVALID_ARGUMENT, GemmBindings.mdt_gemm_matmul_bf16(none, a.segment(), 0,
                    none, 0, none, out.segment(), 1, 4, 4, 4, 0, 0, 0, 0, none, 0));
            // Grid limits, checked before any pointer: the f32 GEMM puts row tiles on grid x (2^31 - 1), so
            // m = 2^21 (MicroDiT-XL at 512 px, batch 2048) passes them; column tiles on y stop at 65535.
            assertEquals(CudaRuntime.ERROR_INVALID_ARGUMENT, GemmBindings.mdt_gemm_matmul(none, none, 0, none, 0,
                    none, none, 1, 4, 65535L * 32 + 1, 4, 0, 0, 0, none, 0));
            String grid = CudaRuntime.describe(CudaRuntime.ERROR_INVALID_ARGUMENT);
            assertTrue(grid.contains("mdt_gemm_matmul") && grid.contains("grid"), grid);
            assertEquals(CudaRuntime.ERROR_INVALID_ARGUMENT, GemmBindings.mdt_gemm_matmul(none, none, 0, none, 0,
                    none, none, 1, 1L << 21, 4, 4, 0, 0, 0, none, 0)); // passes the grid check, then NULL pointers
            String pointers = CudaRuntime.describe(CudaRuntime.ERROR_INVALID_ARGUMENT);
            assertTrue(pointers.contains("NULL"), pointers);
            Tensor f32 = cuda.upload(host.zeros(DType.F32, 4, 4), device);
            IllegalArgumentException mixed = assertThrows(IllegalArgumentException.class,
                    () -> cuda.matmul(a, false, f32, false, null, out, false));
            assertTrue(mixed.getMessage().contains("matmul") && mixed.getMessage().contains("BF16"),
                    mixed.getMessage());
        }
    }
}
