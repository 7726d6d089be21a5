// The fiber scheduler behind mdt_emu.h. One launch runs its blocks one after another on the calling thread;
// inside a block every CUDA thread is a ucontext fiber with its own stack. Fibers switch only where a GPU
// thread could wait for others (barriers, shuffles, votes), and the scheduler resumes them round-robin. A full
// round in which no fiber arrived anywhere, released a barrier or finished is a deadlock.
#include <sys/mman.h>
#include <ucontext.h>

#include <cstdio>
#include <string>
#include <vector>

#include "mdt_emu.h"
#include "microdit.h"
#include "status.h"

namespace mdt_emu {

namespace {
constexpr size_t kStackBytes = 256 * 1024;
}

struct Fiber {
    ucontext_t context;
    uint3 index;
    int linear = 0;
    bool finished = false;
    char *stack = nullptr;
};

struct Warp {
    unsigned arrived = 0;
    unsigned released = 0;
    unsigned live = 0;
    uint64_t slots[kWarpSize] = {};
    int predicates[kWarpSize] = {};
    unsigned char gathered[kWarpSize][kGatherBytes] = {};
};

struct Block {
    uint3 index;
    dim3 dim;
    dim3 grid;
    unsigned char *shared = nullptr;
    std::vector<Fiber> *fibers = nullptr;
    std::vector<Warp> warps;
    ucontext_t scheduler;
    const std::function<void()> *body = nullptr;
    int live = 0;
    int barrier_arrived = 0;
    int barrier_count = 0;
    int barrier_result = 0;
    uint64_t barrier_generation = 0;
    uint64_t progress = 0;
};

thread_local Fiber *current_fiber = nullptr;
thread_local Block *current_block = nullptr;

namespace {

/** Fiber stacks, kept per host thread and reused by every launch on it. */
struct StackPool {
    std::vector<char *> stacks;
    ~StackPool() {
        for (char *s : stacks) {
            munmap(s, kStackBytes);
        }
    }
    bool reserve(size_t count) {
        while (stacks.size() < count) {
            void *s = mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                           -1, 0);
            if (s == MAP_FAILED) {
                return false;
            }
            stacks.push_back(static_cast<char *>(s));
        }
        return true;
    }
};

thread_local StackPool stack_pool;
thread_local std::vector<unsigned char> shared_buffer;

void yield() {
    swapcontext(&current_fiber->context, &current_block->scheduler);
}

void fiber_main() {
    (*current_block->body)();
    Block &block = *current_block;
    Fiber &fiber = *current_fiber;
    fiber.finished = true;
    block.live--;
    block.warps[fiber.linear / kWarpSize].live &= ~(1u << (fiber.linear % kWarpSize));
    block.progress++;
}

// Out of line so that getcontext's second-return semantics cannot clobber the launch loop's variables.
__attribute__((noinline)) void prepare_fiber(Fiber &fiber, char *stack, ucontext_t *scheduler) {
    fiber.finished = false;
    fiber.stack = stack;
    getcontext(&fiber.context);
    fiber.context.uc_stack.ss_sp = stack;
    fiber.context.uc_stack.ss_size = kStackBytes;
    fiber.context.uc_link = scheduler;
    makecontext(&fiber.context, fiber_main, 0);
}

Warp &my_warp() { return current_block->warps[current_fiber->linear / kWarpSize]; }

bool in_kernel() { return current_fiber != nullptr; }

}  // namespace

const uint3 &thread_index() { return current_fiber->index; }
const uint3 &block_index() { return current_block->index; }
const dim3 &block_dim() { return current_block->dim; }
const dim3 &grid_dim() { return current_block->grid; }
unsigned char *dynamic_shared() { return current_block->shared; }
int lane_id() { return current_fiber->linear % kWarpSize; }
unsigned active_mask() { return my_warp().live; }

int sync_threads_count(int predicate) {
    Block &block = *current_block;
    uint64_t generation = block.barrier_generation;
    block.barrier_arrived++;
    block.barrier_count += predicate != 0;
    block.progress++;
    while (block.barrier_generation == generation) {
        if (block.barrier_arrived >= block.live) {
            block.barrier_result = block.barrier_count;
            block.barrier_arrived = 0;
            block.barrier_count = 0;
            block.barrier_generation++;
            break;
        }
        yield();
    }
    return block.barrier_result;
}

void sync_threads() { sync_threads_count(0); }

void sync_warp(unsigned mask) {
    Warp &warp = my_warp();
    unsigned bit = 1u << lane_id();
    warp.arrived |= bit;
    current_block->progress++;
    while (!(warp.released & bit)) {
        unsigned needed = mask & warp.live;
        if ((warp.arrived & needed) == needed) {
            warp.released |= needed;
            warp.arrived &= ~needed;
            break;
        }
        yield();
    }
    warp.released &= ~bit;
}

void warp_exchange(unsigned mask, const void *value, void *result, size_t bytes, int source) {
    Warp &warp = my_warp();
    int lane = lane_id();
    std::memcpy(&warp.slots[lane], value, bytes);
    sync_warp(mask);
    std::memcpy(result, source < 0 ? &warp.slots[lane] : &warp.slots[source], bytes);
    sync_warp(mask);
}

void warp_gather(unsigned mask, const void *value, size_t bytes, void *all) {
    Warp &warp = my_warp();
    std::memcpy(warp.gathered[lane_id()], value, bytes);
    sync_warp(mask);
    for (int l = 0; l < kWarpSize; l++) {
        std::memcpy(static_cast<unsigned char *>(all) + l * bytes, warp.gathered[l], bytes);
    }
    sync_warp(mask);
}

unsigned ballot(unsigned mask, int predicate) {
    Warp &warp = my_warp();
    int lane = lane_id();
    warp.predicates[lane] = predicate != 0;
    sync_warp(mask);
    unsigned bits = 0;
    for (int l = 0; l < kWarpSize; l++) {
        if ((mask & (1u << l)) && warp.predicates[l]) {
            bits |= 1u << l;
        }
    }
    sync_warp(mask);
    return bits;
}

int launch(const char *kernel, dim3 grid, dim3 block_shape, size_t shared_bytes, const std::function<void()> &body) {
    if (in_kernel()) {
        return mdt::fail(MDT_ERROR_RUNTIME, "%s: launched from inside a kernel (dynamic parallelism is not emulated)",
                         kernel);
    }
    uint64_t threads = static_cast<uint64_t>(block_shape.x) * block_shape.y * block_shape.z;
    if (block_shape.x == 0 || block_shape.y == 0 || block_shape.z == 0 || block_shape.x > 1024 ||
        block_shape.y > 1024 || block_shape.z > 64 || threads > kMaxThreadsPerBlock) {
        return mdt::fail(MDT_ERROR_LAUNCH_SHAPE,
                         "%s: block (%u, %u, %u) is not a valid block shape (at most 1024 threads, z at most 64)",
                         kernel, block_shape.x, block_shape.y, block_shape.z);
    }
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535) {
        return mdt::fail(MDT_ERROR_LAUNCH_SHAPE, "%s: grid (%u, %u, %u) is not a valid grid shape", kernel, grid.x,
                         grid.y, grid.z);
    }
    if (shared_bytes > kMaxSharedBytes) {
        return mdt::fail(MDT_ERROR_SHARED_MEMORY, "%s: %zu bytes of dynamic shared memory exceed the %zu-byte limit",
                         kernel, shared_bytes, kMaxSharedBytes);
    }
    if (!stack_pool.reserve(threads)) {
        return mdt::fail(MDT_ERROR_OUT_OF_MEMORY, "%s: cannot map %llu fiber stacks", kernel,
                         static_cast<unsigned long long>(threads));
    }
    shared_buffer.assign(shared_bytes + 16, 0);
    std::vector<Fiber> fibers(threads);
    Block block;
    block.dim = block_shape;
    block.grid = grid;
    block.shared = shared_buffer.data();
    block.fibers = &fibers;
    block.body = &body;
    block.warps.resize((threads + kWarpSize - 1) / kWarpSize);
    int status = MDT_SUCCESS;
    for (unsigned bz = 0; bz < grid.z && status == MDT_SUCCESS; bz++) {
        for (unsigned by = 0; by < grid.y && status == MDT_SUCCESS; by++) {
            for (unsigned bx = 0; bx < grid.x && status == MDT_SUCCESS; bx++) {
                block.index = {bx, by, bz};
                block.live = static_cast<int>(threads);
                block.barrier_arrived = block.barrier_count = 0;
                for (size_t w = 0; w < block.warps.size(); w++) {
                    Warp &warp = block.warps[w];
                    warp = Warp();
                    size_t lanes = std::min<size_t>(kWarpSize, threads - w * kWarpSize);
                    warp.live = lanes == 32 ? 0xffffffffu : ((1u << lanes) - 1);
                }
                for (size_t t = 0; t < threads; t++) {
                    Fiber &fiber = fibers[t];
                    fiber.linear = static_cast<int>(t);
                    fiber.index = {static_cast<unsigned>(t % block_shape.x),
                                   static_cast<unsigned>(t / block_shape.x % block_shape.y),
                                   static_cast<unsigned>(t / (block_shape.x * block_shape.y))};
                    prepare_fiber(fiber, stack_pool.stacks[t], &block.scheduler);
                }
                current_block = &block;
                while (block.live > 0) {
                    uint64_t before = block.progress;
                    for (size_t t = 0; t < threads; t++) {
                        if (!fibers[t].finished) {
                            current_fiber = &fibers[t];
                            swapcontext(&block.scheduler, &fibers[t].context);
                        }
                    }
                    current_fiber = nullptr;
                    if (block.live > 0 && block.progress == before) {
                        status = mdt::fail(MDT_ERROR_DEADLOCK,
                                           "%s: block (%u, %u, %u) deadlocked: %d threads wait at a barrier or warp "
                                           "sync that the others never reach",
                                           kernel, bx, by, bz, block.live);
                        break;
                    }
                }
                current_block = nullptr;
                current_fiber = nullptr;
            }
        }
    }
    return status;
}

}  // namespace mdt_emu
