// The portability layer: every kernel source includes this file and nothing CUDA-specific besides it, so the
// same source builds with nvcc for the GPU and with g++ against the host emulator (native/emu).
//   - MDT_LAUNCH is the only way to launch a kernel; it returns an MDT status.
//   - MDT_REQUIRE checks an argument of a C ABI function and returns MDT_ERROR_INVALID_ARGUMENT with a message.
//   - MDT_DYNAMIC_SHARED declares the block's dynamic shared memory.
//   - MDT_UNROLL asks nvcc to unroll the next loop (register-resident accumulators); g++ ignores it.
//   - warp_sum / block_sum: reductions in a fixed order (the same bits on every run).
#ifndef MDT_COMMON_CUH
#define MDT_COMMON_CUH

#include <stdint.h>

#include "microdit.h"
#include "status.h"

#ifdef __CUDACC__
#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace mdt {
int launch_status(const char *kernel);
constexpr size_t kMaxDefaultSharedBytes = 48 * 1024;
}  // namespace mdt

#define MDT_LAUNCH(kernel, grid, block, shared_bytes, stream, ...)                                              \
    ((shared_bytes) > ::mdt::kMaxDefaultSharedBytes                                                           \
         ? ::mdt::fail(MDT_ERROR_SHARED_MEMORY, "%s: %zu bytes of dynamic shared memory exceed the 48 KiB limit", \
                       #kernel, static_cast<size_t>(shared_bytes))                                            \
         : (kernel<<<(grid), (block), (shared_bytes), (cudaStream_t)(stream)>>>(__VA_ARGS__),   \
            ::mdt::launch_status(#kernel)))

#define MDT_DYNAMIC_SHARED(type, name)                  \
    extern __shared__ __align__(16) unsigned char mdt_dynamic_shared_bytes[]; \
    type *name = reinterpret_cast<type *>(mdt_dynamic_shared_bytes)

#else
#include "mdt_emu.h"

#define MDT_LAUNCH(kernel, grid, block, shared_bytes, stream, ...) \
    (static_cast<void>(stream), ::mdt_emu::launch(#kernel, (grid), (block), (shared_bytes), [&]() { kernel(__VA_ARGS__); }))

#define MDT_DYNAMIC_SHARED(type, name) type *name = reinterpret_cast<type *>(::mdt_emu::dynamic_shared())
#endif

#ifdef __CUDACC__
#define MDT_UNROLL _Pragma("unroll")
#else
#define MDT_UNROLL
#endif

#define MDT_REQUIRE(condition, ...)                                                \
    do {                                                                           \
        if (!(condition)) return ::mdt::fail(MDT_ERROR_INVALID_ARGUMENT, __VA_ARGS__); \
    } while (0)

namespace mdt {

constexpr unsigned kFullMask = 0xffffffffu;
/**
 * Grid-stride kernels cap their grid here: on the GPU enough blocks to fill an H100 many times over; on the
 * emulator a few, since every emulated thread costs a fiber (the results do not depend on the grid size).
 */
#ifdef __CUDACC__
constexpr int64_t kMaxGridBlocks = 65535;
#else
constexpr int64_t kMaxGridBlocks = 4;
#endif

inline unsigned blocks_for(int64_t n, int threads) {
    int64_t blocks = (n + threads - 1) / threads;
    return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > kMaxGridBlocks ? kMaxGridBlocks : blocks));
}

template <class T>
__device__ __forceinline__ T warp_sum(T value) {
    for (int offset = 16; offset > 0; offset >>= 1) {
        value += __shfl_xor_sync(kFullMask, value, offset);
    }
    return value;
}

/**
 * Sum over the block (blockDim.x a multiple of 32, at most 1024), the same on every thread. {@code scratch}
 * holds 32 values in shared memory; the call begins and ends with a barrier so scratch can be reused at once.
 */
template <class T>
__device__ __forceinline__ T block_sum(T value, T *scratch) {
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = (blockDim.x + 31) / 32;
    value = warp_sum(value);
    __syncthreads();
    if (lane == 0) scratch[warp] = value;
    __syncthreads();
    T total = lane < warps ? scratch[lane] : T(0);
    total = warp_sum(total);
    __syncthreads();
    return total;
}

}  // namespace mdt

#endif
