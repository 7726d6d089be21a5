package io.microdit.backend.cuda;

import static io.microdit.backend.cuda.Downcalls.handle;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

/**
 * FFM bindings of {@code native/include/microdit.h}'s collectives between ranks ({@code mdt_comm_*}: NCCL on the CUDA
 * build, MPI between emulator processes), in the header's order; {@link Downcalls} says how they resolve. Public for
 * {@code io.microdit.distributed.DeviceCommunicator}, their one caller.
 */
public final class CommunicationBindings {
    private static final MethodHandle MDT_COMM_UNIQUE_ID = handle("mdt_comm_unique_id");
    private static final MethodHandle MDT_COMM_INIT = handle("mdt_comm_init");
    private static final MethodHandle MDT_COMM_DESTROY = handle("mdt_comm_destroy");
    private static final MethodHandle MDT_COMM_ALL_REDUCE_SUM = handle("mdt_comm_all_reduce_sum");
    private static final MethodHandle MDT_COMM_REDUCE_SCATTER_SUM = handle("mdt_comm_reduce_scatter_sum");
    private static final MethodHandle MDT_COMM_ALL_GATHER = handle("mdt_comm_all_gather");
    private static final MethodHandle MDT_COMM_ALL_GATHER_BF16 = handle("mdt_comm_all_gather_bf16");
    private static final MethodHandle MDT_COMM_BROADCAST = handle("mdt_comm_broadcast");
    private static final MethodHandle MDT_COMM_ALL_REDUCE_SUM_DEFERRED = handle("mdt_comm_all_reduce_sum_deferred");
    private static final MethodHandle MDT_COMM_REDUCE_SCATTER_SUM_DEFERRED = handle("mdt_comm_reduce_scatter_sum_deferred");
    private static final MethodHandle MDT_COMM_JOIN = handle("mdt_comm_join");

    private CommunicationBindings() {
    }

    public static int mdt_comm_unique_id(MemorySegment uniqueId) {
        try {
            return (int) MDT_COMM_UNIQUE_ID.invokeExact(uniqueId);
        } catch (Throwable error) {
            throw new AssertionError("mdt_comm_unique_id threw", error);
        }
    }

    public static int mdt_comm_init(MemorySegment comm, MemorySegment uniqueId, int rank, int size) {
        try {
            return (int) MDT_COMM_INIT.invokeExact(comm, uniqueId, rank, size);
        } catch (Throwable error) {
            throw new AssertionError("mdt_comm_init threw", error);
        }
    }

    public static int mdt_comm_destroy(MemorySegment comm) {
        try {
            return (int) MDT_COMM_DESTROY.invokeExact(comm);
        } catch (Throwable error) {
            throw new AssertionError("mdt_comm_destroy threw", error);
        }
    }

    public static int mdt_comm_all_reduce_sum(MemorySegment comm, MemorySegment stream, MemorySegment data, long n) {
        try {
            return (int) MDT_COMM_ALL_REDUCE_SUM.invokeExact(comm, stream, data, n);
        } catch (Throwable error) {
            throw new AssertionError("mdt_comm_all_reduce_sum threw", error);
        }
    }

    public static int mdt_comm_reduce_scatter_sum(MemorySegment comm, MemorySegment stream, MemorySegment data, MemorySegment starts, MemorySegment shard, int accumulate) {
        try {
            return (int) MDT_COMM_REDUCE_SCATTER_SUM.invokeExact(comm, stream, data, starts, shard, accumulate);
        } catch (Throwable error) {
            throw new AssertionError("mdt_comm_reduce_scatter_sum threw", error);
        }
    }

    public static int mdt_comm_all_gather(MemorySegment comm, MemorySegment stream, MemorySegment shard, MemorySegment starts, MemorySegment data) {
        try {
            return (int) MDT_COMM_ALL_GATHER.invokeExact(comm, stream, shard, starts, data);
        } catch (Throwable error) {
            throw new AssertionError("mdt_comm_all_gather threw", error);
        }
    }

    public static int mdt_comm_all_gather_bf16(MemorySegment comm, MemorySegment stream, MemorySegment shard, MemorySegment starts, MemorySegment data) {
        try {
            return (int) MDT_COMM_ALL_GATHER_BF16.invokeExact(comm, stream, shard, starts, data);
        } catch (Throwable error) {
            throw new AssertionError("mdt_comm_all_gather_bf16 threw", error);
        }
    }

    public static int mdt_comm_broadcast(MemorySegment comm, MemorySegment stream, MemorySegment data, long bytes, int root) {
        try {
            return (int) MDT_COMM_BROADCAST.invokeExact(comm, stream, data, bytes, root);
        } catch (Throwable error) {
            throw new AssertionError("mdt_comm_broadcast threw", error);
        }
    }

    public static int mdt_comm_all_reduce_sum_deferred(MemorySegment comm, MemorySegment stream, MemorySegment data, long n, MemorySegment done) {
        try {
            return (int) MDT_COMM_ALL_REDUCE_SUM_DEFERRED.invokeExact(comm, stream, data, n, done);
        } catch (Throwable error) {
            throw new AssertionError("mdt_comm_all_reduce_sum_deferred threw", error);
        }
    }

    public static int mdt_comm_reduce_scatter_sum_deferred(MemorySegment comm, MemorySegment stream, MemorySegment data, MemorySegment starts, MemorySegment shard, int accumulate, MemorySegment done) {
        try {
            return (int) MDT_COMM_REDUCE_SCATTER_SUM_DEFERRED.invokeExact(comm, stream, data, starts, shard, accumulate, done);
        } catch (Throwable error) {
            throw new AssertionError("mdt_comm_reduce_scatter_sum_deferred threw", error);
        }
    }

    public static int mdt_comm_join(MemorySegment comm, MemorySegment stream, MemorySegment done) {
        try {
            return (int) MDT_COMM_JOIN.invokeExact(comm, stream, done);
        } catch (Throwable error) {
            throw new AssertionError("mdt_comm_join threw", error);
        }
    }
}
