package io.microdit.distributed;

import io.microdit.tensor.Tensor;

/**
 * The collectives of one run over several processes (ranks): sums, shards, gathers and broadcasts of backend
 * tensors (F32 or I32, host-accessible memory), identical on every rank that calls them. Every rank must call the
 * same collectives in the same order with tensors of the same sizes.
 *
 * <p>Sums are deterministic and equal, bit for bit, to one process adding the ranks' values in rank order
 * ({@code ((x0 + x1) + x2) + …}): a run on N ranks then reproduces a single process that accumulates the same
 * values in the same order. That is why they are built from gathers and a fixed-order addition, never from
 * MPI_SUM, whose order MPI leaves to the algorithm the library picks.
 *
 * <p>Shards: a tensor of n elements is split into {@link #size()} contiguous shards, rank r's starting at
 * {@link #shardStart}; the first {@code n % size} shards hold one element more, and shards are empty when n is
 * smaller than the world.
 */
public interface Communicator extends AutoCloseable {

    /** This process's rank, 0 … size − 1. */
    int rank();

    /** The number of ranks. */
    int size();

    /** This process's rank among the ranks on its machine (the device it should use). */
    int localRank();

    /** The number of ranks on this process's machine (to share its processors among them). */
    int localSize();

    /** A short description for logs: the library and the world. */
    String describe();

    /** Replaces {@code t} on every rank by the rank-order sum of all ranks' {@code t}. */
    void allReduceSum(Tensor t);

    /**
     * Writes into {@code shard} (this rank's shard of {@code t}, {@link #shardSize} elements) the rank-order sum of
     * every rank's elements of that shard.
     */
    default void reduceScatterSum(Tensor t, Tensor shard) {
        reduceScatterSum(t, evenStarts(t.numel(), size()), shard, false);
    }

    /**
     * {@link #reduceScatterSum(Tensor, Tensor)} over shards the caller chooses: rank r's is elements
     * {@code starts[r]} to {@code starts[r + 1]} ({@code size + 1} non-decreasing starts from 0 to the element count);
     * with {@code accumulate} the sum starts from {@code shard}'s values, {@code ((shard + x0) + x1) + …}, the order
     * a single process accumulating onto a running sum adds in.
     */
    void reduceScatterSum(Tensor t, long[] starts, Tensor shard, boolean accumulate);

    /**
     * Writes every rank's {@code shard} (its {@link #shardSize} elements) into its place in {@code t}, on every rank;
     * a gather adds nothing, so it also takes BF16 tensors.
     */
    default void allGather(Tensor shard, Tensor t) {
        allGather(shard, evenStarts(t.numel(), size()), t);
    }

    /** {@link #allGather(Tensor, Tensor)} over the shards {@code starts} bounds (as in {@link #reduceScatterSum}). */
    void allGather(Tensor shard, long[] starts, Tensor t);

    /** Replaces {@code t} on every rank by rank {@code root}'s. */
    void broadcast(Tensor t, int root);

    /** Returns when every rank has called it. */
    void barrier();

    /**
     * Ends every rank's process now with exit status {@code code}, after an error on this rank that the others
     * cannot see and would otherwise wait for in their next collective; the single-process communicator returns
     * and leaves the error to its caller.
     */
    void abort(int code);

    /**
     * Ends this process's part in the run after its last collective. Not after an error on one rank: finishing MPI
     * waits for every rank, so call {@link #abort} then.
     */
    @Override
    void close();

    /** The {@code size + 1} shard boundaries of {@link #shardStart}: {@code n} elements split as evenly as they go. */
    static long[] evenStarts(long n, int size) {
        long[] starts = new long[size + 1];
        for (int r = 0; r <= size; r++) {
            starts[r] = r == size ? n : shardStart(n, size, r);
        }
        return starts;
    }

    /** The first element of rank {@code rank}'s shard of {@code n} elements over {@code size} ranks. */
    static long shardStart(long n, int size, int rank) {
        long base = n / size;
        long extra = n % size;
        return rank * base + Math.min(rank, extra);
    }

    /** The element count of rank {@code rank}'s shard of {@code n} elements over {@code size} ranks. */
    static long shardSize(long n, int size, int rank) {
        return n / size + (rank < n % size ? 1 : 0);
    }

    /**
     * The communicator of this process: over MPI when a launcher started it as one of several ranks (Open MPI's
     * {@code mpirun} sets {@code OMPI_COMM_WORLD_SIZE}), else the single-process one, so a process started
     * without {@code mpirun} runs as it always has.
     */
    static Communicator fromEnvironment() {
        return System.getenv("OMPI_COMM_WORLD_SIZE") != null ? MpiCommunicator.open() : new SingleProcessCommunicator();
    }
}
