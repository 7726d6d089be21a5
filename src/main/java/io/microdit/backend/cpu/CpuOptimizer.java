package io.microdit.backend.cpu;

import io.microdit.backend.FlopCounter;
import io.microdit.tensor.Tensor;

final class CpuOptimizer {
    private final Parallel parallel;
    private final FlopCounter flops;

    CpuOptimizer(Parallel parallel, FlopCounter flops) {
        this.parallel = parallel;
        this.flops = flops;
    }

    double sumOfSquares(Tensor x) {
        throw new UnsupportedOperationException("CpuOptimizer.sumOfSquares");
    }

    void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, float learningRate, float beta1, float beta2, float epsilon, float weightDecay, long step, float gradScale) {
        throw new UnsupportedOperationException("CpuOptimizer.adamw");
    }

    void emaUpdate(Tensor ema, Tensor param, float decay) {
        throw new UnsupportedOperationException("CpuOptimizer.emaUpdate");
    }
}
