package io.microdit.tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * A dense, contiguous, row-major tensor whose bytes belong to a {@link MemoryScope}. Views made by
 * {@link #reshape} and {@link #rows} share the bytes and the scope. Every access checks the scope, so a tensor
 * used after its scope closed throws {@link IllegalStateException} naming the tensor and the scope.
 */
public final class Tensor {
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT;
    private static final ValueLayout.OfInt INT = ValueLayout.JAVA_INT;
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT;

    private final MemoryScope scope;
    private final DType dtype;
    private final int[] shape;
    private final long numel;
    private final MemorySegment segment;

    private Tensor(MemoryScope scope, DType dtype, int[] shape, MemorySegment segment) {
        this.scope = scope;
        this.dtype = dtype;
        this.shape = shape;
        this.numel = numel(shape);
        this.segment = segment;
    }

    /** A tensor of zeros owned by {@code scope}; throws {@link IllegalArgumentException} for a negative dimension. */
    public static Tensor zeros(MemoryScope scope, DType dtype, int... shape) {
        int[] copy = checkShape(shape);
        long bytes = numel(copy) * dtype.byteSize();
        return new Tensor(scope, dtype, copy, scope.allocate(bytes).asSlice(0, bytes));
    }

    /**
     * A tensor whose elements are unspecified until written: for an op's output that the op overwrites entirely
     * (see {@link MemoryScope#allocateUninitialized}).
     */
    public static Tensor empty(MemoryScope scope, DType dtype, int... shape) {
        int[] copy = checkShape(shape);
        long bytes = numel(copy) * dtype.byteSize();
        return new Tensor(scope, dtype, copy, scope.allocateUninitialized(bytes).asSlice(0, bytes));
    }

    /**
     * An F32 tensor holding a copy of {@code values} in row-major order; their count must match the shape. The scope's
     * memory must be host-accessible.
     */
    public static Tensor of(MemoryScope scope, float[] values, int... shape) {
        Tensor t = empty(scope, DType.F32, shape);
        if (values.length != t.numel) {
            throw new IllegalArgumentException("values: " + values.length + " floats for shape "
                    + Arrays.toString(shape) + " which holds " + t.numel);
        }
        MemorySegment.copy(values, 0, t.hostSegment(), FLOAT, 0, values.length);
        return t;
    }

    /**
     * An I32 tensor holding a copy of {@code values} in row-major order; their count must match the shape. The scope's
     * memory must be host-accessible.
     */
    public static Tensor ofInts(MemoryScope scope, int[] values, int... shape) {
        Tensor t = empty(scope, DType.I32, shape);
        if (values.length != t.numel) {
            throw new IllegalArgumentException("values: " + values.length + " ints for shape "
                    + Arrays.toString(shape) + " which holds " + t.numel);
        }
        MemorySegment.copy(values, 0, t.hostSegment(), INT, 0, values.length);
        return t;
    }

    private static int[] checkShape(int[] shape) {
        for (int d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " has a negative dimension");
            }
        }
        return shape.clone();
    }

    private static long numel(int[] shape) {
        long n = 1;
        for (int d : shape) {
            n = Math.multiplyExact(n, d);
        }
        return n;
    }

    /** The element type. */
    public DType dtype() {
        return dtype;
    }

    /** The device of the owning scope. */
    public Device device() {
        return scope.device();
    }

    /** The scope that owns the bytes; views share their source's. */
    public MemoryScope scope() {
        return scope;
    }

    /** A copy of the dimensions, outermost first (a scalar's is empty). */
    public int[] shape() {
        return shape.clone();
    }

    /** The number of dimensions: 0 for a scalar. */
    public int rank() {
        return shape.length;
    }

    /** Size of dimension {@code i}; negative {@code i} counts from the end. */
    public int dim(int i) {
        return shape[i < 0 ? shape.length + i : i];
    }

    /** The number of elements: the product of the dimensions (1 for a scalar). */
    public long numel() {
        return numel;
    }

    /** {@link #numel()} times the element size. */
    public long byteSize() {
        return numel * dtype.byteSize();
    }

    /** Product of all dimensions but the last: the number of rows when the tensor is read as a matrix. */
    public long rowCount() {
        return shape.length == 0 ? 1 : numel / Math.max(1, shape[shape.length - 1]);
    }

    /** The bytes, for kernels. Throws if the owning scope has closed. */
    public MemorySegment segment() {
        if (!scope.isOpen()) {
            throw new IllegalStateException("tensor " + describe() + " used after its memory scope '"
                    + scope.name() + "' was closed");
        }
        return segment;
    }

    /**
     * The bytes for reading or writing from Java. Throws for device memory Java cannot touch (a real GPU's): reading
     * a device pointer from the host would crash the JVM, so it is refused with a message instead.
     */
    private MemorySegment hostSegment() {
        MemorySegment segment = segment();
        if (!scope.hostAccessible()) {
            throw new IllegalStateException("tensor " + describe() + " lives in " + scope.device()
                    + " memory (scope '" + scope.name() + "'), which Java cannot read or write directly; copy it to"
                    + " or from a host tensor through the backend first");
        }
        return segment;
    }

    /** A view with another shape over the same elements. */
    public Tensor reshape(int... newShape) {
        int[] resolved = newShape.clone();
        int inferred = -1;
        long known = 1;
        for (int i = 0; i < resolved.length; i++) {
            if (resolved[i] == -1) {
                if (inferred >= 0) {
                    throw new IllegalArgumentException("reshape " + Arrays.toString(newShape) + ": more than one -1");
                }
                inferred = i;
            } else {
                known *= resolved[i];
            }
        }
        if (inferred >= 0 && known > 0) {
            resolved[inferred] = (int) (numel / known);
        }
        if (numel(checkShape(resolved)) != numel) {
            throw new IllegalArgumentException("cannot reshape " + describe() + " to " + Arrays.toString(newShape));
        }
        return new Tensor(scope, dtype, resolved, segment);
    }

    /** A view of {@code count} slices along the first dimension, starting at {@code start}. */
    public Tensor rows(int start, int count) {
        if (shape.length == 0 || start < 0 || count < 0 || start + count > shape[0]) {
            throw new IllegalArgumentException("rows(" + start + ", " + count + ") out of range for " + describe());
        }
        long slice = numel / Math.max(1, shape[0]) * dtype.byteSize();
        int[] s = shape.clone();
        s[0] = count;
        return new Tensor(scope, dtype, s, segment().asSlice(start * slice, count * slice));
    }

    /**
     * The element at a flat row-major index, converted to float from any dtype. Throws when the memory is not
     * host-accessible (a real GPU's).
     */
    public float getFloat(long index) {
        return switch (dtype) {
            case F32 -> hostSegment().getAtIndex(FLOAT, index);
            case BF16 -> DType.bf16ToFloat(hostSegment().getAtIndex(SHORT, index));
            case I32 -> hostSegment().getAtIndex(INT, index);
        };
    }

    /**
     * Writes the element at a flat row-major index, converted to this tensor's dtype (rounded to nearest even for BF16,
     * truncated towards zero for I32). Host-accessible memory only.
     */
    public void setFloat(long index, float value) {
        switch (dtype) {
            case F32 -> hostSegment().setAtIndex(FLOAT, index, value);
            case BF16 -> hostSegment().setAtIndex(SHORT, index, DType.floatToBf16(value));
            case I32 -> hostSegment().setAtIndex(INT, index, (int) value);
        }
    }

    /**
     * The element at a flat row-major index of an I32 tensor; throws {@link IllegalArgumentException} for another
     * dtype. Host-accessible memory only.
     */
    public int getInt(long index) {
        requireDType(DType.I32, "getInt");
        return hostSegment().getAtIndex(INT, index);
    }

    /**
     * Writes the element at a flat row-major index of an I32 tensor; throws {@link IllegalArgumentException} for
     * another dtype. Host-accessible memory only.
     */
    public void setInt(long index, int value) {
        requireDType(DType.I32, "setInt");
        hostSegment().setAtIndex(INT, index, value);
    }

    /** The elements as floats (converted from BF16 or I32 when needed). */
    public float[] toFloatArray() {
        float[] out = new float[Math.toIntExact(numel)];
        if (dtype == DType.F32) {
            MemorySegment.copy(hostSegment(), FLOAT, 0, out, 0, out.length);
        } else {
            for (int i = 0; i < out.length; i++) {
                out[i] = getFloat(i);
            }
        }
        return out;
    }

    /** The elements of an I32 tensor, copied out; throws {@link IllegalArgumentException} for another dtype. */
    public int[] toIntArray() {
        requireDType(DType.I32, "toIntArray");
        int[] out = new int[Math.toIntExact(numel)];
        MemorySegment.copy(hostSegment(), INT, 0, out, 0, out.length);
        return out;
    }

    /** Overwrites the elements from {@code values} (converted to this tensor's dtype). */
    public Tensor copyFrom(float[] values) {
        if (values.length != numel) {
            throw new IllegalArgumentException("copyFrom: " + values.length + " values for " + describe());
        }
        if (dtype == DType.F32) {
            MemorySegment.copy(values, 0, hostSegment(), FLOAT, 0, values.length);
        } else {
            for (int i = 0; i < values.length; i++) {
                setFloat(i, values[i]);
            }
        }
        return this;
    }

    /** Overwrites the elements of an I32 tensor from {@code values}. */
    public Tensor copyFrom(int[] values) {
        requireDType(DType.I32, "copyFrom(int[])");
        if (values.length != numel) {
            throw new IllegalArgumentException("copyFrom: " + values.length + " ints for " + describe());
        }
        MemorySegment.copy(values, 0, hostSegment(), INT, 0, values.length);
        return this;
    }

    /** Copies all bytes from a tensor of the same dtype and element count. */
    public Tensor copyFrom(Tensor source) {
        if (source.dtype != dtype || source.numel != numel) {
            throw new IllegalArgumentException("copyFrom: " + source.describe() + " into " + describe());
        }
        MemorySegment.copy(source.hostSegment(), 0, hostSegment(), 0, byteSize());
        return this;
    }

    /**
     * Sets every element to {@code value} (converted to the dtype) and returns this tensor. Host-accessible memory
     * only.
     */
    public Tensor fill(float value) {
        if (value == 0f) {
            hostSegment().fill((byte) 0);
        } else {
            for (long i = 0; i < numel; i++) {
                setFloat(i, value);
            }
        }
        return this;
    }

    /** The same values converted to {@code target}, in {@code scope}. */
    public Tensor to(DType target, MemoryScope scope) {
        Tensor out = empty(scope, target, shape);
        if (target == dtype) {
            return out.copyFrom(this);
        }
        for (long i = 0; i < numel; i++) {
            out.setFloat(i, getFloat(i));
        }
        return out;
    }

    /** Whether the two shapes are equal, dimension by dimension (dtypes are not compared). */
    public boolean sameShape(Tensor other) {
        return Arrays.equals(shape, other.shape);
    }

    private void requireDType(DType expected, String operation) {
        if (dtype != expected) {
            throw new IllegalArgumentException(operation + " needs a " + expected + " tensor, got " + describe());
        }
    }

    /** For messages: dtype and shape, e.g. {@code F32[2, 3]}. */
    public String describe() {
        return dtype + Arrays.toString(shape);
    }

    @Override
    public String toString() {
        return "Tensor" + describe();
    }
}
