package io.microdit.backend.cpu;

import io.microdit.backend.FlopCounter;
import io.microdit.tensor.Tensor;

final class CpuMoe {
    private final Parallel parallel;
    private final FlopCounter flops;

    CpuMoe(Parallel parallel, FlopCounter flops) {
        this.parallel = parallel;
        this.flops = flops;
    }

    void topK(Tensor probs, int k, Tensor gates, Tensor indices) {
        throw new UnsupportedOperationException("CpuMoe.topK");
    }

    void topKBackward(Tensor dGates, Tensor indices, Tensor dProbs) {
        throw new UnsupportedOperationException("CpuMoe.topKBackward");
    }

    void dispatch(Tensor x, Tensor indices, Tensor out) {
        throw new UnsupportedOperationException("CpuMoe.dispatch");
    }

    void dispatchBackward(Tensor dOut, Tensor indices, Tensor dx) {
        throw new UnsupportedOperationException("CpuMoe.dispatchBackward");
    }

    void combine(Tensor h, Tensor gates, Tensor indices, Tensor out) {
        throw new UnsupportedOperationException("CpuMoe.combine");
    }

    void combineBackward(Tensor dOut, Tensor h, Tensor gates, Tensor indices, Tensor dH, Tensor dGates) {
        throw new UnsupportedOperationException("CpuMoe.combineBackward");
    }
}
