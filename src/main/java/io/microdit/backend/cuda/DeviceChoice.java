package io.microdit.backend.cuda;

import java.nio.file.Path;

/**
 * Which native library the CUDA backend runs on, and why. The decision is a pure function of what was asked for
 * and what the CUDA build reported on this machine, so that each case (no library, no driver, a driver too old
 * for the runtime linked in, no device, a device, the emulator asked for) is tested with injected statuses. The
 * host emulator is chosen only when asked for by name; asking for the GPU without a usable one is an error that
 * says what was found and what is needed, never a quiet switch to emulator speed.
 *
 * @param library the library to load
 * @param emulator whether it is the host emulator
 * @param reason why it was chosen, for {@code microdit info} and the first line of a training log
 */
public record DeviceChoice(Path library, boolean emulator, String reason) {
    /** How to get the emulator, appended to every refusal so that the way out is in the message. */
    static final String EMULATOR_HINT = "run on the host emulator with --device emu (slow; for tests and planning)";

    /**
     * The devices a user can ask for: the GPU build, the host emulator, or the checked host emulator (the same
     * kernels instrumented: out-of-bounds accesses and races fail the launch, and it models bank conflicts and
     * coalescing; several times slower than {@code emu}).
     */
    public enum Requested {
        /** The CUDA build of the kernels on a GPU; an error without a usable GPU, never a fallback. */
        CUDA,
        /** The host emulator: the same kernels on CPU threads, for tests and planning. */
        EMU,
        /** The checked emulator: also reports accesses outside live allocations and races, at a cost in speed. */
        EMU_CHECKED;

        /**
         * {@code cuda}, {@code emu} or {@code emu-checked}, as given to {@code --device} or {@code -Dmicrodit.device}
         * ({@code source}).
         */
        public static Requested parse(String name, String source) {
            return switch (name) {
                case "cuda" -> CUDA;
                case "emu" -> EMU;
                case "emu-checked" -> EMU_CHECKED;
                default -> throw new IllegalArgumentException(source + " must be cuda, emu or emu-checked, got '"
                        + name + "' (the host emulator runs only when asked for by name)");
            };
        }

        /** Whether this is one of the host emulator's builds. */
        public boolean emulator() {
            return this != CUDA;
        }
    }

    /**
     * What the CUDA build reported when it was probed: whether its file exists and loads, the status of
     * {@code mdt_device_count} with its message, the device count, and the driver and runtime versions in CUDA's
     * integer format (13000 = 13.0; the driver's is 0 when no NVIDIA driver is installed).
     */
    public record Found(boolean exists, String loadError, int countStatus, String countMessage, int devices,
            int driverVersion, int runtimeVersion) {
        static Found missing() {
            return new Found(false, null, CudaRuntime.ERROR_NO_DEVICE, "", 0, 0, 0);
        }

        static Found unloadable(String loadError) {
            return new Found(true, loadError, CudaRuntime.ERROR_NO_DEVICE, "", 0, 0, 0);
        }

        /** The versions as people read them: "driver CUDA 12.4, runtime CUDA 13.0". */
        public String versions() {
            return "driver " + (driverVersion == 0 ? "none" : "CUDA " + cudaVersion(driverVersion))
                    + ", runtime CUDA " + cudaVersion(runtimeVersion);
        }
    }

    /**
     * The library for {@code requested} (asked for as {@code askedBy}, e.g. "--device emu"), or an
     * IllegalStateException whose message names what was found and what is needed.
     */
    static DeviceChoice decide(Requested requested, String askedBy, Path cudaLibrary, Found cuda,
            Path emulatorLibrary, boolean emulatorExists) {
        return requested.emulator() ? emulator(askedBy, emulatorLibrary, emulatorExists)
                : gpu(askedBy, cudaLibrary, cuda);
    }

    private static DeviceChoice emulator(String askedBy, Path library, boolean exists) {
        if (!exists) {
            throw new IllegalStateException("no microdit native library: " + library + " does not exist. Build it "
                    + "with 'src/main/scripts/mvn25 package' or 'make -C native emu' (needs make and g++), or point "
                    + "-Dmicrodit.native.dir at the folder that holds it");
        }
        return new DeviceChoice(library, true, "the host emulator, asked for by name (" + askedBy
                + "): kernels run on CPU threads, slow; for tests and planning");
    }

    private static DeviceChoice gpu(String askedBy, Path library, Found found) {
        String name = library.getFileName().toString();
        if (!found.exists()) {
            throw new IllegalStateException(askedBy + " needs " + name + ", and " + library + " does not exist: "
                    + "build it with 'make -C native cuda' (needs nvcc 13 and an NVIDIA driver to run), or point "
                    + "-Dmicrodit.native.dir at the folder that holds it; or " + EMULATOR_HINT + ".");
        }
        if (found.loadError() != null) {
            throw new IllegalStateException(askedBy + ": " + library + " does not load (" + found.loadError()
                    + "); rebuild it with 'make -C native cuda', or " + EMULATOR_HINT + ".");
        }
        String runtime = cudaVersion(found.runtimeVersion());
        int generation = found.runtimeVersion() / 1000;
        String driver = "driver of the CUDA " + generation + " generation" + minimumDriver(generation);
        String detail = found.countMessage().isEmpty() ? "" : " (" + found.countMessage() + ")";
        if (found.countStatus() == CudaRuntime.SUCCESS && found.devices() > 0) {
            return new DeviceChoice(library, false, askedBy + ": " + found.devices() + " CUDA device"
                    + (found.devices() == 1 ? "" : "s") + ", " + found.versions());
        }
        if (found.driverVersion() == 0) {
            throw new IllegalStateException(askedBy + ": " + name + " was built with CUDA " + runtime + " and needs "
                    + "an NVIDIA GPU with a " + driver + "; this machine has no NVIDIA driver" + detail
                    + ". Install the driver on a machine with a GPU, or " + EMULATOR_HINT + ".");
        }
        if (found.countStatus() == CudaRuntime.ERROR_DRIVER_TOO_OLD) {
            throw new IllegalStateException(askedBy + ": " + name + " was built with CUDA " + runtime + " and needs "
                    + "an NVIDIA " + driver + "; this machine's driver supports CUDA " + cudaVersion(found.driverVersion()) + detail
                    + ". Update the driver, or " + EMULATOR_HINT + ".");
        }
        if (found.countStatus() == CudaRuntime.SUCCESS || found.countStatus() == CudaRuntime.ERROR_NO_DEVICE) {
            throw new IllegalStateException(askedBy + ": the NVIDIA driver (CUDA " + cudaVersion(found.driverVersion())
                    + ") sees no CUDA device" + detail + ". Check nvidia-smi and CUDA_VISIBLE_DEVICES, or "
                    + EMULATOR_HINT + ".");
        }
        throw new IllegalStateException(askedBy + ": " + name + " cannot count the CUDA devices" + detail + "; "
                + found.versions() + ". Check nvidia-smi, or " + EMULATOR_HINT + ".");
    }

    /** "13.0" for 13000, as CUDA writes its versions. */
    static String cudaVersion(int version) {
        return version / 1000 + "." + version % 1000 / 10;
    }

    /** The first Linux driver branch of a CUDA generation (NVIDIA's CUDA compatibility table), where known. */
    private static String minimumDriver(int generation) {
        return switch (generation) {
            case 13 -> " (580 or newer)";
            case 12 -> " (525 or newer)";
            case 11 -> " (450 or newer)";
            default -> "";
        };
    }
}
