package io.microdit.backend.cuda;

import io.microdit.backend.Checks;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The masked EDM loss and its backward: drives kernels/loss.cu (mdt_loss_*); the loss comes back through the
 * backend's readback buffer together with the error record, in one host wait.
 */
final class CudaLoss extends CudaOps {
    CudaLoss(CudaBackend cuda) {
        super(cuda);
    }

    float edmLoss(Tensor denoised, Tensor target, Tensor weight, Tensor mask, int patch, Tensor perSample) {
        String op = "edmLoss";
        int[] dims = Checks.edmLoss(denoised, target, weight, mask, patch, perSample);
        // The per-sample losses and their mean land after the error record, so one copy brings back both.
        MemorySegment losses = readbackValues(dims[0] + 1L);
        check(DiffusionBindings.mdt_loss_edm_fwd(stream, pointer(op, "denoised", denoised),
                pointer(op, "target", target), pointer(op, "weight", weight), optionalPointer(op, "mask", mask),
                pointer(op, "perSample", perSample), losses, dims[0], dims[1], dims[2], dims[3], patch,
                errorRecord()), op);
        flops.add(op, 3L * denoised.numel());
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = readBack(arena, dims[0] + 1L); // the caller needs the loss now
            return (float) host.get(ValueLayout.JAVA_DOUBLE, ERROR_RECORD_BYTES + 8L * dims[0]);
        }
    }

    void edmLossBackward(float dLoss, Tensor denoised, Tensor target, Tensor weight, Tensor mask, int patch,
                         Tensor dDenoised) {
        String op = "edmLossBackward";
        int[] dims = Checks.edmLossBackward(denoised, target, weight, mask, patch, dDenoised);
        try (MemoryScope workspace = scope(op + "-workspace")) {
            Tensor keepSums = workspace.zeros(DType.I32, 2 * (dims[0] + 1));
            check(DiffusionBindings.mdt_loss_edm_bwd(stream, dLoss, pointer(op, "denoised", denoised),
                    pointer(op, "target", target), pointer(op, "weight", weight), optionalPointer(op, "mask", mask),
                    pointer(op, "dDenoised", dDenoised), keepSums.segment(), dims[0], dims[1], dims[2], dims[3],
                    patch, errorRecord()), op);
        }
        flops.add(op, 3L * denoised.numel());
    }
}
