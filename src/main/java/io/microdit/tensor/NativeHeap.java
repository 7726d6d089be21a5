package io.microdit.tensor;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/**
 * The C library's heap, for host memory that need not be zeroed: {@link java.lang.foreign.Arena#allocate} always
 * zero-fills, which for a training step's activations (hundreds of MB, each overwritten by the op that produces
 * it) costs a full extra pass over memory.
 */
final class NativeHeap {
    private static final Linker LINKER = Linker.nativeLinker();
    private static final MethodHandle ALIGNED_ALLOC = LINKER.downcallHandle(
            LINKER.defaultLookup().find("aligned_alloc").orElseThrow(),
            FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG));
    private static final MethodHandle FREE = LINKER.downcallHandle(
            LINKER.defaultLookup().find("free").orElseThrow(), FunctionDescriptor.ofVoid(ValueLayout.ADDRESS));

    private NativeHeap() {
    }

    /** The address of {@code bytes} (at least 1) uninitialised bytes aligned to {@code alignment}. */
    static long allocate(long bytes, long alignment) {
        long size = Math.max(alignment, (bytes + alignment - 1) / alignment * alignment); // a multiple, as C requires
        MemorySegment block;
        try {
            block = (MemorySegment) ALIGNED_ALLOC.invokeExact(alignment, size);
        } catch (Throwable e) {
            throw new IllegalStateException("aligned_alloc failed", e);
        }
        if (block.address() == 0) {
            throw new OutOfMemoryError("aligned_alloc(" + alignment + ", " + size + ") returned NULL: host memory "
                    + "exhausted");
        }
        return block.address();
    }

    static void free(long address) {
        try {
            FREE.invokeExact(MemorySegment.ofAddress(address));
        } catch (Throwable e) {
            throw new IllegalStateException("free failed", e);
        }
    }
}
