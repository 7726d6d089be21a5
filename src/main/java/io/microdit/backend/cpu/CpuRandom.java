package io.microdit.backend.cpu;

import io.microdit.backend.Checks;
import io.microdit.backend.FlopCounter;
import io.microdit.random.Philox;
import io.microdit.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Uniform and normal fills from Philox4x32-10, following the recipe documented in {@link Philox}. Element i of
 * the output is a function of (seed, stream, offset + i) alone, so the work splits into fixed chunks of
 * {@value #CHUNK} elements (a multiple of 4: with an offset that is one too, no Philox block is computed twice)
 * that threads fill into a float[] scratch and copy out; any thread count gives the same bits. Not vectorised:
 * the generator is a small share of a training step. Cost: one Philox block (20 32-bit
 * multiplies) per 4 elements; normals add one log, one sqrt and a sine or cosine per element pair.
 */
final class CpuRandom {
    private static final int CHUNK = 4096;
    private static final ThreadLocal<float[]> SCRATCH = ThreadLocal.withInitial(() -> new float[CHUNK]);

    private final Parallel parallel;
    private final FlopCounter flops;

    CpuRandom(Parallel parallel, FlopCounter flops) {
        this.parallel = parallel;
        this.flops = flops;
    }

    void uniform(long seed, long stream, long offset, Tensor out) {
        fill("uniform", seed, stream, offset, out, false);
        flops.add("uniform", out.numel());
    }

    void normal(long seed, long stream, long offset, Tensor out) {
        fill("normal", seed, stream, offset, out, true);
        // Per element: half of (2 scalings, log, ×-2, sqrt, ×2π, cos, sin, 2 products), rounded up.
        flops.add("normal", 5 * out.numel());
    }

    private void fill(String op, long seed, long stream, long offset, Tensor out, boolean normal) {
        Checks.random(op, offset, out);
        long numel = out.numel();
        MemorySegment segment = out.segment();
        long chunks = (numel + CHUNK - 1) / CHUNK;
        Checks.argument(chunks <= Integer.MAX_VALUE, op, () -> "out " + out.describe() + " is too large");
        parallel.forRange((int) chunks, 1, (start, end) -> {
            float[] scratch = SCRATCH.get();
            for (int chunk = start; chunk < end; chunk++) {
                long first = (long) chunk * CHUNK;
                int count = (int) Math.min(CHUNK, numel - first);
                if (normal) {
                    Philox.fillNormal(seed, stream, offset + first, scratch, 0, count);
                } else {
                    Philox.fillUniform(seed, stream, offset + first, scratch, 0, count);
                }
                MemorySegment.copy(scratch, 0, segment, ValueLayout.JAVA_FLOAT, first * Float.BYTES, count);
            }
        });
    }
}
