// Self-test kernels for the execution model the other kernels rely on: block barriers over shared memory,
// warp shuffles and votes, atomics, bf16 rounding, the tensor-core wrappers of common.cuh (one m16n8k16 MMA,
// ldmatrix with and without .trans), cp.async, shuffles in a partly exited warp, and the shared-memory limit on
// static + dynamic bytes with and without the opt-in. Each writes results that a
// test compares with values worked out by hand (src/test/java/io/microdit/backend/cuda/EmulatorPrimitivesTest.java). The same kernels
// run on a GPU (tag gpu), which checks the emulator and the hardware agree. Emulator-only kernels break a rule of
// the hardware on purpose, each to be reported as an error by the stricter emulator (or, block_order, to show a race
// that depends on the block order; blocks_meet shows blocks running at once on the emulator's host threads). Cost:
// negligible, but for blocks_meet on one emulator thread (a two-second wait in vain).
#include <string.h>

#include "common.cuh"

#ifndef __CUDACC__
#include <chrono>
#endif

namespace {

/** out[t] = value written by thread (t+1) % B into dynamic shared memory before the barrier, then a second
 *  round: out[B + t] = sum of the first-round reads of t and its left neighbour. */
__global__ void barrier_kernel(float *out) {
    MDT_DYNAMIC_SHARED(float, shared);
    int t = threadIdx.x, size = blockDim.x;
    shared[t] = static_cast<float>(t + 1);
    __syncthreads();
    float first = shared[(t + 1) % size];
    __syncthreads();
    shared[t] = first;
    __syncthreads();
    out[t] = first;
    out[size + t] = first + shared[(t + size - 1) % size];
}

/** Per thread t (lane l): 6 values: shfl(l*10 from lane 3), xor 1, down 4, up 2, shfl width 8 from lane 5, and a
 *  warp sum of l. */
__global__ void shuffle_kernel(float *out) {
    int t = threadIdx.x, lane = t % 32;
    float v = static_cast<float>(lane * 10);
    float *o = out + t * 6;
    o[0] = __shfl_sync(mdt::kFullMask, v, 3);
    o[1] = __shfl_xor_sync(mdt::kFullMask, static_cast<float>(lane), 1);
    o[2] = __shfl_down_sync(mdt::kFullMask, static_cast<float>(lane), 4);
    o[3] = __shfl_up_sync(mdt::kFullMask, static_cast<float>(lane), 2);
    o[4] = __shfl_sync(mdt::kFullMask, static_cast<float>(lane), 5, 8);
    o[5] = mdt::warp_sum(static_cast<float>(lane));
}

/** Per warp w: ballot(lane % 3 == 0), all(lane < 40), all(lane < 31), any(lane == 5), any(lane > 40), as bits. */
__global__ void vote_kernel(float *out) {
    int t = threadIdx.x, lane = t % 32, warp = t / 32;
    unsigned ballot = __ballot_sync(mdt::kFullMask, lane % 3 == 0);
    int all_true = __all_sync(mdt::kFullMask, lane < 40);
    int all_false = __all_sync(mdt::kFullMask, lane < 31);
    int any_true = __any_sync(mdt::kFullMask, lane == 5);
    int any_false = __any_sync(mdt::kFullMask, lane > 40);
    __syncwarp();
    if (lane == 0) {
        float *o = out + warp * 5;
        o[0] = __int_as_float(static_cast<int>(ballot));
        o[1] = static_cast<float>(all_true);
        o[2] = static_cast<float>(all_false);
        o[3] = static_cast<float>(any_true);
        o[4] = static_cast<float>(any_false);
    }
}

/** out[0] += 0.5 per thread (float), out[1] counts threads (int), out[2] = max over threads of (t·7 + block) % 101
 *  (int), out[3] = number of threads whose CAS from 0 to 1 on a flag succeeded (int, must be 1), out[4] the flag. */
__global__ void atomics_kernel(float *out) {
    int t = threadIdx.x + blockIdx.x * blockDim.x;
    atomicAdd(&out[0], 0.5f);
    atomicAdd(reinterpret_cast<int *>(&out[1]), 1);
    atomicMax(reinterpret_cast<int *>(&out[2]), (t * 7 + static_cast<int>(blockIdx.x)) % 101);
    if (atomicCAS(reinterpret_cast<int *>(&out[4]), 0, 1) == 0) atomicAdd(reinterpret_cast<int *>(&out[3]), 1);
}

/** bf16 round-to-nearest-even of hand-picked bit patterns; out[i] holds the 16 result bits. */
__global__ void bf16_kernel(float *out) {
    const unsigned inputs[] = {
        0x3f800000u,  // 1.0: exact
        0x3f808000u,  // 1 + 2^-8: a tie, rounds to the even 0x3f80
        0x3f818000u,  // 1 + 3·2^-8: a tie, rounds to the even 0x3f82
        0x3f808001u,  // just above the tie: up to 0x3f81
        0x3f807fffu,  // just below the tie: down to 0x3f80
        0xbf818000u,  // negative tie: 0xbf82
        0x7f7fffffu,  // largest float: rounds up to infinity 0x7f80
        0x00012345u,  // a subnormal: 0x0001
        0x7fc00001u,  // NaN: the canonical 0x7fff
        0xff800000u,  // -infinity: 0xff80
    };
    int t = threadIdx.x;
    if (t < 10) {
        __nv_bfloat16 b = __float2bfloat16_rn(__uint_as_float(inputs[t]));
        out[t] = static_cast<float>(*reinterpret_cast<unsigned short *>(&b));
        out[10 + t] = __bfloat162float(b);
    }
}

/** Block sum of t through common.cuh's block_sum, written by every thread. */
__global__ void block_sum_kernel(float *out) {
    MDT_SHARED(float, scratch, [32]);
    float total = mdt::block_sum(static_cast<float>(threadIdx.x), scratch);
    out[threadIdx.x] = total;
}

// The integer-valued operands of the MMA self-test (exact in bf16 and in every f32 partial sum); the Java test
// computes D = A·B + C from the same formulas.
__device__ __forceinline__ float mma_test_a(int row, int k) { return static_cast<float>((row * 3 + k * 5) % 7 - 3); }
__device__ __forceinline__ float mma_test_b(int k, int column) { return static_cast<float>((k * 2 + column * 3) % 5 - 2); }
__device__ __forceinline__ float mma_test_c(int row, int column) { return static_cast<float>(row - 2 * column) + 0.25f; }

/** One warp: each lane builds its A, B and C fragments by the ISA layout (common.cuh), runs one MMA and writes its
 *  four D elements to out[row · 8 + column]. */
__global__ void mma_kernel(float *out) {
    int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    uint32_t a[4], b[2];
    float c[4], d[4];
    for (int i = 0; i < 4; i++) {
        int row = g + 8 * (i % 2), k = 2 * t + 8 * (i / 2);
        a[i] = mdt::pack_bf16x2(mma_test_a(row, k), mma_test_a(row, k + 1));
    }
    for (int i = 0; i < 2; i++) {
        int k = 2 * t + 8 * i;
        b[i] = mdt::pack_bf16x2(mma_test_b(k, g), mma_test_b(k + 1, g));
    }
    for (int i = 0; i < 4; i++) c[i] = mma_test_c(g + 8 * (i / 2), 2 * t + i % 2);
    mdt::mma_m16n8k16_bf16(d, a, b, c);
    for (int i = 0; i < 4; i++) out[(g + 8 * (i / 2)) * 8 + 2 * t + i % 2] = d[i];
}

// The tf32 MMA self-test's operands: a nonzero integer in [-3, 3] less 2^-12 (at most half a tf32 unit), so
// to_tf32 (nearest) gives the integer back, where the tensor cores' truncation of the raw bits would give a
// positive one less a unit; integer products and sums are exact in f32 in any order.
__device__ __forceinline__ float mma_tf32_test_value(int v) {
    return static_cast<float>(v >= 0 ? v + 1 : v) - 0.000244140625f;
}
__device__ __forceinline__ float mma_tf32_test_a(int row, int k) {
    return mma_tf32_test_value((row * 5 + k * 3) % 6 - 3);
}
__device__ __forceinline__ float mma_tf32_test_b(int k, int column) {
    return mma_tf32_test_value((k * 3 + column * 2) % 6 - 3);
}

/** One warp (checked by Tf32PrimitivesTest): one m16n8k8 tf32 MMA with fragments built by the ISA layout (common.cuh) from rounded operands, D to
 *  out[row · 8 + column] (128 floats; C[r][c] = mma_test_c(r, c)); then lane i < 16 writes the bits of
 *  to_tf32(input i) to out[128 + i]: ties (even and odd kept bit, both signs), either side of a tie, a carry into
 *  the exponent, past the largest tf32, infinities, NaN, subnormals and zeros. */
__global__ void mma_tf32_kernel(float *out) {
    const uint32_t inputs[16] = {0x3f801000u, 0x3f803000u, 0xbf801000u, 0x3f800fffu, 0x3f801001u, 0x3fffffffu,
                                 0x7f7fffffu, 0x7f800000u, 0xff800000u, 0x7fc00000u, 0x00000fffu, 0x00001000u,
                                 0x807ff000u, 0x00000000u, 0x80000000u, 0x4049ce3fu};
    int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    uint32_t a[4], b[2];
    float c[4], d[4];
    for (int i = 0; i < 4; i++) a[i] = mdt::to_tf32(mma_tf32_test_a(g + 8 * (i % 2), t + 4 * (i / 2)));
    for (int i = 0; i < 2; i++) b[i] = mdt::to_tf32(mma_tf32_test_b(t + 4 * i, g));
    for (int i = 0; i < 4; i++) c[i] = mma_test_c(g + 8 * (i / 2), 2 * t + i % 2);
    mdt::mma_m16n8k8_tf32(d, a, b, c);
    for (int i = 0; i < 4; i++) out[(g + 8 * (i / 2)) * 8 + 2 * t + i % 2] = d[i];
    if (lane < 16) {
        float value;
        memcpy(&value, &inputs[lane], 4);
        uint32_t rounded = mdt::to_tf32(value);
        memcpy(&out[128 + lane], &rounded, 4);
    }
}

/** A 16×16 bf16 matrix S[r][c] = 16r + c in shared memory with a padded row stride of 24; lane l gives the row
 *  address of row (l mod 8) + 8·((l/8) mod 2), column 8·(l/16) (matrix l/8 is a quarter of S). Per lane 20
 *  values: the 8 halves of ldmatrix_x4, of ldmatrix_x4_trans, then the 4 of ldmatrix_x2. */
__global__ void ldmatrix_kernel(float *out) {
    constexpr int kStride = 24;
    MDT_SHARED_ALIGNED(16, uint16_t, s, [16 * kStride]);  // bf16 bits
    int lane = threadIdx.x % 32;
    for (int e = lane; e < 16 * kStride; e += 32) {
        __nv_bfloat16 value = __float2bfloat16_rn(static_cast<float>(e / kStride * 16 + e % kStride));
        s[e] = *reinterpret_cast<uint16_t *>(&value);
    }
    __syncwarp();
    const uint16_t *row = s + ((lane % 8) + 8 * ((lane / 8) % 2)) * kStride + 8 * (lane / 16);
    uint32_t r[10];
    mdt::ldmatrix_x4(r, row);
    mdt::ldmatrix_x4_trans(r + 4, row);
    mdt::ldmatrix_x2(r + 8, row);
    for (int i = 0; i < 10; i++) {
        out[lane * 20 + 2 * i] = __uint_as_float(r[i] << 16);
        out[lane * 20 + 2 * i + 1] = __uint_as_float(r[i] & 0xffff0000u);
    }
}

/** cp.async of 16-byte chunks, source sizes 0, 8, 16 by thread (zero-filled past them): a block of 32 writes
 *  out[256 + i] = i + 1 (i < 128) to global memory, thread t copies chunk t into shared memory, and after the wait
 *  and a barrier out[i] = shared[(i + 4) mod 128]: chunks of other threads. */
__global__ void cp_async_kernel(float *out) {
    MDT_SHARED_ALIGNED(16, float, chunks, [128]);
    int t = threadIdx.x;
    float *source = out + 256;  // 1 KiB into a 256-byte aligned allocation
    for (int i = 0; i < 4; i++) source[4 * t + i] = static_cast<float>(4 * t + i + 1);
    __syncthreads();
    mdt::cp_async_16(chunks + 4 * t, source + 4 * t, t % 3 * 8);
    mdt::cp_async_commit();
    mdt::cp_async_wait<0>();
    __syncthreads();
    for (int i = t; i < 128; i += 32) out[i] = chunks[(i + 4) % 128];
}

/** One warp: lanes 16..31 exit; lanes 0..15 exchange with lane ^ 1 twice, once under their own mask, once under
 *  the full mask (exited lanes named in a mask are not waited for); out[t] and out[16 + t]. */
__global__ void partial_warp_kernel(float *out) {
    int t = threadIdx.x;
    if (t >= 16) return;
    out[t] = __shfl_xor_sync(0x0000ffffu, static_cast<float>(t), 1);
    out[16 + t] = __shfl_xor_sync(mdt::kFullMask, static_cast<float>(t * 10), 1);
}

/** 16 KiB of static shared memory next to the launch's dynamic bytes (at least 4 per thread), both in use: thread
 *  t writes t + 1 and 2t, and out[block · B + t] = the sum of what its right neighbour n = (t + 1) mod B wrote. */
__global__ void shared_limit_kernel(float *out) {
    MDT_SHARED(float, table, [4096]);
    MDT_DYNAMIC_SHARED(float, dynamic);
    int t = threadIdx.x, size = blockDim.x;
    table[t] = static_cast<float>(t + 1);
    dynamic[t] = static_cast<float>(2 * t);
    __syncthreads();
    out[blockIdx.x * size + t] = table[(t + 1) % size] + dynamic[(t + 1) % size];
}

#ifndef __CUDACC__
// Kernels that break a rule of the hardware: the emulator must end each launch with an error (on a GPU they fault,
// which poisons the context, or give undefined results, so they are emulator-only).

/** Reads shared memory before the cp.async into it is waited for: the emulator shows the 0xFF fill (NaN) there. */
__global__ void cp_async_early_kernel(float *out) {
    MDT_DYNAMIC_SHARED(float, chunks);
    int t = threadIdx.x;
    float *source = out + 256;
    for (int i = 0; i < 4; i++) source[4 * t + i] = static_cast<float>(t + 1);
    mdt::cp_async_16(chunks + 4 * t, source + 4 * t, 16);
    mdt::cp_async_commit();
    out[t] = chunks[4 * t];  // too early
    mdt::cp_async_wait<0>();
    out[32 + t] = chunks[4 * t];
}

/** cp.async from a global address 8 bytes past 16-byte alignment. */
__global__ void cp_async_misaligned_kernel(float *out) {
    MDT_DYNAMIC_SHARED(float, chunks);
    mdt::cp_async_16(chunks + 4 * threadIdx.x, out + 2 + 4 * threadIdx.x, 16);
    mdt::cp_async_commit();
    mdt::cp_async_wait<0>();
}

/** ldmatrix with row addresses 2 bytes past 16-byte alignment. */
__global__ void ldmatrix_misaligned_kernel(float *out) {
    MDT_SHARED_ALIGNED(16, uint16_t, s, [16 * 24]);
    for (int e = threadIdx.x; e < 16 * 24; e += 32) s[e] = 0;
    __syncwarp();
    uint32_t r[4];
    mdt::ldmatrix_x4(r, s + (threadIdx.x % 16) * 24 + 1);
    out[threadIdx.x] = __uint_as_float(r[0]);
}

/** Every lane shuffles under mask 0x0000ffff: lanes 16..31 are not in their own mask. */
__global__ void shuffle_own_lane_kernel(float *out) {
    out[threadIdx.x] = __shfl_sync(0x0000ffffu, 1.0f, 0);
}

/** Lanes 16..31 exit; lanes 0..15 read lane + 16, which no longer takes part (an undefined value on the GPU). */
__global__ void shuffle_exited_kernel(float *out) {
    int t = threadIdx.x;
    if (t >= 16) return;
    out[t] = __shfl_sync(mdt::kFullMask, static_cast<float>(t), t + 16);
}

/** The two halves of a warp shuffle under the full mask at different calls (divergent code). */
__global__ void divergent_shuffle_kernel(float *out) {
    int t = threadIdx.x;
    float v = static_cast<float>(t);
    if (t < 16) {
        out[t] = __shfl_xor_sync(mdt::kFullMask, v, 1);
    } else {
        out[t] = __shfl_xor_sync(mdt::kFullMask, v, 2);
    }
}

/** Half of the block waits at one __syncthreads, the other half at another. */
__global__ void divergent_barrier_kernel(float *out) {
    if (threadIdx.x < 16) {
        __syncthreads();
        out[threadIdx.x] = 1.0f;
    } else {
        __syncthreads();
        out[threadIdx.x] = 2.0f;
    }
}

/** out[block · B + t] = dynamic shared[t] before any write, then writes it: every block must see the 0xFF fill. */
__global__ void shared_poison_kernel(float *out) {
    MDT_DYNAMIC_SHARED(float, shared);
    int t = threadIdx.x;
    out[blockIdx.x * blockDim.x + t] = shared[t];
    shared[t] = 1.0f;
}

/** out[block · B + t] = static shared[t] before any write, then writes it: every block must see the 0xFF fill,
 *  not the previous block's values. */
__global__ void static_shared_poison_kernel(float *out) {
    MDT_SHARED(float, values, [1024]);
    int t = threadIdx.x;
    out[blockIdx.x * blockDim.x + t] = values[t];
    values[t] = static_cast<float>(blockIdx.x + 1);
}

/** 32 KiB + 16 KiB + 4 bytes of static shared memory: more than a kernel may declare (ptxas refuses it). */
__global__ void static_over_limit_kernel(float *out) {
    MDT_SHARED(float, first, [8192]);
    MDT_SHARED(float, second, [4097]);
    first[threadIdx.x] = second[threadIdx.x] = 1.0f;
    out[threadIdx.x] = first[threadIdx.x] + second[threadIdx.x];
}

/** ldmatrix with 16-byte-aligned row addresses in global memory instead of shared memory. */
__global__ void ldmatrix_global_kernel(float *out) {
    uint32_t r[4];
    mdt::ldmatrix_x4(r, out + 4 * (threadIdx.x % 32));
    out[threadIdx.x] = __uint_as_float(r[0]);
}

/** ldmatrix of rows 16 bytes apart in dynamic shared memory: lane l's row ends at 16(l + 1) bytes, past the end of
 *  fewer than 512 dynamic bytes. */
__global__ void ldmatrix_past_shared_kernel(float *out) {
    MDT_DYNAMIC_SHARED(uint16_t, rows);
    for (int e = threadIdx.x; e < 256; e += 32) rows[e] = 0;
    __syncwarp();
    uint32_t r[4];
    mdt::ldmatrix_x4(r, rows + 8 * (threadIdx.x % 32));
    out[threadIdx.x] = __uint_as_float(r[0]);
}

/** cp.async whose destination is global memory instead of shared memory (both 16-byte aligned). */
__global__ void cp_async_global_kernel(float *out) {
    int t = threadIdx.x;
    mdt::cp_async_16(out + 4 * t, out + 256 + 4 * t, 16);
    mdt::cp_async_commit();
    mdt::cp_async_wait<0>();
}

/** A race on purpose (so emulator only): thread 0 of every block writes its block index into out[0], the last
 *  writer wins; out[2 + b] = the position at which block b ran (an atomic ticket in out[1]). Shows the order that
 *  mdt_emu_block_order sets, when one emulator thread runs the blocks one after another (mdt_emu_threads). */
__global__ void block_order_kernel(float *out) {
    if (threadIdx.x != 0) return;
    out[0] = static_cast<float>(blockIdx.x);
    out[2 + blockIdx.x] = static_cast<float>(atomicAdd(reinterpret_cast<int *>(&out[1]), 1));
}

/**
 * Thread 0 of the calling block counts itself in *arrivals and waits, for at most two seconds, until two blocks have
 * arrived; whether they met. Two blocks meet only when they run at once, on two of the emulator's host threads
 * (mdt_emu_threads): with one, the first block waits in vain.
 */
__device__ bool meet(int *arrivals) {
    atomicAdd(arrivals, 1);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (atomicAdd(arrivals, 0) < 2) {
        if (std::chrono::steady_clock::now() > deadline) return false;
    }
    return true;
}

/** Two blocks meet (meet, arrivals in out[0]); out[1] counts the blocks that saw the other one arrive. */
__global__ void blocks_meet_kernel(float *out) {
    if (threadIdx.x != 0) return;
    bool met = meet(reinterpret_cast<int *>(out));
    atomicAdd(reinterpret_cast<int *>(&out[1]), met ? 1 : 0);
}

/** Two blocks meet (blocks_meet_kernel) and both then break a rule (a __syncwarp whose mask leaves out the calling
 *  lane), block 1 at once and block 0 a fifth of a second later: the launch must report block 0, the first in claim
 *  order, not the first to fail. */
__global__ void first_failure_kernel(float *out) {
    if (threadIdx.x != 0) return;
    meet(reinterpret_cast<int *>(out));
    if (blockIdx.x == 0) {
        auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
        while (std::chrono::steady_clock::now() < until) {
        }
    }
    __syncwarp(0u);
}

#ifdef MDT_EMU_CHECKED
// Faults only the checked emulator sees (libmicrodit_emu_checked.so): each must end the launch with
// MDT_ERROR_OUT_OF_BOUNDS or MDT_ERROR_RACE before the faulty access happens (a write into freed memory would
// otherwise corrupt the host heap), and access patterns whose cost the performance model must count exactly.

/** Every thread reads one float past the end of the n-float allocation. */
__global__ void read_past_end_kernel(float *out, int64_t n) { out[threadIdx.x] = out[n + threadIdx.x]; }

/** A float4 load whose first floats are the allocation's last ones (n not a multiple of 4) and the rest past it. */
__global__ void vector_past_end_kernel(float *out, int64_t n) {
    const float4 *tail = reinterpret_cast<const float4 *>(out + n / 4 * 4);
    reinterpret_cast<float4 *>(out)[threadIdx.x] = *tail;
}

/** Writes into an allocation that was freed before the launch. */
__global__ void write_freed_kernel(float *freed) { freed[threadIdx.x] = 1.0f; }

/** Thread 0 of block b writes out[b], then reads out[b - 1], which block b - 1 wrote: a race between blocks. */
__global__ void block_race_kernel(float *out) {
    if (threadIdx.x != 0) return;
    int b = blockIdx.x, blocks = gridDim.x;
    out[b] = static_cast<float>(b);
    out[blocks + b] = out[(b + blocks - 1) % blocks];
}

/** Two blocks meet (blocks_meet_kernel), then block 0 writes out[2] while block 1 reads it: a race between blocks
 *  that run at the same time on two host threads. */
__global__ void concurrent_race_kernel(float *out) {
    if (threadIdx.x != 0) return;
    meet(reinterpret_cast<int *>(out));
    if (blockIdx.x == 0) {
        out[2] = 1.0f;
    } else {
        out[3] = out[2];
    }
}

/** Thread t writes values[t]; threads of the second warp then read values[t - 32], which the first warp wrote,
 *  with no barrier between. */
__global__ void shared_race_kernel(float *out) {
    MDT_SHARED(float, values, [1024]);
    int t = threadIdx.x;
    values[t] = static_cast<float>(t);
    out[t] = t >= 32 ? values[t - 32] : 0.0f;
}

/** One warp: lane l writes words[l], and after a barrier reads words[l * stride]: stride 32 puts all 32 lanes in
 *  bank 0 (32 wavefronts), stride 1 is conflict-free. The store to out is coalesced (4 sectors). */
__global__ void shared_stride_kernel(float *out, int stride) {
    MDT_SHARED(float, words, [32 * 32]);
    int lane = threadIdx.x;
    words[lane] = static_cast<float>(lane);
    __syncthreads();
    out[lane] = words[lane * stride];
}

/** One warp: lane l loads in[l * stride] (in = out + 64): stride 1 touches 4 sectors, stride 8 (32 bytes apart) 32
 *  sectors for the same 128 bytes; the store to out is coalesced. */
__global__ void global_stride_kernel(float *out, int stride) {
    const float *in = out + 64;
    int lane = threadIdx.x;
    out[lane] = in[lane * stride];
}
#endif

/** Lanes 0..15 wait at __syncthreads while lanes 16..31 wait at a full-warp __syncwarp: neither can finish. */
__global__ void deadlock_kernel(float *out) {
    if (threadIdx.x < 16) {
        __syncthreads();
    } else {
        __syncwarp();
    }
    out[threadIdx.x] = 1.0f;
}
#endif

}  // namespace

extern "C" int mdt_selftest_run(const char *name, int grid_x, int block_x, int shared_bytes, float *host_out,
                                int64_t capacity) {
    MDT_REQUIRE(name && host_out && capacity > 0, "mdt_selftest_run: NULL name or output");
    MDT_REQUIRE(grid_x >= 0 && block_x >= 0 && shared_bytes >= 0, "mdt_selftest_run: negative launch shape");
    size_t bytes = static_cast<size_t>(capacity) * sizeof(float);
    void *device = nullptr;
    if (int s = mdt_malloc(&device, bytes)) return s;
    float *out = static_cast<float *>(device);
    int status = mdt_memset(out, 0, bytes, nullptr);
    dim3 grid(static_cast<unsigned>(grid_x)), block(static_cast<unsigned>(block_x));
    size_t shared = static_cast<size_t>(shared_bytes);
    if (status != MDT_SUCCESS) {
    } else if (strcmp(name, "barrier") == 0) {
        status = MDT_LAUNCH(barrier_kernel, grid, block, shared, nullptr, out);
    } else if (strcmp(name, "shuffle") == 0) {
        status = MDT_LAUNCH(shuffle_kernel, grid, block, shared, nullptr, out);
    } else if (strcmp(name, "vote") == 0) {
        status = MDT_LAUNCH(vote_kernel, grid, block, shared, nullptr, out);
    } else if (strcmp(name, "atomics") == 0) {
        status = MDT_LAUNCH(atomics_kernel, grid, block, shared, nullptr, out);
    } else if (strcmp(name, "bf16") == 0) {
        status = MDT_LAUNCH(bf16_kernel, grid, block, shared, nullptr, out);
    } else if (strcmp(name, "mma") == 0) {
        status = MDT_LAUNCH(mma_kernel, grid, block, shared, nullptr, out);
    } else if (strcmp(name, "mma_tf32") == 0) {
        status = MDT_LAUNCH(mma_tf32_kernel, grid, block, shared, nullptr, out);
    } else if (strcmp(name, "ldmatrix") == 0) {
        status = MDT_LAUNCH(ldmatrix_kernel, grid, block, shared, nullptr, out);
    } else if (strcmp(name, "block_sum") == 0) {
        status = MDT_LAUNCH(block_sum_kernel, grid, block, shared, nullptr, out);
    } else if (strcmp(name, "cp_async") == 0) {
        status = MDT_LAUNCH(cp_async_kernel, grid, block, shared, nullptr, out);
    } else if (strcmp(name, "partial_warp") == 0) {
        status = MDT_LAUNCH(partial_warp_kernel, grid, block, shared, nullptr, out);
    } else if (strcmp(name, "shared_limit") == 0) {
        status = MDT_LAUNCH(shared_limit_kernel, grid, block, shared, nullptr, out);
    } else if (strcmp(name, "shared_limit_opt_in") == 0) {
        status = MDT_LAUNCH_OPT_IN(shared_limit_kernel, grid, block, shared, nullptr, out);
#ifndef __CUDACC__
    } else if (strcmp(name, "deadlock") == 0) {
        status = MDT_LAUNCH(deadlock_kernel, grid, block, shared, nullptr, out);
    } else if (strcmp(name, "cp_async_early") == 0) {
        status = MDT_LAUNCH(cp_async_early_kernel, grid, block, shared, nullptr, out);
    } else if (strcmp(name, "cp_async_misaligned") == 0) {
        status = MDT_LAUNCH(cp_async_misaligned_kernel, grid, block, shared, nullptr, out);
    } else if (strcmp(name, "ldmatrix_misaligned") == 0) {
        status = MDT_LAUNCH(ldmatrix_misaligned_kernel, grid, block, shared, nullptr, out);
    } else if (strcmp(name, "shuffle_own_lane") == 0) {
        status = MDT_LAUNCH(shuffle_own_lane_kernel, grid, block, shared, nullptr, out);
    } else if (strcmp(name, "shuffle_exited") == 0) {
        status = MDT_LAUNCH(shuffle_exited_kernel, grid, block, shared, nullptr, out);
    } else if (strcmp(name, "divergent_shuffle") == 0) {
        status = MDT_LAUNCH(divergent_shuffle_kernel, grid, block, shared, nullptr, out);
    } else if (strcmp(name, "divergent_barrier") == 0) {
        status = MDT_LAUNCH(divergent_barrier_kernel, grid, block, shared, nullptr, out);
    } else if (strcmp(name, "block_order") == 0) {
        status = capacity < 2 + static_cast<int64_t>(grid_x)
                     ? mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_selftest_run: block_order needs 2 + grid_x floats")
                     : MDT_LAUNCH(block_order_kernel, grid, block, shared, nullptr, out);
    } else if (strcmp(name, "blocks_meet") == 0) {
        status = capacity < 2 ? mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_selftest_run: blocks_meet needs 2 floats")
                              : MDT_LAUNCH(blocks_meet_kernel, grid, block, shared, nullptr, out);
    } else if (strcmp(name, "first_failure") == 0) {
        status = MDT_LAUNCH(first_failure_kernel, grid, block, shared, nullptr, out);
    } else if (strcmp(name, "shared_poison") == 0) {
        status = MDT_LAUNCH(shared_poison_kernel, grid, block, shared, nullptr, out);
    } else if (strcmp(name, "static_shared_poison") == 0) {
        status = MDT_LAUNCH(static_shared_poison_kernel, grid, block, shared, nullptr, out);
    } else if (strcmp(name, "static_over_limit") == 0) {
        status = MDT_LAUNCH_OPT_IN(static_over_limit_kernel, grid, block, shared, nullptr, out);
    } else if (strcmp(name, "ldmatrix_global") == 0) {
        status = MDT_LAUNCH(ldmatrix_global_kernel, grid, block, shared, nullptr, out);
    } else if (strcmp(name, "ldmatrix_past_shared") == 0) {
        status = MDT_LAUNCH(ldmatrix_past_shared_kernel, grid, block, shared, nullptr, out);
    } else if (strcmp(name, "cp_async_global") == 0) {
        status = MDT_LAUNCH(cp_async_global_kernel, grid, block, shared, nullptr, out);
#ifdef MDT_EMU_CHECKED
    } else if (strcmp(name, "read_past_end") == 0) {
        status = MDT_LAUNCH(read_past_end_kernel, grid, block, shared, nullptr, out, capacity);
    } else if (strcmp(name, "vector_past_end") == 0) {
        status = capacity % 4 == 0
                     ? mdt::fail(MDT_ERROR_INVALID_ARGUMENT,
                                 "mdt_selftest_run: vector_past_end needs a capacity that is not a multiple of 4")
                     : MDT_LAUNCH(vector_past_end_kernel, grid, block, shared, nullptr, out, capacity);
    } else if (strcmp(name, "write_freed") == 0) {
        void *freed = nullptr;
        status = mdt_malloc(&freed, bytes);
        if (status == MDT_SUCCESS) status = mdt_free(freed);
        if (status == MDT_SUCCESS) {
            status = MDT_LAUNCH(write_freed_kernel, grid, block, shared, nullptr, static_cast<float *>(freed));
        }
    } else if (strcmp(name, "block_race") == 0) {
        status = MDT_LAUNCH(block_race_kernel, grid, block, shared, nullptr, out);
    } else if (strcmp(name, "concurrent_race") == 0) {
        status = capacity < 4 ? mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_selftest_run: concurrent_race needs 4 floats")
                              : MDT_LAUNCH(concurrent_race_kernel, grid, block, shared, nullptr, out);
    } else if (strcmp(name, "shared_race") == 0) {
        status = MDT_LAUNCH(shared_race_kernel, grid, block, shared, nullptr, out);
    } else if (strcmp(name, "shared_conflicts") == 0 || strcmp(name, "shared_no_conflicts") == 0) {
        int stride = strcmp(name, "shared_conflicts") == 0 ? 32 : 1;
        status = MDT_LAUNCH(shared_stride_kernel, grid, block, shared, nullptr, out, stride);
    } else if (strcmp(name, "global_strided") == 0 || strcmp(name, "global_coalesced") == 0) {
        int stride = strcmp(name, "global_strided") == 0 ? 8 : 1;
        status = capacity < 64 + 32 * stride
                     ? mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_selftest_run: %s needs %d floats", name,
                                 64 + 32 * stride)
                     : MDT_LAUNCH(global_stride_kernel, grid, block, shared, nullptr, out, stride);
#endif
#endif
    } else {
        status = mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_selftest_run: no self-test named '%s'", name);
    }
    if (status == MDT_SUCCESS) status = mdt_memcpy_dtoh(host_out, out, bytes, nullptr);
    if (status == MDT_SUCCESS) status = mdt_device_synchronize();
    mdt_free(device);
    return status;
}
