package io.microdit.backend;

import static io.microdit.backend.Checks.argument;
import static io.microdit.backend.Checks.dtype;
import static io.microdit.backend.Checks.floatInput;
import static io.microdit.backend.Checks.gradientOf;
import static io.microdit.backend.Checks.normInput;
import static io.microdit.backend.Checks.notNull;
import static io.microdit.backend.Checks.outputOfShape;
import static io.microdit.backend.Checks.perSample;
import static io.microdit.backend.Checks.rowStatistic;
import static io.microdit.backend.Checks.sameShapeF32;
import static io.microdit.backend.Checks.sameShapeOutput;
import static io.microdit.backend.Checks.shape;
import static io.microdit.backend.Checks.tokens;

import io.microdit.tensor.DType;
import io.microdit.tensor.Tensor;

/**
 * {@link Checks} for the LayerNorm ops of {@link Backend}: plain, gathering the deferred mask's kept rows, modulated,
 * and after a (gated) residual add, and their backwards; both backends call them, so both refuse the same arguments
 * with the same message.
 */
public final class NormChecks {
    private NormChecks() {
    }

    /** Returns the width normalised over (x's last dimension); the rows are {@code x.rowCount()}. */
    public static int layerNorm(Tensor x, Tensor weight, float eps, Tensor out, Tensor mean, Tensor rstd) {
        String op = "layerNorm";
        int width = normInput(op, x);
        long rows = x.rowCount();
        normWeight(op, "weight", weight, width);
        outputOfShape(op, "x", x, "out", out);
        rowStatistic(op, "mean", mean, rows);
        rowStatistic(op, "rstd", rstd, rows);
        argument(eps >= 0 && Float.isFinite(eps), op, () -> "eps must be finite and non-negative, got " + eps);
        return width;
    }

    /** Returns the width normalised over; dOut and dx F32 or BF16, dWeight F32 and null when weight is. */
    public static int layerNormBackward(Tensor dOut, Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dx,
                                        Tensor dWeight) {
        String op = "layerNormBackward";
        int width = normInput(op, x);
        long rows = x.rowCount();
        gradientOf(op, "dOut", dOut, "x", x);
        gradientOf(op, "dx", dx, "x", x);
        normWeight(op, "weight", weight, width);
        argument(weight != null || dWeight == null, op, () -> "dWeight " + dWeight
                + " given for a LayerNorm without weight");
        normWeight(op, "dWeight", dWeight, width);
        rowStatistic(op, "mean", mean, rows);
        rowStatistic(op, "rstd", rstd, rows);
        return width;
    }

    /**
     * F32 x [N, T, D] with D > 0, I32 ids [N, K] with K ≤ T, out [N, K, D] F32 or BF16, weight null or F32 [D],
     * mean and rstd F32 [N·K]; returns {N, T, K, D}. The ids' values are checked apart (on the host or the device).
     */
    public static int[] gatherLayerNorm(Tensor x, Tensor ids, Tensor weight, float eps, Tensor out, Tensor mean,
                                        Tensor rstd) {
        String op = "gatherLayerNorm";
        int[] s = keptIds(op, x, ids);
        notNull(op, "out", out);
        argument(out.dtype() == DType.F32 || out.dtype() == DType.BF16, op, () -> "out must be F32 or BF16, got "
                + out.describe());
        shape(op, "out", out, s[0], s[2], s[3]);
        normWeight(op, "weight", weight, s[3]);
        rowStatistic(op, "mean", mean, (long) s[0] * s[2]);
        rowStatistic(op, "rstd", rstd, (long) s[0] * s[2]);
        argument(eps >= 0 && Float.isFinite(eps), op, () -> "eps must be finite and non-negative, got " + eps);
        return s;
    }

    /**
     * dOut [N, K, D] F32 or BF16, x and ids as {@link #gatherLayerNorm} takes them, dx F32 of x's shape, dWeight
     * null or F32 [D] (null when weight is); returns {N, T, K, D}.
     */
    public static int[] gatherLayerNormBackward(Tensor dOut, Tensor x, Tensor ids, Tensor weight, Tensor mean,
                                                Tensor rstd, Tensor dx, Tensor dWeight) {
        String op = "gatherLayerNormBackward";
        int[] s = keptIds(op, x, ids);
        floatInput(op, "dOut", dOut);
        shape(op, "dOut", dOut, s[0], s[2], s[3]);
        sameShapeF32(op, "x", x, "dx", dx);
        normWeight(op, "weight", weight, s[3]);
        argument(weight != null || dWeight == null, op, () -> "dWeight " + dWeight
                + " given for a LayerNorm without weight");
        normWeight(op, "dWeight", dWeight, s[3]);
        rowStatistic(op, "mean", mean, (long) s[0] * s[2]);
        rowStatistic(op, "rstd", rstd, (long) s[0] * s[2]);
        return s;
    }

    /** F32 x [N, T, D] with D > 0 and I32 ids [N, K] with K ≤ T; returns {N, T, K, D}. */
    private static int[] keptIds(String op, Tensor x, Tensor ids) {
        int[] s = tokens(op, "x", x);
        argument(s[2] > 0, op, () -> "x " + x.describe() + " needs a non-empty last dimension to normalise over");
        dtype(op, "ids", ids, DType.I32);
        shape(op, "ids", ids, s[0], -1);
        argument(ids.dim(1) <= s[1], op, () -> "ids " + ids.describe() + " keep more rows than x's " + s[1]
                + " tokens");
        return new int[] {s[0], s[1], ids.dim(1), s[2]};
    }

    /** Returns {N, T, D} of x. */
    public static int[] layerNormModulate(Tensor x, Tensor weight, Tensor shift, Tensor scale, float eps, Tensor out,
                                          Tensor mean, Tensor rstd) {
        String op = "layerNormModulate";
        int[] s = tokens(op, "x", x);
        argument(s[2] > 0, op, () -> "x " + x.describe() + " needs a non-empty last dimension to normalise over");
        long rows = x.rowCount();
        normWeight(op, "weight", weight, s[2]);
        perSample(op, "shift", shift, s[0], s[2]);
        perSample(op, "scale", scale, s[0], s[2]);
        sameShapeOutput(op, "x", x, "out", out);
        rowStatistic(op, "mean", mean, rows);
        rowStatistic(op, "rstd", rstd, rows);
        argument(eps >= 0 && Float.isFinite(eps), op, () -> "eps must be finite and non-negative, got " + eps);
        return s;
    }

    /** Returns {N, T, D} of x; dOut F32 or BF16, the gradients F32; dWeight must be null when weight is. */
    public static int[] layerNormModulateBackward(Tensor dOut, Tensor x, Tensor weight, Tensor scale, Tensor mean,
                                                  Tensor rstd, Tensor dx, Tensor dWeight, Tensor dShift,
                                                  Tensor dScale) {
        String op = "layerNormModulateBackward";
        int[] s = tokens(op, "x", x);
        argument(s[2] > 0, op, () -> "x " + x.describe() + " needs a non-empty last dimension to normalise over");
        long rows = x.rowCount();
        gradientOf(op, "dOut", dOut, "x", x);
        sameShapeF32(op, "x", x, "dx", dx);
        normWeight(op, "weight", weight, s[2]);
        argument(weight != null || dWeight == null, op, () -> "dWeight " + dWeight
                + " given for a LayerNorm without weight");
        normWeight(op, "dWeight", dWeight, s[2]);
        perSample(op, "scale", scale, s[0], s[2]);
        rowStatistic(op, "mean", mean, rows);
        rowStatistic(op, "rstd", rstd, rows);
        perSample(op, "dShift", dShift, s[0], s[2]);
        perSample(op, "dScale", dScale, s[0], s[2]);
        return s;
    }

    /**
     * residualLayerNorm: x and residual F32 [N, T, D], f F32 or BF16 of x's shape, gate [N, D] or null, shift and
     * scale [N, D] or both null, out F32 or BF16; returns {N, T, D}.
     */
    public static int[] residualLayerNorm(Tensor x, Tensor gate, Tensor f, Tensor weight, Tensor shift, Tensor scale,
                                          float eps, Tensor residual, Tensor out, Tensor mean, Tensor rstd) {
        String op = "residualLayerNorm";
        int[] s = tokens(op, "x", x);
        argument(s[2] > 0, op, () -> "x " + x.describe() + " needs a non-empty last dimension to normalise over");
        gradientOf(op, "f", f, "x", x);
        if (gate != null) {
            perSample(op, "gate", gate, s[0], s[2]);
        }
        normWeight(op, "weight", weight, s[2]);
        argument((shift == null) == (scale == null), op, "shift and scale come together (both null: no modulation)");
        if (shift != null) {
            perSample(op, "shift", shift, s[0], s[2]);
            perSample(op, "scale", scale, s[0], s[2]);
        }
        sameShapeF32(op, "x", x, "residual", residual);
        outputOfShape(op, "x", x, "out", out);
        rowStatistic(op, "mean", mean, x.rowCount());
        rowStatistic(op, "rstd", rstd, x.rowCount());
        argument(eps >= 0 && Float.isFinite(eps), op, () -> "eps must be finite and non-negative, got " + eps);
        return s;
    }

    /** residualLayerNorm with an F32 out and its BF16 copy outBf16 of the same shape; returns {N, T, D}. */
    public static int[] residualLayerNormWithCopy(Tensor x, Tensor gate, Tensor f, Tensor weight, Tensor shift,
                                                  Tensor scale, float eps, Tensor residual, Tensor out,
                                                  Tensor outBf16, Tensor mean, Tensor rstd) {
        String op = "residualLayerNorm";
        int[] s = residualLayerNorm(x, gate, f, weight, shift, scale, eps, residual, out, mean, rstd);
        notNull(op, "outBf16", outBf16);
        argument(out.dtype() == DType.F32 && outBf16.dtype() == DType.BF16
                        && java.util.Arrays.equals(out.shape(), outBf16.shape()), op,
                () -> "out " + out.describe() + " must be F32 and outBf16 " + outBf16.describe()
                + " BF16 of its shape");
        return s;
    }

    /**
     * residualLayerNormBackward: dOut F32 or BF16, dResidual F32 or null, dx F32, f and dF F32 or BF16, each of the
     * residual's shape; dGate with gate, dShift and dScale with scale, dWeight only with weight; returns {N, T, D}.
     */
    public static int[] residualLayerNormBackward(Tensor dOut, Tensor dResidual, Tensor residual, Tensor gate,
                                                  Tensor f, Tensor weight, Tensor scale, Tensor mean, Tensor rstd,
                                                  Tensor dx, Tensor dWeight, Tensor dShift, Tensor dScale,
                                                  Tensor dGate, Tensor dF) {
        String op = "residualLayerNormBackward";
        int[] s = tokens(op, "residual", residual);
        argument(s[2] > 0, op, () -> "residual " + residual.describe() + " needs a non-empty last dimension");
        gradientOf(op, "dOut", dOut, "residual", residual);
        if (dResidual != null) {
            sameShapeF32(op, "residual", residual, "dResidual", dResidual);
        }
        sameShapeF32(op, "residual", residual, "dx", dx);
        gradientOf(op, "f", f, "residual", residual);
        gradientOf(op, "dF", dF, "residual", residual);
        argument((gate == null) == (dGate == null), op, "gate and dGate come together");
        if (gate != null) {
            perSample(op, "gate", gate, s[0], s[2]);
            perSample(op, "dGate", dGate, s[0], s[2]);
        }
        normWeight(op, "weight", weight, s[2]);
        argument(weight != null || dWeight == null, op, () -> "dWeight " + dWeight
                + " given for a LayerNorm without weight");
        normWeight(op, "dWeight", dWeight, s[2]);
        argument((scale == null) == (dShift == null) && (scale == null) == (dScale == null), op,
                "scale, dShift and dScale come together (all null: no modulation)");
        if (scale != null) {
            perSample(op, "scale", scale, s[0], s[2]);
            perSample(op, "dShift", dShift, s[0], s[2]);
            perSample(op, "dScale", dScale, s[0], s[2]);
        }
        rowStatistic(op, "mean", mean, residual.rowCount());
        rowStatistic(op, "rstd", rstd, residual.rowCount());
        return s;
    }


    /** An optional LayerNorm weight: null, or F32 [width]. */
    private static void normWeight(String op, String argument, Tensor weight, int width) {
        if (weight != null) {
            dtype(op, argument, weight, DType.F32);
            shape(op, argument, weight, width);
        }
    }
}
