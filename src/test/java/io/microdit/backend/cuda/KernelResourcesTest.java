package io.microdit.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.microdit.backend.cuda.KernelResources.Architecture;
import io.microdit.backend.cuda.KernelResources.Kernel;
import io.microdit.backend.cuda.KernelResources.Occupancy;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

class KernelResourcesTest {
    // The shape of nvcc 13's -Xptxas -v report: an entry with a device function compiled out of line that spills.
    // (Report lines are as long as ptxas writes them.)
    private static final String REPORT = """
            ptxas info    : 0 bytes gmem
            ptxas info    : Compiling entry function '_ZN2tc29attention_forward_bf16_kernelILi64EEEvPKtS2_S2_PfS3_NS_5ShapeE' for 'sm_90'
            ptxas info    : Function properties for _ZN2tc29attention_forward_bf16_kernelILi64EEEvPKtS2_S2_PfS3_NS_5ShapeE
                0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
            ptxas info    : Used 168 registers, used 1 barriers, 1536 bytes smem, 400 bytes cmem[0]
            ptxas info    : Compile time = 80.1 ms
            ptxas info    : Compiling entry function '_Z16gemm_bf16_kernelILb1ELb0EEvPKtS1_PKfPflllllliiiiiiPf' for 'sm_90'
            ptxas info    : Function properties for _Z16gemm_bf16_kernelILb1ELb0EEvPKtS1_PKfPflllllliiiiiiPf
                16 bytes stack frame, 8 bytes spill stores, 12 bytes spill loads
            ptxas info    : Used 255 registers, used 1 barriers, 32768 bytes smem, 456 bytes cmem[0]
            ptxas info    : Function properties for _Z6helperPf
                24 bytes stack frame, 4 bytes spill stores, 4 bytes spill loads
            ptxas info    : Compiling entry function '_Z15sum_gemm_kernelPf' for 'sm_90'
            ptxas info    : Function properties for _Z15sum_gemm_kernelPf
                0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
            ptxas info    : Used 12 registers, 352 bytes cmem[0]
            """;

    @Test
    void parsesRegistersSharedMemoryAndSpillsPerKernel() {
        KernelResources resources = KernelResources.parse(REPORT);
        List<Kernel> kernels = resources.kernels();
        assertEquals(3, kernels.size());
        Kernel attention = kernels.get(0);
        assertEquals(90, attention.smVersion());
        assertEquals(168, attention.registers());
        assertEquals(1536, attention.staticSharedBytes());
        assertTrue(!attention.spills());
        Kernel gemm = kernels.get(1);
        assertEquals(255, gemm.registers());
        assertEquals(32768, gemm.staticSharedBytes());
        assertEquals(16, gemm.stackBytes());
        assertEquals(8, gemm.spillStoreBytes());
        assertEquals(12, gemm.spillLoadBytes());
        assertEquals(0, kernels.get(2).staticSharedBytes());
        assertEquals(List.of("_Z16gemm_bf16_kernelILb1ELb0EEvPKtS1_PKfPflllllliiiiiiPf (sm_90)",
                "_Z6helperPf (sm_90)"), resources.spillingFunctions());
    }

    @Test
    void launchNamesFindTheirKernelInstances() {
        KernelResources resources = KernelResources.parse(REPORT);
        assertEquals(168, resources.forLaunch("tc::attention_forward_bf16_kernel<64>", 90).get(0).registers());
        assertTrue(resources.forLaunch("tc::attention_forward_bf16_kernel<128>", 90).isEmpty());
        assertTrue(resources.forLaunch("tc::attention_forward_bf16_kernel<64>", 80).isEmpty());
        // A pointer variable named after the kernel without its suffix, as gemm.cu launches the bf16 GEMM.
        assertEquals(255, resources.forLaunch("gemm_bf16", 90).get(0).registers());
        assertEquals(255, resources.forLaunch("gemm_bf16_split", 90).get(0).registers());
        // "gemm_kernel" is the tail of "sum_gemm_kernel" but not the same name.
        assertTrue(resources.forLaunch("gemm_kernel", 90).isEmpty());
        assertEquals(12, resources.forLaunch("sum_gemm_kernel", 90).get(0).registers());
    }

    @Test
    void sourceNamesComeFromTheMangledNestedName() {
        assertEquals("attention_forward_bf16_kernel",
                KernelResources.sourceName("_ZN2tc29attention_forward_bf16_kernelILi64EEEvPKtS2_S2_PfS3_NS_5ShapeE"));
        // An anonymous namespace's name ends in digits; the kernel's length prefix follows it.
        assertEquals("combine_backward_kernel", KernelResources.sourceName(
                "_ZN38_GLOBAL__N__321a4dbe_6_moe_cu_638e3e7723combine_backward_kernelEPKfS1_S1_PKiPfS4_lllllPi"));
        assertEquals("gemm_bf16_kernel", KernelResources.sourceName("_Z16gemm_bf16_kernelILb1ELb0EEvPKt"));
        assertEquals("plain_c_name", KernelResources.sourceName("plain_c_name"));
    }

    /** Each case worked by hand with the occupancy calculator's rules. */
    @Test
    void occupancyFollowsTheTightestResource() {
        // 198 registers × 32 lanes = 6,336 → 6,400 per warp; 65,536 / 6,400 = 10 warps → one block of 8 warps.
        Occupancy registers = KernelResources.occupancy(kernel(198, 0), Architecture.SM_90, 256, 0);
        assertEquals(new Occupancy(1, 8, 0.125, "registers"), registers);
        // 32 registers: 1,024 per warp → 64 warps; 128 threads: 16 blocks by warps and by registers (warps listed first).
        Occupancy full = KernelResources.occupancy(kernel(32, 0), Architecture.SM_90, 128, 0);
        assertEquals(new Occupancy(16, 64, 1.0, "warps"), full);
        // 16 KiB static + 32 KiB dynamic + 1 KiB reserved = 50,176 B per block: 4 on sm_90 (233,472 B), 3 on sm_80.
        Occupancy hopper = KernelResources.occupancy(kernel(64, 16384), Architecture.SM_90, 128, 32768);
        assertEquals(new Occupancy(4, 16, 0.25, "shared memory"), hopper);
        Occupancy ampere = KernelResources.occupancy(kernel(64, 16384), Architecture.SM_80, 128, 32768);
        assertEquals(new Occupancy(3, 12, 0.1875, "shared memory"), ampere);
        // 1,000 shared bytes round up to 1,024 (+1,024 reserved): 114 blocks by memory, capped at 32 per SM.
        Occupancy blocks = KernelResources.occupancy(kernel(16, 1000), Architecture.SM_90, 32, 0);
        assertEquals(new Occupancy(32, 32, 0.5, "blocks"), blocks);
    }

    private static Kernel kernel(int registers, long staticShared) {
        return new Kernel("k", 90, registers, staticShared, 0, 0, 0);
    }

    /**
     * The GPU build's own report (when nvcc built it, as in CI): no kernel spills on either architecture, and
     * every {@code __global__} kernel of kernels/ that the GPU build compiles is in it for sm_80 and sm_90 (so the
     * report is complete).
     */
    @Test
    @Tag("emu")
    void theGpuBuildHasNoSpillsAndReportsEveryKernel() throws IOException {
        Optional<KernelResources> build = KernelResources.ofBuild();
        assumeTrue(build.isPresent(), "no " + KernelResources.REPORT_FILE + " beside " + NativeLibrary.path()
                + ": the nvcc build did not run");
        KernelResources resources = build.get();
        assertEquals(List.of(), resources.spillingFunctions(), "ptxas spills");
        List<String> missing = new ArrayList<>();
        for (String kernel : kernelNames(Path.of("kernels"))) {
            for (int sm : new int[] {80, 90}) {
                if (resources.forLaunch(kernel, sm).isEmpty()) {
                    missing.add(kernel + " (sm_" + sm + ")");
                }
            }
        }
        assertEquals(List.of(), missing, "kernels of kernels/ missing from the ptxas report");
    }

    /**
     * The lines nvcc compiles: without the {@code #ifndef __CUDACC__} sections (deliberately faulty self-test kernels
     * exist for the emulator only), conditionals nested in them included.
     */
    private static String gpuSource(String source) {
        StringBuilder kept = new StringBuilder();
        java.util.ArrayDeque<Boolean> emulatorOnly = new java.util.ArrayDeque<>();
        for (String line : source.split("\n")) {
            String directive = line.strip();
            if (directive.startsWith("#if")) {
                emulatorOnly.push(directive.equals("#ifndef __CUDACC__"));
            } else if (directive.startsWith("#else") && !emulatorOnly.isEmpty()) {
                emulatorOnly.pop(); // the other branch: for #ifndef __CUDACC__, GPU code
                emulatorOnly.push(false);
            } else if (directive.startsWith("#endif") && !emulatorOnly.isEmpty()) {
                emulatorOnly.pop();
            } else if (!emulatorOnly.contains(true)) {
                kept.append(line).append('\n');
            }
        }
        return kept.toString();
    }

    private static TreeSet<String> kernelNames(Path sources) throws IOException {
        Pattern global = Pattern.compile("__global__\\s+void\\s+(?:__launch_bounds__\\([^)]*\\)\\s+)?(\\w+)");
        TreeSet<String> names = new TreeSet<>();
        try (Stream<Path> files = Files.list(sources)) {
            for (Path file : files.filter(f -> f.toString().matches(".*\\.cuh?$")).toList()) {
                Matcher m = global.matcher(gpuSource(Files.readString(file)));
                while (m.find()) {
                    names.add(m.group(1));
                }
            }
        }
        assertTrue(names.size() > 40, "kernels found in " + sources + ": " + names);
        return names;
    }
}
