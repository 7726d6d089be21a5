package io.microdit.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.backend.cpu.CpuBackend;
import io.microdit.distributed.SingleProcessCommunicator;
import io.microdit.model.MicroDiT;
import io.microdit.testing.MpiLauncher;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Data-parallel training: N ranks under mpirun reproduce one process accumulating the same global batch, bit for
 * bit (weights, AdamW moments, EMA), as DESIGN.md's contract 8 requires, on the CPU backend and on the emulated CUDA
 * backend (gradients reduced in device buckets through {@code mdt_comm_*}).
 */
class DataParallelTrainingTest {
    /** Gradient buckets of 2 KB: dozens for the tiny model, several of its parameters larger than one. */
    static final double TINY_BUCKET_MB = 2.0 / 1024;

    @TempDir
    Path temp;

    /**
     * Micro-batch 32: 2 ranks × 32 against 1 rank accumulating 2 × 32 (the case). Micro-batch 16: 2 ranks ×
     * 2 rounds against 1 rank accumulating 4 × 16, where the ranks' sums interleave with the running sum. Plain
     * data parallel and ZeRO-2 (each rank steps half the parameters). The emulated CUDA cases are the same two
     * shapes at a quarter of the batch (2 × 8 and 4 × 4 of 16): the emulator's time grows with the batch (a 64 batch
     * made them 2 × 31 s of the suite), the reduction order and the buckets do not. Buckets of {@link #TINY_BUCKET_MB} MB cut the
     * gradients into dozens of buckets, some parameters larger than one; their collectives overlap the backward
     * (issued while it still has ops to run, as the ranks' trace shows), except in the one serial case, one 25 MB
     * bucket reduced after the backward.
     */
    @ParameterizedTest
    @CsvSource({"64, 32, none, cpu, true", "64, 16, none, cpu, false", "64, 32, shard_grad_op, cpu, true",
            "64, 16, shard_grad_op, cpu, true", "16, 8, none, cuda, true", "16, 4, shard_grad_op, cuda, true"})
    void twoRanksEqualOneRankAccumulatingTheSameBatchBitForBit(int batch, int micro, String sharding, String backend,
                                                              boolean overlap) throws Exception {
        Path single = temp.resolve("single");
        DataParallelMain.train(new SingleProcessCommunicator(), single, micro, false, DataParallelMain.STEPS,
                Sharding.parse(sharding), backend, batch);
        Path ranks = temp.resolve("ranks");
        String bucketMb = overlap ? Double.toString(TINY_BUCKET_MB) : "25";
        MpiLauncher.Result result = MpiLauncher.run(2, 300, line -> { }, List.of(nativeDir(),
                        "-D" + GradientReduction.BUCKET_PROPERTY + "=" + bucketMb,
                        "-D" + GradientReduction.OVERLAP_PROPERTY + "=" + overlap),
                DataParallelMain.class, ranks.toString(), Integer.toString(micro), "fresh",
                Long.toString(DataParallelMain.STEPS), sharding, backend, Integer.toString(batch));
        assertEquals(0, result.exitCode(), result.output());
        for (int r = 0; r < 2; r++) {
            long[] buckets = bucketTrace(result.output(), r);
            long rounds = DataParallelMain.STEPS * (batch / micro / 2);
            assertEquals(rounds * buckets[0], buckets[1], "every bucket is reduced once a round: " + result.output());
            if (overlap) {
                assertTrue(buckets[0] > 20, "tiny buckets: " + buckets[0]);
                assertTrue(buckets[2] >= buckets[1] / 2, "most buckets' collectives are issued during the backward: "
                        + Arrays.toString(buckets));
            } else {
                assertArrayEquals(new long[] {1, rounds, 0}, buckets, "one bucket, reduced after the backward");
            }
        }
        // On the CUDA backend the buckets stay in device memory and go through mdt_comm_* (here the emulator's).
        String collectives = backend.equals("cuda") ? "emulated devices, collectives over MPI (bootstrap: MPI"
                : "MPI (libmpi.so.40), rank ";
        for (int r = 0; r < 2; r++) {
            assertTrue(result.output().contains("rank " + r + " gradient collectives " + collectives), result.output());
        }
        // AdamW's two moments and the EMA: each rank holds half of them under ZeRO-2, all of them without.
        for (String state : new String[] {"optimizer", "ema"}) {
            long[] perRank = new long[2];
            for (String line : result.output().split("\n")) {
                if (line.startsWith("rank ") && line.contains(" " + state + " bytes ")) {
                    perRank[line.charAt(5) - '0'] = Long.parseLong(line.substring(line.lastIndexOf(' ') + 1));
                }
            }
            long all = (state.equals("optimizer") ? 2L : 1L) * Float.BYTES * parameterCount();
            if (sharding.equals("shard_grad_op")) {
                assertEquals(all, perRank[0] + perRank[1], "the ranks' " + state + " state partitions the "
                        + "parameters' " + Arrays.toString(perRank));
                assertTrue(Math.max(perRank[0], perRank[1]) < 0.7 * all, "each rank holds about half the " + state
                        + " state: " + Arrays.toString(perRank));
            } else {
                assertArrayEquals(new long[] {all, all}, perRank, "every rank holds all the " + state + " state");
            }
        }
        Path expected = Checkpoint.latest(single);
        Path actual = Checkpoint.latest(ranks);
        assertNotNull(actual, "rank 0 wrote no checkpoint:\n" + result.output());
        assertEquals(expected.getFileName(), actual.getFileName());
        for (String file : new String[] {Checkpoint.MODEL, Checkpoint.OPTIMIZER, Checkpoint.EMA, Checkpoint.STATE}) {
            assertArrayEquals(Files.readAllBytes(expected.resolve(file)), Files.readAllBytes(actual.resolve(file)),
                    file + " of 2 ranks × " + micro + " (" + sharding + ", " + backend + ") differs from 1 rank "
                            + "accumulating " + batch / micro + " × " + micro);
        }
    }

    /** The rank's "gradient buckets" line: buckets, collectives issued, of them during the backward. */
    private static long[] bucketTrace(String output, int rank) {
        String prefix = "rank " + rank + " gradient buckets ";
        for (String line : output.split("\n")) {
            if (line.startsWith(prefix)) {
                String[] words = line.substring(prefix.length()).split("[ ,]+");
                return new long[] {Long.parseLong(words[0]), Long.parseLong(words[3]),
                        Long.parseLong(words[words.length - 1])};
            }
        }
        throw new AssertionError("no bucket trace from rank " + rank + ":\n" + output);
    }

    @Test
    void tinyBucketsHoldLessThanTheLargestParameter() {
        long largest = 0;
        try (CpuBackend backend = new CpuBackend(1)) {
            MicroDiT model = MicroDiT.create(TrainerTest.tiny(), 5, backend);
            try {
                for (var p : model.parameters().all()) {
                    largest = Math.max(largest, p.value().numel());
                }
            } finally {
                model.parameters().close();
            }
        }
        assertTrue(largest * Float.BYTES > TINY_BUCKET_MB * (1 << 20), "largest parameter: " + largest);
    }

    @Test
    void accumulationStepsThatDoNotSplitOverTheRanksAreAnError() throws Exception {
        MpiLauncher.Result result = MpiLauncher.run(2, 120, line -> { }, DataParallelMain.class,
                temp.resolve("uneven").toString(), "64");
        assertNotEquals(0, result.exitCode(), result.output());
        assertTrue(result.output().contains("1 micro-batches per step do not split evenly over 2 ranks"),
                result.output());
    }

    /**
     * A checkpoint is the single-process format whatever the number of ranks that wrote it: 2 ranks stopping after
     * step 2 and 1 rank resuming (and the reverse) end where 1 rank running all 3 steps does, bit for bit — under
     * ZeRO-2 too, where the AdamW moments and the EMA are gathered from their owners at save and each rank restores
     * its share.
     */
    @ParameterizedTest
    @CsvSource({"2, none", "1, none", "2, shard_grad_op", "1, shard_grad_op"})
    void aRunResumesOnAnotherNumberOfRanksBitForBit(int firstRanks, String shardingName) throws Exception {
        int micro = 32;
        Sharding sharding = Sharding.parse(shardingName);
        Path uninterrupted = temp.resolve("uninterrupted");
        DataParallelMain.train(new SingleProcessCommunicator(), uninterrupted, micro, sharding);
        Path resumed = temp.resolve("resumed");
        int secondRanks = 3 - firstRanks;
        if (firstRanks == 2) {
            MpiLauncher.Result first = MpiLauncher.run(2, 120, line -> { }, DataParallelMain.class,
                    resumed.toString(), Integer.toString(micro), "fresh", "2", shardingName);
            assertEquals(0, first.exitCode(), first.output());
            DataParallelMain.train(new SingleProcessCommunicator(), resumed, micro, true, DataParallelMain.STEPS,
                    sharding, "cpu", DataParallelMain.BATCH);
        } else {
            DataParallelMain.train(new SingleProcessCommunicator(), resumed, micro, false, 2, sharding, "cpu",
                    DataParallelMain.BATCH);
            MpiLauncher.Result second = MpiLauncher.run(2, 120, line -> { }, DataParallelMain.class,
                    resumed.toString(), Integer.toString(micro), "resume", Long.toString(DataParallelMain.STEPS),
                    shardingName);
            assertEquals(0, second.exitCode(), second.output());
        }
        Path expected = Checkpoint.latest(uninterrupted);
        Path actual = Checkpoint.latest(resumed);
        assertEquals(expected.getFileName(), actual.getFileName());
        for (String file : new String[] {Checkpoint.MODEL, Checkpoint.OPTIMIZER, Checkpoint.EMA, Checkpoint.STATE}) {
            assertArrayEquals(Files.readAllBytes(expected.resolve(file)), Files.readAllBytes(actual.resolve(file)),
                    file + " after " + firstRanks + " then " + secondRanks + " ranks differs from 1 rank throughout");
        }
    }

    @Test
    void shardingIsAConfigKeyThatRoundTripsAndIsChecked() throws IOException {
        TrainingConfig sharded = DataParallelMain.config(32, Sharding.SHARD_GRAD_OP);
        assertEquals(Sharding.SHARD_GRAD_OP, TrainingConfig.fromJson(sharded.toJson()).sharding());
        assertEquals(Sharding.NONE, TrainingConfig.fromJson(DataParallelMain.config(32, Sharding.NONE).toJson())
                .sharding());
        IOException bad = assertThrows(IOException.class, () -> TrainingConfig.fromJson(
                sharded.toJson().replace("shard_grad_op", "full_shard")));
        assertTrue(bad.getMessage().contains("'sharding' must be \"none\" or \"shard_grad_op\", got 'full_shard'"),
                bad.getMessage());
    }

    private static String nativeDir() throws IOException {
        return "-Dmicrodit.native.dir=" + Path.of(System.getProperty("microdit.native.dir", "target/native"))
                .toRealPath();
    }

    private static long parameterCount() {
        try (CpuBackend backend = new CpuBackend(1)) {
            MicroDiT model = MicroDiT.create(TrainerTest.tiny(), 5, backend);
            try {
                return model.parameters().count();
            } finally {
                model.parameters().close();
            }
        }
    }
}
