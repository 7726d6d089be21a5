package io.microdit.cli;

import io.microdit.autograd.Precision;
import io.microdit.backend.Backends;
import io.microdit.io.Json;
import io.microdit.train.Checkpoint;
import io.microdit.train.Preemption;
import io.microdit.train.TrainingConfig;
import io.microdit.train.TrainingRun;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * The main job. With no arguments: fashion-small on Fashion-MNIST on the CPU backend as two data-parallel replicas,
 * about 6.5 minutes on two cores, into {@code runs/fashion-small}.
 */
@Command(name = "train", description = "Train a MicroDiT (default: fashion-small on Fashion-MNIST, ~6.5 min on 2 cores).")
final class TrainCommand implements Callable<Integer> {
    @Option(names = "--config", description = "Training config JSON (keys as in the README); default: the main job.")
    Path config;

    @Option(names = "--out", description = "Run folder (default: runs/<model>).")
    Path out;

    @Option(names = "--resume", arity = "0..1", fallbackValue = "latest", paramLabel = "auto",
            description = "Continue the run in --out (or the config's run folder) from its newest loadable checkpoint "
                    + "(a damaged one is passed over with a warning). '--resume auto' starts the run fresh when it has "
                    + "no checkpoint yet: one command for restart scripts.")
    String resume;

    @Option(names = "--steps", description = "Scale the stages to this many steps in total (keeps their proportions).")
    Long steps;

    @Option(names = "--threads", description = "CPU threads (default: all).")
    Integer threads;

    @Option(names = "--replicas", defaultValue = "auto", paramLabel = "N|auto", description = "Data-parallel "
            + "replicas on threads of this process, sharing the CPU threads out (cpu backend): each takes its share "
            + "of a step's micro-batches, and the gradients are summed as one process accumulating them sums them, "
            + "so the count never changes the result. auto (the default): one per thread as far as the micro-batches "
            + "go round evenly.")
    String replicas;

    @Option(names = "--data", description = "Folder with the Fashion-MNIST IDX files (default: Debian's).")
    Path data;

    @Option(names = "--backend", defaultValue = "cpu", description = "cpu or cuda (see --device). "
            + "Default ${DEFAULT-VALUE}.")
    String backend;

    @Mixin
    DeviceOption device;

    @Mixin
    Tf32Option tf32;

    @Option(names = "--precision", description = "f32 or bf16, over the config's \"precision\"; with neither, bf16 "
            + "on cuda and f32 on cpu. A resumed run keeps its own.")
    String precision;

    @Option(names = "--final-samples", defaultValue = "4", description = "Samples per prompt in the final grid "
            + "(default ${DEFAULT-VALUE}).")
    int finalSamples;

    /**
     * Exits 0 when the run finished, {@link Preemption#EXIT_STATUS} (75) when SIGTERM or SIGINT stopped it after a
     * checkpoint (run the same command with {@code --resume auto} to continue), 1 on an error.
     */
    @Override
    public Integer call() throws Exception {
        tf32.check(backend);
        if (resume != null && !resume.equals("latest") && !resume.equals("auto")) {
            throw new IllegalArgumentException("--resume takes no value or 'auto', got '" + resume + "'");
        }
        boolean auto = "auto".equals(resume);
        boolean resuming = resume != null;
        Path runDirectory = null;
        TrainingConfig training = null;
        if (resuming && config == null && out != null && Files.isDirectory(out)) {
            // The run's own config comes from its checkpoint; the run itself warns of any damaged one passed over.
            Path latest = Checkpoint.resumable(out, warning -> { });
            if (latest != null) {
                training = TrainingConfig.fromJson(Checkpoint.readState(latest).trainingConfigJson());
                runDirectory = out;
            } else if (!auto) {
                throw new IllegalArgumentException(out + " has no checkpoint to resume from");
            }
        }
        if (training == null) {
            training = config == null ? TrainingConfig.defaults() : TrainingConfig.read(config);
            training = training.withOverrides(steps, threads, data == null ? null : data.toString());
            if (precision != null) {
                training = training.withPrecision(Precision.parse(precision, "--precision"));
            } else if (!setsPrecision(config)) {
                training = training.withPrecision(Backends.defaultPrecision(backend));
            }
            runDirectory = out != null ? out : Path.of("runs", Path.of(training.model()).getFileName().toString()
                    .replaceFirst("\\.json$", ""));
            if (auto) {
                resuming = !Checkpoint.candidates(runDirectory, warning -> { }).isEmpty();
            } else if (!resuming && Checkpoint.latest(runDirectory) != null) {
                throw new IllegalArgumentException(runDirectory + " already holds a run: pass --resume to continue it,"
                        + " or --out to start a new one elsewhere");
            }
        } else if (precision != null && Precision.parse(precision, "--precision") != training.precision()) {
            throw new IllegalArgumentException("--precision: a resumed run keeps the precision it was started with ("
                    + training.precision().label() + ")");
        }
        try (Preemption preemption = Preemption.onSignals(System.err)) {
            TrainingRun.Outcome outcome = new TrainingRun(training, runDirectory, System.out, backend, device.device,
                    finalSamples, tf32.tf32).withReplicas(replicaCount(replicas)).run(resuming, preemption);
            return outcome == TrainingRun.Outcome.PREEMPTED ? Preemption.EXIT_STATUS : 0;
        }
    }

    /** --replicas as a count, 0 for auto. */
    private static int replicaCount(String text) {
        if (text.equals("auto")) {
            return 0;
        }
        if (!text.matches("[1-9][0-9]{0,3}")) {
            throw new IllegalArgumentException("--replicas must be a count from 1 to 9999 or auto, got '" + text + "'");
        }
        return Integer.parseInt(text);
    }

    /** Whether the config file names a precision (TrainingConfig.read has already parsed and checked it). */
    private static boolean setsPrecision(Path config) throws java.io.IOException {
        return config != null && Json.parse(Files.readString(config)) instanceof Map<?, ?> map
                && map.containsKey("precision");
    }
}
