package io.microdit.backend.cpu;

import io.microdit.backend.Checks;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;

/**
 * Residual + gate + LayerNorm (+ modulate) and its backward on the CPU: the separate ops in sequence (gated
 * residual or add, then LayerNorm or LayerNorm + modulate; their backwards and the add of the residual's other
 * gradient), so the fused op's results are those of the separate ops by construction, the reference the CUDA
 * kernels are held to. The fusion saves GPU memory traffic; on the CPU each row stays in cache between the ops
 * anyway. FLOPs are counted under the separate ops' names. The LayerNorm backwards that add into x's gradient
 * ({@code accumulate}) are composed here the same way.
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
        Checks.residualLayerNorm(x, gate, f, weight, shift, scale, eps, residual, out, mean, rstd);
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
        Checks.residualLayerNormBackward(dOut, dResidual, residual, gate, f, weight, scale, mean, rstd, dx, dWeight,
                dShift, dScale, dGate, dF);
        try (MemoryScope scratch = new MemoryScope("residual-norm-backward")) {
            // In place (dResidual is dx) the LayerNorm's dx needs its own buffer before the add.
            boolean inPlace = dResidual != null && dResidual.segment().address() == dx.segment().address();
            Tensor normDx = inPlace ? scratch.zeros(DType.F32, dx.shape()) : dx;
            if (scale == null) {
                norm.layerNormBackward(dOut, residual, weight, mean, rstd, normDx, dWeight);
            } else {
                norm.layerNormModulateBackward(dOut, residual, weight, scale, mean, rstd, normDx, dWeight, dShift,
                        dScale);
            }
            // dResidual + the LayerNorm's dx: one rounded add, in either order the same bits.
            if (inPlace) {
                elementwise.axpy(1f, normDx, dx);
            } else if (dResidual != null) {
                elementwise.axpy(1f, dResidual, dx);
            }
        }
        if (gate == null) {
            elementwise.convert(dx, dF);
        } else {
            elementwise.gatedResidualBackward(dx, gate, f, dGate, dF);
        }
    }
    /** The LayerNorm backward, its dx added into {@code dx} when {@code accumulate}: written, then added by axpy. */
    void layerNormBackward(Tensor dOut, Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dx, Tensor dWeight,
                           boolean accumulate) {
        if (!accumulate) {
            norm.layerNormBackward(dOut, x, weight, mean, rstd, dx, dWeight);
            return;
        }
        Checks.sameShapeF32("layerNormBackward", "dx", dx, "dx", dx);
        try (MemoryScope scratch = new MemoryScope("layer-norm-accumulate")) {
            Tensor normDx = scratch.zeros(DType.F32, dx.shape());
            norm.layerNormBackward(dOut, x, weight, mean, rstd, normDx, dWeight);
            elementwise.axpy(1f, normDx, dx);
        }
    }

    /** As {@link #layerNormBackward} for the modulated LayerNorm. */
    void layerNormModulateBackward(Tensor dOut, Tensor x, Tensor weight, Tensor scale, Tensor mean, Tensor rstd,
                                   Tensor dx, Tensor dWeight, Tensor dShift, Tensor dScale, boolean accumulate) {
        if (!accumulate) {
            norm.layerNormModulateBackward(dOut, x, weight, scale, mean, rstd, dx, dWeight, dShift, dScale);
            return;
        }
        try (MemoryScope scratch = new MemoryScope("layer-norm-accumulate")) {
            Tensor normDx = scratch.zeros(DType.F32, dx.shape());
            norm.layerNormModulateBackward(dOut, x, weight, scale, mean, rstd, normDx, dWeight, dShift, dScale);
            elementwise.axpy(1f, normDx, dx);
        }
    }
}

