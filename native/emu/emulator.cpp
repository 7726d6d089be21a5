// The fiber scheduler behind mdt_emu.h. A launch's blocks run on a few host threads at once (the calling thread and
// the emulator's worker pool; mdt_emu_threads sets how many, 1 runs them one after another on the calling thread):
// each thread claims the next block from an atomic counter, in the order mdt_emu_block_order sets (forward, reverse
// or a seeded shuffle, to expose kernels that depend on it), and runs it to the end with its own fibers, stacks and
// shared memory. Inside a block every CUDA thread is a fiber with its own stack (fiber_switch.h: a switch costs no
// system call) that never leaves the host thread running its block.
// Fibers switch only where a GPU thread must wait for others (barriers, shuffles, votes), and they run in rounds:
// each unfinished fiber in thread order, a waiting one switching straight to the next, the last back to the
// scheduler. A full round in which no fiber arrived anywhere, released a barrier or finished is a deadlock. A rule
// the hardware enforces (or leaves undefined) that a kernel breaks calls violation(): the fiber records the error
// and returns to the scheduler for good, and the launch ends with that status (the other fibers are abandoned
// mid-kernel). The first failing block in claim order decides the launch's status and message: threads stop claiming
// after a failure, but every block claimed before it runs to its end, so a failure is reported as the serial run
// would report it.
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdarg>
#include <cstdlib>
#include <cstdio>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "fiber_switch.h"
#include "mdt_emu.h"
#include "microdit.h"
#include "status.h"
#include "trace.h"

namespace mdt_emu {

namespace {
constexpr size_t kStackBytes = 256 * 1024;
}

/** A cp.async in flight: copied (and zero-filled past source_bytes) when a cp_async_wait retires its group. */
struct PendingCopy {
    void *shared;
    const void *global;
    int source_bytes;
};

struct Fiber {
    void *context = nullptr;  // where mdt_emu_fiber_switch saved it
    uint3 index;
    int linear = 0;
    uint64_t syncs = 0;  // barriers and warp-synchronous calls passed (ThreadPosition)
    char *stack = nullptr;
    bool finished = false;
    // cp.async: every copy issued, oldest first, of which [0, landed) have been copied; committed_ends holds where
    // each committed group ends in copies, of which the first waited have been waited for.
    std::vector<PendingCopy> copies;
    std::vector<size_t> committed_ends;
    size_t landed = 0;
    size_t waited = 0;
};

// Only arrived, released, live and uniform need resetting at a block start: the arrays are read only for lanes that
// wrote them in the same round.
struct Warp {
    unsigned arrived = 0;
    unsigned released = 0;
    unsigned live = 0;
    // True while every arrived lane waits with uniform_mask at uniform_call, so an arrival that matches them needs
    // no comparison with each waiting lane.
    bool uniform = false;
    unsigned uniform_mask = 0;
    WarpCall uniform_call = {};
    // Deposits, and what the lane that completes a group computes from them for each lane of the group.
    uint64_t slots[kWarpSize];
    int sources[kWarpSize];
    int predicates[kWarpSize];
    unsigned char gathered[kWarpSize][kGatherBytes];
    uint64_t results[kWarpSize];
    unsigned readable = 0;  // the lanes whose shuffle source took part in their group
    unsigned char gathered_snapshot[kWarpSize][kGatherBytes];
    // What each arrived lane waits in: its mask and call (lanes whose masks overlap must agree on both).
    unsigned masks[kWarpSize];
    WarpCall calls[kWarpSize];
};

struct Block {
    uint3 index;
    dim3 dim;
    dim3 grid;
    unsigned char *shared = nullptr;
    Fiber *fibers = nullptr;
    std::vector<Warp> warps;
    void *scheduler = nullptr;
    // The unfinished fibers of the current round, in the order they run, and the position of the running one: a
    // fiber that waits switches straight to the next, and the last to the scheduler, which starts the next round.
    std::vector<int> round;
    size_t position = 0;
    const std::function<void()> *body = nullptr;
    const char *kernel = "";
    int status = 0;  // MDT_SUCCESS until a fiber calls violation()
    const char *barrier_file = nullptr;  // the call site of the barrier the current generation waits at
    int barrier_line = 0;
    int live = 0;
    int barrier_arrived = 0;
    int barrier_count = 0;
    int barrier_result = 0;
    uint64_t barrier_generation = 0;
    uint64_t progress = 0;
    uint64_t linear = 0;  // the block's linear index (ThreadPosition)
};

thread_local Fiber *current_fiber = nullptr;
thread_local Block *current_block = nullptr;

namespace {

/**
 * Fiber stacks, kept per host thread (a launch's caller or a worker of the pool) and reused by every launch on it.
 * Below each stack lies an inaccessible guard page, so a fiber that overflows its stack faults instead of silently
 * writing into its neighbour's.
 */
struct StackPool {
    std::vector<char *> stacks;
    size_t guard = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    ~StackPool() {
        for (char *s : stacks) {
            munmap(s - guard, guard + kStackBytes);
        }
    }
    bool reserve(size_t count) {
        while (stacks.size() < count) {
            void *s = mmap(nullptr, guard + kStackBytes, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (s == MAP_FAILED) {
                return false;
            }
            if (mprotect(s, guard, PROT_NONE) != 0) {
                munmap(s, guard + kStackBytes);
                return false;
            }
            stacks.push_back(static_cast<char *>(s) + guard);
        }
        return true;
    }
};

// What a host thread needs to run blocks, its own so that threads run blocks at once: stacks, fibers (reused, with
// the capacity of their copy lists, by every launch) and the block's dynamic shared memory. Static shared arrays are
// thread_local too (MDT_SHARED), and so is shared_memory.cpp's record of the running block.
thread_local StackPool stack_pool;
thread_local std::vector<Fiber> fiber_pool;
thread_local std::vector<unsigned char> shared_buffer;
constexpr size_t kSharedAlignment = 128;  // at least what CUDA gives dynamic shared memory (16)

void perform(const PendingCopy &copy) {
    std::memcpy(copy.shared, copy.global, static_cast<size_t>(copy.source_bytes));
    std::memset(static_cast<unsigned char *>(copy.shared) + copy.source_bytes, 0,
                static_cast<size_t>(16 - copy.source_bytes));
}

/** Suspends the running fiber and resumes the next of the round (the scheduler after the last). */
void yield() {
    Block &block = *current_block;
    Fiber &fiber = *current_fiber;
    size_t next = ++block.position;
    if (next < block.round.size()) {
        current_fiber = &block.fibers[block.round[next]];
        mdt_emu_fiber_switch(&fiber.context, current_fiber->context);
    } else {
        current_fiber = nullptr;
        mdt_emu_fiber_switch(&fiber.context, block.scheduler);
    }
}

void fiber_main(void *) {
    (*current_block->body)();
    Block &block = *current_block;
    Fiber &fiber = *current_fiber;
    // Copies never waited for still land (the hardware completes them), after everything the thread did: the
    // uncommitted ones first, then the committed groups not waited for.
    size_t committed = fiber.committed_ends.empty() ? 0 : fiber.committed_ends.back();
    for (size_t c = committed; c < fiber.copies.size(); c++) perform(fiber.copies[c]);
    for (size_t c = fiber.landed; c < committed; c++) perform(fiber.copies[c]);
    fiber.finished = true;
    block.live--;
    block.warps[fiber.linear / kWarpSize].live &= ~(1u << (fiber.linear % kWarpSize));
    block.progress++;
    yield();  // for good: the next block lays the stack out anew
    __builtin_unreachable();
}

void prepare_fiber(Fiber &fiber, char *stack) {
    fiber.finished = false;
    fiber.syncs = 0;
    fiber.stack = stack;
    fiber.copies.clear();
    fiber.committed_ends.clear();
    fiber.landed = 0;
    fiber.waited = 0;
    fiber.context = fiber_context(stack, kStackBytes, fiber_main, nullptr);
}

Warp &my_warp() { return current_block->warps[current_fiber->linear / kWarpSize]; }

bool in_kernel() { return current_fiber != nullptr; }

// Called at every barrier and warp-sync arrival (for each lane already waiting), so it compares the pointers first:
// one call site's names are the same string literals, and strcmp alone once took a third of the emulator's time.
bool same_string(const char *a, const char *b) { return a == b || std::strcmp(a, b) == 0; }

}  // namespace

uint3 thread_index() { return current_fiber->index; }
uint3 block_index() { return current_block->index; }
dim3 block_dim() { return current_block->dim; }
dim3 grid_dim() { return current_block->grid; }

bool thread_position(ThreadPosition &position) {
    Fiber *fiber = current_fiber;
    if (!fiber) return false;
    const Block &block = *current_block;
    position = {block.kernel, block.linear, fiber->linear, block.warps[fiber->linear / kWarpSize].live,
                block.barrier_generation, fiber->syncs, fiber->stack, kStackBytes};
    return true;
}
unsigned char *dynamic_shared() { return current_block->shared; }
int lane_id() { return current_fiber->linear % kWarpSize; }
unsigned active_mask() { return my_warp().live; }

void violation(int status, const char *format, ...) {
    char message[1024];
    va_list arguments;
    va_start(arguments, format);
    std::vsnprintf(message, sizeof(message), format, arguments);
    va_end(arguments);
    Block &block = *current_block;
    Fiber &fiber = *current_fiber;
    mdt::fail(status, "%s: block (%u, %u, %u), thread (%u, %u, %u): %s", block.kernel, block.index.x, block.index.y,
              block.index.z, fiber.index.x, fiber.index.y, fiber.index.z, message);
    block.status = status;
    fiber.finished = true;  // never resumed: its stack is reset by the next launch
    mdt_emu_fiber_switch(&fiber.context, block.scheduler);
    __builtin_unreachable();
}

int sync_threads_count(int predicate, const char *file, int line) {
    Block &block = *current_block;
    uint64_t generation = block.barrier_generation;
    // Volta+ barriers count every non-exited thread, wherever it waits; the CUDA guide still makes a barrier in
    // divergent code undefined, so threads meeting at different __syncthreads are an error here.
    if (block.barrier_arrived == 0) {
        block.barrier_file = file;
        block.barrier_line = line;
    } else if (line != block.barrier_line || !same_string(file, block.barrier_file)) {
        violation(MDT_ERROR_DEADLOCK, "__syncthreads at %s:%d while other threads wait at %s:%d (divergent barrier)",
                  file, line, block.barrier_file, block.barrier_line);
    }
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
    current_fiber->syncs++;
    return block.barrier_result;
}

void sync_threads(const char *file, int line) { sync_threads_count(0, file, line); }

namespace {
bool same_call(const WarpCall &a, const WarpCall &b) {
    return a.line == b.line && same_string(a.what, b.what) && same_string(a.file, b.file);
}
}  // namespace

// The CUDA guide: each calling thread must have its own bit in the mask, and all non-exited threads named in the
// mask must execute the same intrinsic with the same mask. Lanes that exited are not waited for. The lane that
// completes a group calls release(lanes of the group) before any of them goes on, while all of them still wait: so
// a shuffle or a vote needs one meeting, not a second one to protect the deposits until everyone has read them.
template <class Release>
void warp_meet(unsigned mask, const WarpCall &call, Release &&release) {
    Warp &warp = my_warp();
    int lane = lane_id();
    unsigned bit = 1u << lane;
    if (!(mask & bit)) {
        violation(MDT_ERROR_RUNTIME, "%s at %s:%d with mask 0x%08x, which leaves out the calling lane %d", call.what,
                  call.file, call.line, mask, lane);
    }
    if (warp.arrived == 0) {
        warp.uniform = true;
        warp.uniform_mask = mask;
        warp.uniform_call = call;
    } else if (!warp.uniform || mask != warp.uniform_mask || !same_call(call, warp.uniform_call)) {
        for (unsigned others = warp.arrived; others; others &= others - 1) {
            int other = __builtin_ctz(others);
            bool overlap = (mask >> other & 1u) || (warp.masks[other] & bit);
            if (overlap && (warp.masks[other] != mask || !same_call(warp.calls[other], call))) {
                violation(MDT_ERROR_RUNTIME,
                          "lane %d at %s (%s:%d, mask 0x%08x) while lane %d waits at %s (%s:%d, mask 0x%08x): the "
                          "lanes of a warp-synchronous call must make the same call with the same mask",
                          lane, call.what, call.file, call.line, mask, other, warp.calls[other].what,
                          warp.calls[other].file, warp.calls[other].line, warp.masks[other]);
            }
        }
        warp.uniform = false;
    }
    warp.masks[lane] = mask;
    warp.calls[lane] = call;
    warp.arrived |= bit;
    current_block->progress++;
    while (!(warp.released & bit)) {
        unsigned needed = mask & warp.live;
        if ((warp.arrived & needed) == needed) {
            release(needed);
            warp.released |= needed;
            warp.arrived &= ~needed;
            break;
        }
        yield();
    }
    warp.released &= ~bit;
    current_fiber->syncs++;
}

void sync_warp(unsigned mask, const WarpCall &call) {
    warp_meet(mask, call, [](unsigned) {});
}

void warp_exchange(unsigned mask, const void *value, void *result, size_t bytes, int source, const WarpCall &call) {
    Warp &warp = my_warp();
    int lane = lane_id();
    std::memcpy(&warp.slots[lane], value, bytes);
    warp.sources[lane] = source;
    warp_meet(mask, call, [&warp](unsigned taking_part) {
        unsigned readable = 0;
        for (unsigned lanes = taking_part; lanes; lanes &= lanes - 1) {
            int l = __builtin_ctz(lanes), from = warp.sources[l] < 0 ? l : warp.sources[l];
            if (taking_part >> from & 1u) {
                warp.results[l] = warp.slots[from];
                readable |= 1u << l;
            }
        }
        warp.readable = (warp.readable & ~taking_part) | readable;
    });
    if (!(warp.readable >> lane & 1u)) {
        violation(MDT_ERROR_RUNTIME,
                  "%s at %s:%d (mask 0x%08x) reads lane %d, which does not take part (exited, absent or outside the "
                  "mask): the GPU returns an undefined value",
                  call.what, call.file, call.line, mask, source);
    }
    std::memcpy(result, &warp.results[lane], bytes);
}

// The snapshot outlives the meeting: it is only rewritten when all 32 lanes meet again, after each has read it. Each
// lane learns who joined from its result, since lanes released before it may have exited by the time it runs.
void warp_gather(const void *value, size_t bytes, void *all, const WarpCall &call) {
    Warp &warp = my_warp();
    if (warp.live != 0xffffffffu) {
        violation(MDT_ERROR_RUNTIME,
                  "%s at %s:%d needs all 32 lanes of the warp (a .sync.aligned instruction); live lanes 0x%08x",
                  call.what, call.file, call.line, warp.live);
    }
    std::memcpy(warp.gathered[lane_id()], value, bytes);
    warp_meet(0xffffffffu, call, [&warp](unsigned taking_part) {
        std::memcpy(warp.gathered_snapshot, warp.gathered, sizeof(warp.gathered));
        for (unsigned lanes = taking_part; lanes; lanes &= lanes - 1) warp.results[__builtin_ctz(lanes)] = taking_part;
    });
    unsigned joined = static_cast<unsigned>(warp.results[lane_id()]);
    if (joined != 0xffffffffu) {
        violation(MDT_ERROR_RUNTIME, "%s at %s:%d: lanes exited instead of joining (live 0x%08x)", call.what,
                  call.file, call.line, joined);
    }
    for (int l = 0; l < kWarpSize; l++) {
        std::memcpy(static_cast<unsigned char *>(all) + l * bytes, warp.gathered_snapshot[l], bytes);
    }
}

unsigned ballot(unsigned mask, int predicate, const WarpCall &call) {
    Warp &warp = my_warp();
    int lane = lane_id();
    warp.predicates[lane] = predicate != 0;
    warp_meet(mask, call, [&warp](unsigned taking_part) {
        unsigned bits = 0;
        for (unsigned lanes = taking_part; lanes; lanes &= lanes - 1) {
            int l = __builtin_ctz(lanes);
            if (warp.predicates[l]) bits |= 1u << l;
        }
        for (unsigned lanes = taking_part; lanes; lanes &= lanes - 1) warp.results[__builtin_ctz(lanes)] = bits;
    });
    return static_cast<unsigned>(warp.results[lane]);
}

void cp_async_16(void *shared, const void *global, int source_bytes) {
    if (reinterpret_cast<uintptr_t>(shared) % 16 != 0 || reinterpret_cast<uintptr_t>(global) % 16 != 0) {
        violation(MDT_ERROR_RUNTIME,
                  "cp.async of 16 bytes from %p to shared %p: both addresses must be 16-byte aligned (the GPU "
                  "faults: misaligned address)",
                  global, shared);
    }
    if (source_bytes < 0 || source_bytes > 16) {
        violation(MDT_ERROR_RUNTIME, "cp.async of 16 bytes with source size %d (must be 0..16)", source_bytes);
    }
    check_shared_operand("cp.async", shared, 16);
    cp_async_access(shared, global, source_bytes, __builtin_return_address(0));
    current_fiber->copies.push_back({shared, global, source_bytes});
}

void cp_async_commit() {
    Fiber &fiber = *current_fiber;
    fiber.committed_ends.push_back(fiber.copies.size());
}

// cp.async.wait_group: the committed groups but the newest {@code pending} complete; uncommitted copies do not.
void cp_async_wait(int pending) {
    Fiber &fiber = *current_fiber;
    while (fiber.committed_ends.size() - fiber.waited > static_cast<size_t>(pending)) {
        for (size_t end = fiber.committed_ends[fiber.waited++]; fiber.landed < end; fiber.landed++) {
            perform(fiber.copies[fiber.landed]);
        }
    }
}

namespace {

// The block order (microdit.h, mdt_emu_block_order): process-global, read once per launch.
std::atomic<int> block_order{MDT_BLOCK_ORDER_FORWARD};
std::atomic<uint64_t> block_order_seed{0};
// A malformed MDT_EMU_BLOCK_ORDER fails every launch (a typo must not quietly test the default order) until
// mdt_emu_block_order sets an order; the message is written once, at load, before any launch can read it.
std::atomic<bool> block_order_invalid{false};
char block_order_message[256];

uint64_t splitmix64(uint64_t &state) {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/** Reads MDT_EMU_BLOCK_ORDER=forward|reverse|shuffled[:seed] when the library loads. */
struct BlockOrderFromEnvironment {
    BlockOrderFromEnvironment() {
        const char *value = std::getenv("MDT_EMU_BLOCK_ORDER");
        if (!value || !*value) return;
        std::string text(value);
        uint64_t seed = 0;
        bool valid = true;
        if (text == "forward") {
            block_order = MDT_BLOCK_ORDER_FORWARD;
        } else if (text == "reverse") {
            block_order = MDT_BLOCK_ORDER_REVERSE;
        } else if (text == "shuffled" || text.rfind("shuffled:", 0) == 0) {
            if (text.size() > 9) {
                char *end = nullptr;
                errno = 0;
                seed = std::strtoull(text.c_str() + 9, &end, 0);
                valid = errno == 0 && end && *end == '\0' && text[9] != '-';
            } else {
                valid = text.size() == 8;
            }
            block_order = MDT_BLOCK_ORDER_SHUFFLED;
        } else {
            valid = false;
        }
        if (!valid) {
            std::snprintf(block_order_message, sizeof(block_order_message),
                          "MDT_EMU_BLOCK_ORDER='%.100s' is not forward, reverse, shuffled or shuffled:<seed>", value);
            block_order_invalid = true;
            return;
        }
        block_order_seed = seed;
        if (block_order != MDT_BLOCK_ORDER_FORWARD) {
            std::fprintf(stderr, "microdit emulator: blocks run in %s order (MDT_EMU_BLOCK_ORDER)\n", value);
        }
    }
} block_order_from_environment;

/**
 * The linear block indices (x fastest, then y, z) in the order the launch runs them; empty for the forward order
 * (the identity). Reverse is the identity backwards; shuffled is a Fisher-Yates shuffle driven by splitmix64 from
 * the seed, so the same seed and grid give the same permutation.
 */
int block_sequence(const char *kernel, dim3 grid, std::vector<uint64_t> &order) {
    if (block_order_invalid) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "%s: %s", kernel, block_order_message);
    int setting = block_order;
    uint64_t blocks = static_cast<uint64_t>(grid.x) * grid.y * grid.z;
    if (setting == MDT_BLOCK_ORDER_FORWARD || blocks < 2) return MDT_SUCCESS;
    try {
        order.resize(blocks);
    } catch (const std::bad_alloc &) {
        return mdt::fail(MDT_ERROR_OUT_OF_MEMORY, "%s: no memory for the order of %llu blocks", kernel,
                         static_cast<unsigned long long>(blocks));
    }
    for (uint64_t i = 0; i < blocks; i++) {
        order[i] = setting == MDT_BLOCK_ORDER_REVERSE ? blocks - 1 - i : i;
    }
    if (setting == MDT_BLOCK_ORDER_SHUFFLED) {
        uint64_t state = block_order_seed;
        for (uint64_t i = blocks - 1; i > 0; i--) {
            std::swap(order[i], order[splitmix64(state) % (i + 1)]);
        }
    }
    return MDT_SUCCESS;
}

}  // namespace

int check_launch(const char *kernel, dim3 grid, dim3 block_shape, size_t shared_bytes, SharedLimit *limit) {
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
    return begin_shared_launch(kernel, shared_bytes, limit);
}

int launch(const char *kernel, dim3 grid, dim3 block_shape, size_t shared_bytes, const std::function<void()> &body) {
    SharedLimit limit;
    if (int s = check_launch(kernel, grid, block_shape, shared_bytes, &limit)) return s;
    mdt::trace_launch(kernel, grid.x, grid.y, grid.z, block_shape.x, block_shape.y, block_shape.z, shared_bytes);
    if (mdt::dry_run()) return MDT_SUCCESS;  // checked and recorded, not run (trace.h)
    return run_launch(kernel, grid, block_shape, shared_bytes, limit, body);
}

namespace {

// ------------------------------------------------------------------------------------------------ worker threads

constexpr int kMaxThreads = 64;
constexpr int kDefaultThreadsCap = 8;

/**
 * The default number of threads that run a launch's blocks: the CPUs this process may run on (sched_getaffinity;
 * the online CPUs if that fails), shared among the MPI ranks on this machine (Open MPI's OMPI_COMM_WORLD_LOCAL_SIZE)
 * so that emulator processes started together do not oversubscribe the cores; at least 1, at most 8.
 */
int default_threads() {
    long cpus = 0;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) cpus = CPU_COUNT(&set);
    if (cpus < 1) cpus = sysconf(_SC_NPROCESSORS_ONLN);
    const char *local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    long ranks = local ? std::strtol(local, nullptr, 10) : 1;
    if (ranks > 1) cpus /= ranks;
    return static_cast<int>(std::max(1L, std::min<long>(cpus, kDefaultThreadsCap)));
}

// The thread count (microdit.h, mdt_emu_threads): process-global, read once per launch. A malformed
// MICRODIT_EMU_THREADS fails every launch (a typo must not quietly test another count) until mdt_emu_threads sets
// one; the message is written once, at load, before any launch can read it.
std::atomic<int> thread_count{1};
std::atomic<bool> thread_count_invalid{false};
char thread_count_message[160];

/** Reads MICRODIT_EMU_THREADS=<1..64> when the library loads; unset: default_threads(). */
struct ThreadsFromEnvironment {
    ThreadsFromEnvironment() {
        const char *value = std::getenv("MICRODIT_EMU_THREADS");
        if (!value || !*value) {
            thread_count = default_threads();
            return;
        }
        char *end = nullptr;
        errno = 0;
        long count = std::strtol(value, &end, 10);
        if (errno != 0 || *end != '\0' || count < 1 || count > kMaxThreads) {
            std::snprintf(thread_count_message, sizeof(thread_count_message),
                          "MICRODIT_EMU_THREADS='%.60s' is not a thread count from 1 to %d", value, kMaxThreads);
            thread_count_invalid = true;
            return;
        }
        thread_count = static_cast<int>(count);
    }
} threads_from_environment;

/** One launch's blocks, shared by the threads that run them. */
struct Grid {
    const char *kernel;
    dim3 grid;
    dim3 block_shape;
    size_t shared_bytes;
    const SharedLimit *limit;
    const std::function<void()> *body;
    const std::vector<uint64_t> *order;  // claim position → linear block index; empty: the identity
    uint64_t blocks;
    CheckedLaunch *checked;
    std::atomic<uint64_t> next_claim{0};
    // The claim position of the first failing block found so far (threads stop claiming past it), and its status
    // and message, under failure_mutex.
    std::atomic<uint64_t> first_failure{UINT64_MAX};
    std::mutex failure_mutex;
    int status = MDT_SUCCESS;
    std::string message;

    void failed(uint64_t claim, int block_status) {
        std::lock_guard<std::mutex> lock(failure_mutex);
        if (claim >= first_failure.load(std::memory_order_relaxed)) return;
        status = block_status;
        message = mdt_last_error_message();
        first_failure.store(claim, std::memory_order_release);
    }
};

/** Runs block {@code linear} of {@code grid} on this host thread's fibers; its status. */
int run_block(const Grid &grid, Block &block, uint64_t linear, unsigned char *shared) {
    size_t threads = static_cast<size_t>(grid.block_shape.x) * grid.block_shape.y * grid.block_shape.z;
    Fiber *fibers = block.fibers;
    unsigned bx = static_cast<unsigned>(linear % grid.grid.x), by = static_cast<unsigned>(linear / grid.grid.x % grid.grid.y);
    unsigned bz = static_cast<unsigned>(linear / grid.grid.x / grid.grid.y);
    block.index = {bx, by, bz};
    block.linear = linear;
    begin_checked_block(static_cast<int>(threads));
    // Shared memory starts undefined on the GPU: 0xFF bytes (NaN floats, -1 ints) catch a kernel that reads what it
    // never wrote.
    std::memset(shared, 0xff, grid.shared_bytes + 16);
    begin_shared_block(shared, grid.shared_bytes, *grid.limit);
    block.live = static_cast<int>(threads);
    block.barrier_arrived = block.barrier_count = 0;
    for (size_t w = 0; w < block.warps.size(); w++) {
        Warp &warp = block.warps[w];
        warp.arrived = warp.released = 0;
        warp.uniform = false;
        size_t lanes = std::min<size_t>(kWarpSize, threads - w * kWarpSize);
        warp.live = lanes == 32 ? 0xffffffffu : ((1u << lanes) - 1);
    }
    for (size_t t = 0; t < threads; t++) prepare_fiber(fibers[t], stack_pool.stacks[t]);
    block.round.clear();
    for (size_t t = 0; t < threads; t++) block.round.push_back(static_cast<int>(t));
    current_block = &block;
    int status = MDT_SUCCESS;
    while (block.live > 0) {
        uint64_t before = block.progress;
        block.position = 0;
        current_fiber = &fibers[block.round[0]];
        mdt_emu_fiber_switch(&block.scheduler, current_fiber->context);  // back after the round's last fiber
        current_fiber = nullptr;
        size_t unfinished = 0;
        for (int t : block.round) {
            if (!fibers[t].finished) block.round[unfinished++] = t;
        }
        block.round.resize(unfinished);
        if (block.status != MDT_SUCCESS) {
            status = block.status;
            break;
        }
        if (block.live > 0 && block.progress == before) {
            status = mdt::fail(MDT_ERROR_DEADLOCK,
                               "%s: block (%u, %u, %u) deadlocked: %d threads wait at a barrier or warp sync that the "
                               "others never reach",
                               grid.kernel, bx, by, bz, block.live);
            break;
        }
    }
    current_block = nullptr;
    current_fiber = nullptr;
    return status;
}

/** Claims and runs blocks of {@code grid} on this host thread until none is left or a block failed. */
void run_blocks(Grid &grid) {
    uint64_t threads = static_cast<uint64_t>(grid.block_shape.x) * grid.block_shape.y * grid.block_shape.z;
    if (!stack_pool.reserve(threads)) {
        mdt::fail(MDT_ERROR_OUT_OF_MEMORY, "%s: cannot map %llu fiber stacks", grid.kernel,
                  static_cast<unsigned long long>(threads));
        grid.failed(0, MDT_ERROR_OUT_OF_MEMORY);
        return;
    }
    shared_buffer.resize(grid.shared_bytes + 16 + kSharedAlignment);
    unsigned char *shared = shared_buffer.data();
    shared += (kSharedAlignment - reinterpret_cast<uintptr_t>(shared) % kSharedAlignment) % kSharedAlignment;
    if (fiber_pool.size() < threads) fiber_pool.resize(threads);
    Block block;
    block.kernel = grid.kernel;
    block.dim = grid.block_shape;
    block.grid = grid.grid;
    block.shared = shared;
    block.fibers = fiber_pool.data();
    block.body = grid.body;
    block.warps.resize((threads + kWarpSize - 1) / kWarpSize);
    block.round.reserve(threads);
    for (size_t t = 0; t < threads; t++) {
        Fiber &fiber = block.fibers[t];
        fiber.linear = static_cast<int>(t);
        fiber.index = {static_cast<unsigned>(t % grid.block_shape.x),
                       static_cast<unsigned>(t / grid.block_shape.x % grid.block_shape.y),
                       static_cast<unsigned>(t / (grid.block_shape.x * grid.block_shape.y))};
    }
    begin_checked_worker(grid.checked);
    for (;;) {
        uint64_t claim = grid.next_claim.fetch_add(1, std::memory_order_relaxed);
        if (claim >= grid.blocks || claim > grid.first_failure.load(std::memory_order_acquire)) break;
        uint64_t linear = grid.order->empty() ? claim : (*grid.order)[claim];
        if (int status = run_block(grid, block, linear, shared)) {
            grid.failed(claim, status);
            break;
        }
    }
    end_checked_worker();
}

/**
 * The host threads that run blocks beside a launch's caller, started when a launch first needs them and kept for
 * the process's life (never destroyed: a pool torn down by static destructors at exit could race a launch). One launch
 * uses the pool at a time; a launch issued while another holds it runs its blocks on its own thread.
 */
class WorkerPool {
public:
    /** Runs {@code grid} on the caller and up to {@code helpers} pool threads; false if the pool is busy. */
    bool run(Grid &grid, int helpers) {
        std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
        if (!busy.owns_lock()) return false;
        helpers = start(helpers);
        {
            std::lock_guard<std::mutex> lock(mutex_);
            grid_ = &grid;
            wanted_ = helpers;
            joined_ = finished_ = 0;
            generation_++;
        }
        wake_.notify_all();
        run_blocks(grid);
        std::unique_lock<std::mutex> lock(mutex_);
        wanted_ = joined_;  // every block is claimed: a thread that has not woken yet need not join
        done_.wait(lock, [this] { return finished_ == wanted_; });
        grid_ = nullptr;
        return true;
    }

private:
    /** Starts pool threads until {@code helpers} exist (as many as the system gives); how many there are. */
    int start(int helpers) {
        while (static_cast<int>(threads_) < helpers) {
            try {
                std::thread(&WorkerPool::serve, this).detach();
            } catch (const std::system_error &) {
                break;
            }
            threads_++;
        }
        return std::min(helpers, static_cast<int>(threads_));
    }

    void serve() {
        uint64_t seen = 0;
        std::unique_lock<std::mutex> lock(mutex_);
        for (;;) {
            wake_.wait(lock, [&] { return generation_ != seen; });
            seen = generation_;
            // A launch that wants fewer threads than the pool has, or whose blocks were all claimed before this woke.
            if (joined_ >= wanted_) continue;
            joined_++;
            Grid *grid = grid_;
            lock.unlock();
            run_blocks(*grid);
            lock.lock();
            if (++finished_ == wanted_) done_.notify_one();
        }
    }

    std::mutex busy_;
    std::mutex mutex_;
    std::condition_variable wake_, done_;
    size_t threads_ = 0;  // under busy_
    Grid *grid_ = nullptr;
    uint64_t generation_ = 0;
    int wanted_ = 0, joined_ = 0, finished_ = 0;
};

WorkerPool &worker_pool() {
    static WorkerPool *pool = new WorkerPool();
    return *pool;
}

}  // namespace

int run_launch(const char *kernel, dim3 grid_shape, dim3 block_shape, size_t shared_bytes, const SharedLimit &limit,
               const std::function<void()> &body) {
    if (thread_count_invalid) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "%s: %s", kernel, thread_count_message);
    std::vector<uint64_t> order;
    if (int s = block_sequence(kernel, grid_shape, order)) return s;
    Grid grid;
    grid.kernel = kernel;
    grid.grid = grid_shape;
    grid.block_shape = block_shape;
    grid.shared_bytes = shared_bytes;
    grid.limit = &limit;
    grid.body = &body;
    grid.order = &order;
    grid.blocks = static_cast<uint64_t>(grid_shape.x) * grid_shape.y * grid_shape.z;
    grid.checked = begin_checked_launch(kernel, body);
    uint64_t helpers = std::min<uint64_t>(static_cast<uint64_t>(thread_count.load()), grid.blocks) - 1;
    if (helpers == 0 || !worker_pool().run(grid, static_cast<int>(helpers))) run_blocks(grid);
    end_checked_launch(grid.checked);
    // The failing block's message was written on the thread that ran it: it becomes the caller's.
    if (grid.status != MDT_SUCCESS) return mdt::fail(grid.status, "%s", grid.message.c_str());
    return MDT_SUCCESS;
}

}  // namespace mdt_emu

extern "C" int mdt_emu_block_order(int order, uint64_t seed) {
    if (order != MDT_BLOCK_ORDER_FORWARD && order != MDT_BLOCK_ORDER_REVERSE && order != MDT_BLOCK_ORDER_SHUFFLED) {
        return mdt::fail(MDT_ERROR_INVALID_ARGUMENT,
                         "mdt_emu_block_order: order %d is not MDT_BLOCK_ORDER_FORWARD (0), REVERSE (1) or SHUFFLED (2)",
                         order);
    }
    mdt_emu::block_order_seed = seed;
    mdt_emu::block_order = order;
    mdt_emu::block_order_invalid = false;
    return MDT_SUCCESS;
}

extern "C" int mdt_emu_threads(int count, int *in_effect) {
    if (count < 0 || count > mdt_emu::kMaxThreads) {
        return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_emu_threads: %d threads is not 0 (keep) or 1 to %d", count,
                         mdt_emu::kMaxThreads);
    }
    if (count > 0) {
        mdt_emu::thread_count = count;
        mdt_emu::thread_count_invalid = false;
    }
    if (in_effect) *in_effect = mdt_emu::thread_count;
    return MDT_SUCCESS;
}
