package io.microdit.autograd;

import io.microdit.backend.Backend;
import io.microdit.backend.Checks;
import io.microdit.tensor.DType;
import io.microdit.tensor.Tensor;

/** Differentiable normalisation. */
public final class NormFunctions {
    private NormFunctions() {
    }

    /**
     * LayerNorm over the last dimension without bias, {@code (x - mean)·rstd·weight}; {@code weight} [D] may be
     * null (non-affine, as QK-norm). The row statistics are saved for the backward, which writes dx (or adds it
     * into x's gradient in the same pass when x already has one) and accumulates dWeight straight into the
     * weight's gradient.
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
        return g.result(out, dOut -> layerNormBackward(g, x, weight, dOut, mean, rstd), x, weight);
    }

    /**
     * {@link #layerNorm}'s backward from its output's gradient dOut and saved statistics: writes dx (or adds it into
     * x's gradient in the same pass when x already has one) and accumulates dWeight into the weight's gradient.
     */
    static void layerNormBackward(Graph g, Variable x, Variable weight, Tensor dOut, Tensor mean, Tensor rstd) {
        Backend be = g.backend();
        Tensor weightValue = weight == null ? null : weight.value();
        Tensor dWeight = weight != null && weight.requiresGrad() ? weight.gradBuffer() : null;
        if (x.requiresGrad() && x.grad() != null) {
            // x has other readers whose gradients came first: add into its F32 gradient in the same pass.
            be.layerNormBackward(dOut, x.value(), weightValue, mean, rstd, x.gradBuffer(be), dWeight, true);
            return;
        }
        Tensor dx = g.output(x.gradientType(), x.shape());
        be.layerNormBackward(dOut, x.value(), weightValue, mean, rstd, dx, dWeight);
        x.addGrad(dx, be);
    }

    /**
     * {@link #layerNorm} of the rows the deferred mask keeps, x [N, T, D] read in place at ids I32 [N, K] (as
     * {@link TokenFunctions#gatherRows} takes them): out [N, K, D] in {@code outType}, bit for bit gatherRows followed
     * by layerNorm, without the gathered rows being written and read back. The backward writes x's full-size gradient
     * in the same pass (the kept rows the LayerNorm's dx, the others zero; added into x's gradient when it already has
     * one), with no kept-row gradient and no scatter; dWeight accumulates into the weight's gradient.
     */
    public static Variable gatherLayerNorm(Graph g, Variable x, Tensor ids, Variable weight, float eps,
                                           DType outType) {
        Backend be = g.backend();
        Checks.notNull("gatherLayerNorm", "ids", ids);
        Checks.rank("gatherLayerNorm", "ids", ids, 2);
        Checks.rank("gatherLayerNorm", "x", x.value(), 3);
        int rows = Math.multiplyExact(ids.dim(0), ids.dim(1));
        Tensor out = g.output(outType, x.dim(0), ids.dim(1), x.dim(2));
        Tensor mean = g.output(rows);
        Tensor rstd = g.output(rows);
        Tensor weightValue = weight == null ? null : weight.value();
        be.gatherLayerNorm(x.value(), ids, weightValue, eps, out, mean, rstd);
        return g.result(out, dOut -> {
            Tensor dWeight = weight != null && weight.requiresGrad() ? weight.gradBuffer() : null;
            if (x.requiresGrad() && x.grad() != null) {
                // x has other readers whose gradients came first: add into its F32 gradient in the same pass.
                be.gatherLayerNormBackward(dOut, x.value(), ids, weightValue, mean, rstd, x.gradBuffer(be), dWeight,
                        true);
                return;
            }
            Tensor dx = g.output(x.shape());
            be.gatherLayerNormBackward(dOut, x.value(), ids, weightValue, mean, rstd, dx, dWeight, false);
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
            Tensor dWeight = weight != null && weight.requiresGrad() ? weight.gradBuffer() : null;
            Tensor dShift = g.output(shift.shape());
            Tensor dScale = g.output(scale.shape());
            if (x.requiresGrad() && x.grad() != null) {
                // As layerNorm's backward: added into x's gradient in the same pass.
                be.layerNormModulateBackward(dOut, x.value(), weightValue, scale.value(), mean, rstd,
                        x.gradBuffer(be), dWeight, dShift, dScale, true);
            } else {
                Tensor dx = g.output(x.shape());
                be.layerNormModulateBackward(dOut, x.value(), weightValue, scale.value(), mean, rstd, dx, dWeight,
                        dShift, dScale);
                x.addGrad(dx, be);
            }
            shift.addGrad(dShift, be);
            scale.addGrad(dScale, be);
        }, x, weight, shift, scale);
    }
    /** The two outputs of {@link #residualLayerNorm}: the new residual stream and its normalised rows. */
    public record ResidualNorm(Variable residual, Variable normed) {
    }

    /**
     * A residual add followed by a LayerNorm of its result, in one op: {@code residual = x + gate·f} (gate null:
     * {@code x + f}) and {@code normed = LN(residual)}, modulated {@code ·(1 + scale) + shift} when shift and scale
     * are given (both null: none); x and f [N, T, D], gate, shift and scale [N, D]. The residual is F32 (the stream
     * the next residual adds to), normed in {@code outType} as {@link #layerNorm} takes it. The values are bit for
     * bit those of {@link ElementwiseFunctions#gatedResidual} (or add) and {@link #layerNormModulate} (or
     * {@link #layerNorm}).
     *
     * <p>Backward, one op for both outputs: every other reader of the residual comes later on the tape than this op,
     * so whichever of its two nodes the backward reaches first sees both gradients complete (the residual's from its
     * other readers, the normed rows'). It adds the LayerNorm's dx into the residual's gradient in place, which is
     * then x's gradient too, and writes dGate, dF, dShift, dScale and dWeight from it: the separate ops' copy of the
     * residual's gradient, their axpy and their second read of it are gone. The results are bit for bit theirs.
     */
    public static ResidualNorm residualLayerNorm(Graph g, Variable x, Variable gate, Variable f, Variable weight,
                                                 Variable shift, Variable scale, float eps, DType outType) {
        return residualLayerNorm(g, x, gate, f, weight, shift, scale, eps, outType, false);
    }

    /**
     * {@link #residualLayerNorm} with F32 normed rows that a bf16 graph's matrix products also read (an MoE's input:
     * the router keeps F32, the experts take bf16): the op stores their bf16 copy in the same pass, and the graph's
     * {@link Graph#matmulOperand} of them is that copy (convert's bits) instead of a separate convert of the F32
     * rows, which read them again. In an F32 graph, {@link #residualLayerNorm} with an F32 output.
     */
    public static ResidualNorm residualLayerNormWithBf16Copy(Graph g, Variable x, Variable gate, Variable f,
                                                             Variable weight, Variable shift, Variable scale,
                                                             float eps) {
        return residualLayerNorm(g, x, gate, f, weight, shift, scale, eps, DType.F32,
                g.matmulOperandType() == DType.BF16);
    }

    private static ResidualNorm residualLayerNorm(Graph g, Variable x, Variable gate, Variable f, Variable weight,
                                                  Variable shift, Variable scale, float eps, DType outType,
                                                  boolean bf16Copy) {
        Backend be = g.backend();
        int rows = Math.toIntExact(x.value().rowCount());
        Tensor residual = g.output(x.shape());
        Tensor out = g.output(outType, x.shape());
        Tensor copy = bf16Copy ? g.output(DType.BF16, x.shape()) : null;
        Tensor mean = g.output(rows);
        Tensor rstd = g.output(rows);
        Tensor gateValue = gate == null ? null : gate.value();
        Tensor weightValue = weight == null ? null : weight.value();
        Tensor shiftValue = shift == null ? null : shift.value();
        Tensor scaleValue = scale == null ? null : scale.value();
        if (copy != null) {
            be.residualLayerNorm(x.value(), gateValue, f.value(), weightValue, shiftValue, scaleValue, eps, residual,
                    out, copy, mean, rstd);
        } else {
            be.residualLayerNorm(x.value(), gateValue, f.value(), weightValue, shiftValue, scaleValue, eps, residual,
                    out, mean, rstd);
        }
        Variable[] outputs = new Variable[2];
        boolean[] done = {false};
        BackwardFunction backward = ignored -> {
            if (done[0]) {
                return;
            }
            done[0] = true;
            Tensor dResidual = outputs[0].grad();
            Tensor dOut = outputs[1].grad();
            if (dOut == null) {
                // The normed rows reached no parameter: the LayerNorm's part of the gradient is zero.
                dOut = g.allocate(x.shape());
            }
            // The residual's F32 gradient belongs to it alone (an op's output gradient is never shared), so the sum
            // is formed in place and handed on to x.
            Tensor dx = dResidual != null ? dResidual : g.output(x.shape());
            Tensor dWeight = weight != null && weight.requiresGrad() ? weight.gradBuffer() : null;
            Tensor dShift = shift == null ? null : g.output(shift.shape());
            Tensor dScale = scale == null ? null : g.output(scale.shape());
            Tensor dGate = gate == null ? null : g.output(gate.shape());
            Tensor dF = g.output(f.gradientType(), f.shape());
            be.residualLayerNormBackward(dOut, dResidual, residual, gateValue, f.value(), weightValue, scaleValue,
                    mean, rstd, dx, dWeight, dShift, dScale, dGate, dF);
            x.addGrad(dx, be);
            f.addGrad(dF, be);
            if (gate != null) {
                gate.addGrad(dGate, be);
            }
            if (shift != null) {
                shift.addGrad(dShift, be);
                scale.addGrad(dScale, be);
            }
        };
        // The normed node first: the residual's node, later on the tape, is reached first when the residual has
        // readers of its own; without them (the last block before the final norm) the normed node runs it.
        outputs[1] = g.result(out, backward, x, gate, f, weight, shift, scale);
        outputs[0] = g.result(residual, backward, x, gate, f, weight, shift, scale);
        if (copy != null) {
            g.useMatmulOperand(outputs[1], copy);
        }
        return new ResidualNorm(outputs[0], outputs[1]);
    }
}

