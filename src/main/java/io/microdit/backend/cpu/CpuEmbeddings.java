package io.microdit.backend.cpu;

import io.microdit.backend.Checks;
import io.microdit.backend.FlopCounter;
import io.microdit.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The fixed sinusoidal embeddings, computed to match the official code's number types.
 *
 * <p>Position embedding (numpy {@code get_2d_sincos_pos_embed}): grid coordinates are float32
 * ({@code arange(g, dtype=float32) / scale}), frequencies and sin/cos float64, the buffer stored as float32. A
 * token's first D/2 channels depend only on its column and the last D/2 only on its row, so the two 1-D
 * tables (gridW and gridH rows of D/2) are computed once and copied into each token: (gridH + gridW)·D/2
 * sin-or-cos evaluations instead of gridH·gridW·D.
 *
 * <p>Timestep embedding (PyTorch {@code TimestepEmbedder.timestep_embedding}): every intermediate is float32 as
 * in PyTorch — freqs = exp(float32(float32(k · float32(-ln 10000)) / half)), args = float32(t · freqs) — and
 * cos/sin of each float32 argument are evaluated in double and rounded once, which is within an ulp of
 * PyTorch's float32 kernels. N·half multiplies and 2·N·half sin-or-cos evaluations.
 */
final class CpuEmbeddings {
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT;

    private final Parallel parallel;
    private final FlopCounter flops;

    CpuEmbeddings(Parallel parallel, FlopCounter flops) {
        this.parallel = parallel;
        this.flops = flops;
    }

    void positionEmbedding2d(int gridH, int gridW, float interpolationScale, Tensor out) {
        String op = "positionEmbedding2d";
        int dim = Checks.positionEmbedding2d(gridH, gridW, interpolationScale, out);
        int half = dim / 2;
        float[] columns = oneDimensional(gridW, half, interpolationScale);
        float[] rows = oneDimensional(gridH, half, interpolationScale);
        MemorySegment target = out.segment();
        parallel.forRange(gridH * gridW, Math.max(1, 4096 / dim), (start, end) -> {
            for (int token = start; token < end; token++) {
                int h = token / gridW, w = token % gridW;
                long base = (long) token * dim;
                MemorySegment.copy(columns, w * half, target, FLOAT, base * Float.BYTES, half);
                MemorySegment.copy(rows, h * half, target, FLOAT, (base + half) * Float.BYTES, half);
            }
        });
        flops.add(op, (long) (gridH + gridW) * half);
    }

    /** Rows [sin(pos·ω_k) for k < size/2, cos(pos·ω_k) for k < size/2] for pos = index / scale, index < count. */
    private static float[] oneDimensional(int count, int size, float scale) {
        int quarter = size / 2;
        double[] omega = new double[quarter];
        for (int k = 0; k < quarter; k++) {
            omega[k] = 1.0 / Math.pow(10000.0, k / (double) quarter);
        }
        float[] table = new float[count * size];
        for (int index = 0; index < count; index++) {
            double position = (float) index / scale;
            for (int k = 0; k < quarter; k++) {
                double angle = position * omega[k];
                table[index * size + k] = (float) Math.sin(angle);
                table[index * size + quarter + k] = (float) Math.cos(angle);
            }
        }
        return table;
    }

    void timestepEmbedding(Tensor t, Tensor out) {
        String op = "timestepEmbedding";
        int size = Checks.timestepEmbedding(t, out);
        int samples = t.dim(0);
        int half = size / 2;
        float logPeriod = (float) -Math.log(10000.0);
        float[] frequencies = new float[half];
        for (int k = 0; k < half; k++) {
            float exponent = (k * logPeriod) / half;
            frequencies[k] = (float) Math.exp(exponent);
        }
        MemorySegment times = t.segment(), target = out.segment();
        parallel.forRange(samples, Math.max(1, 2048 / Math.max(1, size)), (start, end) -> {
            float[] row = new float[size];
            for (int n = start; n < end; n++) {
                float time = times.getAtIndex(FLOAT, n);
                for (int k = 0; k < half; k++) {
                    float argument = time * frequencies[k];
                    row[k] = (float) Math.cos(argument);
                    row[half + k] = (float) Math.sin(argument);
                }
                // An odd size gets a trailing zero column, as the official code pads it.
                if (size % 2 == 1) {
                    row[size - 1] = 0f;
                }
                MemorySegment.copy(row, 0, target, FLOAT, (long) n * size * Float.BYTES, size);
            }
        });
        flops.add(op, 3L * samples * half);
    }
}
