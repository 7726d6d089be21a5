package io.microdit.backend;

import io.microdit.autograd.Precision;
import io.microdit.backend.cpu.CpuBackend;
import io.microdit.backend.cuda.CudaBackend;
import java.util.Locale;

/** Opens a backend by the name users give it on the command line, and knows its devices' peak rates. */
public final class Backends {
    private Backends() {
    }

    /**
     * {@code cpu} (with {@code threads} threads; null or 0 = all processors) or {@code cuda} (device 0, or the
     * host emulator where there is no GPU; {@code -Dmicrodit.device} chooses explicitly). The caller closes it.
     */
    public static Backend open(String name, Integer threads) {
        return switch (name) {
            case "cpu" -> threads == null || threads == 0 ? new CpuBackend() : new CpuBackend(threads);
            case "cuda" -> {
                if (threads != null && threads != 0) {
                    throw new IllegalArgumentException("--threads applies to --backend cpu only");
                }
                yield new CudaBackend();
            }
            default -> throw new IllegalArgumentException("--backend must be cpu or cuda, got '" + name + "'");
        };
    }

    /**
     * The dense peak of a GPU named {@code deviceName} in FLOP/s for matmuls in {@code precision} (tensor cores for
     * bf16, the FP32 pipes for f32; SXM parts, from NVIDIA's data sheets), or NaN for a device not in the table
     * (and the emulator), so an MFU figure is never made up.
     */
    public static double gpuPeakFlops(String deviceName, Precision precision) {
        String name = deviceName.toUpperCase(Locale.ROOT);
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
