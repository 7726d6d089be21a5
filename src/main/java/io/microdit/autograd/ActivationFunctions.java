package io.microdit.autograd;

import io.microdit.backend.Backend;
import io.microdit.tensor.Tensor;

/** Differentiable activations; each backward multiplies dOut by the analytic derivative at the saved input. */
public final class ActivationFunctions {
    private ActivationFunctions() {
    }

    /** GELU: the tanh approximation when {@code tanhApproximation} (conditioning MLPs), else exact (MoE experts). */
    public static Variable gelu(Graph g, Variable x, boolean tanhApproximation) {
        Backend be = g.backend();
        Tensor out = g.output(x.shape());
        be.gelu(x.value(), out, tanhApproximation);
        return g.result(out, dOut -> {
            Tensor dx = g.output(x.shape());
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
        Backend be = g.backend();
        Tensor out = g.output(a.shape());
        be.swigluGate(a.value(), b.value(), out);
        return g.result(out, dOut -> {
            Tensor da = g.output(a.shape());
            Tensor db = g.output(b.shape());
            be.swigluGateBackward(dOut, a.value(), b.value(), da, db);
            a.addGrad(da, be);
            b.addGrad(db, be);
        }, a, b);
    }
}
