package io.microdit.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The TF32 tensor-core GEMM (kernels/gemm.cu, mdt_gemm_matmul_tf32) behind CudaBackend.matmul with F32 operands
 * once {@link CudaBackend#allowTf32} is on, against a double-precision reference of the tf32-rounded operands
 * (Tf32PrimitivesTest.tf32: nearest, ties away) element by element: every transpose, tails in M, N and K, both
 * operand copy paths (cp.async for 16-byte-aligned rows, element copies otherwise), K deeper than the 4-stage
 * ring, batches and a shared operand, bias, accumulate, GELU, split-K with and without its workspace. With the
 * switch off F32 products keep the CUDA-core kernel's bits; the launch plan counts the kernel at the tf32 peak.
 * Outputs start as NaN.
 */
@Tag("emu")
class CudaTf32GemmTest extends CudaVersusCpu {
    private static final double UNIT_ROUNDOFF = 0x1p-24;
    private static final double SQRT_2_OVER_PI = 0.79788456080286536;

    /** One product's operands, as stored (transposed when asked; batch 0 = a rank-2 operand shared by the batch). */
    private record Operands(int batchA, int batchB, int m, int n, int k, boolean ta, boolean tb, float[] a, float[] b,
                            float[] bias, float[] start) {
        int batch() {
            return Math.max(1, Math.max(batchA, batchB));
        }

        float a(int bi, int row, int kk) {
            int base = batchA == 0 ? 0 : bi * m * k;
            return a[base + (ta ? kk * m + row : row * k + kk)];
        }

        float b(int bi, int kk, int column) {
            int base = batchB == 0 ? 0 : bi * k * n;
            return b[base + (tb ? column * k + kk : kk * n + column)];
        }

        static Operands random(Random random, int batchA, int batchB, int m, int n, int k, boolean ta, boolean tb,
                               boolean withBias, boolean accumulate) {
            int batch = Math.max(1, Math.max(batchA, batchB));
            float[] start = new float[batch * m * n];
            if (accumulate) {
                start = TestData.uniform(random, start.length);
            } else {
                Arrays.fill(start, Float.NaN);
            }
            return new Operands(batchA, batchB, m, n, k, ta, tb,
                    TestData.uniform(random, Math.max(1, batchA) * m * k),
                    TestData.uniform(random, Math.max(1, batchB) * k * n),
                    withBias ? TestData.uniform(random, n) : null, start);
        }

        Tensor tensorA(MemoryScope scope) {
            return Tensor.of(scope, a, GemmFixture.operandShape(batchA, ta ? k : m, ta ? m : k));
        }

        Tensor tensorB(MemoryScope scope) {
            return Tensor.of(scope, b, GemmFixture.operandShape(batchB, tb ? n : k, tb ? k : n));
        }
    }

    @AfterEach
    void switchOff() {
        cuda.allowTf32(false);
    }

    private static double gelu(double x) {
        return 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
    }

    /**
     * Asserts each output element is within its error bound of the exact result of the tf32-rounded operands, and
     * returns how many elements the exact result of the unrounded operands misses by more than that bound (so a
     * caller can show the test tells the two apart). The tensor cores multiply tf32 values exactly (11-bit
     * significands: 22-bit products fit f32's 24), so the only errors are f32 additions: at most K in the k-sums
     * plus the split-K slice sums, the bias and the accumulate, each off by at most 2^-24 of a partial sum no larger
     * than the sum of magnitudes: bound = (K + 8)·2^-24·(Σ|a·b| + |bias| + |old|). With GELU the f32 epilogue
     * (tanhf) adds a few units of 2^-24 of |x| + 1, and GELU's slope stays below 1.2.
     */
    private static int assertWithinTf32Bound(String label, Operands o, float[] actual, boolean accumulate,
                                             boolean gelu) {
        int unroundedMisses = 0;
        for (int bi = 0; bi < o.batch(); bi++) {
            for (int row = 0; row < o.m(); row++) {
                for (int column = 0; column < o.n(); column++) {
                    double sum = 0, exactSum = 0, magnitude = 0;
                    for (int kk = 0; kk < o.k(); kk++) {
                        float a = o.a(bi, row, kk), b = o.b(bi, kk, column);
                        double product = (double) Tf32PrimitivesTest.tf32(a) * Tf32PrimitivesTest.tf32(b);
                        sum += product;
                        exactSum += (double) a * b;
                        magnitude += Math.abs(product);
                    }
                    double bias = o.bias() == null ? 0 : o.bias()[column];
                    int index = (bi * o.m() + row) * o.n() + column;
                    double old = accumulate ? o.start()[index] : 0;
                    double bound = (o.k() + 8) * UNIT_ROUNDOFF * (magnitude + Math.abs(bias));
                    double expected = sum + bias, unrounded = exactSum + bias;
                    if (gelu) {
                        bound = 1.2 * bound + 8 * UNIT_ROUNDOFF * (Math.abs(expected) + 1);
                        expected = gelu(expected);
                        unrounded = gelu(unrounded);
                    }
                    bound += 2 * UNIT_ROUNDOFF * (Math.abs(old) + Math.abs(expected));
                    expected += old;
                    unrounded += old;
                    double error = Math.abs(actual[index] - expected);
                    if (!(error <= bound)) {
                        throw new AssertionError(String.format("%s: out[%d][%d][%d] = %s, expected %s ± %.3g", label,
                                bi, row, column, actual[index], expected, bound));
                    }
                    if (Math.abs(actual[index] - unrounded) > bound) {
                        unroundedMisses++;
                    }
                }
            }
        }
        return unroundedMisses;
    }

    /** One product through CudaBackend.matmul with TF32 allowed; returns the result. */
    private static float[] matmulTf32(Operands o, boolean accumulate) {
        cuda.allowTf32(true);
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            Tensor out = cuda.upload(Tensor.of(host, o.start(), o.batch(), o.m(), o.n()), device);
            cuda.matmul(cuda.upload(o.tensorA(host), device), o.ta(), cuda.upload(o.tensorB(host), device), o.tb(),
                    o.bias() == null ? null : cuda.upload(Tensor.of(host, o.bias(), o.n()), device), out,
                    accumulate);
            return cuda.download(out, host).toFloatArray();
        }
    }

    private static int assertClose(Random random, int batchA, int batchB, int m, int n, int k, boolean ta,
                                   boolean tb, boolean withBias, boolean accumulate) {
        Operands o = Operands.random(random, batchA, batchB, m, n, k, ta, tb, withBias, accumulate);
        String label = String.format("tf32 matmul batch %d/%d %dx%dx%d ta=%b tb=%b bias=%b accumulate=%b", batchA,
                batchB, m, n, k, ta, tb, withBias, accumulate);
        return assertWithinTf32Bound(label, o, matmulTf32(o, accumulate), accumulate, false);
    }

    /** The same product through the C ABI: mdt_gemm_matmul_tf32 with GELU and the given workspace (may be NULL). */
    private static float[] matmulTf32Abi(Operands o, boolean gelu, long workspaceFloats) {
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            Tensor out = cuda.upload(Tensor.of(host, o.start(), o.batch(), o.m(), o.n()), device);
            Tensor workspace = workspaceFloats == 0 ? null : device.zeros(DType.F32, (int) workspaceFloats);
            int status = GemmBindings.mdt_gemm_matmul_tf32(cuda.stream(),
                    cuda.upload(o.tensorA(host), device).segment(), o.ta() ? 1 : 0,
                    cuda.upload(o.tensorB(host), device).segment(), o.tb() ? 1 : 0,
                    o.bias() == null ? MemorySegment.NULL : cuda.upload(Tensor.of(host, o.bias(), o.n()), device)
                            .segment(), out.segment(), o.batch(), o.m(), o.n(), o.k(),
                    o.batchA() == 0 ? 0 : (long) o.m() * o.k(), o.batchB() == 0 ? 0 : (long) o.k() * o.n(), 0,
                    gelu ? 1 : 0, workspace == null ? MemorySegment.NULL : workspace.segment(), workspaceFloats);
            assertEquals(CudaRuntime.SUCCESS, status, () -> CudaRuntime.describe(status));
            CudaRuntime.check(RuntimeBindings.mdt_device_synchronize(), "mdt_device_synchronize");
            return cuda.download(out, host).toFloatArray();
        }
    }

    private static long workspaceFloats(long batch, long m, long n, long k) {
        return GemmFixture.workspaceFloats(GemmBindings::mdt_gemm_matmul_tf32_workspace, batch, m, n, k);
    }

    @Test
    void awkwardSizesWithTailsInEveryDimension() {
        Random random = new Random(61);
        assertClose(random, 0, 0, 1, 1, 1, false, false, false, false);
        int misses = assertClose(random, 0, 0, 17, 33, 77, false, false, true, false);
        assertTrue(misses > 17 * 33 / 2, "the unrounded operands' product should miss the bound: " + misses);
        assertClose(random, 0, 0, 130, 9, 45, true, true, true, false); // two row tiles
        assertClose(random, 0, 0, 5, 7, 0, false, false, true, false); // K = 0: bias alone
    }

    @Test
    void batchesTransposesSharedOperandsAndAccumulate() {
        Random random = new Random(62);
        for (int variant = 0; variant < 4; variant++) {
            boolean ta = (variant & 1) != 0, tb = (variant & 2) != 0;
            assertClose(random, 2, variant == 2 ? 0 : 2, 33, 20, 45, ta, tb, variant != 1, variant == 3);
        }
        assertClose(random, 0, 3, 9, 12, 21, true, false, true, false); // a shared across the batch
    }

    @Test
    void alignedRowsTakeTheAsyncCopyPathAcrossSeveralTilesAndStages() {
        Random random = new Random(63);
        // Every leading dimension a multiple of 4 floats (16 bytes): 16-byte cp.async chunks, zero-filled past the
        // edges; M and N span two 128-wide tiles; K = 200 is 7 k-tiles, around the 4-stage ring and back.
        assertClose(random, 0, 0, 136, 16, 48, true, false, true, false);
        assertClose(random, 2, 2, 8, 136, 64, false, true, false, false);
        assertClose(random, 0, 0, 24, 40, 200, false, false, true, true);
        assertClose(random, 0, 0, 12, 20, 200, true, true, false, false);
    }

    @Test
    void geluEpilogue() {
        Random random = new Random(64);
        Operands o = Operands.random(random, 0, 0, 19, 37, 40, false, true, true, false);
        assertWithinTf32Bound("tf32 matmul with GELU", o, matmulTf32Abi(o, true, 0), false, true);
    }

    @Test
    void splitKIsDeterministicAndMatchesTheUnsplitProduct() {
        // The same geometry as the bf16 GEMM's: 128×128 tiles, 32-deep k-tiles, 132 blocks a wave.
        assertEquals(11L * 512 * 1536, workspaceFloats(1, 512, 1536, 65536));
        assertEquals(8L * 512 * 512, workspaceFloats(1, 512, 512, 16384));
        assertEquals(0L, workspaceFloats(1, 4096, 4096, 4096));
        assertEquals(0L, workspaceFloats(1, 40, 24, 480), "15 k-tiles do not split");
        Random random = new Random(65);
        Operands o = Operands.random(random, 0, 0, 40, 24, 600, true, false, true, true);
        long floats = workspaceFloats(1, 40, 24, 600);
        assertEquals(2L * 40 * 24, floats);
        float[] split = matmulTf32(o, true);
        assertWithinTf32Bound("split-K tf32 matmul", o, split, true, false);
        assertArrayEquals(split, matmulTf32(o, true), "the split depends on the shape alone: the same bits");
        Operands unsplit = Operands.random(random, 0, 0, 40, 24, 600, true, false, true, false);
        assertWithinTf32Bound("tf32 matmul without its workspace", unsplit, matmulTf32Abi(unsplit, false, 0), false,
                false);
        assertWithinTf32Bound("tf32 matmul with its workspace and GELU", unsplit,
                matmulTf32Abi(unsplit, true, floats), false, true);
        assertClose(random, 2, 2, 20, 36, 530, false, true, true, false); // batched slices, K tail of 18
    }

    @Test
    void switchedOffF32ProductsKeepTheCudaCoreKernelsBits() {
        Random random = new Random(66);
        int m = 33, n = 20, k = 45;
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            Tensor a = cuda.upload(TestData.uniform(host, random, m, k), device);
            Tensor b = cuda.upload(TestData.uniform(host, random, n, k), device);
            Tensor bias = cuda.upload(TestData.uniform(host, random, n), device);
            Tensor direct = cuda.upload(TestData.poisoned(host, m, n), device);
            int status = GemmBindings.mdt_gemm_matmul(cuda.stream(), a.segment(), 0, b.segment(), 1,
                    bias.segment(), direct.segment(), 1, m, n, k, 0, 0, 0, MemorySegment.NULL, 0);
            assertEquals(CudaRuntime.SUCCESS, status, () -> CudaRuntime.describe(status));
            float[] cudaCores = cuda.download(direct, host).toFloatArray();
            assertFalse(cuda.tf32Allowed(), "off by default");
            Tensor out = cuda.upload(TestData.poisoned(host, m, n), device);
            cuda.matmul(a, false, b, true, bias, out, false);
            assertArrayEquals(cudaCores, cuda.download(out, host).toFloatArray());
            cuda.allowTf32(true);
            cuda.matmul(a, false, b, true, bias, out, false);
            float[] tensorCores = cuda.download(out, host).toFloatArray();
            assertFalse(Arrays.equals(cudaCores, tensorCores), "with TF32 allowed the product changes");
            cuda.allowTf32(false);
            cuda.matmul(a, false, b, true, bias, out, false);
            assertArrayEquals(cudaCores, cuda.download(out, host).toFloatArray(), "switched off again");
            // BF16 products do not depend on the switch.
            Tensor a16 = cuda.upload(TestData.uniform(host, random, m, k).to(DType.BF16, host), device);
            Tensor b16 = cuda.upload(TestData.uniform(host, random, n, k).to(DType.BF16, host), device);
            cuda.matmul(a16, false, b16, true, bias, out, false);
            float[] bf16 = cuda.download(out, host).toFloatArray();
            cuda.allowTf32(true);
            cuda.matmul(a16, false, b16, true, bias, out, false);
            assertArrayEquals(bf16, cuda.download(out, host).toFloatArray());
        }
    }

    @Test
    void flopsAreCountedAsForTheF32Product() {
        Random random = new Random(67);
        long before = cuda.flops().of("matmul");
        assertClose(random, 0, 0, 6, 10, 14, false, false, false, false);
        assertEquals(2L * 6 * 10 * 14, cuda.flops().of("matmul") - before);
    }

    @Test
    void launchPlanCountsTheTf32KernelAtTheTf32Peak() {
        Random random = new Random(68);
        cuda.allowTf32(true);
        List<LaunchTrace.OpCall> calls;
        long flops = 2L * 300 * 130 * 40;
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            Tensor a = cuda.upload(TestData.uniform(host, random, 300, 40), device);
            Tensor b = cuda.upload(TestData.uniform(host, random, 40, 130), device);
            Tensor out = device.zeros(300, 130);
            try (LaunchTrace trace = cuda.traceLaunches(true)) {
                cuda.matmul(a, false, b, false, null, out, false);
                calls = trace.calls();
            }
        }
        LaunchTrace.Launch gemm = calls.get(0).launches().get(0);
        assertEquals("gemm_tf32", gemm.kernel());
        // 128×128 tiles: ⌈130/128⌉ column tiles on x, ⌈300/128⌉ row tiles on y; 256 threads, 144 KiB opted in.
        assertEquals(List.of(2L, 3L, 1L, 256L, 147456L), List.of(gemm.gridX(), gemm.gridY(), gemm.gridZ(),
                gemm.blockX(), gemm.sharedBytes()));
        LaunchPlan.OpSummary matmul = new LaunchPlan(LaunchPlan.Gpu.H100_SXM, calls, Map.of("matmul", flops)).ops()
                .get(0);
        assertTrue(matmul.tensorCores());
        assertEquals(Math.max(flops / 494.7e12, calls.get(0).operandBytes() / 3.35e12), matmul.rooflineSeconds(),
                1e-15);
        // An op that also launched a bf16 tensor-core kernel is bounded by the faster bf16 peak.
        LaunchTrace.Launch bf16 = new LaunchTrace.Launch("gemm_bf16", 2, 3, 1, 256, 1, 1, 0);
        List<LaunchTrace.OpCall> mixed = List.of(calls.get(0), new LaunchTrace.OpCall("matmul", 0, List.of(bf16)));
        long large = 1_000_000_000_000L;
        assertEquals(large / 989.4e12, new LaunchPlan(LaunchPlan.Gpu.H100_SXM, mixed, Map.of("matmul", large)).ops()
                .get(0).rooflineSeconds(), 1e-15);
    }

    @Test
    void badArgumentsAreClearErrors() {
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            Tensor a = cuda.upload(host.zeros(DType.F32, 4, 4), device);
            MemorySegment none = MemorySegment.NULL;
            int negative = GemmBindings.mdt_gemm_matmul_tf32(none, a.segment(), 0, a.segment(), 0, none,
                    a.segment(), 1, -4, 4, 4, 0, 0, 0, 0, none, 0);
            assertEquals(CudaRuntime.ERROR_INVALID_ARGUMENT, negative);
            String message = CudaRuntime.describe(negative);
            assertTrue(message.contains("mdt_gemm_matmul_tf32") && message.contains("negative size"), message);
            assertEquals(CudaRuntime.ERROR_INVALID_ARGUMENT, GemmBindings.mdt_gemm_matmul_tf32(none, a.segment(), 0,
                    a.segment(), 0, none, a.segment(), 1, 4, 4, 4, 0, 0, 0, 2, none, 0));
            String flags = CudaRuntime.describe(CudaRuntime.ERROR_INVALID_ARGUMENT);
            assertTrue(flags.contains("gelu must be 0 or 1"), flags);
            assertEquals(CudaRuntime.ERROR_INVALID_ARGUMENT, GemmBindings.mdt_gemm_matmul_tf32(none, a.segment(), 0,
                    none, 0, none, a.segment(), 1, 4, 4, 4, 0, 0, 0, 0, none, 0));
            String pointers = CudaRuntime.describe(CudaRuntime.ERROR_INVALID_ARGUMENT);
            assertTrue(pointers.contains("NULL"), pointers);
            assertEquals(CudaRuntime.ERROR_INVALID_ARGUMENT, GemmBindings.mdt_gemm_matmul_tf32(none, none, 0, none,
                    0, none, none, 1, 65535L * 128 + 1, 4, 4, 0, 0, 0, 0, none, 0));
        }
    }
}
