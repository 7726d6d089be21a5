// The C ABI's runtime half on the emulator: one pretend device backed by host memory. Streams and events are
// handles with nothing behind them: every operation completes before its call returns.
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <cstring>

#include "mdt_emu.h"
#include "microdit.h"
#include "status.h"
#include "trace.h"

struct mdt_stream_s {
    int unused;
};
struct mdt_event_s {
    std::chrono::steady_clock::time_point time;
};

namespace {
constexpr size_t kAlignment = 256;  // cudaMalloc's alignment
constexpr size_t kPretendMemory = size_t{16} << 30;

int check_device(int device) {
    return device == 0 ? MDT_SUCCESS
                       : mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "device %d does not exist (the emulator has device 0)",
                                   device);
}
}  // namespace

extern "C" {

int mdt_library_kind(void) { return MDT_KIND_EMULATOR; }

int mdt_device_count(int *count) {
    if (!count) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_device_count: count is NULL");
    *count = 1;
    return MDT_SUCCESS;
}

int mdt_device_name(int device, char *buffer, size_t capacity) {
    if (int s = check_device(device)) return s;
    if (!buffer || capacity == 0) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_device_name: no buffer");
    std::snprintf(buffer, capacity, "%s", "microdit host emulator");
    return MDT_SUCCESS;
}

int mdt_device_sm_count(int device, int *count) {
    if (int s = check_device(device)) return s;
    if (!count) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_device_sm_count: count is NULL");
    *count = 1;
    return MDT_SUCCESS;
}

int mdt_device_memory(int device, size_t *free_bytes, size_t *total_bytes) {
    if (int s = check_device(device)) return s;
    if (!free_bytes || !total_bytes) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_device_memory: NULL output");
    *free_bytes = kPretendMemory;
    *total_bytes = kPretendMemory;
    return MDT_SUCCESS;
}

int mdt_set_device(int device) { return check_device(device); }

int mdt_device_synchronize(void) { return MDT_SUCCESS; }

int mdt_stream_create(mdt_stream_t *stream) {
    if (!stream) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_stream_create: stream is NULL");
    *stream = new mdt_stream_s();
    return MDT_SUCCESS;
}

int mdt_stream_destroy(mdt_stream_t stream) {
    delete stream;
    return MDT_SUCCESS;
}

int mdt_stream_synchronize(mdt_stream_t) { return MDT_SUCCESS; }

int mdt_stream_wait_event(mdt_stream_t, mdt_event_t event) {
    if (!event) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_stream_wait_event: event is NULL");
    return MDT_SUCCESS;
}

int mdt_event_create(mdt_event_t *event) {
    if (!event) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_event_create: event is NULL");
    *event = new mdt_event_s();
    return MDT_SUCCESS;
}

int mdt_event_destroy(mdt_event_t event) {
    delete event;
    return MDT_SUCCESS;
}

int mdt_event_record(mdt_event_t event, mdt_stream_t) {
    if (!event) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_event_record: event is NULL");
    event->time = std::chrono::steady_clock::now();
    return MDT_SUCCESS;
}

int mdt_event_synchronize(mdt_event_t event) {
    if (!event) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_event_synchronize: event is NULL");
    return MDT_SUCCESS;
}

int mdt_event_elapsed_ms(mdt_event_t start, mdt_event_t end, float *milliseconds) {
    if (!start || !end || !milliseconds) {
        return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_event_elapsed_ms: NULL argument");
    }
    *milliseconds = std::chrono::duration<float, std::milli>(end->time - start->time).count();
    return MDT_SUCCESS;
}

int mdt_malloc(void **pointer, size_t bytes) {
    if (!pointer) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_malloc: pointer is NULL");
    size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
    *pointer = std::aligned_alloc(kAlignment, rounded == 0 ? kAlignment : rounded);
    if (!*pointer) return mdt::fail(MDT_ERROR_OUT_OF_MEMORY, "mdt_malloc: %zu bytes not available", bytes);
    mdt_emu::register_allocation(*pointer, bytes);
    return MDT_SUCCESS;
}

int mdt_free(void *pointer) {
    mdt_emu::unregister_allocation(pointer);
    std::free(pointer);
    return MDT_SUCCESS;
}

// In a dry run (trace.h) no kernel runs, so device contents mean nothing: writes to device memory are skipped
// (a full-size step's memory is then never touched: it may exceed this machine's) and the host reads zeros
// (finite losses and norms).
static int copy(const char *name, void *target, const void *source, size_t bytes, bool to_host) {
    if (bytes == 0) return MDT_SUCCESS;
    if (!target || !source) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "%s: NULL pointer", name);
    if (!mdt::dry_run()) {
        std::memmove(target, source, bytes);
    } else if (to_host) {
        std::memset(target, 0, bytes);
    }
    return MDT_SUCCESS;
}

int mdt_memcpy_htod(void *t, const void *s, size_t bytes, mdt_stream_t) {
    return copy("mdt_memcpy_htod", t, s, bytes, false);
}
int mdt_memcpy_dtoh(void *t, const void *s, size_t bytes, mdt_stream_t) {
    return copy("mdt_memcpy_dtoh", t, s, bytes, true);
}
int mdt_memcpy_dtod(void *t, const void *s, size_t bytes, mdt_stream_t) {
    return copy("mdt_memcpy_dtod", t, s, bytes, false);
}

int mdt_memset(void *target, int value, size_t bytes, mdt_stream_t) {
    if (bytes == 0) return MDT_SUCCESS;
    if (!target) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_memset: NULL pointer");
    if (!mdt::dry_run()) std::memset(target, value, bytes);
    return MDT_SUCCESS;
}

int mdt_host_alloc(void **pointer, size_t bytes) {
    if (!pointer) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_host_alloc: pointer is NULL");
    *pointer = std::malloc(bytes == 0 ? 1 : bytes);
    if (!*pointer) return mdt::fail(MDT_ERROR_OUT_OF_MEMORY, "mdt_host_alloc: %zu bytes not available", bytes);
    return MDT_SUCCESS;
}

int mdt_host_free(void *pointer) {
    std::free(pointer);
    return MDT_SUCCESS;
}

int mdt_event_query(mdt_event_t event, int *complete) {
    if (!event || !complete) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_event_query: NULL argument");
    *complete = 1;  // every operation completed before its call returned
    return MDT_SUCCESS;
}

// The CUDA generation whose semantics the emulator follows; it needs no driver, so both versions are that one.
int mdt_driver_version(int *version) {
    if (!version) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_driver_version: version is NULL");
    *version = 13000;
    return MDT_SUCCESS;
}
int mdt_runtime_version(int *version) {
    if (!version) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_runtime_version: version is NULL");
    *version = 13000;
    return MDT_SUCCESS;
}

}  // extern "C"
