package io.microdit.backend.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The checked emulator's performance model (microdit.h, mdt_emu_perf_*): per kernel, its warp-level shared-memory
 * requests and the wavefronts they cost (bank conflicts cost more than one per phase), and its global requests and
 * the 32-byte sectors they touch (uncoalesced ones more than their distinct bytes / 32). Only the checked emulator
 * ({@code -Dmicrodit.device=emu-checked}) counts; elsewhere {@link #begin} throws IllegalArgumentException.
 */
public final class MemoryAccessModel {
    private static final int NAME_BYTES = 256;
    private static final int COUNTS = 7;

    /** One kernel's counts over the launches between {@link #begin} and {@link #end}. */
    public record KernelCounts(String kernel, long launches, long sharedRequests, long sharedWavefronts,
            long sharedIdealWavefronts, long globalRequests, long globalSectors, long globalIdealSectors) {
        /** Wavefronts beyond one per phase: the cost of bank conflicts. */
        public long excessWavefronts() {
            return sharedWavefronts - sharedIdealWavefronts;
        }

        /** Ideal sectors over sectors touched (1 when there were no global requests). */
        public double sectorEfficiency() {
            return globalSectors == 0 ? 1.0 : (double) globalIdealSectors / globalSectors;
        }
    }

    private MemoryAccessModel() {
    }

    /** Clears the counts and counts every later launch, from any thread. */
    public static void begin() {
        CudaRuntime.check(RuntimeBindings.mdt_emu_perf_begin(), "mdt_emu_perf_begin");
    }

    /**
     * A table, one kernel a line: launches; shared requests, their wavefronts per request and the excess over the
     * ideal (bank conflicts); global requests, sectors per request and sector efficiency (ideal / touched).
     */
    public static String format(List<KernelCounts> counts) {
        StringBuilder out = new StringBuilder();
        out.append(String.format(Locale.ROOT, "%-44s %8s %11s %8s %8s %11s %8s %10s%n", "kernel", "launches",
                "shared req", "wf/req", "excess", "global req", "sec/req", "sector eff"));
        for (KernelCounts c : counts) {
            out.append(String.format(Locale.ROOT, "%-44s %8d %11d %8s %7.1f%% %11d %8s %9.1f%%%n", c.kernel(),
                    c.launches(), c.sharedRequests(), perRequest(c.sharedWavefronts(), c.sharedRequests()),
                    c.sharedIdealWavefronts() == 0 ? 0.0 : 100.0 * c.excessWavefronts() / c.sharedIdealWavefronts(),
                    c.globalRequests(), perRequest(c.globalSectors(), c.globalRequests()),
                    100 * c.sectorEfficiency()));
        }
        return out.toString();
    }

    private static String perRequest(long total, long requests) {
        return requests == 0 ? "-" : String.format(Locale.ROOT, "%.2f", (double) total / requests);
    }

    /** Stops counting; the counts since {@link #begin}, by kernel name. */
    public static List<KernelCounts> end() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment count = arena.allocate(ValueLayout.JAVA_INT);
            CudaRuntime.check(RuntimeBindings.mdt_emu_perf_end(count), "mdt_emu_perf_end");
            int kernels = count.get(ValueLayout.JAVA_INT, 0);
            MemorySegment name = arena.allocate(NAME_BYTES);
            MemorySegment values = arena.allocate(ValueLayout.JAVA_LONG, COUNTS);
            List<KernelCounts> result = new ArrayList<>(kernels);
            for (int i = 0; i < kernels; i++) {
                CudaRuntime.check(RuntimeBindings.mdt_emu_perf_kernel(i, name, NAME_BYTES, values),
                        "mdt_emu_perf_kernel");
                long[] c = values.toArray(ValueLayout.JAVA_LONG);
                result.add(new KernelCounts(name.getString(0), c[0], c[1], c[2], c[3], c[4], c[5], c[6]));
            }
            return result;
        }
    }
}
