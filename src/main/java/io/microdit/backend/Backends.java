package io.microdit.backend;

import io.microdit.autograd.Precision;
import io.microdit.backend.cpu.CpuBackend;
import io.microdit.backend.cuda.CudaBackend;
import io.microdit.backend.cuda.CudaRuntime;
import io.microdit.backend.cuda.DeviceChoice;
import java.util.Locale;

/** Opens a backend by the name users give it on the command line, and knows its devices' peak rates. */
public final class Backends {
    private Backends() {
    }

    /** {@link #open(String, Integer, String)} with the device from {@code -Dmicrodit.device}, else the GPU. */
    public static Backend open(String name, Integer threads) {
        return open(name, threads, null);
    }

    /**
     * {@code cpu} (with {@code threads} threads; null or 0 = all processors) or {@code cuda} on {@code device}:
     * {@code cuda} (device 0 of the GPU build), {@code emu} (the host emulator, slow; for tests and planning) or
     * null ({@code -Dmicrodit.device}, else the GPU). A GPU that cannot be used is an IllegalStateException that
     * says why, never a switch to the emulator. The caller closes the backend.
     */
    public static Backend open(String name, Integer threads, String device) {
        return switch (name) {
            case "cpu" -> {
                if (device != null) {
                    throw new IllegalArgumentException("--device applies to --backend cuda only");
                }
                yield threads == null || threads == 0 ? new CpuBackend() : new CpuBackend(threads);
            }
            case "cuda" -> {
                if (threads != null && threads != 0) {
                    throw new IllegalArgumentException("--threads applies to --backend cpu only");
                }
                CudaRuntime.select(device);
                yield new CudaBackend();
            }
            default -> throw new IllegalArgumentException("--backend must be cpu or cuda, got '" + name + "'");
        };
    }

    /**
     * What runs a backend and why, for the first line of a log: the CPU backend's threads, or the CUDA backend's
     * device, native library and the reason it was chosen.
     */
    public static String describe(Backend backend) {
        if (backend instanceof CudaBackend) {
            DeviceChoice choice = CudaRuntime.choice();
            return backend.name() + " on " + choice.library() + ": " + choice.reason();
        }
        return backend.name() + ": pure Java, --backend cpu";
    }

    /**
     * The precision a backend computes in unless told otherwise: bf16 on CUDA (matrix products and attention on
     * tensor cores; F32 products run on CUDA cores at a fraction of the chip), f32 on the CPU (where bf16 only models
     * the rounding).
     */
    public static Precision defaultPrecision(String backendName) {
        return "cuda".equals(backendName) ? Precision.BF16 : Precision.F32;
    }

    /**
     * The dense peak of a GPU named {@code deviceName} in FLOP/s for matmuls in {@code precision} (tensor cores for
     * bf16, the FP32 pipes for f32; SXM parts, from NVIDIA's data sheets), or NaN for a device not in the table
     * (and the emulator), so an MFU figure is never made up.
     */
    public static double gpuPeakFlops(String deviceName, Precision precision) {
        return gpuPeakFlops(deviceName, precision, false);
    }

    /**
     * {@link #gpuPeakFlops(String, Precision)}, where with {@code tf32} (CudaBackend.allowTf32) f32 matmuls run on
     * tensor cores at the dense TF32 peak.
     */
    public static double gpuPeakFlops(String deviceName, Precision precision, boolean tf32) {
        String name = deviceName.toUpperCase(Locale.ROOT);
        if (tf32 && precision == Precision.F32) {
            return name.contains("H100") || name.contains("H200") ? 494.7e12 : name.contains("A100") ? 156e12
                    : Double.NaN;
        }
        boolean bf16 = precision == Precision.BF16;
        if (name.contains("H100") || name.contains("H200")) {
            return bf16 ? 989.4e12 : 66.9e12;
        }
        if (name.contains("A100")) {
            return bf16 ? 312e12 : 19.5e12;
        }
        return Double.NaN;
    }
}
