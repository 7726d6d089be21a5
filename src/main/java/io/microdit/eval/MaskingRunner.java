package io.microdit.eval;

import io.microdit.backend.cpu.CpuBackend;
import io.microdit.data.CaptionEncoder;
import io.microdit.data.FashionMnist;
import io.microdit.data.FashionMnistData;
import io.microdit.diffusion.HeunSampler;
import io.microdit.eval.MaskingExperiment.Settings;
import io.microdit.eval.MaskingExperiment.Variant;
import io.microdit.io.Json;
import io.microdit.io.Safetensors;
import io.microdit.model.ConfigFile;
import io.microdit.model.MicroDiT;
import io.microdit.model.MicroDiTConfig;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.train.Checkpoint;
import io.microdit.train.SampleGrid;
import io.microdit.train.Trainer;
import io.microdit.train.TrainingConfig;
import io.microdit.train.TrainingRun;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Runs the masking experiment's variants one at a time, each in its own folder ({@code <variant>/seed-<n>}): trains
 * it from its last checkpoint, generates its images one class file at a time, and evaluates them with the
 * classifier into {@code result.json}. Every step skips what is already on disk, so an interrupted experiment
 * continues where it stopped.
 */
final class MaskingRunner {
    private static final long SAMPLE_SEED = 7000;

    private final Settings settings;
    private final Path out;
    private final FashionMnist.Split train;
    private final FashionMnist.Split test;
    private final PrintStream log;

    MaskingRunner(Settings settings, Path out, FashionMnist.Split train, FashionMnist.Split test, PrintStream log) {
        this.settings = settings;
        this.out = out;
        this.train = train;
        this.test = test;
        this.log = log;
    }

    /**
     * Evaluates every variant and seed whose images are all generated (or whose result is cached), in the order of
     * {@link MaskingExperiment#VARIANTS}, against the features of the first {@code testCount} test images.
     */
    List<Map<String, Object>> evaluateFinished(MaskingPlan plan, FashionClassifier c, int testCount)
            throws IOException {
        float[] testImages = new float[testCount * FashionMnist.SIZE * FashionMnist.SIZE];
        System.arraycopy(test.images(), 0, testImages, 0, testImages.length);
        FashionClassifier.Output testOutput = c.evaluate(testImages, testCount);
        FrechetDistance.Moments testMoments = FrechetDistance.moments(testOutput.features(), testCount,
                testOutput.dimension());
        List<Map<String, Object>> results = new ArrayList<>();
        for (int seed = 0; seed < settings.seeds(); seed++) {
            for (Variant v : MaskingExperiment.VARIANTS) {
                Path directory = variantDirectory(v, seed);
                if (trainedAndSampled(directory)) {
                    results.add(evaluate(v, seed, plan, c, testMoments));
                }
            }
        }
        return results;
    }

    /** A variant's folder for one seed: its config, checkpoints, progress, images and result. */
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

    /** Whether a variant's images are all generated or its result is already evaluated. */
    private static boolean trainedAndSampled(Path directory) {
        return Files.isRegularFile(directory.resolve("result.json")) || generated(directory);
    }

    /** Trains a variant (continuing from its last checkpoint) and generates its images, unless already done. */
    void trainAndGenerate(Variant v, int seed, MaskingPlan plan, Path modelFile, CpuBackend backend)
            throws IOException {
        Path directory = variantDirectory(v, seed);
        if (trainedAndSampled(directory)) {
            log.printf("%s seed %d: trained and sampled (%s)%n", v.name(), seed, directory);
            return;
        }
        Files.createDirectories(directory);
        MicroDiTConfig model = ConfigFile.resolve(modelFile.toString());
        TrainingConfig config = MaskingPlan.trainingConfig(settings, v, modelFile, seed, plan.steps(),
                plan.finetuneSteps());
        Files.writeString(directory.resolve("config.json"), config.toJson() + "\n");
        MicroDiT dit = MicroDiT.create(model, seed, backend);
        try (Trainer trainer = new Trainer(config, dit, MaskingPlan.trainingData(train, model), backend)) {
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
        CaptionEncoder encoder = TrainingRun.captionEncoder(MaskingPlan.CAPTION_LENGTH, dit.config());
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
    private Map<String, Object> evaluate(Variant v, int seed, MaskingPlan plan, FashionClassifier classifier,
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
                Tensor captions = scope.zeros(n, MaskingPlan.CAPTION_LENGTH, dit.config().captionChannels());
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
}
