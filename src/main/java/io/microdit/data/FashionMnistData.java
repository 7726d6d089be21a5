package io.microdit.data;

import io.microdit.tensor.Tensor;

/**
 * Fashion-MNIST as diffusion training data: the padded images are the one-channel "latents" [1, 32, 32]; each
 * class's caption "a photo of a {class}" is embedded once by the {@link CaptionEncoder}.
 */
public final class FashionMnistData implements TrainingData {
    private final FashionMnist.Split split;
    private final float[][] classEmbeddings;
    private final CaptionEncoder encoder;

    /** Training data over {@code split}; the ten class captions are embedded here, once. */
    public FashionMnistData(FashionMnist.Split split, CaptionEncoder encoder) {
        this.split = split;
        this.encoder = encoder;
        this.classEmbeddings = new float[FashionMnist.CLASS_NAMES.size()][];
        for (int c = 0; c < classEmbeddings.length; c++) {
            classEmbeddings[c] = encoder.encode(caption(c));
        }
    }

    /** The caption of class {@code label}. */
    public static String caption(int label) {
        return "a photo of a " + FashionMnist.CLASS_NAMES.get(label);
    }

    /** The images and labels served (held, not copied). */
    public FashionMnist.Split split() {
        return split;
    }

    @Override
    public int size() {
        return split.count();
    }

    @Override
    public int[] latentShape() {
        return new int[] {1, FashionMnist.SIZE, FashionMnist.SIZE};
    }

    @Override
    public int[] captionShape() {
        return new int[] {encoder.length(), encoder.channels()};
    }

    @Override
    public void read(int[] indices, Tensor latents, Tensor captions) {
        int pixels = FashionMnist.SIZE * FashionMnist.SIZE;
        int captionSize = encoder.length() * encoder.channels();
        float[] images = split.images();
        float[] latentValues = new float[indices.length * pixels];
        float[] captionValues = new float[indices.length * captionSize];
        for (int b = 0; b < indices.length; b++) {
            System.arraycopy(images, indices[b] * pixels, latentValues, b * pixels, pixels);
            System.arraycopy(classEmbeddings[split.labels()[indices[b]]], 0, captionValues, b * captionSize,
                    captionSize);
        }
        latents.copyFrom(latentValues);
        captions.copyFrom(captionValues);
    }
}
