package io.microdit.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Split-K of the tensor-core GEMM (kernels/gemm.cu): small outputs with long K are computed as f32 partials per
 * K slice in a workspace, then added in slice order with the epilogue applied once. Checked against the CPU
 * backend's f32 matmul of the same bf16 values (tails in M, N and K, transposes, batches, bias, GELU,
 * accumulate), through CudaBackend.matmul and through the C ABI with too small or no workspace; the split
 * depends on the shape alone, so two calls give the same bits. Outputs start as NaN.
 */
@Tag("emu")
class CudaBf16GemmSplitKTest extends GemmFixture {
    /** As in CudaBf16GemmTest: only the f32 summation order differs between the two sides. */
    private static final double TOLERANCE = 1e-4;
    /** Floats of workspace the GEMM of this shape asks for (0 when it does not split K). */
    private static long workspaceFloats(long batch, long m, long n, long k) {
        return workspaceFloats(GemmBindings::mdt_gemm_matmul_bf16_workspace, batch, m, n, k);
    }

    private static Tensor bf16(MemoryScope scope, Random random, int... shape) {
        return TestData.uniform(scope, random, shape).to(DType.BF16, scope);
    }

    /** One product through CudaBackend.matmul, compared with the CPU; returns the GPU result's values. */
    private static float[] assertMatmulClose(Random random, int batchA, int batchB, int m, int n, int k, boolean ta,
                                             boolean tb, boolean withBias, boolean accumulate) {
        return assertSplitMatmulClose(GemmBindings::mdt_gemm_matmul_bf16_workspace, DType.BF16, TOLERANCE, "",
                random, batchA, batchB, m, n, k, ta, tb, withBias, accumulate);
    }

    @Test
    void theSplitComesFromTheShapeAlone() {
        // The weight gradients of microdit-tiny-2 at batch 256: 4·12 = 48 tiles take 11 slices of 187 k-tiles
        // (528 blocks, 4 waves on 132 SMs); 16 tiles take 8 slices of 64 (128 blocks, one wave).
        assertEquals(11L * 512 * 1536, workspaceFloats(1, 512, 1536, 65536));
        assertEquals(8L * 512 * 512, workspaceFloats(1, 512, 512, 16384));
        assertEquals(16L, workspaceFloats(1, 1, 1, 4096));
        assertEquals(0L, workspaceFloats(1, 4096, 4096, 4096), "32·32 tiles fill the chip without a split");
        assertEquals(0L, workspaceFloats(2, 300, 300, 480), "K of 15 k-tiles does not split");
        assertEquals(0L, workspaceFloats(0, 64, 64, 65536));
        assertEquals(0L, workspaceFloats(1, 64, 64, 0));
    }

    @Test
    void splitShapesMatchTheCpu() {
        Random random = new Random(31);
        assertMatmulClose(random, 0, 0, 40, 130, 5000, false, false, false, false);
        assertMatmulClose(random, 0, 0, 40, 130, 2500, false, true, true, true);
        assertMatmulClose(random, 0, 0, 1, 1, 4096, false, false, false, false);
        assertMatmulClose(random, 0, 0, 1, 1, 4099, true, true, true, false); // K tail: 4099 = 128·32 + 3
        assertMatmulClose(random, 0, 0, 24, 16, 1000, true, false, false, true); // aligned rows: cp.async path
    }

    @Test
    void batchedSplitsWithTransposesAndSharedOperands() {
        Random random = new Random(32);
        for (int variant = 0; variant < 4; variant++) {
            boolean ta = (variant & 1) != 0, tb = (variant & 2) != 0;
            assertMatmulClose(random, 2, variant == 2 ? 0 : 2, 33, 20, 810, ta, tb, variant != 1, variant == 3);
        }
        assertMatmulClose(random, 0, 3, 9, 12, 700, true, false, true, false); // a shared across the batch
    }

    @Test
    void twoCallsGiveTheSameBits() {
        float[] first = assertMatmulClose(new Random(33), 0, 0, 24, 20, 2000, true, false, true, false);
        float[] second = assertMatmulClose(new Random(33), 0, 0, 24, 20, 2000, true, false, true, false);
        assertArrayEquals(first, second);
    }

    /**
     * The C ABI with the GELU epilogue and workspaces of every size: the preferred one, one with room for two
     * slices only (the floats past it stay untouched), one slice's worth (no split) and NULL; each within
     * tolerance of the CPU.
     */
    @Test
    void smallOrMissingWorkspacesSplitLessAndStayCorrect() {
        Random random = new Random(34);
        int m = 19, n = 37, k = 1500;
        long elements = (long) m * n, preferred = workspaceFloats(1, m, n, k);
        assertTrue(preferred > 2 * elements, "preferred workspace " + preferred);
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            Tensor a = bf16(host, random, m, k), b = bf16(host, random, n, k);
            Tensor bias = TestData.uniform(host, random, n);
            Tensor product = TestData.poisoned(host, m, n), expected = TestData.poisoned(host, m, n);
            cpu.matmul(a.to(DType.F32, host), false, b.to(DType.F32, host), true, bias, product, false);
            cpu.gelu(product, expected, true);
            Tensor da = cuda.upload(a, device), db = cuda.upload(b, device), dbias = cuda.upload(bias, device);
            long[] capacities = {preferred, 2 * elements + 3, elements, 0};
            for (long capacity : capacities) {
                Tensor workspace = cuda.upload(TestData.poisoned(host, (int) preferred), device);
                Tensor out = cuda.upload(TestData.poisoned(host, m, n), device);
                int status = GemmBindings.mdt_gemm_matmul_bf16(cuda.stream(), da.segment(), 0, db.segment(),
                        1, dbias.segment(), out.segment(), 1, m, n, k, 0, 0, 0, 1,
                        capacity == 0 ? MemorySegment.NULL : workspace.segment(), capacity);
                assertEquals(CudaRuntime.SUCCESS, status, () -> CudaRuntime.describe(status));
                CudaRuntime.check(RuntimeBindings.mdt_device_synchronize(), "mdt_device_synchronize");
                double error = TestData.maxRelativeError(cuda.download(out, host).toFloatArray(),
                        TestData.toDouble(expected.toFloatArray()));
                assertTrue(error <= TOLERANCE, "workspace " + capacity + ": relative error " + error);
                float[] used = cuda.download(workspace, host).toFloatArray();
                for (long i = Math.min(capacity, preferred); i < preferred; i++) {
                    assertTrue(Float.isNaN(used[(int) i]), "workspace " + capacity + " written at " + i);
                }
                if (capacity == 2 * elements + 3) {
                    assertTrue(!Float.isNaN(used[(int) (2 * elements - 1)]), "two slices should have been used");
                }
            }
        }
    }

    @Test
    void badArgumentsAreClearErrors() {
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device");
             Arena arena = Arena.ofConfined()) {
            Tensor a = cuda.upload(host.zeros(DType.BF16, 4, 4), device);
            Tensor out = cuda.upload(host.zeros(DType.F32, 4, 4), device);
            MemorySegment none = MemorySegment.NULL;
            int negative = GemmBindings.mdt_gemm_matmul_bf16(none, a.segment(), 0, a.segment(), 0, none,
                    out.segment(), 1, 4, 4, 4, 0, 0, 0, 0, out.segment(), -1);
            assertEquals(CudaRuntime.ERROR_INVALID_ARGUMENT, negative);
            String message = CudaRuntime.describe(negative);
            assertTrue(message.contains("mdt_gemm_matmul_bf16") && message.contains("workspace"), message);
            MemorySegment floats = arena.allocate(ValueLayout.JAVA_LONG);
            assertEquals(CudaRuntime.ERROR_INVALID_ARGUMENT,
                    GemmBindings.mdt_gemm_matmul_bf16_workspace(1, -1, 4, 4, floats));
            String size = CudaRuntime.describe(CudaRuntime.ERROR_INVALID_ARGUMENT);
            assertTrue(size.contains("mdt_gemm_matmul_bf16_workspace") && size.contains("negative size"), size);
            assertEquals(CudaRuntime.ERROR_INVALID_ARGUMENT,
                    GemmBindings.mdt_gemm_matmul_bf16_workspace(1, 4, 4, 4, none));
        }
    }
}
