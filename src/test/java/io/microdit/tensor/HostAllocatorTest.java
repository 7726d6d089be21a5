package io.microdit.tensor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;

class HostAllocatorTest {

    @Test
    void sizeClassesWasteUnderAQuarterUpTo1MiBAndAreExactAbove() {
        Random random = new Random(11);
        for (int i = 0; i < 20_000; i++) {
            long bytes = random.nextInt(4) == 0 ? random.nextLong(4L << 20) : random.nextLong(1, 1L << 20);
            long size = HostAllocator.blockSize(bytes);
            long rounded = Math.max(64, (bytes + 63) / 64 * 64);
            assertEquals(0, size % 64, bytes + " -> " + size);
            assertTrue(size >= rounded, bytes + " -> " + size);
            if (rounded > HostAllocator.LARGEST_CLASS) {
                assertEquals(rounded, size, "large blocks keep their exact size: " + bytes);
            } else {
                assertTrue(size - rounded < rounded / 4 + 64, bytes + " -> " + size);
                assertEquals(size, HostAllocator.blockSize(size), "a class is its own block size");
            }
        }
        // Four classes per octave: 4097..5120 share one block, 5121 starts the next.
        assertEquals(5120, HostAllocator.blockSize(4097));
        assertEquals(5120, HostAllocator.blockSize(5120));
        assertEquals(6144, HostAllocator.blockSize(5121));
        assertEquals(64, HostAllocator.blockSize(0));
        assertEquals(192, HostAllocator.blockSize(129));
    }

    @Test
    void aFreedBlockServesTheNextRequestOfItsClassWithoutTheCHeap() {
        try (HostAllocator allocator = new HostAllocator("reuse")) {
            long a = allocator.allocate(4100);
            long large = allocator.allocate(3_000_001);
            assertEquals(new HostAllocator.Stats(5120 + 3_000_064, 5120 + 3_000_064, 0, 2), allocator.stats());
            allocator.free(a);
            allocator.free(large);
            assertEquals(5120 + 3_000_064, allocator.stats().cachedBytes());
            assertEquals(a, allocator.allocate(5000), "same class");
            assertNotEquals(large, allocator.allocate(3_000_001 + 64), "large blocks match their exact size only");
            assertEquals(large, allocator.allocate(3_000_060), "the same size after 64-byte rounding");
            HostAllocator.Stats stats = allocator.stats();
            assertEquals(2, stats.cacheHits());
            assertEquals(3, stats.freshReservations());
            assertEquals(stats.reservedBytes(), stats.liveBytes());
        }
    }

    @Test
    void everyBlockIsCacheLineAligned() {
        Random random = new Random(5);
        try (HostAllocator allocator = new HostAllocator("alignment")) {
            for (int round = 0; round < 3; round++) {
                List<Long> blocks = new ArrayList<>();
                for (int i = 0; i < 200; i++) {
                    long address = allocator.allocate(random.nextLong(1, 300_000));
                    assertEquals(0, address % MemoryScope.ALIGNMENT, "0x" + Long.toHexString(address));
                    blocks.add(address);
                }
                blocks.forEach(allocator::free);
            }
            assertTrue(allocator.stats().cacheHits() > 0);
        }
    }

    @Test
    void doubleAndForeignFreesAndUseAfterCloseThrow() {
        HostAllocator other = new HostAllocator("other");
        HostAllocator allocator = new HostAllocator("errors");
        long block = allocator.allocate(100);
        long foreign = other.allocate(100);
        allocator.free(block);
        IllegalStateException twice = assertThrows(IllegalStateException.class, () -> allocator.free(block));
        assertTrue(twice.getMessage().contains("errors") && twice.getMessage().contains("not live"),
                twice.getMessage());
        assertThrows(IllegalStateException.class, () -> allocator.free(foreign));
        other.free(foreign);
        other.close();
        allocator.close();
        IllegalStateException closed = assertThrows(IllegalStateException.class, () -> allocator.allocate(8));
        assertTrue(closed.getMessage().contains("closed"), closed.getMessage());
        assertEquals(0, allocator.stats().reservedBytes(), "closing gave the cached block back");
        assertThrows(UnsupportedOperationException.class, () -> HostAllocator.shared().close());
    }

    @Test
    void aScopeOutlivingItsAllocatorStillGivesItsBlocksBack() {
        HostAllocator allocator = new HostAllocator("backend");
        MemoryScope scope = new MemoryScope("late", allocator);
        Tensor t = Tensor.empty(scope, DType.F32, 1000).fill(3f);
        allocator.close();
        assertEquals(3f, t.getFloat(999));
        assertThrows(IllegalStateException.class, () -> Tensor.empty(scope, DType.F32, 4));
        scope.close();
        assertEquals(new HostAllocator.Stats(0, 0, 0, 1), allocator.stats());
    }

    @Test
    void zerosAreZeroEvenInAReusedBlock() {
        Random random = new Random(8);
        try (HostAllocator allocator = new HostAllocator("zeros")) {
            long address;
            try (MemoryScope step = new MemoryScope("dirty", allocator)) {
                Tensor dirty = Tensor.empty(step, DType.F32, 33, 17);
                for (int i = 0; i < dirty.numel(); i++) {
                    dirty.setFloat(i, random.nextFloat() + 0.5f);
                }
                address = dirty.segment().address();
            }
            try (MemoryScope step = new MemoryScope("clean", allocator)) {
                Tensor zeros = Tensor.zeros(step, DType.F32, 33, 17);
                assertEquals(address, zeros.segment().address(), "the freed block came back");
                for (float v : zeros.toFloatArray()) {
                    assertEquals(0f, v);
                }
                Tensor copied = Tensor.of(step, new float[] {1, 2, 3}, 3);
                assertEquals(2f, copied.getFloat(1));
            }
            assertEquals(1, allocator.stats().cacheHits());
        }
    }

    @Test
    void aReusedUninitializedBlockIsPoisonedInTests() {
        assertTrue(MemoryScope.POISON_UNINITIALIZED, "the build runs tests with poisoning on");
        try (HostAllocator allocator = new HostAllocator("poison")) {
            try (MemoryScope step = new MemoryScope("first", allocator)) {
                Tensor.empty(step, DType.F32, 64).fill(1f);
            }
            try (MemoryScope step = new MemoryScope("second", allocator)) {
                Tensor reused = Tensor.empty(step, DType.F32, 64);
                assertTrue(Float.isNaN(reused.getFloat(63)), "stale values must not leak into a new tensor");
            }
        }
    }

    @Test
    void beyondTheCacheLimitFreedBlocksGoBackToTheCHeap() {
        try (HostAllocator allocator = new HostAllocator("limited", 3L << 20)) {
            long a = allocator.allocate(2L << 20);
            long b = allocator.allocate(2L << 20);
            allocator.free(a);
            allocator.free(b);
            HostAllocator.Stats stats = allocator.stats();
            assertEquals(2L << 20, stats.reservedBytes(), "one block cached, the other given back");
            assertEquals(0, stats.liveBytes());
            allocator.trim();
            assertEquals(0, allocator.stats().reservedBytes());
        }
    }

    /** Scopes on several threads share one allocator: no block is handed to two owners, no count drifts. */
    @Test
    void threadsSharingOneAllocatorNeverShareABlock() throws Exception {
        try (HostAllocator allocator = new HostAllocator("threads")) {
            Set<Long> live = new HashSet<>();
            ExecutorService pool = Executors.newFixedThreadPool(4);
            try {
                List<Future<?>> done = new ArrayList<>();
                for (int thread = 0; thread < 4; thread++) {
                    int seed = thread;
                    done.add(pool.submit(() -> {
                        Random random = new Random(seed);
                        for (int step = 0; step < 50; step++) {
                            try (MemoryScope scope = new MemoryScope("step", allocator)) {
                                List<Tensor> tensors = new ArrayList<>();
                                for (int i = 0; i < 8; i++) {
                                    Tensor t = Tensor.empty(scope, DType.I32, random.nextInt(1, 5000));
                                    synchronized (live) {
                                        assertTrue(live.add(t.segment().address()), "a block handed out twice");
                                    }
                                    t.fill(seed * 1000 + i);
                                    tensors.add(t);
                                }
                                for (int i = 0; i < tensors.size(); i++) {
                                    Tensor t = tensors.get(i);
                                    assertEquals(seed * 1000 + i, t.getInt(t.numel() - 1), "overwritten by a thread");
                                    synchronized (live) {
                                        live.remove(t.segment().address());
                                    }
                                }
                            }
                        }
                        return null;
                    }));
                }
                for (Future<?> f : done) {
                    f.get();
                }
            } finally {
                pool.shutdown();
            }
            HostAllocator.Stats stats = allocator.stats();
            assertEquals(0, stats.liveBytes());
            assertEquals(4 * 50 * 8, stats.cacheHits() + stats.freshReservations());
            assertTrue(stats.cacheHits() > stats.freshReservations(), stats.toString());
        }
    }
}
