package io.microdit.backend.cuda;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * What ptxas allotted each kernel of the GPU build — registers per thread, static shared memory, stack and spills,
 * per architecture — read from the {@code ptxas -v} report the native build keeps beside the library
 * ({@code ptxas.txt}), and the theoretical occupancy that follows for a launch shape. Occupancy is the CUDA
 * occupancy calculator's arithmetic (registers allocated per warp in units of 256, shared memory in units of 128
 * bytes plus 1 KiB reserved per block, at most 32 blocks and 64 warps per SM); it is a ceiling, not a measurement.
 */
public final class KernelResources {
    /** The report's file name next to {@code libmicrodit_cuda.so} (native/Makefile). */
    public static final String REPORT_FILE = "ptxas.txt";

    /** The per-SM limits of one architecture (CUDA C++ Programming Guide, compute capabilities table). */
    public record Architecture(int smVersion, int registersPerSm, int sharedBytesPerSm, int maxWarpsPerSm,
                               int maxBlocksPerSm) {
        /** Ampere (A100): 164 KiB of shared memory per SM. */
        public static final Architecture SM_80 = new Architecture(80, 65536, 167936, 64, 32);
        /** Hopper (H100, H200): 228 KiB of shared memory per SM. */
        public static final Architecture SM_90 = new Architecture(90, 65536, 233472, 64, 32);
        private static final int REGISTER_UNIT = 256;
        private static final int SHARED_UNIT = 128;
        private static final int RESERVED_SHARED_PER_BLOCK = 1024;
    }

    /** One kernel (mangled name as ptxas prints it) on one architecture. */
    public record Kernel(String mangledName, int smVersion, int registers, long staticSharedBytes, long stackBytes,
                         long spillStoreBytes, long spillLoadBytes) {
        /**
         * Whether ptxas spilled registers to local memory (stores or loads), which costs memory traffic in the kernel's
         * inner loop.
         */
        public boolean spills() {
            return spillStoreBytes > 0 || spillLoadBytes > 0;
        }
    }

    /** Resident blocks and warps per SM for a launch shape, and which resource allows no more. */
    public record Occupancy(int blocksPerSm, int warpsPerSm, double fraction, String limitedBy) {
    }

    private static final Pattern ENTRY = Pattern.compile("Compiling entry function '([^']+)' for 'sm_(\\d+)'");
    private static final Pattern PROPERTIES = Pattern.compile("Function properties for (\\S+)");
    private static final Pattern FRAME = Pattern.compile(
            "(\\d+) bytes stack frame, (\\d+) bytes spill stores, (\\d+) bytes spill loads");
    private static final Pattern USED = Pattern.compile("Used (\\d+) registers(?:.*?, (\\d+) bytes smem)?");

    private final List<Kernel> kernels;
    private final List<String> spillingFunctions;

    private KernelResources(List<Kernel> kernels, List<String> spillingFunctions) {
        this.kernels = List.copyOf(kernels);
        this.spillingFunctions = List.copyOf(spillingFunctions);
    }

    /** The report beside the native library in use, if the GPU build (nvcc) produced one. */
    public static Optional<KernelResources> ofBuild() {
        Path report = NativeLibrary.path().resolveSibling(REPORT_FILE);
        if (!Files.isRegularFile(report)) {
            return Optional.empty();
        }
        try {
            return Optional.of(parse(Files.readString(report)));
        } catch (IOException e) {
            throw new IllegalStateException("cannot read the ptxas report " + report + ": " + e.getMessage(), e);
        }
    }

    /**
     * Parses {@code ptxas -v} output. Entry functions get a {@link Kernel}; a spill reported for any function
     * (entries and device functions compiled out of line) is listed by {@link #spillingFunctions()}.
     */
    public static KernelResources parse(String report) {
        List<Kernel> kernels = new ArrayList<>();
        List<String> spilling = new ArrayList<>();
        String entry = null, properties = null;
        int sm = 0;
        long stack = 0, spillStores = 0, spillLoads = 0;
        for (String line : report.split("\n")) {
            Matcher m;
            if ((m = ENTRY.matcher(line)).find()) {
                entry = m.group(1);
                sm = Integer.parseInt(m.group(2));
                stack = spillStores = spillLoads = 0;
            } else if ((m = PROPERTIES.matcher(line)).find()) {
                properties = m.group(1);
            } else if ((m = FRAME.matcher(line)).find()) {
                long frame = Long.parseLong(m.group(1)), stores = Long.parseLong(m.group(2));
                long loads = Long.parseLong(m.group(3));
                if (stores > 0 || loads > 0) {
                    spilling.add(properties + " (sm_" + sm + ")");
                }
                if (properties != null && properties.equals(entry)) {
                    stack = frame;
                    spillStores = stores;
                    spillLoads = loads;
                }
            } else if ((m = USED.matcher(line)).find() && entry != null) {
                long shared = m.group(2) == null ? 0 : Long.parseLong(m.group(2));
                kernels.add(new Kernel(entry, sm, Integer.parseInt(m.group(1)), shared, stack, spillStores,
                        spillLoads));
                entry = null;
            }
        }
        return new KernelResources(kernels, spilling);
    }

    /** Every kernel of the report, per architecture it was compiled for. */
    public List<Kernel> kernels() {
        return kernels;
    }

    /** Functions (with architecture) for which ptxas reported spill stores or loads. */
    public List<String> spillingFunctions() {
        return spillingFunctions;
    }

    /**
     * The kernels a launch name stands for on one architecture: the launch trace names a kernel as the host code
     * wrote it ({@code tc::attention_forward_bf16_kernel<64>}, or a pointer variable such as {@code gemm_bf16} for
     * {@code gemm_bf16_kernel<…>} instances, or {@code column_sum_partial}: a variable named after the kernel, then
     * its role); a template argument list of integers selects the instances mangled with them, other template
     * arguments match every instance.
     */
    public List<Kernel> forLaunch(String launchName, int smVersion) {
        String base = launchName.replaceAll("<.*", "").replaceAll(".*::", "");
        List<String> templateMangling = new ArrayList<>();
        Matcher arguments = Pattern.compile("<([-0-9, ]+)>").matcher(launchName);
        if (arguments.find()) {
            for (String argument : arguments.group(1).split(",")) {
                templateMangling.add("Li" + argument.strip() + "E");
            }
        }
        List<Kernel> candidates = kernels.stream()
                .filter(k -> k.smVersion() == smVersion)
                .filter(k -> templateMangling.stream().allMatch(k.mangledName()::contains))
                .toList();
        for (String identifier : List.of(base, base + "_kernel")) {
            List<Kernel> exact = candidates.stream()
                    .filter(k -> identifier.equals(sourceName(k.mangledName()))).toList();
            if (!exact.isEmpty()) {
                return exact;
            }
        }
        // A variable named after the kernel and its role: the kernel whose name (less "_kernel") is the longest prefix.
        int longest = 0;
        List<Kernel> found = List.of();
        for (Kernel k : candidates) {
            String name = sourceName(k.mangledName());
            String stem = name == null ? "" : name.replaceFirst("_kernel$", "");
            if (!stem.isEmpty() && base.startsWith(stem + "_") && stem.length() >= longest) {
                found = stem.length() > longest ? new ArrayList<>() : found;
                longest = stem.length();
                found.add(k);
            }
        }
        return List.copyOf(found);
    }

    /**
     * The function's own name in an Itanium-mangled name: the last {@code <length><identifier>} of its (possibly
     * nested) name, before template arguments or the parameter types
     * ({@code _ZN2tc29attention_forward_bf16_kernelILi64EE…} → {@code attention_forward_bf16_kernel}; anonymous
     * namespaces are names like any other); null when the name is not of that form.
     */
    static String sourceName(String mangled) {
        if (!mangled.startsWith("_Z")) {
            return mangled;
        }
        int at = 2;
        while (at < mangled.length() && (mangled.charAt(at) == 'N' || mangled.charAt(at) == 'L')) {
            at++; // nested name; internal linkage
        }
        String last = null;
        while (at < mangled.length() && Character.isDigit(mangled.charAt(at))) {
            int digits = at;
            while (at < mangled.length() && Character.isDigit(mangled.charAt(at))) {
                at++;
            }
            int length = Integer.parseInt(mangled.substring(digits, at));
            if (at + length > mangled.length()) {
                return last;
            }
            last = mangled.substring(at, at + length);
            at += length;
        }
        return last;
    }

    /** The theoretical occupancy of {@code kernel} launched with {@code threadsPerBlock} and dynamic shared bytes. */
    public static Occupancy occupancy(Kernel kernel, Architecture arch, long threadsPerBlock, long dynamicSharedBytes) {
        int warpsPerBlock = (int) ((threadsPerBlock + 31) / 32);
        Map<String, Integer> limits = new LinkedHashMap<>();
        limits.put("warps", arch.maxWarpsPerSm() / warpsPerBlock);
        limits.put("blocks", arch.maxBlocksPerSm());
        int registersPerWarp = roundUp(kernel.registers() * 32, Architecture.REGISTER_UNIT);
        if (registersPerWarp > 0) {
            limits.put("registers", arch.registersPerSm() / registersPerWarp / warpsPerBlock);
        }
        long shared = kernel.staticSharedBytes() + dynamicSharedBytes;
        if (shared > 0) {
            long perBlock = roundUp(shared, Architecture.SHARED_UNIT) + Architecture.RESERVED_SHARED_PER_BLOCK;
            limits.put("shared memory", (int) (arch.sharedBytesPerSm() / perBlock));
        }
        Map.Entry<String, Integer> tightest = limits.entrySet().stream()
                .min(Comparator.comparingInt(Map.Entry::getValue)).orElseThrow();
        int blocks = tightest.getValue();
        return new Occupancy(blocks, blocks * warpsPerBlock, blocks * warpsPerBlock / (double) arch.maxWarpsPerSm(),
                tightest.getKey());
    }

    private static int roundUp(int value, int unit) {
        return (value + unit - 1) / unit * unit;
    }

    private static long roundUp(long value, long unit) {
        return (value + unit - 1) / unit * unit;
    }
}
