package io.microdit.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.microdit.cli.Main;
import io.microdit.testing.FashionMnistSlice;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A run interrupted again and again, in child JVMs running {@code microdit train --resume auto}: by SIGTERM and
 * SIGINT (it checkpoints the finished step and exits 75) and by kill -9 (it dies where it is), at random steps and
 * in the middle of a checkpoint; each time {@code checkpoints/latest} names a complete, loadable checkpoint, and the
 * run finished by a last {@code --resume auto} ends with the weights, moments and EMA of an uninterrupted run, bit for
 * bit (CPU backend). Each test prints its seed.
 */
class InterruptedRunTest {
    private static final int STEPS = 14;
    private static final String[] WEIGHT_FILES = {Checkpoint.MODEL, Checkpoint.EMA, Checkpoint.OPTIMIZER};

    @TempDir
    static Path shared;

    @TempDir
    Path temp;

    /** A run's training config and the folder of its uninterrupted reference run. */
    private record Setup(Path config, Path reference) {
    }

    /** Images of the Fashion-MNIST slice the runs train on: enough for every step's batch of 8 to differ. */
    private static final int IMAGES = 1000;

    /** The main job's model (fashion-small on Fashion-MNIST) on a small slice of its run: the signal tests. */
    private static Setup mainJob;
    /** A tiny model (cheap child JVMs): the twenty kill -9 moments. */
    private static Setup tiny;

    @BeforeAll
    static void uninterruptedRuns() throws IOException {
        Path data = FashionMnistSlice.write(shared.resolve("fashion-mnist"), IMAGES);
        mainJob = uninterrupted("main", "fashion-small", data);
        Path model = Files.writeString(shared.resolve("tiny.json"), NonFiniteStepsTest.TINY_MODEL);
        tiny = uninterrupted("tiny", model.toString(), data);
    }

    private static Setup uninterrupted(String name, String model, Path data) throws IOException {
        Path config = Files.writeString(shared.resolve(name + "-train.json"), """
                {"model": "%s", "data_dir": "%s", "batch_size": 8, "threads": 1, "ema_decay": 0.9, "log_every": 1,
                 "sample_every": 0, "checkpoint_every": 2, "sample_steps": 2, "keep_checkpoints": 3, "stages": [
                   {"name": "masked", "steps": 8, "masking": "deferred", "mask_ratio": 0.5,
                    "lr": {"schedule": "cosine", "peak": 1e-3, "warmup": 1}},
                   {"name": "finetune", "steps": %d, "lr": {"peak": 3e-4}}]}
                """.formatted(model.replace("\\", "\\\\"), data.toString().replace("\\", "\\\\"),
                        STEPS - 8));
        Path reference = shared.resolve(name + "-reference");
        String out = inProcess("train", "--config", config.toString(), "--out", reference.toString(),
                "--final-samples", "1");
        assertNotNull(Checkpoint.latest(reference), out);
        return new Setup(config, reference);
    }

    @Test
    void sigtermAndSigintCheckpointTheFinishedStepAndResumeBitForBit() throws Exception {
        long seed = new Random().nextLong();
        System.out.println("InterruptedRunTest signals: seed " + seed);
        Random random = new Random(seed);
        Path run = temp.resolve("run");
        // At a random step, with SIGTERM.
        Process child = start(mainJob, run, 0, 0);
        awaitSteps(child, run, 1 + random.nextInt(3));
        long signalled = System.nanoTime();
        child.destroy();
        assertStoppedCleanly(child, run, signalled, "SIGTERM at a step");
        // In the middle of a checkpoint file, SIGTERM then SIGINT: the checkpoint completes, nothing more is done.
        child = start(mainJob, run, 1 + random.nextInt(5), 1500);
        awaitOutput(child, run, "PAUSED ");
        signalled = System.nanoTime();
        child.destroy();
        Thread.sleep(200);
        signal("INT", child);
        assertStoppedCleanly(child, run, signalled, "SIGTERM and SIGINT mid-checkpoint");
        // At a random step, with SIGINT (Ctrl-C).
        child = start(mainJob, run, 0, 0);
        awaitSteps(child, run, stepsDone(run) + 1 + random.nextInt(3));
        signalled = System.nanoTime();
        signal("INT", child);
        assertStoppedCleanly(child, run, signalled, "SIGINT at a step");
        // Two more: SIGTERM in the middle of another checkpoint file, and at a later random step.
        child = start(mainJob, run, 1 + random.nextInt(5), 1500);
        awaitOutput(child, run, "PAUSED ");
        signalled = System.nanoTime();
        child.destroy();
        assertStoppedCleanly(child, run, signalled, "SIGTERM mid-checkpoint");
        child = start(mainJob, run, 0, 0);
        awaitSteps(child, run, Math.min(STEPS - 1, stepsDone(run) + 1 + random.nextInt(2)));
        signalled = System.nanoTime();
        child.destroy();
        assertStoppedCleanly(child, run, signalled, "SIGTERM at a later step");
        finishAndCompare(mainJob, run, "seed " + seed);
    }

    @Test
    void killNineAnywhereLeavesALoadableCheckpointAndADamagedOneFallsBack() throws Exception {
        long seed = new Random().nextLong();
        System.out.println("InterruptedRunTest kill -9: seed " + seed);
        Random random = new Random(seed);
        Path run = temp.resolve("run");
        boolean checkpointed = false;
        // 20 moments: every fourth in the middle of a checkpoint file, every fourth after a random next step, the
        // others at a random time since the child started (start-up, a step, a checkpoint: wherever it is).
        for (int moment = 0; moment < 20; moment++) {
            boolean midCheckpoint = moment % 4 == 1;
            Process child = start(tiny, run, midCheckpoint ? 1 + random.nextInt(5) : 0, 60_000);
            if (midCheckpoint) {
                awaitOutput(child, run, "PAUSED ");
            } else if (moment % 4 == 3 && stepsDone(run) < STEPS - 2) {
                awaitSteps(child, run, Math.min(STEPS - 1, stepsDone(run) + 1 + random.nextInt(3)));
            } else {
                Thread.sleep(random.nextInt(2500));
            }
            child.destroyForcibly();
            assertTrue(child.waitFor(30, TimeUnit.SECONDS));
            Path latest = Checkpoint.latest(run);
            if (latest != null) {
                Checkpoint.verify(latest);
                checkpointed = true;
            } else {
                assertTrue(!checkpointed, "latest vanished after moment " + moment + " (seed " + seed + ")");
            }
        }
        Path latest = Checkpoint.latest(run);
        assertNotNull(latest, "twenty kills and not one checkpoint (seed " + seed + ")");
        Path damaged = latest.resolve(WEIGHT_FILES[random.nextInt(WEIGHT_FILES.length)]);
        byte[] bytes = Files.readAllBytes(damaged);
        bytes[random.nextInt(bytes.length)] ^= (byte) (1 << random.nextInt(8));
        Files.write(damaged, bytes);
        String out = finishAndCompare(tiny, run, "seed " + seed);
        assertTrue(out.contains("warning: checkpoint " + latest) && out.contains(damaged.toString())
                && out.contains("falling back"), out);
    }

    /** Resumes the run in this JVM to its end; its weights, moments and EMA must be the uninterrupted run's. */
    private static String finishAndCompare(Setup setup, Path run, String seed) throws IOException {
        String out = inProcess("train", "--config", setup.config().toString(), "--out", run.toString(), "--resume",
                "auto",
                "--final-samples", "1");
        Path last = run.resolve("checkpoints").resolve(String.format("step-%07d", STEPS));
        assertEquals(last, Checkpoint.latest(run), out);
        for (String file : WEIGHT_FILES) {
            assertArrayEquals(Files.readAllBytes(setup.reference().resolve("checkpoints").resolve(last.getFileName())
                    .resolve(file)), Files.readAllBytes(last.resolve(file)), file + " differs from the uninterrupted"
                    + " run's (" + seed + ")\n" + out);
        }
        assertEquals(STEPS, stepsDone(run), "metrics.jsonl holds each step once");
        try (Stream<Path> entries = Files.list(run.resolve("checkpoints"))) {
            List<String> names = entries.map(p -> p.getFileName().toString()).sorted().toList();
            assertEquals(4, names.size(), "the last 3 checkpoints and latest, no temporaries: " + names);
        }
        return out;
    }

    /** A stopped child exited 75 having checkpointed the last step metrics.jsonl records. */
    private static void assertStoppedCleanly(Process child, Path run, long signalled, String moment)
            throws Exception {
        assertTrue(child.waitFor(60, TimeUnit.SECONDS), moment + ": still running");
        double seconds = (System.nanoTime() - signalled) / 1e9;
        String output = Files.readString(run.resolveSibling(run.getFileName() + ".log"));
        assertEquals(Preemption.EXIT_STATUS, child.exitValue(), moment + ":\n" + output);
        Path latest = Checkpoint.latest(run);
        assertNotNull(latest, moment);
        assertEquals(stepsDone(run), Checkpoint.verify(latest).step(), moment + ": the checkpoint is not of the last "
                + "finished step\n" + output);
        System.out.printf("InterruptedRunTest: %s: exited 75 %.2f s after the signal, at step %d%n", moment, seconds,
                stepsDone(run));
    }

    private static Process start(Setup setup, Path run, int pauseAt, long pauseMillis) throws IOException {
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java")
                .toString()));
        command.addAll(Arrays.asList(System.getProperty("microdit.jvm.flags").trim().split("\\s+")));
        command.addAll(List.of("-cp", System.getProperty("java.class.path"), FaultInjectingMain.class.getName(),
                Integer.toString(pauseAt), Long.toString(pauseMillis), "train", "--config",
                setup.config().toString(),
                "--out", run.toString(), "--resume", "auto", "--final-samples", "1"));
        Path log = run.resolveSibling(run.getFileName() + ".log");
        return new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile()).start();
    }

    private static void awaitSteps(Process child, Path run, int steps) throws Exception {
        await(child, run, () -> stepsDone(run) >= steps, "step " + steps);
    }

    private static void awaitOutput(Process child, Path run, String text) throws Exception {
        Path log = run.resolveSibling(run.getFileName() + ".log");
        await(child, run, () -> Files.readString(log).contains(text), "'" + text + "'");
    }

    private interface Condition {
        boolean holds() throws IOException;
    }

    private static void await(Process child, Path run, Condition condition, String what) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        while (!condition.holds()) {
            if (!child.isAlive() || System.nanoTime() > deadline) {
                child.destroyForcibly();
                fail("the child " + (child.isAlive() ? "timed out" : "exited " + child.exitValue()) + " before "
                        + what + ":\n" + Files.readString(run.resolveSibling(run.getFileName() + ".log")));
            }
            Thread.sleep(2);
        }
    }

    private static void signal(String name, Process child) throws Exception {
        assertEquals(0, new ProcessBuilder("kill", "-" + name, Long.toString(child.pid())).start().waitFor());
    }

    /** Steps metrics.jsonl records (complete lines). */
    private static int stepsDone(Path run) throws IOException {
        Path metrics = run.resolve("metrics.jsonl");
        if (!Files.isRegularFile(metrics)) {
            return 0;
        }
        String text = Files.readString(metrics);
        return (int) text.chars().filter(c -> c == '\n').count();
    }

    private static String inProcess(String... args) {
        PrintStream out = System.out;
        ByteArrayOutputStream captured = new ByteArrayOutputStream();
        int exit;
        try {
            System.setOut(new PrintStream(captured, true, StandardCharsets.UTF_8));
            exit = Main.run(args);
        } finally {
            System.setOut(out);
        }
        String text = captured.toString(StandardCharsets.UTF_8);
        assertEquals(0, exit, text);
        return text;
    }
}
