package io.microdit.io.torch;

import java.util.Arrays;
import java.util.Optional;

/**
 * The storage classes a tensor state dict may name ({@code torch.FloatStorage}, ...), with their element size. Only
 * these names are accepted as the type in a storage's persistent id; none of them is ever called.
 */
public enum StorageType {
    FLOAT("FloatStorage", 4),
    HALF("HalfStorage", 2),
    BFLOAT16("BFloat16Storage", 2),
    LONG("LongStorage", 8),
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

    public int elementSize() {
        return elementSize;
    }

    static Optional<StorageType> byClassName(String name) {
        return Arrays.stream(values()).filter(t -> t.className.equals(name)).findFirst();
    }
}
