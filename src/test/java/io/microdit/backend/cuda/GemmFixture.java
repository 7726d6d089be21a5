package io.microdit.backend.cuda;

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

/**
 * What the GEMM tests share: one product through CudaBackend.matmul compared with the CPU backend's f32 matmul of
 * the same operand values, and, for the split-K tests of the f32 and the bf16 GEMM, the C ABI's workspace query.
 */
abstract class GemmFixture extends CudaVersusCpu {
    /** A product's result on the CUDA backend and its largest error relative to the CPU's largest magnitude. */
    record Product(float[] actual, double error) {
    }
    /** The C ABI's workspace query for one GEMM: mdt_gemm_matmul_workspace or mdt_gemm_matmul_bf16_workspace. */
    interface WorkspaceQuery {
        int floats(long batch, long m, long n, long k, MemorySegment floats);
    }

    /** Floats of workspace {@code query} asks for this shape (0 when it does not split K). */
    static long workspaceFloats(WorkspaceQuery query, long batch, long m, long n, long k) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment floats = arena.allocate(ValueLayout.JAVA_LONG);
            floats.set(ValueLayout.JAVA_LONG, 0, -7);
            int status = query.floats(batch, m, n, k, floats);
            assertEquals(CudaRuntime.SUCCESS, status, () -> CudaRuntime.describe(status));
            return floats.get(ValueLayout.JAVA_LONG, 0);
        }
    }

    static int[] operandShape(int batch, int rows, int columns) {
        return batch == 0 ? new int[] {rows, columns} : new int[] {batch, rows, columns};
    }

    /**
     * One product of [m × k]·[k × n] with {@code operands}-typed a and b (stored transposed when asked; batch 0 means
     * a rank-2 operand), optional bias and accumulate, on both backends; outputs start as NaN.
     */
    static Product productOnBothBackends(DType operands, Random random, int batchA, int batchB, int m, int n, int k,
                                         boolean ta, boolean tb, boolean withBias, boolean accumulate) {
        int batch = Math.max(1, Math.max(batchA, batchB));
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            Tensor a = TestData.uniform(host, random, operandShape(batchA, ta ? k : m, ta ? m : k)).to(operands, host);
            Tensor b = TestData.uniform(host, random, operandShape(batchB, tb ? n : k, tb ? k : n)).to(operands, host);
            Tensor bias = withBias ? TestData.uniform(host, random, n) : null;
            Tensor start = accumulate ? TestData.uniform(host, random, batch, m, n)
                    : TestData.poisoned(host, batch, m, n);
            Tensor expected = host.zeros(DType.F32, batch, m, n).copyFrom(start);
            cpu.matmul(a.to(DType.F32, host), ta, b.to(DType.F32, host), tb, bias, expected, accumulate);
            Tensor out = cuda.upload(start, device);
            cuda.matmul(cuda.upload(a, device), ta, cuda.upload(b, device), tb,
                    bias == null ? null : cuda.upload(bias, device), out, accumulate);
            float[] actual = cuda.download(out, host).toFloatArray();
            return new Product(actual, TestData.maxRelativeError(actual, TestData.toDouble(expected.toFloatArray())));
        }
    }

    /**
     * {@link #productOnBothBackends} for a shape that must split K ({@code query} says so), within
     * {@code tolerance}; returns the GPU result's values.
     */
    static float[] assertSplitMatmulClose(WorkspaceQuery query, DType operands, double tolerance, String label,
                                          Random random, int batchA, int batchB, int m, int n, int k, boolean ta,
                                          boolean tb, boolean withBias, boolean accumulate) {
        int batch = Math.max(1, Math.max(batchA, batchB));
        assertTrue(workspaceFloats(query, batch, m, n, k) > 0, "the shape should split K");
        Product product = productOnBothBackends(operands, random, batchA, batchB, m, n, k, ta, tb, withBias,
                accumulate);
        assertTrue(product.error() <= tolerance, () -> String.format(
                "split-K %smatmul batch %d/%d %dx%dx%d ta=%b tb=%b bias=%b accumulate=%b: relative error %.3g",
                label, batchA, batchB, m, n, k, ta, tb, withBias, accumulate, product.error()));
        return product.actual();
    }
}
