package io.microdit.backend.cuda;

import io.microdit.backend.Checks;
import io.microdit.tensor.DType;
import io.microdit.tensor.Tensor;
import java.lang.foreign.MemorySegment;

/**
 * GELU, SiLU, the SwiGLU gate and softmax, forward and backward: drives kernels/activations.cu
 * (mdt_activations_*).
 */
final class CudaActivations extends CudaOps {
    CudaActivations(CudaBackend cuda) {
        super(cuda);
    }

    void gelu(Tensor x, Tensor out, boolean tanhApproximation) {
        String op = "gelu";
        Checks.gelu(x, out);
        MemorySegment xs = pointer(op, "x", x), os = pointer(op, "out", out);
        int tanh = tanhApproximation ? 1 : 0;
        boolean bf16In = x.dtype() == DType.BF16, bf16Out = out.dtype() == DType.BF16;
        check(bf16In && bf16Out
                ? ElementwiseBindings.mdt_activations_gelu_fwd_bf16in_bf16out(stream, xs, os, x.numel(), tanh)
                : bf16In ? ElementwiseBindings.mdt_activations_gelu_fwd_bf16in(stream, xs, os, x.numel(), tanh)
                : bf16Out ? ElementwiseBindings.mdt_activations_gelu_fwd_bf16out(stream, xs, os, x.numel(), tanh)
                : ElementwiseBindings.mdt_activations_gelu_fwd(stream, xs, os, x.numel(), tanh), op);
        flops.add(op, (tanhApproximation ? 10L : 30L) * x.numel());
    }

    void geluBackward(Tensor dOut, Tensor x, Tensor dx, boolean tanhApproximation) {
        String op = "geluBackward";
        Checks.geluBackward(dOut, x, dx);
        MemorySegment gs = pointer(op, "dOut", dOut), xs = pointer(op, "x", x), dxs = pointer(op, "dx", dx);
        int tanh = tanhApproximation ? 1 : 0, grads = bf16Grads(dOut, dx);
        boolean bf16In = x.dtype() == DType.BF16;
        check(grads != 0 && bf16In
                ? ElementwiseBindings.mdt_activations_gelu_bwd_bf16in_bf16grad(stream, gs, xs, dxs, x.numel(), tanh,
                        grads)
                : grads != 0 ? ElementwiseBindings.mdt_activations_gelu_bwd_bf16grad(stream, gs, xs, dxs, x.numel(),
                        tanh, grads)
                : bf16In ? ElementwiseBindings.mdt_activations_gelu_bwd_bf16in(stream, gs, xs, dxs, x.numel(), tanh)
                : ElementwiseBindings.mdt_activations_gelu_bwd(stream, gs, xs, dxs, x.numel(), tanh), op);
        flops.add(op, (tanhApproximation ? 16L : 36L) * x.numel());
    }

    void silu(Tensor x, Tensor out) {
        String op = "silu";
        Checks.sameShapeF32(op, "x", x, "out", out);
        check(ElementwiseBindings.mdt_activations_silu_fwd(stream, pointer(op, "x", x), pointer(op, "out", out),
                x.numel()), op);
        flops.add(op, 4 * x.numel());
    }

    void siluBackward(Tensor dOut, Tensor x, Tensor dx) {
        String op = "siluBackward";
        Checks.pointwiseBackward(op, dOut, x, dx);
        check(ElementwiseBindings.mdt_activations_silu_bwd(stream, pointer(op, "dOut", dOut), pointer(op, "x", x),
                pointer(op, "dx", dx), x.numel()), op);
        flops.add(op, 8 * x.numel());
    }

    void swigluGate(Tensor a, Tensor b, Tensor out) {
        String op = "swigluGate";
        Checks.swigluGate(a, b, out);
        MemorySegment as = pointer(op, "a", a), bs = pointer(op, "b", b), os = pointer(op, "out", out);
        boolean bf16In = a.dtype() == DType.BF16, bf16Out = out.dtype() == DType.BF16;
        check(bf16In && bf16Out
                ? ElementwiseBindings.mdt_activations_swiglu_fwd_bf16in_bf16out(stream, as, bs, os, a.numel())
                : bf16In ? ElementwiseBindings.mdt_activations_swiglu_fwd_bf16in(stream, as, bs, os, a.numel())
                : bf16Out ? ElementwiseBindings.mdt_activations_swiglu_fwd_bf16out(stream, as, bs, os, a.numel())
                : ElementwiseBindings.mdt_activations_swiglu_fwd(stream, as, bs, os, a.numel()), op);
        flops.add(op, 5 * a.numel());
    }

    void swigluGateBackward(Tensor dOut, Tensor a, Tensor b, Tensor da, Tensor db) {
        String op = "swigluGateBackward";
        Checks.swigluGateBackward(dOut, a, b, da, db);
        MemorySegment gs = pointer(op, "dOut", dOut), as = pointer(op, "a", a), bs = pointer(op, "b", b),
                das = pointer(op, "da", da), dbs = pointer(op, "db", db);
        int grads = bf16Grads(dOut, da, db);
        boolean bf16In = a.dtype() == DType.BF16;
        check(grads != 0 && bf16In
                ? ElementwiseBindings.mdt_activations_swiglu_bwd_bf16in_bf16grad(stream, gs, as, bs, das, dbs,
                        a.numel(), grads)
                : grads != 0 ? ElementwiseBindings.mdt_activations_swiglu_bwd_bf16grad(stream, gs, as, bs, das, dbs,
                        a.numel(), grads)
                : bf16In ? ElementwiseBindings.mdt_activations_swiglu_bwd_bf16in(stream, gs, as, bs, das, dbs,
                        a.numel())
                : ElementwiseBindings.mdt_activations_swiglu_bwd(stream, gs, as, bs, das, dbs, a.numel()), op);
        flops.add(op, 10 * a.numel());
    }

    void softmax(Tensor x, Tensor out) {
        String op = "softmax";
        Checks.softmax(x, out);
        check(ElementwiseBindings.mdt_activations_softmax_fwd(stream, pointer(op, "x", x), pointer(op, "out", out),
                x.rowCount(), x.dim(-1)), op);
        flops.add(op, 5L * x.numel());
    }

    void softmaxBackward(Tensor dOut, Tensor y, Tensor dx) {
        String op = "softmaxBackward";
        Checks.softmaxBackward(dOut, y, dx);
        check(ElementwiseBindings.mdt_activations_softmax_bwd(stream, pointer(op, "dOut", dOut), pointer(op, "y", y),
                pointer(op, "dx", dx), y.rowCount(), y.dim(-1)), op);
        flops.add(op, 4L * y.numel());
    }
}
