package io.microdit.tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;

/**
 * An owner of native memory: everything allocated in a scope is freed together when the scope closes.
 * Parameters and optimizer state live in a long-lived scope; activations in one scope per step.
 * Nothing is left to the garbage collector. The scope is shared: kernels on several threads may read and
 * write its memory, but allocation and closing belong to one owner at a time.
 */
public final class MemoryScope implements AutoCloseable {
    /** Alignment of every allocation: one 64-byte cache line, the width of an AVX-512 register. */
    public static final long ALIGNMENT = 64;
    /**
     * {@code -Dmicrodit.poisonUninitialized=true} (the tests set it) fills every {@link #allocateUninitialized}
     * block with 0xFF bytes — NaN in F32 and BF16, -1 in I32 — so an element that no op wrote shows up.
     */
    public static final boolean POISON_UNINITIALIZED = Boolean.getBoolean("microdit.poisonUninitialized");

    private final String name;
    private final Device device;
    private final Arena arena = Arena.ofShared();
    private final Allocator allocator;
    /** Allocator blocks by address, with their requested bytes. */
    private final Map<Long, MemorySegment> allocations = new HashMap<>();
    private long[] heapBlocks = new long[16];
    private int heapBlockCount;
    /** C heap blocks of this scope by address, with their size, and the released ones by size for reuse. */
    private final Map<Long, Long> heapSizes = new HashMap<>();
    private final Map<Long, ArrayDeque<Long>> releasedHeapBlocks = new HashMap<>();
    /** Released device blocks kept (poisoned) until close under {@link #POISON_UNINITIALIZED}. */
    private final java.util.Set<Long> releasedQuarantine = new java.util.HashSet<>();
    private long ownedBytes;
    private boolean open = true;

    public MemoryScope(String name) {
        this(name, Device.CPU);
    }

    public MemoryScope(String name, Device device) {
        this(name, device, null);
    }

    /**
     * A scope whose memory comes from {@code allocator} (device memory, e.g. the CUDA backend's caching
     * allocator) instead of a host arena; each allocation goes back to the allocator when the scope closes.
     */
    public MemoryScope(String name, Device device, Allocator allocator) {
        this.name = name;
        this.device = device;
        this.allocator = allocator;
    }

    /**
     * Where a non-host scope gets its bytes. Segments it returns are zero-filled and {@code bytes} long; for
     * device memory their address is a device pointer, not readable from Java unless the device is emulated.
     */
    public interface Allocator {
        MemorySegment allocate(long bytes);

        /** {@code bytes} whose contents are unspecified (the allocator may skip zero-filling them). */
        default MemorySegment allocateUninitialized(long bytes) {
            return allocate(bytes);
        }

        void free(MemorySegment segment);

        /** Fills the block with 0xFF bytes (NaN): a released block kept to expose stale reads in tests. */
        default void poison(MemorySegment segment) {
        }

        /**
         * Whether a released block is kept, poisoned, until its scope closes under {@link #POISON_UNINITIALIZED}
         * (the default), or freed at once as without it: an allocator whose work is only planned (a dry-run trace,
         * where nothing reads memory) frees, so that it measures the memory a real run would hold.
         */
        default boolean keepsReleasedPoisoned() {
            return true;
        }

        /** Whether Java may read and write the memory directly (true for an emulated device's host memory). */
        default boolean hostAccessible() {
            return false;
        }
    }

    public String name() {
        return name;
    }

    public Device device() {
        return device;
    }

    public boolean isOpen() {
        return open;
    }

    /** Whether Java may read and write this scope's memory directly: host memory, or an emulated device's. */
    public boolean hostAccessible() {
        return allocator == null || allocator.hostAccessible();
    }

    /** Bytes this scope holds now. */
    public long ownedBytes() {
        return ownedBytes;
    }

    /** Zero-filled host memory owned by this scope. */
    public synchronized MemorySegment allocate(long bytes) {
        ensureOpen();
        MemorySegment segment;
        if (allocator == null) {
            segment = arena.allocate(Math.max(bytes, 1), ALIGNMENT);
        } else {
            segment = allocator.allocate(bytes);
            allocations.put(segment.address(), segment);
        }
        ownedBytes += bytes;
        device.allocated(bytes);
        return segment;
    }

    /**
     * Memory owned by this scope whose contents are unspecified: for outputs the next op overwrites entirely, so
     * no pass is spent zeroing them. Host blocks come from the C heap and are freed when the scope closes; reading
     * them afterwards throws, as for {@link #allocate}.
     */
    public synchronized MemorySegment allocateUninitialized(long bytes) {
        ensureOpen();
        MemorySegment segment;
        if (allocator == null) {
            long size = heapSize(bytes);
            ArrayDeque<Long> released = releasedHeapBlocks.get(size);
            long address;
            if (released != null && !released.isEmpty()) {
                address = released.pop();
            } else {
                address = NativeHeap.allocate(size, ALIGNMENT);
                if (heapBlockCount == heapBlocks.length) {
                    heapBlocks = java.util.Arrays.copyOf(heapBlocks, 2 * heapBlockCount);
                }
                heapBlocks[heapBlockCount++] = address;
            }
            heapSizes.put(address, size);
            segment = MemorySegment.ofAddress(address).reinterpret(Math.max(bytes, 1), arena, null);
            if (POISON_UNINITIALIZED) {
                segment.fill((byte) 0xFF);
            }
        } else {
            segment = allocator.allocateUninitialized(bytes);
            allocations.put(segment.address(), segment);
        }
        ownedBytes += bytes;
        device.allocated(bytes);
        return segment;
    }

    private static long heapSize(long bytes) {
        return Math.max(ALIGNMENT, (bytes + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT);
    }

    /**
     * Gives back the memory of {@code t} before the scope closes, for a tensor its owner knows is dead (the autograd
     * graph releases consumed gradients and backward temporaries this way). Only a tensor spanning a whole
     * allocation of this scope (the tensor itself or a reshape of it) from {@link #allocateUninitialized}, or any
     * allocation of a device scope, is released; for anything else (a slice, another scope's tensor, a zero-filled
     * host block) it returns false and nothing changes. Released device memory goes back to the allocator;
     * released host blocks are reused by this scope's later allocations of the same size (never returned to the
     * C heap before the scope closes, so a stale reader can never fault). Under {@link #POISON_UNINITIALIZED} (the
     * tests) the memory is filled with 0xFF and kept until the scope closes instead, so any later read of a released
     * tensor shows NaN; the byte counts ({@link #ownedBytes}, {@link Device#liveBytes}) drop either way.
     */
    public synchronized boolean release(Tensor t) {
        ensureOpen();
        if (t.scope() != this) {
            return false;
        }
        long address = t.segment().address();
        if (allocator == null) {
            Long size = heapSizes.get(address);
            if (size == null || heapSize(t.byteSize()) != size) {
                return false;
            }
            heapSizes.remove(address);
            if (POISON_UNINITIALIZED) {
                MemorySegment.ofAddress(address).reinterpret(size).fill((byte) 0xFF);
            } else {
                releasedHeapBlocks.computeIfAbsent(size, k -> new ArrayDeque<>()).push(address);
            }
        } else {
            MemorySegment block = allocations.get(address);
            if (block == null || block.byteSize() != t.byteSize() || !releasedQuarantine.add(address)) {
                return false;
            }
            if (POISON_UNINITIALIZED && allocator.keepsReleasedPoisoned()) {
                allocator.poison(block);
            } else {
                releasedQuarantine.remove(address);
                allocations.remove(address);
                allocator.free(block);
            }
        }
        ownedBytes -= t.byteSize();
        device.freed(t.byteSize());
        return true;
    }

    /** Allocates a tensor of zeros in this scope. */
    public Tensor zeros(DType dtype, int... shape) {
        return Tensor.zeros(this, dtype, shape);
    }

    public Tensor zeros(int... shape) {
        return Tensor.zeros(this, DType.F32, shape);
    }

    void ensureOpen() {
        if (!open) {
            throw new IllegalStateException("memory scope '" + name + "' is closed");
        }
    }

    @Override
    public synchronized void close() {
        if (!open) {
            return;
        }
        open = false;
        arena.close();
        for (int i = 0; i < heapBlockCount; i++) {
            NativeHeap.free(heapBlocks[i]);
        }
        heapBlockCount = 0;
        for (MemorySegment segment : allocations.values()) {
            allocator.free(segment);
        }
        allocations.clear();
        heapSizes.clear();
        releasedHeapBlocks.clear();
        releasedQuarantine.clear();
        device.freed(ownedBytes);
        ownedBytes = 0;
    }

    @Override
    public String toString() {
        return "MemoryScope[" + name + ", " + device + ", " + ownedBytes + " bytes" + (open ? "" : ", closed") + "]";
    }
}
