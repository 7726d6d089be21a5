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
    @TempDir
    Path temp;

    /**
     * Micro-batch 32: 2 ranks × 32 against 1 rank accumulating 2 × 32 (the case). Micro-batch 16: 2 ranks ×
     * 2 rounds against 1 rank accumulating 4 × 16, where the ranks' sums interleave with the running sum. Plain
     * data parallel and ZeRO-2 (each rank steps half the parameters).
     */
    @ParameterizedTest
    @CsvSource({"32, none, cpu", "16, none, cpu", "32, shard_grad_op, cpu", "16, shard_grad_op, cpu",
            "32, none, cuda", "16, shard_grad_op, cuda"})
    void twoRanksEqualOneRankAccumulatingTheSameBatchBitForBit(int micro, String sharding, String backend)
            throws Exception {
        Path single = temp.resolve("single");
        DataParallelMain.train(new SingleProcessCommunicator(), single, micro, false, DataParallelMain.STEPS,
                Sharding.parse(sharding), backend);
        Path ranks = temp.resolve("ranks");
        MpiLauncher.Result result = MpiLauncher.run(2, 300, line -> { }, List.of(nativeDir()),
                DataParallelMain.class, ranks.toString(), Integer.toString(micro), "fresh",
                Long.toString(DataParallelMain.STEPS), sharding, backend);
        assertEquals(0, result.exitCode(), result.output());
        // On the CUDA backend the buckets stay in device memory and go through mdt_comm_* (here the emulator's).
        String collectives = backend.equals("cuda") ? "emulated devices, collectives over MPI (bootstrap: MPI"
                : "MPI (libmpi.so.40), rank ";
        for (int r = 0; r < 2; r++) {
            assertTrue(result.output().contains("rank " + r + " gradient collectives " + collectives), result.output());
        }
        long[] perRank = new long[2];
        for (String line : result.output().split("\n")) {
            if (line.startsWith("rank ") && line.contains(" optimizer bytes ")) {
                perRank[line.charAt(5) - '0'] = Long.parseLong(line.substring(line.lastIndexOf(' ') + 1));
            }
        }
        long allMoments = 2L * Float.BYTES * parameterCount();
        if (sharding.equals("shard_grad_op")) {
            assertEquals(allMoments, perRank[0] + perRank[1], "the ranks' moments partition the parameters' "
                    + Arrays.toString(perRank));
            assertTrue(Math.max(perRank[0], perRank[1]) < 0.7 * allMoments, "each rank holds about half the moments: "
                    + Arrays.toString(perRank));
        } else {
            assertArrayEquals(new long[] {allMoments, allMoments}, perRank, "every rank holds all the moments");
        }
        Path expected = Checkpoint.latest(single);
        Path actual = Checkpoint.latest(ranks);
        assertNotNull(actual, "rank 0 wrote no checkpoint:\n" + result.output());
        assertEquals(expected.getFileName(), actual.getFileName());
        for (String file : new String[] {Checkpoint.MODEL, Checkpoint.OPTIMIZER, Checkpoint.EMA, Checkpoint.STATE}) {
            assertArrayEquals(Files.readAllBytes(expected.resolve(file)), Files.readAllBytes(actual.resolve(file)),
                    file + " of 2 ranks × " + micro + " (" + sharding + ", " + backend + ") differs from 1 rank "
                            + "accumulating "
                            + DataParallelMain.BATCH / micro + " × " + micro);
        }
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
     * step 2 and 1 rank resuming (and the reverse) end where 1 rank running all 3 steps does, bit for bit.
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
                    sharding, "cpu");
        } else {
            DataParallelMain.train(new SingleProcessCommunicator(), resumed, micro, false, 2, sharding, "cpu");
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
