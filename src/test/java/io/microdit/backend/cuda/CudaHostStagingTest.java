package io.microdit.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Host→device copies through page-locked staging ({@link HostStaging}): they return without a host wait, the caller's
 * host tensor is free at once, a staging region is reused only after its copy, and copies stay in stream order with
 * the kernels around them. Device targets are poisoned with NaN first. On a GPU the small rings below are busy while
 * the stream runs, so the grow and wait branches run too; so they do on the emulator's deferred streams (pom.xml),
 * where a copy runs only when a query or synchronisation finds it pending.
 */
@Tag("emu")
class CudaHostStagingTest {
    /** A ring of 1 KiB that grows to 4 KiB: smaller than most copies below. */
    private static CudaBackend smallRing() {
        return CudaBackend.opaque(1024, 4096);
    }

    @Test
    void aHostTensorOverwrittenOrFreedRightAfterTheCopyDoesNotChangeWhatTheDeviceGot() {
        Random random = new Random(21);
        try (CudaBackend cuda = CudaBackend.opaque(); MemoryScope device = cuda.scope("device")) {
            Tensor onDevice = device.zeros(3, 37, 5);
            cuda.fill(onDevice, Float.NaN);
            float[] expected;
            long before = cuda.synchronizations();
            try (MemoryScope host = new MemoryScope("host")) {
                Tensor x = TestData.uniform(host, random, 3, 37, 5);
                expected = x.toFloatArray();
                cuda.copy(x, onDevice);
                x.fill(-7f); // the caller reuses its buffer at once ...
            } // ... or frees it
            try (MemoryScope host = new MemoryScope("other")) {
                TestData.uniform(host, random, 3, 37, 5); // likely the freed bytes, written again
            }
            assertEquals(before, cuda.synchronizations(), "a host→device copy made the host wait");
            assertArrayEquals(expected, cuda.read(onDevice));

            int[] ids = {4, 0, 6, 2, 5, 1, 3};
            Tensor deviceIds = device.zeros(DType.I32, 7);
            cuda.write(deviceIds, ids.clone()); // write() stages from a temporary host tensor it frees on return
            try (MemoryScope host = new MemoryScope("ids")) {
                Tensor back = host.zeros(DType.I32, 7);
                cuda.copyToHost(deviceIds, back);
                assertArrayEquals(ids, back.toIntArray());
            }
        }
    }

    @Test
    void manyCopiesLargerThanTheRingArriveIntact() {
        Random random = new Random(22);
        try (CudaBackend cuda = smallRing(); MemoryScope device = cuda.scope("device");
             MemoryScope host = new MemoryScope("host")) {
            // Sizes with tails: below the first block, between it and the limit, and above the limit (in chunks).
            int[] sizes = {1, 63, 255, 257, 700, 1023, 1025, 2500, 3001, 17, 5000, 1, 999};
            List<Tensor> targets = new ArrayList<>();
            List<float[]> expected = new ArrayList<>();
            Tensor source = host.zeros(5000);
            for (int round = 0; round < 3; round++) {
                for (int size : sizes) {
                    float[] values = TestData.uniform(random, size);
                    Tensor from = source.reshape(5000).rows(0, size);
                    from.copyFrom(values);
                    Tensor target = device.zeros(size);
                    cuda.fill(target, Float.NaN);
                    cuda.copy(from, target);
                    from.fill(Float.NaN); // the one host buffer is reused for every copy
                    targets.add(target);
                    expected.add(values);
                }
            }
            HostStaging staging = cuda.staging();
            assertEquals(4096, staging.capacity(), "the ring grew to its limit");
            assertTrue(staging.wraps() > 10, "regions were reused " + staging.wraps() + " times");
            if (CudaRuntime.isEmulator()) { // deferred streams: the first query of a fresh copy finds it pending
                assertTrue(staging.waits() > 0, "the ring at its limit waited for a copy");
            }
            for (int i = 0; i < targets.size(); i++) {
                assertArrayEquals(expected.get(i), cuda.read(targets.get(i)), "copy " + i);
            }
        }
    }

    @Test
    void copiesInterleavedWithKernelsKeepStreamOrder() {
        Random random = new Random(23);
        int n = 333; // 1332 bytes: each copy takes a fresh region of the small ring, which wraps often
        try (CudaBackend cuda = smallRing(); MemoryScope device = cuda.scope("device");
             MemoryScope host = new MemoryScope("host")) {
            Tensor x = device.zeros(n), doubled = device.zeros(n), sum = device.zeros(n);
            cuda.fill(doubled, Float.NaN);
            double[] expected = new double[n];
            Tensor from = host.zeros(n);
            for (int step = 0; step < 40; step++) {
                float[] values = TestData.uniform(random, n);
                from.copyFrom(values);
                cuda.copy(from, x); // must land after the previous step's kernels read x, before this step's
                cuda.axpy(1f, x, sum);
                for (int i = 0; i < n; i++) {
                    expected[i] += values[i];
                }
            }
            float[] a = TestData.uniform(random, n), b = TestData.uniform(random, n);
            from.copyFrom(a);
            cuda.copy(from, x);
            cuda.scale(x, 2f, doubled); // reads a
            from.copyFrom(b);
            cuda.copy(from, x); // overwrites x only after the scale
            cuda.add(doubled, x, doubled);
            float[] sums = cuda.read(sum), mixed = cuda.read(doubled);
            for (int i = 0; i < n; i++) {
                assertEquals(expected[i], sums[i], 1e-4, "sum " + i);
                assertEquals(2f * a[i] + b[i], mixed[i], "2a + b at " + i);
            }
        }
    }

    /**
     * Growing the ring takes a new block without making the device catch up: the outgrown block is kept until close,
     * since freeing page-locked memory waits for every stream (on the emulator's deferred streams as with CUDA's
     * cudaFreeHost: it runs all pending work first). The staging events are untimed.
     */
    @Test
    void growingTheRingLeavesTheStreamsWorkPending() {
        Random random = new Random(24);
        EmulatorStreams.set(CudaRuntime.STREAMS_DEFERRED);
        try (CudaBackend cuda = smallRing(); MemoryScope device = cuda.scope("device");
             MemoryScope host = new MemoryScope("host"); Arena arena = Arena.ofConfined()) {
            cuda.copy(TestData.uniform(host, random, 16), device.zeros(16)); // 64 B into the first 1 KiB block
            cuda.synchronize(); // that copy is done: the first block is read by nothing
            Tensor filled = device.zeros(64);
            cuda.fill(filled, 3f); // queued, not yet run
            MemorySegment out = arena.allocate(ValueLayout.ADDRESS), flag = arena.allocate(ValueLayout.JAVA_INT);
            CudaRuntime.check(RuntimeBindings.mdt_event_create_untimed(out), "mdt_event_create_untimed");
            MemorySegment afterFill = out.get(ValueLayout.ADDRESS, 0);
            CudaRuntime.check(RuntimeBindings.mdt_event_record(afterFill, cuda.stream()), "mdt_event_record");
            Tensor large = device.zeros(512);
            float[] values = TestData.uniform(random, 512);
            try (MemoryScope source = new MemoryScope("source")) {
                cuda.copy(source.zeros(512).copyFrom(values), large); // 2 KiB: the ring grows
            }
            assertEquals(2048, cuda.staging().capacity(), "the ring grew");
            CudaRuntime.check(RuntimeBindings.mdt_event_query(afterFill, flag), "mdt_event_query");
            assertEquals(0, flag.get(ValueLayout.JAVA_INT, 0), "growing the ring ran the stream's pending work");
            MemorySegment milliseconds = arena.allocate(ValueLayout.JAVA_FLOAT);
            int untimed = RuntimeBindings.mdt_event_elapsed_ms(afterFill, afterFill, milliseconds);
            assertTrue(untimed != CudaRuntime.SUCCESS, "an untimed event was timed");
            assertArrayEquals(values, cuda.read(large));
            float[] three = new float[64];
            java.util.Arrays.fill(three, 3f);
            assertArrayEquals(three, cuda.read(filled));
            CudaRuntime.check(RuntimeBindings.mdt_event_destroy(afterFill), "mdt_event_destroy");
        } finally {
            EmulatorStreams.restore();
        }
    }

    @Test
    void badStagingSizesAreRefusedWithAClearMessage() {
        IllegalArgumentException tooSmall = assertThrows(IllegalArgumentException.class,
                () -> new HostStaging(MemorySegment.NULL, 16, 4096));
        assertTrue(tooSmall.getMessage().startsWith("staging of 16 growing to 4096 bytes: need 256 <= initial"),
                tooSmall.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new HostStaging(MemorySegment.NULL, 1024, 1000));
        assertThrows(IllegalArgumentException.class, () -> new HostStaging(MemorySegment.NULL, 4096, 1024));
    }
}
