// The emulated CUDA runtime (cuda_runtime.h): one device backed by host memory, CUDA's per-thread last error, and
// streams that either complete every call at once or defer their work to a later synchronisation, as a GPU does.
// Deferred work runs under one process-wide lock, on the thread that synchronises (a kernel's blocks on it and the
// emulator's worker threads, emulator.cpp): the emulator runs one stream's work at a time, which is one of the
// interleavings a GPU may produce, in each stream's order.
// Also the emulator-only parts of the C ABI: mdt_library_kind, mdt_emu_stream_mode, mdt_emu_inject_last_error.
#include "cuda_runtime.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "microdit.h"
#include "status.h"
#include "trace.h"

namespace {

constexpr size_t kAlignment = 256;  // cudaMalloc's alignment
constexpr size_t kPretendMemory = size_t{16} << 30;
constexpr int kVersion = 13000;

// ---------------------------------------------------------------- last error

struct LastError {
    cudaError_t code = cudaSuccess;
    // What the emulator found for the thread's latest error of detail_code (cudaGetErrorString appends it).
    cudaError_t detail_code = cudaSuccess;
    std::string detail;
    std::string text;  // cudaGetErrorString's buffer
};
thread_local LastError last_error;

/** Records a failing call's error as CUDA does; {@code detail} says what the emulator found. */
cudaError_t set_error(cudaError_t error, const std::string &detail = std::string()) {
    if (error == cudaSuccess) return error;
    last_error.code = error;
    last_error.detail_code = error;
    last_error.detail = detail;
    return error;
}

/** An MDT status from the emulator (its message in mdt_last_error_message) as the CUDA error a GPU would give. */
cudaError_t from_status(int status) {
    switch (status) {
        case MDT_SUCCESS: return cudaSuccess;
        case MDT_ERROR_INVALID_ARGUMENT: return cudaErrorInvalidValue;
        case MDT_ERROR_OUT_OF_MEMORY: return cudaErrorMemoryAllocation;
        case MDT_ERROR_LAUNCH_SHAPE: return cudaErrorInvalidConfiguration;
        // A block whose static arrays take it over the limit (found as it runs; on a GPU, ptxas's count makes the
        // launch fail with this error before anything runs).
        case MDT_ERROR_SHARED_MEMORY: return cudaErrorLaunchOutOfResources;
        case MDT_ERROR_DEADLOCK: return cudaErrorLaunchTimeout;      // a GPU hangs until its watchdog ends it
        case MDT_ERROR_OUT_OF_BOUNDS: return cudaErrorIllegalAddress;  // what a GPU reports, when it notices
        case MDT_ERROR_RACE: return cudaErrorEmulatedRace;
        default: return cudaErrorLaunchFailure;
    }
}

const char *name_of(cudaError_t error) {
    switch (error) {
        case cudaSuccess: return "cudaSuccess";
        case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
        case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
        case cudaErrorInitializationError: return "cudaErrorInitializationError";
        case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
        case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
        case cudaErrorNoDevice: return "cudaErrorNoDevice";
        case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
        case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
        case cudaErrorNotReady: return "cudaErrorNotReady";
        case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
        case cudaErrorEmulatedRace: return "cudaErrorEmulatedRace";
        case cudaErrorLaunchOutOfResources: return "cudaErrorLaunchOutOfResources";
        case cudaErrorLaunchTimeout: return "cudaErrorLaunchTimeout";
        case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
        case cudaErrorNotSupported: return "cudaErrorNotSupported";
    }
    return "cudaErrorUnknown";
}

const char *text_of(cudaError_t error) {
    switch (error) {
        case cudaSuccess: return "no error";
        case cudaErrorInvalidValue: return "invalid argument";
        case cudaErrorMemoryAllocation: return "out of memory";
        case cudaErrorInitializationError: return "initialization error";
        case cudaErrorInvalidConfiguration: return "invalid configuration argument";
        case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient for CUDA runtime version";
        case cudaErrorNoDevice: return "no CUDA-capable device is detected";
        case cudaErrorInvalidDevice: return "invalid device ordinal";
        case cudaErrorInvalidResourceHandle: return "invalid resource handle";
        case cudaErrorNotReady: return "device not ready";
        case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
        case cudaErrorEmulatedRace: return "a data race (checked emulator)";
        case cudaErrorLaunchOutOfResources: return "too many resources requested for launch";
        case cudaErrorLaunchTimeout: return "the launch timed out and was terminated";
        case cudaErrorLaunchFailure: return "unspecified launch failure";
        case cudaErrorNotSupported: return "operation not supported";
    }
    return "unrecognized error code";
}

// ---------------------------------------------------------------- stream mode

std::atomic<int> stream_mode{MDT_STREAMS_IMMEDIATE};
// A malformed MDT_EMU_STREAMS fails every launch (a typo must not quietly test the other mode) until
// mdt_emu_stream_mode sets a mode; the message is written once, at load, before any launch can read it.
std::atomic<bool> stream_mode_invalid{false};
char stream_mode_message[256];

/** Reads MDT_EMU_STREAMS=deferred|immediate when the library loads. */
struct StreamModeFromEnvironment {
    StreamModeFromEnvironment() {
        const char *value = std::getenv("MDT_EMU_STREAMS");
        if (!value || !*value) return;
        if (std::strcmp(value, "deferred") == 0) {
            stream_mode = MDT_STREAMS_DEFERRED;
        } else if (std::strcmp(value, "immediate") == 0) {
            stream_mode = MDT_STREAMS_IMMEDIATE;
        } else {
            std::snprintf(stream_mode_message, sizeof(stream_mode_message),
                          "MDT_EMU_STREAMS='%.100s' is not deferred or immediate", value);
            stream_mode_invalid = true;
        }
    }
} stream_mode_from_environment;

/** Whether work queues on its stream now. A dry run (trace.h) runs nothing and writes no device memory: at once. */
bool deferred() { return stream_mode == MDT_STREAMS_DEFERRED && !mdt::dry_run(); }

// ---------------------------------------------------------------- page-locked host memory

std::mutex pinned_mutex;
std::map<const unsigned char *, size_t> pinned;  // cudaMallocHost blocks: start → bytes

bool is_pinned(const void *pointer) {
    const unsigned char *p = static_cast<const unsigned char *>(pointer);
    std::lock_guard<std::mutex> lock(pinned_mutex);
    auto after = pinned.upper_bound(p);
    if (after == pinned.begin()) return false;
    auto block = std::prev(after);
    return p < block->first + block->second;
}

}  // namespace

// ---------------------------------------------------------------- streams and events

/** Deferred work: returns an MDT status (its message in mdt_last_error_message when it fails). */
using Work = std::function<int()>;

struct CUstream_st {
    std::deque<Work> queue;
    uint64_t submitted = 0;  // work items queued so far (event records included)
    uint64_t completed = 0;  // of which have run
    cudaError_t sticky = cudaSuccess;
    std::string sticky_detail;
};

/** When an event's record item ran; shared with the item, which may outlive a re-record or the event. */
struct EventTime {
    std::chrono::steady_clock::time_point time;
};

struct CUevent_st {
    CUstream_st *stream = nullptr;  // while recorded work may be pending: the stream and its item's number
    uint64_t sequence = 0;
    std::shared_ptr<EventTime> time;  // null until the first record
    bool timed = true;
};

namespace {

// Guards every stream, event and queue, and is held while deferred work runs (recursive: a pageable copy drains its
// stream while enqueuing).
std::recursive_mutex streams_mutex;
CUstream_st default_stream;
std::vector<CUstream_st *> streams{&default_stream};
std::set<CUevent_st *> events;

CUstream_st *resolve(cudaStream_t stream) { return stream ? stream : &default_stream; }

cudaError_t sticky_error(CUstream_st *stream) { return set_error(stream->sticky, stream->sticky_detail); }

/** Runs {@code stream}'s queued work up to item {@code until} (all of it by default); its sticky error if any. */
cudaError_t drain(CUstream_st *stream, uint64_t until = UINT64_MAX) {
    std::lock_guard<std::recursive_mutex> lock(streams_mutex);
    while (stream->sticky == cudaSuccess && stream->completed < until && !stream->queue.empty()) {
        Work work = std::move(stream->queue.front());
        stream->queue.pop_front();
        int status = work();
        stream->completed++;
        if (status != MDT_SUCCESS) {
            // As on a GPU: the failure surfaces at the next synchronisation, and the stream's later work never runs.
            stream->sticky = from_status(status);
            stream->sticky_detail = mdt_last_error_message();
            stream->queue.clear();
        }
    }
    return stream->sticky == cudaSuccess ? cudaSuccess : sticky_error(stream);
}

cudaError_t drain_all() {
    std::lock_guard<std::recursive_mutex> lock(streams_mutex);
    cudaError_t first = cudaSuccess;
    for (CUstream_st *stream : streams) {
        cudaError_t error = drain(stream);
        if (first == cudaSuccess) first = error;
    }
    return first;
}

/** Runs {@code work} now (immediate streams: its failure is the call's error) or queues it on {@code stream}. */
cudaError_t submit(cudaStream_t stream, Work work) {
    if (!deferred()) {
        int status = work();
        return status == MDT_SUCCESS ? cudaSuccess : set_error(from_status(status), mdt_last_error_message());
    }
    std::lock_guard<std::recursive_mutex> lock(streams_mutex);
    CUstream_st *target = resolve(stream);
    if (target->sticky != cudaSuccess) return sticky_error(target);
    target->queue.push_back(std::move(work));
    target->submitted++;
    return cudaSuccess;
}

bool pending(const CUevent_st *event) { return event->stream && event->stream->completed < event->sequence; }

/** Runs the work recorded before {@code event}; the error of its stream if that failed. */
cudaError_t finish(CUevent_st *event) {
    if (!event->stream) return cudaSuccess;
    cudaError_t error = drain(event->stream, event->sequence);
    if (!pending(event)) event->stream = nullptr;
    return error;
}

/** Copies as a GPU would, except in a dry run: device writes skipped, host reads zeros (trace.h). */
int copy_now(void *target, const void *source, size_t bytes, cudaMemcpyKind kind) {
    if (!mdt::dry_run()) {
        std::memmove(target, source, bytes);
    } else if (kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyHostToHost) {
        std::memset(target, 0, bytes);
    }
    return MDT_SUCCESS;
}

cudaError_t invalid(const char *format, const char *what) {
    char message[256];
    std::snprintf(message, sizeof(message), format, what);
    return set_error(cudaErrorInvalidValue, message);
}

}  // namespace

extern "C" {

cudaError_t cudaGetLastError(void) {
    cudaError_t error = last_error.code;
    last_error.code = cudaSuccess;
    return error;
}

cudaError_t cudaPeekAtLastError(void) { return last_error.code; }

const char *cudaGetErrorString(cudaError_t error) {
    if (error == cudaSuccess || error != last_error.detail_code || last_error.detail.empty()) return text_of(error);
    last_error.text = std::string(text_of(error)) + ": " + last_error.detail;
    return last_error.text.c_str();
}

const char *cudaGetErrorName(cudaError_t error) { return name_of(error); }

cudaError_t cudaDriverGetVersion(int *version) {
    if (!version) return invalid("%s: version is NULL", "cudaDriverGetVersion");
    *version = kVersion;
    return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int *version) {
    if (!version) return invalid("%s: version is NULL", "cudaRuntimeGetVersion");
    *version = kVersion;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceCount(int *count) {
    if (!count) return invalid("%s: count is NULL", "cudaGetDeviceCount");
    *count = 1;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
    return device == 0 ? cudaSuccess
                       : set_error(cudaErrorInvalidDevice,
                                   "device " + std::to_string(device) + " does not exist (the emulator has device 0)");
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *properties, int device) {
    if (!properties) return invalid("%s: properties is NULL", "cudaGetDeviceProperties");
    if (cudaError_t error = cudaSetDevice(device)) return error;
    *properties = cudaDeviceProp();
    std::snprintf(properties->name, sizeof(properties->name), "%s", "microdit host emulator");
    properties->totalGlobalMem = kPretendMemory;
    properties->sharedMemPerBlock = mdt_emu::kMaxSharedBytes;
    properties->sharedMemPerBlockOptin = mdt_emu::kMaxSharedBytes;
    properties->maxThreadsPerBlock = mdt_emu::kMaxThreadsPerBlock;
    properties->multiProcessorCount = 1;
    properties->major = 9;
    properties->minor = 0;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attribute, int device) {
    if (!value) return invalid("%s: value is NULL", "cudaDeviceGetAttribute");
    cudaDeviceProp properties;
    if (cudaError_t error = cudaGetDeviceProperties(&properties, device)) return error;
    switch (attribute) {
        case cudaDevAttrMaxThreadsPerBlock: *value = properties.maxThreadsPerBlock; break;
        case cudaDevAttrMaxSharedMemoryPerBlock: *value = static_cast<int>(properties.sharedMemPerBlock); break;
        case cudaDevAttrMultiProcessorCount: *value = properties.multiProcessorCount; break;
        case cudaDevAttrComputeCapabilityMajor: *value = properties.major; break;
        case cudaDevAttrComputeCapabilityMinor: *value = properties.minor; break;
        case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = static_cast<int>(properties.sharedMemPerBlockOptin); break;
        default: return set_error(cudaErrorInvalidValue, "attribute " + std::to_string(attribute) + " is not emulated");
    }
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes) {
    if (!free_bytes || !total_bytes) return invalid("%s: NULL output", "cudaMemGetInfo");
    *free_bytes = kPretendMemory;
    *total_bytes = kPretendMemory;
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) { return drain_all(); }

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags) {
    if (!stream) return invalid("%s: stream is NULL", "cudaStreamCreateWithFlags");
    // A blocking stream would wait for the legacy default stream; microdit creates only non-blocking ones.
    if (flags != cudaStreamNonBlocking) {
        return set_error(cudaErrorNotSupported, "the emulator has only cudaStreamNonBlocking streams");
    }
    std::lock_guard<std::recursive_mutex> lock(streams_mutex);
    *stream = new CUstream_st();
    streams.push_back(*stream);
    return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
    if (!stream) return invalid("%s: the default stream cannot be destroyed", "cudaStreamDestroy");
    std::lock_guard<std::recursive_mutex> lock(streams_mutex);
    auto it = std::find(streams.begin(), streams.end(), stream);
    if (it == streams.end()) return set_error(cudaErrorInvalidResourceHandle, "cudaStreamDestroy: not a live stream");
    drain(stream);  // CUDA lets the stream's work finish; a sticky error dies with the stream
    for (CUevent_st *event : events) {
        if (event->stream == stream) event->stream = nullptr;
    }
    streams.erase(it);
    delete stream;
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) { return drain(resolve(stream)); }

// The simplest order that is correct: the event's work runs now, so the stream's later work follows it.
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags) {
    if (!event) return set_error(cudaErrorInvalidResourceHandle, "cudaStreamWaitEvent: event is NULL");
    std::lock_guard<std::recursive_mutex> lock(streams_mutex);
    if (resolve(stream)->sticky != cudaSuccess) return sticky_error(resolve(stream));
    return finish(event);
}

cudaError_t cudaEventCreate(cudaEvent_t *event) { return cudaEventCreateWithFlags(event, 0); }

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned flags) {
    if (!event) return invalid("%s: event is NULL", "cudaEventCreateWithFlags");
    if ((flags & ~static_cast<unsigned>(cudaEventDisableTiming)) != 0) {
        char message[128];
        std::snprintf(message, sizeof(message),
                      "cudaEventCreateWithFlags: flags 0x%x are not emulated (only cudaEventDisableTiming)", flags);
        return set_error(cudaErrorInvalidValue, message);
    }
    std::lock_guard<std::recursive_mutex> lock(streams_mutex);
    *event = new CUevent_st();
    (*event)->timed = (flags & cudaEventDisableTiming) == 0;
    events.insert(*event);
    return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
    if (!event) return set_error(cudaErrorInvalidResourceHandle, "cudaEventDestroy: event is NULL");
    std::lock_guard<std::recursive_mutex> lock(streams_mutex);
    if (events.erase(event) == 0) return set_error(cudaErrorInvalidResourceHandle, "cudaEventDestroy: not a live event");
    delete event;
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
    if (!event) return set_error(cudaErrorInvalidResourceHandle, "cudaEventRecord: event is NULL");
    std::lock_guard<std::recursive_mutex> lock(streams_mutex);
    auto time = std::make_shared<EventTime>();
    CUstream_st *target = resolve(stream);
    uint64_t sequence = target->submitted + 1;
    cudaError_t error = submit(stream, [time]() {
        time->time = std::chrono::steady_clock::now();
        return MDT_SUCCESS;
    });
    if (error != cudaSuccess) return error;
    event->time = time;
    event->stream = deferred() ? target : nullptr;
    event->sequence = sequence;
    return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
    if (!event) return set_error(cudaErrorInvalidResourceHandle, "cudaEventSynchronize: event is NULL");
    std::lock_guard<std::recursive_mutex> lock(streams_mutex);
    return finish(event);
}

// A pending event answers "not ready" (an error code, so it becomes the last error, as on a GPU) and its work runs
// now, so a caller that polls sees it complete next time.
cudaError_t cudaEventQuery(cudaEvent_t event) {
    if (!event) return set_error(cudaErrorInvalidResourceHandle, "cudaEventQuery: event is NULL");
    std::lock_guard<std::recursive_mutex> lock(streams_mutex);
    if (!pending(event)) return finish(event);
    cudaError_t error = finish(event);
    return error != cudaSuccess ? error : set_error(cudaErrorNotReady);
}

cudaError_t cudaEventElapsedTime(float *milliseconds, cudaEvent_t start, cudaEvent_t end) {
    if (!milliseconds) return invalid("%s: milliseconds is NULL", "cudaEventElapsedTime");
    if (!start || !end) return set_error(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime: event is NULL");
    std::lock_guard<std::recursive_mutex> lock(streams_mutex);
    if (!start->timed || !end->timed) {
        return set_error(cudaErrorInvalidResourceHandle,
                         "cudaEventElapsedTime: an event was created with cudaEventDisableTiming");
    }
    if (!start->time || !end->time) {
        return set_error(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime: an event was never recorded");
    }
    if (pending(start) || pending(end)) return set_error(cudaErrorNotReady);
    *milliseconds = std::chrono::duration<float, std::milli>(end->time->time - start->time->time).count();
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **pointer, size_t bytes) {
    if (!pointer) return invalid("%s: pointer is NULL", "cudaMalloc");
    size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
    *pointer = rounded < bytes ? nullptr : std::aligned_alloc(kAlignment, rounded == 0 ? kAlignment : rounded);
    if (!*pointer) {
        return set_error(cudaErrorMemoryAllocation, "cudaMalloc: " + std::to_string(bytes) + " bytes not available");
    }
    mdt_emu::register_allocation(*pointer, bytes);  // the checked build's bounds (memory_check.cpp)
    return cudaSuccess;
}

// Freeing synchronises the device in CUDA, so queued work never reads freed memory.
cudaError_t cudaFree(void *pointer) {
    if (cudaError_t error = drain_all()) return error;
    mdt_emu::unregister_allocation(pointer);
    std::free(pointer);
    return cudaSuccess;
}

cudaError_t cudaMallocHost(void **pointer, size_t bytes) {
    if (!pointer) return invalid("%s: pointer is NULL", "cudaMallocHost");
    *pointer = std::malloc(bytes == 0 ? 1 : bytes);
    if (!*pointer) {
        return set_error(cudaErrorMemoryAllocation, "cudaMallocHost: " + std::to_string(bytes) + " bytes not available");
    }
    std::lock_guard<std::mutex> lock(pinned_mutex);
    pinned[static_cast<unsigned char *>(*pointer)] = bytes == 0 ? 1 : bytes;
    return cudaSuccess;
}

cudaError_t cudaFreeHost(void *pointer) {
    if (!pointer) return cudaSuccess;
    if (cudaError_t error = drain_all()) return error;
    {
        std::lock_guard<std::mutex> lock(pinned_mutex);
        if (pinned.erase(static_cast<unsigned char *>(pointer)) == 0) {
            return set_error(cudaErrorInvalidValue, "cudaFreeHost: not a cudaMallocHost pointer");
        }
    }
    std::free(pointer);
    return cudaSuccess;
}

// Pageable host memory: the CUDA runtime waits for the stream's earlier work and stages the bytes before it returns
// (a device→host copy returns once the bytes have arrived). Page-locked memory and device→device copies queue.
cudaError_t cudaMemcpyAsync(void *target, const void *source, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream) {
    if (bytes == 0) return cudaSuccess;
    if (!target || !source) return invalid("%s: NULL pointer", "cudaMemcpyAsync");
    const void *host = kind == cudaMemcpyHostToDevice ? source : kind == cudaMemcpyDeviceToHost ? target : nullptr;
    if (kind == cudaMemcpyHostToHost || (host && !is_pinned(host))) {
        if (deferred()) {
            std::lock_guard<std::recursive_mutex> lock(streams_mutex);
            if (cudaError_t error = drain(resolve(stream))) return error;
        }
        copy_now(target, source, bytes, kind);
        return cudaSuccess;
    }
    if (kind != cudaMemcpyHostToDevice && kind != cudaMemcpyDeviceToHost && kind != cudaMemcpyDeviceToDevice) {
        return invalid("%s: unknown cudaMemcpyKind", "cudaMemcpyAsync");
    }
    return submit(stream, [=]() { return copy_now(target, source, bytes, kind); });
}

cudaError_t cudaMemsetAsync(void *target, int value, size_t bytes, cudaStream_t stream) {
    if (bytes == 0) return cudaSuccess;
    if (!target) return invalid("%s: NULL pointer", "cudaMemsetAsync");
    return submit(stream, [=]() {
        if (!mdt::dry_run()) std::memset(target, value, bytes);
        return MDT_SUCCESS;
    });
}

}  // extern "C"

namespace mdt_emu {

void launch_kernel(const char *kernel, dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
                   std::function<void()> body) {
    if (stream_mode_invalid) {
        set_error(cudaErrorInvalidValue, std::string(kernel) + ": " + stream_mode_message);
        return;
    }
    if (!deferred()) {
        int status = launch(kernel, grid, block, shared_bytes, body);
        if (status != MDT_SUCCESS) set_error(from_status(status), mdt_last_error_message());
        return;
    }
    SharedLimit limit;
    if (int status = check_launch(kernel, grid, block, shared_bytes, &limit)) {
        set_error(from_status(status), mdt_last_error_message());
        return;
    }
    mdt::trace_launch(kernel, grid.x, grid.y, grid.z, block.x, block.y, block.z, shared_bytes);
    submit(stream, [kernel, grid, block, shared_bytes, limit, body = std::move(body)]() {
        return run_launch(kernel, grid, block, shared_bytes, limit, body);
    });
}

cudaError_t enqueue_host_work(cudaStream_t stream, std::function<int()> work) {
    return submit(stream, std::move(work));
}

}  // namespace mdt_emu

extern "C" {

int mdt_library_kind(void) { return MDT_KIND_EMULATOR; }

int mdt_emu_stream_mode(int mode) {
    if (mode != MDT_STREAMS_IMMEDIATE && mode != MDT_STREAMS_DEFERRED) {
        return mdt::fail(MDT_ERROR_INVALID_ARGUMENT,
                         "mdt_emu_stream_mode: mode %d is not MDT_STREAMS_IMMEDIATE (0) or MDT_STREAMS_DEFERRED (1)",
                         mode);
    }
    std::lock_guard<std::recursive_mutex> lock(streams_mutex);
    cudaError_t error = cudaSuccess;  // of pending work that fails now (earlier failures were reported before)
    for (CUstream_st *stream : streams) {
        if (stream->sticky == cudaSuccess) {
            cudaError_t drained = drain(stream);
            if (error == cudaSuccess) error = drained;
        }
        // A fresh start, as a new process gets on a GPU: no sticky error, and events of dropped work complete.
        stream->sticky = cudaSuccess;
        stream->sticky_detail.clear();
        stream->completed = stream->submitted;
    }
    stream_mode = mode;
    stream_mode_invalid = false;
    if (error != cudaSuccess) {
        return mdt::fail(MDT_ERROR_RUNTIME, "mdt_emu_stream_mode: pending work failed: %s", cudaGetErrorString(error));
    }
    return MDT_SUCCESS;
}

int mdt_emu_inject_last_error(void) {
    set_error(cudaErrorInvalidValue, "injected by mdt_emu_inject_last_error");
    return MDT_SUCCESS;
}

}  // extern "C"
