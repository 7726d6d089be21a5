package io.microdit.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.data.TrainingData;
import io.microdit.io.Json;
import io.microdit.tensor.Tensor;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Data-parallel replicas on threads of one process ({@code --replicas}): the run's weights, AdamW moments and losses
 * are bit for bit those of one replica accumulating the same micro-batches, plain and under ZeRO-2; a replica's
 * error ends the run with that error; auto picks a count the micro-batches go round.
 */
class ReplicasTest {
    @TempDir
    Path temp;

    private TrainingConfig config(int micro, String sharding) throws IOException {
        Path model = Files.writeString(temp.resolve("tiny.json"), NonFiniteStepsTest.TINY_MODEL);
        return TrainingConfig.fromJson("""
                {"model": "%s", "batch_size": 8, "micro_batch_size": %d, "threads": 2, "sample_every": 0,
                 "checkpoint_every": 0, "sample_steps": 2, "sharding": "%s",
                 "stages": [{"name": "s", "steps": 4, "lr": {"peak": 1e-3}}]}
                """.formatted(model.toString().replace("\\", "\\\\"), micro, sharding));
    }

    private static TrainingRun run(TrainingConfig config, Path folder) {
        return new TrainingRun(config, folder, new PrintStream(new ByteArrayOutputStream(), true,
                StandardCharsets.UTF_8), "cpu", null, 1, false);
    }

    @ParameterizedTest
    @CsvSource({"4, none", "2, none", "4, shard_grad_op"})
    void twoReplicasEqualOneAccumulatingTheSameMicroBatchesBitForBit(int micro, String sharding) throws Exception {
        TrainingConfig config = config(micro, sharding);
        Path one = temp.resolve("one");
        Path two = temp.resolve("two");
        assertEquals(TrainingRun.Outcome.FINISHED, run(config, one).withReplicas(1).run(false));
        assertEquals(TrainingRun.Outcome.FINISHED, run(config, two).withReplicas(2).run(false));
        Path a = Checkpoint.latest(one);
        Path b = Checkpoint.latest(two);
        for (String file : new String[] {Checkpoint.MODEL, Checkpoint.OPTIMIZER}) {
            assertArrayEquals(Files.readAllBytes(a.resolve(file)), Files.readAllBytes(b.resolve(file)), file);
        }
        // The final grid: replica 0 draws it on both threads once replica 1 is done, with the same images.
        Path grid = Path.of("samples", "final.png");
        assertArrayEquals(Files.readAllBytes(one.resolve(grid)), Files.readAllBytes(two.resolve(grid)));
        List<String> linesOne = Files.readAllLines(one.resolve("metrics.jsonl"));
        List<String> linesTwo = Files.readAllLines(two.resolve("metrics.jsonl"));
        assertEquals(4, linesTwo.size());
        for (int i = 0; i < linesOne.size(); i++) {
            Map<?, ?> x = (Map<?, ?>) Json.parse(linesOne.get(i));
            Map<?, ?> y = (Map<?, ?>) Json.parse(linesTwo.get(i));
            assertEquals(x.get("loss"), y.get("loss"), "step " + (i + 1));
            assertEquals(x.get("grad_norm"), y.get("grad_norm"), "step " + (i + 1));
            assertEquals(2L, y.get("ranks"));
        }
    }

    @Test
    void aReplicasErrorEndsTheRunWithThatError() throws Exception {
        TrainingConfig config = config(4, "none");
        // Replica 1's reads fail at its third micro-batch; replica 0 then finds its collective broken.
        int[] reads = {0};
        TrainingRun training = run(config, temp.resolve("run")).withReplicas(2).withDataFilter(data -> beforeReads(data,
                () -> {
                    if (Thread.currentThread().getName().equals("microdit-replica-1") && ++reads[0] == 3) {
                        throw new IllegalStateException("replica 1's disk is gone");
                    }
                }));
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> training.run(false));
        assertEquals("replica 1's disk is gone", e.getMessage());
        assertEquals(2, Files.readAllLines(temp.resolve("run").resolve("metrics.jsonl")).size(),
                "two steps finished before replica 1 failed in the third");
    }

    /** {@code data}, running {@code hook} on the reading thread before each read. */
    private static TrainingData beforeReads(TrainingData data, Runnable hook) {
        record HookedReads(TrainingData data, Runnable hook) implements ForwardingData {
            @Override
            public void read(int[] indices, Tensor latents, Tensor captions) {
                hook.run();
                data.read(indices, latents, captions);
            }
        }
        return new HookedReads(data, hook);
    }

    @Test
    void aRunStoppedOnTwoReplicasResumesOnOneBitForBit() throws Exception {
        TrainingConfig config = config(4, "none");
        Path whole = temp.resolve("whole");
        assertEquals(TrainingRun.Outcome.FINISHED, run(config, whole).withReplicas(1).run(false));
        Path split = temp.resolve("split");
        // Stopped as by SIGTERM during step 2 (replica 0's second read): both replicas stop after it.
        Preemption stop = Preemption.never();
        int[] reads = {0};
        TrainingRun first = run(config, split).withReplicas(2).withDataFilter(data -> beforeReads(data, () -> {
            if (!Thread.currentThread().getName().startsWith("microdit-replica") && ++reads[0] == 2) {
                stop.request("test");
            }
        }));
        assertEquals(TrainingRun.Outcome.PREEMPTED, first.run(false, stop));
        assertEquals(2, Checkpoint.readState(Checkpoint.latest(split)).step());
        assertEquals(TrainingRun.Outcome.FINISHED, run(config, split).withReplicas(1).run(true));
        for (String file : new String[] {Checkpoint.MODEL, Checkpoint.OPTIMIZER}) {
            assertArrayEquals(Files.readAllBytes(Checkpoint.latest(whole).resolve(file)),
                    Files.readAllBytes(Checkpoint.latest(split).resolve(file)), file);
        }
    }

    @Test
    void replicasThatTheMicroBatchesDoNotGoRoundAreAnError() throws Exception {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> run(config(8, "none"), temp.resolve("run")).withReplicas(2).run(false));
        assertTrue(e.getMessage().contains("--replicas 2") && e.getMessage().contains("1 micro-batches per step"),
                e.getMessage());
    }

    @Test
    void autoTakesOnePerThreadAsFarAsTheMicroBatchesGoRound() throws Exception {
        long lots = 1L << 40;
        TrainingConfig two = config(4, "none").withOverrides(null, 0, null); // 2 micro-batches, all processors
        assertEquals(2, Replicas.auto(two, "cpu", 2, 1000, lots));
        assertEquals(2, Replicas.auto(two, "cpu", 16, 1000, lots));
        assertEquals(1, Replicas.auto(two, "cpu", 1, 1000, lots));
        assertEquals(1, Replicas.auto(two, "cuda", 16, 1000, lots));
        // Two replicas' state (16 bytes a parameter each) must fit in a quarter of the machine's memory.
        assertEquals(1, Replicas.auto(two, "cpu", 16, 1000, 4 * 32_000 - 1));
        assertEquals(2, Replicas.auto(two, "cpu", 16, 1000, 4 * 32_000));
        TrainingConfig eight = config(1, "none").withOverrides(null, 0, null);
        assertEquals(4, Replicas.auto(eight, "cpu", 6, 1000, lots), "the largest divisor of 8 up to 6");
        assertEquals(1, Replicas.auto(config(8, "none").withOverrides(null, 0, null), "cpu", 4, 1000,
                lots));
        // An explicit thread count bounds the replicas, as the processors do.
        assertEquals(1, Replicas.auto(config(1, "none").withOverrides(null, 1, null), "cpu", 16, 1000,
                lots));
    }
}
