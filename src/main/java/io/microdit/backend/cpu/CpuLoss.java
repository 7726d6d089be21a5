package io.microdit.backend.cpu;

import io.microdit.backend.FlopCounter;
import io.microdit.tensor.Tensor;

final class CpuLoss {
    private final Parallel parallel;
    private final FlopCounter flops;

    CpuLoss(Parallel parallel, FlopCounter flops) {
        this.parallel = parallel;
        this.flops = flops;
    }

    float edmLoss(Tensor denoised, Tensor target, Tensor weight, Tensor mask, int patch, Tensor perSample) {
        throw new UnsupportedOperationException("CpuLoss.edmLoss");
    }

    void edmLossBackward(float dLoss, Tensor denoised, Tensor target, Tensor weight, Tensor mask, int patch, Tensor dDenoised) {
        throw new UnsupportedOperationException("CpuLoss.edmLossBackward");
    }
}
