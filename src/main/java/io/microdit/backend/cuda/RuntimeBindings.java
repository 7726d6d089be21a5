package io.microdit.backend.cuda;

import static io.microdit.backend.cuda.Downcalls.handle;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

/**
 * FFM bindings of {@code native/include/microdit.h}'s runtime sections: error strings and the library's kind, devices
 * and versions, streams and events, device memory, page-locked host memory, the launch trace, the self-test kernels and
 * the emulator's controls (block order, threads, architecture, stream mode, last-error injection, performance model),
 * in the header's order; {@link Downcalls} says how they resolve. Public for
 * {@code io.microdit.distributed.DeviceCommunicator}, whose deferred collectives complete on these events.
 */
public final class RuntimeBindings {
    private static final MethodHandle MDT_ERROR_STRING = handle("mdt_error_string");
    private static final MethodHandle MDT_LAST_ERROR_MESSAGE = handle("mdt_last_error_message");
    private static final MethodHandle MDT_LIBRARY_KIND = handle("mdt_library_kind");
    private static final MethodHandle MDT_DEVICE_COUNT = handle("mdt_device_count");
    private static final MethodHandle MDT_DEVICE_NAME = handle("mdt_device_name");
    private static final MethodHandle MDT_DEVICE_SM_COUNT = handle("mdt_device_sm_count");
    private static final MethodHandle MDT_DEVICE_MEMORY = handle("mdt_device_memory");
    private static final MethodHandle MDT_SET_DEVICE = handle("mdt_set_device");
    private static final MethodHandle MDT_DEVICE_SYNCHRONIZE = handle("mdt_device_synchronize");
    private static final MethodHandle MDT_DRIVER_VERSION = handle("mdt_driver_version");
    private static final MethodHandle MDT_RUNTIME_VERSION = handle("mdt_runtime_version");
    private static final MethodHandle MDT_STREAM_CREATE = handle("mdt_stream_create");
    private static final MethodHandle MDT_STREAM_DESTROY = handle("mdt_stream_destroy");
    private static final MethodHandle MDT_STREAM_SYNCHRONIZE = handle("mdt_stream_synchronize");
    private static final MethodHandle MDT_STREAM_WAIT_EVENT = handle("mdt_stream_wait_event");
    private static final MethodHandle MDT_EVENT_CREATE = handle("mdt_event_create");
    private static final MethodHandle MDT_EVENT_CREATE_UNTIMED = handle("mdt_event_create_untimed");
    private static final MethodHandle MDT_EVENT_DESTROY = handle("mdt_event_destroy");
    private static final MethodHandle MDT_EVENT_RECORD = handle("mdt_event_record");
    private static final MethodHandle MDT_EVENT_SYNCHRONIZE = handle("mdt_event_synchronize");
    private static final MethodHandle MDT_EVENT_ELAPSED_MS = handle("mdt_event_elapsed_ms");
    private static final MethodHandle MDT_MALLOC = handle("mdt_malloc");
    private static final MethodHandle MDT_FREE = handle("mdt_free");
    private static final MethodHandle MDT_MEMCPY_HTOD = handle("mdt_memcpy_htod");
    private static final MethodHandle MDT_MEMCPY_DTOH = handle("mdt_memcpy_dtoh");
    private static final MethodHandle MDT_MEMCPY_DTOD = handle("mdt_memcpy_dtod");
    private static final MethodHandle MDT_MEMSET = handle("mdt_memset");
    private static final MethodHandle MDT_HOST_ALLOC = handle("mdt_host_alloc");
    private static final MethodHandle MDT_HOST_FREE = handle("mdt_host_free");
    private static final MethodHandle MDT_EVENT_QUERY = handle("mdt_event_query");
    private static final MethodHandle MDT_TRACE_BEGIN = handle("mdt_trace_begin");
    private static final MethodHandle MDT_TRACE_END = handle("mdt_trace_end");
    private static final MethodHandle MDT_TRACE_COUNT = handle("mdt_trace_count");
    private static final MethodHandle MDT_TRACE_ENTRY = handle("mdt_trace_entry");
    private static final MethodHandle MDT_SELFTEST_RUN = handle("mdt_selftest_run");
    private static final MethodHandle MDT_EMU_BLOCK_ORDER = handle("mdt_emu_block_order");
    private static final MethodHandle MDT_EMU_THREADS = handle("mdt_emu_threads");
    private static final MethodHandle MDT_EMU_ARCHITECTURE = handle("mdt_emu_architecture");
    private static final MethodHandle MDT_EMU_STREAM_MODE = handle("mdt_emu_stream_mode");
    private static final MethodHandle MDT_EMU_INJECT_LAST_ERROR = handle("mdt_emu_inject_last_error");
    private static final MethodHandle MDT_EMU_PERF_BEGIN = handle("mdt_emu_perf_begin");
    private static final MethodHandle MDT_EMU_PERF_END = handle("mdt_emu_perf_end");
    private static final MethodHandle MDT_EMU_PERF_KERNEL = handle("mdt_emu_perf_kernel");

    private RuntimeBindings() {
    }

    public static MemorySegment mdt_error_string(int status) {
        try {
            return (MemorySegment) MDT_ERROR_STRING.invokeExact(status);
        } catch (Throwable error) {
            throw new AssertionError("mdt_error_string threw", error);
        }
    }

    public static MemorySegment mdt_last_error_message() {
        try {
            return (MemorySegment) MDT_LAST_ERROR_MESSAGE.invokeExact();
        } catch (Throwable error) {
            throw new AssertionError("mdt_last_error_message threw", error);
        }
    }

    public static int mdt_library_kind() {
        try {
            return (int) MDT_LIBRARY_KIND.invokeExact();
        } catch (Throwable error) {
            throw new AssertionError("mdt_library_kind threw", error);
        }
    }

    public static int mdt_device_count(MemorySegment count) {
        try {
            return (int) MDT_DEVICE_COUNT.invokeExact(count);
        } catch (Throwable error) {
            throw new AssertionError("mdt_device_count threw", error);
        }
    }

    public static int mdt_device_name(int device, MemorySegment buffer, long capacity) {
        try {
            return (int) MDT_DEVICE_NAME.invokeExact(device, buffer, capacity);
        } catch (Throwable error) {
            throw new AssertionError("mdt_device_name threw", error);
        }
    }

    public static int mdt_device_sm_count(int device, MemorySegment count) {
        try {
            return (int) MDT_DEVICE_SM_COUNT.invokeExact(device, count);
        } catch (Throwable error) {
            throw new AssertionError("mdt_device_sm_count threw", error);
        }
    }

    public static int mdt_device_memory(int device, MemorySegment freeBytes, MemorySegment totalBytes) {
        try {
            return (int) MDT_DEVICE_MEMORY.invokeExact(device, freeBytes, totalBytes);
        } catch (Throwable error) {
            throw new AssertionError("mdt_device_memory threw", error);
        }
    }

    public static int mdt_set_device(int device) {
        try {
            return (int) MDT_SET_DEVICE.invokeExact(device);
        } catch (Throwable error) {
            throw new AssertionError("mdt_set_device threw", error);
        }
    }

    public static int mdt_device_synchronize() {
        try {
            return (int) MDT_DEVICE_SYNCHRONIZE.invokeExact();
        } catch (Throwable error) {
            throw new AssertionError("mdt_device_synchronize threw", error);
        }
    }

    public static int mdt_driver_version(MemorySegment version) {
        try {
            return (int) MDT_DRIVER_VERSION.invokeExact(version);
        } catch (Throwable error) {
            throw new AssertionError("mdt_driver_version threw", error);
        }
    }

    public static int mdt_runtime_version(MemorySegment version) {
        try {
            return (int) MDT_RUNTIME_VERSION.invokeExact(version);
        } catch (Throwable error) {
            throw new AssertionError("mdt_runtime_version threw", error);
        }
    }

    public static int mdt_stream_create(MemorySegment stream) {
        try {
            return (int) MDT_STREAM_CREATE.invokeExact(stream);
        } catch (Throwable error) {
            throw new AssertionError("mdt_stream_create threw", error);
        }
    }

    public static int mdt_stream_destroy(MemorySegment stream) {
        try {
            return (int) MDT_STREAM_DESTROY.invokeExact(stream);
        } catch (Throwable error) {
            throw new AssertionError("mdt_stream_destroy threw", error);
        }
    }

    public static int mdt_stream_synchronize(MemorySegment stream) {
        try {
            return (int) MDT_STREAM_SYNCHRONIZE.invokeExact(stream);
        } catch (Throwable error) {
            throw new AssertionError("mdt_stream_synchronize threw", error);
        }
    }

    public static int mdt_stream_wait_event(MemorySegment stream, MemorySegment event) {
        try {
            return (int) MDT_STREAM_WAIT_EVENT.invokeExact(stream, event);
        } catch (Throwable error) {
            throw new AssertionError("mdt_stream_wait_event threw", error);
        }
    }

    public static int mdt_event_create(MemorySegment event) {
        try {
            return (int) MDT_EVENT_CREATE.invokeExact(event);
        } catch (Throwable error) {
            throw new AssertionError("mdt_event_create threw", error);
        }
    }

    public static int mdt_event_create_untimed(MemorySegment event) {
        try {
            return (int) MDT_EVENT_CREATE_UNTIMED.invokeExact(event);
        } catch (Throwable error) {
            throw new AssertionError("mdt_event_create_untimed threw", error);
        }
    }

    public static int mdt_event_destroy(MemorySegment event) {
        try {
            return (int) MDT_EVENT_DESTROY.invokeExact(event);
        } catch (Throwable error) {
            throw new AssertionError("mdt_event_destroy threw", error);
        }
    }

    public static int mdt_event_record(MemorySegment event, MemorySegment stream) {
        try {
            return (int) MDT_EVENT_RECORD.invokeExact(event, stream);
        } catch (Throwable error) {
            throw new AssertionError("mdt_event_record threw", error);
        }
    }

    public static int mdt_event_synchronize(MemorySegment event) {
        try {
            return (int) MDT_EVENT_SYNCHRONIZE.invokeExact(event);
        } catch (Throwable error) {
            throw new AssertionError("mdt_event_synchronize threw", error);
        }
    }

    public static int mdt_event_elapsed_ms(MemorySegment start, MemorySegment end, MemorySegment milliseconds) {
        try {
            return (int) MDT_EVENT_ELAPSED_MS.invokeExact(start, end, milliseconds);
        } catch (Throwable error) {
            throw new AssertionError("mdt_event_elapsed_ms threw", error);
        }
    }

    public static int mdt_malloc(MemorySegment pointer, long bytes) {
        try {
            return (int) MDT_MALLOC.invokeExact(pointer, bytes);
        } catch (Throwable error) {
            throw new AssertionError("mdt_malloc threw", error);
        }
    }

    public static int mdt_free(MemorySegment pointer) {
        try {
            return (int) MDT_FREE.invokeExact(pointer);
        } catch (Throwable error) {
            throw new AssertionError("mdt_free threw", error);
        }
    }

    public static int mdt_memcpy_htod(MemorySegment deviceTarget, MemorySegment hostSource, long bytes, MemorySegment stream) {
        try {
            return (int) MDT_MEMCPY_HTOD.invokeExact(deviceTarget, hostSource, bytes, stream);
        } catch (Throwable error) {
            throw new AssertionError("mdt_memcpy_htod threw", error);
        }
    }

    public static int mdt_memcpy_dtoh(MemorySegment hostTarget, MemorySegment deviceSource, long bytes, MemorySegment stream) {
        try {
            return (int) MDT_MEMCPY_DTOH.invokeExact(hostTarget, deviceSource, bytes, stream);
        } catch (Throwable error) {
            throw new AssertionError("mdt_memcpy_dtoh threw", error);
        }
    }

    public static int mdt_memcpy_dtod(MemorySegment deviceTarget, MemorySegment deviceSource, long bytes, MemorySegment stream) {
        try {
            return (int) MDT_MEMCPY_DTOD.invokeExact(deviceTarget, deviceSource, bytes, stream);
        } catch (Throwable error) {
            throw new AssertionError("mdt_memcpy_dtod threw", error);
        }
    }

    public static int mdt_memset(MemorySegment deviceTarget, int value, long bytes, MemorySegment stream) {
        try {
            return (int) MDT_MEMSET.invokeExact(deviceTarget, value, bytes, stream);
        } catch (Throwable error) {
            throw new AssertionError("mdt_memset threw", error);
        }
    }

    public static int mdt_host_alloc(MemorySegment pointer, long bytes) {
        try {
            return (int) MDT_HOST_ALLOC.invokeExact(pointer, bytes);
        } catch (Throwable error) {
            throw new AssertionError("mdt_host_alloc threw", error);
        }
    }

    public static int mdt_host_free(MemorySegment pointer) {
        try {
            return (int) MDT_HOST_FREE.invokeExact(pointer);
        } catch (Throwable error) {
            throw new AssertionError("mdt_host_free threw", error);
        }
    }

    public static int mdt_event_query(MemorySegment event, MemorySegment complete) {
        try {
            return (int) MDT_EVENT_QUERY.invokeExact(event, complete);
        } catch (Throwable error) {
            throw new AssertionError("mdt_event_query threw", error);
        }
    }

    public static int mdt_trace_begin(int dryRun) {
        try {
            return (int) MDT_TRACE_BEGIN.invokeExact(dryRun);
        } catch (Throwable error) {
            throw new AssertionError("mdt_trace_begin threw", error);
        }
    }

    public static int mdt_trace_end() {
        try {
            return (int) MDT_TRACE_END.invokeExact();
        } catch (Throwable error) {
            throw new AssertionError("mdt_trace_end threw", error);
        }
    }

    public static int mdt_trace_count(MemorySegment launches) {
        try {
            return (int) MDT_TRACE_COUNT.invokeExact(launches);
        } catch (Throwable error) {
            throw new AssertionError("mdt_trace_count threw", error);
        }
    }

    public static int mdt_trace_entry(long index, MemorySegment kernel, long capacity, MemorySegment shape) {
        try {
            return (int) MDT_TRACE_ENTRY.invokeExact(index, kernel, capacity, shape);
        } catch (Throwable error) {
            throw new AssertionError("mdt_trace_entry threw", error);
        }
    }

    public static int mdt_selftest_run(MemorySegment name, int gridX, int blockX, int sharedBytes, MemorySegment hostOut, long capacity) {
        try {
            return (int) MDT_SELFTEST_RUN.invokeExact(name, gridX, blockX, sharedBytes, hostOut, capacity);
        } catch (Throwable error) {
            throw new AssertionError("mdt_selftest_run threw", error);
        }
    }

    public static int mdt_emu_block_order(int order, long seed) {
        try {
            return (int) MDT_EMU_BLOCK_ORDER.invokeExact(order, seed);
        } catch (Throwable error) {
            throw new AssertionError("mdt_emu_block_order threw", error);
        }
    }

    public static int mdt_emu_threads(int count, MemorySegment inEffect) {
        try {
            return (int) MDT_EMU_THREADS.invokeExact(count, inEffect);
        } catch (Throwable error) {
            throw new AssertionError("mdt_emu_threads threw", error);
        }
    }

    public static int mdt_emu_architecture(int sm) {
        try {
            return (int) MDT_EMU_ARCHITECTURE.invokeExact(sm);
        } catch (Throwable error) {
            throw new AssertionError("mdt_emu_architecture threw", error);
        }
    }

    public static int mdt_emu_stream_mode(int mode) {
        try {
            return (int) MDT_EMU_STREAM_MODE.invokeExact(mode);
        } catch (Throwable error) {
            throw new AssertionError("mdt_emu_stream_mode threw", error);
        }
    }

    public static int mdt_emu_inject_last_error() {
        try {
            return (int) MDT_EMU_INJECT_LAST_ERROR.invokeExact();
        } catch (Throwable error) {
            throw new AssertionError("mdt_emu_inject_last_error threw", error);
        }
    }

    public static int mdt_emu_perf_begin() {
        try {
            return (int) MDT_EMU_PERF_BEGIN.invokeExact();
        } catch (Throwable error) {
            throw new AssertionError("mdt_emu_perf_begin threw", error);
        }
    }

    public static int mdt_emu_perf_end(MemorySegment kernels) {
        try {
            return (int) MDT_EMU_PERF_END.invokeExact(kernels);
        } catch (Throwable error) {
            throw new AssertionError("mdt_emu_perf_end threw", error);
        }
    }

    public static int mdt_emu_perf_kernel(int index, MemorySegment name, long nameCapacity, MemorySegment counts) {
        try {
            return (int) MDT_EMU_PERF_KERNEL.invokeExact(index, name, nameCapacity, counts);
        } catch (Throwable error) {
            throw new AssertionError("mdt_emu_perf_kernel threw", error);
        }
    }
}
