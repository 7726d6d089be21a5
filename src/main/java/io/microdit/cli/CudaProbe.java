package io.microdit.cli;

import io.microdit.backend.cuda.CudaRuntime;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/**
 * What the CUDA backend would bind, through the C ABI: the device (name, SMs, memory) of the CUDA build, or the
 * host emulator, or no device; never an exception, also when no native library is built.
 */
final class CudaProbe {
    private static final double GIB = 1024.0 * 1024 * 1024;

    private CudaProbe() {
    }

    static String describe() {
        try {
            String library = CudaRuntime.libraryPath();
            if (CudaRuntime.isEmulator()) {
                return "host emulator (" + library + ")" + (driverPresent()
                        ? "; an NVIDIA driver is present but libmicrodit_cuda.so is not built or sees no device"
                        : ", no CUDA device");
            }
            int devices = CudaRuntime.deviceCount();
            if (devices == 0) {
                return "no device (" + library + " sees none)";
            }
            long[] memory = CudaRuntime.memory(0);
            return String.format(Locale.ROOT, "%s, %d SMs, %.1f GiB (%.1f GiB free)%s, %s", CudaRuntime.deviceName(0),
                    CudaRuntime.smCount(0), memory[1] / GIB, memory[0] / GIB,
                    devices > 1 ? ", device 0 of " + devices : "", library);
        } catch (LinkageError | RuntimeException error) {
            return unavailable(error);
        }
    }

    /** Why the CUDA backend cannot load: the library loader's message, wrapped or not. */
    static String unavailable(Throwable error) {
        Throwable cause = error instanceof ExceptionInInitializerError && error.getCause() != null
                ? error.getCause() : error;
        String message = cause.getMessage() == null ? cause.getClass().getSimpleName() : cause.getMessage();
        return "no native library, the CUDA backend is unavailable (" + message + ")"
                + (driverPresent() ? "; an NVIDIA driver is present" : "");
    }

    private static boolean driverPresent() {
        return Files.exists(Path.of("/proc/driver/nvidia/version"));
    }
}
