package io.microdit.tensor;

import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;

/**
 * The caching allocator behind host {@link MemoryScope}s, as PyTorch's caching allocators do for their devices:
 * a block freed by a closing scope goes to a free list of its size and the next allocation of that size takes it
 * back, so a training step reuses the previous step's pages instead of asking the C library again. Freed memory
 * given back to glibc is unmapped or trimmed and every later step page-faults it in anew (on a KVM guest a page
 * fault costs microseconds; a step of the main job took tens of thousands of them).
 *
 * <p>Size classes: multiples of {@link MemoryScope#ALIGNMENT} in four steps per power of two up to 1 MiB (at most
 * a quarter wasted), so that tensors whose sizes differ slightly share blocks; larger blocks are kept by their
 * exact size (64-byte rounded), because a step asks for the same large sizes each time and rounding them would
 * waste megabytes. Blocks go back to the C library only past {@link #cacheLimit} cached bytes, on {@link #trim},
 * when a fresh block cannot be had otherwise, and on {@link #close}. Every block is 64-byte aligned (AVX-512 loads
 * of a row start never straddle a cache line).
 *
 * <p>One allocator per backend ({@link io.microdit.backend.cpu.CpuBackend} owns one for its scopes) and one shared
 * by plain host scopes ({@link #shared()}). Thread-safe: scopes on several threads may draw from one allocator.
 */
public final class HostAllocator implements AutoCloseable {
    /** Blocks up to this size are rounded to a size class; larger ones are kept by their exact size. */
    static final long LARGEST_CLASS = 1L << 20;
    private static final long DEFAULT_CACHE_LIMIT = Long.getLong("microdit.hostCacheBytes", 8L << 30);
    private static final HostAllocator SHARED = new HostAllocator("shared host memory", DEFAULT_CACHE_LIMIT);

    /** What an allocator holds and how often it had to ask the C library. */
    public record Stats(long reservedBytes, long liveBytes, long cacheHits, long freshReservations) {
        /** Bytes held in free lists, ready for reuse. */
        public long cachedBytes() {
            return reservedBytes - liveBytes;
        }

        /** The field-by-field sum, for totals over several allocators. */
        public Stats plus(Stats other) {
            return new Stats(reservedBytes + other.reservedBytes, liveBytes + other.liveBytes,
                    cacheHits + other.cacheHits, freshReservations + other.freshReservations);
        }
    }

    private final String name;
    private final long cacheLimit;
    private final Map<Long, ArrayDeque<Long>> freeBlocks = new HashMap<>();
    /** Blocks handed out, by address, with their block size: a free of anything else is a bug of the caller. */
    private final Map<Long, Long> liveBlocks = new HashMap<>();
    private long reservedBytes;
    private long liveBytes;
    private long cacheHits;
    private long freshReservations;
    private boolean open = true;

    /** An allocator that caches up to {@code -Dmicrodit.hostCacheBytes} (default 8 GiB) of freed blocks. */
    public HostAllocator(String name) {
        this(name, DEFAULT_CACHE_LIMIT);
    }

    /** An allocator that gives freed blocks back to the C library once it caches {@code cacheLimit} bytes. */
    public HostAllocator(String name, long cacheLimit) {
        if (cacheLimit < 0) {
            throw new IllegalArgumentException("cache limit " + cacheLimit + " is negative");
        }
        this.name = name;
        this.cacheLimit = cacheLimit;
    }

    /** The allocator of host scopes made without one ({@code new MemoryScope(name)}); it lives as long as the JVM. */
    public static HostAllocator shared() {
        return SHARED;
    }

    /** The name given at construction, used in messages. */
    public String name() {
        return name;
    }

    /** Cached (freed, not yet returned) bytes beyond which freed blocks go back to the C library. */
    public long cacheLimit() {
        return cacheLimit;
    }

    /** A consistent snapshot of the counters, taken under the allocator's lock. */
    public synchronized Stats stats() {
        return new Stats(reservedBytes, liveBytes, cacheHits, freshReservations);
    }

    /** The size of the block that serves a request of {@code bytes}. */
    static long blockSize(long bytes) {
        long size = Math.max(MemoryScope.ALIGNMENT, roundUp(bytes, MemoryScope.ALIGNMENT));
        if (size > LARGEST_CLASS) {
            return size;
        }
        long octave = Long.highestOneBit(size - 1);
        return roundUp(size, Math.max(MemoryScope.ALIGNMENT, octave / 4));
    }

    private static long roundUp(long bytes, long multiple) {
        return (bytes + multiple - 1) / multiple * multiple;
    }

    /** The address of a block of at least {@code bytes} (at least 1) with unspecified contents. */
    synchronized long allocate(long bytes) {
        if (!open) {
            throw new IllegalStateException("host allocator '" + name + "' is closed");
        }
        long size = blockSize(bytes);
        ArrayDeque<Long> cached = freeBlocks.get(size);
        long address;
        if (cached != null && !cached.isEmpty()) {
            address = cached.pop();
            cacheHits++;
        } else {
            address = NativeHeap.allocate(size, MemoryScope.ALIGNMENT);
            if (address == 0 && reservedBytes > liveBytes) {
                trim();
                address = NativeHeap.allocate(size, MemoryScope.ALIGNMENT);
            }
            if (address == 0) {
                throw new OutOfMemoryError("host allocator '" + name + "': no " + size + " bytes from the C heap ("
                        + liveBytes + " bytes live)");
            }
            reservedBytes += size;
            freshReservations++;
        }
        liveBlocks.put(address, size);
        liveBytes += size;
        return address;
    }

    /**
     * Takes back a block from {@link #allocate}: cached for reuse, or given to the C library when the cache is full
     * or the allocator closed (a scope may outlive its backend). Throws for an address that is not live here: a
     * double free or another allocator's block.
     */
    synchronized void free(long address) {
        Long size = liveBlocks.remove(address);
        if (size == null) {
            throw new IllegalStateException("host allocator '" + name + "': block 0x" + Long.toHexString(address)
                    + " is not live here (freed twice, or from another allocator)");
        }
        liveBytes -= size;
        if (open && reservedBytes - liveBytes <= cacheLimit) {
            freeBlocks.computeIfAbsent(size, k -> new ArrayDeque<>()).push(address);
        } else {
            NativeHeap.free(address);
            reservedBytes -= size;
        }
    }

    /** Gives every cached block back to the C library; live blocks stay. */
    public synchronized void trim() {
        for (Map.Entry<Long, ArrayDeque<Long>> entry : freeBlocks.entrySet()) {
            for (long address : entry.getValue()) {
                NativeHeap.free(address);
                reservedBytes -= entry.getKey();
            }
        }
        freeBlocks.clear();
    }

    /**
     * Gives the cached blocks back and refuses further allocations; blocks still live in open scopes go straight to
     * the C library when those scopes close.
     */
    @Override
    public synchronized void close() {
        if (this == SHARED) {
            throw new UnsupportedOperationException("the shared host allocator lives as long as the JVM");
        }
        open = false;
        trim();
    }

    @Override
    public synchronized String toString() {
        return "HostAllocator[" + name + ", " + reservedBytes + " bytes reserved, " + liveBytes + " live]";
    }
}
