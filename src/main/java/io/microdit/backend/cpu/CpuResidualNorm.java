package io.microdit.backend.cpu;

import io.microdit.backend.NormChecks;
import io.microdit.tensor.DType;
import io.microdit.tensor.Tensor;

/**
 * Residual + gate + LayerNorm (+ modulate) and its backward on the CPU: the separate ops in sequence (gated
 * residual or add, then LayerNorm or LayerNorm + modulate; their backwards and the add of the residual's other
 * gradient), so the fused op's results are those of the separate ops by construction, the reference the CUDA
 * kernels are held to. The fusion saves GPU memory traffic; on the CPU each row stays in cache between the ops
 * anyway. FLOPs are counted under the separate ops' names. The LayerNorm backwards that add into x's gradient
 * ({@code accumulate}, and dResidual here) add inside CpuNorm's row loop as the dx is stored, as CUDA's kernel does:
 * the same single rounded add as writing dx and adding it by axpy.
 */
final class CpuResidualNorm {
    private final CpuElementwise elementwise;
    private final CpuNorm norm;

    CpuResidualNorm(CpuElementwise elementwise, CpuNorm norm) {
        this.elementwise = elementwise;
        this.norm = norm;
    }

    void residualLayerNorm(Tensor x, Tensor gate, Tensor f, Tensor weight, Tensor shift, Tensor scale, float eps,
                           Tensor residual, Tensor out, Tensor mean, Tensor rstd) {
        NormChecks.residualLayerNorm(x, gate, f, weight, shift, scale, eps, residual, out, mean, rstd);
        if (gate == null) {
            elementwise.add(x, f, residual);
        } else {
            elementwise.gatedResidual(x, gate, f, residual);
        }
        if (shift == null) {
            norm.layerNorm(residual, weight, eps, out, mean, rstd);
        } else {
            norm.layerNormModulate(residual, weight, shift, scale, eps, out, mean, rstd);
        }
    }

    void residualLayerNormBackward(Tensor dOut, Tensor dResidual, Tensor residual, Tensor gate, Tensor f,
                                   Tensor weight, Tensor scale, Tensor mean, Tensor rstd, Tensor dx, Tensor dWeight,
                                   Tensor dShift, Tensor dScale, Tensor dGate, Tensor dF) {
        NormChecks.residualLayerNormBackward(dOut, dResidual, residual, gate, f, weight, scale, mean, rstd, dx, dWeight,
                dShift, dScale, dGate, dF);
        // dResidual (may be dx itself) is added to the LayerNorm's dx as it is stored: one rounded add. Without a
        // gate, f's gradient is dx itself: the row loop stores it there too (F32), instead of a copy pass afterwards
        // on the caller alone.
        boolean copyInRows = gate == null && dx.dtype() == DType.F32 && dF.dtype() == DType.F32;
        Tensor copy = copyInRows ? dF : null;
        if (scale == null) {
            norm.layerNormBackward(dOut, residual, weight, mean, rstd, dx, dWeight, dResidual, copy);
        } else {
            norm.layerNormModulateBackward(dOut, residual, weight, scale, mean, rstd, dx, dWeight, dShift, dScale,
                    dResidual, copy);
        }
        if (gate == null) {
            if (!copyInRows) {
                elementwise.convert(dx, dF);
            }
        } else {
            elementwise.gatedResidualBackward(dx, gate, f, dGate, dF);
        }
    }

    /** The LayerNorm backward, its dx added into {@code dx} as it is stored when {@code accumulate}. */
    void layerNormBackward(Tensor dOut, Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dx, Tensor dWeight,
                           boolean accumulate) {
        norm.layerNormBackward(dOut, x, weight, mean, rstd, dx, dWeight, accumulate ? dx : null, null);
    }

    /** As {@link #layerNormBackward} for the modulated LayerNorm. */
    void layerNormModulateBackward(Tensor dOut, Tensor x, Tensor weight, Tensor scale, Tensor mean, Tensor rstd,
                                   Tensor dx, Tensor dWeight, Tensor dShift, Tensor dScale, boolean accumulate) {
        norm.layerNormModulateBackward(dOut, x, weight, scale, mean, rstd, dx, dWeight, dShift, dScale,
                accumulate ? dx : null, null);
    }
}
