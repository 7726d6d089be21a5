package io.microdit.autograd;

import io.microdit.backend.Backend;
import io.microdit.tensor.Tensor;

/** Differentiable softmax. */
public final class SoftmaxFunctions {
    private SoftmaxFunctions() {
    }

    /**
     * Softmax over the last dimension (the MoE gate's probabilities over experts). Backward, from the saved
     * output y: {@code dx = y · (dy - Σ dy·y)} along the last dimension.
     */
    public static Variable softmax(Graph g, Variable x) {
        Backend be = g.backend();
        Tensor y = g.output(x.shape());
        be.softmax(x.value(), y);
        return g.result(y, dy -> {
            Tensor dx = g.output(x.shape());
            be.softmaxBackward(dy, y, dx);
            x.addGrad(dx, be);
        }, x);
    }
}
