package io.microdit.distributed;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Path;

/**
 * Run by {@link DeviceCommunicatorTest} in a JVM of its own (its environment names the collectives' library):
 * opens the native library given as the argument directly (either build, with or without a GPU, whatever
 * -Dmicrodit.device says), calls {@code mdt_comm_unique_id} and prints its status and message.
 */
public final class CommLibraryMain {
    public static void main(String[] args) throws Throwable {
        SymbolLookup library = SymbolLookup.libraryLookup(Path.of(args[0]), Arena.global());
        Linker linker = Linker.nativeLinker();
        MethodHandle uniqueId = linker.downcallHandle(library.find("mdt_comm_unique_id").orElseThrow(),
                FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS));
        MethodHandle lastMessage = linker.downcallHandle(library.find("mdt_last_error_message").orElseThrow(),
                FunctionDescriptor.of(ValueLayout.ADDRESS));
        try (Arena arena = Arena.ofConfined()) {
            int status = (int) uniqueId.invokeExact(arena.allocate(DeviceCommunicator.UNIQUE_ID_BYTES));
            String message = ((MemorySegment) lastMessage.invokeExact()).reinterpret(1024).getString(0);
            System.out.println("status " + status + ": " + message);
        }
    }
}
