package io.microdit.autograd;

import io.microdit.backend.Backend;
import io.microdit.tensor.DType;
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
        return layerNorm(g, x, weight, eps, DType.F32);
    }

    /**
     * {@link #layerNorm} with its output in {@code outType}: F32, or BF16 (see {@link Graph#matmulOperandType}) when
     * only matrix products read it; the backward never reads the output, so it is the same either way.
     */
    public static Variable layerNorm(Graph g, Variable x, Variable weight, float eps, DType outType) {
        Backend be = g.backend();
        int rows = Math.toIntExact(x.value().rowCount());
        Tensor out = g.output(outType, x.shape());
        Tensor mean = g.output(rows);
        Tensor rstd = g.output(rows);
        Tensor weightValue = weight == null ? null : weight.value();
        be.layerNorm(x.value(), weightValue, eps, out, mean, rstd);
        return g.result(out, dOut -> {
            Tensor dx = g.output(x.gradientType(), x.shape());
            Tensor dWeight = weight != null && weight.requiresGrad() ? weight.gradBuffer() : null;
            be.layerNormBackward(dOut, x.value(), weightValue, mean, rstd, dx, dWeight);
            x.addGrad(dx, be);
        }, x, weight);
    }

    /**
     * {@link #layerNorm} followed by adaLN modulation, in one op: {@code LN(x)·(1 + scale) + shift} with x [N, T, D],
     * shift and scale [N, D]. Only x and the row statistics are kept for the backward, not the normalised x, which
     * it recomputes. Backward: dShift = Σ_t dOut, dScale = Σ_t dOut·LN(x), and LayerNorm's backward of
     * dOut·(1 + scale) for dx and dWeight (accumulated straight into the weight's gradient).
     */
    public static Variable layerNormModulate(Graph g, Variable x, Variable weight, Variable shift, Variable scale,
                                             float eps) {
        return layerNormModulate(g, x, weight, shift, scale, eps, DType.F32);
    }

    /** {@link #layerNormModulate} with its output in {@code outType}, as {@link #layerNorm} takes it. */
    public static Variable layerNormModulate(Graph g, Variable x, Variable weight, Variable shift, Variable scale,
                                             float eps, DType outType) {
        Backend be = g.backend();
        int rows = Math.toIntExact(x.value().rowCount());
        Tensor out = g.output(outType, x.shape());
        Tensor mean = g.output(rows);
        Tensor rstd = g.output(rows);
        Tensor weightValue = weight == null ? null : weight.value();
        be.layerNormModulate(x.value(), weightValue, shift.value(), scale.value(), eps, out, mean, rstd);
        return g.result(out, dOut -> {
            Tensor dx = g.output(x.shape());
            Tensor dWeight = weight != null && weight.requiresGrad() ? weight.gradBuffer() : null;
            Tensor dShift = g.output(shift.shape());
            Tensor dScale = g.output(scale.shape());
            be.layerNormModulateBackward(dOut, x.value(), weightValue, scale.value(), mean, rstd, dx, dWeight, dShift,
                    dScale);
            x.addGrad(dx, be);
            shift.addGrad(dShift, be);
            scale.addGrad(dScale, be);
        }, x, weight, shift, scale);
    }
}
