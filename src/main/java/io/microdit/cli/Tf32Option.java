package io.microdit.cli;

import io.microdit.backend.Backend;
import io.microdit.backend.cuda.CudaBackend;
import picocli.CommandLine.Option;

/**
 * {@code --tf32}: F32 matrix products on TF32 tensor cores ({@link CudaBackend#allowTf32}), shared by the commands
 * that run a model on a backend. Off by default: a tf32 keeps 10 of an f32's 23 mantissa bits.
 */
final class Tf32Option {
    @Option(names = "--tf32", description = "With --backend cuda: F32 matrix products on TF32 tensor cores, their "
            + "operands rounded to 10 mantissa bits (like PyTorch's allow_tf32; bf16 products are not affected). "
            + "Default off.")
    boolean tf32;

    /** Refuses the option for a backend without a TF32 path (the CPU's), before anything is opened. */
    void check(String backendName) {
        if (tf32 && !"cuda".equals(backendName)) {
            throw new IllegalArgumentException("--tf32 applies to --backend cuda only: the " + backendName
                    + " backend has no TF32 path");
        }
    }

    /** Switches TF32 on for {@code backend} (a CUDA backend, after {@link #check}) when the option is given. */
    void apply(Backend backend) {
        if (tf32) {
            ((CudaBackend) backend).allowTf32(true);
        }
    }
}
