package io.microdit.backend.cuda;

import io.microdit.backend.AttentionChecks;
import io.microdit.backend.Checks;
import io.microdit.backend.NormChecks;
import io.microdit.tensor.DType;
import io.microdit.tensor.Tensor;
import java.lang.foreign.MemorySegment;

/**
 * LayerNorm, alone or fused with the adaLN modulation, and their backwards: drives kernels/norm.cu
 * (mdt_norm_*); the weight gradient is a two-pass column sum in the backend's workspace.
 */
final class CudaNorm extends CudaOps {
    CudaNorm(CudaBackend cuda) {
        super(cuda);
    }

    void layerNorm(Tensor x, Tensor weight, float eps, Tensor out, Tensor mean, Tensor rstd) {
        String op = "layerNorm";
        int width = NormChecks.layerNorm(x, weight, eps, out, mean, rstd);
        long rows = x.rowCount();
        MemorySegment xs = pointer(op, "x", x), ws = optionalPointer(op, "weight", weight),
                os = pointer(op, "out", out), ms = pointer(op, "mean", mean), rs = pointer(op, "rstd", rstd);
        boolean bf16In = x.dtype() == DType.BF16, bf16Out = out.dtype() == DType.BF16;
        check(bf16In && bf16Out
                ? NormBindings.mdt_norm_layer_norm_fwd_bf16in_bf16out(stream, xs, ws, eps, os, ms, rs, rows, width)
                : bf16In ? NormBindings.mdt_norm_layer_norm_fwd_bf16in(stream, xs, ws, eps, os, ms, rs, rows, width)
                : bf16Out ? NormBindings.mdt_norm_layer_norm_fwd_bf16out(stream, xs, ws, eps, os, ms, rs, rows, width)
                : NormBindings.mdt_norm_layer_norm_fwd(stream, xs, ws, eps, os, ms, rs, rows, width), op);
        flops.add(op, (weight == null ? 7L : 8L) * x.numel());
    }

    void gatherLayerNorm(Tensor x, Tensor ids, Tensor weight, float eps, Tensor out, Tensor mean, Tensor rstd) {
        String op = "gatherLayerNorm";
        int[] s = NormChecks.gatherLayerNorm(x, ids, weight, eps, out, mean, rstd);
        // Only the kept rows of x are read: those bytes are the operand.
        check(NormBindings.mdt_norm_gather_layer_norm_fwd(stream, pointer(op, "x", x, keptBytes(s)),
                pointer(op, "ids", ids),
                optionalPointer(op, "weight", weight), eps, pointer(op, "out", out), pointer(op, "mean", mean),
                pointer(op, "rstd", rstd), s[0], s[1], s[2], s[3], out.dtype() == DType.BF16 ? 1 : 0, errorRecord()),
                op);
        flops.add(op, (weight == null ? 7L : 8L) * out.numel());
    }

    void gatherLayerNormBackward(Tensor dOut, Tensor x, Tensor ids, Tensor weight, Tensor mean, Tensor rstd,
                                 Tensor dx, Tensor dWeight, boolean accumulate) {
        String op = "gatherLayerNormBackward";
        int[] s = NormChecks.gatherLayerNormBackward(dOut, x, ids, weight, mean, rstd, dx, dWeight);
        long rows = (long) s[0] * s[2];
        MemorySegment workspace = dWeight == null || rows == 0 ? MemorySegment.NULL
                : reductionWorkspace(op, rows, s[3]);
        // x's kept rows are read; dx's kept rows are stored (accumulating: read and stored), the whole of it zeroed
        // first when not accumulating: the operand bytes the trace counts.
        MemorySegment gs = pointer(op, "dOut", dOut), xs = pointer(op, "x", x, keptBytes(s)),
                is = pointer(op, "ids", ids), ws = optionalPointer(op, "weight", weight),
                ms = pointer(op, "mean", mean), rs = pointer(op, "rstd", rstd),
                dxs = pointer(op, "dx", dx, accumulate ? keptBytes(s) : dx.byteSize()),
                dws = optionalPointer(op, "dWeight", dWeight);
        pointer(op, "dx", dx, keptBytes(s));
        check(NormBindings.mdt_norm_gather_layer_norm_bwd(stream, gs, xs, is, ws, ms, rs, dxs, dws, s[0], s[1],
                s[2], s[3], workspace, reductionCapacity(), bf16Grads(dOut), accumulate ? 1 : 0, errorRecord()), op);
        flops.add(op, ((weight == null ? 11L : dWeight != null ? 16L : 14L) + (accumulate ? 1 : 0)) * dOut.numel());
    }

    /** Bytes of the F32 rows [N, K, D] that {@code s} = {N, T, K, D} keeps. */
    private static long keptBytes(int[] s) {
        return (long) s[0] * s[2] * s[3] * Float.BYTES;
    }

    void layerNormStatistics(Tensor x, float eps, Tensor mean, Tensor rstd, Tensor center) {
        String op = "layerNormStatistics";
        int width = AttentionChecks.layerNormStatistics(x, eps, mean, rstd, center);
        check(NormBindings.mdt_norm_layer_norm_statistics(stream, pointer(op, "x", x), eps, MemorySegment.NULL,
                pointer(op, "mean", mean), pointer(op, "rstd", rstd), pointer(op, "center", center), x.rowCount(),
                width, width, x.dtype() == DType.BF16 ? 1 : 0), op);
        // With normalizedAttention's 3 per element of the normalisation, layerNorm's 7.
        flops.add(op, 4L * x.numel());
    }

    /**
     * layerNorm without weight of x into out (its dtype), with its statistics: the normalised rows a kernel that
     * cannot normalise q and k as it loads them reads instead (CudaAttention's other head dimensions).
     */
    void normalizeWithStatistics(String op, Tensor x, float eps, Tensor out, Tensor mean, Tensor rstd,
                                 Tensor center) {
        check(NormBindings.mdt_norm_layer_norm_statistics(stream, pointer(op, "x", x), eps, pointer(op, "out", out),
                pointer(op, "mean", mean), pointer(op, "rstd", rstd), pointer(op, "center", center), x.rowCount(),
                x.dim(-1), x.dim(-1), (x.dtype() == DType.BF16 ? 1 : 0) | (out.dtype() == DType.BF16 ? 2 : 0)), op);
        flops.add(op, 7L * x.numel());
    }

    void layerNormBackward(Tensor dOut, Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dx,
                           Tensor dWeight) {
        String op = "layerNormBackward";
        int width = NormChecks.layerNormBackward(dOut, x, weight, mean, rstd, dx, dWeight);
        long rows = x.rowCount();
        MemorySegment workspace = dWeight == null ? MemorySegment.NULL : reductionWorkspace(op, rows, width);
        MemorySegment gs = pointer(op, "dOut", dOut), xs = pointer(op, "x", x),
                ws = optionalPointer(op, "weight", weight), ms = pointer(op, "mean", mean), rs = pointer(op, "rstd", rstd), dxs = pointer(op, "dx", dx),
                dws = optionalPointer(op, "dWeight", dWeight);
        int grads = bf16Grads(dOut, dx);
        boolean bf16In = x.dtype() == DType.BF16;
        check(grads != 0 && bf16In
                ? NormBindings.mdt_norm_layer_norm_bwd_bf16in_bf16grad(stream, gs, xs, ws, ms, rs, dxs, dws, rows,
                        width, workspace, reductionCapacity(), grads)
                : grads != 0 ? NormBindings.mdt_norm_layer_norm_bwd_bf16grad(stream, gs, xs, ws, ms, rs, dxs, dws,
                        rows, width, workspace, reductionCapacity(), grads)
                : bf16In ? NormBindings.mdt_norm_layer_norm_bwd_bf16in(stream, gs, xs, ws, ms, rs, dxs, dws, rows,
                        width, workspace, reductionCapacity())
                : NormBindings.mdt_norm_layer_norm_bwd(stream, gs, xs, ws, ms, rs, dxs, dws, rows, width, workspace,
                        reductionCapacity()), op);
        flops.add(op, (weight == null ? 11L : dWeight != null ? 16L : 14L) * x.numel());
    }

    void layerNormModulate(Tensor x, Tensor weight, Tensor shift, Tensor scale, float eps, Tensor out,
                           Tensor mean, Tensor rstd) {
        String op = "layerNormModulate";
        int[] s = NormChecks.layerNormModulate(x, weight, shift, scale, eps, out, mean, rstd);
        MemorySegment xs = pointer(op, "x", x), ws = optionalPointer(op, "weight", weight),
                shifts = pointer(op, "shift", shift), scales = pointer(op, "scale", scale),
                os = pointer(op, "out", out), ms = pointer(op, "mean", mean), rs = pointer(op, "rstd", rstd);
        check(out.dtype() == DType.BF16
                ? NormBindings.mdt_norm_layer_norm_modulate_fwd_bf16out(stream, xs, ws, shifts, scales, eps, os, ms,
                        rs, s[0], s[1], s[2])
                : NormBindings.mdt_norm_layer_norm_modulate_fwd(stream, xs, ws, shifts, scales, eps, os, ms, rs,
                        s[0], s[1], s[2]), op);
        flops.add(op, (weight == null ? 10L : 11L) * x.numel());
    }

    void layerNormModulateBackward(Tensor dOut, Tensor x, Tensor weight, Tensor scale, Tensor mean,
                                   Tensor rstd, Tensor dx, Tensor dWeight, Tensor dShift, Tensor dScale) {
        String op = "layerNormModulateBackward";
        int[] s = NormChecks.layerNormModulateBackward(dOut, x, weight, scale, mean, rstd, dx, dWeight, dShift, dScale);
        // dWeight sums over the samples (the tokens were summed per sample into dScale)
        MemorySegment workspace = dWeight == null || s[0] == 0 ? MemorySegment.NULL
                : reductionWorkspace(op, s[0], s[2]);
        MemorySegment gs = pointer(op, "dOut", dOut), xs = pointer(op, "x", x),
                ws = optionalPointer(op, "weight", weight), scales = pointer(op, "scale", scale),
                ms = pointer(op, "mean", mean), rs = pointer(op, "rstd", rstd), dxs = pointer(op, "dx", dx),
                dws = optionalPointer(op, "dWeight", dWeight), dShifts = pointer(op, "dShift", dShift),
                dScales = pointer(op, "dScale", dScale);
        int grads = bf16Grads(dOut);
        check(grads != 0
                ? NormBindings.mdt_norm_layer_norm_modulate_bwd_bf16grad(stream, gs, xs, ws, scales, ms, rs, dxs,
                        dws, dShifts, dScales, s[0], s[1], s[2], workspace, reductionCapacity(), grads)
                : NormBindings.mdt_norm_layer_norm_modulate_bwd(stream, gs, xs, ws, scales, ms, rs, dxs, dws,
                        dShifts, dScales, s[0], s[1], s[2], workspace, reductionCapacity()), op);
        flops.add(op, (weight == null ? 14L : 15L) * x.numel());
    }
    void residualLayerNorm(Tensor x, Tensor gate, Tensor f, Tensor weight, Tensor shift, Tensor scale, float eps,
                           Tensor residual, Tensor out, Tensor mean, Tensor rstd) {
        String op = "residualLayerNorm";
        int[] s = NormChecks.residualLayerNorm(x, gate, f, weight, shift, scale, eps, residual, out, mean, rstd);
        MemorySegment xs = pointer(op, "x", x), gs = optionalPointer(op, "gate", gate), fs = pointer(op, "f", f),
                ws = optionalPointer(op, "weight", weight), shifts = optionalPointer(op, "shift", shift),
                scales = optionalPointer(op, "scale", scale), res = pointer(op, "residual", residual),
                os = pointer(op, "out", out), ms = pointer(op, "mean", mean), rs = pointer(op, "rstd", rstd);
        check(NormBindings.mdt_norm_residual_layer_norm_fwd(stream, xs, gs, fs, ws, shifts, scales, eps, res, os,
                ms, rs, s[0], s[1], s[2], bf16Grads(f, out)), op);
        flops.add(op, (1L + (gate == null ? 0 : 1) + (weight == null ? 7 : 8) + (shift == null ? 0 : 3)) * x.numel());
    }

    void residualLayerNorm(Tensor x, Tensor gate, Tensor f, Tensor weight, Tensor shift, Tensor scale, float eps,
                           Tensor residual, Tensor out, Tensor outBf16, Tensor mean, Tensor rstd) {
        String op = "residualLayerNorm";
        int[] s = NormChecks.residualLayerNormWithCopy(x, gate, f, weight, shift, scale, eps, residual, out, outBf16, mean,
                rstd);
        MemorySegment xs = pointer(op, "x", x), gs = optionalPointer(op, "gate", gate), fs = pointer(op, "f", f),
                ws = optionalPointer(op, "weight", weight), shifts = optionalPointer(op, "shift", shift),
                scales = optionalPointer(op, "scale", scale), res = pointer(op, "residual", residual),
                os = pointer(op, "out", out), copies = pointer(op, "outBf16", outBf16), ms = pointer(op, "mean", mean),
                rs = pointer(op, "rstd", rstd);
        check(NormBindings.mdt_norm_residual_layer_norm_fwd_bf16copy(stream, xs, gs, fs, ws, shifts, scales, eps,
                res, os, copies, ms, rs, s[0], s[1], s[2], bf16Grads(f)), op);
        flops.add(op, (1L + (gate == null ? 0 : 1) + (weight == null ? 7 : 8) + (shift == null ? 0 : 3)) * x.numel());
    }

    void residualLayerNormBackward(Tensor dOut, Tensor dResidual, Tensor residual, Tensor gate, Tensor f,
                                   Tensor weight, Tensor scale, Tensor mean, Tensor rstd, Tensor dx, Tensor dWeight,
                                   Tensor dShift, Tensor dScale, Tensor dGate, Tensor dF) {
        String op = "residualLayerNormBackward";
        int[] s = NormChecks.residualLayerNormBackward(dOut, dResidual, residual, gate, f, weight, scale, mean, rstd, dx,
                dWeight, dShift, dScale, dGate, dF);
        // The weight's column sum runs over samples when modulated (dScale holds the sums over tokens), else rows.
        long weightRows = scale == null ? residual.rowCount() : s[0];
        MemorySegment workspace = dWeight == null || weightRows == 0 ? MemorySegment.NULL
                : reductionWorkspace(op, weightRows, s[2]);
        MemorySegment gs = pointer(op, "dOut", dOut), drs = optionalPointer(op, "dResidual", dResidual),
                res = pointer(op, "residual", residual), gates = optionalPointer(op, "gate", gate),
                fs = pointer(op, "f", f), ws = optionalPointer(op, "weight", weight),
                scales = optionalPointer(op, "scale", scale), ms = pointer(op, "mean", mean),
                rs = pointer(op, "rstd", rstd), dxs = pointer(op, "dx", dx),
                dws = optionalPointer(op, "dWeight", dWeight), dShifts = optionalPointer(op, "dShift", dShift),
                dScales = optionalPointer(op, "dScale", dScale), dGates = optionalPointer(op, "dGate", dGate),
                dFs = pointer(op, "dF", dF);
        check(NormBindings.mdt_norm_residual_layer_norm_bwd(stream, gs, drs, res, gates, fs, ws, scales, ms, rs,
                dxs, dws, dShifts, dScales, dGates, dFs, s[0], s[1], s[2], workspace, reductionCapacity(),
                bf16Grads(dOut, f, dF)), op);
        flops.add(op, (15L + (dResidual == null ? 0 : 1) + (gate == null ? 0 : 3) + (scale == null ? 0 : 3))
                * residual.numel());
    }
    void layerNormBackward(Tensor dOut, Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dx,
                           Tensor dWeight, boolean accumulate) {
        if (!accumulate) {
            layerNormBackward(dOut, x, weight, mean, rstd, dx, dWeight);
            return;
        }
        String op = "layerNormBackward";
        int width = NormChecks.layerNormBackward(dOut, x, weight, mean, rstd, dx, dWeight);
        Checks.sameShapeF32(op, "dx", dx, "dx", dx);
        long rows = x.rowCount();
        MemorySegment workspace = dWeight == null ? MemorySegment.NULL : reductionWorkspace(op, rows, width);
        MemorySegment gs = pointer(op, "dOut", dOut), xs = pointer(op, "x", x),
                ws = optionalPointer(op, "weight", weight), ms = pointer(op, "mean", mean),
                rs = pointer(op, "rstd", rstd), dxs = pointer(op, "dx", dx), dws = optionalPointer(op, "dWeight", dWeight);
        // dx is read and written: counted twice, as the trace counts operands.
        pointer(op, "dx", dx);
        check(NormBindings.mdt_norm_layer_norm_bwd_accumulate(stream, gs, xs, ws, ms, rs, dxs, dws, rows, width,
                workspace, reductionCapacity(), bf16Grads(dOut, x)), op);
        flops.add(op, (weight == null ? 12L : dWeight != null ? 17L : 15L) * x.numel());
    }

    void layerNormModulateBackward(Tensor dOut, Tensor x, Tensor weight, Tensor scale, Tensor mean,
                                   Tensor rstd, Tensor dx, Tensor dWeight, Tensor dShift, Tensor dScale,
                                   boolean accumulate) {
        if (!accumulate) {
            layerNormModulateBackward(dOut, x, weight, scale, mean, rstd, dx, dWeight, dShift, dScale);
            return;
        }
        String op = "layerNormModulateBackward";
        int[] s = NormChecks.layerNormModulateBackward(dOut, x, weight, scale, mean, rstd, dx, dWeight, dShift, dScale);
        MemorySegment workspace = dWeight == null || s[0] == 0 ? MemorySegment.NULL
                : reductionWorkspace(op, s[0], s[2]);
        MemorySegment gs = pointer(op, "dOut", dOut), xs = pointer(op, "x", x),
                ws = optionalPointer(op, "weight", weight), scales = pointer(op, "scale", scale),
                ms = pointer(op, "mean", mean), rs = pointer(op, "rstd", rstd), dxs = pointer(op, "dx", dx),
                dws = optionalPointer(op, "dWeight", dWeight), dShifts = pointer(op, "dShift", dShift),
                dScales = pointer(op, "dScale", dScale);
        pointer(op, "dx", dx);
        check(NormBindings.mdt_norm_layer_norm_modulate_bwd_accumulate(stream, gs, xs, ws, scales, ms, rs, dxs, dws,
                dShifts, dScales, s[0], s[1], s[2], workspace, reductionCapacity(), bf16Grads(dOut)), op);
        flops.add(op, (weight == null ? 15L : 16L) * x.numel());
    }
}


