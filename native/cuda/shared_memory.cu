// The shared-memory rule of MDT_LAUNCH on a real GPU (kernels/common.cuh): a block's static + dynamic shared memory
// must fit 48 KiB, or with the launch's opt-in (MDT_LAUNCH_OPT_IN) the device's opt-in limit. The runtime would
// refuse such a launch too, but with a bare "invalid argument"; checking first names the kernel and the sizes, as
// the emulator does. The opt-in is explicit per launch, not automatic: a kernel that needs more than 48 KiB depends
// on the architecture (227 KiB on sm_90, 163 KiB on sm_80), and its launch should say so where it is written.
// cudaFuncGetAttributes is cached per device and kernel, so a launch costs a lookup under a mutex.
#include <cuda_runtime.h>

#include <map>
#include <mutex>
#include <utility>

#include "common.cuh"

namespace mdt {

namespace {

struct KernelShared {
    size_t static_bytes;
    size_t max_dynamic_bytes;  // the kernel's cudaFuncAttributeMaxDynamicSharedMemorySize
    size_t opt_in_limit;       // the device's cudaDevAttrMaxSharedMemoryPerBlockOptin
};

std::mutex kernels_mutex;
std::map<std::pair<int, const void *>, KernelShared> kernels;
thread_local bool opt_in = false;

int failed(cudaError_t error, const char *name, const char *call) {
    cudaGetLastError();  // a query's error is not sticky; the next launch starts clean
    int status = error == cudaErrorNoDevice || error == cudaErrorInsufficientDriver ||
                         error == cudaErrorInitializationError || error == cudaErrorInvalidDevice
                     ? MDT_ERROR_NO_DEVICE
                     : MDT_ERROR_RUNTIME;
    return fail(status, "%s: %s: %s (%s)", name, call, cudaGetErrorString(error), cudaGetErrorName(error));
}

}  // namespace

SharedMemoryOptIn::SharedMemoryOptIn() : previous_(opt_in) { opt_in = true; }
SharedMemoryOptIn::~SharedMemoryOptIn() { opt_in = previous_; }

int check_launch_shared(const void *kernel, const char *name, size_t dynamic_bytes) {
    if (dynamic_bytes == 0) return MDT_SUCCESS;  // static alone is held to 48 KiB by ptxas
    int device = 0;
    cudaError_t error = cudaGetDevice(&device);
    if (error != cudaSuccess) return failed(error, name, "cudaGetDevice");
    std::lock_guard<std::mutex> lock(kernels_mutex);
    auto found = kernels.find({device, kernel});
    if (found == kernels.end()) {
        cudaFuncAttributes attributes;
        error = cudaFuncGetAttributes(&attributes, kernel);
        if (error != cudaSuccess) return failed(error, name, "cudaFuncGetAttributes");
        int opt_in_limit = 0;
        error = cudaDeviceGetAttribute(&opt_in_limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
        if (error != cudaSuccess) return failed(error, name, "cudaDeviceGetAttribute");
        KernelShared entry{attributes.sharedSizeBytes, static_cast<size_t>(attributes.maxDynamicSharedSizeBytes),
                           static_cast<size_t>(opt_in_limit)};
        found = kernels.emplace(std::make_pair(device, kernel), entry).first;
    }
    KernelShared &shared = found->second;
    size_t limit = opt_in ? shared.opt_in_limit : kMaxDefaultSharedBytes;
    if (shared.static_bytes + dynamic_bytes > limit) {
        return fail(MDT_ERROR_SHARED_MEMORY,
                    "%s: %zu bytes of static shared memory and %zu of dynamic exceed the %zu-byte limit (%s)", name,
                    shared.static_bytes, dynamic_bytes, limit,
                    opt_in ? "the device's with the opt-in" : "48 KiB without the opt-in, MDT_LAUNCH_OPT_IN");
    }
    if (dynamic_bytes > shared.max_dynamic_bytes) {
        error = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     static_cast<int>(dynamic_bytes));
        if (error != cudaSuccess) return failed(error, name, "cudaFuncSetAttribute");
        shared.max_dynamic_bytes = dynamic_bytes;
    }
    return MDT_SUCCESS;
}

}  // namespace mdt

extern "C" int mdt_emu_architecture(int sm) {
    int device = 0, major = 0, minor = 0;
    cudaError_t error = cudaGetDevice(&device);
    if (error == cudaSuccess) error = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
    if (error == cudaSuccess) error = cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device);
    if (error != cudaSuccess) return mdt::failed(error, "mdt_emu_architecture", "cudaDeviceGetAttribute");
    if (sm == 10 * major + minor) return MDT_SUCCESS;
    return mdt::fail(MDT_ERROR_INVALID_ARGUMENT,
                     "mdt_emu_architecture: sm_%d is an emulator setting; this GPU is sm_%d%d (only its own "
                     "architecture, a no-op, is accepted)",
                     sm, major, minor);
}
