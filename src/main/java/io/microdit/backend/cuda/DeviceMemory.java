package io.microdit.backend.cuda;

import io.microdit.tensor.MemoryScope;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;

/**
 * The caching device allocator behind device {@link MemoryScope}s: a block freed by a closing scope goes to a
 * free list of its size class and the next allocation of that class takes it back without a cudaMalloc (which
 * synchronises the device). Size classes: multiples of 512 bytes up to 1 MiB, of 2 MiB above. All work is
 * ordered on one stream, so a block reused by a later step is only touched after the earlier step's kernels.
 * Live bytes are counted by the scopes (Device.CUDA); this class reports what it holds from the device.
 */
public final class DeviceMemory implements MemoryScope.Allocator, AutoCloseable {
    private static final long SMALL_GRANULE = 512;
    private static final long LARGE_GRANULE = 2L << 20;
    private static final long LARGE_THRESHOLD = 1L << 20;

    private final MemorySegment stream;
    private final boolean hostAccessible;
    private final Map<Long, ArrayDeque<Long>> freeBlocks = new HashMap<>();
    private final Map<Long, Long> liveBlocks = new HashMap<>();
    private long reservedBytes;
    private long cachedBytes;
    private long peakLiveBytes;

    /**
     * An allocator on {@code stream}. {@code opaque} makes it report its memory as not host-accessible even on the
     * emulator, as on a real GPU, so tests catch every Java read or write that would crash on a device.
     */
    public DeviceMemory(MemorySegment stream, boolean opaque) {
        this.stream = stream;
        this.hostAccessible = NativeLibrary.isEmulator() && !opaque;
    }

    /** Zero-filled device memory of at least {@code bytes} (a memset on the stream). */
    @Override
    public synchronized MemorySegment allocate(long bytes) {
        return allocate(bytes, 0);
    }

    /**
     * Device memory of at least {@code bytes} with unspecified contents: no memset, except 0xFF bytes under
     * {@link MemoryScope#POISON_UNINITIALIZED}.
     */
    @Override
    public synchronized MemorySegment allocateUninitialized(long bytes) {
        return allocate(bytes, MemoryScope.POISON_UNINITIALIZED ? 0xFF : -1);
    }

    /** {@code fill} is the byte value to set, or -1 for none. */
    private MemorySegment allocate(long bytes, int fill) {
        long size = sizeClass(bytes);
        ArrayDeque<Long> cached = freeBlocks.get(size);
        long pointer;
        if (cached != null && !cached.isEmpty()) {
            pointer = cached.pop();
            cachedBytes -= size;
        } else {
            pointer = malloc(size);
            reservedBytes += size;
        }
        liveBlocks.put(pointer, size);
        peakLiveBytes = Math.max(peakLiveBytes, reservedBytes - cachedBytes);
        MemorySegment segment = MemorySegment.ofAddress(pointer).reinterpret(Math.max(bytes, 0));
        if (fill >= 0) {
            CudaRuntime.check(RuntimeBindings.mdt_memset(MemorySegment.ofAddress(pointer), fill, size, stream),
                    "mdt_memset");
        }
        return segment;
    }

    /** On the emulator device memory is host memory (unless opaque); on a GPU Java must go through copies. */
    @Override
    public boolean hostAccessible() {
        return hostAccessible;
    }

    @Override
    public synchronized void free(MemorySegment segment) {
        Long size = liveBlocks.remove(segment.address());
        if (size == null) {
            throw new IllegalArgumentException("device memory at 0x" + Long.toHexString(segment.address())
                    + " was not allocated here or was freed twice");
        }
        freeBlocks.computeIfAbsent(size, s -> new ArrayDeque<>()).push(segment.address());
        cachedBytes += size;
    }

    @Override
    public synchronized void poison(MemorySegment segment) {
        Long size = liveBlocks.get(segment.address());
        if (size == null) {
            throw new IllegalArgumentException("device memory at 0x" + Long.toHexString(segment.address())
                    + " was not allocated here or was freed");
        }
        CudaRuntime.check(RuntimeBindings.mdt_memset(MemorySegment.ofAddress(segment.address()), 0xFF, size, stream),
                "mdt_memset");
    }

    /** Set while a dry-run trace is open: released blocks are freed at once even in tests (see the interface). */
    private volatile boolean planning;

    void planning(boolean on) {
        planning = on;
    }

    @Override
    public boolean keepsReleasedPoisoned() {
        return !planning;
    }

    /** Gives every cached (free) block back to the device. */
    public synchronized void releaseCached() {
        for (ArrayDeque<Long> blocks : freeBlocks.values()) {
            for (long pointer : blocks) {
                CudaRuntime.check(RuntimeBindings.mdt_free(MemorySegment.ofAddress(pointer)), "mdt_free");
            }
        }
        reservedBytes -= cachedBytes;
        cachedBytes = 0;
        freeBlocks.clear();
    }

    /** Bytes taken from the device: blocks in use plus cached ones. */
    public synchronized long reservedBytes() {
        return reservedBytes;
    }

    /** Bytes in use now (allocated and not freed, in size classes). */
    public synchronized long liveBytes() {
        return reservedBytes - cachedBytes;
    }

    /** The most bytes in use (allocated and not freed, in size classes) at any time so far. */
    public synchronized long peakLiveBytes() {
        return peakLiveBytes;
    }

    /** Starts a new peak from the bytes in use now. */
    public synchronized void resetPeak() {
        peakLiveBytes = reservedBytes - cachedBytes;
    }

    /** Bytes in free blocks kept for reuse. */
    public synchronized long cachedBytes() {
        return cachedBytes;
    }

    /** Releases the cache; every scope on this allocator must be closed first. */
    @Override
    public synchronized void close() {
        releaseCached();
        if (!liveBlocks.isEmpty()) {
            throw new IllegalStateException(liveBlocks.size() + " device blocks (" + reservedBytes
                    + " bytes) are still owned by open memory scopes: close them before the backend");
        }
    }


    private long malloc(long size) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment result = arena.allocate(ValueLayout.ADDRESS);
            int status = RuntimeBindings.mdt_malloc(result, size);
            if (status == CudaRuntime.ERROR_OUT_OF_MEMORY && cachedBytes > 0) {
                releaseCached();
                status = RuntimeBindings.mdt_malloc(result, size);
            }
            CudaRuntime.check(status, "mdt_malloc(" + size + ")");
            return result.get(ValueLayout.ADDRESS, 0).address();
        }
    }

    static long sizeClass(long bytes) {
        long granule = bytes > LARGE_THRESHOLD ? LARGE_GRANULE : SMALL_GRANULE;
        return Math.max(granule, (bytes + granule - 1) / granule * granule);
    }
}
