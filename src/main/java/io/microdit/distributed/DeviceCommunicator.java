package io.microdit.distributed;

import io.microdit.backend.cuda.CommunicationBindings;
import io.microdit.backend.cuda.CudaBackend;
import io.microdit.backend.cuda.CudaRuntime;
import io.microdit.backend.cuda.RuntimeBindings;
import io.microdit.tensor.DType;
import io.microdit.tensor.Device;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The collectives of CUDA ranks on their devices' memory, through the C ABI's {@code mdt_comm_*} (microdit.h): NCCL
 * on GPUs, MPI between processes on the emulator. Device tensors never pass through the host: each collective is
 * queued on the backend's stream, after the ops before it and before the ops after it, and the call returns without
 * waiting. Sums are in rank order, as {@link Communicator} promises, so N ranks equal one process bit for bit.
 * Host tensors (and I32 sums) go to the host communicator this one is built over, which also gives the rank, the
 * world and the bootstrap: rank 0's NCCL unique id reaches the others by its broadcast.
 *
 * <p>Deferred join ({@link #allReduceSumDeferred}, {@link #reduceScatterSumDeferred}, {@link #join}): the collective
 * runs on the communication stream while the backend's stream goes on, and the backend's stream waits for it only
 * at the join, where its result is needed. Until then its tensors belong to the collective. The host never waits.
 *
 * <p>Closing this communicator frees its device collectives only; the host communicator stays open (its owner
 * closes it).
 */
public final class DeviceCommunicator implements Communicator {
    /** microdit.h's MDT_COMM_UNIQUE_ID_BYTES. */
    static final int UNIQUE_ID_BYTES = 128;

    private final Communicator host;
    private final MemorySegment stream;
    private final MemorySegment comm;
    private boolean closed;

    private DeviceCommunicator(Communicator host, MemorySegment stream, MemorySegment comm) {
        this.host = host;
        this.stream = stream;
        this.comm = comm;
    }

    /**
     * The device collectives of {@code backend}'s ranks: collective, every rank of {@code host} calls it with its own
     * backend (on the device its local rank selects). A failure on rank 0 (no NCCL, say) is reported on every rank.
     */
    public static DeviceCommunicator open(Communicator host, CudaBackend backend) {
        try (Arena arena = Arena.ofConfined(); MemoryScope scope = new MemoryScope("comm-unique-id")) {
            // The status of rank 0's call, then the id: the other ranks learn of a failure instead of waiting.
            Tensor id = Tensor.zeros(scope, DType.I32, 1 + UNIQUE_ID_BYTES / Integer.BYTES);
            String failure = null;
            if (host.rank() == 0) {
                int status = CommunicationBindings.mdt_comm_unique_id(id.segment().asSlice(Integer.BYTES));
                if (status != CudaRuntime.SUCCESS) {
                    failure = CudaRuntime.describe(status);
                    id.setInt(0, status);
                }
            }
            host.broadcast(id, 0);
            if (id.getInt(0) != CudaRuntime.SUCCESS) {
                throw new IllegalStateException("mdt_comm_unique_id failed on rank 0: "
                        + (failure != null ? failure : "status " + id.getInt(0) + " (rank 0 reports why)"));
            }
            MemorySegment created = arena.allocate(ValueLayout.ADDRESS);
            CudaRuntime.check(CommunicationBindings.mdt_comm_init(created, id.segment().asSlice(Integer.BYTES),
                    host.rank(), host.size()), "mdt_comm_init (rank " + host.rank() + " of " + host.size() + ")");
            return new DeviceCommunicator(host, backend.stream(), created.get(ValueLayout.ADDRESS, 0));
        }
    }

    @Override
    public int rank() {
        return host.rank();
    }

    @Override
    public int size() {
        return host.size();
    }

    @Override
    public int localRank() {
        return host.localRank();
    }

    @Override
    public int localSize() {
        return host.localSize();
    }

    @Override
    public String describe() {
        return (CudaRuntime.isEmulator() ? "emulated devices, collectives over MPI" : "NCCL") + " (bootstrap: "
                + host.describe() + ")";
    }

    @Override
    public void allReduceSum(Tensor t) {
        if (!onDevice(t, "allReduceSum")) {
            host.allReduceSum(t);
            return;
        }
        checkFloat(t, "allReduceSum");
        CudaRuntime.check(CommunicationBindings.mdt_comm_all_reduce_sum(comm, stream, t.segment(), t.numel()), "mdt_comm_all_reduce_sum");
    }

    @Override
    public void reduceScatterSum(Tensor t, long[] starts, Tensor shard, boolean accumulate) {
        if (!onDevice(t, "reduceScatterSum", shard)) {
            host.reduceScatterSum(t, starts, shard, accumulate);
            return;
        }
        checkFloat(t, "reduceScatterSum");
        Collectives.checkShardBounds(t, starts, shard, size(), rank(), "reduceScatterSum");
        try (Arena arena = Arena.ofConfined()) {
            CudaRuntime.check(CommunicationBindings.mdt_comm_reduce_scatter_sum(comm, stream, t.segment(),
                    arena.allocateFrom(ValueLayout.JAVA_LONG, starts), shard.segment(), accumulate ? 1 : 0),
                    "mdt_comm_reduce_scatter_sum");
        }
    }

    @Override
    public void allGather(Tensor shard, long[] starts, Tensor t) {
        if (!onDevice(t, "allGather", shard)) {
            host.allGather(shard, starts, t);
            return;
        }
        boolean bf16 = t.dtype() == DType.BF16;
        if (!bf16) {
            checkFourBytes(t, "allGather");
        }
        Collectives.checkShardBounds(t, starts, shard, size(), rank(), "allGather");
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment bounds = arena.allocateFrom(ValueLayout.JAVA_LONG, starts);
            if (bf16) {
                CudaRuntime.check(CommunicationBindings.mdt_comm_all_gather_bf16(comm, stream, shard.segment(), bounds,
                        t.segment()), "mdt_comm_all_gather_bf16");
            } else {
                CudaRuntime.check(CommunicationBindings.mdt_comm_all_gather(comm, stream, shard.segment(), bounds,
                        t.segment()), "mdt_comm_all_gather");
            }
        }
    }

    @Override
    public void broadcast(Tensor t, int root) {
        if (!onDevice(t, "broadcast")) {
            host.broadcast(t, root);
            return;
        }
        checkFourBytes(t, "broadcast");
        Collectives.checkRoot(root, size());
        CudaRuntime.check(CommunicationBindings.mdt_comm_broadcast(comm, stream, t.segment(), t.byteSize(), root), "mdt_comm_broadcast");
    }

    /**
     * {@link #allReduceSum} of a device tensor, issued after the work queued on the backend's stream so far; the work
     * queued there afterwards does not wait for it, so {@code t} must be neither read nor written until
     * {@link #join}{@code (done)} (before the join it holds unspecified values: on the emulator with deferred streams,
     * its old ones). Every rank must join before its next host collective (the emulator runs a pending collective
     * when its process first waits for it).
     */
    public void allReduceSumDeferred(Tensor t, Completion done) {
        checkDevice(t, "allReduceSumDeferred");
        checkFloat(t, "allReduceSumDeferred");
        CudaRuntime.check(CommunicationBindings.mdt_comm_all_reduce_sum_deferred(comm, stream, t.segment(), t.numel(),
                done.event()), "mdt_comm_all_reduce_sum_deferred");
    }

    /**
     * {@link #reduceScatterSum(Tensor, long[], Tensor, boolean)} of device tensors, deferred as
     * {@link #allReduceSumDeferred}: {@code shard} too belongs to the collective until the join.
     */
    public void reduceScatterSumDeferred(Tensor t, long[] starts, Tensor shard, boolean accumulate, Completion done) {
        checkDevice(t, "reduceScatterSumDeferred", shard);
        checkFloat(t, "reduceScatterSumDeferred");
        Collectives.checkShardBounds(t, starts, shard, size(), rank(), "reduceScatterSumDeferred");
        try (Arena arena = Arena.ofConfined()) {
            CudaRuntime.check(CommunicationBindings.mdt_comm_reduce_scatter_sum_deferred(comm, stream, t.segment(),
                    arena.allocateFrom(ValueLayout.JAVA_LONG, starts), shard.segment(), accumulate ? 1 : 0,
                    done.event()), "mdt_comm_reduce_scatter_sum_deferred");
        }
    }

    /**
     * Makes the work queued on the backend's stream from now on run after the deferred collective that last recorded
     * {@code done}; returns without waiting (on a GPU; the emulator runs the collective here). Its result is then
     * ready for the backend's ops, and its tensors free to reuse.
     */
    public void join(Completion done) {
        checkOpen("join");
        CudaRuntime.check(CommunicationBindings.mdt_comm_join(comm, stream, done.event()), "mdt_comm_join");
    }

    /** A new completion event for deferred collectives; its owner closes it after their joins. */
    public Completion completion() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment created = arena.allocate(ValueLayout.ADDRESS);
            CudaRuntime.check(RuntimeBindings.mdt_event_create_untimed(created), "mdt_event_create_untimed");
            return new Completion(created.get(ValueLayout.ADDRESS, 0));
        }
    }

    /**
     * The end of a deferred collective: an event the communication stream records after it, which {@link #join}
     * makes the backend's stream wait for. Reusable: each deferred collective issued with it records it anew.
     */
    public static final class Completion implements AutoCloseable {
        private final MemorySegment event;
        private boolean closed;

        private Completion(MemorySegment event) {
            this.event = event;
        }

        private MemorySegment event() {
            if (closed) {
                throw new IllegalStateException("the completion event is closed");
            }
            return event;
        }

        @Override
        public void close() {
            if (!closed) {
                closed = true;
                CudaRuntime.check(RuntimeBindings.mdt_event_destroy(event), "mdt_event_destroy");
            }
        }
    }

    @Override
    public void barrier() {
        host.barrier();
    }

    @Override
    public void abort(int code) {
        host.abort(code);
    }

    /** Frees the device collectives (their last ones finish first); the host communicator stays open. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        CudaRuntime.check(CommunicationBindings.mdt_comm_destroy(comm), "mdt_comm_destroy");
    }

    /** Throws unless the tensors live on the device and the communicator is open. */
    private void checkDevice(Tensor t, String call, Tensor... others) {
        if (!onDevice(t, call, others)) {
            throw new IllegalArgumentException(call + ": " + t.describe() + " lives in host memory; deferred "
                    + "collectives take device tensors");
        }
    }

    private void checkOpen(String call) {
        if (closed) {
            throw new IllegalStateException(call + ": the device communicator is closed");
        }
    }

    /** Whether the tensors live on the device (then all of them must); throws for a mix or a closed communicator. */
    private boolean onDevice(Tensor t, String call, Tensor... others) {
        boolean device = t.device() == Device.CUDA;
        for (Tensor other : others) {
            if ((other.device() == Device.CUDA) != device) {
                throw new IllegalArgumentException(call + ": " + t.describe() + " and " + other.describe()
                        + " live on different devices; a collective takes device tensors or host tensors");
            }
        }
        if (device && closed) {
            throw new IllegalStateException(call + ": the device communicator is closed");
        }
        return device;
    }

    private static void checkFloat(Tensor t, String call) {
        if (t.dtype() != DType.F32) {
            throw new IllegalArgumentException(call + ": " + t.describe() + " is " + t.dtype()
                    + "; device sums take F32 tensors (sum I32 values in host tensors)");
        }
    }

    private static void checkFourBytes(Tensor t, String call) {
        if (t.dtype().byteSize() != Float.BYTES) {
            throw new IllegalArgumentException(call + ": " + t.describe() + " is " + t.dtype()
                    + "; device collectives move 4-byte elements (F32 or I32; a gather also BF16)");
        }
    }
}
