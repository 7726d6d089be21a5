package io.microdit.backend.cuda;

import io.microdit.backend.Checks;
import io.microdit.backend.MatmulShape;
import io.microdit.backend.MoeChecks;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Matrix products and the bias-gradient row sum: drives kernels/gemm.cu (mdt_gemm_*): the f32 GEMM on CUDA cores,
 * the bf16 one on tensor cores, and for F32 operands, when the backend allows it ({@link CudaBackend#allowTf32}),
 * the tf32 one on tensor cores; all take their split-K partials from the backend's grow-only workspace.
 */
final class CudaGemm extends CudaOps {
    /** The GEMM kernel a product runs on. */
    private enum Kernel { F32, TF32, BF16 }

    CudaGemm(CudaBackend cuda) {
        super(cuda);
    }

    void matmul(Tensor a, boolean transposeA, Tensor b, boolean transposeB, Tensor bias, Tensor out,
                boolean accumulate) {
        String op = "matmul";
        MatmulShape shape = MatmulShape.of(a, transposeA, b, transposeB, bias, out, accumulate);
        Kernel kernel = a.dtype() == DType.BF16 ? Kernel.BF16 : cuda.tf32Allowed() ? Kernel.TF32 : Kernel.F32;
        long floats;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment wanted = arena.allocate(ValueLayout.JAVA_LONG);
            long batch = shape.batch(), m = shape.m(), n = shape.n(), k = shape.k();
            check(switch (kernel) {
                case BF16 -> GemmBindings.mdt_gemm_matmul_bf16_workspace(batch, m, n, k, wanted);
                case TF32 -> GemmBindings.mdt_gemm_matmul_tf32_workspace(batch, m, n, k, wanted);
                case F32 -> GemmBindings.mdt_gemm_matmul_workspace(batch, m, n, k, wanted);
            }, op);
            floats = wanted.get(ValueLayout.JAVA_LONG, 0);
        }
        MemorySegment pa = pointer(op, "a", a), pb = pointer(op, "b", b), pbias = optionalPointer(op, "bias", bias);
        MemorySegment pout = pointer(op, "out", out), workspace = workspace(floats);
        int ta = transposeA ? 1 : 0, tb = transposeB ? 1 : 0, add = accumulate ? 1 : 0;
        check(switch (kernel) {
            case BF16 -> out.dtype() == DType.BF16
                    ? GemmBindings.mdt_gemm_matmul_bf16_out(stream, pa, ta, pb, tb, pbias, pout, shape.batch(),
                            shape.m(), shape.n(), shape.k(), shape.strideA(), shape.strideB(), 0, workspace, floats)
                    : GemmBindings.mdt_gemm_matmul_bf16(stream, pa, ta, pb, tb, pbias, pout, shape.batch(),
                            shape.m(), shape.n(), shape.k(), shape.strideA(), shape.strideB(), add, 0, workspace, floats);
            case TF32 -> GemmBindings.mdt_gemm_matmul_tf32(stream, pa, ta, pb, tb, pbias, pout, shape.batch(),
                    shape.m(), shape.n(), shape.k(), shape.strideA(), shape.strideB(), add, 0, workspace, floats);
            case F32 -> GemmBindings.mdt_gemm_matmul(stream, pa, ta, pb, tb, pbias, pout, shape.batch(), shape.m(),
                    shape.n(), shape.k(), shape.strideA(), shape.strideB(), add, workspace, floats);
        }, op);
        flops.add(op, shape.flops());
    }

    /**
     * {@link io.microdit.backend.Backend#matmulGelu} with the GELU in the bf16 GEMM's epilogue when operands, pre and
     * out are all BF16 (the bf16 graph's case); false, having done nothing, for other dtypes.
     */
    boolean matmulGelu(Tensor a, boolean transposeA, Tensor b, boolean transposeB, Tensor bias, Tensor pre, Tensor out,
                       boolean tanhApproximation) {
        if (!allBf16(a, b, pre, out)) {
            return false;
        }
        String op = "matmulGelu";
        MatmulShape shape = MatmulShape.of(a, transposeA, b, transposeB, bias, pre, false);
        Checks.gelu(pre, out);
        long floats = bf16Workspace(op, shape);
        MemorySegment pa = pointer(op, "a", a), pb = pointer(op, "b", b), pbias = optionalPointer(op, "bias", bias);
        MemorySegment ppre = pointer(op, "pre", pre), pout = pointer(op, "out", out), workspace = workspace(floats);
        check(GemmBindings.mdt_gemm_matmul_bf16_gelu(stream, pa, transposeA ? 1 : 0, pb, transposeB ? 1 : 0, pbias,
                ppre, pout, shape.batch(), shape.m(), shape.n(), shape.k(), shape.strideA(), shape.strideB(),
                tanhApproximation ? 1 : 0, workspace, floats), op);
        // The product's FLOPs and the GELU's, as the two passes count them.
        flops.add(op, shape.flops() + (tanhApproximation ? 10L : 30L) * pre.numel());
        return true;
    }

    /**
     * {@link io.microdit.backend.Backend#matmulGeluBackward} with GELU's backward in the bf16 GEMM's epilogue when
     * operands, pre and dPre are all BF16; false, having done nothing, for other dtypes.
     */
    boolean matmulGeluBackward(Tensor a, boolean transposeA, Tensor b, boolean transposeB, Tensor pre, Tensor dPre,
                               boolean tanhApproximation) {
        if (!allBf16(a, b, pre, dPre)) {
            return false;
        }
        String op = "matmulGeluBackward";
        MatmulShape shape = MatmulShape.of(a, transposeA, b, transposeB, null, dPre, false);
        Checks.geluBackward(dPre, pre, dPre);
        long floats = bf16Workspace(op, shape);
        MemorySegment pa = pointer(op, "a", a), pb = pointer(op, "b", b), ppre = pointer(op, "pre", pre);
        MemorySegment pd = pointer(op, "dPre", dPre), workspace = workspace(floats);
        check(GemmBindings.mdt_gemm_matmul_bf16_gelu_bwd(stream, pa, transposeA ? 1 : 0, pb, transposeB ? 1 : 0,
                ppre, pd, shape.batch(), shape.m(), shape.n(), shape.k(), shape.strideA(), shape.strideB(),
                tanhApproximation ? 1 : 0, workspace, floats), op);
        flops.add(op, shape.flops() + (tanhApproximation ? 16L : 36L) * pre.numel());
        return true;
    }

    /**
     * {@link io.microdit.backend.Backend#matmulSwiglu} with the gate in the bf16 GEMM's epilogue when operands, gate
     * inputs and out are all BF16; false, having done nothing, for other dtypes.
     */
    boolean matmulSwiglu(Tensor a, boolean transposeA, Tensor b, boolean transposeB, Tensor bias, Tensor gateA,
                         Tensor gateB, Tensor out) {
        if (!allBf16(a, b, gateA, gateB, out)) {
            return false;
        }
        String op = "matmulSwiglu";
        MatmulShape shape = MatmulShape.of(a, transposeA, b, transposeB, bias, gateB, false);
        Checks.swigluGate(gateA, gateB, out);
        long floats = bf16Workspace(op, shape);
        MemorySegment pa = pointer(op, "a", a), pb = pointer(op, "b", b), pbias = optionalPointer(op, "bias", bias);
        MemorySegment pga = pointer(op, "gateA", gateA), pgb = pointer(op, "gateB", gateB);
        MemorySegment pout = pointer(op, "out", out), workspace = workspace(floats);
        check(GemmBindings.mdt_gemm_matmul_bf16_swiglu(stream, pa, transposeA ? 1 : 0, pb, transposeB ? 1 : 0, pbias,
                pga, pgb, pout, shape.batch(), shape.m(), shape.n(), shape.k(), shape.strideA(), shape.strideB(),
                workspace, floats), op);
        flops.add(op, shape.flops() + 5L * out.numel());
        return true;
    }

    /**
     * {@link io.microdit.backend.Backend#matmulSwigluBackward} with the gate's backward in the bf16 GEMM's epilogue
     * when operands, gate inputs and gradients are all BF16; false, having done nothing, for other dtypes.
     */
    boolean matmulSwigluBackward(Tensor a, boolean transposeA, Tensor b, boolean transposeB, Tensor gateA, Tensor gateB,
                                 Tensor dGateA, Tensor dGateB) {
        if (!allBf16(a, b, gateA, gateB, dGateA, dGateB)) {
            return false;
        }
        String op = "matmulSwigluBackward";
        MatmulShape shape = MatmulShape.of(a, transposeA, b, transposeB, null, dGateA, false);
        Checks.swigluGateBackward(dGateA, gateA, gateB, dGateA, dGateB);
        long floats = bf16Workspace(op, shape);
        MemorySegment pa = pointer(op, "a", a), pb = pointer(op, "b", b);
        MemorySegment pga = pointer(op, "gateA", gateA), pgb = pointer(op, "gateB", gateB);
        MemorySegment pda = pointer(op, "dGateA", dGateA), pdb = pointer(op, "dGateB", dGateB);
        MemorySegment workspace = workspace(floats);
        check(GemmBindings.mdt_gemm_matmul_bf16_swiglu_bwd(stream, pa, transposeA ? 1 : 0, pb, transposeB ? 1 : 0,
                pga, pgb, pda, pdb, shape.batch(), shape.m(), shape.n(), shape.k(), shape.strideA(), shape.strideB(),
                workspace, floats), op);
        flops.add(op, shape.flops() + 10L * dGateA.numel());
        return true;
    }

    /**
     * {@link io.microdit.backend.Backend#moeExpertsGelu} on the bf16 GEMM with a gathered A: its rows read from x
     * through the routing's routed rows ({@code moe}'s), GELU in the epilogue, when x, w, pre and out are BF16;
     * false, having done nothing, for other dtypes.
     */
    boolean moeExpertsGelu(CudaMoe moe, Tensor x, Tensor indices, Tensor w, Tensor pre, Tensor out,
                           boolean tanhApproximation) {
        if (!allBf16(x, w, pre, out)) {
            return false;
        }
        String op = "moeExpertsGelu";
        MoeChecks.Routing r = gatheredRouting(op, x, indices);
        Checks.shape(op, "w", w, r.experts(), r.dim(), -1);
        long rows = (long) r.samples() * r.k(), hidden = w.dim(2);
        Checks.shape(op, "pre", pre, r.experts(), Math.toIntExact(rows), w.dim(2));
        Checks.gelu(pre, out);
        long floats = bf16Workspace(op, r.experts(), rows, hidden, r.dim());
        try (MemoryScope scratch = scope("routed-rows")) {
            MemorySegment prows = pointer(op, "rows", moe.routedRows(op, indices, r, scratch));
            MemorySegment px = pointer(op, "x", x), pw = pointer(op, "w", w), ppre = pointer(op, "pre", pre);
            MemorySegment pout = pointer(op, "out", out), workspace = workspace(floats);
            check(GemmBindings.mdt_gemm_matmul_bf16_gelu_gathered(stream, px, prows, (long) r.samples() * r.tokens(),
                    pw, 0, MemorySegment.NULL, ppre, pout, r.experts(), rows, hidden, r.dim(), (long) r.dim() * hidden,
                    tanhApproximation ? 1 : 0, workspace, floats), op);
        }
        // As matmulGelu counts them: the product's FLOPs and the GELU's.
        flops.add(op, 2L * r.experts() * rows * hidden * r.dim() + (tanhApproximation ? 10L : 30L) * pre.numel());
        return true;
    }

    /**
     * {@link io.microdit.backend.Backend#moeExpertsWeightGradient} on the bf16 GEMM with a gathered, transposed A
     * (the routed rows read from x), when x and dy are BF16 and dw F32; false, having done nothing, otherwise.
     */
    boolean moeExpertsWeightGradient(CudaMoe moe, Tensor x, Tensor indices, Tensor dy, Tensor dw, boolean accumulate) {
        if (!allBf16(x, dy) || dw.dtype() != DType.F32) {
            return false;
        }
        String op = "moeExpertsWeightGradient";
        MoeChecks.Routing r = gatheredRouting(op, x, indices);
        long rows = (long) r.samples() * r.k();
        Checks.shape(op, "dy", dy, r.experts(), Math.toIntExact(rows), -1);
        long hidden = dy.dim(2);
        Checks.shape(op, "dw", dw, r.experts(), r.dim(), dy.dim(2));
        long floats = bf16Workspace(op, r.experts(), r.dim(), hidden, rows);
        try (MemoryScope scratch = scope("routed-rows")) {
            MemorySegment prows = pointer(op, "rows", moe.routedRows(op, indices, r, scratch));
            MemorySegment px = pointer(op, "x", x), pdy = pointer(op, "dy", dy), pdw = pointer(op, "dw", dw);
            MemorySegment workspace = workspace(floats);
            check(GemmBindings.mdt_gemm_matmul_bf16_gathered(stream, px, prows, (long) r.samples() * r.tokens(), 1,
                    pdy, 0, MemorySegment.NULL, pdw, r.experts(), r.dim(), hidden, rows, rows * hidden,
                    accumulate ? 1 : 0, workspace, floats), op);
        }
        flops.add(op, 2L * r.experts() * rows * hidden * r.dim());
        return true;
    }

    /** x [N, T, D] and indices I32 [N, E, k] of a gathered expert product. */
    private static MoeChecks.Routing gatheredRouting(String op, Tensor x, Tensor indices) {
        Checks.rank(op, "x", x, 3);
        Checks.dtype(op, "indices", indices, DType.I32);
        Checks.rank(op, "indices", indices, 3);
        Checks.argument(indices.dim(0) == x.dim(0), op, () -> "indices " + indices.describe() + " and x " + x.describe()
                + " differ in the number of samples");
        return new MoeChecks.Routing(x.dim(0), x.dim(1), indices.dim(1), indices.dim(2), x.dim(2));
    }

    private static boolean allBf16(Tensor... tensors) {
        for (Tensor t : tensors) {
            if (t == null || t.dtype() != DType.BF16) {
                return false;
            }
        }
        return true;
    }

    /** The split-K workspace floats the bf16 GEMM wants for this shape. */
    private long bf16Workspace(String op, MatmulShape shape) {
        return bf16Workspace(op, shape.batch(), shape.m(), shape.n(), shape.k());
    }

    private long bf16Workspace(String op, long batch, long m, long n, long k) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment wanted = arena.allocate(ValueLayout.JAVA_LONG);
            check(GemmBindings.mdt_gemm_matmul_bf16_workspace(batch, m, n, k, wanted), op);
            return wanted.get(ValueLayout.JAVA_LONG, 0);
        }
    }

    void sumRows(Tensor x, Tensor out, boolean accumulate) {
        String op = "sumRows";
        long columns = Checks.sumRows(x, out);
        long rows = x.numel() / columns;
        MemorySegment workspace = reductionWorkspace(op, rows, columns);
        MemorySegment xs = pointer(op, "x", x), outs = pointer(op, "out", out);
        int add = accumulate ? 1 : 0;
        check(x.dtype() == DType.BF16
                ? GemmBindings.mdt_gemm_sum_rows_bf16in(stream, xs, outs, rows, columns, add, workspace,
                        reductionCapacity())
                : GemmBindings.mdt_gemm_sum_rows(stream, xs, outs, rows, columns, add, workspace,
                        reductionCapacity()), op);
        flops.add(op, x.numel());
    }
}
