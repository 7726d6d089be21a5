package io.microdit.tensor;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/**
 * The C library's heap, where {@link HostAllocator} reserves its blocks: unlike {@link java.lang.foreign.Arena#allocate},
 * which always zero-fills, it leaves memory as it is, so an op that overwrites its whole output pays no extra pass.
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

    /**
     * The address of {@code bytes} (at least 1) uninitialised bytes aligned to {@code alignment}, or 0 when the C heap
     * has none: the caller may give cached blocks back and try again.
     */
    static long allocate(long bytes, long alignment) {
        long size = Math.max(alignment, (bytes + alignment - 1) / alignment * alignment); // a multiple, as C requires
        try {
            return ((MemorySegment) ALIGNED_ALLOC.invokeExact(alignment, size)).address();
        } catch (Throwable e) {
            throw new IllegalStateException("aligned_alloc failed", e);
        }
    }

    static void free(long address) {
        try {
            FREE.invokeExact(MemorySegment.ofAddress(address));
        } catch (Throwable e) {
            throw new IllegalStateException("free failed", e);
        }
    }
}
