package io.microdit.eval;

import io.microdit.backend.cpu.CpuBackend;
import io.microdit.data.FashionMnist;
import io.microdit.data.FashionMnistData;
import io.microdit.diffusion.HeunSampler;
import io.microdit.eval.MaskingExperiment.Settings;
import io.microdit.eval.MaskingExperiment.Variant;
import io.microdit.io.Json;
import io.microdit.model.ConfigFile;
import io.microdit.model.MaskingMode;
import io.microdit.model.MicroDiT;
import io.microdit.model.MicroDiTConfig;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.train.LearningRateSchedule;
import io.microdit.train.Stage;
import io.microdit.train.Trainer;
import io.microdit.train.TrainingConfig;
import io.microdit.train.TrainingRun;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The planned training length of the masking experiment, fixed once so that a resumed experiment trains exactly as
 * planned, and how it is made: the model configs ({@code configs/model-p2.json}, {@code -p4}), the training config
 * of every variant, and the probe that times a few steps of every variant and a sampler call to size the training
 * to the budget ({@code plan.json}, reused when present).
 */
record MaskingPlan(long steps, long finetuneSteps, Map<String, Double> secondsPerImage,
                   Map<String, Double> sampleSecondsPerImage, double estimatedSeconds) {
    /** Caption tokens per prompt, in training and sampling alike. */
    static final int CAPTION_LENGTH = 8;

    /** Writes the backbone's config at patch 2 and 4 under {@code configs/}; returns the files by patch size. */
    static Map<Integer, Path> writeModelFiles(Settings settings, Path out) throws IOException {
        Path configs = Files.createDirectories(out.resolve("configs"));
        Map<Integer, Path> modelFiles = new LinkedHashMap<>();
        for (int patch : new int[] {2, 4}) {
            Path file = configs.resolve("model-p" + patch + ".json");
            Files.writeString(file, ConfigFile.toJson(withPatch(settings.base(), patch)) + "\n");
            modelFiles.put(patch, file);
        }
        return modelFiles;
    }

    /** The same architecture at another patch size. */
    static MicroDiTConfig withPatch(MicroDiTConfig c, int patch) {
        return new MicroDiTConfig(c.name().replaceFirst("-p2$", "") + "-p" + patch, c.inputSize(), patch,
                c.inChannels(), c.dim(), c.depth(), c.headDim(), c.multipleOf(), c.captionChannels(),
                c.posInterpScale(), c.normEps(), c.depthInit(), c.qkvMultipliers(), c.ffnMultipliers(),
                c.usePatchMixer(), c.patchMixerDepth(), c.patchMixerDim(), c.patchMixerQkvRatio(),
                c.patchMixerMlpRatio(), c.useBias(), c.numExperts(), c.expertCapacity(), c.expertsEveryN());
    }

    /**
     * The plan in {@code out/plan.json}, or, when there is none yet, a new one from the probe's timings and the
     * budget (or {@link Settings#imagesSeen()}), written there.
     */
    static MaskingPlan loadOrProbe(Settings settings, Path out, Map<Integer, Path> modelFiles,
                                   FashionMnist.Split train, CpuBackend backend, PrintStream log) throws IOException {
        Path file = out.resolve("plan.json");
        if (Files.isRegularFile(file)) {
            Map<?, ?> m = (Map<?, ?>) Json.parse(Files.readString(file, StandardCharsets.UTF_8));
            MaskingPlan plan = new MaskingPlan(((Number) m.get("steps")).longValue(),
                    ((Number) m.get("finetune_steps")).longValue(), doubles(m.get("train_seconds_per_image")),
                    doubles(m.get("sample_seconds_per_image")),
                    ((Number) m.get("estimated_seconds")).doubleValue());
            log.printf("plan: %s (%d steps of batch %d, the last %d unmasked)%n", file, plan.steps(),
                    settings.batchSize(), plan.finetuneSteps());
            return plan;
        }
        Probe probe = new Probe(settings, train, backend, log);
        Map<String, Double> trainCost = new LinkedHashMap<>();
        Map<String, Double> sampleCost = new LinkedHashMap<>();
        log.println("probe: timing " + settings.probeSteps() + " training steps per variant and one sampler call");
        // Two passes, keeping the faster: the first pass also warms up the JIT, which would inflate the first
        // variant's time many times over.
        for (int pass = 0; pass < 2; pass++) {
            for (Variant v : MaskingExperiment.VARIANTS) {
                double seconds = probe.training(v, modelFiles.get(v.patch()), pass == 1);
                trainCost.merge(v.name(), seconds, Math::min);
            }
        }
        int generated = 10 * settings.generatedPerClass();
        for (int patch : new int[] {2, 4}) {
            sampleCost.put("p" + patch, probe.sampling(modelFiles.get(patch)));
        }
        double f = settings.finetuneFraction();
        double perImage = 0, sampling = 0;
        for (Variant v : MaskingExperiment.VARIANTS) {
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
        MaskingPlan plan = new MaskingPlan(steps, finetune, trainCost, sampleCost, estimate);
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

    /** A variant's training: its masked stage, then the unmasked fine-tune ({@code finetuneSteps} of the steps). */
    static TrainingConfig trainingConfig(Settings settings, Variant v, Path modelFile, long seed, long steps,
                                         long finetuneSteps) {
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

    /** The training images with the captions of {@code model}. */
    static FashionMnistData trainingData(FashionMnist.Split train, MicroDiTConfig model) {
        return new FashionMnistData(train, TrainingRun.captionEncoder(CAPTION_LENGTH, model));
    }

    private static Map<String, Double> doubles(Object value) {
        Map<String, Double> out = new LinkedHashMap<>();
        ((Map<?, ?>) value).forEach((k, v) -> out.put((String) k, ((Number) v).doubleValue()));
        return out;
    }

    /** Times training steps and sampler calls on the backend the experiment runs on. */
    private record Probe(Settings settings, FashionMnist.Split train, CpuBackend backend, PrintStream log) {
        /** Seconds per training image of a variant's masked stage, after one warm-up step. */
        double training(Variant v, Path modelFile, boolean print) throws IOException {
            MicroDiTConfig model = ConfigFile.resolve(modelFile.toString());
            int probe = settings.probeSteps();
            TrainingConfig config = trainingConfig(settings, v, modelFile, 999, probe + 10, 1);
            MicroDiT dit = MicroDiT.create(model, 999, backend);
            try (Trainer trainer = new Trainer(config, dit, trainingData(train, model), backend)) {
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
        double sampling(Path modelFile) throws IOException {
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
    }
}
