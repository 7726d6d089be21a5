// The portability layer: every kernel source includes this file and nothing CUDA-specific besides it, so the
// same source builds with nvcc for the GPU and with g++ against the host emulator (native/emu).
//   - MDT_LAUNCH is the only way to launch a kernel; it returns an MDT status. Static + dynamic shared memory must
//     fit 48 KiB; MDT_LAUNCH_OPT_IN (same arguments) lets a launch use up to the architecture's opt-in limit
//     (sm_90 227 KiB, sm_80 163 KiB), for kernels where the larger tiles pay.
//   - MDT_REQUIRE checks an argument of a C ABI function and returns MDT_ERROR_INVALID_ARGUMENT with a message.
//   - MDT_DYNAMIC_SHARED declares the block's dynamic shared memory; MDT_SHARED / MDT_SHARED_ALIGNED a static
//     shared array (a raw __shared__ does not compile on the emulator, which must see every array to poison it at
//     each block start and count it against the limit).
//   - MDT_UNROLL asks nvcc to unroll the next loop (register-resident accumulators); g++ ignores it.
//   - warp_sum / block_sum: reductions in a fixed order (the same bits on every run).
//   - mma_m16n8k16_bf16, mma_m16n8k8_tf32, to_tf32, ldmatrix_x4/_x2(_trans), cp_async_16: the only doors to tensor
//     cores and async copies; nvcc gets the PTX instruction, g++ the emulator's version of it
//     (native/emu/tensor_core.cpp).
#ifndef MDT_COMMON_CUH
#define MDT_COMMON_CUH

#include <stdint.h>

#include "microdit.h"
#include "status.h"
#include "trace.h"

namespace mdt {
// Both libraries (native/cuda/runtime.cu): MDT_LAUNCH clears the runtime's last error, launches, and reports the
// last error as the launch's status, so a status is the launch's own, never an earlier call's.
void clear_launch_error();
int launch_status(const char *kernel);
}  // namespace mdt

#ifdef __CUDACC__
#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace mdt {
constexpr size_t kMaxDefaultSharedBytes = 48 * 1024;
inline void trace(const char *kernel, dim3 grid, dim3 block, size_t shared_bytes) {
    if (tracing()) trace_launch(kernel, grid.x, grid.y, grid.z, block.x, block.y, block.z, shared_bytes);
}
/**
 * Checks a launch's static (cudaFuncGetAttributes, cached per device and kernel) + dynamic shared memory against
 * 48 KiB, or with the opt-in against the device's opt-in limit, raising the kernel's dynamic maximum
 * (cudaFuncSetAttribute) where the opted-in launch needs more; MDT_ERROR_SHARED_MEMORY names the kernel, both
 * sizes and the limit (native/cuda/shared_memory.cu).
 */
int check_launch_shared(const void *kernel, const char *name, size_t dynamic_bytes);

/** While one lives, launches made on this thread opt in to the device's larger limit (MDT_LAUNCH_OPT_IN). */
class SharedMemoryOptIn {
public:
    SharedMemoryOptIn();
    ~SharedMemoryOptIn();
    SharedMemoryOptIn(const SharedMemoryOptIn &) = delete;
    SharedMemoryOptIn &operator=(const SharedMemoryOptIn &) = delete;

private:
    bool previous_;
};
}  // namespace mdt

// The launch's status is the runtime's last error after it, so a stale one (a not-ready query, an earlier failed
// call) is cleared first: the status is this launch's own.
#define MDT_LAUNCH(kernel, grid, block, shared_bytes, stream, ...)                                                 \
    ([&]() -> int {                                                                                               \
        if (int s = ::mdt::check_launch_shared(reinterpret_cast<const void *>(kernel), #kernel, (shared_bytes))) \
            return s;                                                                                             \
        ::mdt::trace(#kernel, (grid), (block), (shared_bytes));                                                   \
        ::mdt::clear_launch_error();                                                                              \
        kernel<<<(grid), (block), (shared_bytes), (cudaStream_t)(stream)>>>(__VA_ARGS__);                         \
        return ::mdt::launch_status(#kernel);                                                                     \
    }())

#define MDT_LAUNCH_OPT_IN(...) (::mdt::SharedMemoryOptIn(), MDT_LAUNCH(__VA_ARGS__))

#define MDT_DYNAMIC_SHARED(type, name)                  \
    extern __shared__ __align__(16) unsigned char mdt_dynamic_shared_bytes[]; \
    type *name = reinterpret_cast<type *>(mdt_dynamic_shared_bytes)

#define MDT_SHARED_ALIGNED(alignment, type, name, dimensions) __shared__ __align__(alignment) type name dimensions
#define MDT_SHARED(type, name, dimensions) __shared__ type name dimensions

#else
#include "cuda_runtime.h"
#include "mdt_emu.h"

// As the CUDA branch (its shared-memory check and status included), with the emulator's kernel<<<...>>>. The
// check sees the dynamic bytes only: a kernel's static arrays are counted as its blocks declare them (mdt_emu.h).
// The kernel's arguments are captured by value because a deferred stream (cuda_runtime.h) runs the kernel after
// the caller has returned; the closure that holds them is the launch's memory, not the kernel's, so the checked
// build does not take its reads for the kernel's accesses (MDT_EMU_UNCHECKED).
#define MDT_LAUNCH(kernel, grid, block, shared_bytes, stream, ...)                                    \
    ([&]() -> int {                                                                                   \
        if (int s = ::mdt_emu::check_launch_shared(#kernel, (shared_bytes))) return s;               \
        ::mdt::clear_launch_error();                                                                  \
        ::mdt_emu::launch_kernel(#kernel, (grid), (block), (shared_bytes), (cudaStream_t)(stream),    \
                                 [=]() MDT_EMU_UNCHECKED { kernel(__VA_ARGS__); });                   \
        return ::mdt::launch_status(#kernel);                                                         \
    }())

// The temporary opt-in lives until the end of the full expression, i.e. through the launch.
#define MDT_LAUNCH_OPT_IN(...) (::mdt_emu::SharedMemoryOptIn(), MDT_LAUNCH(__VA_ARGS__))

#define MDT_DYNAMIC_SHARED(type, name) type *name = reinterpret_cast<type *>(::mdt_emu::dynamic_shared())

// One instance per host thread, shared by the block's fibers (blocks run one at a time on it); every thread runs
// the registration, the block's first one poisons the array before anyone can write it.
#define MDT_SHARED_ALIGNED(alignment, type, name, dimensions) \
    alignas(alignment) static thread_local type name dimensions;  \
    ::mdt_emu::static_shared(name, sizeof(name), #name)
#define MDT_SHARED(type, name, dimensions) MDT_SHARED_ALIGNED(alignof(type), type, name, dimensions)
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
constexpr int64_t kMaxGpuGridBlocks = 65535;
#ifdef __CUDACC__
inline int64_t max_grid_blocks() { return kMaxGpuGridBlocks; }
#else
// A dry run (trace.h) executes nothing, so it sizes grids as the GPU would: that is what it plans.
inline int64_t max_grid_blocks() { return dry_run() ? kMaxGpuGridBlocks : 4; }
#endif

inline unsigned blocks_for(int64_t n, int threads) {
    int64_t blocks = (n + threads - 1) / threads, cap = max_grid_blocks();
    return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > cap ? cap : blocks));
}

/**
 * Reports a failed device-side check into the caller's error record (microdit.h): the first report claims it,
 * later ones leave it as it is. Reports happen only on bad inputs, so their cost does not matter.
 */
__device__ inline void report_error(int32_t *error, int code, int64_t value, int64_t bound, int64_t i, int64_t j,
                                    int64_t l) {
    if (error && atomicCAS(error, 0, code) == 0) {
        error[1] = static_cast<int32_t>(value);
        error[2] = static_cast<int32_t>(bound);
        error[3] = static_cast<int32_t>(i);
        error[4] = static_cast<int32_t>(j);
        error[5] = static_cast<int32_t>(l);
    }
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

/**
 * Stores one output element: as computed into an f32 tensor, or rounded to nearest even into a bf16 one (bits as
 * uint16_t, the rounding of mdt_elementwise_f32_to_bf16), for an output that only bf16 matrix products read.
 */
__device__ __forceinline__ void store_out(float *out, int64_t i, float value) { out[i] = value; }
__device__ __forceinline__ void store_out(uint16_t *out, int64_t i, float value) {
    __nv_bfloat16 b = __float2bfloat16_rn(value);
    out[i] = *reinterpret_cast<uint16_t *>(&b);
}

/**
 * Loads one input element as f32: a float as it is, bf16 bits (uint16_t) widened exactly (bf16 -> f32 loses
 * nothing), so a kernel templated on its input type gives a bf16 input exactly the result of that input's f32 upcast.
 * Scalar loads only: a bf16 row of odd width is just 2-byte aligned, which wider loads would have to special-case.
 */
__device__ __forceinline__ float load_as_float(const float *in, int64_t i) { return in[i]; }
__device__ __forceinline__ float load_as_float(const uint16_t *in, int64_t i) {
    return __uint_as_float(static_cast<uint32_t>(in[i]) << 16);
}

// ---------------------------------------------------------------- tensor cores and async copies
//
// Fragment layouts (PTX ISA, mma.m16n8k16 with .bf16): lane l = 4·g + t (g = l/4, t = l mod 4); a register holds
// two bf16, the lower column/k index in the low 16 bits.
//   A 16×16 row-major, 4 registers: a0 = A[g][2t..2t+1], a1 = A[g+8][2t..], a2 = A[g][2t+8..], a3 = A[g+8][2t+8..]
//   B 16×8 column-major, 2 registers: b0 = B[2t..2t+1][g], b1 = B[2t+8..2t+9][g]
//   C, D 16×8 f32, 4 floats: c0, c1 = C[g][2t], C[g][2t+1]; c2, c3 = C[g+8][2t], C[g+8][2t+1]
// ldmatrix .m8n8 .b16: lanes 8i..8i+7 give the 16-byte-aligned row addresses of 8×8 matrix i (x2: lanes 0..15);
// register i of lane l gets row l/4, columns 2(l mod 4), 2(l mod 4)+1 of matrix i (.trans: of its transpose).
// So an A fragment is ldmatrix_x4 of its four 8×8 quarters (rows 0-7|8-15 × k 0-7|8-15, in a0..a3 order), and a
// B fragment stored k-major ([k][n]) is ldmatrix_x2_trans of its two k halves.

/** Two floats rounded to bf16 (nearest even) in one register, {@code low} in the low 16 bits. */
__device__ __forceinline__ uint32_t pack_bf16x2(float low, float high) {
#ifdef __CUDACC__
    __nv_bfloat162 pair = __floats2bfloat162_rn(low, high);
    return *reinterpret_cast<uint32_t *>(&pair);
#else
    return static_cast<uint32_t>(__float2bfloat16_rn(low).__x) |
           (static_cast<uint32_t>(__float2bfloat16_rn(high).__x) << 16);
#endif
}

/**
 * Two adjacent outputs in one store: two floats' bits in one 64-bit word (what a float2 store is on the GPU; the
 * emulator stores a float2 built from two values as two 4-byte halves, which its access model would count as two
 * half-used requests), or two bf16 (nearest even) in one 32-bit word. {@code at} is aligned to the pair.
 */
__device__ __forceinline__ void store_pair(float *at, float first, float second) {
    *reinterpret_cast<unsigned long long *>(at) =
        static_cast<unsigned long long>(__float_as_uint(second)) << 32 | __float_as_uint(first);
}
__device__ __forceinline__ void store_pair(uint16_t *at, float first, float second) {
    *reinterpret_cast<uint32_t *>(at) = pack_bf16x2(first, second);
}

/**
 * bf16 outputs of two adjacent n8 C fragments, regrouped for 8-byte stores: w0 holds columns 2t, 2t + 1 of the first
 * 8 and w1 of the next 8 (one row, on lane 4g + t); returns columns 4t..4t + 3 of the 16 (lowest column lowest), so a
 * quad stores a row's 32 bytes, a whole sector, where 4-byte pairs fill half of one. Every lane must call it.
 */
__device__ __forceinline__ unsigned long long quad_regroup_bf16(uint32_t w0, uint32_t w1) {
    int t = threadIdx.x % 4, source = (threadIdx.x % 32 & ~3) | (t % 2 * 2);
    uint32_t low0 = __shfl_sync(kFullMask, w0, source), low1 = __shfl_sync(kFullMask, w1, source);
    uint32_t high0 = __shfl_sync(kFullMask, w0, source + 1), high1 = __shfl_sync(kFullMask, w1, source + 1);
    return static_cast<unsigned long long>(t < 2 ? high0 : high1) << 32 | (t < 2 ? low0 : low1);
}

/** D = A·B + C on one warp's fragments (all 32 lanes take part); bf16 products accumulate in f32. */
__device__ __forceinline__ void mma_m16n8k16_bf16(float d[4], const uint32_t a[4], const uint32_t b[2],
                                                  const float c[4]) {
#ifdef __CUDACC__
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%10, %11, %12, %13};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
          "f"(c[3]));
#else
    ::mdt_emu::mma_m16n8k16_bf16(d, a, b, c);
#endif
}

// Fragment layouts (PTX ISA, mma.m16n8k8 with .tf32): one tf32 per register (an f32 bit pattern whose low 13
// bits the tensor cores ignore, hence to_tf32 first); lane l = 4·g + t.
//   A 16×8 row-major, 4 registers: a0 = A[g][t], a1 = A[g+8][t], a2 = A[g][t+4], a3 = A[g+8][t+4]
//   B 8×8 column-major, 2 registers: b0 = B[t][g], b1 = B[t+4][g]
//   C, D 16×8 f32, 4 floats: as for m16n8k16.

/**
 * cvt.rna.tf32.f32: {@code value} rounded to 10 mantissa bits, to nearest with ties away from zero, as the bits of
 * an f32 with the low 13 bits zero; infinities stay, NaN stays NaN, a value past the largest tf32 becomes infinite.
 */
__device__ __forceinline__ uint32_t to_tf32(float value) {
#ifdef __CUDACC__
    uint32_t bits;
    asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(bits) : "f"(value));
    return bits;
#else
    return ::mdt_emu::to_tf32(value);
#endif
}

/** D = A·B + C on one warp's fragments (all 32 lanes take part); tf32 products accumulate in f32. */
__device__ __forceinline__ void mma_m16n8k8_tf32(float d[4], const uint32_t a[4], const uint32_t b[2],
                                                 const float c[4]) {
#ifdef __CUDACC__
    asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%10, %11, %12, %13};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
          "f"(c[3]));
#else
    ::mdt_emu::mma_m16n8k8_tf32(d, a, b, c);
#endif
}

#ifdef __CUDACC__
__device__ __forceinline__ uint32_t shared_address(const void *pointer) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(pointer));
}
#endif

/** Four 8×8 bf16 matrices from shared memory; {@code row} is this lane's row address (see above). */
__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const void *row) {
#ifdef __CUDACC__
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(shared_address(row))
                 : "memory");
#else
    ::mdt_emu::ldmatrix(r, 4, false, row);
#endif
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t r[4], const void *row) {
#ifdef __CUDACC__
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(shared_address(row))
                 : "memory");
#else
    ::mdt_emu::ldmatrix(r, 4, true, row);
#endif
}

/** Two 8×8 bf16 matrices; lanes 0..15 give the row addresses (the others' are ignored). */
__device__ __forceinline__ void ldmatrix_x2(uint32_t r[2], const void *row) {
#ifdef __CUDACC__
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(shared_address(row))
                 : "memory");
#else
    ::mdt_emu::ldmatrix(r, 2, false, row);
#endif
}

__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t r[2], const void *row) {
#ifdef __CUDACC__
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(shared_address(row))
                 : "memory");
#else
    ::mdt_emu::ldmatrix(r, 2, true, row);
#endif
}

/**
 * Asynchronous copy of 16 bytes from global to shared memory (both 16-byte aligned); only the first
 * {@code source_bytes} (0 or 16) are read and the rest is zero-filled, so out-of-range chunks cost no read.
 * Completes at cp_async_wait (so does the emulator's: a read before the wait sees stale data).
 */
__device__ __forceinline__ void cp_async_16(void *shared, const void *global, int source_bytes) {
#ifdef __CUDACC__
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(shared_address(shared)), "l"(global),
                 "r"(source_bytes)
                 : "memory");
#else
    ::mdt_emu::cp_async_16(shared, global, source_bytes);
#endif
}

/** Closes the group of cp_async_16 issued since the last commit. */
__device__ __forceinline__ void cp_async_commit() {
#ifdef __CUDACC__
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#else
    ::mdt_emu::cp_async_commit();
#endif
}

/** Waits until at most {@code Pending} committed groups are still in flight (a __syncthreads must follow before
 *  other threads read the data). */
template <int Pending>
__device__ __forceinline__ void cp_async_wait() {
#ifdef __CUDACC__
    asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending) : "memory");
#else
    ::mdt_emu::cp_async_wait(Pending);
#endif
}

}  // namespace mdt

#endif
