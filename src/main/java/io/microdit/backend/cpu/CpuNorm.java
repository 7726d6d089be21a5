package io.microdit.backend.cpu;

import io.microdit.backend.FlopCounter;
import io.microdit.tensor.Tensor;

final class CpuNorm {
    private final Parallel parallel;
    private final FlopCounter flops;

    CpuNorm(Parallel parallel, FlopCounter flops) {
        this.parallel = parallel;
        this.flops = flops;
    }

    void layerNorm(Tensor x, Tensor weight, float eps, Tensor out, Tensor mean, Tensor rstd) {
        throw new UnsupportedOperationException("CpuNorm.layerNorm");
    }

    void layerNormBackward(Tensor dOut, Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dx, Tensor dWeight) {
        throw new UnsupportedOperationException("CpuNorm.layerNormBackward");
    }
}
