package io.microdit.distributed;

import io.microdit.tensor.DType;
import io.microdit.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BrokenBarrierException;
import java.util.concurrent.CyclicBarrier;

/**
 * Ranks that are threads of one process: data-parallel replicas sharing a machine's cores without MPI. Each rank's
 * collectives read the other ranks' tensors in place (host memory of one process) between two barriers, so a sum
 * reads every rank's values once and sends nothing: an all-reduce is a reduce-scatter into a shared buffer (rank r
 * adds shard r, in rank order) and a copy back. The sums are those of {@link Communicator}'s contract,
 * {@code ((x0 + x1) + x2) + …}, bit for bit what {@link MpiCommunicator} and a single process accumulating rank by
 * rank compute.
 *
 * <p>Every rank must call the same collectives in the same order, as with MPI; a rank that fails calls
 * {@link Communicator#abort}, which breaks the barrier: the others' next (or current) collective throws instead of
 * waiting forever, naming the failed rank.
 */
public final class InProcessWorld implements AutoCloseable {
    private final int size;
    private final CyclicBarrier barrier;
    /** What each rank passed to the collective in progress (its tensor or shard), read by the others. */
    private final Tensor[] posted;
    private final Arena arena = Arena.ofShared();
    /** The all-reduce's sums, shard by shard; grown by rank 0 before the others can touch it. */
    private MemorySegment scratch = MemorySegment.NULL;
    private volatile int failedRank = -1;
    private final List<Communicator> ranks = new ArrayList<>();

    /** A world of {@code size} ranks; {@link #rank} gives each thread its communicator. */
    public InProcessWorld(int size) {
        if (size < 1) {
            throw new IllegalArgumentException("an in-process world needs at least one rank, got " + size);
        }
        this.size = size;
        this.barrier = new CyclicBarrier(size);
        this.posted = new Tensor[size];
        for (int r = 0; r < size; r++) {
            ranks.add(new Rank(r));
        }
    }

    /** The communicator of rank {@code rank}, for the one thread that runs that rank. */
    public Communicator rank(int rank) {
        if (rank < 0 || rank >= size) {
            throw new IllegalArgumentException("rank " + rank + " is not in an in-process world of " + size);
        }
        return ranks.get(rank);
    }

    /** The number of ranks. */
    public int size() {
        return size;
    }

    /** Frees the shared buffer; after every rank's thread is done with the world. */
    @Override
    public void close() {
        arena.close();
    }

    /** Whether a rank has aborted (its collectives, and every rank's after it, throw). */
    public boolean failed() {
        return failedRank >= 0;
    }

    /** The rank that aborted first, or −1. */
    public int failedRank() {
        return failedRank;
    }

    private void await(int rank, String call) {
        if (failedRank >= 0) {
            throw brokenBy(rank, call);
        }
        try {
            barrier.await();
        } catch (BrokenBarrierException e) {
            throw brokenBy(rank, call);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            abort(rank);
            throw new IllegalStateException(call + " on rank " + rank + " of an in-process world: interrupted", e);
        }
    }

    private IllegalStateException brokenBy(int rank, String call) {
        return new IllegalStateException(call + " on rank " + rank + " of an in-process world: rank " + failedRank
                + " failed, so the collective cannot complete");
    }

    /** Records the first rank to abort (two at once: one of them) and breaks the barrier for every rank. */
    private synchronized void abort(int rank) {
        if (failedRank < 0) {
            failedRank = rank;
        }
        barrier.reset();
    }

    /**
     * {@code out[outStart + i] = ((x0[start + i] + x1[start + i]) + …)} over the posted tensors for i below
     * {@code end − start}; with {@code accumulate} the sum starts from out's value.
     */
    private void sumInRankOrder(long start, long end, DType dtype, MemorySegment out, long outStart,
                                boolean accumulate) {
        MemorySegment[] sources = new MemorySegment[size];
        long[] starts = new long[size];
        for (int q = 0; q < size; q++) {
            sources[q] = posted[q].segment();
            starts[q] = start;
        }
        Collectives.sumInRankOrder(sources, starts, end - start, dtype, out, outStart, accumulate);
    }

    /** One rank: the communicator its thread calls. */
    private final class Rank implements Communicator {
        private final int rank;

        Rank(int rank) {
            this.rank = rank;
        }

        @Override
        public int rank() {
            return rank;
        }

        @Override
        public int size() {
            return size;
        }

        @Override
        public int localRank() {
            return rank;
        }

        @Override
        public int localSize() {
            return size;
        }

        @Override
        public String describe() {
            return "in-process, " + size + " replicas on threads of one process";
        }

        @Override
        public void allReduceSum(Tensor t) {
            String call = "allReduceSum";
            Collectives.checkDtype(t, call);
            long n = t.numel();
            if (rank == 0 && scratch.byteSize() < n * Float.BYTES) {
                // Before the first barrier: no rank reads or writes the scratch until every rank has passed it.
                scratch = arena.allocate(Math.max(n * Float.BYTES, 2 * scratch.byteSize()), 64);
            }
            posted[rank] = t;
            await(rank, call);
            checkSameCount(n, call);
            long start = Communicator.shardStart(n, size, rank);
            long end = start + Communicator.shardSize(n, size, rank);
            sumInRankOrder(start, end, t.dtype(), scratch, start, false);
            await(rank, call);
            // Every shard is summed: each rank copies the whole sum. The next collective writes the scratch only
            // after its first barrier, which every rank reaches after this copy.
            MemorySegment.copy(scratch, 0, t.segment(), 0, n * Float.BYTES);
        }

        @Override
        public void reduceScatterSum(Tensor t, long[] starts, Tensor shard, boolean accumulate) {
            String call = "reduceScatterSum";
            Collectives.checkShard(t, starts, shard, size, rank, call);
            posted[rank] = t;
            await(rank, call);
            checkSameCount(t.numel(), call);
            sumInRankOrder(starts[rank], starts[rank + 1], t.dtype(), shard.segment(), 0, accumulate);
            // The others may still be reading this rank's t: it stays as it is until they are done.
            await(rank, call);
        }

        @Override
        public void allGather(Tensor shard, long[] starts, Tensor t) {
            String call = "allGather";
            Collectives.checkGatherShard(t, starts, shard, size, rank, call);
            posted[rank] = shard;
            await(rank, call);
            long elementBytes = t.dtype().byteSize();
            for (int q = 0; q < size; q++) {
                long count = starts[q + 1] - starts[q];
                if (posted[q].numel() != count || posted[q].dtype() != t.dtype()) {
                    throw new IllegalArgumentException(call + ": rank " + q + " passed " + posted[q].describe()
                            + " for its shard of " + count + " " + t.dtype() + " elements");
                }
                MemorySegment.copy(posted[q].segment(), 0, t.segment(), starts[q] * elementBytes,
                        count * elementBytes);
            }
            await(rank, call);
        }

        @Override
        public void broadcast(Tensor t, int root) {
            String call = "broadcast";
            Collectives.checkDtype(t, call);
            Collectives.checkRoot(root, size);
            posted[rank] = t;
            await(rank, call);
            checkSameCount(t.numel(), call);
            if (rank != root) {
                MemorySegment.copy(posted[root].segment(), 0, t.segment(), 0, t.byteSize());
            }
            await(rank, call);
        }

        @Override
        public void barrier() {
            await(rank, "barrier");
        }

        /** Breaks the world's barrier: the other ranks' collectives throw, naming this rank. */
        @Override
        public void abort(int code) {
            InProcessWorld.this.abort(rank);
        }

        @Override
        public void close() {
        }

        private void checkSameCount(long n, String call) {
            for (int q = 0; q < size; q++) {
                if (posted[q].numel() != n || posted[q].dtype() != posted[rank].dtype()) {
                    throw new IllegalArgumentException(call + ": rank " + q + " passed " + posted[q].describe()
                            + ", rank " + rank + " " + posted[rank].describe() + "; every rank must pass the same "
                            + "size and dtype");
                }
            }
        }
    }
}
