package io.microdit.train;

import io.microdit.autograd.Parameter;
import io.microdit.autograd.Precision;
import io.microdit.backend.Backend;
import io.microdit.backend.Backends;
import io.microdit.backend.cpu.CpuBackend;
import io.microdit.backend.cpu.CpuPeak;
import io.microdit.backend.cuda.CudaBackend;
import io.microdit.data.CaptionEncoder;
import io.microdit.data.FashionMnist;
import io.microdit.data.FashionMnistData;
import io.microdit.data.LatentShards;
import io.microdit.data.MdsLatents;
import io.microdit.data.TrainingData;
import io.microdit.diffusion.HeunSampler;
import io.microdit.distributed.Communicator;
import io.microdit.distributed.InProcessWorld;
import io.microdit.io.Json;
import io.microdit.io.JsonException;
import io.microdit.model.ConfigFile;
import io.microdit.model.MicroDiT;
import io.microdit.model.MicroDiTConfig;
import io.microdit.model.ParameterLayout;
import io.microdit.tensor.HostAllocator;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.UnaryOperator;

/**
 * A training run with its folder: {@code config.json} (the training config) and {@code model.json}, checkpoints,
 * {@code metrics.jsonl} (one line per step: loss, learning rate, gradient norm, img/s, MFU against the CPU's
 * measured peak, live memory, the host allocator's reserved and live bytes, the step's cache hits, fresh
 * reservations and minor page faults), {@code samples/step-N.png} grids during training, and at the end
 * {@code loss.png} and {@code samples/final.png} (every class, from the EMA weights when EMA is on).
 *
 * <p>Started by {@code mpirun -np N}, each process is one rank of a data-parallel run ({@link Trainer}): the ranks
 * first check they run the same config and code ({@link RunAgreement}), then train the single-process run's steps
 * together; rank 0 alone prints progress and writes the folder, in the single-process format. An error on any rank
 * is printed with its rank and ends every rank (MPI_Abort), so no rank waits forever for a dead one.
 */
public final class TrainingRun {
    /** How {@link #run} ended. */
    public enum Outcome {
        /** Every step taken, the final checkpoint and samples written. */
        FINISHED,
        /** Stopped by a {@link Preemption} request after a checkpoint of the last finished step. */
        PREEMPTED
    }

    /** The caption table's seed: fixed, so that prompts at sampling time embed as they did in training. */
    public static final long CAPTION_TABLE_SEED = 0x6d6963726f646974L;
    /** Samples per prompt in the final grid unless the caller asks otherwise. */
    public static final int DEFAULT_FINAL_SAMPLES = 4;
    private static final long SAMPLE_SEED = 2024;

    private final TrainingConfig config;
    private final Path directory;
    private final PrintStream out;
    private final String backendName;
    private final String device;
    private final int finalSamples;
    private final boolean tf32;
    private UnaryOperator<TrainingData> dataFilter = UnaryOperator.identity();
    private Preemption preemption = Preemption.never();
    private Path lastCheckpoint;
    private int replicas = 1;

    /** A run on the CPU backend. */
    public TrainingRun(TrainingConfig config, Path directory, PrintStream out) {
        this(config, directory, out, "cpu", null, DEFAULT_FINAL_SAMPLES, false);
    }

    /**
     * A run on the backend and device named as {@link Backends#open} names them (cpu or cuda; cuda, emu or null
     * for the default), ending with a grid of {@code finalSamples} samples per prompt; with {@code tf32} (cuda
     * only) its F32 matrix products run on TF32 tensor cores ({@link CudaBackend#allowTf32}).
     */
    public TrainingRun(TrainingConfig config, Path directory, PrintStream out, String backendName, String device,
            int finalSamples, boolean tf32) {
        if (tf32 && !"cuda".equals(backendName)) {
            throw new IllegalArgumentException("--tf32 applies to --backend cuda only: the " + backendName
                    + " backend has no TF32 path");
        }
        if (finalSamples < 1) {
            throw new IllegalArgumentException("--final-samples must be at least 1, got " + finalSamples);
        }
        this.config = config;
        this.directory = directory;
        this.out = out;
        this.backendName = backendName;
        this.device = device;
        this.finalSamples = finalSamples;
        this.tf32 = tf32;
    }

    /** The caption encoder a run with this model config uses. */
    public static CaptionEncoder captionEncoder(int captionLength, MicroDiTConfig model) {
        return new CaptionEncoder(captionLength, model.captionChannels(), CAPTION_TABLE_SEED);
    }

    /**
     * Trains from the run folder's latest checkpoint when {@code resume}, else from scratch; as one rank of a
     * data-parallel run when this process was started by mpirun. A resume takes the newest checkpoint whose files
     * match their checksums, warning of each damaged one passed over. Stops early, with a checkpoint, when
     * {@code preemption} is requested.
     */
    public Outcome run(boolean resume, Preemption preemption) throws IOException {
        this.preemption = preemption;
        return run(resume);
    }

    /** Passes the training data through {@code filter} before training: tests poison samples with it. */
    TrainingRun withDataFilter(UnaryOperator<TrainingData> filter) {
        this.dataFilter = filter;
        return this;
    }

    /**
     * Runs the step's micro-batches on {@code replicas} data-parallel replicas, threads of this process that are the
     * ranks of an {@link InProcessWorld}, or on as many as {@link Replicas#auto} picks for 0. Their gradients are
     * added in the order one process accumulating the same micro-batches adds them, so the count changes the speed
     * and the memory, never the bits. Not under mpirun, where each rank is a replica.
     */
    public TrainingRun withReplicas(int replicas) {
        if (replicas < 0) {
            throw new IllegalArgumentException("--replicas must be a positive count or auto, got " + replicas);
        }
        this.replicas = replicas;
        return this;
    }

    /** {@link #run(boolean, Preemption)} without preemption. */
    public Outcome run(boolean resume) throws IOException {
        boolean underMpi = System.getenv("OMPI_COMM_WORLD_SIZE") != null;
        int count = replicas;
        if (count == 0) {
            count = underMpi ? 1 : Replicas.auto(config, backendName, Runtime.getRuntime().availableProcessors(),
                    ParameterLayout.of(ConfigFile.resolve(config.model())).total(), Replicas.physicalMemory());
        }
        if (count > 1) {
            if (underMpi) {
                throw new IllegalArgumentException("--replicas " + count + " under mpirun: each MPI rank is one "
                        + "replica; run the ranks with --replicas 1");
            }
            return runReplicas(resume, count);
        }
        try (Communicator communicator = Communicator.fromEnvironment()) {
            // Ranks on one machine share its processors.
            int threads = config.threads() == 0 ? Math.max(1, Runtime.getRuntime().availableProcessors()
                    / communicator.localSize()) : config.threads();
            return runRank(resume, communicator, threads, Double.NaN, 1, null);
        }
    }

    /**
     * {@code count} replicas on threads of this process ({@link Replicas#run}): the CPU threads shared out among them,
     * the CPU's peak measured once for all of them before they start.
     */
    private Outcome runReplicas(boolean resume, int count) throws IOException {
        if (!"cpu".equals(backendName)) {
            throw new IllegalArgumentException("--replicas " + count + " needs the cpu backend (got " + backendName
                    + "): replicas are threads of one process sharing its CPU");
        }
        int accumulation = config.accumulationSteps();
        if (accumulation % count != 0) {
            throw new IllegalArgumentException("--replicas " + count + ": batch_size " + config.batchSize()
                    + " / micro_batch_size " + config.microBatchSize() + " = " + accumulation + " micro-batches per "
                    + "step do not go round " + count + " replicas evenly: choose a micro_batch_size that makes "
                    + "batch_size / micro_batch_size a multiple of " + count + ", or another --replicas");
        }
        int total = config.threads() == 0 ? Runtime.getRuntime().availableProcessors() : config.threads();
        int threads = Math.max(1, total / count);
        double peak = CpuPeak.measure(threads * count, 0.3);
        // Fashion-MNIST's images are read-only arrays, so one copy serves every replica (246 MB each otherwise); the
        // other readers keep files, mappings or caches of their own, so each replica opens its own.
        TrainingData shared = "fashion-mnist".equals(config.data()) ? loadData(ConfigFile.resolve(config.model()))
                : null;
        return Replicas.run(count, communicator -> runRank(resume, communicator, threads, peak, count, shared));
    }

    /**
     * This rank's part of the run, on {@code threads} CPU threads; {@code peak} is the CPU's measured peak (GFLOP/s)
     * for all of this process's ranks ({@code processRanks} of them), or NaN for rank 0 to measure its own. It reads
     * {@code shared} (another's, left open) or, when that is null, data it loads and closes itself.
     */
    private Outcome runRank(boolean resume, Communicator communicator, int threads, double peak, int processRanks,
                            TrainingData shared) throws IOException {
        try {
            MicroDiTConfig modelConfig = ConfigFile.resolve(config.model());
            TrainingData data = shared != null ? shared : loadData(modelConfig);
            try {
                return run(resume, modelConfig, dataFilter.apply(data), communicator, threads, peak, processRanks);
            } finally {
                if (shared == null && data instanceof AutoCloseable closeable) {
                    try {
                        closeable.close();
                    } catch (Exception e) {
                        throw new IOException("closing the training data: " + e.getMessage(), e);
                    }
                }
            }
        } catch (IOException | RuntimeException | Error e) {
            if (communicator.size() > 1) {
                // The other ranks may be waiting in a collective for this one: say what failed here, then end
                // them all (closing would wait for them in MPI_Finalize).
                System.err.println("microdit: rank " + communicator.rank() + " of " + communicator.size()
                        + " failed: " + e.getMessage());
                System.err.flush();
                communicator.abort(1);
            }
            throw e;
        }
    }

    private Outcome run(boolean resume, MicroDiTConfig modelConfig, TrainingData data, Communicator communicator,
                        int threads, double processPeak, int processRanks) throws IOException {
        boolean writer = communicator.rank() == 0;
        PrintStream out = writer ? this.out : new PrintStream(OutputStream.nullOutputStream());
        if (writer) {
            Files.createDirectories(directory.resolve("samples"));
            Files.writeString(directory.resolve("config.json"), config.toJson() + "\n");
            Files.writeString(directory.resolve("model.json"), ConfigFile.toJson(modelConfig) + "\n");
        }
        try (Backend backend = Backends.open(backendName, backendName.equals("cpu") ? threads : null, device)) {
            // First, so a log always says what ran it: a run on the emulator is never mistaken for a GPU run.
            out.println("backend: " + Backends.describe(backend));
            if (communicator.size() > 1) {
                out.println("ranks: " + communicator.size() + " (" + communicator.describe() + ")");
            }
            if (tf32) {
                ((CudaBackend) backend).allowTf32(true);
            }
            MicroDiT model = MicroDiT.create(modelConfig, config.seed(), backend);
            try (Trainer trainer = new Trainer(config, model, data, backend, communicator)) {
                if (resume) {
                    Path from = restore(trainer, out);
                    out.println("resumed from " + from + " at step " + trainer.step());
                    if (writer) {
                        trimMetrics(trainer.step());
                    }
                } else if (writer) {
                    // A fresh start (e.g. --resume auto before any checkpoint): lines an earlier attempt wrote for
                    // steps it never checkpointed are redone now.
                    trimMetrics(0);
                }
                RunAgreement.require(communicator, Map.of(
                        "training_config", config.toJson(),
                        "model", ConfigFile.toJson(modelConfig),
                        "run", Json.write(Map.of("backend", backendName, "start_step", trainer.step())),
                        "code", Json.write(Map.of("microdit", String.valueOf(
                                        TrainingRun.class.getPackage().getImplementationVersion()),
                                "java", Runtime.version().toString()))));
                double peak;
                String peakSource;
                if (backend instanceof CpuBackend) {
                    // Only rank 0 reports it; the others would measure while rank 0 does, on the same cores. Replicas
                    // in this process come with the peak of all their threads, measured before they started.
                    peak = !Double.isNaN(processPeak) ? processPeak : writer ? CpuPeak.measure(threads, 0.3)
                            : Double.NaN;
                    peakSource = processRanks > 1 ? "CPU peak of all " + processRanks + " replicas' threads, measured"
                            : "CPU peak, measured";
                } else {
                    peak = Backends.gpuPeakFlops(backend.name(), config.precision(), tf32) / 1e9;
                    peakSource = Double.isNaN(peak) ? "no known peak for this device: MFU not reported"
                            : (tf32 && config.precision() == Precision.F32 ? "tf32" : config.precision().label())
                                    + " dense peak of the device";
                }
                out.printf("microdit train: %s (%,d parameters) on %s, %s, %d images, batch %d, %d steps; "
                                + "%.0f GFLOP/s (%s)%n", modelConfig.name(), model.parameters().count(),
                        backend.name(), config.precision().label(), data.size(), config.batchSize(),
                        config.totalSteps(), peak, peakSource);
                try {
                    if (writer) {
                        if (loop(trainer, backend, peak, processRanks, data, communicator) == Outcome.PREEMPTED) {
                            return Outcome.PREEMPTED;
                        }
                        return finish(trainer, backend, data, threads * processRanks);
                    }
                    // The other ranks take part in rank 0's checkpoints and samples: sharded moments and EMA are
                    // gathered from them.
                    while (!trainer.finished()) {
                        Trainer.StepResult r = trainer.trainStep();
                        if (samplesDue(trainer, r)) {
                            gatherAveragedWeights(trainer);
                        }
                        if (periodicCheckpoint(trainer, r)) {
                            trainer.checkpoint(directory);
                        }
                        if (stopAgreed(communicator)) {
                            if (!periodicCheckpoint(trainer, r)) {
                                trainer.checkpoint(directory);
                            }
                            return Outcome.PREEMPTED;
                        }
                    }
                    trainer.checkpoint(directory);
                    if (drawable(trainer)) {
                        gatherAveragedWeights(trainer);
                    }
                    return Outcome.FINISHED;
                } catch (Trainer.NonFiniteStepsException e) {
                    throw new IOException(e.getMessage() + ". The run stopped: "
                            + (lastCheckpoint == null ? "it wrote no checkpoint since it started"
                                    : "its last good checkpoint is " + lastCheckpoint)
                            + " (check the data, or lower the learning rate, before resuming)", e);
                }
            } finally {
                model.parameters().close();
            }
        }
    }

    private TrainingData loadData(MicroDiTConfig model) throws IOException {
        switch (config.data()) {
            case "fashion-mnist" -> {
                if (model.inChannels() != 1 || model.inputSize() != FashionMnist.SIZE) {
                    throw new IOException("model " + model.name() + " takes " + model.inChannels() + "×"
                            + model.inputSize() + "² latents; Fashion-MNIST gives 1×32²");
                }
                Path dir = FashionMnist.locate(config.dataDirectory() == null ? null
                        : Path.of(config.dataDirectory()));
                return new FashionMnistData(FashionMnist.train(dir), captionEncoder(config.captionLength(), model));
            }
            case "latents" -> {
                if (config.dataDirectory() == null) {
                    throw new IOException("training config: data \"latents\" needs 'data_dir' (a folder of shards)");
                }
                LatentShards shards = new LatentShards(Path.of(config.dataDirectory()));
                int[] l = shards.latentShape();
                if (l[0] != model.inChannels() || l[1] != model.inputSize() || l[2] != model.inputSize()
                        || shards.captionShape()[1] != model.captionChannels()) {
                    shards.close();
                    throw new IOException(config.dataDirectory() + ": shards hold latents " + Arrays.toString(l)
                            + " and captions " + Arrays.toString(shards.captionShape()) + "; model " + model.name()
                            + " needs [" + model.inChannels() + ", " + model.inputSize() + ", " + model.inputSize()
                            + "] and [L, " + model.captionChannels() + "]");
                }
                return shards;
            }
            case "mds" -> {
                MdsLatents mds = new MdsLatents(config.mds(), model.inChannels(), model.inputSize(),
                        config.captionLength(), model.captionChannels(), config.seed());
                for (String unchecked : mds.uncheckedHashes()) {
                    out.println("mds: note: unsupported hash, not checked: " + unchecked);
                }
                return mds;
            }
            default -> throw new IOException("training config key 'data' must be \"fashion-mnist\", \"latents\" or"
                    + " \"mds\", got '" + config.data() + "'");
        }
    }

    /**
     * Rank 0's loop: the steps, with metrics, progress, samples and checkpoints. Metrics and sample grids are a
     * record of the run, not its state: a failure to write them is a warning and the run goes on.
     */
    private Outcome loop(Trainer trainer, Backend backend, double peakGflops, int processRanks, TrainingData data,
                         Communicator communicator) throws IOException {
        int ranks = communicator.size();
        ProgressBar progress = ProgressBar.onConsole(trainer.step(), config.totalSteps(), config.batchSize(),
                Duration.ofSeconds(10));
        MetricsLog metrics = new MetricsLog(directory.resolve("metrics.jsonl"), progress);
        long started = System.nanoTime();
        try (metrics) {
            while (!trainer.finished()) {
                HostAllocator.Stats hostBefore = hostMemory(backend);
                long faultsBefore = MinorPageFaults.count();
                Trainer.StepResult r;
                try {
                    r = trainer.trainStep();
                } catch (Trainer.NonFiniteStepsException e) {
                    metrics.write(metricsLine(trainer, backend, e.result(), peakGflops, processRanks, ranks, started,
                            hostBefore, faultsBefore), true);
                    throw e;
                }
                metrics.write(metricsLine(trainer, backend, r, peakGflops, processRanks, ranks, started, hostBefore,
                        faultsBefore), r.step() % Math.max(1, config.logEvery()) == 0);
                if (r.skipped()) {
                    progress.log("step " + r.step() + " skipped: loss " + r.loss() + ", gradient norm "
                            + r.gradientNorm() + " (" + trainer.consecutiveBadSteps() + " in a row, max_bad_steps "
                            + config.maxBadSteps() + ")");
                }
                double gflops = r.flops() * processRanks / r.seconds() / 1e9;
                progress.update(r.step(), r.loss(), Double.isNaN(peakGflops)
                        ? String.format("lr %.2e  %.1f GFLOP/s", r.learningRate(), gflops)
                        : String.format("lr %.2e  MFU %.1f%%", r.learningRate(), 100 * gflops / peakGflops));
                if (samplesDue(trainer, r)) {
                    try (MemoryScope host = new MemoryScope("averaged-weights")) {
                        Map<String, Tensor> averaged = trainer.averagedWeights(host);
                        Path grid = directory.resolve("samples").resolve(String.format("step-%07d.png", r.step()));
                        if (!preemption.requested() && sampleGridOrWarn(trainer, backend, 1, data, averaged, 1,
                                Math.max(8, config.sampleSteps() / 2), grid, progress::log)) {
                            progress.log("samples: " + grid);
                        }
                    }
                }
                boolean checkpointed = periodicCheckpoint(trainer, r);
                if (checkpointed) {
                    metrics.flush();
                    lastCheckpoint = trainer.checkpoint(directory);
                    progress.log("checkpoint: " + lastCheckpoint);
                }
                if (stopAgreed(communicator)) {
                    metrics.flush();
                    long writing = System.nanoTime();
                    if (!checkpointed) {
                        lastCheckpoint = trainer.checkpoint(directory);
                    }
                    progress.log(String.format("stopped by %s after step %d; checkpoint: %s (written in %.2f s)",
                            preemption.reason() == null ? "another rank's signal" : preemption.reason(), r.step(),
                            lastCheckpoint, (System.nanoTime() - writing) / 1e9));
                    return Outcome.PREEMPTED;
                }
            }
        }
        progress.finish();
        return Outcome.FINISHED;
    }

    /**
     * Whether rank 0 draws a sample grid after step {@code r}: decided alike on every rank (no signal in it), since
     * they all take part in gathering a sharded EMA for it.
     */
    private boolean samplesDue(Trainer trainer, Trainer.StepResult r) {
        return config.sampleEvery() > 0 && r.step() % config.sampleEvery() == 0 && !trainer.finished()
                && drawable(trainer);
    }

    /** A rank other than 0's part in gathering the EMA rank 0 samples with (nothing to do unless it is sharded). */
    private static void gatherAveragedWeights(Trainer trainer) {
        try (MemoryScope host = new MemoryScope("averaged-weights")) {
            trainer.averagedWeights(host);
        }
    }

    /** Host memory of the step: the CPU backend's arena, and the shared one (batches, parameters, staging). */
    private static HostAllocator.Stats hostMemory(Backend backend) {
        HostAllocator.Stats shared = HostAllocator.shared().stats();
        return backend instanceof CpuBackend cpu ? shared.plus(cpu.memory().stats()) : shared;
    }

    /** The metrics.jsonl line of a step (a skipped one has no loss or gradient norm: they were not finite). */
    private String metricsLine(Trainer trainer, Backend backend, Trainer.StepResult r, double peakGflops,
                               int processRanks, int ranks, long started, HostAllocator.Stats hostBefore,
                               long faultsBefore) {
        long faults = MinorPageFaults.count() - faultsBefore;
        HostAllocator.Stats host = hostMemory(backend);
        // This process's rate: rank 0's FLOPs times its replicas (every micro-batch has the same shapes, so the same
        // FLOPs), against the peak of all their threads.
        double gflops = r.flops() * processRanks / r.seconds() / 1e9;
        Map<String, Object> line = new LinkedHashMap<>();
        line.put("step", r.step());
        line.put("stage", config.stages().get(r.stage()).name());
        line.put("loss", Double.isFinite(r.loss()) ? r.loss() : null);
        line.put("lr", r.learningRate());
        line.put("grad_norm", Double.isFinite(r.gradientNorm()) ? r.gradientNorm() : null);
        if (r.skipped()) {
            line.put("bad_step", true);
        }
        line.put("skipped_steps", trainer.skippedSteps());
        line.put("img_per_s", config.batchSize() / r.seconds());
        line.put("gflops", gflops);
        line.put("mfu", Double.isNaN(peakGflops) ? null : gflops / peakGflops);
        line.put("live_bytes", trainer.liveBytes());
        line.put("host_reserved_bytes", host.reservedBytes());
        line.put("host_live_bytes", host.liveBytes());
        line.put("host_cache_hits", host.cacheHits() - hostBefore.cacheHits());
        line.put("host_fresh_reservations", host.freshReservations() - hostBefore.freshReservations());
        line.put("minor_faults", faultsBefore < 0 ? null : faults);
        if (ranks > 1) {
            line.put("ranks", ranks);
            line.put("comm_fraction", r.communicationSeconds() / r.seconds());
        }
        line.put("elapsed_s", (System.nanoTime() - started) / 1e9);
        return Json.write(line);
    }

    /**
     * Whether step {@code r} ends with a periodic checkpoint: every {@code checkpoint_every} steps, but never right
     * after a skipped step, so that the last checkpoint is always one of a good step.
     */
    private boolean periodicCheckpoint(Trainer trainer, Trainer.StepResult r) {
        return config.checkpointEvery() > 0 && r.step() % config.checkpointEvery() == 0 && !trainer.finished()
                && !r.skipped();
    }

    /**
     * Whether the run stops now: this process was asked to, or (on several ranks, which must stop after the same
     * step) any rank was: one small all-reduce per step, so signals delivered to the ranks at different moments
     * still stop them together.
     */
    private boolean stopAgreed(Communicator communicator) {
        if (communicator.size() == 1) {
            return preemption.requested();
        }
        try (MemoryScope scope = new MemoryScope("stop-flag")) {
            Tensor flag = Tensor.of(scope, new float[] {preemption.requested() ? 1 : 0}, 1);
            communicator.allReduceSum(flag);
            return flag.toFloatArray()[0] > 0;
        }
    }

    /**
     * Restores the newest loadable checkpoint, falling back past damaged ones with a warning; returns its folder.
     */
    private Path restore(Trainer trainer, PrintStream out) throws IOException {
        List<String> reasons = new ArrayList<>();
        for (Path candidate : Checkpoint.candidates(directory, w -> out.println("warning: " + w))) {
            try {
                trainer.restore(candidate);
                lastCheckpoint = candidate;
                return candidate;
            } catch (IOException e) {
                reasons.add(e.getMessage());
                out.println("warning: checkpoint " + candidate + " cannot be loaded (" + e.getMessage()
                        + "); falling back to the previous one");
            }
        }
        throw new IOException(directory + (reasons.isEmpty() ? " has no checkpoint to resume from"
                : " has no loadable checkpoint: " + String.join("; ", reasons)));
    }

    /**
     * Drops the metrics lines of steps after {@code step} (written before the run stopped, redone now) and any line
     * a kill cut short, so the resumed run's metrics read as one run's. The file is replaced atomically.
     */
    private void trimMetrics(long step) throws IOException {
        Path file = directory.resolve("metrics.jsonl");
        if (!Files.isRegularFile(file)) {
            return;
        }
        StringBuilder kept = new StringBuilder();
        for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
            try {
                if (Json.parse(line) instanceof Map<?, ?> m && m.get("step") instanceof Long s && s <= step) {
                    kept.append(line).append('\n');
                }
            } catch (JsonException e) {
                // A line cut short by a kill: nothing of it is worth keeping.
            }
        }
        Path temporary = directory.resolve(".metrics.jsonl.tmp");
        Files.writeString(temporary, kept, StandardCharsets.UTF_8);
        Files.move(temporary, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }

    /**
     * metrics.jsonl, appended to line by line. The first failure to write it is a warning (with the path and the
     * system's reason) and the later lines are dropped: a full disk must not end a run that can still checkpoint.
     */
    private static final class MetricsLog implements AutoCloseable {
        private final Path file;
        private final ProgressBar progress;
        private BufferedWriter writer;
        private boolean failed;

        MetricsLog(Path file, ProgressBar progress) {
            this.file = file;
            this.progress = progress;
            try {
                writer = Files.newBufferedWriter(file, StandardCharsets.UTF_8, StandardOpenOption.CREATE,
                        StandardOpenOption.APPEND);
            } catch (IOException e) {
                fail(e);
            }
        }

        void write(String line, boolean flush) {
            if (failed) {
                return;
            }
            try {
                writer.write(line);
                writer.newLine();
                if (flush) {
                    writer.flush();
                }
            } catch (IOException e) {
                fail(e);
            }
        }

        void flush() {
            if (!failed) {
                try {
                    writer.flush();
                } catch (IOException e) {
                    fail(e);
                }
            }
        }

        private void fail(IOException e) {
            failed = true;
            progress.log("warning: cannot write " + file + " (" + reason(e) + "): metrics are no longer recorded; "
                    + "training goes on");
        }

        @Override
        public void close() {
            if (writer != null) {
                try {
                    writer.close();
                } catch (IOException e) {
                    if (!failed) {
                        fail(e);
                    }
                }
            }
        }
    }

    private static String reason(IOException e) {
        return e.getMessage() == null ? e.getClass().getSimpleName() : e.getClass().getSimpleName() + ": "
                + e.getMessage();
    }

    /** Rank 0's end of the run: the final checkpoint, the loss curve and the final grid, drawn on samplingThreads. */
    private Outcome finish(Trainer trainer, Backend backend, TrainingData data, int samplingThreads)
            throws IOException {
        Path checkpoint = trainer.checkpoint(directory);
        lastCheckpoint = checkpoint;
        out.println("checkpoint: " + checkpoint);
        try (MemoryScope host = new MemoryScope("averaged-weights")) {
            // Gathered first: the other ranks take part whether or not this one goes on to draw.
            Map<String, Tensor> averaged = drawable(trainer) ? trainer.averagedWeights(host) : null;
            if (preemption.requested()) {
                // The steps are done and saved; a resume redoes only the loss curve and the samples.
                out.println("stopped by " + preemption.reason() + " before the final samples");
                return Outcome.PREEMPTED;
            }
            try {
                writeLossCurve();
            } catch (IOException | RuntimeException e) {
                out.println("warning: no loss curve: " + e.getMessage());
            }
            if (!drawable(trainer)) {
                out.println("samples: none drawn: " + trainer.model().config().inChannels() + "-channel latents "
                        + "become images only through the VAE's decoder, which microdit does not have");
                return Outcome.FINISHED;
            }
            Path grid = directory.resolve("samples").resolve("final.png");
            if (sampleGridOrWarn(trainer, backend, samplingThreads, data, averaged, finalSamples,
                    config.sampleSteps(), grid, out::println)) {
                out.println("samples: " + grid + (data instanceof FashionMnistData
                        ? " (rows: " + String.join(", ", FashionMnist.CLASS_NAMES) + ")"
                        : " (rows: the first 10 captions)"));
            }
            return Outcome.FINISHED;
        }
    }

    /** {@link #sampleGrid}, a failure to write the image being a warning: returns whether it was written. */
    private boolean sampleGridOrWarn(Trainer trainer, Backend backend, int samplingThreads, TrainingData data,
                                     Map<String, Tensor> averaged, int perPrompt, int steps, Path file,
                                     java.util.function.Consumer<String> warn) {
        try {
            sampleGrid(trainer, backend, samplingThreads, data, averaged, perPrompt, steps, file);
            return true;
        } catch (IOException e) {
            warn.accept("warning: cannot write " + file + " (" + reason(e) + "); training goes on");
            return false;
        }
    }

    /** Whether samples are images (1 or 3 channels) rather than latents of a VAE. */
    private static boolean drawable(Trainer trainer) {
        int channels = trainer.model().config().inChannels();
        return channels == 1 || channels == 3;
    }

    /**
     * One row per prompt (all prompts in one row when {@code perPrompt} is 1), {@code perPrompt} samples each,
     * with the EMA weights {@code averaged} if any ({@link Trainer#averagedWeights}). The prompts are "a photo of a
     * {class}" for Fashion-MNIST, else the captions of the first ten training samples. On a CPU backend of fewer
     * than {@code samplingThreads} threads (a replica's, once the others are done) the grid is drawn by a copy of
     * the weights on a backend of that many: a CPU backend's results do not depend on its threads, so the images
     * are the same, sooner.
     */
    private void sampleGrid(Trainer trainer, Backend backend, int samplingThreads, TrainingData data,
                            Map<String, Tensor> averaged, int perPrompt, int steps, Path file) throws IOException {
        MicroDiT model = trainer.model();
        MicroDiTConfig c = model.config();
        int[] captionShape = data.captionShape();
        try (MemoryScope scope = new MemoryScope("sampling")) {
            Tensor prompts;
            if (data instanceof FashionMnistData) {
                CaptionEncoder encoder = captionEncoder(config.captionLength(), c);
                int classes = FashionMnist.CLASS_NAMES.size();
                prompts = scope.zeros(classes, captionShape[0], captionShape[1]);
                for (int k = 0; k < classes; k++) {
                    prompts.rows(k, 1).copyFrom(encoder.encode(FashionMnistData.caption(k)));
                }
            } else {
                int count = Math.min(10, data.size());
                int[] first = new int[count];
                Arrays.setAll(first, i -> i);
                prompts = scope.zeros(count, captionShape[0], captionShape[1]);
                data.read(first, scope.zeros(count, c.inChannels(), c.inputSize(), c.inputSize()), prompts);
            }
            int promptCount = prompts.dim(0);
            Tensor captions = scope.zeros(promptCount * perPrompt, captionShape[0], captionShape[1]);
            for (int k = 0; k < promptCount; k++) {
                for (int j = 0; j < perPrompt; j++) {
                    captions.rows(k * perPrompt + j, 1).copyFrom(prompts.rows(k, 1));
                }
            }
            float[] images;
            if (backend instanceof CpuBackend cpu && samplingThreads > cpu.threads()) {
                try (CpuBackend wide = new CpuBackend(samplingThreads)) {
                    MicroDiT copy = MicroDiT.create(c, config.seed(), wide);
                    try {
                        for (Parameter p : copy.parameters().all()) {
                            p.value().copyFrom(averaged != null ? averaged.get(p.name())
                                    : model.parameters().get(p.name()).value());
                        }
                        images = new HeunSampler(copy, wide, trainer.edm(), config.precision()).sample(captions,
                                steps, config.sampleGuidance(), SAMPLE_SEED, 0);
                    } finally {
                        copy.parameters().close();
                    }
                }
            } else {
                images = withWeights(model, averaged,
                        () -> new HeunSampler(model, backend, trainer.edm(), config.precision()).sample(captions,
                                steps, config.sampleGuidance(), SAMPLE_SEED, 0));
            }
            new SampleGrid(c.inChannels(), c.inputSize(), c.inputSize(), perPrompt == 1 ? promptCount : perPrompt, 2)
                    .write(file, images);
        }
    }

    /**
     * Runs {@code body} with the model's weights temporarily replaced by {@code weights} (when not null), copying
     * on the model's backend.
     */
    static float[] withWeights(MicroDiT model, Map<String, Tensor> weights, java.util.function.Supplier<float[]> body) {
        if (weights == null) {
            return body.get();
        }
        Backend backend = model.backend();
        try (MemoryScope scope = backend.scope("saved-weights")) {
            List<Tensor> saved = new ArrayList<>();
            for (Parameter p : model.parameters().all()) {
                Tensor copy = scope.zeros(p.value().shape());
                backend.copy(p.value(), copy);
                saved.add(copy);
                backend.copy(weights.get(p.name()), p.value());
            }
            try {
                return body.get();
            } finally {
                int i = 0;
                for (Parameter p : model.parameters().all()) {
                    backend.copy(saved.get(i++), p.value());
                }
            }
        }
    }

    private void writeLossCurve() throws IOException {
        List<String> lines = Files.readAllLines(directory.resolve("metrics.jsonl"), StandardCharsets.UTF_8);
        double[] steps = new double[lines.size()];
        double[] losses = new double[lines.size()];
        int n = 0;
        for (String line : lines) {
            if (line.isBlank()) {
                continue;
            }
            Map<?, ?> m = (Map<?, ?>) Json.parse(line);
            if (!(m.get("loss") instanceof Number)) {
                continue; // a skipped step: its loss was not finite
            }
            steps[n] = ((Number) m.get("step")).doubleValue();
            losses[n] = ((Number) m.get("loss")).doubleValue();
            n++;
        }
        if (n == 0) {
            return;
        }
        Path file = directory.resolve("loss.png");
        new LossCurvePlot(800, 500, "training loss (" + config.model() + ")", "step", "loss", true).write(file,
                LossCurvePlot.rawAndSmoothed("loss", java.util.Arrays.copyOf(steps, n),
                        java.util.Arrays.copyOf(losses, n), 0.98));
        out.println("loss curve: " + file);
    }
}
