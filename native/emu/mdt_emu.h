// The host emulator: CUDA C++ kernels compiled by g++ run on the host. Each block's threads are fibers
// (fiber_switch.h) scheduled round-robin on one host thread, so they run concurrently in the sense that matters
// for correctness: every barrier, shuffle and vote waits until its participants arrive, and __shared__
// memory is one instance per block. The blocks of a grid run at once on a few host threads (mdt_emu_threads,
// microdit.h), each claiming the next block in the order mdt_emu_block_order sets (forward unless it says reverse or
// shuffled); atomics are the host's atomics. Memory is host memory; streams
// are those of the emulated CUDA runtime (cuda_runtime.h). Deadlocks (a barrier some threads never reach) and out-of-range launch shapes come back as
// error statuses instead of hangs or aborts.
// Strict where the hardware is: what a GPU would fault on or leave undefined ends the launch with an error status
// (MDT_ERROR_RUNTIME for a misaligned cp.async/ldmatrix address, MDT_ERROR_DEADLOCK for __syncthreads at
// different call sites, MDT_ERROR_RUNTIME for warp-synchronous misuse: a mask without the calling lane, lanes of
// one mask at different calls or with different masks, a shuffle reading a lane that does not take part,
// ldmatrix/mma without all 32 lanes, a cp.async/ldmatrix shared operand outside the block's shared memory;
// MDT_ERROR_SHARED_MEMORY for static + dynamic shared memory over the limit). cp.async copies land only at
// cp_async_wait (a read before the wait sees stale data), and shared memory, dynamic and static, holds 0xFF bytes
// (NaN) at every block start.
#ifndef MDT_EMU_H
#define MDT_EMU_H

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>

struct uint3 {
    unsigned x, y, z;
};

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) int2 { int x, y; };
struct alignas(16) int4 { int x, y, z, w; };
struct alignas(16) uint4 { unsigned x, y, z, w; };

inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline int2 make_int2(int x, int y) { return {x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }

namespace mdt_emu {

constexpr int kWarpSize = 32;
constexpr int kMaxThreadsPerBlock = 1024;
/** What a block may use without the opt-in (static + dynamic), and what a kernel may declare statically. */
constexpr size_t kMaxSharedBytes = 48 * 1024;
/** The opt-in limits per block (cudaDevAttrMaxSharedMemoryPerBlockOptin): sm_90 227 KiB, sm_80 163 KiB. */
constexpr size_t kMaxSharedBytesOptInSm90 = 227 * 1024;
constexpr size_t kMaxSharedBytesOptInSm80 = 163 * 1024;

struct Fiber;
struct Block;

extern thread_local Fiber *current_fiber;
extern thread_local Block *current_block;

// By value: a reference would make every threadIdx.x a load from the emulator's own memory, which the checked
// build (memory_check.cpp) would have to tell apart from the kernel's accesses.
uint3 thread_index();
uint3 block_index();
dim3 block_dim();
dim3 grid_dim();
unsigned char *dynamic_shared();

/** Where the running CUDA thread stands, for the checked build (native/emu/memory_check.cpp). */
struct ThreadPosition {
    const char *kernel;
    uint64_t block;       // linear block index (x fastest)
    int thread;           // linear thread index in the block
    unsigned warp_live;   // the live lanes of its warp
    uint64_t barriers;    // the block's barrier generation (__syncthreads passed)
    uint64_t syncs;       // barriers and warp-synchronous calls this thread has passed
    const char *stack;    // its fiber stack
    size_t stack_bytes;
};
/** False outside a kernel (no fiber runs on this host thread). */
bool thread_position(ThreadPosition &position);

/** A warp-synchronous call: the intrinsic and where the kernel calls it (lanes of one mask must agree). */
struct WarpCall {
    const char *what;
    const char *file;
    int line;
};

// Barriers and warp calls take their call site (__builtin_FILE/LINE as default arguments, evaluated where the
// kernel calls): threads meeting at different sites are divergent code, undefined on the GPU.
void sync_threads(const char *file, int line);
int sync_threads_count(int predicate, const char *file, int line);
void sync_warp(unsigned mask, const WarpCall &call);
unsigned active_mask();
int lane_id();

/** Deposits {@code bytes} of this lane's value, waits for the lanes of {@code mask}, reads lane
 *  {@code source}'s value (own value when source < 0), then waits again so the slot can be reused. */
void warp_exchange(unsigned mask, const void *value, void *result, size_t bytes, int source, const WarpCall &call);
/** The predicates of the lanes of {@code mask} that take part (exited lanes count 0). */
unsigned ballot(unsigned mask, int predicate, const WarpCall &call);
/** Deposits {@code bytes} (at most kGatherBytes) of this lane's value, waits for all 32 lanes (an error unless the
 *  whole warp is live: .aligned instructions), copies every lane's deposit into {@code all} (32 × bytes,
 *  lane-major), then waits again so the slots can be reused. */
constexpr size_t kGatherBytes = 32;
void warp_gather(const void *value, size_t bytes, void *all, const WarpCall &call);

/** Ends the launch with {@code status} and a message naming the kernel, block and thread; never returns. */
[[noreturn]] void violation(int status, const char *format, ...) __attribute__((format(printf, 2, 3)));

// Tensor-core and async-copy instructions, as the PTX ISA specifies them (native/emu/tensor_core.cpp); kernels
// reach them only through the wrappers in kernels/common.cuh.
void mma_m16n8k16_bf16(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4]);
void mma_m16n8k8_tf32(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4]);
/** cvt.rna.tf32.f32: nearest, ties away from zero, to 10 mantissa bits; NaN as 0x7FFFFFFF, infinities kept. */
uint32_t to_tf32(float value);
void ldmatrix(uint32_t *registers, int matrices, bool transpose, const void *row);
/** cp.async.cg 16 bytes (both addresses 16-byte aligned): queued on the thread, copied at cp_async_wait. */
void cp_async_16(void *shared, const void *global, int source_bytes);
void cp_async_commit();
void cp_async_wait(int pending);

/** A launch's shared-memory limit (static + dynamic bytes per block), fixed when the launch is issued. */
struct SharedLimit {
    size_t bytes = 0;
    const char *name = "";
};

/** Runs {@code body} once per thread of every block. Returns an MDT status. */
int launch(const char *kernel, dim3 grid, dim3 block, size_t shared_bytes, const std::function<void()> &body);
// launch's two halves, for a launch queued on a deferred stream: the checks a GPU makes when the launch is issued
// (shape, shared memory against the limit the issuing thread's opt-in sets, not from inside a kernel), and running
// the blocks under that limit (the launch trace is launch's part).
int check_launch(const char *kernel, dim3 grid, dim3 block, size_t shared_bytes, SharedLimit *limit);
int run_launch(const char *kernel, dim3 grid, dim3 block, size_t shared_bytes, const SharedLimit &limit,
               const std::function<void()> &body);

// The checked build's hooks (native/emu/memory_check.cpp; no-ops in libmicrodit_emu.so). run_launch() calls the
// launch's on its caller (the body is the launch's own memory, read by the instrumented std::function call), the
// worker's on every host thread that runs blocks of it, before its first and after its last, and the block's at
// every block start; the runtime registers every device allocation; the emulated instructions that touch memory
// outside the instrumented kernel code (atomics, cp.async, ldmatrix) report their accesses, with the kernel's call
// site.
struct CheckedLaunch;
CheckedLaunch *begin_checked_launch(const char *kernel, const std::function<void()> &body);
void begin_checked_worker(CheckedLaunch *launch);
void begin_checked_block(int threads);
void end_checked_worker();
void end_checked_launch(CheckedLaunch *launch);
void register_allocation(const void *base, size_t bytes);
void unregister_allocation(const void *base);
void atomic_access(const void *address, size_t bytes);
void cp_async_access(const void *shared, const void *global, int source_bytes, const void *site);
void ldmatrix_access(const void *row, const void *site);

// Shared memory (native/emu/shared_memory.cpp). The limits follow the emulated architecture (mdt_emu_architecture,
// MDT_EMU_ARCH): without the opt-in a block gets 48 KiB of static + dynamic shared memory, with it the
// architecture's opt-in limit.

/** While one lives, launches made on this thread opt in to the architecture's limit (MDT_LAUNCH_OPT_IN). */
class SharedMemoryOptIn {
public:
    SharedMemoryOptIn();
    ~SharedMemoryOptIn();
    SharedMemoryOptIn(const SharedMemoryOptIn &) = delete;
    SharedMemoryOptIn &operator=(const SharedMemoryOptIn &) = delete;

private:
    bool previous_;
};
/** MDT_LAUNCH's check before it issues a launch, as the CUDA build's: the dynamic bytes against the limit this
 *  thread's opt-in sets. MDT_ERROR_SHARED_MEMORY (with the message) or MDT_SUCCESS. */
int check_launch_shared(const char *kernel, size_t dynamic_bytes);
/** Called when a launch is issued: its limit (this thread's opt-in, the emulated architecture) into {@code limit},
 *  and the dynamic bytes checked against it. An MDT status. */
int begin_shared_launch(const char *kernel, size_t dynamic_bytes, SharedLimit *limit);
/** Called by run_launch() at every block start: the block's dynamic shared memory and the launch's limit; forgets
 *  the previous block's static arrays, so that each is poisoned again where the block first declares it. */
void begin_shared_block(unsigned char *dynamic, size_t dynamic_bytes, const SharedLimit &limit);
/** A static shared array's declaration, run by every thread (MDT_SHARED): the block's first thread to reach it
 *  fills it with 0xFF and counts its bytes against the limits (a violation over them). */
void static_shared(void *array, size_t bytes, const char *name);
/** A shared operand of {@code instruction} (cp.async, ldmatrix): {@code bytes} at {@code address} must be 16-byte
 *  aligned and lie inside the block's dynamic shared memory or one static array, as the GPU requires. */
void check_shared_operand(const char *instruction, const void *address, size_t bytes);
/** Whether {@code bytes} at {@code address} lie inside the running block's dynamic shared memory or one static array
 *  it declared so far. */
bool in_shared_memory(const void *address, size_t bytes);

}  // namespace mdt_emu

#define threadIdx (::mdt_emu::thread_index())
#define blockIdx (::mdt_emu::block_index())
#define blockDim (::mdt_emu::block_dim())
#define gridDim (::mdt_emu::grid_dim())
#define warpSize 32

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
// No __shared__: static shared memory is declared only through MDT_SHARED (kernels/common.cuh), which registers
// each array with the emulator, so a raw __shared__ fails to compile instead of escaping the poisoning and limits.
#define __align__(n) alignas(n)

// In the checked build (MDT_EMU_CHECKED) the kernel sources are compiled with -fsanitize=kernel-address: every load
// and store calls memory_check.cpp. The emulator's own inline helpers opt out with MDT_EMU_UNCHECKED and report
// what they touch themselves (atomics), so an atomic is told apart from a plain access.
#ifdef MDT_EMU_CHECKED
#define MDT_EMU_UNCHECKED __attribute__((no_sanitize_address, noinline))
#define MDT_EMU_ATOMIC(address) ::mdt_emu::atomic_access((address), sizeof(*(address)))
#else
#define MDT_EMU_UNCHECKED
#define MDT_EMU_ATOMIC(address) static_cast<void>(0)
#endif

#define MDT_EMU_SITE const char *file_ = __builtin_FILE(), int line_ = __builtin_LINE()
inline void __syncthreads(MDT_EMU_SITE) { ::mdt_emu::sync_threads(file_, line_); }
inline int __syncthreads_count(int p, MDT_EMU_SITE) { return ::mdt_emu::sync_threads_count(p, file_, line_); }
inline void __syncwarp(unsigned mask = 0xffffffffu, MDT_EMU_SITE) {
    ::mdt_emu::sync_warp(mask, {"__syncwarp", file_, line_});
}
inline unsigned __activemask() { return ::mdt_emu::active_mask(); }
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST);
}
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

template <class T>
inline T __shfl_sync(unsigned mask, T value, int source_lane, int width = warpSize, MDT_EMU_SITE) {
    int lane = ::mdt_emu::lane_id();
    int source = (lane & ~(width - 1)) + (source_lane & (width - 1));
    T result;
    ::mdt_emu::warp_exchange(mask, &value, &result, sizeof(T), source, {"__shfl_sync", file_, line_});
    return result;
}

template <class T>
inline T __shfl_xor_sync(unsigned mask, T value, int lane_mask, int width = warpSize, MDT_EMU_SITE) {
    int lane = ::mdt_emu::lane_id();
    int source = lane ^ lane_mask;
    bool inside = (source & ~(width - 1)) == (lane & ~(width - 1));
    T result;
    ::mdt_emu::warp_exchange(mask, &value, &result, sizeof(T), inside ? source : -1, {"__shfl_xor_sync", file_, line_});
    return result;
}

template <class T>
inline T __shfl_down_sync(unsigned mask, T value, unsigned delta, int width = warpSize, MDT_EMU_SITE) {
    int lane = ::mdt_emu::lane_id();
    bool inside = (lane & (width - 1)) + static_cast<int>(delta) < width;
    T result;
    ::mdt_emu::warp_exchange(mask, &value, &result, sizeof(T), inside ? lane + static_cast<int>(delta) : -1,
                             {"__shfl_down_sync", file_, line_});
    return result;
}

template <class T>
inline T __shfl_up_sync(unsigned mask, T value, unsigned delta, int width = warpSize, MDT_EMU_SITE) {
    int lane = ::mdt_emu::lane_id();
    bool inside = (lane & (width - 1)) >= static_cast<int>(delta);
    T result;
    ::mdt_emu::warp_exchange(mask, &value, &result, sizeof(T), inside ? lane - static_cast<int>(delta) : -1,
                             {"__shfl_up_sync", file_, line_});
    return result;
}

inline unsigned __ballot_sync(unsigned mask, int predicate, MDT_EMU_SITE) {
    return ::mdt_emu::ballot(mask, predicate, {"__ballot_sync", file_, line_});
}
inline int __all_sync(unsigned mask, int predicate, MDT_EMU_SITE) {
    // True when no lane that takes part votes false (exited lanes do not take part).
    unsigned votes = ::mdt_emu::ballot(mask, !predicate, {"__all_sync", file_, line_});
    return votes == 0;
}
inline int __any_sync(unsigned mask, int predicate, MDT_EMU_SITE) {
    return ::mdt_emu::ballot(mask, predicate, {"__any_sync", file_, line_}) != 0;
}

// Atomics: the host's atomics, since blocks run on several host threads at once. In the checked build each reports
// its address (in bounds; an atomic, not a race).
MDT_EMU_UNCHECKED inline float atomicAdd(float *address, float value) {
    MDT_EMU_ATOMIC(address);
    uint32_t *word = reinterpret_cast<uint32_t *>(address);
    uint32_t expected = __atomic_load_n(word, __ATOMIC_RELAXED);
    for (;;) {
        float old;
        std::memcpy(&old, &expected, 4);
        float sum = old + value;
        uint32_t desired;
        std::memcpy(&desired, &sum, 4);
        if (__atomic_compare_exchange_n(word, &expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
            return old;
        }
    }
}
MDT_EMU_UNCHECKED inline double atomicAdd(double *address, double value) {
    MDT_EMU_ATOMIC(address);
    uint64_t *word = reinterpret_cast<uint64_t *>(address);
    uint64_t expected = __atomic_load_n(word, __ATOMIC_RELAXED);
    for (;;) {
        double old;
        std::memcpy(&old, &expected, 8);
        double sum = old + value;
        uint64_t desired;
        std::memcpy(&desired, &sum, 8);
        if (__atomic_compare_exchange_n(word, &expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
            return old;
        }
    }
}
MDT_EMU_UNCHECKED inline int atomicAdd(int *address, int value) {
    MDT_EMU_ATOMIC(address);
    return __atomic_fetch_add(address, value, __ATOMIC_SEQ_CST);
}
MDT_EMU_UNCHECKED inline unsigned atomicAdd(unsigned *address, unsigned value) {
    MDT_EMU_ATOMIC(address);
    return __atomic_fetch_add(address, value, __ATOMIC_SEQ_CST);
}
MDT_EMU_UNCHECKED inline unsigned long long atomicAdd(unsigned long long *address, unsigned long long value) {
    MDT_EMU_ATOMIC(address);
    return __atomic_fetch_add(address, value, __ATOMIC_SEQ_CST);
}
MDT_EMU_UNCHECKED inline int atomicSub(int *address, int value) {
    MDT_EMU_ATOMIC(address);
    return __atomic_fetch_sub(address, value, __ATOMIC_SEQ_CST);
}
MDT_EMU_UNCHECKED inline int atomicExch(int *address, int value) {
    MDT_EMU_ATOMIC(address);
    return __atomic_exchange_n(address, value, __ATOMIC_SEQ_CST);
}
MDT_EMU_UNCHECKED inline unsigned atomicOr(unsigned *address, unsigned value) {
    MDT_EMU_ATOMIC(address);
    return __atomic_fetch_or(address, value, __ATOMIC_SEQ_CST);
}
template <class T>
MDT_EMU_UNCHECKED inline T atomic_cas_value(T *address, T compare, T value) {
    MDT_EMU_ATOMIC(address);
    __atomic_compare_exchange_n(address, &compare, value, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return compare;  // the old value: unchanged compare on success, the current value on failure
}
inline int atomicCAS(int *a, int c, int v) { return atomic_cas_value(a, c, v); }
inline unsigned atomicCAS(unsigned *a, unsigned c, unsigned v) { return atomic_cas_value(a, c, v); }
inline unsigned long long atomicCAS(unsigned long long *a, unsigned long long c, unsigned long long v) {
    return atomic_cas_value(a, c, v);
}
template <class T>
MDT_EMU_UNCHECKED inline T atomic_max_value(T *address, T value) {
    MDT_EMU_ATOMIC(address);
    T old = __atomic_load_n(address, __ATOMIC_RELAXED);
    while (old < value &&
           !__atomic_compare_exchange_n(address, &old, value, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
    }
    return old;
}
template <class T>
MDT_EMU_UNCHECKED inline T atomic_min_value(T *address, T value) {
    MDT_EMU_ATOMIC(address);
    T old = __atomic_load_n(address, __ATOMIC_RELAXED);
    while (old > value &&
           !__atomic_compare_exchange_n(address, &old, value, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
    }
    return old;
}
inline int atomicMax(int *a, int v) { return atomic_max_value(a, v); }
inline unsigned atomicMax(unsigned *a, unsigned v) { return atomic_max_value(a, v); }
inline int atomicMin(int *a, int v) { return atomic_min_value(a, v); }
inline unsigned atomicMin(unsigned *a, unsigned v) { return atomic_min_value(a, v); }

// Intrinsics with the GPU's results (IEEE round-to-nearest where CUDA's _rn forms promise it).
inline float __int_as_float(int v) { float f; std::memcpy(&f, &v, 4); return f; }
inline int __float_as_int(float f) { int v; std::memcpy(&v, &f, 4); return v; }
inline unsigned __float_as_uint(float f) { unsigned v; std::memcpy(&v, &f, 4); return v; }
inline float __uint_as_float(unsigned v) { float f; std::memcpy(&f, &v, 4); return f; }
inline float __uint2float_rn(unsigned v) { return static_cast<float>(v); }
inline double __uint2double_rn(unsigned v) { return static_cast<double>(v); }
inline unsigned __umulhi(unsigned a, unsigned b) {
    return static_cast<unsigned>((static_cast<uint64_t>(a) * b) >> 32);
}
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
inline int __popc(unsigned v) { return __builtin_popcount(v); }
inline int __ffs(int v) { return __builtin_ffs(v); }
inline int __clz(int v) { return v == 0 ? 32 : __builtin_clz(static_cast<unsigned>(v)); }

// bf16 as CUDA's cuda_bf16.h: round-to-nearest-even from float, NaN to the canonical 0x7FFF.
struct __nv_bfloat16 {
    unsigned short __x;
};
inline __nv_bfloat16 __float2bfloat16_rn(float value) {
    uint32_t bits;
    std::memcpy(&bits, &value, 4);
    __nv_bfloat16 result;
    if ((bits & 0x7fffffffu) > 0x7f800000u) {
        result.__x = 0x7fff;
        return result;
    }
    uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
    result.__x = static_cast<unsigned short>((bits + rounding) >> 16);
    return result;
}
inline __nv_bfloat16 __float2bfloat16(float value) { return __float2bfloat16_rn(value); }
inline float __bfloat162float(__nv_bfloat16 value) {
    uint32_t bits = static_cast<uint32_t>(value.__x) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

#endif
