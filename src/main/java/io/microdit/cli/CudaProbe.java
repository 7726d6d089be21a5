package io.microdit.cli;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Whether a CUDA device is visible, without loading any native library: the CUDA backend (a later issue) will
 * answer this through the C ABI; until then the driver's device nodes tell.
 */
final class CudaProbe {
    private CudaProbe() {
    }

    static String describe() {
        boolean driver = Files.exists(Path.of("/proc/driver/nvidia/version"));
        boolean device = Files.exists(Path.of("/dev/nvidia0"));
        if (driver && device) {
            return "NVIDIA driver and /dev/nvidia0 present (the CUDA backend is not built yet)";
        }
        return "no CUDA device (no NVIDIA driver found)";
    }
}
