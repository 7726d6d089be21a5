package io.microdit.train;

import io.microdit.data.TrainingData;
import io.microdit.tensor.Tensor;

/** Test data that answers everything it does not override from {@link #data()}, the data it wraps. */
interface ForwardingData extends TrainingData {
    /** The wrapped data. */
    TrainingData data();

    @Override
    default int size() {
        return data().size();
    }

    @Override
    default int[] latentShape() {
        return data().latentShape();
    }

    @Override
    default int[] captionShape() {
        return data().captionShape();
    }

    @Override
    default void read(int[] indices, Tensor latents, Tensor captions) {
        data().read(indices, latents, captions);
    }
}
