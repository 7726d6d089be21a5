package io.microdit.backend.cuda;

import static io.microdit.backend.cuda.Downcalls.handle;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

/**
 * FFM bindings of {@code native/include/microdit.h}'s matrix products ({@code kernels/gemm.cu}: f32, bf16 and tf32
 * GEMMs with their epilogues and split-K workspaces, column sums), in the header's order; {@link Downcalls} says how
 * they resolve.
 */
final class GemmBindings {
    private static final MethodHandle MDT_GEMM_MATMUL = handle("mdt_gemm_matmul");
    private static final MethodHandle MDT_GEMM_MATMUL_WORKSPACE = handle("mdt_gemm_matmul_workspace");
    private static final MethodHandle MDT_GEMM_MATMUL_BF16 = handle("mdt_gemm_matmul_bf16");
    private static final MethodHandle MDT_GEMM_MATMUL_BF16_OUT = handle("mdt_gemm_matmul_bf16_out");
    private static final MethodHandle MDT_GEMM_MATMUL_BF16_GELU = handle("mdt_gemm_matmul_bf16_gelu");
    private static final MethodHandle MDT_GEMM_MATMUL_BF16_GELU_BWD = handle("mdt_gemm_matmul_bf16_gelu_bwd");
    private static final MethodHandle MDT_GEMM_MATMUL_BF16_SWIGLU = handle("mdt_gemm_matmul_bf16_swiglu");
    private static final MethodHandle MDT_GEMM_MATMUL_BF16_SWIGLU_BWD = handle("mdt_gemm_matmul_bf16_swiglu_bwd");
    private static final MethodHandle MDT_GEMM_MATMUL_BF16_GELU_GATHERED = handle("mdt_gemm_matmul_bf16_gelu_gathered");
    private static final MethodHandle MDT_GEMM_MATMUL_BF16_GATHERED = handle("mdt_gemm_matmul_bf16_gathered");
    private static final MethodHandle MDT_GEMM_MATMUL_BF16_WORKSPACE = handle("mdt_gemm_matmul_bf16_workspace");
    private static final MethodHandle MDT_GEMM_MATMUL_TF32 = handle("mdt_gemm_matmul_tf32");
    private static final MethodHandle MDT_GEMM_MATMUL_TF32_WORKSPACE = handle("mdt_gemm_matmul_tf32_workspace");
    private static final MethodHandle MDT_GEMM_SUM_ROWS = handle("mdt_gemm_sum_rows");
    private static final MethodHandle MDT_GEMM_SUM_ROWS_BF16IN = handle("mdt_gemm_sum_rows_bf16in");
    private static final MethodHandle MDT_GEMM_SUM_ROWS_WORKSPACE_FLOATS = handle("mdt_gemm_sum_rows_workspace_floats");

    private GemmBindings() {
    }

    public static int mdt_gemm_matmul(MemorySegment stream, MemorySegment a, int transposeA, MemorySegment b, int transposeB, MemorySegment bias, MemorySegment out, long batch, long m, long n, long k, long strideA, long strideB, int accumulate, MemorySegment workspace, long workspaceCapacity) {
        try {
            return (int) MDT_GEMM_MATMUL.invokeExact(stream, a, transposeA, b, transposeB, bias, out, batch, m, n, k, strideA, strideB, accumulate, workspace, workspaceCapacity);
        } catch (Throwable error) {
            throw new AssertionError("mdt_gemm_matmul threw", error);
        }
    }

    public static int mdt_gemm_matmul_workspace(long batch, long m, long n, long k, MemorySegment floats) {
        try {
            return (int) MDT_GEMM_MATMUL_WORKSPACE.invokeExact(batch, m, n, k, floats);
        } catch (Throwable error) {
            throw new AssertionError("mdt_gemm_matmul_workspace threw", error);
        }
    }

    public static int mdt_gemm_matmul_bf16(MemorySegment stream, MemorySegment a, int transposeA, MemorySegment b, int transposeB, MemorySegment bias, MemorySegment out, long batch, long m, long n, long k, long strideA, long strideB, int accumulate, int gelu, MemorySegment workspace, long workspaceCapacity) {
        try {
            return (int) MDT_GEMM_MATMUL_BF16.invokeExact(stream, a, transposeA, b, transposeB, bias, out, batch, m, n, k, strideA, strideB, accumulate, gelu, workspace, workspaceCapacity);
        } catch (Throwable error) {
            throw new AssertionError("mdt_gemm_matmul_bf16 threw", error);
        }
    }

    public static int mdt_gemm_matmul_bf16_out(MemorySegment stream, MemorySegment a, int transposeA, MemorySegment b, int transposeB, MemorySegment bias, MemorySegment out, long batch, long m, long n, long k, long strideA, long strideB, int gelu, MemorySegment workspace, long workspaceCapacity) {
        try {
            return (int) MDT_GEMM_MATMUL_BF16_OUT.invokeExact(stream, a, transposeA, b, transposeB, bias, out, batch, m, n, k, strideA, strideB, gelu, workspace, workspaceCapacity);
        } catch (Throwable error) {
            throw new AssertionError("mdt_gemm_matmul_bf16_out threw", error);
        }
    }

    public static int mdt_gemm_matmul_bf16_gelu(MemorySegment stream, MemorySegment a, int transposeA, MemorySegment b, int transposeB, MemorySegment bias, MemorySegment pre, MemorySegment out, long batch, long m, long n, long k, long strideA, long strideB, int tanhApproximation, MemorySegment workspace, long workspaceCapacity) {
        try {
            return (int) MDT_GEMM_MATMUL_BF16_GELU.invokeExact(stream, a, transposeA, b, transposeB, bias, pre, out, batch, m, n, k, strideA, strideB, tanhApproximation, workspace, workspaceCapacity);
        } catch (Throwable error) {
            throw new AssertionError("mdt_gemm_matmul_bf16_gelu threw", error);
        }
    }

    public static int mdt_gemm_matmul_bf16_gelu_bwd(MemorySegment stream, MemorySegment a, int transposeA, MemorySegment b, int transposeB, MemorySegment pre, MemorySegment dPre, long batch, long m, long n, long k, long strideA, long strideB, int tanhApproximation, MemorySegment workspace, long workspaceCapacity) {
        try {
            return (int) MDT_GEMM_MATMUL_BF16_GELU_BWD.invokeExact(stream, a, transposeA, b, transposeB, pre, dPre, batch, m, n, k, strideA, strideB, tanhApproximation, workspace, workspaceCapacity);
        } catch (Throwable error) {
            throw new AssertionError("mdt_gemm_matmul_bf16_gelu_bwd threw", error);
        }
    }

    public static int mdt_gemm_matmul_bf16_swiglu(MemorySegment stream, MemorySegment a, int transposeA, MemorySegment b, int transposeB, MemorySegment bias, MemorySegment gateA, MemorySegment gateB, MemorySegment out, long batch, long m, long n, long k, long strideA, long strideB, MemorySegment workspace, long workspaceCapacity) {
        try {
            return (int) MDT_GEMM_MATMUL_BF16_SWIGLU.invokeExact(stream, a, transposeA, b, transposeB, bias, gateA, gateB, out, batch, m, n, k, strideA, strideB, workspace, workspaceCapacity);
        } catch (Throwable error) {
            throw new AssertionError("mdt_gemm_matmul_bf16_swiglu threw", error);
        }
    }

    public static int mdt_gemm_matmul_bf16_swiglu_bwd(MemorySegment stream, MemorySegment a, int transposeA, MemorySegment b, int transposeB, MemorySegment gateA, MemorySegment gateB, MemorySegment dGateA, MemorySegment dGateB, long batch, long m, long n, long k, long strideA, long strideB, MemorySegment workspace, long workspaceCapacity) {
        try {
            return (int) MDT_GEMM_MATMUL_BF16_SWIGLU_BWD.invokeExact(stream, a, transposeA, b, transposeB, gateA, gateB, dGateA, dGateB, batch, m, n, k, strideA, strideB, workspace, workspaceCapacity);
        } catch (Throwable error) {
            throw new AssertionError("mdt_gemm_matmul_bf16_swiglu_bwd threw", error);
        }
    }

    public static int mdt_gemm_matmul_bf16_gelu_gathered(MemorySegment stream, MemorySegment x, MemorySegment rows, long xRows, MemorySegment b, int transposeB, MemorySegment bias, MemorySegment pre, MemorySegment out, long batch, long m, long n, long k, long strideB, int tanhApproximation, MemorySegment workspace, long workspaceCapacity) {
        try {
            return (int) MDT_GEMM_MATMUL_BF16_GELU_GATHERED.invokeExact(stream, x, rows, xRows, b, transposeB, bias, pre, out, batch, m, n, k, strideB, tanhApproximation, workspace, workspaceCapacity);
        } catch (Throwable error) {
            throw new AssertionError("mdt_gemm_matmul_bf16_gelu_gathered threw", error);
        }
    }

    public static int mdt_gemm_matmul_bf16_gathered(MemorySegment stream, MemorySegment x, MemorySegment rows, long xRows, int transposeA, MemorySegment b, int transposeB, MemorySegment bias, MemorySegment out, long batch, long m, long n, long k, long strideB, int accumulate, MemorySegment workspace, long workspaceCapacity) {
        try {
            return (int) MDT_GEMM_MATMUL_BF16_GATHERED.invokeExact(stream, x, rows, xRows, transposeA, b, transposeB, bias, out, batch, m, n, k, strideB, accumulate, workspace, workspaceCapacity);
        } catch (Throwable error) {
            throw new AssertionError("mdt_gemm_matmul_bf16_gathered threw", error);
        }
    }

    public static int mdt_gemm_matmul_bf16_workspace(long batch, long m, long n, long k, MemorySegment floats) {
        try {
            return (int) MDT_GEMM_MATMUL_BF16_WORKSPACE.invokeExact(batch, m, n, k, floats);
        } catch (Throwable error) {
            throw new AssertionError("mdt_gemm_matmul_bf16_workspace threw", error);
        }
    }

    public static int mdt_gemm_matmul_tf32(MemorySegment stream, MemorySegment a, int transposeA, MemorySegment b, int transposeB, MemorySegment bias, MemorySegment out, long batch, long m, long n, long k, long strideA, long strideB, int accumulate, int gelu, MemorySegment workspace, long workspaceCapacity) {
        try {
            return (int) MDT_GEMM_MATMUL_TF32.invokeExact(stream, a, transposeA, b, transposeB, bias, out, batch, m, n, k, strideA, strideB, accumulate, gelu, workspace, workspaceCapacity);
        } catch (Throwable error) {
            throw new AssertionError("mdt_gemm_matmul_tf32 threw", error);
        }
    }

    public static int mdt_gemm_matmul_tf32_workspace(long batch, long m, long n, long k, MemorySegment floats) {
        try {
            return (int) MDT_GEMM_MATMUL_TF32_WORKSPACE.invokeExact(batch, m, n, k, floats);
        } catch (Throwable error) {
            throw new AssertionError("mdt_gemm_matmul_tf32_workspace threw", error);
        }
    }

    public static int mdt_gemm_sum_rows(MemorySegment stream, MemorySegment x, MemorySegment out, long rows, long columns, int accumulate, MemorySegment workspace, long workspaceCapacity) {
        try {
            return (int) MDT_GEMM_SUM_ROWS.invokeExact(stream, x, out, rows, columns, accumulate, workspace, workspaceCapacity);
        } catch (Throwable error) {
            throw new AssertionError("mdt_gemm_sum_rows threw", error);
        }
    }

    public static int mdt_gemm_sum_rows_bf16in(MemorySegment stream, MemorySegment x, MemorySegment out, long rows, long columns, int accumulate, MemorySegment workspace, long workspaceCapacity) {
        try {
            return (int) MDT_GEMM_SUM_ROWS_BF16IN.invokeExact(stream, x, out, rows, columns, accumulate, workspace, workspaceCapacity);
        } catch (Throwable error) {
            throw new AssertionError("mdt_gemm_sum_rows_bf16in threw", error);
        }
    }

    public static int mdt_gemm_sum_rows_workspace_floats(long rows, long columns, MemorySegment floats) {
        try {
            return (int) MDT_GEMM_SUM_ROWS_WORKSPACE_FLOATS.invokeExact(rows, columns, floats);
        } catch (Throwable error) {
            throw new AssertionError("mdt_gemm_sum_rows_workspace_floats threw", error);
        }
    }
}
