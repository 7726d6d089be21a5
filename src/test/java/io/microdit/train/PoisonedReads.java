package io.microdit.train;

import io.microdit.data.TrainingData;
import io.microdit.tensor.Tensor;
import java.util.Random;
import java.util.Set;

/**
 * Training data whose listed reads (counted from 1: with one micro-batch per step, read k is step k's batch) come
 * back with one latent value, at a seeded random place, replaced by NaN: a corrupt sample as a real data set may
 * hold one.
 */
record PoisonedReads(TrainingData data, Set<Integer> poisoned, Random random, int[] reads) implements ForwardingData {
    PoisonedReads(TrainingData data, Set<Integer> poisoned, long seed) {
        this(data, poisoned, new Random(seed), new int[1]);
    }

    @Override
    public void read(int[] indices, Tensor latents, Tensor captions) {
        data.read(indices, latents, captions);
        if (poisoned.contains(++reads[0])) {
            float[] values = latents.toFloatArray();
            values[random.nextInt(values.length)] = Float.NaN;
            latents.copyFrom(values);
        }
    }
}
