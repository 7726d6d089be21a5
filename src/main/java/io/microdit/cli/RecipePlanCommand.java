package io.microdit.cli;

import io.microdit.autograd.Graph;
import io.microdit.autograd.Precision;
import io.microdit.autograd.Recomputation;
import io.microdit.backend.cuda.CudaBackend;
import io.microdit.backend.cuda.CudaRuntime;
import io.microdit.backend.cuda.LaunchPlan;
import io.microdit.backend.cuda.LaunchTrace;
import io.microdit.diffusion.Edm;
import io.microdit.diffusion.EdmObjective;
import io.microdit.model.MaskingMode;
import io.microdit.model.MicroDiT;
import io.microdit.model.MicroDiTConfig;
import io.microdit.model.MicroDiTConfigs;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.train.AdamW;
import io.microdit.train.ExponentialMovingAverage;
import io.microdit.train.ZeroShards;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * The paper's four training stages of {@code microdit-xl-2} (microdit-spec.md §4: 256 px masked and unmasked, 512 px
 * masked and unmasked, at their per-GPU microbatches) planned on the emulator: one training step of one rank of a
 * ZeRO-2 run, set up and traced as a dry run (nothing computed; launches, operands and memory as on a GPU). Prints
 * per stage the peak device memory, operand bytes, counted FLOPs, the H100 roofline time and the MFU bound it
 * implies; {@code --check} exits 1 when a stage's peak exceeds the budget.
 */
@Command(name = "plan-recipe", description = "Plan the paper's four training stages of microdit-xl-2 per GPU on the "
        + "emulator (dry run, about 10 s a stage): peak memory of one ZeRO-2 rank, operand bytes, FLOPs, H100 roofline "
        + "time and MFU bound.", mixinStandardHelpOptions = true)
final class RecipePlanCommand implements Callable<Integer> {
    static final double GIB = 1L << 30;

    /** One stage of the recipe: its latents, mask and microbatch per GPU, and whether it keeps an EMA. */
    record Stage(String name, MicroDiTConfig config, double mask, int batch, boolean ema) {
    }

    /**
     * One planned stage: what it recomputes, the traced step's plan, device bytes before it and at its peak, this
     * rank's moments.
     */
    record Planned(Stage stage, Recomputation recompute, LaunchPlan plan, long beforeBytes, long peakBytes,
                   long momentBytes) {
    }

    /** The official configs' stages (res_{256,512}_{pretrain,finetune}.yaml). */
    static List<Stage> stages() {
        MicroDiTConfig px256 = MicroDiTConfigs.xl2();
        MicroDiTConfig px512 = px256.atResolution("microdit-xl-2-512", 64, 2.0);
        return List.of(new Stage("256 px pretrain", px256, 0.75, 256, false),
                new Stage("256 px finetune", px256, 0, 64, false),
                new Stage("512 px pretrain", px512, 0.75, 32, true),
                new Stage("512 px finetune", px512, 0, 16, true));
    }

    @Option(names = "--ranks", defaultValue = "8", description = "Data-parallel ranks of the ZeRO-2 run (default "
            + "${DEFAULT-VALUE}, the paper's 8 GPUs); 1 plans an unsharded optimizer.")
    int ranks;

    @Option(names = "--budget-gib", defaultValue = "72", description = "Device memory a rank may use (default "
            + "${DEFAULT-VALUE}: an 80 GB H100 less headroom for the CUDA context, NCCL and fragmentation).")
    double budgetGib;

    @Option(names = "--check", description = "Exit 1 when a stage's peak exceeds --budget-gib.")
    boolean check;

    @Option(names = "--recompute", arity = "0..1", defaultValue = "auto", fallbackValue = "block",
            paramLabel = "MODE", description = "What each stage recomputes in the backward: auto (the default: the "
            + "first of none, attention and block whose peak fits --budget-gib, as the plan chooses it for the "
            + "stage's training config), none, attention or block (--recompute alone).")
    String recomputeName;

    @Mixin
    DeviceOption device;

    @Option(names = "--caption-length", defaultValue = "77", description = "Caption tokens (default ${DEFAULT-VALUE}).")
    int captionLength;

    @Override
    public Integer call() {
        if (ranks < 1 || !(budgetGib > 0) || captionLength < 1) {
            throw new IllegalArgumentException("need --ranks ≥ 1, --budget-gib > 0 and --caption-length ≥ 1");
        }
        CudaRuntime.select(device.device == null ? "emu" : device.device);
        if (!CudaRuntime.isEmulator()) {
            throw new IllegalArgumentException("plan-recipe is a dry run on the emulator: --device emu (the "
                    + "default) or emu-checked, not " + device.device);
        }
        List<Recomputation> modes = recomputeName.equals("auto") ? List.of(Recomputation.values())
                : List.of(Recomputation.parse(recomputeName, "--recompute (or auto)"));
        List<Planned> planned = new ArrayList<>();
        for (Stage stage : stages()) {
            planned.add(planFitting(stage, ranks, captionLength, modes, budgetGib));
        }
        System.out.print(format(planned, ranks, budgetGib));
        boolean fits = planned.stream().allMatch(p -> p.peakBytes() <= budgetGib * GIB);
        return check && !fits ? 1 : 0;
    }

    /**
     * The first of {@code modes} (least recomputation first) whose plan of {@code stage} fits the budget, or the last
     * one's plan when none fits.
     */
    static Planned planFitting(Stage stage, int ranks, int captionLength, List<Recomputation> modes,
                               double budgetGib) {
        Planned planned = null;
        for (Recomputation mode : modes) {
            planned = plan(stage, ranks, captionLength, mode);
            if (planned.peakBytes() <= budgetGib * GIB) {
                break;
            }
        }
        return planned;
    }

    /** One bf16 training step of {@code stage} on the largest rank of {@code ranks}, set up and traced as a dry run. */
    static Planned plan(Stage stage, int ranks, int captionLength, Recomputation recompute) {
        MicroDiTConfig c = stage.config();
        MaskingMode mode = stage.mask() == 0 ? MaskingMode.NONE : MaskingMode.DEFERRED;
        EdmObjective objective = new EdmObjective(Edm.MICRODIT_256, mode, stage.mask(), 0);
        try (CudaBackend cuda = new CudaBackend()) {
            LaunchTrace setup = cuda.traceLaunches(true);
            MicroDiT model = MicroDiT.forPlanning(c, cuda);
            int shardRank = ZeroShards.largestShard(model.parameters().all(), ranks);
            try (MemoryScope data = cuda.scope("plan-batch");
                 AdamW optimizer = ranks == 1 ? new AdamW(cuda, model.parameters(), AdamW.MICRODIT)
                         : AdamW.shardOf(cuda, model.parameters(), AdamW.MICRODIT, shardRank, ranks);
                 ExponentialMovingAverage average = !stage.ema() ? null : ranks == 1
                         ? new ExponentialMovingAverage(cuda, model.parameters(), BenchStepCommand.EMA_DECAY)
                         : ExponentialMovingAverage.shardOf(cuda, model.parameters(), BenchStepCommand.EMA_DECAY,
                                 shardRank, ranks)) {
                Tensor latents = Tensor.zeros(data, DType.F32, stage.batch(), c.inChannels(), c.inputSize(),
                        c.inputSize());
                Tensor captions = Tensor.zeros(data, DType.F32, stage.batch(), captionLength, c.captionChannels());
                EdmObjective.Draw draw = objective.draw(new Graph(cuda, data), model, latents.shape(), 0, 0);
                double[] sigma = Arrays.stream(draw.sigma()).map(s -> (float) s).toArray();
                // A steady step is planned: the first update makes the optimizer's bf16 working copies (dry run).
                BenchStepCommand.step(cuda, model, optimizer, average, recompute, objective, latents, captions, sigma,
                        draw, Precision.BF16, null);
                cuda.synchronize();
                setup.close();
                setup = null;
                Map<String, Long> flopsBefore = cuda.flops().snapshot();
                long before = cuda.memory().liveBytes();
                cuda.memory().resetPeak();
                List<LaunchTrace.OpCall> calls;
                try (LaunchTrace trace = cuda.traceLaunches(true)) {
                    BenchStepCommand.step(cuda, model, optimizer, average, recompute, objective, latents, captions,
                            sigma, draw, Precision.BF16, null);
                    cuda.synchronize();
                    calls = trace.calls();
                }
                Map<String, Long> flops = new LinkedHashMap<>();
                cuda.flops().snapshot().forEach((op, total) -> flops.put(op, total - flopsBefore.getOrDefault(op, 0L)));
                long moments = optimizer.state().values().stream().mapToLong(Tensor::byteSize).sum();
                return new Planned(stage, recompute, new LaunchPlan(LaunchPlan.Gpu.H100_SXM, calls, flops), before,
                        cuda.memory().peakLiveBytes(), moments);
            } finally {
                if (setup != null) {
                    setup.close();
                }
                model.parameters().close();
            }
        }
    }

    static String format(List<Planned> planned, int ranks, double budgetGib) {
        StringBuilder out = new StringBuilder();
        boolean recomputes = planned.stream().anyMatch(p -> p.recompute() != Recomputation.NONE);
        out.append(String.format(Locale.ROOT, "microdit-xl-2, the paper's recipe per GPU: one bf16 training step of "
                + "%s, planned on the emulator (dry run); roofline on an H100 SXM (%.0f TF/s bf16, %.2f TB/s)%s%n",
                ranks > 1 ? "the largest rank of " + ranks + " under ZeRO-2 (its share of the optimizer moments)"
                        : "one GPU with every optimizer moment (no sharding)",
                LaunchPlan.Gpu.H100_SXM.bf16Flops() / 1e12, LaunchPlan.Gpu.H100_SXM.bytesPerSecond() / 1e12,
                recomputes ? "; recompute: what the stage recomputes in the backward (training config key "
                        + "\"recompute\"), its FLOPs and MFU bound count the recomputation (hardware, not model, "
                        + "FLOPs)" : ""));
        out.append(String.format(Locale.ROOT, "%-16s %10s %5s %6s %4s %9s %11s %9s %9s %12s %8s %12s %9s  %s%n",
                "stage", "latents", "mask", "batch", "EMA", "recompute", "moments GiB", "start GiB", "peak GiB",
                "operands GiB", "TFLOP", "roofline ms", "MFU bound", "fits " + budgetGib + " GiB"));
        for (Planned p : planned) {
            Stage s = p.stage();
            out.append(String.format(Locale.ROOT,
                    "%-16s %10s %5.2f %6d %4s %9s %11.2f %9.2f %9.2f %12.1f %8.2f %12.1f %8.1f%%  %s%n",
                    s.name(), s.config().inputSize() + "×" + s.config().inputSize(), s.mask(), s.batch(),
                    s.ema() ? "yes" : "no", p.recompute().configName(), p.momentBytes() / GIB, p.beforeBytes() / GIB,
                    p.peakBytes() / GIB, p.plan().operandBytes() / GIB, p.plan().flops() / 1e12,
                    p.plan().rooflineSeconds() * 1e3, 100 * p.plan().mfuBound(),
                    p.peakBytes() <= budgetGib * GIB ? "yes" : "NO"));
        }
        return out.toString();
    }
}
