package io.microdit.backend.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * The kernel launches of a stretch of {@link CudaBackend} work, each attributed to the backend op that made it,
 * with the bytes of the op's tensor operands (inputs and outputs, each counted once per call: the traffic an op
 * cannot avoid). Opened by {@link CudaBackend#traceLaunches(boolean)}; the native side is microdit.h's launch
 * trace, which records every launch of the process, so one trace at a time.
 *
 * <p>A dry run (the emulator only) records launches without running them and sizes grid-stride grids as on a
 * GPU: a training step of a full-size model is planned on a CPU in seconds, with the launch shapes a GPU would
 * get. Device values are then meaningless (host reads see zeros).
 */
public final class LaunchTrace implements AutoCloseable {
    private static final int NAME_CAPACITY = 256;

    /** One kernel launch: grid and block shape and dynamic shared memory. */
    public record Launch(String kernel, long gridX, long gridY, long gridZ, long blockX, long blockY, long blockZ,
                         long sharedBytes) {
        /** Blocks in the grid: the parallelism the launch offers the SMs. */
        public long blocks() {
            return gridX * gridY * gridZ;
        }

        /** Threads in each block. */
        public long threadsPerBlock() {
            return blockX * blockY * blockZ;
        }
    }

    /** One call of a backend op (its name as the backend reports it), the launches it made and its operand bytes. */
    public record OpCall(String op, long operandBytes, List<Launch> launches) {
        /** The most blocks of any of its launches (0 without launches). */
        public long maxBlocks() {
            return launches.stream().mapToLong(Launch::blocks).max().orElse(0);
        }
    }

    private final CudaBackend backend;
    private final boolean dryRun;
    private final List<OpCall> calls = new ArrayList<>();
    private long pendingBytes;
    private long seen;
    private boolean open = true;

    LaunchTrace(CudaBackend backend, boolean dryRun) {
        this.backend = backend;
        this.dryRun = dryRun;
        CudaRuntime.check(RuntimeBindings.mdt_trace_begin(dryRun ? 1 : 0), "mdt_trace_begin");
    }

    /** Whether launches are only recorded, not run (see the class comment). */
    public boolean dryRun() {
        return dryRun;
    }

    /** The op calls so far, in order. */
    public List<OpCall> calls() {
        return Collections.unmodifiableList(calls);
    }

    /** Every launch so far, in order. */
    public List<Launch> launches() {
        List<Launch> all = new ArrayList<>();
        for (OpCall call : calls) {
            all.addAll(call.launches());
        }
        return all;
    }

    /** A tensor operand of the op being called. */
    void operand(long bytes) {
        pendingBytes += bytes;
    }

    /** The backend's native call for {@code op} returned: what it launched since the last call is {@code op}'s. */
    void afterCall(String op) {
        long count = nativeCount();
        if (count == seen && pendingBytes == 0) {
            return;
        }
        calls.add(new OpCall(op, pendingBytes, read(seen, count)));
        seen = count;
        pendingBytes = 0;
    }

    private static long nativeCount() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment count = arena.allocate(ValueLayout.JAVA_LONG);
            CudaRuntime.check(RuntimeBindings.mdt_trace_count(count), "mdt_trace_count");
            return count.get(ValueLayout.JAVA_LONG, 0);
        }
    }

    private static List<Launch> read(long from, long to) {
        List<Launch> launches = new ArrayList<>();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment name = arena.allocate(NAME_CAPACITY);
            MemorySegment shape = arena.allocate(ValueLayout.JAVA_LONG, 7);
            for (long i = from; i < to; i++) {
                CudaRuntime.check(RuntimeBindings.mdt_trace_entry(i, name, NAME_CAPACITY, shape), "mdt_trace_entry");
                long[] s = shape.toArray(ValueLayout.JAVA_LONG);
                launches.add(new Launch(name.getString(0), s[0], s[1], s[2], s[3], s[4], s[5], s[6]));
            }
        }
        return launches;
    }

    /** Ends the trace (the native one too); the calls stay readable. */
    @Override
    public void close() {
        if (!open) {
            return;
        }
        open = false;
        backend.traceEnded(this);
        CudaRuntime.check(RuntimeBindings.mdt_trace_end(), "mdt_trace_end");
    }
}
