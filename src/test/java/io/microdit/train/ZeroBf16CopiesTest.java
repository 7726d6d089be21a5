package io.microdit.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.distributed.SingleProcessCommunicator;
import io.microdit.testing.MpiLauncher;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * ZeRO-2 in bf16: the parameter gather brings every owner's bf16 working copies with the updated values, so after
 * the first update no rank converts a weight for its forward (one process stepping every parameter converts none
 * either), and two ranks still write one accumulating process's checkpoint bit for bit (the copies are exactly
 * convert(value)).
 */
class ZeroBf16CopiesTest {
    @TempDir
    Path temp;

    @Test
    void shardedRanksGatherTheOwnersBf16CopiesAndMatchOneProcessBitForBit() throws Exception {
        Path single = temp.resolve("single");
        // The same configuration (a world of one shards nothing): the checkpoints' state records it.
        assertEquals(0, ZeroBf16CopiesMain.train(new SingleProcessCommunicator(), 16, Sharding.SHARD_GRAD_OP,
                single), "one process keeps a working copy of every weight it converted");
        Path ranks = temp.resolve("ranks");
        MpiLauncher.Result result = MpiLauncher.run(2, 300, line -> { }, List.of("-Dmicrodit.native.dir="
                        + Path.of(System.getProperty("microdit.native.dir", "target/native")).toRealPath()),
                ZeroBf16CopiesMain.class, "16", "shard_grad_op", ranks.toString());
        assertEquals(0, result.exitCode(), result.output());
        for (int r = 0; r < 2; r++) {
            assertTrue(result.output().contains("rank " + r + " weight converts after the first update 0"),
                    "each rank reads the gathered copies of the other's weights:\n" + result.output());
        }
        Path expected = Checkpoint.latest(single);
        Path actual = Checkpoint.latest(ranks);
        assertNotNull(actual, "rank 0 wrote no checkpoint:\n" + result.output());
        for (String file : new String[] {Checkpoint.MODEL, Checkpoint.OPTIMIZER, Checkpoint.EMA, Checkpoint.STATE}) {
            assertArrayEquals(Files.readAllBytes(expected.resolve(file)), Files.readAllBytes(actual.resolve(file)),
                    file + " of 2 ZeRO-2 ranks in bf16 differs from 1 rank accumulating");
        }
    }
}
