package io.microdit.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.microdit.testing.TestData;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The CUDA runtime's last-error and stream semantics through the C ABI, on streams whose work runs later (a GPU's,
 * and the emulator's deferred mode): an event query that answers "not ready", or any earlier failed call, does not
 * become the next launch's status; work queued on a stream runs only at a synchronisation or query; copies from
 * page-locked memory read it when they run, copies from pageable memory before they return; an event orders two
 * streams; a failed kernel leaves its stream a sticky error.
 */
@Tag("emu")
class CudaStreamSemanticsTest {
    private final Arena arena = Arena.ofConfined();
    private final MemorySegment out = arena.allocate(ValueLayout.ADDRESS);
    private final MemorySegment flag = arena.allocate(ValueLayout.JAVA_INT);
    private MemorySegment stream;

    @BeforeEach
    void deferredStream() {
        EmulatorStreams.set(CudaRuntime.STREAMS_DEFERRED);
        CudaRuntime.check(RuntimeBindings.mdt_stream_create(out), "mdt_stream_create");
        stream = out.get(ValueLayout.ADDRESS, 0);
    }

    @AfterEach
    void release() {
        CudaRuntime.check(RuntimeBindings.mdt_stream_destroy(stream), "mdt_stream_destroy");
        arena.close();
        EmulatorStreams.restore();
    }

    private MemorySegment deviceFloats(long n) {
        CudaRuntime.check(RuntimeBindings.mdt_malloc(out, 4 * n), "mdt_malloc");
        return out.get(ValueLayout.ADDRESS, 0);
    }

    private MemorySegment pinnedFloats(long n) {
        CudaRuntime.check(RuntimeBindings.mdt_host_alloc(out, 4 * n), "mdt_host_alloc");
        return out.get(ValueLayout.ADDRESS, 0).reinterpret(4 * n);
    }

    private MemorySegment event() {
        CudaRuntime.check(RuntimeBindings.mdt_event_create(out), "mdt_event_create");
        return out.get(ValueLayout.ADDRESS, 0);
    }

    private boolean complete(MemorySegment event) {
        CudaRuntime.check(RuntimeBindings.mdt_event_query(event, flag), "mdt_event_query");
        return flag.get(ValueLayout.JAVA_INT, 0) != 0;
    }

    /** Queries until complete (never waiting); returns how many queries answered "not ready". */
    private int poll(MemorySegment event) {
        int notReady = 0;
        while (!complete(event)) {
            notReady++;
            assertTrue(notReady < 1_000_000, "the event never completed");
        }
        return notReady;
    }

    /** The device floats, read into pageable host memory (which waits for the stream's earlier work). */
    private float[] read(MemorySegment device, int n) {
        MemorySegment host = arena.allocate(ValueLayout.JAVA_FLOAT, n);
        CudaRuntime.check(RuntimeBindings.mdt_memcpy_dtoh(host, device, 4L * n, stream), "mdt_memcpy_dtoh");
        CudaRuntime.check(RuntimeBindings.mdt_stream_synchronize(stream), "mdt_stream_synchronize");
        return host.toArray(ValueLayout.JAVA_FLOAT);
    }

    private static float[] filled(int n, float value) {
        float[] values = new float[n];
        Arrays.fill(values, value);
        return values;
    }

    @Test
    void aLaunchAfterANotReadyEventQuerySucceeds() {
        int n = 3001;
        float value = new Random(31).nextFloat() + 0.5f;
        MemorySegment x = deviceFloats(n), done = event();
        try {
            for (int round = 0; round < 3; round++) {
                CudaRuntime.check(ElementwiseBindings.mdt_elementwise_fill(stream, x, value, n),
                        "mdt_elementwise_fill");
                CudaRuntime.check(RuntimeBindings.mdt_event_record(done, stream), "mdt_event_record");
                boolean finished = complete(done);
                if (CudaRuntime.isEmulator()) {
                    assertTrue(!finished, "a deferred stream's fill is still queued at the first query");
                }
                // The query's "not ready" must not be this launch's status.
                int status = ElementwiseBindings.mdt_elementwise_scale(stream, x, 2f, x, n);
                assertEquals(CudaRuntime.SUCCESS, status, () -> CudaRuntime.describe(status));
                assertArrayEquals(filled(n, 2 * value), read(x, n), "round " + round);
            }
        } finally {
            RuntimeBindings.mdt_event_destroy(done);
            RuntimeBindings.mdt_free(x);
        }
    }

    @Test
    void anEarlierFailedCallDoesNotFailTheNextLaunch() {
        assumeTrue(CudaRuntime.isEmulator(), "the injected error is an emulator hook");
        int n = 257;
        MemorySegment x = deviceFloats(n);
        try {
            CudaRuntime.check(RuntimeBindings.mdt_emu_inject_last_error(), "mdt_emu_inject_last_error");
            int status = ElementwiseBindings.mdt_elementwise_fill(stream, x, 1.5f, n);
            assertEquals(CudaRuntime.SUCCESS, status, () -> CudaRuntime.describe(status));

            int refused = RuntimeBindings.mdt_malloc(out, Long.MAX_VALUE / 2);
            assertEquals(CudaRuntime.ERROR_OUT_OF_MEMORY, refused, () -> CudaRuntime.describe(refused));
            int next = ElementwiseBindings.mdt_elementwise_scale(stream, x, 3f, x, n);
            assertEquals(CudaRuntime.SUCCESS, next, () -> CudaRuntime.describe(next));
            assertArrayEquals(filled(n, 4.5f), read(x, n));
        } finally {
            RuntimeBindings.mdt_free(x);
        }
    }

    @Test
    void aPinnedUploadReadsTheBufferWhenItRunsAndPageableOnesBeforeTheyReturn() {
        assumeTrue(CudaRuntime.isEmulator(), "on a GPU whether the copy ran before the host write is a race");
        int n = 777;
        Random random = new Random(32);
        float[] first = TestData.uniform(random, n), second = TestData.uniform(random, n);
        MemorySegment x = deviceFloats(n), pinned = pinnedFloats(n), copied = event();
        try {
            // Reused before its copy's event completed: the device gets what the buffer holds when the copy runs.
            MemorySegment.copy(first, 0, pinned, ValueLayout.JAVA_FLOAT, 0, n);
            CudaRuntime.check(RuntimeBindings.mdt_memcpy_htod(x, pinned, 4L * n, stream), "mdt_memcpy_htod");
            MemorySegment.copy(second, 0, pinned, ValueLayout.JAVA_FLOAT, 0, n);
            assertArrayEquals(second, read(x, n), "the copy ran after the host overwrote its source");

            // Reused only once the event completed (HostStaging's rule): the device keeps the first values.
            MemorySegment.copy(first, 0, pinned, ValueLayout.JAVA_FLOAT, 0, n);
            CudaRuntime.check(RuntimeBindings.mdt_memcpy_htod(x, pinned, 4L * n, stream), "mdt_memcpy_htod");
            CudaRuntime.check(RuntimeBindings.mdt_event_record(copied, stream), "mdt_event_record");
            assertTrue(poll(copied) > 0, "the copy was pending at the first query");
            MemorySegment.copy(second, 0, pinned, ValueLayout.JAVA_FLOAT, 0, n);
            assertArrayEquals(first, read(x, n), "the copy read the buffer before it was reused");

            // Pageable memory is staged before the call returns: writing it at once changes nothing.
            MemorySegment pageable = arena.allocate(ValueLayout.JAVA_FLOAT, n);
            MemorySegment.copy(second, 0, pageable, ValueLayout.JAVA_FLOAT, 0, n);
            CudaRuntime.check(RuntimeBindings.mdt_memcpy_htod(x, pageable, 4L * n, stream), "mdt_memcpy_htod");
            MemorySegment.copy(first, 0, pageable, ValueLayout.JAVA_FLOAT, 0, n);
            assertArrayEquals(second, read(x, n), "a pageable upload kept the values of its call");
        } finally {
            RuntimeBindings.mdt_event_destroy(copied);
            RuntimeBindings.mdt_host_free(pinned);
            RuntimeBindings.mdt_free(x);
        }
    }

    @Test
    void deferredWorkRunsAtAQueryOrSynchronisationAndImmediateWorkAtOnce() {
        assumeTrue(CudaRuntime.isEmulator(), "stream modes are the emulator's");
        int n = 64;
        MemorySegment x = deviceFloats(n), done = event(), start = event();
        MemorySegment pinned = pinnedFloats(n);
        pinned.fill((byte) 0);
        try {
            CudaRuntime.check(RuntimeBindings.mdt_event_record(start, stream), "mdt_event_record");
            CudaRuntime.check(ElementwiseBindings.mdt_elementwise_fill(stream, x, 7f, n), "mdt_elementwise_fill");
            CudaRuntime.check(RuntimeBindings.mdt_memcpy_dtoh(pinned, x, 4L * n, stream), "mdt_memcpy_dtoh");
            CudaRuntime.check(RuntimeBindings.mdt_event_record(done, stream), "mdt_event_record");
            assertEquals(0f, pinned.get(ValueLayout.JAVA_FLOAT, 0), "nothing ran before the query");
            assertTrue(!complete(done), "not ready at the first query");
            assertTrue(complete(done), "the query ran the pending work, so polling makes progress");
            assertArrayEquals(filled(n, 7f), pinned.toArray(ValueLayout.JAVA_FLOAT));
            MemorySegment milliseconds = arena.allocate(ValueLayout.JAVA_FLOAT);
            CudaRuntime.check(RuntimeBindings.mdt_event_elapsed_ms(start, done, milliseconds), "mdt_event_elapsed_ms");
            assertTrue(milliseconds.get(ValueLayout.JAVA_FLOAT, 0) >= 0f);

            CudaRuntime.streamMode(CudaRuntime.STREAMS_IMMEDIATE);
            CudaRuntime.check(ElementwiseBindings.mdt_elementwise_fill(stream, x, 9f, n), "mdt_elementwise_fill");
            CudaRuntime.check(RuntimeBindings.mdt_memcpy_dtoh(pinned, x, 4L * n, stream), "mdt_memcpy_dtoh");
            CudaRuntime.check(RuntimeBindings.mdt_event_record(done, stream), "mdt_event_record");
            assertArrayEquals(filled(n, 9f), pinned.toArray(ValueLayout.JAVA_FLOAT), "ran before the calls returned");
            assertTrue(complete(done), "complete at the first query");
        } finally {
            RuntimeBindings.mdt_event_destroy(start);
            RuntimeBindings.mdt_event_destroy(done);
            RuntimeBindings.mdt_host_free(pinned);
            RuntimeBindings.mdt_free(x);
        }
    }

    @Test
    void anEventOrdersWorkAcrossStreams() {
        int n = 513;
        CudaRuntime.check(RuntimeBindings.mdt_stream_create(out), "mdt_stream_create");
        MemorySegment other = out.get(ValueLayout.ADDRESS, 0);
        MemorySegment x = deviceFloats(n), y = deviceFloats(n), filledX = event();
        try {
            CudaRuntime.check(ElementwiseBindings.mdt_elementwise_fill(stream, y, Float.NaN, n),
                    "mdt_elementwise_fill");
            CudaRuntime.check(ElementwiseBindings.mdt_elementwise_fill(other, x, 3f, n), "mdt_elementwise_fill");
            CudaRuntime.check(RuntimeBindings.mdt_event_record(filledX, other), "mdt_event_record");
            CudaRuntime.check(RuntimeBindings.mdt_stream_wait_event(stream, filledX), "mdt_stream_wait_event");
            CudaRuntime.check(ElementwiseBindings.mdt_elementwise_scale(stream, x, 2f, y, n), "mdt_elementwise_scale");
            assertArrayEquals(filled(n, 6f), read(y, n), "the scale ran after the other stream's fill");
        } finally {
            RuntimeBindings.mdt_event_destroy(filledX);
            RuntimeBindings.mdt_stream_destroy(other);
            RuntimeBindings.mdt_free(x);
            RuntimeBindings.mdt_free(y);
        }
    }

    @Test
    void aFailedDeferredKernelIsTheStreamsStickyError() {
        assumeTrue(CudaRuntime.isEmulator(), "a deadlocking kernel only runs on the emulator");
        MemorySegment host = arena.allocate(ValueLayout.JAVA_FLOAT, 128);
        // The self-test launches on the default stream and reads its output back, which runs the kernel.
        int status = RuntimeBindings.mdt_selftest_run(arena.allocateFrom("deadlock"), 1, 32, 0, host, 32);
        assertEquals(CudaRuntime.ERROR_DEADLOCK, status, () -> CudaRuntime.describe(status));
        int after = RuntimeBindings.mdt_selftest_run(arena.allocateFrom("barrier"), 1, 64, 256, host, 128);
        assertEquals(CudaRuntime.ERROR_DEADLOCK, after, "a good kernel on the failed stream still reports the failure");
        String message = CudaRuntime.describe(after);
        assertTrue(message.contains("deadlock_kernel") && message.contains("deadlocked"), message);

        CudaRuntime.streamMode(CudaRuntime.STREAMS_DEFERRED); // a fresh start
        int fresh = RuntimeBindings.mdt_selftest_run(arena.allocateFrom("barrier"), 1, 64, 256, host, 128);
        assertEquals(CudaRuntime.SUCCESS, fresh, () -> CudaRuntime.describe(fresh));
    }
}
