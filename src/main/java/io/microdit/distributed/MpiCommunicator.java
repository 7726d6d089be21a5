package io.microdit.distributed;

import io.microdit.tensor.DType;
import io.microdit.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The ranks of an {@code mpirun} job, over Open MPI through FFM. Sums are a reduce-scatter made of MPI_Alltoallv
 * (rank q receives every rank's q-th shard) and a rank-order addition of the shards, followed for an all-reduce by
 * MPI_Allgatherv of the summed shards: each rank adds 1/N of the elements, so the work and the bytes sent are
 * those of a ring all-reduce, and the order of the additions is fixed.
 *
 * <p>MPI errors return to the caller (MPI_ERRORS_RETURN on the world) and become exceptions naming the call. A
 * rank that dies takes the job with it: {@code mpirun} notices, names the rank and ends the others. Calls are
 * serialised (the methods are synchronized), as MPI_THREAD_SERIALIZED requires.
 */
final class MpiCommunicator implements Communicator {
    private final MpiLibrary mpi;
    private final int rank;
    private final int size;
    private final int localRank;
    private final int localSize;
    private final Arena arena = Arena.ofShared();
    private MemorySegment scratch = MemorySegment.NULL;
    private boolean closed;

    private MpiCommunicator(MpiLibrary mpi) {
        this.mpi = mpi;
        this.rank = mpi.commRank(mpi.commWorld);
        this.size = mpi.commSize(mpi.commWorld);
        String local = System.getenv("OMPI_COMM_WORLD_LOCAL_RANK");
        this.localRank = local == null ? rank : Integer.parseInt(local);
        String localCount = System.getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
        this.localSize = localCount == null ? size : Integer.parseInt(localCount);
    }

    /** Initialises MPI for this process (once per process: MPI cannot be initialised again after MPI_Finalize). */
    static MpiCommunicator open() {
        MpiLibrary mpi = MpiLibrary.load();
        if (mpi.initialized()) {
            throw new IllegalStateException("MPI is already initialised in this process: open one communicator per "
                    + "process");
        }
        int provided = mpi.initThread(MpiLibrary.THREAD_SERIALIZED);
        if (provided < MpiLibrary.THREAD_SERIALIZED) {
            throw new IllegalStateException("MPI_Init_thread: " + MpiLibrary.LIBRARY + " provides thread level "
                    + provided + ", microdit needs MPI_THREAD_SERIALIZED (" + MpiLibrary.THREAD_SERIALIZED + ")");
        }
        mpi.commSetErrhandler(mpi.commWorld, mpi.errorsReturn);
        return new MpiCommunicator(mpi);
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
        return localRank;
    }

    @Override
    public int localSize() {
        return localSize;
    }

    @Override
    public String describe() {
        return "MPI (" + MpiLibrary.LIBRARY + "), rank " + rank + " of " + size + ", local rank " + localRank + " of "
                + localSize;
    }

    @Override
    public synchronized void allReduceSum(Tensor t) {
        Collectives.checkDtype(t, "allReduceSum");
        checkOpen("allReduceSum");
        long[] starts = Communicator.evenStarts(t.numel(), size);
        MemorySegment summed = scratchSum(t, starts);
        reduceScatter(t, starts, summed, false, "allReduceSum");
        gather(summed, starts, t, "allReduceSum");
    }

    @Override
    public synchronized void reduceScatterSum(Tensor t, long[] starts, Tensor shard, boolean accumulate) {
        Collectives.checkShard(t, starts, shard, size, rank, "reduceScatterSum");
        checkOpen("reduceScatterSum");
        reduceScatter(t, starts, shard.segment(), accumulate, "reduceScatterSum");
    }

    @Override
    public synchronized void allGather(Tensor shard, long[] starts, Tensor t) {
        Collectives.checkGatherShard(t, starts, shard, size, rank, "allGather");
        checkOpen("allGather");
        gather(shard.segment(), starts, t, "allGather");
    }

    @Override
    public synchronized void broadcast(Tensor t, int root) {
        Collectives.checkDtype(t, "broadcast");
        Collectives.checkRoot(root, size);
        checkOpen("broadcast");
        mpi.bcast(t.segment(), count(t.numel(), "broadcast"), type(t), root, mpi.commWorld);
    }

    @Override
    public synchronized void barrier() {
        checkOpen("barrier");
        mpi.barrier(mpi.commWorld);
    }

    @Override
    public void abort(int code) {
        mpi.abort(mpi.commWorld, code);
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        arena.close();
        if (!mpi.finalized()) {
            mpi.finalizeMpi();
        }
    }

    /** Room for this rank's summed shard of {@code t}, in the scratch buffer after the received parts. */
    private MemorySegment scratchSum(Tensor t, long[] starts) {
        long mine = (starts[rank + 1] - starts[rank]) * t.dtype().byteSize();
        return scratch((size + 1) * mine).asSlice(size * mine, mine);
    }

    /**
     * Every rank's copy of this rank's shard of {@code t} (MPI_Alltoallv into the scratch buffer, rank after rank),
     * summed in rank order into {@code sum} (onto its values when {@code accumulate}).
     */
    private void reduceScatter(Tensor t, long[] starts, MemorySegment sum, boolean accumulate, String call) {
        long mine = starts[rank + 1] - starts[rank];
        MemorySegment parts = scratch((size + 1) * mine * t.dtype().byteSize());
        try (Arena counts = Arena.ofConfined()) {
            MemorySegment sendCounts = counts.allocate(ValueLayout.JAVA_INT, size);
            MemorySegment sendDisplacements = counts.allocate(ValueLayout.JAVA_INT, size);
            MemorySegment receiveCounts = counts.allocate(ValueLayout.JAVA_INT, size);
            MemorySegment receiveDisplacements = counts.allocate(ValueLayout.JAVA_INT, size);
            for (int q = 0; q < size; q++) {
                sendCounts.setAtIndex(ValueLayout.JAVA_INT, q, count(starts[q + 1] - starts[q], call));
                sendDisplacements.setAtIndex(ValueLayout.JAVA_INT, q, count(starts[q], call));
                receiveCounts.setAtIndex(ValueLayout.JAVA_INT, q, count(mine, call));
                receiveDisplacements.setAtIndex(ValueLayout.JAVA_INT, q, count(q * mine, call));
            }
            mpi.alltoallv(t.segment(), sendCounts, sendDisplacements, type(t), parts, receiveCounts,
                    receiveDisplacements, mpi.commWorld);
        }
        Collectives.sumInRankOrder(parts, size, mine, t.dtype(), sum, accumulate);
    }

    /** MPI_Allgatherv of every rank's shard (this rank's at {@code shard}) into {@code t}. */
    private void gather(MemorySegment shard, long[] starts, Tensor t, String call) {
        try (Arena counts = Arena.ofConfined()) {
            MemorySegment receiveCounts = counts.allocate(ValueLayout.JAVA_INT, size);
            MemorySegment displacements = counts.allocate(ValueLayout.JAVA_INT, size);
            for (int q = 0; q < size; q++) {
                receiveCounts.setAtIndex(ValueLayout.JAVA_INT, q, count(starts[q + 1] - starts[q], call));
                displacements.setAtIndex(ValueLayout.JAVA_INT, q, count(starts[q], call));
            }
            mpi.allgatherv(shard, count(starts[rank + 1] - starts[rank], call), type(t), t.segment(), receiveCounts,
                    displacements, mpi.commWorld);
        }
    }

    /**
     * A scratch buffer of at least {@code bytes}; grown by doubling, the outgrown ones freed with the rest when the
     * communicator closes (at most twice the largest request in all).
     */
    private MemorySegment scratch(long bytes) {
        if (scratch.byteSize() < bytes) {
            scratch = arena.allocate(Math.max(bytes, 2 * scratch.byteSize()), 64);
        }
        return scratch;
    }

    /** BF16 (gathers only) moves as MPI_SHORT: two bytes an element, never added. */
    private MemorySegment type(Tensor t) {
        return switch (t.dtype()) {
            case F32 -> mpi.floatType;
            case BF16 -> mpi.shortType;
            default -> mpi.intType;
        };
    }

    private void checkOpen(String call) {
        if (closed) {
            throw new IllegalStateException(call + ": the MPI communicator is closed");
        }
    }

    /** MPI counts and displacements are C ints: larger tensors must be split by the caller. */
    private static int count(long elements, String call) {
        if (elements > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(call + ": " + elements + " elements is over MPI's int count; split the"
                    + " tensor");
        }
        return (int) elements;
    }
}
