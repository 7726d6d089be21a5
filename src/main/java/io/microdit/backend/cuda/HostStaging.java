package io.microdit.backend.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayDeque;

/**
 * Page-locked host memory that every host→device copy goes through, so the copy returns without a host wait and the
 * caller's host buffer is free at once: the CPU copies the bytes into a staging region, the stream copies them on to
 * the device, and an event recorded after that copy says when the region may be written again. (A copy straight
 * from pageable memory would not help: the CUDA runtime waits for the whole stream before it starts one.)
 *
 * <p>Regions are taken in ring order from one block. A region whose copy may still be reading it is never written:
 * when the ring has no finished region left, it grows (a block of twice the size) up to a limit, and only at the
 * limit does the host wait for the oldest copy. So in a training loop the ring settles at the bytes one step uploads
 * and the host never waits for it: the step's own wait for the gradient norm has finished every earlier copy. A copy
 * larger than the limit goes in chunks of at most the limit. Outgrown blocks are kept until {@link #close}: freeing
 * page-locked memory (cudaFreeHost) waits for the whole device, which a growing ring must not make every stream do
 * (they hold at most the current block's bytes again, the sizes doubling). The events are untimed: they are polled
 * on every copy, and a timestamp would only cost.
 */
final class HostStaging implements AutoCloseable {
    /** The first block's bytes (taken at the first copy). */
    static final long INITIAL_BYTES = 1L << 20;
    /** The most page-locked bytes the ring grows to. */
    static final long MAX_BYTES = 1L << 30;
    /** Regions start on this boundary, as cudaMalloc'd memory does. */
    private static final long ALIGNMENT = 256;

    private final MemorySegment stream;
    private final long initialBytes;
    private final long maxBytes;
    private final ArrayDeque<Copy> inFlight = new ArrayDeque<>();
    private final ArrayDeque<MemorySegment> idleEvents = new ArrayDeque<>();
    private final Arena arena = Arena.ofShared();
    private final MemorySegment out = arena.allocate(ValueLayout.ADDRESS);
    private MemorySegment block;
    /** Outgrown blocks, freed at close (see above). */
    private final ArrayDeque<MemorySegment> outgrown = new ArrayDeque<>();
    /** The next free byte of the current block, in ring order. */
    private long head;
    private long waits;
    private long wraps;

    /** A copy on the stream reading [start, end) of a block until its event completes. */
    private record Copy(MemorySegment block, long start, long end, MemorySegment event) {
    }

    HostStaging(MemorySegment stream) {
        this(stream, INITIAL_BYTES, MAX_BYTES);
    }

    /** Staging for copies on {@code stream}, starting at {@code initialBytes} and growing to {@code maxBytes}. */
    HostStaging(MemorySegment stream, long initialBytes, long maxBytes) {
        if (initialBytes < ALIGNMENT || maxBytes < initialBytes || maxBytes % ALIGNMENT != 0) {
            throw new IllegalArgumentException("staging of " + initialBytes + " growing to " + maxBytes
                    + " bytes: need " + ALIGNMENT + " <= initial <= max, max a multiple of " + ALIGNMENT);
        }
        this.stream = stream;
        this.initialBytes = initialBytes;
        this.maxBytes = maxBytes;
    }

    /** Enqueues a copy of {@code hostSource} to {@code deviceTarget} (as many bytes); the source is free on return. */
    synchronized void copyToDevice(MemorySegment deviceTarget, MemorySegment hostSource) {
        long bytes = hostSource.byteSize();
        for (long done = 0; done < bytes; ) {
            long chunk = Math.min(bytes - done, maxBytes);
            long start = take(chunk);
            MemorySegment region = block.asSlice(start, chunk);
            MemorySegment.copy(hostSource, done, region, 0, chunk);
            CudaRuntime.check(RuntimeBindings.mdt_memcpy_htod(deviceTarget.asSlice(done, chunk), region, chunk, stream),
                    "mdt_memcpy_htod");
            MemorySegment event = idleEvents.isEmpty() ? createEvent() : idleEvents.pop();
            CudaRuntime.check(RuntimeBindings.mdt_event_record(event, stream), "mdt_event_record");
            inFlight.add(new Copy(block, start, start + align(chunk), event));
            done += chunk;
        }
    }

    /** Host waits for a staging region so far (only when the ring is at its limit and every region is busy). */
    long waits() {
        return waits;
    }

    /** Times a region was taken from the start of the block again. */
    long wraps() {
        return wraps;
    }

    /** Bytes of the current block (0 before the first copy). */
    long capacity() {
        return block == null ? 0 : block.byteSize();
    }

    /** Frees the blocks and events; every copy must have finished (the caller waited for the stream). */
    @Override
    public synchronized void close() {
        while (!inFlight.isEmpty()) {
            release(inFlight.poll());
        }
        if (block != null) {
            outgrown.add(block);
            block = null;
        }
        for (MemorySegment memory : outgrown) {
            CudaRuntime.check(RuntimeBindings.mdt_host_free(memory), "mdt_host_free");
        }
        outgrown.clear();
        for (MemorySegment event : idleEvents) {
            CudaRuntime.check(RuntimeBindings.mdt_event_destroy(event), "mdt_event_destroy");
        }
        idleEvents.clear();
        arena.close();
    }

    /** The start of a free region of {@code bytes} (aligned) in the current block, growing or waiting as needed. */
    private long take(long bytes) {
        long size = align(bytes);
        while (true) {
            while (!inFlight.isEmpty() && finished(inFlight.peek().event())) {
                release(inFlight.poll());
            }
            if (block == null || size > capacity()) {
                grow(size);
                continue;
            }
            boolean wrap = head + size > capacity();
            long start = wrap ? 0 : head;
            if (free(start, start + size)) {
                wraps += wrap ? 1 : 0;
                head = start + size;
                return start;
            }
            if (capacity() < maxBytes) {
                grow(size);
            } else {
                waits++; // every region is still being read: wait for the oldest copy
                Copy oldest = inFlight.poll();
                CudaRuntime.check(RuntimeBindings.mdt_event_synchronize(oldest.event()), "mdt_event_synchronize");
                release(oldest);
            }
        }
    }

    private boolean free(long start, long end) {
        for (Copy copy : inFlight) {
            if (copy.block() == block && copy.start() < end && start < copy.end()) {
                return false;
            }
        }
        return true;
    }

    /** Replaces the block by one of at least twice its size (and at least {@code size}), up to the limit. */
    private void grow(long size) {
        long bytes = block == null ? initialBytes : 2 * capacity();
        while (bytes < size) {
            bytes *= 2;
        }
        bytes = Math.min(align(bytes), maxBytes);
        MemorySegment memory = allocate(bytes);
        if (block != null) {
            outgrown.add(block);
        }
        block = memory;
        head = 0;
    }

    private void release(Copy copy) {
        idleEvents.push(copy.event());
    }

    private boolean finished(MemorySegment event) {
        CudaRuntime.check(RuntimeBindings.mdt_event_query(event, out), "mdt_event_query");
        return out.get(ValueLayout.JAVA_INT, 0) != 0;
    }

    private MemorySegment allocate(long bytes) {
        CudaRuntime.check(RuntimeBindings.mdt_host_alloc(out, bytes), "mdt_host_alloc(" + bytes + ")");
        return out.get(ValueLayout.ADDRESS, 0).reinterpret(bytes);
    }

    private MemorySegment createEvent() {
        CudaRuntime.check(RuntimeBindings.mdt_event_create_untimed(out), "mdt_event_create_untimed");
        return out.get(ValueLayout.ADDRESS, 0);
    }

    private static long align(long bytes) {
        return (bytes + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
    }
}
