// The emulator's CUDA runtime: the subset of <cuda_runtime.h> that native/cuda/runtime.cu calls, with CUDA's names,
// signatures and error codes, so g++ compiles the same runtime wrappers for libmicrodit_emu.so that nvcc compiles
// for the GPU (a fault in those wrappers fails on the emulator too). One pretend device backed by host memory.
//   - Last error as CUDA keeps it: per host thread, set by every call that fails, read by cudaPeekAtLastError and
//     read and cleared by cudaGetLastError. cudaGetErrorString appends what the emulator found (kernel, block,
//     thread) to CUDA's text for the calling thread's latest error of that code.
//   - Streams in one of two modes (cuda_runtime.cpp, mdt_emu_stream_mode in microdit.h): immediate (every call
//     completes before it returns) or deferred (launches, copies, memsets and event records queue on their stream
//     and run at a later synchronisation or event query, as on a GPU; a failing kernel leaves a sticky error on its
//     stream). Only cudaStreamNonBlocking streams exist, as microdit creates them.
#ifndef MDT_EMU_CUDA_RUNTIME_H
#define MDT_EMU_CUDA_RUNTIME_H

#include <cstddef>
#include <functional>

#include "mdt_emu.h"

// The real enum's values for the codes the emulator produces or runtime.cu tests for.
enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInitializationError = 3,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInsufficientDriver = 35,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorNotReady = 600,
    cudaErrorIllegalAddress = 700,
    cudaErrorLaunchOutOfResources = 701,
    cudaErrorLaunchTimeout = 702,
    cudaErrorLaunchFailure = 719,
    cudaErrorNotSupported = 801,
    // A fault only the checked emulator sees, which no CUDA error names; runtime.cu maps it back to MDT_ERROR_RACE.
    cudaErrorEmulatedRace = 10000
};
typedef enum cudaError cudaError_t;

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3
};

enum cudaDeviceAttr {
    cudaDevAttrMaxThreadsPerBlock = 1,
    cudaDevAttrMaxSharedMemoryPerBlock = 8,
    cudaDevAttrMultiProcessorCount = 16,
    cudaDevAttrComputeCapabilityMajor = 75,
    cudaDevAttrComputeCapabilityMinor = 76,
    cudaDevAttrMaxSharedMemoryPerBlockOptin = 97
};

#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01

/** The fields of CUDA's cudaDeviceProp that microdit reads, with CUDA's names (add more as callers need them). */
struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    size_t sharedMemPerBlock;
    size_t sharedMemPerBlockOptin;
    int maxThreadsPerBlock;
    int multiProcessorCount;
    int major;
    int minor;
};

typedef struct CUstream_st *cudaStream_t;
typedef struct CUevent_st *cudaEvent_t;

extern "C" {
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
const char *cudaGetErrorString(cudaError_t error);
const char *cudaGetErrorName(cudaError_t error);
cudaError_t cudaDriverGetVersion(int *version);
cudaError_t cudaRuntimeGetVersion(int *version);
cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *properties, int device);
cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attribute, int device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags);
cudaError_t cudaEventCreate(cudaEvent_t *event);
#define cudaEventDisableTiming 0x02
/** Only cudaEventDisableTiming (or no flag) is emulated; an untimed event has no timestamp to subtract. */
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = 0);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventQuery(cudaEvent_t event);
cudaError_t cudaEventElapsedTime(float *milliseconds, cudaEvent_t start, cudaEvent_t end);
cudaError_t cudaMalloc(void **pointer, size_t bytes);
cudaError_t cudaFree(void *pointer);
cudaError_t cudaMallocHost(void **pointer, size_t bytes);
cudaError_t cudaFreeHost(void *pointer);
cudaError_t cudaMemcpyAsync(void *target, const void *source, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream = 0);
cudaError_t cudaMemsetAsync(void *target, int value, size_t bytes, cudaStream_t stream = 0);
}

namespace mdt_emu {
/**
 * The emulator's kernel<<<grid, block, shared_bytes, stream>>>: checks the launch shape at once (a bad one sets the
 * last error, as on a GPU), then runs {@code body} on every thread now (immediate streams; a failure sets the last
 * error) or queues it on {@code stream} (deferred streams; a failure becomes the stream's sticky error).
 */
void launch_kernel(const char *kernel, dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
                   std::function<void()> body);

/**
 * Host work in {@code stream}'s order, as a GPU library's own operations on a stream (NCCL's, for the emulator's
 * collectives over MPI, native/emu/comm.cpp): runs {@code work} now (immediate streams) or when the stream's earlier
 * work has run (deferred streams). {@code work} returns an MDT status; a failure is the call's error (immediate) or
 * the stream's sticky error (deferred), as a kernel's.
 */
cudaError_t enqueue_host_work(cudaStream_t stream, std::function<int()> work);
}  // namespace mdt_emu

#endif
