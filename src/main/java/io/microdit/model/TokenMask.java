package io.microdit.model;

import io.microdit.backend.Backend;
import io.microdit.random.Philox;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.util.Arrays;

/**
 * A random per-sample token mask, as the official {@code get_mask}: {@code keep = int(T·(1−ratio))} tokens per
 * sample, chosen by sorting uniform noise (ties to the lower token index); the kept ids stay in that random order.
 *
 * @param keepIds I32 [N, keep], the kept token ids in shuffled order
 * @param removed F32 [N, T], 1 where a token was removed (the loss's mask)
 */
public record TokenMask(Tensor keepIds, Tensor removed, int tokens, int kept) {

    /** Tokens kept of {@code tokens} at {@code ratio}: int(T·(1−ratio)) as Python computes it. */
    public static int keptTokens(int tokens, double ratio) {
        if (!(ratio >= 0 && ratio < 1)) {
            throw new IllegalArgumentException("mask ratio must be in [0, 1), got " + ratio);
        }
        int keep = (int) (tokens * (1 - ratio));
        if (keep < 1) {
            throw new IllegalArgumentException("mask ratio " + ratio + " keeps no token of " + tokens);
        }
        return keep;
    }

    /**
     * Draws the mask for {@code samples} samples from Philox (seed, stream), sample n's noise at counter offset
     * {@code offset + n·T}, so any backend drawing the same numbers gets the same mask. The mask is built on the
     * host and written to {@code backend}'s tensors in {@code scope}, one copy each.
     */
    public static TokenMask sample(Backend backend, MemoryScope scope, int samples, int tokens, double ratio,
                                   long seed, long stream, long offset) {
        int keep = keptTokens(tokens, ratio);
        int[] keepIds = new int[samples * keep];
        float[] removedFlags = new float[samples * tokens];
        Arrays.fill(removedFlags, 1f);
        float[] noise = new float[tokens];
        Integer[] order = new Integer[tokens];
        for (int n = 0; n < samples; n++) {
            Philox.fillUniform(seed, stream, offset + (long) n * tokens, noise);
            for (int t = 0; t < tokens; t++) {
                order[t] = t;
            }
            Arrays.sort(order, (a, b) -> noise[a] != noise[b] ? Float.compare(noise[a], noise[b]) : a - b);
            for (int j = 0; j < keep; j++) {
                keepIds[n * keep + j] = order[j];
                removedFlags[n * tokens + order[j]] = 0f;
            }
        }
        Tensor ids = Tensor.zeros(scope, DType.I32, samples, keep);
        Tensor removed = Tensor.zeros(scope, DType.F32, samples, tokens);
        backend.write(ids, keepIds);
        backend.write(removed, removedFlags);
        return new TokenMask(ids, removed, tokens, keep);
    }
}
