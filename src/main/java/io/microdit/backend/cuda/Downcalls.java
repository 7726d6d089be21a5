package io.microdit.backend.cuda;

import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

/**
 * Resolves the FFM bindings of {@code native/include/microdit.h}, which are split by the header's op families
 * ({@link RuntimeBindings}, {@link ElementwiseBindings}, {@link NormBindings}, {@link TokenBindings},
 * {@link OptimizerBindings}, {@link DiffusionBindings}, {@link GemmBindings}, {@link AttentionBindings},
 * {@link CommunicationBindings}). Each has jextract's shape: one static method per C function over a
 * {@link MethodHandle} resolved once, when its class initialises, by {@link #handle} from the library
 * {@link NativeLibrary} chose (the CUDA build or the host emulator) against {@link MicroditAbi}'s descriptors. Methods
 * return the C status as it is; {@link CudaRuntime#check} turns a failing one into an exception.
 */
final class Downcalls {
    static {
        // A library built from another microdit.h fails at its first native call, whichever family that is, rather
        // than at the first call of a family whose symbol it lacks (mid-run); this class initialises when the first
        // family resolves its handles.
        MicroditAbi.FUNCTIONS.keySet().forEach(Downcalls::symbol);
    }

    private Downcalls() {
    }

    /** The downcall handle of {@code name}, one of {@link MicroditAbi#FUNCTIONS}. */
    static MethodHandle handle(String name) {
        return Linker.nativeLinker().downcallHandle(symbol(name), MicroditAbi.FUNCTIONS.get(name));
    }

    private static MemorySegment symbol(String name) {
        return NativeLibrary.lookup().find(name).orElseThrow(() -> new UnsatisfiedLinkError(
                "microdit native library " + NativeLibrary.path() + " has no symbol " + name
                        + ": it was built from another microdit.h; rebuild it (make -C native)"));
    }
}
