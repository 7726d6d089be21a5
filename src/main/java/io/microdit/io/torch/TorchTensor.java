package io.microdit.io.torch;

import java.util.Arrays;

/**
 * A tensor as the pickle describes it ({@code torch._utils._rebuild_tensor_v2}): a view of {@code shape} with
 * {@code stride} (in elements) starting {@code offset} elements into storage {@code storageKey}, whose type and
 * element count come from the storage's persistent id. Its bytes are read only by {@link TorchFile#load}.
 */
public record TorchTensor(String storageKey, StorageType type, long storageNumel, long offset, int[] shape,
        long[] stride) {
    /** Copies {@code shape} and {@code stride}; {@link TorchFile} checks the view against its storage. */
    public TorchTensor {
        shape = shape.clone();
        stride = stride.clone();
    }

    /** A copy of the dimensions. */
    @Override
    public int[] shape() {
        return shape.clone();
    }

    /** A copy of the strides, in elements, one per dimension. */
    @Override
    public long[] stride() {
        return stride.clone();
    }

    /** The number of elements of the view (1 for a scalar), not of its storage. */
    public long numel() {
        long n = 1;
        for (int d : shape) {
            n *= d;
        }
        return n;
    }

    /** Whether the view is the row-major layout of its shape (dimensions of size 1 may have any stride). */
    public boolean contiguous() {
        long expected = 1;
        for (int i = shape.length - 1; i >= 0; i--) {
            if (shape[i] != 1 && stride[i] != expected) {
                return false;
            }
            expected *= shape[i];
        }
        return true;
    }

    /** For messages: storage type and shape, e.g. {@code FloatStorage[2, 3]}. */
    public String describe() {
        return type.className() + Arrays.toString(shape);
    }
}
