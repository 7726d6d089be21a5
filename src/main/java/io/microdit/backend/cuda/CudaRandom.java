package io.microdit.backend.cuda;

import io.microdit.backend.Checks;
import io.microdit.tensor.Tensor;

/**
 * Philox uniform and normal floats: drives kernels/rng.cu (mdt_rng_*).
 */
final class CudaRandom extends CudaOps {
    CudaRandom(CudaBackend cuda) {
        super(cuda);
    }

    void uniform(long seed, long stream, long offset, Tensor out) {
        String op = "uniform";
        Checks.random(op, offset, out);
        check(DiffusionBindings.mdt_rng_uniform(this.stream, seed, stream, offset, pointer(op, "out", out),
                out.numel()), op);
        flops.add(op, out.numel());
    }

    void normal(long seed, long stream, long offset, Tensor out) {
        String op = "normal";
        Checks.random(op, offset, out);
        check(DiffusionBindings.mdt_rng_normal(this.stream, seed, stream, offset, pointer(op, "out", out), out.numel()),
                op);
        flops.add(op, 5 * out.numel());
    }
}
