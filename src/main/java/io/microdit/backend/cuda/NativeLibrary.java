package io.microdit.backend.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Chooses and loads the native library once per JVM: {@code libmicrodit_cuda.so} when it exists and sees a CUDA
 * device, else {@code libmicrodit_emu.so} (the same kernels on the host emulator). {@code -Dmicrodit.device=emu}
 * forces the emulator, {@code -Dmicrodit.device=cuda} the GPU build. The libraries are looked for in
 * {@code -Dmicrodit.native.dir}, else in {@code native/} next to the engine's classes or jar (the build writes
 * {@code target/native/}). Both libraries export the same symbols; each is opened locally and linked with
 * -Bsymbolic, so probing the CUDA build and then using the emulator cannot mix them.
 */
final class NativeLibrary {
    static final String CUDA_LIBRARY = "libmicrodit_cuda.so";
    static final String EMULATOR_LIBRARY = "libmicrodit_emu.so";

    private record Loaded(Path path, SymbolLookup lookup) {
    }

    private static final Loaded LOADED = load();

    private NativeLibrary() {
    }

    static SymbolLookup lookup() {
        return LOADED.lookup();
    }

    static Path path() {
        return LOADED.path();
    }

    /** Whether the kernels run on the host emulator, whose "device" memory is host memory. */
    static boolean isEmulator() {
        return LOADED.path().getFileName().toString().equals(EMULATOR_LIBRARY);
    }

    private static Loaded load() {
        String wanted = System.getProperty("microdit.device", "auto");
        if (!wanted.equals("auto") && !wanted.equals("cuda") && !wanted.equals("emu")) {
            throw new IllegalStateException("-Dmicrodit.device must be auto, cuda or emu, got '" + wanted + "'");
        }
        Path directory = directory();
        Path cuda = directory.resolve(CUDA_LIBRARY), emulator = directory.resolve(EMULATOR_LIBRARY);
        if (wanted.equals("cuda") && !Files.isRegularFile(cuda)) {
            throw new IllegalStateException("-Dmicrodit.device=cuda but " + cuda + " does not exist: build it with "
                    + "'make -C native cuda' (needs nvcc) or set -Dmicrodit.native.dir");
        }
        if (!wanted.equals("emu") && Files.isRegularFile(cuda)) {
            SymbolLookup lookup = SymbolLookup.libraryLookup(cuda, Arena.global());
            if (wanted.equals("cuda") || deviceCount(lookup) > 0) {
                return new Loaded(cuda, lookup);
            }
        }
        if (!Files.isRegularFile(emulator)) {
            throw new IllegalStateException("no microdit native library: " + emulator + " does not exist. Build it "
                    + "with 'src/main/scripts/mvn25 package' or 'make -C native emu' (needs make and g++), or point "
                    + "-Dmicrodit.native.dir at the folder that holds it");
        }
        return new Loaded(emulator, SymbolLookup.libraryLookup(emulator, Arena.global()));
    }

    /** Devices the CUDA build sees; 0 when there is no driver or no device (the call reports, never aborts). */
    private static int deviceCount(SymbolLookup lookup) {
        MemorySegment symbol = lookup.find("mdt_device_count").orElseThrow(() -> new UnsatisfiedLinkError(
                CUDA_LIBRARY + " has no mdt_device_count"));
        MethodHandle count = Linker.nativeLinker().downcallHandle(symbol,
                FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS));
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment devices = arena.allocate(ValueLayout.JAVA_INT);
            int status = (int) count.invokeExact(devices);
            return status == 0 ? devices.get(ValueLayout.JAVA_INT, 0) : 0;
        } catch (Throwable error) {
            throw new AssertionError("mdt_device_count threw", error);
        }
    }

    private static Path directory() {
        String configured = System.getProperty("microdit.native.dir");
        if (configured != null) {
            return Path.of(configured);
        }
        try {
            // target/classes or target/microdit.jar: the build puts the libraries in target/native.
            Path code = Path.of(NativeLibrary.class.getProtectionDomain().getCodeSource().getLocation().toURI());
            return code.getParent().resolve("native");
        } catch (URISyntaxException | SecurityException | NullPointerException error) {
            return Path.of("target", "native");
        }
    }
}
