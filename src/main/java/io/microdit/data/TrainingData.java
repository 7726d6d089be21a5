package io.microdit.data;

import io.microdit.tensor.Tensor;

/** A training set of latents with caption embeddings, read by index into caller-allocated tensors. */
public interface TrainingData {
    /** Number of samples. */
    int size();

    /** Latent shape of one sample [C, H, W]. */
    int[] latentShape();

    /** Caption embedding shape of one sample [L, Cc]. */
    int[] captionShape();

    /**
     * Copies samples {@code indices} into {@code latents} [B, C, H, W] and {@code captions} [B, L, Cc], host tensors
     * (the trainer uploads them to its backend).
     */
    void read(int[] indices, Tensor latents, Tensor captions);
}
