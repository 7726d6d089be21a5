package io.microdit.eval;

import io.microdit.backend.cpu.CpuBackend;
import io.microdit.data.CaptionEncoder;
import io.microdit.data.FashionMnist;
import io.microdit.data.FashionMnistData;
import io.microdit.diffusion.HeunSampler;
import io.microdit.io.Json;
import io.microdit.io.Safetensors;
import io.microdit.model.ConfigFile;
import io.microdit.model.MaskingMode;
import io.microdit.model.MicroDiT;
import io.microdit.model.MicroDiTConfig;
import io.microdit.model.MicroDiTConfigs;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.train.Checkpoint;
import io.microdit.train.LearningRateSchedule;
import io.microdit.train.LossCurvePlot;
import io.microdit.train.SampleGrid;
import io.microdit.train.Stage;
import io.microdit.train.Trainer;
import io.microdit.train.TrainingConfig;
import io.microdit.train.TrainingRun;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The paper's central claim at small scale (issue 6): the same backbone trained on Fashion-MNIST with no masking,
 * naive masking (before any block, so the patch-mixer sees only the kept tokens too) at 50% and 75%, deferred
 * masking (patch-mixer on every token, then the mask) at 50% and 75%, and patch 4 instead of 2 (the 75% token
 * reduction without masking). Every variant sees the same number of training images with the same optimizer and
 * schedule, and ends with the same short unmasked fine-tune ({@link Settings#finetuneFraction()} of the steps).
 *
 * <p>Evaluation: the Fréchet distance between the features of a microdit-trained {@link FashionClassifier} on
 * generated images (balanced over the ten prompts, fixed Heun steps and CFG) and on the test images, reported as
 * "FD (Fashion-MNIST classifier features)" — not FID, whose Inception features this is not; prompt alignment is
 * the classifier's accuracy on the generated images against their prompt's class; the training FLOPs come from the
 * backend's counter, the wall time from the clock.
 *
 * <p>Budget: before training, a probe times a few steps of every variant and a sampler call, and the plan
 * ({@code plan.json}) picks the number of images seen so that training and sampling of every variant fit the
 * budget; the classifier (trained once, cached) and the evaluation come on top. Resume: every variant trains in its
 * own folder with checkpoints; generated images are kept per class, a variant whose images are all there is not
 * trained again and one whose {@code result.json} exists is not evaluated again, so running the command again
 * continues where it stopped.
 */
public final class MaskingExperiment {
    /** One arm of the comparison. */
    public record Variant(String name, String strategy, MaskingMode mode, double maskRatio, int patch) {
    }

    /** The six variants of issue 6. */
    public static final List<Variant> VARIANTS = List.of(
            new Variant("none", "none", MaskingMode.NONE, 0, 2),
            new Variant("naive-50", "naive", MaskingMode.NAIVE, 0.5, 2),
            new Variant("naive-75", "naive", MaskingMode.NAIVE, 0.75, 2),
            new Variant("deferred-50", "deferred", MaskingMode.DEFERRED, 0.5, 2),
            new Variant("deferred-75", "deferred", MaskingMode.DEFERRED, 0.75, 2),
            new Variant("patch-4", "patch 4", MaskingMode.NONE, 0, 4));

    /**
     * The order variants are trained in: the paper's headline comparison (none, deferred 75%, naive 75%) first, so
     * that an experiment cut short by the clock has it.
     */
    static final List<String> TRAINING_ORDER = List.of("none", "deferred-75", "naive-75", "patch-4", "deferred-50",
            "naive-50");

    /** The paper's FID (MicroDiT on its own data, 75% masking; spec §6). */
    public static final double PAPER_NONE = 3.79;
    public static final double PAPER_DEFERRED_75 = 5.03;
    public static final double PAPER_NAIVE_75 = 16.5;

    /**
     * How the experiment runs.
     *
     * @param base                the backbone at patch 2 (patch 4 is derived from it)
     * @param budgetSeconds       wall-clock budget for training and sampling, when {@code imagesSeen} is 0
     * @param imagesSeen          training images per variant; 0 lets the probe choose it from the budget
     * @param finetuneFraction    share of the steps in the final unmasked fine-tune
     * @param generatedPerClass   generated images per prompt class
     * @param testImages          test images the generated ones are compared with (the first ones)
     */
    public record Settings(String label, MicroDiTConfig base, FashionClassifier.Settings classifier, int seeds,
                           int batchSize, double budgetSeconds, long imagesSeen, double finetuneFraction,
                           double peakLearningRate, int generatedPerClass, int sampleSteps, double guidance,
                           int sampleBatch, int testImages, int probeSteps, int threads) {
        public Settings {
            if (seeds < 1 || seeds > 2) {
                throw new IllegalArgumentException("--seeds must be 1 or 2, got " + seeds);
            }
            if (base.patchSize() != 2 || base.inputSize() != FashionMnist.SIZE || base.inChannels() != 1) {
                throw new IllegalArgumentException("the experiment's base model must take 1×32×32 at patch 2, got "
                        + base);
            }
            if (!(finetuneFraction > 0 && finetuneFraction < 1) || generatedPerClass < 2 || sampleSteps < 1
                    || batchSize < 1 || sampleBatch < 1 || testImages < 2 || imagesSeen < 0) {
                throw new IllegalArgumentException("experiment settings out of range: " + this);
            }
        }

        /**
         * The full run: fashion-small's architecture at patch 2 with D 64 and depth 4 (see the README), batch 32,
         * 10% unmasked fine-tune, 5,000 generated images (500 per class), 8 Heun steps without guidance (CFG 1: 15
         * network calls per image), all 10,000 test images, sized by the probe to the budget (training and
         * sampling; see {@code --hours}) unless --images fixes it. Measured on the "none" model after 40,000 images
         * (2026-11-29): 4 Heun steps with CFG 3 gave saturated blobs (FD 3,723, prompt accuracy 15%), 5–6 steps with
         * CFG 3 still broken shapes, 12 steps clean images but 46 network calls per image — more than this machine
         * can spend on 25,000 images; without guidance 8 steps already give recognisable items.
         */
        public static Settings full(int seeds, double budgetHours) {
            return new Settings("full", baseModel(), FashionClassifier.Settings.full(), seeds, 32,
                    budgetHours * 3600, 0, 0.1, 1e-3, 500, 8, 1.0, 50, 10_000, 3, 0);
        }

        /** Tiny settings that run the whole path in a few minutes. */
        public static Settings quick(int seeds) {
            return new Settings("quick", tinyModel(), FashionClassifier.Settings.quick(12_800), seeds, 16, 300, 0,
                    0.1, 2e-3, 10, 4, 3.0, 50, 1000, 2, 0);
        }
    }

    /**
     * fashion-small at patch 2, narrowed (D 64, depth 4, a 2-block mixer of width 64) so that six variants and
     * 5,000 samples each fit 3 hours on two cores: at patch 2 sampling costs about as much as training.
     */
    public static MicroDiTConfig baseModel() {
        MicroDiTConfig s = MicroDiTConfigs.fashionSmall();
        int depth = 4;
        return new MicroDiTConfig("fashion-small-p2", s.inputSize(), 2, s.inChannels(), 64, depth, s.headDim(),
                s.multipleOf(), s.captionChannels(), s.posInterpScale(), s.normEps(), s.depthInit(),
                MicroDiTConfig.linspace(0.5, 1.0, depth), MicroDiTConfig.linspace(0.5, 4.0, depth),
                true, 2, 64, s.patchMixerQkvRatio(), s.patchMixerMlpRatio(), s.useBias(), s.numExperts(),
                s.expertCapacity(), s.expertsEveryN());
    }

    /** A very small model for {@code --quick} and tests. */
    public static MicroDiTConfig tinyModel() {
        return new MicroDiTConfig("tiny-p2", 32, 2, 1, 32, 2, 16, 16, 16, 1.0, 1e-6, true,
                MicroDiTConfig.linspace(0.5, 1.0, 2), MicroDiTConfig.linspace(0.5, 4.0, 2), true, 1, 32, 1.0, 4.0,
                false, 2, 2.0, 2);
    }

    /** The same architecture at another patch size. */
    static MicroDiTConfig withPatch(MicroDiTConfig c, int patch) {
        return new MicroDiTConfig(c.name().replaceFirst("-p2$", "") + "-p" + patch, c.inputSize(), patch,
                c.inChannels(), c.dim(), c.depth(), c.headDim(), c.multipleOf(), c.captionChannels(),
                c.posInterpScale(), c.normEps(), c.depthInit(), c.qkvMultipliers(), c.ffnMultipliers(),
                c.usePatchMixer(), c.patchMixerDepth(), c.patchMixerDim(), c.patchMixerQkvRatio(),
                c.patchMixerMlpRatio(), c.useBias(), c.numExperts(), c.expertCapacity(), c.expertsEveryN());
    }

    /** The planned training length, fixed once so that a resumed experiment trains exactly as planned. */
    record Plan(long steps, long finetuneSteps, Map<String, Double> secondsPerImage,
                Map<String, Double> sampleSecondsPerImage, double estimatedSeconds) {
    }

    private static final int CAPTION_LENGTH = 8;
    private static final long SAMPLE_SEED = 7000;

    private final Settings settings;
    private final Path out;
    private final FashionMnist.Split train;
    private final FashionMnist.Split test;
    private final PrintStream log;

    public MaskingExperiment(Settings settings, Path out, FashionMnist.Split train, FashionMnist.Split test,
                             PrintStream log) {
        this.settings = settings;
        this.out = out;
        this.train = train;
        this.test = test;
        this.log = log;
    }

    /**
     * Runs (or continues) everything and writes the report; returns the aggregated results. Order: the plan, then
     * every variant's training and generated images, then the classifier (trained once and cached in
     * {@link #classifierFile}), then the evaluation of every variant, so that the long part needs no classifier
     * and the classifier can be trained separately in the meantime.
     */
    public Map<String, Object> run() throws IOException {
        return run(false);
    }

    /**
     * Like {@link #run()}; with {@code finishedOnly} nothing is trained or sampled: the variants whose images are
     * all generated are evaluated and the report marks the others as not finished.
     */
    public Map<String, Object> run(boolean finishedOnly) throws IOException {
        long started = System.nanoTime();
        Files.createDirectories(out);
        Path configs = Files.createDirectories(out.resolve("configs"));
        Map<Integer, Path> modelFiles = new LinkedHashMap<>();
        for (int patch : new int[] {2, 4}) {
            Path file = configs.resolve("model-p" + patch + ".json");
            Files.writeString(file, ConfigFile.toJson(withPatch(settings.base(), patch)) + "\n");
            modelFiles.put(patch, file);
        }
        int threads = settings.threads() == 0 ? Runtime.getRuntime().availableProcessors() : settings.threads();
        try (CpuBackend backend = new CpuBackend(threads)) {
            Plan plan = plan(backend, modelFiles);
            for (int seed = 0; seed < settings.seeds() && !finishedOnly; seed++) {
                for (String name : TRAINING_ORDER) {
                    Variant v = variant(name);
                    trainAndGenerate(v, seed, plan, modelFiles.get(v.patch()), backend);
                }
            }
            FashionClassifier.Loaded classifier = FashionClassifier.trainOrLoad(classifierFile(), settings.classifier(),
                    train, test, backend, log);
            try (FashionClassifier c = classifier.classifier()) {
                if (classifier.testAccuracy() < 0.9) {
                    log.printf("warning: the classifier's test accuracy %.2f%% is below the 90%% the issue asks"
                            + "%n", 100 * classifier.testAccuracy());
                }
                int testCount = Math.min(settings.testImages(), test.count());
                float[] testImages = new float[testCount * FashionMnist.SIZE * FashionMnist.SIZE];
                System.arraycopy(test.images(), 0, testImages, 0, testImages.length);
                FashionClassifier.Output testOutput = c.evaluate(testImages, testCount);
                FrechetDistance.Moments testMoments = FrechetDistance.moments(testOutput.features(), testCount,
                        testOutput.dimension());
                List<Map<String, Object>> results = new ArrayList<>();
                for (int seed = 0; seed < settings.seeds(); seed++) {
                    for (Variant v : VARIANTS) {
                        Path directory = variantDirectory(v, seed);
                        if (Files.isRegularFile(directory.resolve("result.json")) || generated(directory)) {
                            results.add(evaluate(v, seed, plan, c, testMoments));
                        }
                    }
                }
                return report(results, plan, classifier.testAccuracy(), testCount,
                        (System.nanoTime() - started) / 1e9);
            }
        }
    }

    static Variant variant(String name) {
        return VARIANTS.stream().filter(v -> v.name().equals(name)).findFirst().orElseThrow();
    }

    /** Where the evaluation classifier is cached (trained on first use): one per settings label. */
    public Path classifierFile() {
        return out.resolve("classifier-" + settings.label() + ".safetensors");
    }

    /** Trains the evaluation classifier (or loads the cached one) and returns its test accuracy. */
    public double trainClassifier() throws IOException {
        Files.createDirectories(out);
        int threads = settings.threads() == 0 ? Runtime.getRuntime().availableProcessors() : settings.threads();
        try (CpuBackend backend = new CpuBackend(threads);
             FashionClassifier.Loaded loaded = FashionClassifier.trainOrLoad(classifierFile(), settings.classifier(),
                     train, test, backend, log)) {
            return loaded.testAccuracy();
        }
    }

    private TrainingConfig trainingConfig(Variant v, Path modelFile, long seed, long steps, long finetuneSteps) {
        long masked = steps - finetuneSteps;
        long warmup = Math.max(1, masked / 20);
        return new TrainingConfig(modelFile.toString(), "fashion-mnist", null, CAPTION_LENGTH, settings.batchSize(),
                settings.batchSize(),
                List.of(new Stage(v.mode() == MaskingMode.NONE ? "unmasked" : "masked", masked, v.mode(),
                                v.maskRatio(), new LearningRateSchedule.CosineWithWarmup(settings.peakLearningRate(),
                                Math.min(warmup, masked - 1), masked, 0.33), 1.0),
                        new Stage("unmasked-finetune", finetuneSteps, MaskingMode.NONE, 0,
                                new LearningRateSchedule.ConstantWithWarmup(0.33 * settings.peakLearningRate(), 0),
                                1.0)),
                0.0, 0.1, -0.6, 1.2, seed, 0, 20, 0, 0, settings.sampleSteps(), settings.guidance());
    }

    private FashionMnistData data(MicroDiTConfig model) {
        return new FashionMnistData(train, TrainingRun.captionEncoder(CAPTION_LENGTH, model));
    }

    // ------------------------------------------------------------------ plan

    private Plan plan(CpuBackend backend, Map<Integer, Path> modelFiles) throws IOException {
        Path file = out.resolve("plan.json");
        if (Files.isRegularFile(file)) {
            Map<?, ?> m = (Map<?, ?>) Json.parse(Files.readString(file, StandardCharsets.UTF_8));
            Plan plan = new Plan(((Number) m.get("steps")).longValue(), ((Number) m.get("finetune_steps")).longValue(),
                    doubles(m.get("train_seconds_per_image")), doubles(m.get("sample_seconds_per_image")),
                    ((Number) m.get("estimated_seconds")).doubleValue());
            log.printf("plan: %s (%d steps of batch %d, the last %d unmasked)%n", file, plan.steps(),
                    settings.batchSize(), plan.finetuneSteps());
            return plan;
        }
        Map<String, Double> trainCost = new LinkedHashMap<>();
        Map<String, Double> sampleCost = new LinkedHashMap<>();
        log.println("probe: timing " + settings.probeSteps() + " training steps per variant and one sampler call");
        // Two passes, keeping the faster: the first pass also warms up the JIT, which would inflate the first
        // variant's time many times over.
        for (int pass = 0; pass < 2; pass++) {
            for (Variant v : VARIANTS) {
                double seconds = probeTraining(v, modelFiles.get(v.patch()), backend, pass == 1);
                trainCost.merge(v.name(), seconds, Math::min);
            }
        }
        int generated = 10 * settings.generatedPerClass();
        for (int patch : new int[] {2, 4}) {
            sampleCost.put("p" + patch, probeSampling(modelFiles.get(patch), backend));
        }
        double f = settings.finetuneFraction();
        double perImage = 0, sampling = 0;
        for (Variant v : VARIANTS) {
            double unmasked = trainCost.get(v.patch() == 2 ? "none" : v.name());
            perImage += (1 - f) * trainCost.get(v.name()) + f * unmasked;
            sampling += generated * sampleCost.get("p" + v.patch());
        }
        perImage *= settings.seeds();
        sampling *= settings.seeds();
        long images = settings.imagesSeen();
        if (images == 0) {
            // 15% of the budget is left for checkpoints, evaluation, JIT warm-up and a slower machine.
            double available = 0.85 * settings.budgetSeconds() - sampling;
            if (available <= 0) {
                throw new IOException(String.format(Locale.ROOT, "the budget of %.0f s does not even cover sampling "
                        + "(%.0f s estimated): lower the generated images or raise the budget",
                        settings.budgetSeconds(), sampling));
            }
            images = (long) (available / perImage);
        }
        long steps = Math.max(2, images / settings.batchSize());
        long finetune = Math.max(1, Math.round(f * steps));
        double estimate = steps * settings.batchSize() * perImage + sampling;
        Plan plan = new Plan(steps, finetune, trainCost, sampleCost, estimate);
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("steps", steps);
        m.put("finetune_steps", finetune);
        m.put("batch_size", (long) settings.batchSize());
        m.put("images_seen", steps * settings.batchSize());
        m.put("train_seconds_per_image", trainCost);
        m.put("sample_seconds_per_image", sampleCost);
        m.put("estimated_seconds", estimate);
        Files.writeString(file, Json.write(m) + "\n");
        log.printf(Locale.ROOT, "plan: %d steps of batch %d per variant (%,d images, the last %d steps unmasked); "
                        + "estimated %.0f min for training and sampling%n", steps, settings.batchSize(),
                steps * settings.batchSize(), finetune, estimate / 60);
        return plan;
    }

    private static Map<String, Double> doubles(Object value) {
        Map<String, Double> out = new LinkedHashMap<>();
        ((Map<?, ?>) value).forEach((k, v) -> out.put((String) k, ((Number) v).doubleValue()));
        return out;
    }

    /** Seconds per training image of a variant's masked stage, after one warm-up step. */
    private double probeTraining(Variant v, Path modelFile, CpuBackend backend, boolean print) throws IOException {
        MicroDiTConfig model = ConfigFile.resolve(modelFile.toString());
        int probe = settings.probeSteps();
        TrainingConfig config = trainingConfig(v, modelFile, 999, probe + 10, 1);
        MicroDiT dit = MicroDiT.create(model, 999, backend);
        try (Trainer trainer = new Trainer(config, dit, data(model), backend)) {
            trainer.trainStep();
            double seconds = 0;
            for (int i = 0; i < probe; i++) {
                seconds += trainer.trainStep().seconds();
            }
            double perImage = seconds / (probe * settings.batchSize());
            if (print) {
                log.printf(Locale.ROOT, "probe: %-12s %6.1f img/s training%n", v.name(), 1 / perImage);
            }
            return perImage;
        } finally {
            dit.parameters().close();
        }
    }

    /** Seconds per generated image: one guided network call, times the sampler's 2·steps − 1 calls. */
    private double probeSampling(Path modelFile, CpuBackend backend) throws IOException {
        MicroDiTConfig model = ConfigFile.resolve(modelFile.toString());
        MicroDiT dit = MicroDiT.create(model, 999, backend);
        try (MemoryScope scope = new MemoryScope("probe-sampling")) {
            int n = settings.sampleBatch();
            Tensor captions = scope.zeros(n, CAPTION_LENGTH, model.captionChannels());
            HeunSampler sampler = new HeunSampler(dit, backend, new io.microdit.diffusion.Edm(0.9, -0.6, 1.2));
            sampler.sample(captions, 1, settings.guidance(), 0, 0);
            long start = System.nanoTime();
            sampler.sample(captions, 1, settings.guidance(), 0, 0);
            double perCall = (System.nanoTime() - start) / 1e9 / n;
            double perImage = perCall * (2 * settings.sampleSteps() - 1);
            log.printf(Locale.ROOT, "probe: sampling at patch %d: %.1f img/s (%d Heun steps, CFG %.1f)%n",
                    model.patchSize(), 1 / perImage, settings.sampleSteps(), settings.guidance());
            return perImage;
        } finally {
            dit.parameters().close();
        }
    }

    // ------------------------------------------------------------------ one variant

    private Path variantDirectory(Variant v, int seed) {
        return out.resolve(v.name()).resolve("seed-" + seed);
    }

    private static Path generatedFile(Path directory, int label) {
        return directory.resolve("generated").resolve("class-" + label + ".safetensors");
    }

    private static boolean generated(Path directory) {
        for (int k = 0; k < FashionMnist.CLASS_NAMES.size(); k++) {
            if (!Files.isRegularFile(generatedFile(directory, k))) {
                return false;
            }
        }
        return true;
    }

    /** Trains a variant (continuing from its last checkpoint) and generates its images, unless already done. */
    private void trainAndGenerate(Variant v, int seed, Plan plan, Path modelFile, CpuBackend backend)
            throws IOException {
        Path directory = variantDirectory(v, seed);
        if (Files.isRegularFile(directory.resolve("result.json")) || generated(directory)) {
            log.printf("%s seed %d: trained and sampled (%s)%n", v.name(), seed, directory);
            return;
        }
        Files.createDirectories(directory);
        MicroDiTConfig model = ConfigFile.resolve(modelFile.toString());
        TrainingConfig config = trainingConfig(v, modelFile, seed, plan.steps(), plan.finetuneSteps());
        Files.writeString(directory.resolve("config.json"), config.toJson() + "\n");
        MicroDiT dit = MicroDiT.create(model, seed, backend);
        try (Trainer trainer = new Trainer(config, dit, data(model), backend)) {
            Progress progress = Progress.read(directory);
            Path latest = Checkpoint.latest(directory);
            if (latest != null) {
                trainer.restore(latest);
                log.printf("%s seed %d: resumed at step %d%n", v.name(), seed, trainer.step());
            }
            long checkpointEvery = Math.max(1, plan.steps() / 10);
            long logEvery = Math.max(1, plan.steps() / 5);
            double lossSum = 0;
            int lossCount = 0;
            while (!trainer.finished()) {
                Trainer.StepResult r = trainer.trainStep();
                progress = progress.add(r.flops(), r.seconds(), r.stage() == 0);
                lossSum += r.loss();
                lossCount++;
                if (r.step() % logEvery == 0 || trainer.finished()) {
                    log.printf(Locale.ROOT, "%s seed %d: step %d/%d, loss %.4f, %.0f img/s%n", v.name(), seed,
                            r.step(), plan.steps(), lossSum / lossCount, settings.batchSize() / r.seconds());
                    lossSum = 0;
                    lossCount = 0;
                }
                if (r.step() % checkpointEvery == 0 || trainer.finished()) {
                    trainer.checkpoint(directory);
                    progress.write(directory);
                }
            }
            generate(v, seed, directory, trainer, dit, backend);
        } finally {
            dit.parameters().close();
        }
    }

    /** Training FLOPs and seconds accumulated across resumes (written with each checkpoint). */
    record Progress(long flops, double seconds, long maskedFlops, long maskedSteps) {
        static Progress read(Path directory) throws IOException {
            Path file = directory.resolve("training.json");
            if (!Files.isRegularFile(file)) {
                return new Progress(0, 0, 0, 0);
            }
            Map<?, ?> m = (Map<?, ?>) Json.parse(Files.readString(file));
            return new Progress(((Number) m.get("flops")).longValue(), ((Number) m.get("seconds")).doubleValue(),
                    ((Number) m.get("masked_stage_flops")).longValue(),
                    ((Number) m.get("masked_stage_steps")).longValue());
        }

        Progress add(long stepFlops, double stepSeconds, boolean maskedStage) {
            return new Progress(flops + stepFlops, seconds + stepSeconds,
                    maskedFlops + (maskedStage ? stepFlops : 0), maskedSteps + (maskedStage ? 1 : 0));
        }

        void write(Path directory) throws IOException {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("flops", flops);
            m.put("seconds", seconds);
            m.put("masked_stage_flops", maskedFlops);
            m.put("masked_stage_steps", maskedSteps);
            Files.writeString(directory.resolve("training.json"), Json.write(m) + "\n");
        }
    }

    /** Generates the images of every class not yet on disk; the sampling time adds up across resumes. */
    private void generate(Variant v, int seed, Path directory, Trainer trainer, MicroDiT dit, CpuBackend backend)
            throws IOException {
        int perClass = settings.generatedPerClass();
        CaptionEncoder encoder = TrainingRun.captionEncoder(CAPTION_LENGTH, dit.config());
        Files.createDirectories(directory.resolve("generated"));
        Path timeFile = directory.resolve("sampling.json");
        double sampleSeconds = Files.isRegularFile(timeFile)
                ? ((Number) ((Map<?, ?>) Json.parse(Files.readString(timeFile))).get("seconds")).doubleValue() : 0;
        for (int k = 0; k < FashionMnist.CLASS_NAMES.size(); k++) {
            Path file = generatedFile(directory, k);
            if (Files.isRegularFile(file)) {
                continue;
            }
            long classStart = System.nanoTime();
            float[] generated = generate(dit, backend, trainer, encoder.encode(FashionMnistData.caption(k)), k);
            sampleSeconds += (System.nanoTime() - classStart) / 1e9;
            Files.writeString(timeFile, Json.write(Map.of("seconds", sampleSeconds)) + "\n");
            try (MemoryScope scope = new MemoryScope("generated")) {
                // Written last and atomically: a class file on disk is complete.
                Safetensors.write(file, Map.of("images", Tensor.of(scope, generated, perClass, 1,
                        FashionMnist.SIZE, FashionMnist.SIZE)), Map.of());
            }
        }
        log.printf(Locale.ROOT, "%s seed %d: %d images generated (%.0f s of sampling)%n", v.name(), seed,
                10 * perClass, sampleSeconds);
    }

    /** FD and prompt accuracy of a variant's generated images (cached in its result.json). */
    private Map<String, Object> evaluate(Variant v, int seed, Plan plan, FashionClassifier classifier,
                                         FrechetDistance.Moments testMoments) throws IOException {
        Path directory = variantDirectory(v, seed);
        Path resultFile = directory.resolve("result.json");
        if (Files.isRegularFile(resultFile)) {
            log.printf("%s seed %d: done (%s)%n", v.name(), seed, resultFile);
            @SuppressWarnings("unchecked")
            Map<String, Object> done = (Map<String, Object>) Json.parse(Files.readString(resultFile));
            return done;
        }
        int perClass = settings.generatedPerClass();
        int classes = FashionMnist.CLASS_NAMES.size();
        int pixels = FashionMnist.SIZE * FashionMnist.SIZE;
        float[] images = new float[classes * perClass * pixels];
        int[] prompts = new int[classes * perClass];
        for (int k = 0; k < classes; k++) {
            try (MemoryScope scope = new MemoryScope("generated")) {
                float[] generated = Safetensors.readTensor(generatedFile(directory, k), "images", scope)
                        .toFloatArray();
                if (generated.length != perClass * pixels) {
                    throw new IOException(generatedFile(directory, k) + ": " + generated.length / pixels
                            + " images, expected " + perClass + " (settings changed? delete the folder to rerun)");
                }
                System.arraycopy(generated, 0, images, k * perClass * pixels, generated.length);
            }
            java.util.Arrays.fill(prompts, k * perClass, (k + 1) * perClass, k);
        }
        writeGrid(directory.resolve("samples.png"), images, perClass);
        Progress progress = Progress.read(directory);
        double sampleSeconds = ((Number) ((Map<?, ?>) Json.parse(Files.readString(
                directory.resolve("sampling.json")))).get("seconds")).doubleValue();
        FashionClassifier.Output output = classifier.evaluate(images, prompts.length);
        double fd = FrechetDistance.distance(FrechetDistance.moments(output.features(), prompts.length,
                output.dimension()), testMoments);
        double promptAccuracy = FashionClassifier.accuracy(output.predictions(), prompts);
        long imagesSeen = plan.steps() * settings.batchSize();
        Map<String, Object> result = new LinkedHashMap<>();
        result.put("variant", v.name());
        result.put("strategy", v.strategy());
        result.put("masking", v.mode().name().toLowerCase(Locale.ROOT));
        result.put("mask_ratio", v.maskRatio());
        result.put("patch", (long) v.patch());
        result.put("seed", (long) seed);
        result.put("steps", plan.steps());
        result.put("finetune_steps", plan.steps() - progress.maskedSteps());
        result.put("images_seen", imagesSeen);
        result.put("training_flops", progress.flops());
        result.put("training_flops_per_image", (double) progress.flops() / imagesSeen);
        result.put("training_seconds", progress.seconds());
        result.put("sampling_seconds", sampleSeconds);
        result.put("generated_images", (long) prompts.length);
        result.put("fd", fd);
        result.put("prompt_accuracy", promptAccuracy);
        Files.writeString(resultFile, Json.write(result) + "\n");
        log.printf(Locale.ROOT, "%s seed %d: FD (Fashion-MNIST classifier features) %.3f, prompt accuracy %.1f%%, "
                        + "%.2f GFLOP per training image, %.0f s training%n", v.name(), seed, fd,
                100 * promptAccuracy, progress.flops() / 1e9 / imagesSeen, progress.seconds());
        return result;
    }

    /** {@code generatedPerClass} images of one prompt, in sampler batches with their own noise streams. */
    private float[] generate(MicroDiT dit, CpuBackend backend, Trainer trainer, float[] prompt, int label) {
        int perClass = settings.generatedPerClass();
        int pixels = FashionMnist.SIZE * FashionMnist.SIZE;
        float[] out = new float[perClass * pixels];
        HeunSampler sampler = new HeunSampler(dit, backend, trainer.edm());
        for (int start = 0; start < perClass; start += settings.sampleBatch()) {
            int n = Math.min(settings.sampleBatch(), perClass - start);
            try (MemoryScope scope = new MemoryScope("sampling")) {
                Tensor captions = scope.zeros(n, CAPTION_LENGTH, dit.config().captionChannels());
                for (int i = 0; i < n; i++) {
                    captions.rows(i, 1).copyFrom(prompt);
                }
                float[] images = sampler.sample(captions, settings.sampleSteps(), settings.guidance(), SAMPLE_SEED,
                        label * 1_000_000L + start);
                System.arraycopy(images, 0, out, start * pixels, images.length);
            }
        }
        return out;
    }

    /** A row per class with up to 8 of its generated images. */
    private static void writeGrid(Path file, float[] images, int perClass) throws IOException {
        int columns = Math.min(8, perClass);
        int pixels = FashionMnist.SIZE * FashionMnist.SIZE;
        int classes = FashionMnist.CLASS_NAMES.size();
        float[] grid = new float[classes * columns * pixels];
        for (int k = 0; k < classes; k++) {
            System.arraycopy(images, k * perClass * pixels, grid, k * columns * pixels, columns * pixels);
        }
        new SampleGrid(1, FashionMnist.SIZE, FashionMnist.SIZE, columns, 2).write(file, grid);
    }

    // ------------------------------------------------------------------ report

    private Map<String, Object> report(List<Map<String, Object>> results, Plan plan, double classifierAccuracy,
                                       int testCount, double seconds) throws IOException {
        Map<String, double[]> byVariant = new LinkedHashMap<>();
        StringBuilder table = new StringBuilder();
        table.append("| variant | mask | FLOPs per image (training) | wall time (training) | "
                + "FD (Fashion-MNIST classifier features) | prompt accuracy | seeds |\n");
        table.append("| --- | --- | --- | --- | --- | --- | --- |\n");
        Map<String, Object> variants = new LinkedHashMap<>();
        for (Variant v : VARIANTS) {
            List<Map<String, Object>> runs = results.stream().filter(r -> v.name().equals(r.get("variant"))).toList();
            double[] fd = values(runs, "fd"), accuracy = values(runs, "prompt_accuracy");
            double[] flops = values(runs, "training_flops_per_image"), time = values(runs, "training_seconds");
            String mask = v.mode() == MaskingMode.NONE ? (v.patch() == 4 ? "none (patch 4: 75% fewer tokens)"
                    : "none") : String.format(Locale.ROOT, "%s %.0f%%", v.strategy(), 100 * v.maskRatio());
            if (runs.isEmpty()) {
                table.append(String.format(Locale.ROOT, "| %s | %s | not finished | | | | 0 |\n", v.name(), mask));
                continue;
            }
            byVariant.put(v.name(), new double[] {mean(fd), mean(flops)});
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("strategy", v.strategy());
            m.put("mask_ratio", v.maskRatio());
            m.put("patch", (long) v.patch());
            m.put("fd_mean", mean(fd));
            m.put("fd_spread", spread(fd));
            m.put("prompt_accuracy_mean", mean(accuracy));
            m.put("training_flops_per_image", mean(flops));
            m.put("training_seconds_mean", mean(time));
            m.put("seeds", (long) runs.size());
            m.put("runs", runs);
            variants.put(v.name(), m);
            table.append(String.format(Locale.ROOT, "| %s | %s | %.3g GFLOP | %s | %s | %s | %d |\n", v.name(), mask,
                    mean(flops) / 1e9, minutes(time), withSpread(fd, "%.3f"),
                    withSpread(scaled(accuracy, 100), "%.1f%%"), runs.size()));
        }
        boolean judged = byVariant.containsKey("none") && byVariant.containsKey("deferred-75")
                && byVariant.containsKey("naive-75");
        boolean qualityGoal = false, computeGoal = false;
        double flopsRatio = Double.NaN;
        String goal = "goal: not judged yet (none, deferred-75 and naive-75 must all be finished)";
        if (judged) {
            double none = byVariant.get("none")[0];
            double deferredGap = byVariant.get("deferred-75")[0] - none;
            double naiveGap = byVariant.get("naive-75")[0] - none;
            flopsRatio = byVariant.get("deferred-75")[1] / byVariant.get("none")[1];
            qualityGoal = deferredGap <= 0.3 * naiveGap;
            computeGoal = flopsRatio < 0.6;
            goal = String.format(Locale.ROOT, "goal: FD(deferred 75%%) − FD(none) = %.3f %s 0.3 × (FD(naive 75%%) "
                            + "− FD(none)) = %.3f: %s; FLOPs per image of deferred 75%% / none = %.3f %s 0.6: %s",
                    deferredGap, qualityGoal ? "≤" : ">", 0.3 * naiveGap, qualityGoal ? "holds" : "does not hold",
                    flopsRatio, computeGoal ? "<" : "≥", computeGoal ? "holds" : "does not hold");
        }
        Map<String, Object> summary = new LinkedHashMap<>();
        summary.put("settings", settings.label());
        summary.put("model", ConfigFile.toJson(settings.base()));
        summary.put("classifier_test_accuracy", classifierAccuracy);
        summary.put("test_images", (long) testCount);
        summary.put("generated_per_variant", (long) (10 * settings.generatedPerClass()));
        summary.put("sample_steps", (long) settings.sampleSteps());
        summary.put("guidance", settings.guidance());
        summary.put("steps", plan.steps());
        summary.put("finetune_steps", plan.finetuneSteps());
        summary.put("batch_size", (long) settings.batchSize());
        summary.put("variants", variants);
        if (judged) {
            summary.put("quality_goal_holds", qualityGoal);
            summary.put("flops_goal_holds", computeGoal);
            summary.put("deferred_75_flops_ratio", flopsRatio);
        }
        summary.put("seconds_this_invocation", seconds);
        Files.writeString(out.resolve("results.json"), Json.write(summary) + "\n");
        String markdown = String.format(Locale.ROOT, "# Masking experiment (%s)%n%n"
                        + "Fashion-MNIST, %s, %d steps of batch %d per variant (%,d images), the last %d steps (%.0f%%) "
                        + "an unmasked fine-tune. FD (Fashion-MNIST classifier features) of %,d generated images (%d "
                        + "per class, %d Heun steps, CFG %.1f) against %,d test images; the classifier's test accuracy "
                        + "is %.2f%%. Values are mean ± half the range over seeds.%n%n%s%n%s%n%n"
                        + "The paper's FID (its own data, not comparable in scale): %.2f unmasked, %.2f deferred 75%%, "
                        + "%.1f naive 75%%.%n", settings.label(), settings.base().name(), plan.steps(),
                settings.batchSize(), plan.steps() * settings.batchSize(), plan.finetuneSteps(),
                100.0 * plan.finetuneSteps() / plan.steps(), 10 * settings.generatedPerClass(),
                settings.generatedPerClass(), settings.sampleSteps(), settings.guidance(), testCount,
                100 * classifierAccuracy, table, goal, PAPER_NONE, PAPER_DEFERRED_75, PAPER_NAIVE_75);
        Files.writeString(out.resolve("results.md"), markdown);
        plot(byVariant);
        log.print(table);
        log.println(goal);
        log.println("report: " + out.resolve("results.md") + ", " + out.resolve("results.json") + ", "
                + out.resolve("masking.png"));
        return summary;
    }

    private void plot(Map<String, double[]> byVariant) throws IOException {
        List<LossCurvePlot.Series> series = new ArrayList<>();
        addSeries(series, "naive (microdit FD)", byVariant, List.of("none", "naive-50", "naive-75"), 0xd62728, 3);
        addSeries(series, "deferred (microdit FD)", byVariant, List.of("none", "deferred-50", "deferred-75"), 0x1f77b4,
                3);
        addSeries(series, "patch 4, no mask (microdit FD)", byVariant, List.of("patch-4"), 0x2ca02c, 4);
        series.add(new LossCurvePlot.Series("paper naive (FID, other data)", new double[] {0, 75},
                new double[] {PAPER_NONE, PAPER_NAIVE_75}, 0xf4a6a6, 1));
        series.add(new LossCurvePlot.Series("paper deferred (FID, other data)", new double[] {0, 75},
                new double[] {PAPER_NONE, PAPER_DEFERRED_75}, 0x9ecae1, 1));
        new LossCurvePlot(900, 560, "FD (Fashion-MNIST classifier features) vs mask ratio", "mask ratio (%)",
                "FD / FID", true).write(out.resolve("masking.png"), series);
    }

    /** A series over the variants that are finished, at their token reduction (mask ratio; 75% for patch 4). */
    private static void addSeries(List<LossCurvePlot.Series> series, String label, Map<String, double[]> byVariant,
                                  List<String> names, int color, int width) {
        List<String> present = names.stream().filter(byVariant::containsKey).toList();
        if (present.isEmpty()) {
            return;
        }
        double[] x = new double[present.size()], y = new double[present.size()];
        for (int i = 0; i < x.length; i++) {
            String name = present.get(i);
            x[i] = name.equals("patch-4") ? 75 : 100 * variant(name).maskRatio();
            y[i] = byVariant.get(name)[0];
        }
        series.add(new LossCurvePlot.Series(label, x, y, color, width));
    }

    private static double[] values(List<Map<String, Object>> runs, String key) {
        return runs.stream().mapToDouble(r -> ((Number) r.get(key)).doubleValue()).toArray();
    }

    private static double[] scaled(double[] values, double factor) {
        double[] out = values.clone();
        for (int i = 0; i < out.length; i++) {
            out[i] *= factor;
        }
        return out;
    }

    private static double mean(double[] values) {
        double sum = 0;
        for (double v : values) {
            sum += v;
        }
        return values.length == 0 ? Double.NaN : sum / values.length;
    }

    /** Half the range (for two seeds: the distance of each from their mean). */
    private static double spread(double[] values) {
        double min = Double.POSITIVE_INFINITY, max = Double.NEGATIVE_INFINITY;
        for (double v : values) {
            min = Math.min(min, v);
            max = Math.max(max, v);
        }
        return values.length < 2 ? 0 : (max - min) / 2;
    }

    private static String withSpread(double[] values, String format) {
        String m = String.format(Locale.ROOT, format, mean(values));
        return values.length < 2 ? m : m + " ± " + String.format(Locale.ROOT, format, spread(values));
    }

    private static String minutes(double[] seconds) {
        return String.format(Locale.ROOT, "%.1f min", mean(seconds) / 60);
    }
}
