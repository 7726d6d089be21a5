package io.microdit.backend.cuda;

import io.microdit.backend.Checks;
import io.microdit.backend.MatmulShape;
import io.microdit.tensor.DType;
import io.microdit.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Matrix products and the bias-gradient row sum: drives kernels/gemm.cu (mdt_gemm_*), f32 and bf16
 * tensor-core GEMMs that take their split-K partials from the backend's grow-only workspace.
 */
final class CudaGemm extends CudaOps {
    CudaGemm(CudaBackend cuda) {
        super(cuda);
    }

    void matmul(Tensor a, boolean transposeA, Tensor b, boolean transposeB, Tensor bias, Tensor out,
                boolean accumulate) {
        String op = "matmul";
        MatmulShape shape = MatmulShape.of(a, transposeA, b, transposeB, bias, out);
        boolean bf16 = a.dtype() == DType.BF16;
        long floats;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment wanted = arena.allocate(ValueLayout.JAVA_LONG);
            check(bf16 ? MicroditNative.mdt_gemm_matmul_bf16_workspace(shape.batch(), shape.m(), shape.n(),
                            shape.k(), wanted)
                    : MicroditNative.mdt_gemm_matmul_workspace(shape.batch(), shape.m(), shape.n(), shape.k(), wanted),
                    op);
            floats = wanted.get(ValueLayout.JAVA_LONG, 0);
        }
        if (bf16) {
            check(MicroditNative.mdt_gemm_matmul_bf16(stream, pointer(op, "a", a), transposeA ? 1 : 0,
                    pointer(op, "b", b), transposeB ? 1 : 0, optionalPointer(op, "bias", bias), pointer(op, "out", out),
                    shape.batch(), shape.m(), shape.n(), shape.k(), shape.strideA(), shape.strideB(),
                    accumulate ? 1 : 0, 0, workspace(floats), floats), op);
            flops.add(op, shape.flops());
            return;
        }
        check(MicroditNative.mdt_gemm_matmul(stream, pointer(op, "a", a), transposeA ? 1 : 0, pointer(op, "b", b),
                transposeB ? 1 : 0, optionalPointer(op, "bias", bias), pointer(op, "out", out), shape.batch(),
                shape.m(), shape.n(), shape.k(), shape.strideA(), shape.strideB(), accumulate ? 1 : 0,
                workspace(floats), floats), op);
        flops.add(op, shape.flops());
    }

    void sumRows(Tensor x, Tensor out, boolean accumulate) {
        String op = "sumRows";
        long columns = Checks.sumRows(x, out);
        long rows = x.numel() / columns;
        MemorySegment workspace = reductionWorkspace(op, rows, columns);
        check(MicroditNative.mdt_gemm_sum_rows(stream, pointer(op, "x", x), pointer(op, "out", out), rows, columns,
                accumulate ? 1 : 0, workspace, reductionCapacity()), op);
        flops.add(op, x.numel());
    }
}
