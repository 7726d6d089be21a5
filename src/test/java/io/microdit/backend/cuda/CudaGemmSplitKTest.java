package io.microdit.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
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
 * Split-K of the f32 GEMM (kernels/gemm.cu): small outputs with long K (the MoE router's weight gradient, kept in
 * f32) are computed as f32 partials per K slice in a workspace, then added in slice order with bias and accumulate
 * applied once. Checked against the CPU backend (tails in M, N and K, every transpose, batches, a shared operand,
 * bias, accumulate), through CudaBackend.matmul and through the C ABI with too small or no workspace; the split
 * depends on the shape alone, so two calls give the same bits. Outputs start as NaN.
 */
@Tag("emu")
class CudaGemmSplitKTest extends GemmFixture {
    /** Both sides sum in f32; only the order differs. */
    private static final double TOLERANCE = 1e-5;
    /** Floats of workspace the f32 GEMM of this shape asks for (0 when it does not split K). */
    private static long workspaceFloats(long batch, long m, long n, long k) {
        return workspaceFloats(GemmBindings::mdt_gemm_matmul_workspace, batch, m, n, k);
    }

    /** One product through CudaBackend.matmul, compared with the CPU; returns the GPU result's values. */
    private static float[] assertMatmulClose(Random random, int batchA, int batchB, int m, int n, int k, boolean ta,
                                             boolean tb, boolean withBias, boolean accumulate) {
        return assertSplitMatmulClose(GemmBindings::mdt_gemm_matmul_workspace, DType.F32, TOLERANCE, "f32 ",
                random, batchA, batchB, m, n, k, ta, tb, withBias, accumulate);
    }

    @Test
    void theSplitComesFromTheShapeAlone() {
        // The MoE router's weight gradient in microdit-tiny-2 at batch 256: 1·16 tiles of 32×32; K = 65536 rows
        // (2048 k-tiles) takes 33 slices of 63 k-tiles (528 blocks, 4 per SM), K = 16384 takes 16 of 32 (256).
        assertEquals(33L * 8 * 512, workspaceFloats(1, 8, 512, 65536));
        assertEquals(16L * 8 * 512, workspaceFloats(1, 8, 512, 16384));
        assertEquals(16L, workspaceFloats(1, 1, 1, 4096));
        assertEquals(18L * 8 * 40, workspaceFloats(1, 8, 40, 5000));
        assertEquals(0L, workspaceFloats(1, 16384, 8, 512), "the router's forward: 512 tiles, no split");
        assertEquals(0L, workspaceFloats(1, 4096, 4096, 4096), "128·128 tiles fill the chip without a split");
        assertEquals(0L, workspaceFloats(2, 300, 300, 480), "K of 15 k-tiles does not split");
        assertEquals(0L, workspaceFloats(0, 64, 64, 65536));
        assertEquals(0L, workspaceFloats(1, 64, 64, 0));
    }

    @Test
    void splitShapesMatchTheCpu() {
        Random random = new Random(41);
        assertMatmulClose(random, 0, 0, 8, 40, 5000, true, false, false, false); // the router's dW, K tail of 8
        assertMatmulClose(random, 0, 0, 8, 40, 5000, false, true, true, true);
        assertMatmulClose(random, 0, 0, 1, 1, 4096, false, false, false, false);
        assertMatmulClose(random, 0, 0, 1, 1, 4099, true, true, true, false); // K tail: 4099 = 128·32 + 3
        assertMatmulClose(random, 0, 0, 33, 45, 1000, false, false, true, true); // M and N tails
    }

    @Test
    void batchedSplitsWithTransposesAndSharedOperands() {
        Random random = new Random(42);
        for (int variant = 0; variant < 4; variant++) {
            boolean ta = (variant & 1) != 0, tb = (variant & 2) != 0;
            assertMatmulClose(random, 2, variant == 2 ? 0 : 2, 33, 20, 810, ta, tb, variant != 1, variant == 3);
        }
        assertMatmulClose(random, 0, 3, 9, 12, 700, true, false, true, false); // a shared across the batch
    }

    @Test
    void twoCallsGiveTheSameBits() {
        float[] first = assertMatmulClose(new Random(43), 0, 0, 24, 20, 2000, true, false, true, false);
        float[] second = assertMatmulClose(new Random(43), 0, 0, 24, 20, 2000, true, false, true, false);
        assertArrayEquals(first, second);
    }

    /**
     * The C ABI with bias and accumulate and workspaces of every size: the preferred one, one with room for two
     * slices only (the floats past it stay untouched), one slice's worth (no split) and NULL; each within
     * tolerance of the CPU.
     */
    @Test
    void smallOrMissingWorkspacesSplitLessAndStayCorrect() {
        Random random = new Random(44);
        int m = 19, n = 37, k = 1500;
        long elements = (long) m * n, preferred = workspaceFloats(1, m, n, k);
        assertTrue(preferred > 2 * elements, "preferred workspace " + preferred);
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            Tensor a = TestData.uniform(host, random, k, m), b = TestData.uniform(host, random, k, n);
            Tensor bias = TestData.uniform(host, random, n), start = TestData.uniform(host, random, m, n);
            Tensor expected = host.zeros(DType.F32, m, n).copyFrom(start);
            cpu.matmul(a, true, b, false, bias, expected, true);
            Tensor da = cuda.upload(a, device), db = cuda.upload(b, device), dbias = cuda.upload(bias, device);
            long[] capacities = {preferred, 2 * elements + 3, elements, 0};
            for (long capacity : capacities) {
                Tensor workspace = cuda.upload(TestData.poisoned(host, (int) preferred), device);
                Tensor out = cuda.upload(start, device);
                int status = GemmBindings.mdt_gemm_matmul(cuda.stream(), da.segment(), 1, db.segment(), 0,
                        dbias.segment(), out.segment(), 1, m, n, k, 0, 0, 1,
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
                    assertFalse(Float.isNaN(used[(int) (2 * elements - 1)]), "two slices should have been used");
                }
                if (capacity == elements) {
                    assertTrue(Float.isNaN(used[0]), "one slice's room should not split");
                }
            }
        }
    }

    @Test
    void badArgumentsAreClearErrors() {
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device");
             Arena arena = Arena.ofConfined()) {
            Tensor a = cuda.upload(host.zeros(DType.F32, 4, 4), device);
            Tensor out = cuda.upload(host.zeros(DType.F32, 4, 4), device);
            MemorySegment none = MemorySegment.NULL;
            int negative = GemmBindings.mdt_gemm_matmul(none, a.segment(), 0, a.segment(), 0, none,
                    out.segment(), 1, 4, 4, 4, 0, 0, 0, out.segment(), -1);
            assertEquals(CudaRuntime.ERROR_INVALID_ARGUMENT, negative);
            String message = CudaRuntime.describe(negative);
            assertTrue(message.contains("mdt_gemm_matmul") && message.contains("workspace"), message);
            MemorySegment floats = arena.allocate(ValueLayout.JAVA_LONG);
            assertEquals(CudaRuntime.ERROR_INVALID_ARGUMENT,
                    GemmBindings.mdt_gemm_matmul_workspace(1, 4, -1, 4, floats));
            String size = CudaRuntime.describe(CudaRuntime.ERROR_INVALID_ARGUMENT);
            assertTrue(size.contains("mdt_gemm_matmul_workspace") && size.contains("negative size"), size);
            assertEquals(CudaRuntime.ERROR_INVALID_ARGUMENT,
                    GemmBindings.mdt_gemm_matmul_workspace(1, 4, 4, 4, none));
            String result = CudaRuntime.describe(CudaRuntime.ERROR_INVALID_ARGUMENT);
            assertTrue(result.contains("mdt_gemm_matmul_workspace") && result.contains("NULL"), result);
        }
    }
}
