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
import io.microdit.io.Json;
import io.microdit.model.ConfigFile;
import io.microdit.model.MicroDiT;
import io.microdit.model.MicroDiTConfig;
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
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

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
     * data-parallel run when this process was started by mpirun.
     */
    public void run(boolean resume) throws IOException {
        try (Communicator communicator = Communicator.fromEnvironment()) {
            try {
                MicroDiTConfig modelConfig = ConfigFile.resolve(config.model());
                TrainingData data = loadData(modelConfig);
                try {
                    run(resume, modelConfig, data, communicator);
                } finally {
                    if (data instanceof AutoCloseable closeable) {
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
    }

    private void run(boolean resume, MicroDiTConfig modelConfig, TrainingData data, Communicator communicator)
            throws IOException {
        // Ranks on one machine share its processors.
        int threads = config.threads() == 0
                ? Math.max(1, Runtime.getRuntime().availableProcessors() / communicator.localSize()) : config.threads();
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
                    Path latest = Checkpoint.latest(directory);
                    if (latest == null) {
                        throw new IOException(directory + " has no checkpoint to resume from");
                    }
                    trainer.restore(latest);
                    out.println("resumed from " + latest + " at step " + trainer.step());
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
                    // Only rank 0 reports it; the others would measure while rank 0 does, on the same cores.
                    peak = writer ? CpuPeak.measure(threads, 0.3) : Double.NaN;
                    peakSource = "CPU peak, measured";
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
                if (writer) {
                    loop(trainer, backend, peak, data, communicator.size());
                    finish(trainer, backend, data);
                } else {
                    // The other ranks take part in rank 0's checkpoints: sharded moments are gathered from them.
                    while (!trainer.finished()) {
                        Trainer.StepResult r = trainer.trainStep();
                        if (config.checkpointEvery() > 0 && r.step() % config.checkpointEvery() == 0
                                && !trainer.finished()) {
                            trainer.checkpoint(directory);
                        }
                    }
                    trainer.checkpoint(directory);
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

    /** Rank 0's loop: the steps, with metrics, progress, samples and checkpoints. */
    private void loop(Trainer trainer, Backend backend, double peakGflops, TrainingData data, int ranks)
            throws IOException {
        ProgressBar progress = ProgressBar.onConsole(trainer.step(), config.totalSteps(), config.batchSize(),
                Duration.ofSeconds(10));
        Path metricsFile = directory.resolve("metrics.jsonl");
        long started = System.nanoTime();
        try (BufferedWriter metrics = Files.newBufferedWriter(metricsFile, StandardCharsets.UTF_8,
                StandardOpenOption.CREATE, StandardOpenOption.APPEND)) {
            while (!trainer.finished()) {
                HostAllocator.Stats hostBefore = hostMemory(backend);
                long faultsBefore = MinorPageFaults.count();
                Trainer.StepResult r = trainer.trainStep();
                long faults = MinorPageFaults.count() - faultsBefore;
                HostAllocator.Stats host = hostMemory(backend);
                double imagesPerSecond = config.batchSize() / r.seconds();
                double gflops = r.flops() / r.seconds() / 1e9;
                Map<String, Object> line = new LinkedHashMap<>();
                line.put("step", r.step());
                line.put("stage", config.stages().get(r.stage()).name());
                line.put("loss", r.loss());
                line.put("lr", r.learningRate());
                line.put("grad_norm", r.gradientNorm());
                line.put("img_per_s", imagesPerSecond);
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
                metrics.write(Json.write(line));
                metrics.newLine();
                if (r.step() % Math.max(1, config.logEvery()) == 0) {
                    metrics.flush();
                }
                progress.update(r.step(), r.loss(), Double.isNaN(peakGflops)
                        ? String.format("lr %.2e  %.1f GFLOP/s", r.learningRate(), gflops)
                        : String.format("lr %.2e  MFU %.1f%%", r.learningRate(), 100 * gflops / peakGflops));
                if (config.sampleEvery() > 0 && r.step() % config.sampleEvery() == 0 && !trainer.finished()
                        && drawable(trainer)) {
                    Path grid = directory.resolve("samples").resolve(String.format("step-%07d.png", r.step()));
                    sampleGrid(trainer, backend, data, 1, Math.max(8, config.sampleSteps() / 2), grid);
                    progress.log("samples: " + grid);
                }
                if (config.checkpointEvery() > 0 && r.step() % config.checkpointEvery() == 0 && !trainer.finished()) {
                    metrics.flush();
                    progress.log("checkpoint: " + trainer.checkpoint(directory));
                }
            }
        }
        progress.finish();
    }

    /** Host memory of the step: the CPU backend's arena, and the shared one (batches, parameters, staging). */
    private static HostAllocator.Stats hostMemory(Backend backend) {
        HostAllocator.Stats shared = HostAllocator.shared().stats();
        return backend instanceof CpuBackend cpu ? shared.plus(cpu.memory().stats()) : shared;
    }

    private void finish(Trainer trainer, Backend backend, TrainingData data) throws IOException {
        Path checkpoint = trainer.checkpoint(directory);
        out.println("checkpoint: " + checkpoint);
        writeLossCurve();
        if (!drawable(trainer)) {
            out.println("samples: none drawn: " + trainer.model().config().inChannels() + "-channel latents become "
                    + "images only through the VAE's decoder, which microdit does not have");
            return;
        }
        Path grid = directory.resolve("samples").resolve("final.png");
        sampleGrid(trainer, backend, data, finalSamples, config.sampleSteps(), grid);
        out.println("samples: " + grid + (data instanceof FashionMnistData
                ? " (rows: " + String.join(", ", FashionMnist.CLASS_NAMES) + ")" : " (rows: the first 10 captions)"));
    }

    /** Whether samples are images (1 or 3 channels) rather than latents of a VAE. */
    private static boolean drawable(Trainer trainer) {
        int channels = trainer.model().config().inChannels();
        return channels == 1 || channels == 3;
    }

    /**
     * One row per prompt (all prompts in one row when {@code perPrompt} is 1), {@code perPrompt} samples each,
     * with the EMA weights if any. The prompts are "a photo of a {class}" for Fashion-MNIST, else the captions of
     * the first ten training samples.
     */
    private void sampleGrid(Trainer trainer, Backend backend, TrainingData data, int perPrompt, int steps,
                            Path file) throws IOException {
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
            float[] images = withWeights(model, trainer.ema() == null ? null : trainer.ema().weights(),
                    () -> new HeunSampler(model, backend, trainer.edm(), config.precision()).sample(captions, steps,
                            config.sampleGuidance(), SAMPLE_SEED, 0));
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
