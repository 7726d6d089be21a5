package io.microdit.distributed;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The collectives of ranks that are threads of one process, each rank on a thread of its own as in training:
 * sums bit for bit in rank order ((x0 + x1) + x2, checked against a scalar loop, on values whose sum depends on
 * the order), shards, gathers, broadcasts, and a rank's abort ending the others' collectives with an error.
 */
class InProcessWorldTest {
    /** One rank's part of a test, on its own thread. */
    private interface RankBody {
        void run(Communicator comm, MemoryScope scope) throws Exception;
    }

    /** Runs {@code body} on every rank of {@code world}, each on a thread; returns each rank's failure or null. */
    private static Throwable[] onRanks(InProcessWorld world, RankBody body) throws InterruptedException {
        Throwable[] failures = new Throwable[world.size()];
        Thread[] threads = new Thread[world.size()];
        for (int r = 0; r < world.size(); r++) {
            int rank = r;
            threads[r] = new Thread(() -> {
                try (MemoryScope scope = new MemoryScope("rank-" + rank)) {
                    body.run(world.rank(rank), scope);
                } catch (Throwable e) {
                    failures[rank] = e;
                }
            });
            threads[r].start();
        }
        for (Thread t : threads) {
            t.join(TimeUnit.SECONDS.toMillis(60));
            assertTrue(!t.isAlive(), "a rank is still waiting after 60 s");
        }
        return failures;
    }

    private static void assertNoFailures(Throwable[] failures) {
        for (int r = 0; r < failures.length; r++) {
            if (failures[r] != null) {
                throw new AssertionError("rank " + r + " failed", failures[r]);
            }
        }
    }

    /** Rank r's values: magnitudes from 1e-3 to 1e3, so that sums in another order round differently. */
    private static float[] values(int rank, int n) {
        SplittableRandom random = new SplittableRandom(1000 + rank);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (random.nextGaussian() * Math.pow(10, random.nextInt(-3, 4)));
        }
        return v;
    }

    /** ((start + x0) + x1) + … over ranks, element by element, from start or from x0. */
    private static float[] rankOrderSum(int ranks, int n, float[] start) {
        float[] sum = start == null ? values(0, n) : start.clone();
        for (int r = start == null ? 1 : 0; r < ranks; r++) {
            float[] v = values(r, n);
            for (int i = 0; i < n; i++) {
                sum[i] += v[i];
            }
        }
        return sum;
    }

    @Test
    void allReduceSumsInRankOrderOnEveryRank() throws Exception {
        int ranks = 3;
        int n = 1001; // not a multiple of the vector width: the scalar tail runs on some shard
        float[] expected = rankOrderSum(ranks, n, null);
        float[] reversed = values(ranks - 1, n);
        for (int r = ranks - 2; r >= 0; r--) {
            float[] v = values(r, n);
            for (int i = 0; i < n; i++) {
                reversed[i] += v[i];
            }
        }
        // The values are such that the order shows: the check below could fail.
        assertTrue(!Arrays.equals(expected, reversed), "the test's sums do not depend on the order");
        try (InProcessWorld world = new InProcessWorld(ranks)) {
            float[][] results = new float[ranks][];
            assertNoFailures(onRanks(world, (comm, scope) -> {
                assertEquals(ranks, comm.size());
                assertEquals(ranks, comm.localSize());
                Tensor t = Tensor.of(scope, values(comm.rank(), n), n);
                comm.allReduceSum(t);
                // A second, smaller one reuses the shared buffer.
                Tensor small = Tensor.ofInts(scope, new int[] {comm.rank() + 1, 10 * comm.rank()}, 2);
                comm.allReduceSum(small);
                assertArrayEquals(new int[] {6, 30}, small.toIntArray());
                results[comm.rank()] = t.toFloatArray();
            }));
            for (int r = 0; r < ranks; r++) {
                assertArrayEquals(expected, results[r], "rank " + r);
            }
        }
    }

    @Test
    void reduceScatterGatherAndBroadcastMoveEachRanksShare() throws Exception {
        int ranks = 3;
        int n = 70;
        long[] starts = {0, 40, 40, 70}; // rank 1's shard is empty
        float[] running = values(7, n);
        float[] expected = rankOrderSum(ranks, n, running);
        float[] fresh = rankOrderSum(ranks, n, null);
        try (InProcessWorld world = new InProcessWorld(ranks)) {
            assertNoFailures(onRanks(world, (comm, scope) -> {
                int rank = comm.rank();
                int from = (int) starts[rank], to = (int) starts[rank + 1];
                Tensor t = Tensor.of(scope, values(rank, n), n);
                Tensor shard = Tensor.of(scope, Arrays.copyOfRange(running, from, to), to - from);
                comm.reduceScatterSum(t, starts, shard, true);
                assertArrayEquals(Arrays.copyOfRange(expected, from, to), shard.toFloatArray(), "rank " + rank);
                // Every rank's t is as it was: the collective reads them, it does not write them.
                assertArrayEquals(values(rank, n), t.toFloatArray());
                Tensor even = Tensor.zeros(scope, DType.F32, (int) Communicator.shardSize(n, ranks, rank));
                comm.reduceScatterSum(t, even);
                long evenStart = Communicator.shardStart(n, ranks, rank);
                assertArrayEquals(Arrays.copyOfRange(fresh, (int) evenStart, (int) evenStart + (int) even.numel()),
                        even.toFloatArray());
                Tensor gathered = Tensor.zeros(scope, DType.F32, n);
                comm.allGather(shard, starts, gathered);
                assertArrayEquals(expected, gathered.toFloatArray(), "gathered on rank " + rank);
                Tensor b = Tensor.of(scope, values(rank, 5), 5);
                comm.broadcast(b, 2);
                assertArrayEquals(values(2, 5), b.toFloatArray(), "broadcast on rank " + rank);
                comm.barrier();
            }));
        }
    }

    @Test
    void anAbortEndsTheOtherRanksCollectivesNamingTheRank() throws Exception {
        int ranks = 3;
        CountDownLatch othersWaiting = new CountDownLatch(1);
        try (InProcessWorld world = new InProcessWorld(ranks)) {
            Throwable[] failures = onRanks(world, (comm, scope) -> {
                if (comm.rank() == 1) {
                    othersWaiting.await(); // a rank that failed before its collective
                    Thread.sleep(200);
                    comm.abort(1);
                    return;
                }
                Tensor t = Tensor.of(scope, values(comm.rank(), 8), 8);
                othersWaiting.countDown();
                comm.allReduceSum(t);
            });
            assertNull(failures[1]);
            assertEquals(1, world.failedRank());
            for (int r : new int[] {0, 2}) {
                IllegalStateException e = assertInstanceOf(IllegalStateException.class, failures[r], "rank " + r);
                assertTrue(e.getMessage().contains("rank 1 failed"), e.getMessage());
            }
        }
    }

    @Test
    void ranksPassingDifferentSizesGetAnErrorNamingThem() throws Exception {
        try (InProcessWorld world = new InProcessWorld(2)) {
            Throwable[] failures = onRanks(world, (comm, scope) -> {
                try {
                    comm.allReduceSum(Tensor.zeros(scope, DType.F32, 4 + comm.rank()));
                } catch (IllegalArgumentException e) {
                    comm.abort(1);
                    throw e;
                }
            });
            for (Throwable failure : failures) {
                assertTrue(failure != null && failure.getMessage().contains("every rank must pass the same size"),
                        String.valueOf(failure));
            }
        }
    }
}
