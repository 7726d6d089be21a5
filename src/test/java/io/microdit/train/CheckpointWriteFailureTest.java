package io.microdit.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.backend.cpu.CpuBackend;
import io.microdit.model.MaskingMode;
import io.microdit.model.MicroDiT;
import io.microdit.testing.ArrayData;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Failed writes: one during a checkpoint (a full disk, injected before the N-th file) leaves the previous
 * checkpoint loadable and is an error naming the file and the system's reason; one of metrics or a sample grid is
 * a warning and the run goes on.
 */
class CheckpointWriteFailureTest {
    private static final CpuBackend BACKEND = new CpuBackend(1);
    private static final String DISK_FULL = "No space left on device";

    @TempDir
    Path temp;

    @AfterAll
    static void close() {
        BACKEND.close();
    }

    @AfterEach
    void removeHook() {
        Checkpoint.writeHook = file -> { };
    }

    /** Fails the {@code n}-th checkpoint file write from now on, as a full disk would (its reason has no path). */
    private static AtomicReference<Path> failWrite(int n) {
        AtomicInteger writes = new AtomicInteger();
        AtomicReference<Path> failed = new AtomicReference<>();
        Checkpoint.writeHook = file -> {
            if (writes.incrementAndGet() == n) {
                failed.set(file);
                throw new IOException(DISK_FULL);
            }
        };
        return failed;
    }

    @Test
    void aFailedWriteOfAnyCheckpointFileLeavesThePreviousOneLoadable() throws IOException {
        ArrayData data = ArrayData.random(8, 1, 8, 4, 16, 12);
        TrainingConfig config = new TrainingConfig("tiny-test", "arrays", null, 4, 4, 4, List.of(new Stage("s", 9,
                MaskingMode.NONE, 0, new LearningRateSchedule.ConstantWithWarmup(1e-3, 0), 1.0)), 0.9, 0.0, -0.6,
                1.2, 3, 1, 1, 0, 0, 4, 1.0);
        // model, ema, optimizer, state.json, then the latest pointer.
        for (int n = 1; n <= 5; n++) {
            Path run = temp.resolve("run-" + n);
            MicroDiT model = MicroDiT.create(TrainerTest.tiny(), 8, BACKEND);
            try (Trainer trainer = new Trainer(config, model, data, BACKEND)) {
                trainer.trainStep();
                Path previous = trainer.checkpoint(run);
                trainer.trainStep();
                AtomicReference<Path> failed = failWrite(n);
                IOException e = assertThrows(IOException.class, () -> trainer.checkpoint(run));
                removeHook();
                assertTrue(e.getMessage().contains(failed.get().toString()) && e.getMessage().contains(DISK_FULL),
                        "write " + n + ": " + e.getMessage());
                assertEquals(previous, Checkpoint.latest(run), "write " + n);
                assertEquals(1, Checkpoint.verify(previous).step());
                List<String> left = new ArrayList<>();
                try (Stream<Path> entries = Files.list(run.resolve("checkpoints"))) {
                    entries.map(p -> p.getFileName().toString()).sorted().forEach(left::add);
                }
                assertEquals(n == 5 ? List.of("latest", "step-0000001", "step-0000002")
                        : List.of("latest", "step-0000001"), left, "write " + n + ": temporaries left behind");
            } finally {
                model.parameters().close();
            }
            MicroDiT restored = MicroDiT.create(TrainerTest.tiny(), 9, BACKEND);
            try (Trainer trainer = new Trainer(config, restored, data, BACKEND)) {
                trainer.restore(Checkpoint.latest(run));
                assertEquals(1, trainer.step());
            } finally {
                restored.parameters().close();
            }
        }
    }

    private TrainingConfig runConfig(int sampleEvery) throws IOException {
        Path model = Files.writeString(temp.resolve("tiny.json"), NonFiniteStepsTest.TINY_MODEL);
        return TrainingConfig.fromJson("""
                {"model": "%s", "batch_size": 8, "threads": 1, "sample_every": %d, "sample_steps": 2,
                 "checkpoint_every": 2, "stages": [{"name": "s", "steps": 5, "lr": {"peak": 1e-3}}]}
                """.formatted(model.toString().replace("\\", "\\\\"), sampleEvery));
    }

    @Test
    void aFailedCheckpointWriteStopsTheRunNamingThePath() throws IOException {
        Path run = temp.resolve("run");
        AtomicReference<Path> failed = failWrite(4 + 2); // without EMA: model, optimizer, state, latest
        IOException e = assertThrows(IOException.class, () -> new TrainingRun(runConfig(0), run,
                new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8)).run(false));
        assertTrue(failed.get().toString().endsWith(Checkpoint.OPTIMIZER), failed.get().toString());
        assertTrue(e.getMessage().contains(failed.get().toString()) && e.getMessage().contains(DISK_FULL),
                e.getMessage());
        assertEquals(run.resolve("checkpoints").resolve("step-0000002"), Checkpoint.latest(run));
        assertEquals(4, Files.readAllLines(run.resolve("metrics.jsonl")).size(), "the run went on after step 4");
    }

    @Test
    void failedMetricsAndSampleWritesAreWarningsAndTheRunGoesOn() throws IOException {
        Path run = temp.resolve("run");
        // Directories where the files go: writing them fails with the system's own error.
        Files.createDirectories(run.resolve("metrics.jsonl"));
        Files.createDirectories(run.resolve("samples").resolve("step-0000002.png"));
        Files.createDirectories(run.resolve("samples").resolve("final.png"));
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        PrintStream console = System.out;
        PrintStream captured = new PrintStream(log, true, StandardCharsets.UTF_8);
        try {
            // The progress bar (and its warnings) writes to the console.
            System.setOut(captured);
            new TrainingRun(runConfig(2), run, captured).run(false);
        } finally {
            System.setOut(console);
        }
        String text = log.toString(StandardCharsets.UTF_8);
        for (String file : new String[] {"metrics.jsonl", "samples/step-0000002.png", "samples/final.png"}) {
            assertTrue(text.contains("warning: cannot write " + run.resolve(file)), file + ":\n" + text);
        }
        assertTrue(Files.isRegularFile(run.resolve("samples").resolve("step-0000004.png")), text);
        Checkpoint.verify(Checkpoint.latest(run));
        assertEquals(5, Checkpoint.readState(Checkpoint.latest(run)).step());
    }
}
