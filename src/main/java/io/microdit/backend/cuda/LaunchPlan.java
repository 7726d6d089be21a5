package io.microdit.backend.cuda;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeSet;
import java.util.regex.Pattern;

/**
 * What a traced stretch of work (usually one training step) asks of a GPU, op by op: launches, grid sizes,
 * operand bytes, counted FLOPs, and the time each op needs at least on a given GPU's roofline — max(FLOPs / peak,
 * operand bytes / bandwidth), the tensor-core peak where the op launched a tensor-core kernel (bf16's, or tf32's
 * where all its tensor-core kernels are tf32 ones), else the f32 peak. The
 * roofline is a lower bound from datasheet numbers, not a measurement; the launch shapes are exact (they are the
 * host code's). An op call is flagged when its operands are large enough to matter ({@link #LARGE_OPERAND_BYTES})
 * but none of its launches has blocks for three quarters of the GPU's SMs: on a GPU it would leave much of the chip
 * idle (a launch of one block per SM, e.g. 128 GEMM tiles on 132 SMs, is not flagged).
 */
public final class LaunchPlan {
    /** Operand bytes from which an op call must fill the GPU (≈ 2.5 µs of HBM traffic on an H100). */
    public static final long LARGE_OPERAND_BYTES = 8L << 20;
    /** The kernels that run on tensor cores (native/Makefile's TENSOR_CORE_KERNELS, as launched). */
    private static final Pattern TENSOR_CORE_KERNELS =
            Pattern.compile("gemm_bf16|gemm_tf32|attention_(forward|key_gradients|query_gradients)_bf16_kernel");
    /** Those of them that multiply tf32 (half the bf16 rate). */
    private static final Pattern TF32_KERNELS = Pattern.compile("gemm_tf32");

    /**
     * A GPU's datasheet ceilings (kernel-anchors.md §1; NVIDIA's data sheets): dense bf16 and tf32 tensor and f32
     * peaks, HBM bandwidth.
     */
    public record Gpu(String name, int sms, double bf16Flops, double tf32Flops, double f32Flops,
                      double bytesPerSecond) {
        /** H100 SXM5: 989 TFLOP/s dense bf16, 3.35 TB/s of HBM3. */
        public static final Gpu H100_SXM = new Gpu("H100 SXM", 132, 989.4e12, 494.7e12, 66.9e12, 3.35e12);
        /** H200 SXM: the H100's compute with 4.8 TB/s of HBM3e. */
        public static final Gpu H200 = new Gpu("H200", 132, 989.4e12, 494.7e12, 66.9e12, 4.8e12);
    }

    /** The calls of one op name together. */
    public record OpSummary(String op, int calls, long launches, long minBlocks, long maxBlocks,
                            TreeSet<Long> threadsPerBlock, long operandBytes, long flops, boolean tensorCores,
                            double rooflineSeconds) {
    }

    private final Gpu gpu;
    private final List<LaunchTrace.OpCall> calls;
    private final Map<String, Long> flopsByOp;
    private final List<OpSummary> ops = new ArrayList<>();

    /**
     * @param calls     the traced op calls
     * @param flopsByOp the FLOPs the backend counted per op over the same stretch (FlopCounter differences)
     */
    public LaunchPlan(Gpu gpu, List<LaunchTrace.OpCall> calls, Map<String, Long> flopsByOp) {
        this.gpu = gpu;
        this.calls = List.copyOf(calls);
        this.flopsByOp = Map.copyOf(flopsByOp);
        Map<String, List<LaunchTrace.OpCall>> byOp = new LinkedHashMap<>();
        for (LaunchTrace.OpCall call : calls) {
            byOp.computeIfAbsent(call.op(), k -> new ArrayList<>()).add(call);
        }
        byOp.forEach((op, list) -> ops.add(summarize(op, list)));
        ops.sort((a, b) -> Double.compare(b.rooflineSeconds(), a.rooflineSeconds()));
    }

    private OpSummary summarize(String op, List<LaunchTrace.OpCall> list) {
        long launches = 0, min = Long.MAX_VALUE, max = 0, bytes = 0;
        boolean tensorCores = false;
        // The fastest peak among the op's kernels, so the roofline stays a lower bound for an op that mixes them.
        double peak = gpu.f32Flops();
        TreeSet<Long> threads = new TreeSet<>();
        for (LaunchTrace.OpCall call : list) {
            bytes += call.operandBytes();
            for (LaunchTrace.Launch launch : call.launches()) {
                launches++;
                min = Math.min(min, launch.blocks());
                max = Math.max(max, launch.blocks());
                threads.add(launch.threadsPerBlock());
                if (TENSOR_CORE_KERNELS.matcher(launch.kernel()).find()) {
                    tensorCores = true;
                    peak = Math.max(peak, TF32_KERNELS.matcher(launch.kernel()).find() ? gpu.tf32Flops()
                            : gpu.bf16Flops());
                }
            }
        }
        long flops = flopsByOp.getOrDefault(op, 0L);
        double seconds = Math.max(flops / peak, bytes / gpu.bytesPerSecond());
        return new OpSummary(op, list.size(), launches, launches == 0 ? 0 : min, max, threads, bytes, flops,
                tensorCores, seconds);
    }

    /** One summary per op name, the longest roofline time first. */
    public List<OpSummary> ops() {
        return List.copyOf(ops);
    }

    /** Kernel launches over all traced calls. */
    public long launches() {
        return ops.stream().mapToLong(OpSummary::launches).sum();
    }

    /** Bytes of the ops' tensor operands over all traced calls, each operand counted once per call. */
    public long operandBytes() {
        return ops.stream().mapToLong(OpSummary::operandBytes).sum();
    }

    /** The FLOPs the backend counted over the traced stretch, for the ops that were traced. */
    public long flops() {
        return ops.stream().mapToLong(OpSummary::flops).sum();
    }

    /** The sum of the ops' roofline times: no GPU of this kind can run the traced work faster. */
    public double rooflineSeconds() {
        return ops.stream().mapToDouble(OpSummary::rooflineSeconds).sum();
    }

    /**
     * The highest model FLOPs utilisation the traced work could reach on this GPU: its counted FLOPs over what the
     * bf16 tensor-core peak does in the roofline time. Memory-bound ops' bytes, not FLOPs, keep it below 1.
     */
    public double mfuBound() {
        double seconds = rooflineSeconds();
        return seconds == 0 ? 0 : flops() / (seconds * gpu.bf16Flops());
    }

    /**
     * Op calls with at least {@link #LARGE_OPERAND_BYTES} of operands whose launches all have fewer blocks than
     * three quarters of the SMs.
     */
    public List<LaunchTrace.OpCall> underfilled() {
        List<LaunchTrace.OpCall> out = new ArrayList<>();
        for (LaunchTrace.OpCall call : calls) {
            if (call.operandBytes() >= LARGE_OPERAND_BYTES && !call.launches().isEmpty()
                    && 4 * call.maxBlocks() < 3L * gpu.sms()) {
                out.add(call);
            }
        }
        return out;
    }

    /** The plan as a table, heaviest op first, then the flagged calls. */
    public String format() {
        StringBuilder out = new StringBuilder();
        double total = rooflineSeconds();
        out.append(String.format(Locale.ROOT, "%,d launches in %,d op calls; operands %.2f GiB; %.3f TFLOP counted%n",
                launches(), calls.size(), operandBytes() / (double) (1L << 30), flops() / 1e12));
        out.append(String.format(Locale.ROOT, "roofline on %s (%.0f TF/s bf16, %.0f TF/s tf32, %.1f TF/s f32, "
                        + "%.2f TB/s, %d SMs): at least %.3f ms, so at most %.1f%% MFU%n", gpu.name(),
                gpu.bf16Flops() / 1e12, gpu.tf32Flops() / 1e12, gpu.f32Flops() / 1e12,
                gpu.bytesPerSecond() / 1e12, gpu.sms(), total * 1e3, 100 * mfuBound()));
        out.append(String.format(Locale.ROOT, "%-28s %6s %8s %17s %9s %12s %10s %12s %6s%n", "op", "calls", "launches",
                "blocks min-max", "threads", "operand MiB", "GFLOP", "roofline ms", "share"));
        for (OpSummary op : ops) {
            out.append(String.format(Locale.ROOT, "%-28s %6d %8d %17s %9s %12.1f %10.2f %12.4f %5.1f%%%n",
                    op.op() + (op.tensorCores() ? " (tc)" : ""), op.calls(), op.launches(),
                    op.minBlocks() + "-" + op.maxBlocks(), threadList(op.threadsPerBlock()),
                    op.operandBytes() / (double) (1L << 20), op.flops() / 1e9, op.rooflineSeconds() * 1e3,
                    total == 0 ? 0 : 100 * op.rooflineSeconds() / total));
        }
        List<LaunchTrace.OpCall> flagged = underfilled();
        out.append(String.format(Locale.ROOT, "op calls with >= %d MiB of operands and blocks for < 3/4 of the SMs: %d%n",
                LARGE_OPERAND_BYTES >> 20, flagged.size()));
        for (LaunchTrace.OpCall call : flagged) {
            LaunchTrace.Launch widest = call.launches().stream()
                    .max((a, b) -> Long.compare(a.blocks(), b.blocks())).orElseThrow();
            out.append(String.format(Locale.ROOT, "  %s: %.1f MiB, widest launch %s with %d blocks of %d threads%n",
                    call.op(), call.operandBytes() / (double) (1L << 20), widest.kernel(), widest.blocks(),
                    widest.threadsPerBlock()));
        }
        return out.toString();
    }

    /**
     * Per launched kernel: its widest block and largest dynamic shared memory in this plan, what ptxas allotted it
     * (the most registers and static shared bytes over its instances) and the theoretical occupancy that follows on
     * {@code arch}; kernels ptxas did not report (none, if the report is from the same build) are listed as such.
     */
    public String formatOccupancy(KernelResources resources, KernelResources.Architecture arch) {
        Map<String, long[]> shapes = new LinkedHashMap<>(); // kernel -> {threads per block, dynamic shared bytes}
        for (LaunchTrace.OpCall call : calls) {
            for (LaunchTrace.Launch launch : call.launches()) {
                long[] shape = shapes.computeIfAbsent(launch.kernel(), k -> new long[2]);
                shape[0] = Math.max(shape[0], launch.threadsPerBlock());
                shape[1] = Math.max(shape[1], launch.sharedBytes());
            }
        }
        StringBuilder out = new StringBuilder();
        out.append(String.format(Locale.ROOT,
                "theoretical occupancy on sm_%d (ptxas -v; widest launch of each kernel)%n", arch.smVersion()));
        out.append(String.format(Locale.ROOT, "%-44s %7s %9s %10s %10s %9s %9s  %s%n", "kernel", "threads", "registers",
                "static B", "dynamic B", "blocks/SM", "occupancy", "limited by"));
        shapes.forEach((kernel, shape) -> {
            List<KernelResources.Kernel> instances = resources.forLaunch(kernel, arch.smVersion());
            if (instances.isEmpty()) {
                out.append(String.format(Locale.ROOT, "%-44s not in the ptxas report%n", kernel));
                return;
            }
            KernelResources.Kernel worst = new KernelResources.Kernel(kernel, arch.smVersion(),
                    instances.stream().mapToInt(KernelResources.Kernel::registers).max().orElseThrow(),
                    instances.stream().mapToLong(KernelResources.Kernel::staticSharedBytes).max().orElseThrow(),
                    0, 0, 0);
            KernelResources.Occupancy occupancy = KernelResources.occupancy(worst, arch, shape[0], shape[1]);
            out.append(String.format(Locale.ROOT, "%-44s %7d %9d %10d %10d %9d %8.1f%%  %s%n", kernel, shape[0],
                    worst.registers(), worst.staticSharedBytes(), shape[1], occupancy.blocksPerSm(),
                    100 * occupancy.fraction(), occupancy.limitedBy()));
        });
        return out.toString();
    }

    private static String threadList(TreeSet<Long> threads) {
        StringBuilder out = new StringBuilder();
        for (long t : threads) {
            out.append(out.isEmpty() ? "" : ",").append(t);
        }
        return out.toString();
    }
}
