package io.microdit.backend.cpu;

import io.microdit.backend.FlopCounter;
import io.microdit.tensor.Tensor;

final class CpuActivations {
    private final Parallel parallel;
    private final FlopCounter flops;

    CpuActivations(Parallel parallel, FlopCounter flops) {
        this.parallel = parallel;
        this.flops = flops;
    }

    void gelu(Tensor x, Tensor out, boolean tanhApproximation) {
        throw new UnsupportedOperationException("CpuActivations.gelu");
    }

    void geluBackward(Tensor dOut, Tensor x, Tensor dx, boolean tanhApproximation) {
        throw new UnsupportedOperationException("CpuActivations.geluBackward");
    }

    void silu(Tensor x, Tensor out) {
        throw new UnsupportedOperationException("CpuActivations.silu");
    }

    void siluBackward(Tensor dOut, Tensor x, Tensor dx) {
        throw new UnsupportedOperationException("CpuActivations.siluBackward");
    }

    void swigluGate(Tensor a, Tensor b, Tensor out) {
        throw new UnsupportedOperationException("CpuActivations.swigluGate");
    }

    void swigluGateBackward(Tensor dOut, Tensor a, Tensor b, Tensor da, Tensor db) {
        throw new UnsupportedOperationException("CpuActivations.swigluGateBackward");
    }
}
