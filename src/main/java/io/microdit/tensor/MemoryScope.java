package io.microdit.tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * An owner of native memory: everything allocated in a scope is freed together when the scope closes.
 * Parameters and optimizer state live in a long-lived scope; activations in one scope per step.
 * Nothing is left to the garbage collector. The scope is shared: kernels on several threads may read and
 * write its memory, but allocation and closing belong to one owner at a time.
 *
 * <p>Host scopes draw their blocks from a caching {@link HostAllocator} (the backend's, or the shared one) and give
 * them back to it on close, so a step's memory is the previous step's, already mapped.
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
    /**
     * Bounds the host segments handed out, so that a kernel touching one after close throws instead of reading a
     * block another scope reuses.
     */
    private final Arena arena = Arena.ofShared();
    private final HostAllocator host;
    private final Allocator allocator;
    /** Host blocks of this scope by address, with the bytes asked for. */
    private final Map<Long, Long> hostBlocks = new HashMap<>();
    /** Released host blocks kept (poisoned) until close under {@link #POISON_UNINITIALIZED}. */
    private final List<Long> releasedHostBlocks = new ArrayList<>();
    /** Allocator blocks by address, with their requested bytes. */
    private final Map<Long, MemorySegment> allocations = new HashMap<>();
    /** Released device blocks kept (poisoned) until close under {@link #POISON_UNINITIALIZED}. */
    private final Set<Long> releasedQuarantine = new HashSet<>();
    private long ownedBytes;
    private boolean open = true;

    /** A host scope on the shared host allocator. */
    public MemoryScope(String name) {
        this(name, HostAllocator.shared());
    }

    /** A host scope whose blocks come from {@code host} (a backend's allocator). */
    public MemoryScope(String name, HostAllocator host) {
        this(name, Device.CPU, host, null);
    }

    /** Host memory on the shared host allocator, counted as {@code device}'s. */
    public MemoryScope(String name, Device device) {
        this(name, device, HostAllocator.shared(), null);
    }

    /**
     * A scope whose memory comes from {@code allocator} (device memory, e.g. the CUDA backend's caching
     * allocator) instead of a host allocator; each allocation goes back to the allocator when the scope closes.
     */
    public MemoryScope(String name, Device device, Allocator allocator) {
        this(name, device, null, allocator);
    }

    private MemoryScope(String name, Device device, HostAllocator host, Allocator allocator) {
        this.name = name;
        this.device = device;
        this.host = host;
        this.allocator = allocator;
    }

    /**
     * Where a non-host scope gets its bytes. Segments it returns are zero-filled and {@code bytes} long; for
     * device memory their address is a device pointer, not readable from Java unless the device is emulated.
     */
    public interface Allocator {
        /** Zero-filled memory of {@code bytes}; an allocator that cannot provide it throws an unchecked exception. */
        MemorySegment allocate(long bytes);

        /** {@code bytes} whose contents are unspecified (the allocator may skip zero-filling them). */
        default MemorySegment allocateUninitialized(long bytes) {
            return allocate(bytes);
        }

        /** Takes back a segment this allocator returned; the caller no longer touches it. */
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

    /** The name given at construction, used in messages. */
    public String name() {
        return name;
    }

    /** The device whose live bytes this scope's allocations count towards. */
    public Device device() {
        return device;
    }

    /** False once {@link #close} ran: every tensor of the scope then throws on access. */
    public boolean isOpen() {
        return open;
    }

    /** Whether Java may read and write this scope's memory directly: host memory, or an emulated device's. */
    public boolean hostAccessible() {
        return host != null || allocator.hostAccessible();
    }

    /** Bytes this scope holds now. */
    public long ownedBytes() {
        return ownedBytes;
    }

    /** Zero-filled memory owned by this scope. */
    public synchronized MemorySegment allocate(long bytes) {
        ensureOpen();
        MemorySegment segment;
        if (host != null) {
            segment = hostBlock(bytes).fill((byte) 0);
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
     * no pass is spent zeroing them. Reading it after the scope closes throws, as for {@link #allocate}.
     */
    public synchronized MemorySegment allocateUninitialized(long bytes) {
        ensureOpen();
        MemorySegment segment;
        if (host != null) {
            segment = hostBlock(bytes);
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

    private MemorySegment hostBlock(long bytes) {
        long address = host.allocate(bytes);
        hostBlocks.put(address, bytes);
        return MemorySegment.ofAddress(address).reinterpret(Math.max(bytes, 1), arena, null);
    }

    /**
     * Gives back the memory of {@code t} before the scope closes, for a tensor its owner knows is dead (the autograd
     * graph releases consumed gradients and backward temporaries this way). Only a tensor spanning a whole
     * allocation of this scope (the tensor itself or a reshape of it) is released; for anything else (a slice,
     * another scope's tensor) it returns false and nothing changes. Released memory goes back to the allocator, whose
     * host blocks are never unmapped during a run, so a stale reader reads garbage but never faults. Under
     * {@link #POISON_UNINITIALIZED} (the tests) the memory is filled with 0xFF and kept until the scope closes
     * instead, so any later read of a released tensor shows NaN; the byte counts ({@link #ownedBytes},
     * {@link Device#liveBytes}) drop either way.
     */
    public synchronized boolean release(Tensor t) {
        ensureOpen();
        if (t.scope() != this) {
            return false;
        }
        long address = t.segment().address();
        if (host != null) {
            Long bytes = hostBlocks.get(address);
            if (bytes == null || bytes != t.byteSize()) {
                return false;
            }
            hostBlocks.remove(address);
            if (POISON_UNINITIALIZED) {
                MemorySegment.ofAddress(address).reinterpret(Math.max(bytes, 1)).fill((byte) 0xFF);
                releasedHostBlocks.add(address);
            } else {
                host.free(address);
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

    /** Allocates an F32 tensor of zeros in this scope. */
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
        for (long address : hostBlocks.keySet()) {
            host.free(address);
        }
        for (long address : releasedHostBlocks) {
            host.free(address);
        }
        for (MemorySegment segment : allocations.values()) {
            allocator.free(segment);
        }
        hostBlocks.clear();
        releasedHostBlocks.clear();
        allocations.clear();
        releasedQuarantine.clear();
        device.freed(ownedBytes);
        ownedBytes = 0;
    }

    @Override
    public String toString() {
        return "MemoryScope[" + name + ", " + device + ", " + ownedBytes + " bytes" + (open ? "" : ", closed") + "]";
    }
}
