package io.microdit.train;

import io.microdit.autograd.Precision;
import io.microdit.autograd.Recomputation;
import io.microdit.data.MdsLatents;
import io.microdit.io.Json;
import io.microdit.io.JsonException;
import io.microdit.model.MaskingMode;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * Everything a training run needs besides the data files, read from JSON (snake_case keys; unknown keys are
 * errors). The defaults are the main job: fashion-small on Fashion-MNIST, a deferred-masked stage then a short
 * unmasked fine-tune, sized to finish within 15 minutes on a 2-core CPU.
 */
public record TrainingConfig(
        String model,
        String data,
        String dataDirectory,
        int captionLength,
        int batchSize,
        int microBatchSize,
        List<Stage> stages,
        double emaDecay,
        double captionDropout,
        double pMean,
        double pStd,
        long seed,
        int threads,
        long logEvery,
        long sampleEvery,
        long checkpointEvery,
        int sampleSteps,
        double sampleGuidance,
        Precision precision,
        Sharding sharding,
        MdsLatents.Settings mds,
        int keepCheckpoints,
        int maxBadSteps,
        Recomputation recompute) {

    /** Checkpoints kept in a run folder unless {@code "keep_checkpoints"} says otherwise. */
    public static final int DEFAULT_KEEP_CHECKPOINTS = 3;
    /** Non-finite steps in a row that end a run unless {@code "max_bad_steps"} says otherwise. */
    public static final int DEFAULT_MAX_BAD_STEPS = 10;

    /** Checks every field against its range; an error names the config key and what it expects. */
    public TrainingConfig {
        require(batchSize > 0, "batch_size", "positive, got " + batchSize);
        require(microBatchSize > 0 && batchSize % microBatchSize == 0, "micro_batch_size",
                "a positive divisor of batch_size " + batchSize + ", got " + microBatchSize);
        require(!stages.isEmpty(), "stages", "at least one stage");
        require(emaDecay >= 0 && emaDecay < 1, "ema_decay", "in [0, 1) (0 = no EMA), got " + emaDecay);
        require(captionDropout >= 0 && captionDropout <= 1, "caption_dropout", "in [0, 1], got " + captionDropout);
        require(pStd > 0, "p_std", "positive, got " + pStd);
        require(threads >= 0, "threads", "≥ 0 (0 = all processors), got " + threads);
        require(captionLength > 0, "caption_length", "positive, got " + captionLength);
        require(sampleSteps > 0, "sample_steps", "positive, got " + sampleSteps);
        require(precision != null, "precision", "f32 or bf16");
        require(sharding != null, "sharding", "none or shard_grad_op");
        require(mds == null || "mds".equals(data), "mds", "given only with \"data\": \"mds\"");
        require(mds != null || !"mds".equals(data), "mds",
                "given with \"data\": \"mds\" (like {\"streams\": [{\"local\": \"/data/cc12m\"}]})");
        require(keepCheckpoints >= 1, "keep_checkpoints", "at least 1, got " + keepCheckpoints);
        require(maxBadSteps >= 1, "max_bad_steps", "at least 1, got " + maxBadSteps);
        require(recompute != null, "recompute", "none, attention or block");
        stages = List.copyOf(stages);
    }

    /** A config that keeps the default number of checkpoints and of non-finite steps in a row. */
    public TrainingConfig(String model, String data, String dataDirectory, int captionLength, int batchSize,
                          int microBatchSize, List<Stage> stages, double emaDecay, double captionDropout,
                          double pMean, double pStd, long seed, int threads, long logEvery, long sampleEvery,
                          long checkpointEvery, int sampleSteps, double sampleGuidance, Precision precision,
                          Sharding sharding, MdsLatents.Settings mds) {
        this(model, data, dataDirectory, captionLength, batchSize, microBatchSize, stages, emaDecay, captionDropout,
                pMean, pStd, seed, threads, logEvery, sampleEvery, checkpointEvery, sampleSteps, sampleGuidance,
                precision, sharding, mds, DEFAULT_KEEP_CHECKPOINTS, DEFAULT_MAX_BAD_STEPS, Recomputation.NONE);
    }

    /** A config without MDS streams (any data but {@code "mds"}). */
    public TrainingConfig(String model, String data, String dataDirectory, int captionLength, int batchSize,
                          int microBatchSize, List<Stage> stages, double emaDecay, double captionDropout,
                          double pMean, double pStd, long seed, int threads, long logEvery, long sampleEvery,
                          long checkpointEvery, int sampleSteps, double sampleGuidance, Precision precision,
                          Sharding sharding) {
        this(model, data, dataDirectory, captionLength, batchSize, microBatchSize, stages, emaDecay, captionDropout,
                pMean, pStd, seed, threads, logEvery, sampleEvery, checkpointEvery, sampleSteps, sampleGuidance,
                precision, sharding, null);
    }

    /** A config computing in F32 (the default precision). */
    public TrainingConfig(String model, String data, String dataDirectory, int captionLength, int batchSize,
                          int microBatchSize, List<Stage> stages, double emaDecay, double captionDropout,
                          double pMean, double pStd, long seed, int threads, long logEvery, long sampleEvery,
                          long checkpointEvery, int sampleSteps, double sampleGuidance) {
        this(model, data, dataDirectory, captionLength, batchSize, microBatchSize, stages, emaDecay, captionDropout,
                pMean, pStd, seed, threads, logEvery, sampleEvery, checkpointEvery, sampleSteps, sampleGuidance,
                Precision.F32);
    }

    /** A config without sharding (plain data parallel on several ranks). */
    public TrainingConfig(String model, String data, String dataDirectory, int captionLength, int batchSize,
                          int microBatchSize, List<Stage> stages, double emaDecay, double captionDropout,
                          double pMean, double pStd, long seed, int threads, long logEvery, long sampleEvery,
                          long checkpointEvery, int sampleSteps, double sampleGuidance, Precision precision) {
        this(model, data, dataDirectory, captionLength, batchSize, microBatchSize, stages, emaDecay, captionDropout,
                pMean, pStd, seed, threads, logEvery, sampleEvery, checkpointEvery, sampleSteps, sampleGuidance,
                precision, Sharding.NONE);
    }

    /** This config with the training step's matmuls and attention in {@code newPrecision}. */
    public TrainingConfig withPrecision(Precision newPrecision) {
        return new TrainingConfig(model, data, dataDirectory, captionLength, batchSize, microBatchSize, stages,
                emaDecay, captionDropout, pMean, pStd, seed, threads, logEvery, sampleEvery, checkpointEvery,
                sampleSteps, sampleGuidance, newPrecision, sharding, mds, keepCheckpoints, maxBadSteps, recompute);
    }

    /** This config with the ranks' training state divided as {@code newSharding} says. */
    public TrainingConfig withSharding(Sharding newSharding) {
        return new TrainingConfig(model, data, dataDirectory, captionLength, batchSize, microBatchSize, stages,
                emaDecay, captionDropout, pMean, pStd, seed, threads, logEvery, sampleEvery, checkpointEvery,
                sampleSteps, sampleGuidance, precision, newSharding, mds, keepCheckpoints, maxBadSteps, recompute);
    }

    private static void require(boolean ok, String key, String expected) {
        if (!ok) {
            throw new IllegalArgumentException("training config key '" + key + "' must be " + expected);
        }
    }

    /**
     * The main job: fashion-small, batch 64, 1500 steps with 75% deferred masking (cosine from 1e-3, 100 warmup
     * steps, to 0.33×) then 100 unmasked fine-tuning steps at the final rate, 10% caption dropout, no EMA (as the
     * official trainer: an average over this short a run still leans on the masked-stage weights, and its samples
     * are visibly worse). Micro-batches of 32: two per step, which {@code --replicas auto} runs as two data-parallel
     * replicas on a 2-core machine (one core each, no fork-join per op: 15-20% faster than both threads on every op
     * of one 64-image batch), with the same bits on any number of replicas; about 6.5 minutes on two cores.
     */
    public static TrainingConfig defaults() {
        return new TrainingConfig("fashion-small", "fashion-mnist", null, 8, 64, 32,
                List.of(new Stage("masked", 1500, MaskingMode.DEFERRED, 0.75,
                                new LearningRateSchedule.CosineWithWarmup(1e-3, 100, 1500, 0.33), 1.0),
                        new Stage("unmasked-finetune", 100, MaskingMode.NONE, 0,
                                new LearningRateSchedule.ConstantWithWarmup(3.3e-4, 0), 1.0)),
                0.0, 0.1, -0.6, 1.2, 0, 0, 20, 500, 500, 18, 4.0);
    }

    /** Optimizer steps over all stages. */
    public long totalSteps() {
        long sum = 0;
        for (Stage s : stages) {
            sum += s.steps();
        }
        return sum;
    }

    /** Micro-batches accumulated into one optimizer step (batch_size / micro_batch_size, over all ranks). */
    public int accumulationSteps() {
        return batchSize / microBatchSize;
    }

    /** The stage that global step {@code step} (0-based) belongs to. */
    public int stageIndex(long step) {
        long start = 0;
        for (int i = 0; i < stages.size(); i++) {
            start += stages.get(i).steps();
            if (step < start) {
                return i;
            }
        }
        return stages.size() - 1;
    }

    /** The first global step of stage {@code index}. */
    public long stageStart(int index) {
        long start = 0;
        for (int i = 0; i < index; i++) {
            start += stages.get(i).steps();
        }
        return start;
    }

    /**
     * Far beyond any real run, and small enough that the steps of as many stages as a config file can list add up
     * without overflowing a long.
     */
    private static final long MAX_STAGE_STEPS = 1_000_000_000_000L;
    private static final Set<String> KEYS = Set.of("model", "data", "data_dir", "caption_length", "batch_size",
            "micro_batch_size", "stages", "ema_decay", "caption_dropout", "p_mean", "p_std", "seed", "threads",
            "log_every", "sample_every", "checkpoint_every", "sample_steps", "sample_guidance", "precision", "sharding",
            "mds", "keep_checkpoints", "max_bad_steps", "recompute");
    private static final Set<String> STAGE_KEYS = Set.of("name", "steps", "masking", "mask_ratio", "lr",
            "grad_clip");
    private static final Set<String> LR_KEYS = Set.of("schedule", "peak", "warmup", "alpha_f", "total");

    /** Parses a config from JSON text (as stored in checkpoints). */
    public static TrainingConfig fromJson(String json) throws IOException {
        try {
            Object root = Json.parse(json);
            if (!(root instanceof Map<?, ?> map)) {
                throw new IllegalArgumentException("a training config must be a JSON object");
            }
            return fromMap(map);
        } catch (JsonException | IllegalArgumentException e) {
            throw new IOException("training config: " + e.getMessage(), e);
        }
    }

    /**
     * This config with command-line overrides: {@code totalSteps} rescales every stage (and its schedule) to keep
     * their proportions; null leaves a value as it is.
     */
    public TrainingConfig withOverrides(Long totalSteps, Integer threadCount, String dataDir) {
        List<Stage> scaled = stages;
        if (totalSteps != null) {
            require(totalSteps >= stages.size(), "steps", "at least one per stage (" + stages.size() + "), got "
                    + totalSteps);
            scaled = new ArrayList<>();
            double factor = (double) totalSteps / totalSteps();
            long assigned = 0;
            for (int i = 0; i < stages.size(); i++) {
                Stage s = stages.get(i);
                long n = i == stages.size() - 1 ? totalSteps - assigned
                        : Math.max(1, Math.round(s.steps() * factor));
                assigned += n;
                LearningRateSchedule schedule = switch (s.schedule()) {
                    case LearningRateSchedule.CosineWithWarmup c -> new LearningRateSchedule.CosineWithWarmup(c.peak(),
                            Math.min(n - 1, Math.round(c.warmupSteps() * factor)), n, c.alphaF());
                    case LearningRateSchedule.ConstantWithWarmup c -> new LearningRateSchedule.ConstantWithWarmup(
                            c.value(), Math.round(c.warmupSteps() * factor));
                };
                scaled.add(new Stage(s.name(), n, s.masking(), s.maskRatio(), schedule, s.gradientClip()));
            }
        }
        return new TrainingConfig(model, data, dataDir != null ? dataDir : dataDirectory, captionLength, batchSize,
                microBatchSize, scaled, emaDecay, captionDropout, pMean, pStd, seed,
                threadCount != null ? threadCount : threads, logEvery, sampleEvery, checkpointEvery, sampleSteps,
                sampleGuidance, precision, sharding, mds, keepCheckpoints, maxBadSteps, recompute);
    }

    /**
     * This config recomputing {@code mode} in the backward ({@code "recompute": "none" | "attention" | "block"}):
     * less memory for more forward FLOPs, the same gradients.
     */
    public TrainingConfig withRecompute(Recomputation mode) {
        return new TrainingConfig(model, data, dataDirectory, captionLength, batchSize, microBatchSize, stages,
                emaDecay, captionDropout, pMean, pStd, seed, threads, logEvery, sampleEvery, checkpointEvery,
                sampleSteps, sampleGuidance, precision, sharding, mds, keepCheckpoints, maxBadSteps, mode);
    }

    /** This config keeping the newest {@code keep} checkpoints and stopping after {@code maxBad} bad steps in a row. */
    public TrainingConfig withRobustness(int keep, int maxBad) {
        return new TrainingConfig(model, data, dataDirectory, captionLength, batchSize, microBatchSize, stages,
                emaDecay, captionDropout, pMean, pStd, seed, threads, logEvery, sampleEvery, checkpointEvery,
                sampleSteps, sampleGuidance, precision, sharding, mds, keep, maxBad, recompute);
    }

    /** Reads a training config file; an IOException names the file and the bad key. */
    public static TrainingConfig read(Path file) throws IOException {
        Object root = Json.readFile(file);
        try {
            if (!(root instanceof Map<?, ?> map)) {
                throw new IllegalArgumentException("a training config must be a JSON object");
            }
            return fromMap(map);
        } catch (IllegalArgumentException e) {
            throw new IOException(file + ": " + e.getMessage(), e);
        }
    }

    /** Fields given in {@code map} override the {@link #defaults()}. */
    public static TrainingConfig fromMap(Map<?, ?> map) {
        checkKeys(map, KEYS, "training config");
        TrainingConfig d = defaults();
        List<Stage> stages = d.stages();
        if (map.containsKey("stages")) {
            if (!(map.get("stages") instanceof List<?> list) || list.isEmpty()) {
                throw new IllegalArgumentException("training config key 'stages' must be a non-empty list");
            }
            stages = new ArrayList<>();
            for (int i = 0; i < list.size(); i++) {
                if (!(list.get(i) instanceof Map<?, ?> stage)) {
                    throw new IllegalArgumentException("stages[" + i + "] must be an object");
                }
                stages.add(stage(stage, i));
            }
        }
        return new TrainingConfig(
                string(map, "model", d.model()), string(map, "data", d.data()),
                string(map, "data_dir", d.dataDirectory()),
                integer(map, "caption_length", d.captionLength()),
                integer(map, "batch_size", d.batchSize()),
                integer(map, "micro_batch_size",
                        map.containsKey("batch_size") ? integer(map, "batch_size", 0) : d.microBatchSize()),
                stages, number(map, "ema_decay", d.emaDecay()), number(map, "caption_dropout", d.captionDropout()),
                number(map, "p_mean", d.pMean()), number(map, "p_std", d.pStd()),
                wholeNumber(map, "seed", d.seed()), integer(map, "threads", d.threads()),
                wholeNumber(map, "log_every", d.logEvery()), wholeNumber(map, "sample_every", d.sampleEvery()),
                wholeNumber(map, "checkpoint_every", d.checkpointEvery()),
                integer(map, "sample_steps", d.sampleSteps()),
                number(map, "sample_guidance", d.sampleGuidance()),
                Precision.parse(string(map, "precision", d.precision().label()), "training config key 'precision'"),
                Sharding.parse(string(map, "sharding", d.sharding().label())),
                map.containsKey("mds") ? MdsLatents.Settings.fromJson(map.get("mds")) : null,
                integer(map, "keep_checkpoints", d.keepCheckpoints()),
                integer(map, "max_bad_steps", d.maxBadSteps()),
                Recomputation.parse(string(map, "recompute", d.recompute().configName()),
                        "training config key 'recompute'"));
    }

    private static Stage stage(Map<?, ?> map, int index) {
        String where = "stages[" + index + "]";
        checkKeys(map, STAGE_KEYS, where);
        String name = string(map, "name", "stage-" + index);
        if (!map.containsKey("steps")) {
            throw new IllegalArgumentException(where + " needs 'steps'");
        }
        long steps = wholeNumber(map, "steps", 0);
        if (steps > MAX_STAGE_STEPS) {
            throw new IllegalArgumentException(where + ".steps must be at most " + MAX_STAGE_STEPS + ", got " + steps);
        }
        String masking = string(map, "masking", "none");
        MaskingMode mode;
        try {
            mode = MaskingMode.valueOf(masking.toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(where + ".masking must be deferred, naive or none, got '" + masking
                    + "'");
        }
        double ratio = number(map, "mask_ratio", mode == MaskingMode.NONE ? 0 : 0.75);
        if (!(map.get("lr") instanceof Map<?, ?> lr)) {
            throw new IllegalArgumentException(where + ".lr must be an object like {\"schedule\": \"cosine\", "
                    + "\"peak\": 1e-3, \"warmup\": 100, \"alpha_f\": 0.33}");
        }
        checkKeys(lr, LR_KEYS, where + ".lr");
        String type = string(lr, "schedule", "constant");
        double peak = required(lr, "peak", where + ".lr");
        long warmup = wholeNumber(lr, "warmup", 0);
        LearningRateSchedule schedule = switch (type) {
            case "cosine" -> new LearningRateSchedule.CosineWithWarmup(peak, warmup,
                    wholeNumber(lr, "total", steps), number(lr, "alpha_f", 0.33));
            case "constant" -> new LearningRateSchedule.ConstantWithWarmup(peak, warmup);
            default -> throw new IllegalArgumentException(where + ".lr.schedule must be cosine or constant, got '"
                    + type + "'");
        };
        return new Stage(name, steps, mode, ratio, schedule, number(map, "grad_clip", 1.0));
    }

    private static void checkKeys(Map<?, ?> map, Set<String> allowed, String where) {
        for (Object key : map.keySet()) {
            if (!allowed.contains(key)) {
                throw new IllegalArgumentException("unknown key '" + key + "' in " + where + " (known: "
                        + String.join(", ", new TreeSet<>(allowed)) + ")");
            }
        }
    }

    private static String string(Map<?, ?> map, String key, String fallback) {
        Object v = map.get(key);
        if (v == null) {
            return fallback;
        }
        if (!(v instanceof String s)) {
            throw new IllegalArgumentException("key '" + key + "' must be a string, got " + v);
        }
        return s;
    }

    private static double number(Map<?, ?> map, String key, double fallback) {
        Object v = map.get(key);
        if (v == null) {
            return fallback;
        }
        if (!(v instanceof Number n) || !Double.isFinite(n.doubleValue())) {
            throw new IllegalArgumentException("key '" + key + "' must be a finite number, got " + v);
        }
        return n.doubleValue();
    }

    /** An integer key: a JSON integer (not 2.5, not 1e3) in the 64-bit range. */
    private static long wholeNumber(Map<?, ?> map, String key, long fallback) {
        Object v = map.get(key);
        if (v == null) {
            return fallback;
        }
        if (!(v instanceof Long n)) {
            throw new IllegalArgumentException("key '" + key + "' must be an integer in the 64-bit range, got " + v);
        }
        return n;
    }

    private static int integer(Map<?, ?> map, String key, int fallback) {
        long v = wholeNumber(map, key, fallback);
        if (v < Integer.MIN_VALUE || v > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("key '" + key + "' must be a 32-bit integer, got " + v);
        }
        return (int) v;
    }

    private static double required(Map<?, ?> map, String key, String where) {
        if (!map.containsKey(key)) {
            throw new IllegalArgumentException(where + " needs '" + key + "'");
        }
        return number(map, key, 0);
    }

    /** The config as JSON (for run folders and checkpoints). */
    public String toJson() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("model", model);
        m.put("data", data);
        if (dataDirectory != null) {
            m.put("data_dir", dataDirectory);
        }
        if (mds != null) {
            m.put("mds", mds.toJson());
        }
        m.put("caption_length", (long) captionLength);
        m.put("batch_size", (long) batchSize);
        m.put("micro_batch_size", (long) microBatchSize);
        List<Object> stageList = new ArrayList<>();
        for (Stage s : stages) {
            Map<String, Object> sm = new LinkedHashMap<>();
            sm.put("name", s.name());
            sm.put("steps", s.steps());
            sm.put("masking", s.masking().name().toLowerCase(Locale.ROOT));
            sm.put("mask_ratio", s.maskRatio());
            Map<String, Object> lr = new LinkedHashMap<>();
            switch (s.schedule()) {
                case LearningRateSchedule.CosineWithWarmup c -> {
                    lr.put("schedule", "cosine");
                    lr.put("peak", c.peak());
                    lr.put("warmup", c.warmupSteps());
                    lr.put("alpha_f", c.alphaF());
                    lr.put("total", c.totalSteps());
                }
                case LearningRateSchedule.ConstantWithWarmup c -> {
                    lr.put("schedule", "constant");
                    lr.put("peak", c.value());
                    lr.put("warmup", c.warmupSteps());
                }
            }
            sm.put("lr", lr);
            sm.put("grad_clip", s.gradientClip());
            stageList.add(sm);
        }
        m.put("stages", stageList);
        m.put("ema_decay", emaDecay);
        m.put("caption_dropout", captionDropout);
        m.put("p_mean", pMean);
        m.put("p_std", pStd);
        m.put("seed", seed);
        m.put("threads", (long) threads);
        m.put("log_every", logEvery);
        m.put("sample_every", sampleEvery);
        m.put("checkpoint_every", checkpointEvery);
        m.put("sample_steps", (long) sampleSteps);
        m.put("sample_guidance", sampleGuidance);
        m.put("precision", precision.label());
        if (sharding != Sharding.NONE) {
            m.put("sharding", sharding.label());
        }
        m.put("keep_checkpoints", (long) keepCheckpoints);
        m.put("max_bad_steps", (long) maxBadSteps);
        if (recompute != Recomputation.NONE) {
            m.put("recompute", recompute.configName());
        }
        return Json.write(m);
    }
}
