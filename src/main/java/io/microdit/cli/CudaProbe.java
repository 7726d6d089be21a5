package io.microdit.cli;

import io.microdit.backend.cuda.CudaRuntime;
import io.microdit.backend.cuda.DeviceChoice;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/**
 * What the CUDA backend would run on, through the C ABI: the library chosen for the asked device and why, the
 * device (name, SMs, memory), and the driver and runtime versions the CUDA build finds; or why it cannot run.
 * Never an exception, also when no native library is built.
 */
final class CudaProbe {
    private static final double GIB = 1024.0 * 1024 * 1024;

    private CudaProbe() {
    }

    /** Three lines, "cuda", "library" and "versions", for {@code device} as {@code --device} takes it. */
    static String describe(String device) {
        String lines;
        try {
            DeviceChoice choice = CudaRuntime.select(device);
            lines = "cuda     " + (choice.emulator() ? "host emulator" : deviceLine()) + "\n"
                    + "library  " + choice.library() + ": " + choice.reason();
        } catch (LinkageError | RuntimeException error) {
            lines = "cuda     " + unavailable(error) + "\n"
                    + "library  none";
        }
        return lines + "\n" + "versions " + versions();
    }

    /** Why the CUDA backend cannot run: the decision's or the loader's message, wrapped or not. */
    static String unavailable(Throwable error) {
        Throwable cause = error instanceof ExceptionInInitializerError && error.getCause() != null
                ? error.getCause() : error;
        String message = cause.getMessage() == null ? cause.getClass().getSimpleName() : cause.getMessage();
        return "unavailable: " + message;
    }

    private static String deviceLine() {
        int devices = CudaRuntime.deviceCount();
        long[] memory = CudaRuntime.memory(0);
        return String.format(Locale.ROOT, "%s, %d SMs, %.1f GiB (%.1f GiB free)%s", CudaRuntime.deviceName(0),
                CudaRuntime.smCount(0), memory[1] / GIB, memory[0] / GIB,
                devices > 1 ? ", device 0 of " + devices : "");
    }

    /** The CUDA build's view of the driver, whichever library runs (the emulator's versions would say nothing). */
    private static String versions() {
        try {
            DeviceChoice.Found found = CudaRuntime.probeCudaLibrary();
            if (!found.exists()) {
                return "libmicrodit_cuda.so not built" + (driverPresent()
                        ? "; an NVIDIA driver is present (/proc/driver/nvidia/version)" : "; no NVIDIA driver");
            }
            if (found.loadError() != null) {
                return "libmicrodit_cuda.so does not load: " + found.loadError();
            }
            return found.versions() + " (libmicrodit_cuda.so; " + found.devices() + " CUDA device"
                    + (found.devices() == 1 ? "" : "s") + ")";
        } catch (LinkageError | RuntimeException error) {
            return unavailable(error);
        }
    }

    private static boolean driverPresent() {
        return Files.exists(Path.of("/proc/driver/nvidia/version"));
    }
}
