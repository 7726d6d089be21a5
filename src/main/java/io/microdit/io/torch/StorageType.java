package io.microdit.io.torch;

import java.util.Arrays;
import java.util.Optional;

/**
 * The storage classes a tensor state dict may name ({@code torch.FloatStorage}, ...), with their element size. Only
 * these names are accepted as the type in a storage's persistent id; none of them is ever called.
 */
public enum StorageType {
    /** float32 ({@code torch.FloatStorage}). */
    FLOAT("FloatStorage", 4),
    /** IEEE float16 ({@code torch.HalfStorage}), loaded as F32 (exactly). */
    HALF("HalfStorage", 2),
    /** bfloat16 ({@code torch.BFloat16Storage}). */
    BFLOAT16("BFloat16Storage", 2),
    /** int64 ({@code torch.LongStorage}), loaded as I32 when every value fits. */
    LONG("LongStorage", 8),
    /** int32 ({@code torch.IntStorage}). */
    INT("IntStorage", 4);

    private final String className;
    private final int elementSize;

    StorageType(String className, int elementSize) {
        this.className = className;
        this.elementSize = elementSize;
    }

    /** The class name in module {@code torch}, as the pickle's GLOBAL names it. */
    public String className() {
        return className;
    }

    /** Bytes per element in the storage's data file. */
    public int elementSize() {
        return elementSize;
    }

    static Optional<StorageType> byClassName(String name) {
        return Arrays.stream(values()).filter(t -> t.className.equals(name)).findFirst();
    }
}
