package io.microdit.backend.cpu;

import io.microdit.backend.FlopCounter;
import io.microdit.tensor.Tensor;

final class CpuRandom {
    private final Parallel parallel;
    private final FlopCounter flops;

    CpuRandom(Parallel parallel, FlopCounter flops) {
        this.parallel = parallel;
        this.flops = flops;
    }

    void uniform(long seed, long stream, long offset, Tensor out) {
        throw new UnsupportedOperationException("CpuRandom.uniform");
    }

    void normal(long seed, long stream, long offset, Tensor out) {
        throw new UnsupportedOperationException("CpuRandom.normal");
    }
}
