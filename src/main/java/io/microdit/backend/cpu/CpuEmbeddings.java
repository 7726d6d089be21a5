package io.microdit.backend.cpu;

import io.microdit.backend.FlopCounter;
import io.microdit.tensor.Tensor;

final class CpuEmbeddings {
    private final Parallel parallel;
    private final FlopCounter flops;

    CpuEmbeddings(Parallel parallel, FlopCounter flops) {
        this.parallel = parallel;
        this.flops = flops;
    }

    void positionEmbedding2d(int gridH, int gridW, float interpolationScale, Tensor out) {
        throw new UnsupportedOperationException("CpuEmbeddings.positionEmbedding2d");
    }

    void timestepEmbedding(Tensor t, Tensor out) {
        throw new UnsupportedOperationException("CpuEmbeddings.timestepEmbedding");
    }
}
