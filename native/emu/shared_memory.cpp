// Shared memory on the emulator, held to the GPU's rules. A block's dynamic shared memory is one buffer (launch());
// its static arrays are thread_local variables that MDT_SHARED (kernels/common.cuh) declares and registers here at
// every execution of the declaration. Per block, the first thread to reach a declaration fills the array with 0xFF
// (so a read before any write sees NaN / -1, as undefined memory should look, never the previous block's values)
// and adds its bytes to the block's static total: static alone must fit 48 KiB, static + dynamic 48 KiB, or with the
// launch's opt-in (MDT_LAUNCH_OPT_IN) the emulated architecture's opt-in limit. The static total counts the arrays
// a block reaches, so an array in a branch no block takes escapes the check (ptxas counts it on the GPU).
// cp.async and ldmatrix operands are checked against the same registry: the GPU converts them to shared-window
// addresses and faults on one outside the block's shared memory.
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "mdt_emu.h"
#include "microdit.h"
#include "status.h"

namespace mdt_emu {

namespace {

struct StaticArray {
    const unsigned char *begin;
    size_t bytes;
    const char *name;
};

/** The launch running on this host thread (launches are synchronous and never nested). */
struct LaunchShared {
    size_t limit = kMaxSharedBytes;
    const char *limit_name = "";
    const unsigned char *dynamic = nullptr;
    size_t dynamic_bytes = 0;
    std::vector<StaticArray> statics;
    size_t static_bytes = 0;
};

thread_local LaunchShared launch_shared;
thread_local bool opt_in = false;

// The emulated architecture (microdit.h, mdt_emu_architecture): process-global, read once per launch. A malformed
// MDT_EMU_ARCH fails every launch (a typo must not quietly test the default limits) until mdt_emu_architecture sets
// one; the message is written once, at load, before any launch can read it.
std::atomic<int> architecture{90};
std::atomic<bool> architecture_invalid{false};
char architecture_message[160];

bool emulated(long sm) { return sm == 80 || sm == 90; }

/** Reads MDT_EMU_ARCH=80|90 when the library loads. */
struct ArchitectureFromEnvironment {
    ArchitectureFromEnvironment() {
        const char *value = std::getenv("MDT_EMU_ARCH");
        if (!value || !*value) return;
        char *end = nullptr;
        errno = 0;
        long sm = std::strtol(value, &end, 10);
        if (errno != 0 || *end != '\0' || !emulated(sm)) {
            std::snprintf(architecture_message, sizeof(architecture_message),
                          "MDT_EMU_ARCH='%.60s' is not 80 or 90", value);
            architecture_invalid = true;
            return;
        }
        architecture = static_cast<int>(sm);
    }
} architecture_from_environment;

size_t opt_in_limit(int sm) { return sm == 80 ? kMaxSharedBytesOptInSm80 : kMaxSharedBytesOptInSm90; }

const char *limit_name(bool opted_in, int sm) {
    if (!opted_in) return "48 KiB without the opt-in, MDT_LAUNCH_OPT_IN";
    return sm == 80 ? "sm_80's with the opt-in" : "sm_90's with the opt-in";
}

bool inside(const unsigned char *begin, size_t bytes, const unsigned char *p, size_t length) {
    return p >= begin && length <= bytes && static_cast<size_t>(p - begin) <= bytes - length;
}

}  // namespace

SharedMemoryOptIn::SharedMemoryOptIn() : previous_(opt_in) { opt_in = true; }
SharedMemoryOptIn::~SharedMemoryOptIn() { opt_in = previous_; }

int begin_shared_launch(const char *kernel, size_t dynamic_bytes, SharedLimit *limit) {
    if (architecture_invalid) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "%s: %s", kernel, architecture_message);
    int sm = architecture;
    limit->bytes = opt_in ? opt_in_limit(sm) : kMaxSharedBytes;
    limit->name = limit_name(opt_in, sm);
    if (dynamic_bytes > limit->bytes) {
        return mdt::fail(MDT_ERROR_SHARED_MEMORY,
                         "%s: %zu bytes of dynamic shared memory exceed the %zu-byte limit (%s)", kernel,
                         dynamic_bytes, limit->bytes, limit->name);
    }
    return MDT_SUCCESS;
}

int check_launch_shared(const char *kernel, size_t dynamic_bytes) {
    SharedLimit limit;
    return begin_shared_launch(kernel, dynamic_bytes, &limit);
}

void begin_shared_block(unsigned char *dynamic, size_t dynamic_bytes, const SharedLimit &limit) {
    LaunchShared &launch = launch_shared;
    launch.limit = limit.bytes;
    launch.limit_name = limit.name;
    launch.dynamic = dynamic;
    launch.dynamic_bytes = dynamic_bytes;
    launch.statics.clear();
    launch.static_bytes = 0;
}

void static_shared(void *array, size_t bytes, const char *name) {
    LaunchShared &launch = launch_shared;
    for (const StaticArray &known : launch.statics) {
        if (known.begin == array) return;
    }
    std::memset(array, 0xff, bytes);
    launch.statics.push_back({static_cast<const unsigned char *>(array), bytes, name});
    launch.static_bytes += bytes;
    if (launch.static_bytes > kMaxSharedBytes) {
        violation(MDT_ERROR_SHARED_MEMORY,
                  "%zu bytes of static shared memory (with '%s', %zu bytes) exceed the %zu bytes a kernel may "
                  "declare",
                  launch.static_bytes, name, bytes, kMaxSharedBytes);
    }
    if (launch.static_bytes + launch.dynamic_bytes > launch.limit) {
        violation(MDT_ERROR_SHARED_MEMORY,
                  "%zu bytes of static shared memory (with '%s', %zu bytes) and %zu of dynamic exceed the %zu-byte "
                  "limit (%s)",
                  launch.static_bytes, name, bytes, launch.dynamic_bytes, launch.limit, launch.limit_name);
    }
}

bool in_shared_memory(const void *address, size_t bytes) {
    const unsigned char *p = static_cast<const unsigned char *>(address);
    const LaunchShared &launch = launch_shared;
    if (inside(launch.dynamic, launch.dynamic_bytes, p, bytes)) return true;
    for (const StaticArray &known : launch.statics) {
        if (inside(known.begin, known.bytes, p, bytes)) return true;
    }
    return false;
}

void check_shared_operand(const char *instruction, const void *address, size_t bytes) {
    const unsigned char *p = static_cast<const unsigned char *>(address);
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) {
        violation(MDT_ERROR_RUNTIME, "%s shared address %p is not 16-byte aligned (the GPU faults: misaligned "
                  "address)", instruction, address);
    }
    const LaunchShared &launch = launch_shared;
    if (inside(launch.dynamic, launch.dynamic_bytes, p, bytes)) return;
    for (const StaticArray &known : launch.statics) {
        if (inside(known.begin, known.bytes, p, bytes)) return;
    }
    violation(MDT_ERROR_RUNTIME,
              "%s shared operand %p (%zu bytes) is not inside the block's shared memory: neither the %zu dynamic "
              "bytes at %p nor a static array the block declared (the GPU faults: out-of-range shared address)",
              instruction, address, bytes, launch.dynamic_bytes, static_cast<const void *>(launch.dynamic));
}

}  // namespace mdt_emu

extern "C" int mdt_emu_architecture(int sm) {
    if (!mdt_emu::emulated(sm)) {
        return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_emu_architecture: sm_%d is not emulated (80 or 90)", sm);
    }
    mdt_emu::architecture = sm;
    mdt_emu::architecture_invalid = false;
    return MDT_SUCCESS;
}
