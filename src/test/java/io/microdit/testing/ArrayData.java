package io.microdit.testing;

import io.microdit.data.TrainingData;
import io.microdit.tensor.Tensor;
import java.util.Random;

/** Training data held in arrays: latents [count, C, H, W] and caption embeddings [count, L, Cc]. */
public record ArrayData(float[] latents, float[] captions, int count, int[] latentShape, int[] captionShape)
        implements TrainingData {
    /** {@code count} random latents (normal, σ 0.8) [channels, size, size], each with its own normal caption. */
    public static ArrayData random(int count, int channels, int size, int length, int captionChannels, long seed) {
        Random r = new Random(seed);
        float[] latents = new float[count * channels * size * size];
        float[] captions = new float[count * length * captionChannels];
        for (int i = 0; i < latents.length; i++) {
            latents[i] = (float) (0.8 * r.nextGaussian());
        }
        for (int i = 0; i < captions.length; i++) {
            captions[i] = (float) r.nextGaussian();
        }
        return new ArrayData(latents, captions, count, new int[] {channels, size, size},
                new int[] {length, captionChannels});
    }

    @Override
    public int size() {
        return count;
    }

    @Override
    public void read(int[] indices, Tensor latentsOut, Tensor captionsOut) {
        int l = latentShape[0] * latentShape[1] * latentShape[2], c = captionShape[0] * captionShape[1];
        float[] lo = new float[indices.length * l], co = new float[indices.length * c];
        for (int b = 0; b < indices.length; b++) {
            System.arraycopy(latents, indices[b] * l, lo, b * l, l);
            System.arraycopy(captions, indices[b] * c, co, b * c, c);
        }
        latentsOut.copyFrom(lo);
        captionsOut.copyFrom(co);
    }
}
