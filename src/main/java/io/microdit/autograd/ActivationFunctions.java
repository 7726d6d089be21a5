package io.microdit.autograd;

import io.microdit.backend.Backend;
import io.microdit.tensor.DType;
import io.microdit.tensor.Tensor;

/** Differentiable activations; each backward multiplies dOut by the analytic derivative at the saved input. */
public final class ActivationFunctions {
    private ActivationFunctions() {
    }

    /** GELU: the tanh approximation when {@code tanhApproximation} (conditioning MLPs), else exact (MoE experts). */
    public static Variable gelu(Graph g, Variable x, boolean tanhApproximation) {
        return gelu(g, x, tanhApproximation, DType.F32);
    }

    /**
     * {@link #gelu} with its output in {@code outType}: F32, or BF16 (see {@link Graph#matmulOperandType}) when only
     * matrix products read it; the backward reads x, never the output.
     */
    public static Variable gelu(Graph g, Variable x, boolean tanhApproximation, DType outType) {
        Backend be = g.backend();
        Tensor out = g.output(outType, x.shape());
        be.gelu(x.value(), out, tanhApproximation);
        return g.result(out, dOut -> {
            Tensor dx = g.output(x.gradientType(), x.shape());
            be.geluBackward(dOut, x.value(), dx, tanhApproximation);
            x.addGrad(dx, be);
        }, x);
    }

    /** SiLU, x·σ(x). */
    public static Variable silu(Graph g, Variable x) {
        Backend be = g.backend();
        Tensor out = g.output(x.shape());
        be.silu(x.value(), out);
        return g.result(out, dOut -> {
            Tensor dx = g.output(x.shape());
            be.siluBackward(dOut, x.value(), dx);
            x.addGrad(dx, be);
        }, x);
    }

    /** The SwiGLU gate {@code silu(a)·b}, a and b of one shape (w1·x and w2·x). */
    public static Variable swigluGate(Graph g, Variable a, Variable b) {
        return swigluGate(g, a, b, DType.F32);
    }

    /** {@link #swigluGate} with its output in {@code outType}, as {@link #gelu} takes it (the backward reads a, b). */
    public static Variable swigluGate(Graph g, Variable a, Variable b, DType outType) {
        Backend be = g.backend();
        Tensor out = g.output(outType, a.shape());
        be.swigluGate(a.value(), b.value(), out);
        return g.result(out, dOut -> {
            // Both BF16 or both F32 (the kernels take them alike); a and b are distinct products' outputs.
            DType type = a != b && a.gradientType() == DType.BF16 && b.gradientType() == DType.BF16 ? DType.BF16
                    : DType.F32;
            Tensor da = g.output(type, a.shape());
            Tensor db = g.output(type, b.shape());
            be.swigluGateBackward(dOut, a.value(), b.value(), da, db);
            a.addGrad(da, be);
            b.addGrad(db, be);
        }, a, b);
    }
}
