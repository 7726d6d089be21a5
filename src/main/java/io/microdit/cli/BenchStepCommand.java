package io.microdit.cli;

import io.microdit.autograd.GradScope;
import io.microdit.autograd.Graph;
import io.microdit.autograd.Parameter;
import io.microdit.autograd.Precision;
import io.microdit.autograd.Recomputation;
import io.microdit.backend.Backend;
import io.microdit.backend.Backends;
import io.microdit.backend.cpu.CpuBackend;
import io.microdit.backend.cuda.CudaBackend;
import io.microdit.backend.cuda.CudaRuntime;
import io.microdit.backend.cuda.KernelResources;
import io.microdit.backend.cuda.LaunchPlan;
import io.microdit.backend.cuda.MemoryAccessModel;
import io.microdit.backend.cuda.LaunchTrace;
import io.microdit.diffusion.Edm;
import io.microdit.diffusion.EdmObjective;
import io.microdit.io.Json;
import io.microdit.io.Safetensors;
import io.microdit.model.ConfigFile;
import io.microdit.model.MaskingMode;
import io.microdit.model.MicroDiT;
import io.microdit.model.MicroDiTConfig;
import io.microdit.model.TokenMask;
import io.microdit.model.Weights;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.train.AdamW;
import io.microdit.train.ExponentialMovingAverage;
import io.microdit.train.ZeroShards;
import java.nio.file.Files;
import java.nio.file.Path;
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
 * One fixed batch and full training steps on it, for comparing engines. The model gets the official
 * initialisation and then N(0, {@code --perturb}) from Philox added to every parameter, so the zero-initialised
 * output layers and gates are live and the check exercises every path. The batch: x0 and captions standard normal
 * from Philox, σ, ε and the mask drawn as {@link EdmObjective#draw} does for the run's first batch (caption
 * dropout 0); σ is rounded to float32 so another engine reading the exported F32 values sees the same numbers.
 *
 * <p>{@code --export DIR} writes the weights (official names), the batch and {@code reference.json} (loss, global
 * and per-parameter gradient norms, the sum of F, the counted FLOPs of a step). Then {@code --warmup} +
 * {@code --steps} training steps (forward, backward, global-norm clip at 1, AdamW with the official settings) are
 * timed and one JSON line reports the median ms/step, img/s and GFLOP/s (the backend's counted FLOPs), and each
 * step's wall and process CPU milliseconds (CPU time tells more than wall time on cores shared with other jobs).
 *
 * <p>{@code --backend cuda} runs the same on the CUDA backend (the GPU, or the emulator with {@code --device emu}:
 * the report names which); each timed step ends with a device synchronisation. {@code --precision bf16} computes the
 * step's matmuls and attention in bf16 (see {@link Precision}); {@code --tf32} runs its F32 matmuls on TF32 tensor
 * cores ({@link CudaBackend#allowTf32}).
 */
@Command(name = "bench-step", description = "Time full training steps on one fixed batch; optionally export the "
        + "weights, the batch and reference values for another engine.")
final class BenchStepCommand implements Callable<Integer> {
    private static final long STREAM_PERTURB = 101;
    private static final long STREAM_LATENTS = 102;
    private static final long STREAM_CAPTIONS = 103;
    static final double LEARNING_RATE = 1e-4;
    /** The 512-px finetune stage's EMA smoothing (microdit-spec.md §4); its value does not change what a step costs. */
    static final double EMA_DECAY = 0.9975;
    static final double GRADIENT_CLIP = 1.0;
    private static final double GIB = 1L << 30;

    @Option(names = "--config", required = true, description = "Built-in config name or JSON file.")
    String config;

    @Option(names = "--batch", defaultValue = "16", description = "Images per step (default ${DEFAULT-VALUE}).")
    int batch;

    @Option(names = "--mask", defaultValue = "0.75", description = "Mask ratio (default ${DEFAULT-VALUE}).")
    double mask;

    @Option(names = "--masking", defaultValue = "deferred", description = "deferred, naive or none.")
    String masking;

    @Option(names = "--caption-length", defaultValue = "77", description = "Caption tokens (default "
            + "${DEFAULT-VALUE}).")
    int captionLength;

    @Option(names = "--threads", description = "CPU threads (default: all).")
    Integer threads;

    @Option(names = "--steps", defaultValue = "10", description = "Timed steps (default ${DEFAULT-VALUE}).")
    int steps;

    @Option(names = "--warmup", defaultValue = "3", description = "Untimed steps first (default ${DEFAULT-VALUE}).")
    int warmup;

    @Option(names = "--seed", defaultValue = "0", description = "Seed of the weights and the batch.")
    long seed;

    @Option(names = "--perturb", defaultValue = "0.02", description = "Std of the noise added to every weight.")
    double perturb;

    @Option(names = "--export", description = "Write weights.safetensors, batch.safetensors and reference.json.")
    Path export;

    @Option(names = "--backend", defaultValue = "cpu", description = "cpu or cuda (see --device; "
            + "default ${DEFAULT-VALUE}).")
    String backendName;

    @Mixin
    DeviceOption device;

    @Mixin
    Tf32Option tf32;

    @Option(names = "--precision", description = "f32 or bf16 (mixed precision; on the CPU backend bf16 only models "
            + "the rounding). Default: bf16 on cuda, f32 on cpu.")
    String precisionName;

    @Option(names = "--launch-plan", description = "After the timed steps, trace one more step's kernel launches "
            + "(--backend cuda; on the emulator a dry run: launches recorded, not run, so full-size configs take "
            + "seconds) and write the plan here: launches, grids, operand bytes and roofline time per op. With "
            + "--device emu-checked one more step runs for real and the plan adds each kernel's bank conflicts and "
            + "sector efficiency.")
    Path launchPlan;

    @Option(names = "--zero2-ranks", defaultValue = "1", description = "Plan one rank of an N-rank ZeRO-2 run "
            + "(\"sharding\": \"shard_grad_op\"): the optimizer keeps the moments of the largest rank's share of the "
            + "parameters only, as that rank does (default ${DEFAULT-VALUE}: unsharded).")
    int zeroRanks;

    @Option(names = "--ema", description = "Keep an EMA of the weights on the device and update it every step, as "
            + "the 512-px stages of the recipe do (with --zero2-ranks, of that rank's shard only, as training keeps it).")
    boolean ema;

    @Option(names = "--recompute", arity = "0..1", defaultValue = "none", fallbackValue = "block",
            paramLabel = "MODE", description = "What to recompute in the backward instead of keeping it: none (the "
            + "default), attention (each block's attention) or block (each whole block; --recompute alone): less "
            + "memory for more forward FLOPs.")
    String recomputeName;
    /** --recompute parsed (call()). */
    private Recomputation recompute;

    @Option(names = "--plan-only", description = "With --launch-plan on the emulator (--backend cuda --device emu): "
            + "set up the weights, optimizer and batch under the dry-run trace too, so nothing is computed or written "
            + "and untouched device memory costs no host memory, then trace one step. A full-size stage plans in "
            + "seconds; the plan's memory and launches are those of a real step (the values are not). Needs --steps 0 "
            + "--warmup 0.")
    boolean planOnly;

    /** The traced step of --launch-plan, for the summary line. */
    private record PlannedStep(LaunchPlan plan, long liveBeforeBytes, long peakBytes) {
    }

    private PlannedStep plannedStep;

    @Override
    public Integer call() throws Exception {
        MicroDiTConfig c = ConfigFile.resolve(config);
        MaskingMode mode = switch (masking) {
            case "deferred" -> MaskingMode.DEFERRED;
            case "naive" -> MaskingMode.NAIVE;
            case "none" -> MaskingMode.NONE;
            default -> throw new IllegalArgumentException("--masking must be deferred, naive or none, got " + masking);
        };
        if (mask == 0) {
            mode = MaskingMode.NONE;
        }
        recompute = Recomputation.parse(recomputeName, "--recompute");
        if (batch < 1 || steps < 0 || warmup < 0 || captionLength < 1 || !(perturb >= 0) || zeroRanks < 1) {
            throw new IllegalArgumentException("need --batch ≥ 1, --steps ≥ 0, --warmup ≥ 0, --caption-length ≥ 1, "
                    + "--perturb ≥ 0 and --zero2-ranks ≥ 1");
        }
        if (planOnly && (launchPlan == null || steps != 0 || warmup != 0 || export != null)) {
            throw new IllegalArgumentException("--plan-only needs --launch-plan, --steps 0 and --warmup 0 (and no "
                    + "--export): it computes nothing");
        }
        Precision precision = precisionName == null ? Backends.defaultPrecision(backendName)
                : Precision.parse(precisionName, "--precision");
        tf32.check(backendName);
        EdmObjective objective = new EdmObjective(Edm.MICRODIT_256, mode, mask, 0);
        try (Backend backend = Backends.open(backendName, threads, device.device);
             MemoryScope data = backend.scope("bench-batch")) {
            tf32.apply(backend);
            LaunchTrace setup = planOnly ? dryRunSetup(backend) : null;
            MicroDiT model;
            try {
                model = planOnly ? MicroDiT.forPlanning(c, backend) : MicroDiT.create(c, seed, backend);
            } catch (RuntimeException e) {
                if (setup != null) {
                    setup.close();
                }
                throw e;
            }
            int shardRank = ZeroShards.largestShard(model.parameters().all(), zeroRanks);
            try (AdamW optimizer = zeroRanks == 1 ? new AdamW(backend, model.parameters(), AdamW.MICRODIT)
                    : AdamW.shardOf(backend, model.parameters(), AdamW.MICRODIT, shardRank, zeroRanks);
                 ExponentialMovingAverage average = !ema ? null : zeroRanks == 1
                         ? new ExponentialMovingAverage(backend, model.parameters(), EMA_DECAY)
                         : ExponentialMovingAverage.shardOf(backend, model.parameters(), EMA_DECAY, shardRank,
                                 zeroRanks)) {
                if (!planOnly) {
                    perturb(backend, model);
                }
                Tensor latents = Tensor.zeros(data, io.microdit.tensor.DType.F32, batch, c.inChannels(),
                        c.inputSize(), c.inputSize());
                backend.normal(seed, STREAM_LATENTS, 0, latents);
                Tensor captions = Tensor.zeros(data, io.microdit.tensor.DType.F32, batch, captionLength,
                        c.captionChannels());
                backend.normal(seed, STREAM_CAPTIONS, 0, captions);
                Graph drawing = new Graph(backend, data);
                EdmObjective.Draw draw = objective.draw(drawing, model, latents.shape(), seed, 0);
                double[] sigma = Arrays.stream(draw.sigma()).map(s -> (float) s).toArray();
                if (export != null) {
                    export(c, backend, model, objective, latents, captions, sigma, draw, precision);
                }
                double[] milliseconds = new double[steps];
                double[] cpuMilliseconds = new double[steps];
                long flopsPerStep = 0;
                for (int i = 0; i < warmup + steps; i++) {
                    long flopsBefore = backend.flops().total();
                    long cpuStart = processCpuNanos();
                    long start = System.nanoTime();
                    step(backend, model, optimizer, average, recompute, objective, latents, captions, sigma, draw, precision,
                            null);
                    backend.synchronize();
                    long elapsed = System.nanoTime() - start;
                    long cpu = processCpuNanos() - cpuStart;
                    flopsPerStep = backend.flops().total() - flopsBefore;
                    if (i >= warmup) {
                        milliseconds[i - warmup] = elapsed / 1e6;
                        cpuMilliseconds[i - warmup] = cpu / 1e6;
                    }
                }
                Long launchesPerStep = null;
                if (launchPlan != null && optimizer.step() == 0) {
                    // The plan is of a steady step: from the first update on, the optimizer writes the bf16 working
                    // copies that later forwards read instead of converting the weights. Under --plan-only this step
                    // runs in the setup's dry run, so nothing is computed.
                    step(backend, model, optimizer, average, recompute, objective, latents, captions, sigma, draw,
                            precision, null);
                    backend.synchronize();
                }
                if (setup != null) {
                    setup.close(); // the plan traces the step on its own
                    setup = null;
                }
                if (launchPlan != null) {
                    launchesPerStep = plan(c, mode, backend, model, optimizer, average, objective, latents, captions,
                            sigma, draw, precision);
                }
                report(c, mode, backend, precision, milliseconds, cpuMilliseconds, flopsPerStep, launchesPerStep);
            } finally {
                if (setup != null) {
                    setup.close();
                }
                model.parameters().close();
            }
        }
        return 0;
    }

    /** The dry-run trace --plan-only sets up under; the emulated CUDA backend only. */
    private static LaunchTrace dryRunSetup(Backend backend) {
        if (!(backend instanceof CudaBackend cuda) || !CudaRuntime.isEmulator()) {
            throw new IllegalArgumentException("--plan-only needs --backend cuda on the emulator (--device emu): only "
                    + "the emulator can trace without running");
        }
        return cuda.traceLaunches(true);
    }

    /** Traces one training step's launches, writes the plan to --launch-plan and returns the launch count. */
    private long plan(MicroDiTConfig c, MaskingMode mode, Backend backend, MicroDiT model, AdamW optimizer,
                      ExponentialMovingAverage average, EdmObjective objective, Tensor latents, Tensor captions, double[] sigma, EdmObjective.Draw draw,
                      Precision precision) throws java.io.IOException {
        if (!(backend instanceof CudaBackend cuda)) {
            throw new IllegalArgumentException("--launch-plan needs --backend cuda (it traces CUDA kernel launches)");
        }
        boolean dryRun = CudaRuntime.isEmulator();
        Map<String, Long> flopsBefore = backend.flops().snapshot();
        List<LaunchTrace.OpCall> calls;
        long[] liveAfterForward = new long[1];
        long liveBefore = cuda.memory().liveBytes();
        cuda.memory().resetPeak();
        try (LaunchTrace trace = cuda.traceLaunches(dryRun)) {
            step(backend, model, optimizer, average, recompute, objective, latents, captions, sigma, draw, precision,
                    () -> liveAfterForward[0] = cuda.memory().liveBytes());
            backend.synchronize();
            calls = trace.calls();
        }
        long peak = cuda.memory().peakLiveBytes();
        Map<String, Long> flops = new LinkedHashMap<>();
        backend.flops().snapshot().forEach((op, total) -> flops.put(op, total - flopsBefore.getOrDefault(op, 0L)));
        LaunchPlan.Gpu gpu = !dryRun && backend.name().contains("H200") ? LaunchPlan.Gpu.H200 : LaunchPlan.Gpu.H100_SXM;
        LaunchPlan plan = new LaunchPlan(gpu, calls, flops);
        String header = String.format(Locale.ROOT, "launch plan of one training step: %s, batch %d, %s masking %s, "
                        + "%s, %d caption tokens%n%s%n", c.name(), batch, mode.name().toLowerCase(Locale.ROOT),
                mode == MaskingMode.NONE ? "0" : Double.toString(mask),
                precision.label() + (cuda.tf32Allowed() ? " (f32 products on tf32 tensor cores)" : ""), captionLength,
                dryRun ? "dry run on the emulator: launch shapes as a GPU gets them; no kernel ran"
                        : "traced on " + backend.name());
        Path parent = launchPlan.toAbsolutePath().getParent();
        if (parent != null) {
            Files.createDirectories(parent);
        }
        String memory = String.format(Locale.ROOT, "device memory: %.2f GiB before the step (weights, optimizer%s%s, "
                        + "batch), %.2f GiB after the forward, peak %.2f GiB%n", liveBefore / GIB,
                zeroRanks > 1 ? " moments of one rank's share at " + zeroRanks + "-rank ZeRO-2" : "",
                average != null ? ", EMA" : "", liveAfterForward[0] / GIB, peak / GIB);
        String occupancy = KernelResources.ofBuild()
                .map(resources -> plan.formatOccupancy(resources, KernelResources.Architecture.SM_90))
                .orElse("theoretical occupancy: no " + KernelResources.REPORT_FILE
                        + " beside the native library (the nvcc build writes it)\n");
        String accesses = "";
        if (CudaRuntime.isCheckedEmulator()) {
            // The dry run executed nothing: the access model needs one more step whose kernels really run.
            MemoryAccessModel.begin();
            List<MemoryAccessModel.KernelCounts> counts;
            try {
                step(backend, model, optimizer, average, recompute, objective, latents, captions, sigma, draw, precision,
                        () -> { });
                backend.synchronize();
            } finally {
                counts = MemoryAccessModel.end();
            }
            accesses = "memory accesses of one more step, run on the checked emulator (bank conflicts: excess "
                    + "wavefronts over one per phase; coalescing: ideal 32-byte sectors / sectors touched)\n"
                    + MemoryAccessModel.format(counts);
        }
        Files.writeString(launchPlan, header + memory + plan.format() + occupancy + accesses);
        plannedStep = new PlannedStep(plan, liveBefore, peak);
        return plan.launches();
    }

    private void perturb(Backend backend, MicroDiT model) {
        try (MemoryScope scratch = backend.scope("perturb")) {
            long offset = 0;
            for (Parameter p : model.parameters().all()) {
                Tensor noise = scratch.zeros(p.value().shape());
                backend.normal(seed, STREAM_PERTURB, offset, noise);
                backend.axpy((float) perturb, noise, p.value());
                offset += noise.numel();
            }
        }
    }

    static double step(Backend backend, MicroDiT model, AdamW optimizer, ExponentialMovingAverage average,
                       Recomputation recompute, EdmObjective objective,
                               Tensor latents, Tensor captions, double[] sigma, EdmObjective.Draw draw,
                               Precision precision, Runnable afterForward) {
        model.parameters().zeroGrad(backend);
        double loss;
        try (MemoryScope scope = backend.scope("bench-step")) {
            Graph graph = new Graph(backend, scope, precision).recompute(recompute)
                    .useBf16Copies(optimizer.bf16Copies());
            try (GradScope ignored = graph.recordGradients()) {
                EdmObjective.Terms terms = objective.terms(graph, model, latents, captions, sigma, draw.noise(),
                        draw.mask());
                loss = backend.read(terms.loss().value())[0];
                if (afterForward != null) {
                    afterForward.run();
                }
                terms.loss().backward();
            }
            optimizer.keepBf16Copies(graph.convertedParameters());
        }
        optimizer.update(LEARNING_RATE, GRADIENT_CLIP);
        if (average != null) {
            average.update();
        }
        return loss;
    }

    private void export(MicroDiTConfig c, Backend backend, MicroDiT model, EdmObjective objective, Tensor latents,
                        Tensor captions, double[] sigma, EdmObjective.Draw draw, Precision precision)
            throws java.io.IOException {
        Files.createDirectories(export);
        Weights.save(model, export.resolve("weights.safetensors"), Map.of("microdit.seed", Long.toString(seed),
                "microdit.perturb", Double.toString(perturb)));
        Map<String, Object> reference = new LinkedHashMap<>();
        try (MemoryScope host = new MemoryScope("bench-export-host"); MemoryScope scope = backend.scope("bench-export")) {
            Map<String, Tensor> batchTensors = new LinkedHashMap<>();
            batchTensors.put("x0", backend.download(latents, host));
            batchTensors.put("y", backend.download(captions, host).reshape(batch, 1, captionLength,
                    c.captionChannels()));
            batchTensors.put("sigma", Tensor.of(host, toFloats(sigma), batch));
            batchTensors.put("noise", backend.download(draw.noise(), host));
            TokenMask tokenMask = objective.mode() == MaskingMode.NONE ? null : draw.mask();
            if (tokenMask != null) {
                batchTensors.put("ids_keep", backend.download(tokenMask.keepIds(), host));
                batchTensors.put("mask", backend.download(tokenMask.removed(), host));
            }
            Safetensors.write(export.resolve("batch.safetensors"), batchTensors,
                    Map.of("masking", objective.mode().name().toLowerCase(Locale.ROOT)));

            model.parameters().zeroGrad(backend);
            long flopsBefore = backend.flops().total();
            Graph graph = new Graph(backend, scope, precision);
            try (GradScope ignored = graph.recordGradients()) {
                EdmObjective.Terms terms = objective.terms(graph, model, latents, captions, sigma, draw.noise(),
                        draw.mask());
                reference.put("loss", (double) backend.read(terms.loss().value())[0]);
                double sum = 0, sumAbs = 0;
                for (float v : backend.read(terms.output().value())) {
                    sum += v;
                    sumAbs += Math.abs(v);
                }
                reference.put("output_sum", sum);
                reference.put("output_abs_sum", sumAbs);
                terms.loss().backward();
            }
            reference.put("forward_backward_flops", backend.flops().total() - flopsBefore);
        }
        double total = 0;
        Map<String, Object> norms = new LinkedHashMap<>();
        for (Parameter p : model.parameters().all()) {
            double squares = p.grad() == null ? 0 : backend.sumOfSquares(p.grad());
            total += squares;
            norms.put(p.name(), Math.sqrt(squares));
        }
        reference.put("grad_norm", Math.sqrt(total));
        reference.put("grad_norms", norms);
        reference.put("masking", objective.mode().name().toLowerCase(Locale.ROOT));
        reference.put("mask_ratio", objective.maskRatio());
        reference.put("batch", batch);
        reference.put("learning_rate", LEARNING_RATE);
        reference.put("gradient_clip", GRADIENT_CLIP);
        reference.put("config", c.name());
        reference.put("precision", precision.label());
        reference.put("backend", backend.name());
        Files.writeString(export.resolve("reference.json"), Json.write(reference) + "\n");
        model.parameters().zeroGrad(backend);
    }

    private static float[] toFloats(double[] values) {
        float[] out = new float[values.length];
        for (int i = 0; i < values.length; i++) {
            out[i] = (float) values[i];
        }
        return out;
    }

    /** CPU time of the whole process (all threads, the JIT's and GC's included), in nanoseconds. */
    private static long processCpuNanos() {
        return ((com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory
                .getOperatingSystemMXBean()).getProcessCpuTime();
    }

    private void report(MicroDiTConfig c, MaskingMode mode, Backend backend, Precision precision,
                        double[] milliseconds, double[] cpuMilliseconds, long flopsPerStep,
                        Long launchesPerStep) {
        double median = median(milliseconds);
        Map<String, Object> line = new LinkedHashMap<>();
        line.put("engine", "microdit");
        line.put("config", c.name());
        line.put("batch", batch);
        line.put("masking", mode.name().toLowerCase(Locale.ROOT));
        line.put("mask", mode == MaskingMode.NONE ? 0.0 : mask);
        line.put("threads", backend instanceof CpuBackend cpu ? cpu.threads() : null);
        line.put("backend", backend.name());
        line.put("precision", precision.label());
        line.put("steps", steps);
        line.put("ms_per_step", steps == 0 ? null : median);
        line.put("img_per_s", steps == 0 ? null : batch / (median / 1e3));
        line.put("gflop_per_s", steps == 0 ? null : flopsPerStep / (median / 1e3) / 1e9);
        line.put("flops_per_step", flopsPerStep);
        if (backend instanceof CudaBackend cuda) {
            line.put("tf32", cuda.tf32Allowed());
            line.put("peak_device_bytes", cuda.memory().peakLiveBytes());
        }
        if (launchesPerStep != null) {
            line.put("launches_per_step", launchesPerStep);
        }
        line.put("zero2_ranks", zeroRanks);
        line.put("ema", ema);
        if (plannedStep != null) {
            // The traced step's own numbers (the plan's), so a script can tabulate stages without parsing the plan.
            LaunchPlan plan = plannedStep.plan();
            line.put("plan_device_bytes_before_step", plannedStep.liveBeforeBytes());
            line.put("plan_peak_device_bytes", plannedStep.peakBytes());
            line.put("plan_operand_bytes", plan.operandBytes());
            line.put("plan_flops", plan.flops());
            line.put("plan_roofline_seconds", plan.rooflineSeconds());
            line.put("plan_mfu_bound", plan.mfuBound());
        }
        line.put("step_ms", Arrays.stream(milliseconds).boxed().toList());
        line.put("step_cpu_ms", Arrays.stream(cpuMilliseconds).boxed().toList());
        System.out.println(Json.write(line));
    }

    static double median(double[] values) {
        if (values.length == 0) {
            return Double.NaN;
        }
        double[] sorted = values.clone();
        Arrays.sort(sorted);
        int n = sorted.length;
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    }
}
