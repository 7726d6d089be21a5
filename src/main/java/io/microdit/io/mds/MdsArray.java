package io.microdit.io.mds;

import java.util.Arrays;

/**
 * The value of an {@code ndarray} column: a NumPy dtype name ({@code uint8} … {@code float64}), a shape whose
 * dimensions are all at least 1, and the elements in C order as little-endian bytes, as NumPy's {@code tobytes()}
 * gives them on the machines MDS files are written on.
 */
public record MdsArray(String dtype, long[] shape, byte[] values) {
    /**
     * Copies {@code shape} and {@code values}; throws {@link IllegalArgumentException} for an unknown dtype, a rank
     * outside 1 to {@code MAX_ARRAY_RANK}, a dimension below 1, or a byte count that does not match dtype and shape.
     */
    public MdsArray {
        int width = MdsEncoding.elementBytes(dtype);
        if (width < 0) {
            throw new IllegalArgumentException("ndarray dtype must be one of " + MdsEncoding.ARRAY_DTYPES.keySet()
                    + ", got '" + dtype + "'");
        }
        if (shape.length == 0 || shape.length > MdsEncoding.MAX_ARRAY_RANK) {
            throw new IllegalArgumentException("an ndarray has 1 to " + MdsEncoding.MAX_ARRAY_RANK + " axes, got "
                    + shape.length);
        }
        long count = 1;
        for (long d : shape) {
            if (d < 1) {
                throw new IllegalArgumentException("ndarray dimensions must be at least 1, got "
                        + Arrays.toString(shape));
            }
            count = count > Integer.MAX_VALUE || d > Integer.MAX_VALUE ? Long.MAX_VALUE : count * d;
        }
        if (count > Integer.MAX_VALUE || count * width != values.length) {
            throw new IllegalArgumentException("an ndarray of " + dtype + " " + Arrays.toString(shape) + " holds "
                    + count + " elements, not the " + values.length + " bytes given");
        }
        shape = shape.clone();
        values = values.clone();
    }

    /** A copy of the dimensions, outermost first. */
    @Override
    public long[] shape() {
        return shape.clone();
    }

    /** A copy of the elements' little-endian bytes in C order. */
    @Override
    public byte[] values() {
        return values.clone();
    }

    @Override
    public boolean equals(Object other) {
        return other instanceof MdsArray a && dtype.equals(a.dtype) && Arrays.equals(shape, a.shape)
                && Arrays.equals(values, a.values);
    }

    @Override
    public int hashCode() {
        return 31 * (31 * dtype.hashCode() + Arrays.hashCode(shape)) + Arrays.hashCode(values);
    }

    @Override
    public String toString() {
        return "MdsArray[" + dtype + " " + Arrays.toString(shape) + "]";
    }
}
