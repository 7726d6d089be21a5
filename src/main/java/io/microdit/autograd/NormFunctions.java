package io.microdit.autograd;

import io.microdit.backend.Backend;
import io.microdit.tensor.Tensor;

/** Differentiable normalisation. */
public final class NormFunctions {
    private NormFunctions() {
    }

    /**
     * LayerNorm over the last dimension without bias, {@code (x - mean)·rstd·weight}; {@code weight} [D] may be
     * null (non-affine, as QK-norm). The row statistics are saved for the backward, which writes dx and
     * accumulates dWeight straight into the weight's gradient.
     */
    public static Variable layerNorm(Graph g, Variable x, Variable weight, float eps) {
        Backend be = g.backend();
        int rows = Math.toIntExact(x.value().rowCount());
        Tensor out = g.output(x.shape());
        Tensor mean = g.output(rows);
        Tensor rstd = g.output(rows);
        Tensor weightValue = weight == null ? null : weight.value();
        be.layerNorm(x.value(), weightValue, eps, out, mean, rstd);
        return g.result(out, dOut -> {
            Tensor dx = g.output(x.shape());
            Tensor dWeight = weight != null && weight.requiresGrad() ? weight.gradBuffer() : null;
            be.layerNormBackward(dOut, x.value(), weightValue, mean, rstd, dx, dWeight);
            x.addGrad(dx, be);
        }, x, weight);
    }
}
