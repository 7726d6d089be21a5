package io.microdit.backend.cpu;

import io.microdit.backend.FlopCounter;
import io.microdit.tensor.Tensor;

final class CpuAttention {
    private final Parallel parallel;
    private final FlopCounter flops;

    CpuAttention(Parallel parallel, FlopCounter flops) {
        this.parallel = parallel;
        this.flops = flops;
    }

    void forward(Tensor q, Tensor k, Tensor v, int heads, Tensor out, Tensor lse) {
        throw new UnsupportedOperationException("CpuAttention.forward");
    }

    void backward(Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, int heads, Tensor dq, Tensor dk, Tensor dv) {
        throw new UnsupportedOperationException("CpuAttention.backward");
    }
}
