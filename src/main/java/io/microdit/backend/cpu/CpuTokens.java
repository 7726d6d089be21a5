package io.microdit.backend.cpu;

import io.microdit.backend.FlopCounter;
import io.microdit.tensor.Tensor;

final class CpuTokens {
    private final Parallel parallel;
    private final FlopCounter flops;

    CpuTokens(Parallel parallel, FlopCounter flops) {
        this.parallel = parallel;
        this.flops = flops;
    }

    void gatherRows(Tensor x, Tensor ids, Tensor out) {
        throw new UnsupportedOperationException("CpuTokens.gatherRows");
    }

    void scatterRows(Tensor x, Tensor ids, Tensor out) {
        throw new UnsupportedOperationException("CpuTokens.scatterRows");
    }

    void meanTokens(Tensor x, Tensor out) {
        throw new UnsupportedOperationException("CpuTokens.meanTokens");
    }

    void meanTokensBackward(Tensor dOut, Tensor dx) {
        throw new UnsupportedOperationException("CpuTokens.meanTokensBackward");
    }

    void patchify(Tensor image, int patch, Tensor out) {
        throw new UnsupportedOperationException("CpuTokens.patchify");
    }

    void patchifyBackward(Tensor dOut, int patch, Tensor dImage) {
        throw new UnsupportedOperationException("CpuTokens.patchifyBackward");
    }

    void unpatchify(Tensor tokens, int patch, Tensor out) {
        throw new UnsupportedOperationException("CpuTokens.unpatchify");
    }

    void unpatchifyBackward(Tensor dOut, int patch, Tensor dTokens) {
        throw new UnsupportedOperationException("CpuTokens.unpatchifyBackward");
    }
}
