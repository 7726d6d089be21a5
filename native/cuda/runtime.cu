// The C ABI's runtime half: thin wrappers over the CUDA runtime, each CUDA error turned into a status with the
// runtime's own message. nvcc builds it against the real runtime (linked statically) for libmicrodit_cuda.so, g++
// against the emulated one (native/emu/cuda_runtime.h) for libmicrodit_emu.so, so the emulator tests this code.
// Without a driver or a device, cudaGetDeviceCount fails and every call reports MDT_ERROR_NO_DEVICE instead of
// aborting; with a driver older than the runtime linked in, MDT_ERROR_DRIVER_TOO_OLD.
#include <cuda_runtime.h>

#include <cstdio>

#include "microdit.h"
#include "status.h"

namespace {
int check(cudaError_t error, const char *call) {
    if (error == cudaSuccess) return MDT_SUCCESS;
    cudaGetLastError();  // clears a sticky-free error so the next call starts clean
    int status = MDT_ERROR_RUNTIME;
    if (error == cudaErrorInsufficientDriver) {
        // The runtime reports a missing driver the same way as an old one; only the driver's version tells them
        // apart, and a user needs to know which (install one, or update it).
        int driver = 0, runtime = 0;
        cudaDriverGetVersion(&driver);
        cudaRuntimeGetVersion(&runtime);
        if (driver == 0) {
            return mdt::fail(MDT_ERROR_NO_DEVICE, "%s: no NVIDIA driver is installed (%s)", call,
                             cudaGetErrorName(error));
        }
        return mdt::fail(MDT_ERROR_DRIVER_TOO_OLD,
                         "%s: the NVIDIA driver supports CUDA %d.%d, the runtime linked in is CUDA %d.%d (%s)", call,
                         driver / 1000, driver % 1000 / 10, runtime / 1000, runtime % 1000 / 10,
                         cudaGetErrorName(error));
    }
    if (error == cudaErrorNoDevice || error == cudaErrorInvalidDevice || error == cudaErrorInitializationError) {
        status = MDT_ERROR_NO_DEVICE;
    } else if (error == cudaErrorMemoryAllocation) {
        status = MDT_ERROR_OUT_OF_MEMORY;
    } else if (error == cudaErrorInvalidConfiguration) {
        status = MDT_ERROR_LAUNCH_SHAPE;
    } else if (error == cudaErrorIllegalAddress) {
        status = MDT_ERROR_OUT_OF_BOUNDS;
#ifndef __CUDACC__
    } else if (error == cudaErrorEmulatedRace) {
        status = MDT_ERROR_RACE;
#endif
    } else if (error == cudaErrorLaunchOutOfResources) {
        // More than an SM holds for one block: our kernels' registers are bounded (launch bounds, no spills), so
        // shared memory (static + dynamic) is what ran out.
        status = MDT_ERROR_SHARED_MEMORY;
    } else if (error == cudaErrorInvalidValue) {
        status = MDT_ERROR_INVALID_ARGUMENT;
    } else if (error == cudaErrorLaunchTimeout) {
        status = MDT_ERROR_DEADLOCK;  // a kernel that never finished (the emulator's deadlock, a GPU's watchdog)
    }
    return mdt::fail(status, "%s: %s (%s)", call, cudaGetErrorString(error), cudaGetErrorName(error));
}
cudaStream_t raw(mdt_stream_t stream) { return reinterpret_cast<cudaStream_t>(stream); }
cudaEvent_t raw(mdt_event_t event) { return reinterpret_cast<cudaEvent_t>(event); }
}  // namespace

extern "C" {

#ifdef __CUDACC__
int mdt_library_kind(void) { return MDT_KIND_CUDA; }
#endif

int mdt_device_count(int *count) {
    if (!count) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_device_count: count is NULL");
    *count = 0;
    cudaError_t error = cudaGetDeviceCount(count);
    if (error != cudaSuccess) {
        *count = 0;
        return check(error, "cudaGetDeviceCount");
    }
    return *count > 0 ? MDT_SUCCESS : mdt::fail(MDT_ERROR_NO_DEVICE, "cudaGetDeviceCount: no CUDA device");
}

int mdt_device_name(int device, char *buffer, size_t capacity) {
    if (!buffer || capacity == 0) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_device_name: no buffer");
    cudaDeviceProp properties;
    if (int s = check(cudaGetDeviceProperties(&properties, device), "cudaGetDeviceProperties")) return s;
    std::snprintf(buffer, capacity, "%s", properties.name);
    return MDT_SUCCESS;
}

int mdt_device_sm_count(int device, int *count) {
    if (!count) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_device_sm_count: count is NULL");
    return check(cudaDeviceGetAttribute(count, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute");
}

int mdt_device_memory(int device, size_t *free_bytes, size_t *total_bytes) {
    if (!free_bytes || !total_bytes) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_device_memory: NULL output");
    if (int s = check(cudaSetDevice(device), "cudaSetDevice")) return s;
    return check(cudaMemGetInfo(free_bytes, total_bytes), "cudaMemGetInfo");
}

int mdt_set_device(int device) { return check(cudaSetDevice(device), "cudaSetDevice"); }
int mdt_device_synchronize(void) { return check(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }

int mdt_stream_create(mdt_stream_t *stream) {
    if (!stream) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_stream_create: stream is NULL");
    cudaStream_t created;
    if (int s = check(cudaStreamCreateWithFlags(&created, cudaStreamNonBlocking), "cudaStreamCreate")) return s;
    *stream = reinterpret_cast<mdt_stream_t>(created);
    return MDT_SUCCESS;
}
int mdt_stream_destroy(mdt_stream_t stream) { return check(cudaStreamDestroy(raw(stream)), "cudaStreamDestroy"); }
int mdt_stream_synchronize(mdt_stream_t stream) {
    return check(cudaStreamSynchronize(raw(stream)), "cudaStreamSynchronize");
}
int mdt_stream_wait_event(mdt_stream_t stream, mdt_event_t event) {
    if (!event) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_stream_wait_event: event is NULL");
    return check(cudaStreamWaitEvent(raw(stream), raw(event), 0), "cudaStreamWaitEvent");
}

int mdt_event_create(mdt_event_t *event) {
    if (!event) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_event_create: event is NULL");
    cudaEvent_t created;
    if (int s = check(cudaEventCreate(&created), "cudaEventCreate")) return s;
    *event = reinterpret_cast<mdt_event_t>(created);
    return MDT_SUCCESS;
}
int mdt_event_create_untimed(mdt_event_t *event) {
    if (!event) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_event_create_untimed: event is NULL");
    cudaEvent_t created;
    if (int s = check(cudaEventCreateWithFlags(&created, cudaEventDisableTiming), "cudaEventCreateWithFlags")) {
        return s;
    }
    *event = reinterpret_cast<mdt_event_t>(created);
    return MDT_SUCCESS;
}
int mdt_event_destroy(mdt_event_t event) { return check(cudaEventDestroy(raw(event)), "cudaEventDestroy"); }
int mdt_event_record(mdt_event_t event, mdt_stream_t stream) {
    if (!event) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_event_record: event is NULL");
    return check(cudaEventRecord(raw(event), raw(stream)), "cudaEventRecord");
}
int mdt_event_synchronize(mdt_event_t event) {
    if (!event) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_event_synchronize: event is NULL");
    return check(cudaEventSynchronize(raw(event)), "cudaEventSynchronize");
}
int mdt_event_elapsed_ms(mdt_event_t start, mdt_event_t end, float *milliseconds) {
    if (!start || !end || !milliseconds) {
        return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_event_elapsed_ms: NULL argument");
    }
    return check(cudaEventElapsedTime(milliseconds, raw(start), raw(end)), "cudaEventElapsedTime");
}

int mdt_malloc(void **pointer, size_t bytes) {
    if (!pointer) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_malloc: pointer is NULL");
    return check(cudaMalloc(pointer, bytes == 0 ? 1 : bytes), "cudaMalloc");
}
int mdt_free(void *pointer) { return check(cudaFree(pointer), "cudaFree"); }

int mdt_memcpy_htod(void *t, const void *s, size_t bytes, mdt_stream_t stream) {
    if (bytes == 0) return MDT_SUCCESS;
    return check(cudaMemcpyAsync(t, s, bytes, cudaMemcpyHostToDevice, raw(stream)), "mdt_memcpy_htod");
}
int mdt_memcpy_dtoh(void *t, const void *s, size_t bytes, mdt_stream_t stream) {
    if (bytes == 0) return MDT_SUCCESS;
    return check(cudaMemcpyAsync(t, s, bytes, cudaMemcpyDeviceToHost, raw(stream)), "mdt_memcpy_dtoh");
}
int mdt_memcpy_dtod(void *t, const void *s, size_t bytes, mdt_stream_t stream) {
    if (bytes == 0) return MDT_SUCCESS;
    return check(cudaMemcpyAsync(t, s, bytes, cudaMemcpyDeviceToDevice, raw(stream)), "mdt_memcpy_dtod");
}
int mdt_memset(void *target, int value, size_t bytes, mdt_stream_t stream) {
    if (bytes == 0) return MDT_SUCCESS;
    return check(cudaMemsetAsync(target, value, bytes, raw(stream)), "mdt_memset");
}

int mdt_host_alloc(void **pointer, size_t bytes) {
    if (!pointer) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_host_alloc: pointer is NULL");
    return check(cudaMallocHost(pointer, bytes == 0 ? 1 : bytes), "cudaMallocHost");
}
int mdt_host_free(void *pointer) { return check(cudaFreeHost(pointer), "cudaFreeHost"); }
int mdt_event_query(mdt_event_t event, int *complete) {
    if (!event || !complete) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_event_query: NULL argument");
    cudaError_t error = cudaEventQuery(raw(event));
    *complete = error == cudaSuccess;
    if (error != cudaErrorNotReady) return check(error, "cudaEventQuery");
    cudaGetLastError();  // "not ready" is an answer, not a failure: left as the last error, it fails the next launch
    return MDT_SUCCESS;
}

int mdt_driver_version(int *version) {
    if (!version) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_driver_version: version is NULL");
    *version = 0;  // CUDA leaves it unset without a driver; 0 is its "no driver"
    return check(cudaDriverGetVersion(version), "cudaDriverGetVersion");
}

int mdt_runtime_version(int *version) {
    if (!version) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_runtime_version: version is NULL");
    return check(cudaRuntimeGetVersion(version), "cudaRuntimeGetVersion");
}

// The emulator's settings; the emulator defines its own versions (native/emu).
#ifdef __CUDACC__
int mdt_emu_block_order(int order, uint64_t) {
    if (order == MDT_BLOCK_ORDER_FORWARD) return MDT_SUCCESS;
    return mdt::fail(MDT_ERROR_INVALID_ARGUMENT,
                     "mdt_emu_block_order: order %d is an emulator setting; on a GPU the block order is a property of "
                     "the hardware (only MDT_BLOCK_ORDER_FORWARD, a no-op, is accepted)",
                     order);
}

int mdt_emu_threads(int count, int *) {
    return mdt::fail(MDT_ERROR_INVALID_ARGUMENT,
                     "mdt_emu_threads: %d threads is an emulator setting; a GPU runs blocks on its own", count);
}

// The performance model counts what the checked emulator sees; on a GPU the profiler (ncu) measures the real thing.
static int emulator_tool(const char *function) {
    return mdt::fail(MDT_ERROR_INVALID_ARGUMENT,
                     "%s: the performance model is an emulator tool (libmicrodit_emu_checked.so, "
                     "-Dmicrodit.device=emu-checked); on a GPU use Nsight Compute",
                     function);
}
int mdt_emu_perf_begin(void) { return emulator_tool("mdt_emu_perf_begin"); }
int mdt_emu_perf_end(int *) { return emulator_tool("mdt_emu_perf_end"); }
int mdt_emu_perf_kernel(int, char *, int64_t, int64_t *) { return emulator_tool("mdt_emu_perf_kernel"); }

int mdt_emu_stream_mode(int mode) {
    if (mode == MDT_STREAMS_DEFERRED) return MDT_SUCCESS;
    return mdt::fail(MDT_ERROR_INVALID_ARGUMENT,
                     "mdt_emu_stream_mode: mode %d is an emulator setting; a GPU's streams are deferred (only "
                     "MDT_STREAMS_DEFERRED, a no-op, is accepted)",
                     mode);
}

int mdt_emu_inject_last_error(void) {
    return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_emu_inject_last_error: a test hook of the emulator only");
}
#endif

}  // extern "C"

namespace mdt {
// A launch's status is the runtime's last error after it, so an earlier call's error must not still be there.
void clear_launch_error() { cudaGetLastError(); }
int launch_status(const char *kernel) { return check(cudaGetLastError(), kernel); }
}  // namespace mdt
