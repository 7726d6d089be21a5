package io.microdit.backend.cpu;

import io.microdit.backend.FlopCounter;
import io.microdit.tensor.Tensor;

final class CpuSoftmax {
    private final Parallel parallel;
    private final FlopCounter flops;

    CpuSoftmax(Parallel parallel, FlopCounter flops) {
        this.parallel = parallel;
        this.flops = flops;
    }

    void softmax(Tensor x, Tensor out) {
        throw new UnsupportedOperationException("CpuSoftmax.softmax");
    }

    void softmaxBackward(Tensor dOut, Tensor y, Tensor dx) {
        throw new UnsupportedOperationException("CpuSoftmax.softmaxBackward");
    }
}
