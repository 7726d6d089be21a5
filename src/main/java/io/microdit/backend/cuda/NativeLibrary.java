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
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Loads the native library once per JVM, as {@link DeviceChoice} decides: {@code libmicrodit_cuda.so} (the GPU),
 * {@code libmicrodit_emu.so} (the same kernels on the host emulator) or {@code libmicrodit_emu_checked.so} (the
 * emulator with bounds, race and memory-access checks), an emulator only when asked for by name ({@code --device
 * emu|emu-checked}, {@code -Dmicrodit.device=emu|emu-checked}). Unasked, {@code -Dmicrodit.device} unset means the GPU,
 * and a GPU that cannot be used is an error. A library is looked for in {@code -Dmicrodit.native.dir} when that is
 * set (and only there), else in {@code native/} next to the engine's classes or jar (the build writes
 * {@code target/native/}), else inside the jar ({@link #RESOURCE_FOLDER}), from where it is unpacked once into a
 * per-user cache ({@link NativeLibraryCache}) so that a jar from a Maven repository works on its own. All export
 * the same symbols; each is opened locally and linked with -Bsymbolic, so probing the CUDA build while the
 * emulator runs cannot mix them.
 */
final class NativeLibrary {
    static final String CUDA_LIBRARY = "libmicrodit_cuda.so";
    static final String EMULATOR_LIBRARY = "libmicrodit_emu.so";
    static final String CHECKED_EMULATOR_LIBRARY = "libmicrodit_emu_checked.so";
    /** Where the build puts the libraries inside the jar (pom.xml, copy-native-libraries): one folder per platform. */
    static final String RESOURCE_FOLDER = "/io/microdit/native/" + platform() + "/";

    private record Loaded(DeviceChoice choice, SymbolLookup lookup) {
    }

    private record Probe(DeviceChoice.Found found, SymbolLookup lookup) {
    }

    /** Set once, under the class's lock; read without it on the hot path (every allocation asks isEmulator). */
    private static volatile Loaded loaded;

    /** Libraries this JVM has unpacked from the jar (empty: the jar has none by that name). */
    private static final Map<String, Optional<Path>> UNPACKED = new ConcurrentHashMap<>();

    private NativeLibrary() {
    }

    static SymbolLookup lookup() {
        return loaded().lookup();
    }

    static Path path() {
        return loaded().choice().library();
    }

    /** Whether the kernels run on the checked host emulator (bounds, races and the performance model). */
    static boolean isCheckedEmulator() {
        return loaded().choice().library().getFileName().toString().equals(CHECKED_EMULATOR_LIBRARY);
    }

    /** Whether the kernels run on the host emulator, whose "device" memory is host memory. */
    static boolean isEmulator() {
        return loaded().choice().emulator();
    }

    /** The library this process runs on and why, choosing it from {@code -Dmicrodit.device} on first use. */
    static DeviceChoice choice() {
        return loaded().choice();
    }

    /**
     * Chooses the library for {@code device} ({@code cuda} or {@code emu}; null: {@code -Dmicrodit.device}, else
     * {@code cuda}) and loads it, or throws IllegalStateException saying why it cannot. One process runs one
     * library: asking for the other one once a library is loaded is an error too, after the decision (so the
     * message says first whether the other one would be usable at all).
     */
    static synchronized DeviceChoice select(String device) {
        DeviceChoice.Requested requested;
        String askedBy;
        if (device != null) {
            requested = DeviceChoice.Requested.parse(device, "--device");
            askedBy = "--device " + device;
        } else {
            String property = System.getProperty("microdit.device");
            if (property == null) {
                requested = DeviceChoice.Requested.CUDA;
                askedBy = "--backend cuda (the GPU: neither --device nor -Dmicrodit.device asks for the emulator)";
            } else {
                requested = DeviceChoice.Requested.parse(property, "-Dmicrodit.device");
                askedBy = "-Dmicrodit.device=" + property;
            }
        }
        Loaded current = loaded;
        // Only the library asked for is located: locating may unpack it from the jar.
        Path cuda = requested.emulator() ? null : locate(CUDA_LIBRARY);
        Path emulator = !requested.emulator() ? null : locate(
                requested == DeviceChoice.Requested.EMU_CHECKED ? CHECKED_EMULATOR_LIBRARY : EMULATOR_LIBRARY);
        if (current != null && (requested.emulator() ? current.choice().library().equals(emulator)
                : !current.choice().emulator())) {
            return current.choice();
        }
        Probe probe = requested == DeviceChoice.Requested.CUDA ? probe(cuda) : null;
        DeviceChoice choice = DeviceChoice.decide(requested, askedBy, cuda, probe == null ? null : probe.found(),
                emulator, emulator != null && Files.isRegularFile(emulator));
        if (current != null) {
            throw new IllegalStateException(askedBy + ": this process already runs on "
                    + current.choice().library() + " (" + current.choice().reason() + "); one process loads one "
                    + "native library, so start another for " + choice.library().getFileName());
        }
        SymbolLookup lookup = probe != null ? probe.lookup() : SymbolLookup.libraryLookup(choice.library(),
                Arena.global());
        loaded = new Loaded(choice, lookup);
        return choice;
    }

    /** What the CUDA build reports on this machine, for {@code microdit info}; loads it, never throws. */
    static DeviceChoice.Found probeCuda() {
        Path cuda;
        try {
            cuda = locate(CUDA_LIBRARY);
        } catch (IllegalStateException unwritableCache) {
            return DeviceChoice.Found.unloadable(unwritableCache.getMessage());
        }
        return probe(cuda).found();
    }

    private static Loaded loaded() {
        Loaded current = loaded;
        if (current == null) {
            select(null);
            current = loaded;
        }
        return current;
    }

    /**
     * Loads the CUDA build and asks it for the driver's and runtime's versions and the devices. The library
     * stays loaded (global arena): a statically linked CUDA runtime registers exit handlers that must not
     * outlive an unloaded library.
     */
    private static Probe probe(Path cuda) {
        if (!Files.isRegularFile(cuda)) {
            return new Probe(DeviceChoice.Found.missing(), null);
        }
        SymbolLookup lookup;
        try {
            lookup = SymbolLookup.libraryLookup(cuda, Arena.global());
        } catch (IllegalArgumentException error) {
            return new Probe(DeviceChoice.Found.unloadable(error.getMessage()), null);
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment value = arena.allocate(ValueLayout.JAVA_INT);
            int driver = (int) intOut(lookup, "mdt_driver_version").invokeExact(value) == 0
                    ? value.get(ValueLayout.JAVA_INT, 0) : 0;
            int runtime = (int) intOut(lookup, "mdt_runtime_version").invokeExact(value) == 0
                    ? value.get(ValueLayout.JAVA_INT, 0) : 0;
            value.set(ValueLayout.JAVA_INT, 0, 0);
            int status = (int) intOut(lookup, "mdt_device_count").invokeExact(value);
            int devices = value.get(ValueLayout.JAVA_INT, 0);
            String message = "";
            if (status != 0) {
                MethodHandle name = Linker.nativeLinker().downcallHandle(symbol(lookup, "mdt_error_string"),
                        FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.JAVA_INT));
                MethodHandle last = Linker.nativeLinker().downcallHandle(symbol(lookup, "mdt_last_error_message"),
                        FunctionDescriptor.of(ValueLayout.ADDRESS));
                message = ((MemorySegment) last.invokeExact()).reinterpret(1024).getString(0) + "; "
                        + ((MemorySegment) name.invokeExact(status)).reinterpret(256).getString(0) + ", status "
                        + status;
            }
            return new Probe(new DeviceChoice.Found(true, null, status, message, devices, driver, runtime), lookup);
        } catch (UnsatisfiedLinkError error) {
            return new Probe(DeviceChoice.Found.unloadable(error.getMessage()), null);
        } catch (Throwable error) {
            throw new AssertionError("probing " + cuda + " threw", error);
        }
    }

    /** A function of the probed library that writes one int: {@code int f(int *)}. */
    private static MethodHandle intOut(SymbolLookup lookup, String name) {
        return Linker.nativeLinker().downcallHandle(symbol(lookup, name),
                FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS));
    }

    private static MemorySegment symbol(SymbolLookup lookup, String name) {
        return lookup.find(name).orElseThrow(() -> new UnsatisfiedLinkError(CUDA_LIBRARY + " has no " + name
                + ": it was built from an older microdit.h"));
    }

    /**
     * The file to load for library {@code name}: in {@code -Dmicrodit.native.dir} if set, else beside the code, else
     * unpacked from the jar into the cache. When none has it, the path beside the code, which the caller reports as
     * missing. Unpacking happens once per JVM and library, and only for the libraries a process asks for.
     */
    private static Path locate(String name) {
        String configured = System.getProperty("microdit.native.dir");
        if (configured != null) {
            return Path.of(configured).resolve(name);
        }
        Path besideCode = besideCode().resolve(name);
        if (Files.isRegularFile(besideCode)) {
            return besideCode;
        }
        return UNPACKED.computeIfAbsent(name, NativeLibrary::unpack).orElse(besideCode);
    }

    private static Optional<Path> unpack(String name) {
        String resource = RESOURCE_FOLDER + name;
        if (NativeLibrary.class.getResource(resource) == null) {
            return Optional.empty();
        }
        return Optional.of(NativeLibraryCache.unpack(name, () -> NativeLibrary.class.getResourceAsStream(resource),
                NativeLibraryCache.defaultRoot()));
    }

    private static Path besideCode() {
        try {
            // target/classes or target/microdit.jar: the build puts the libraries in target/native.
            Path code = Path.of(NativeLibrary.class.getProtectionDomain().getCodeSource().getLocation().toURI());
            return code.getParent().resolve("native");
        } catch (URISyntaxException | SecurityException | NullPointerException error) {
            return Path.of("target", "native");
        }
    }

    /** The platform folder's name, as the build names it: {@code linux-x86_64}, {@code linux-aarch64}, ... */
    private static String platform() {
        String os = System.getProperty("os.name").toLowerCase(Locale.ROOT).replaceAll("\\s+", "");
        String arch = System.getProperty("os.arch");
        return os + "-" + switch (arch) {
            case "amd64", "x86_64" -> "x86_64";
            case "arm64", "aarch64" -> "aarch64";
            default -> arch;
        };
    }
}
