// The checked emulator (libmicrodit_emu_checked.so): the kernel sources are compiled with g++
// -fsanitize=kernel-address and call-threshold 0, so every load and store in kernel code calls
// __asan_{load,store}{1,2,4,8,16,N}_noabort, which this file implements (the emulator and runtime are not
// instrumented; atomics, cp.async and ldmatrix report their accesses through the hooks in mdt_emu.h). Each access
// of a running CUDA thread is classified:
//   - its own fiber stack (locals, parameters), the launch's std::function, the library's own data: not checked;
//   - the block's shared memory (dynamic or a static array): checked for races between the block's threads;
//   - inside a live device allocation (mdt_malloc .. mdt_free): checked for races between blocks;
//   - anything else ends the launch with MDT_ERROR_OUT_OF_BOUNDS, naming the access and the nearest allocation.
// Races. Global memory: a shadow entry per 2-byte unit (bf16 neighbours written by two blocks are no race) holds the
// block that wrote it plainly, the block(s) that read it and the block(s) that used it atomically, per launch; a
// block touching a unit another block wrote, or writing one another block read, or mixing plain and atomic
// accesses with another block, ends the launch with MDT_ERROR_RACE. The shadow is keyed by block id, so it finds the
// race whatever order the blocks ran in, one after another or at once on several host threads (and grid-stride
// loops, where one block comes back to its own data, are fine): it is one per launch, shared by the threads running
// its blocks, each unit checked and updated under one of a set of striped spin locks. The shared-memory shadow and
// the performance model's requests belong to a block, so each host thread keeps its own. Shared memory: per block, a
// unit written by one thread and read or written by another in the same barrier interval (no __syncthreads between; for two lanes of one warp, no warp-synchronous
// call between either), or read by one and then written by another there, is a race. Lanes of a warp are assumed to
// pass the same warp-synchronous calls (the emulator already fails lanes that disagree), so a lane that has passed
// more of them than the writer had when it wrote is ordered after the write.
// Performance model (mdt_emu_perf_begin .. _end, microdit.h): the k-th access of each lane of a warp at one call site
// between two sync points is one warp request. Shared memory: 32 banks of 4 bytes; accesses of up to 4 bytes are one
// phase of 32 lanes, 8-byte ones two phases of 16, 16-byte ones (and ldmatrix rows) four of 8; a phase costs as many
// wavefronts as the most distinct words any bank holds, ideally 1. Global memory: the distinct 32-byte sectors a
// request touches, ideally its distinct bytes / 32 rounded up. Counted per kernel name.
#include <dlfcn.h>
#include <link.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "mdt_emu.h"
#include "microdit.h"
#include "status.h"
#include "trace.h"

#ifndef MDT_EMU_CHECKED

namespace mdt_emu {
CheckedLaunch *begin_checked_launch(const char *, const std::function<void()> &) { return nullptr; }
void begin_checked_worker(CheckedLaunch *) {}
void begin_checked_block(int) {}
void end_checked_worker() {}
void end_checked_launch(CheckedLaunch *) {}
void register_allocation(const void *, size_t) {}
void unregister_allocation(const void *) {}
void atomic_access(const void *, size_t) {}
void cp_async_access(const void *, const void *, int, const void *) {}
void ldmatrix_access(const void *, const void *) {}
}  // namespace mdt_emu

namespace {
int unchecked(const char *function) {
    return mdt::fail(MDT_ERROR_INVALID_ARGUMENT,
                     "%s: the performance model runs only in the checked emulator (libmicrodit_emu_checked.so, "
                     "-Dmicrodit.device=emu-checked)",
                     function);
}
}  // namespace

extern "C" int mdt_emu_perf_begin(void) { return unchecked("mdt_emu_perf_begin"); }
extern "C" int mdt_emu_perf_end(int *) { return unchecked("mdt_emu_perf_end"); }
extern "C" int mdt_emu_perf_kernel(int, char *, int64_t, int64_t *) { return unchecked("mdt_emu_perf_kernel"); }

#else

namespace mdt_emu {

namespace {

// ------------------------------------------------------------------------------------------------ allocations

struct Allocation {
    uintptr_t base = 0;
    size_t bytes = 0;
};

/** Live device allocations (base → bytes), and the most recently freed ones, to name them in a message. */
struct Allocations {
    std::mutex mutex;
    std::map<uintptr_t, size_t> live;
    std::map<uintptr_t, size_t> freed;
    std::atomic<uint64_t> generation{0};
};
Allocations allocations;
constexpr size_t kFreedRemembered = 4096;

/** The allocation this host thread found last, valid while the registry's generation is unchanged. */
thread_local Allocation cached_allocation;
thread_local uint64_t cached_generation = ~0ull;

bool contains(const Allocation &a, uintptr_t address, size_t bytes) {
    return a.bytes != 0 && address >= a.base && bytes <= a.bytes && address - a.base <= a.bytes - bytes;
}

bool find_allocation(uintptr_t address, size_t bytes, Allocation &found) {
    uint64_t generation = allocations.generation.load(std::memory_order_acquire);
    if (generation == cached_generation && contains(cached_allocation, address, bytes)) {
        found = cached_allocation;
        return true;
    }
    std::lock_guard<std::mutex> lock(allocations.mutex);
    auto next = allocations.live.upper_bound(address);
    if (next == allocations.live.begin()) return false;
    auto it = std::prev(next);
    Allocation candidate{it->first, it->second};
    if (!contains(candidate, address, bytes)) return false;
    cached_allocation = candidate;
    cached_generation = generation;
    found = candidate;
    return true;
}

/** Where an access outside every live allocation lies, in words: a freed allocation or the nearest live one. */
std::string describe_outside(uintptr_t address, size_t bytes) {
    std::lock_guard<std::mutex> lock(allocations.mutex);
    char text[256];
    auto freed = allocations.freed.upper_bound(address);
    if (freed != allocations.freed.begin()) {
        --freed;
        if (address - freed->first < freed->second) {
            std::snprintf(text, sizeof(text), "at offset %zu of a freed %zu-byte allocation at %p",
                          static_cast<size_t>(address - freed->first), freed->second,
                          reinterpret_cast<void *>(freed->first));
            return text;
        }
    }
    auto above = allocations.live.upper_bound(address);
    if (above != allocations.live.begin()) {
        auto below = std::prev(above);
        uintptr_t end = below->first + below->second;
        if (address < end) {
            std::snprintf(text, sizeof(text),
                          "at offset %zu of the %zu-byte allocation at %p, overrunning its end by %zu bytes",
                          static_cast<size_t>(address - below->first), below->second,
                          reinterpret_cast<void *>(below->first), static_cast<size_t>(address + bytes - end));
            return text;
        }
        if (above == allocations.live.end() || address - end <= above->first - address) {
            std::snprintf(text, sizeof(text), "at offset %zu of the %zu-byte allocation at %p (%zu bytes past its end)",
                          static_cast<size_t>(address - below->first), below->second,
                          reinterpret_cast<void *>(below->first), static_cast<size_t>(address - end));
            return text;
        }
    }
    if (above != allocations.live.end()) {
        std::snprintf(text, sizeof(text), "%zu bytes before the %zu-byte allocation at %p",
                      static_cast<size_t>(above->first - address), above->second,
                      reinterpret_cast<void *>(above->first));
        return text;
    }
    return "with no live allocation at all";
}

// ------------------------------------------------------------------------------------------------ library data

/** The loadable segments of this library (its constant tables and other data), found once. */
struct LibraryData {
    std::vector<std::pair<uintptr_t, uintptr_t>> segments;
    LibraryData() {
        Dl_info info;
        if (!dladdr(reinterpret_cast<void *>(&describe_outside), &info)) return;
        std::pair<LibraryData *, void *> context{this, info.dli_fbase};
        dl_iterate_phdr(
            [](dl_phdr_info *object, size_t, void *data) {
                auto *self = static_cast<std::pair<LibraryData *, void *> *>(data);
                if (reinterpret_cast<void *>(object->dlpi_addr) != self->second) return 0;
                for (int i = 0; i < object->dlpi_phnum; i++) {
                    const ElfW(Phdr) &header = object->dlpi_phdr[i];
                    if (header.p_type != PT_LOAD) continue;
                    uintptr_t begin = object->dlpi_addr + header.p_vaddr;
                    self->first->segments.push_back({begin, begin + header.p_memsz});
                }
                return 1;
            },
            &context);
    }
    bool contains(uintptr_t address, size_t bytes) const {
        for (const auto &segment : segments) {
            if (address >= segment.first && address + bytes <= segment.second) return true;
        }
        return false;
    }
};
const LibraryData &library_data() {
    static const LibraryData data;
    return data;
}

// ------------------------------------------------------------------------------------------------ shadows

/**
 * A sparse shadow: one Entry per 2-byte unit, in pages of 4 KiB of memory. reset() forgets every entry in O(1) (a page
 * is cleared when first touched in the new epoch); past kMaxPages the pages themselves go, so the shadow of a long
 * run stays bounded by what one launch touches.
 */
template <class Entry>
struct Shadow {
    static constexpr unsigned kUnitsPerPage = 2048;
    static constexpr size_t kMaxPages = 16384;  // 64 MiB of memory shadowed
    struct Page {
        uint64_t epoch = 0;
        std::unique_ptr<Entry[]> entries;
    };
    std::unordered_map<uintptr_t, Page> pages;
    uint64_t epoch = 1;
    uintptr_t last_key = ~uintptr_t{0};
    Entry *last = nullptr;

    Entry &at(uintptr_t unit) {
        uintptr_t key = unit / kUnitsPerPage;
        if (key != last_key) {
            Page &page = pages[key];
            if (!page.entries) page.entries.reset(new Entry[kUnitsPerPage]);
            if (page.epoch != epoch) {
                std::fill(page.entries.get(), page.entries.get() + kUnitsPerPage, Entry());
                page.epoch = epoch;
            }
            last_key = key;
            last = page.entries.get();
        }
        return last[unit % kUnitsPerPage];
    }
    void reset() {
        if (pages.size() > kMaxPages) pages.clear();
        epoch++;
        last_key = ~uintptr_t{0};
    }
};

constexpr uint32_t kMany = 0xffffffffu;

/** Blocks as id + 1 (0: none; kMany: more than one). */
struct GlobalEntry {
    uint32_t writer = 0;
    uint32_t reader = 0;
    uint32_t atomic = 0;
};

/**
 * Waits a moment for a stripe lock, which its holder keeps for a few instructions: a pause hint to the core, and
 * after many rounds the processor itself, since a holder preempted on a machine with fewer cores than threads
 * cannot release it before it runs again.
 */
inline void wait_for_stripe(unsigned &rounds) {
    if (++rounds % 128 == 0) {
        std::this_thread::yield();
        return;
    }
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

/**
 * The launch's shadow of global memory, shared by the host threads running its blocks: pages as Shadow's, found under
 * a mutex (each thread keeps the pages it found in a small cache, WorkerCheck::pages), and their entries checked and
 * updated under striped spin locks, one stripe per 32 bytes of memory (a stripe never straddles pages), so two
 * blocks touching one unit at once see each other's access. reset() runs between launches, when no block runs.
 */
struct GlobalShadow {
    static constexpr unsigned kUnitsPerPage = 2048;
    static constexpr size_t kMaxPages = 16384;  // 64 MiB of memory shadowed
    static constexpr unsigned kUnitsPerStripe = 16;
    static constexpr size_t kStripes = 1024;
    struct Page {
        uint64_t epoch = 0;
        std::unique_ptr<GlobalEntry[]> entries;
    };
    struct alignas(64) Stripe {
        std::atomic<bool> held{false};
    };
    std::mutex mutex;
    std::unordered_map<uintptr_t, Page> pages;  // entries stay put while the map grows
    uint64_t epoch = 1;
    Stripe stripes[kStripes];

    GlobalEntry *page(uintptr_t key) {
        std::lock_guard<std::mutex> lock(mutex);
        Page &page = pages[key];
        if (!page.entries) page.entries.reset(new GlobalEntry[kUnitsPerPage]);
        if (page.epoch != epoch) {
            std::fill(page.entries.get(), page.entries.get() + kUnitsPerPage, GlobalEntry());
            page.epoch = epoch;
        }
        return page.entries.get();
    }
    void reset() {
        if (pages.size() > kMaxPages) pages.clear();
        epoch++;
    }
    void lock(uintptr_t unit) {
        std::atomic<bool> &held = stripes[unit / kUnitsPerStripe % kStripes].held;
        unsigned rounds = 0;
        while (held.exchange(true, std::memory_order_acquire)) {
            while (held.load(std::memory_order_relaxed)) wait_for_stripe(rounds);
        }
    }
    void unlock(uintptr_t unit) {
        stripes[unit / kUnitsPerStripe % kStripes].held.store(false, std::memory_order_release);
    }
};

/** Threads as id + 1 (0: none; kMany16: more than one); the barrier generation and sync count of the access. */
constexpr uint16_t kMany16 = 0xffff;
struct SharedEntry {
    uint16_t writer = 0;
    uint16_t reader = 0;
    uint16_t reader_warp = 0;
    uint32_t write_barriers = 0;
    uint32_t write_syncs = 0;
    uint32_t read_barriers = 0;
    uint32_t read_syncs = 0;
};

// ------------------------------------------------------------------------------------------------ performance

enum class Space : uint8_t { kShared, kGlobal };

struct LaneAccess {
    uintptr_t address;
    uint32_t bytes;
};

struct GroupKey {
    uint64_t syncs;
    const void *site;
    uint32_t warp;
    uint32_t occurrence;
    Space space;
    bool operator==(const GroupKey &o) const {
        return syncs == o.syncs && site == o.site && warp == o.warp && occurrence == o.occurrence && space == o.space;
    }
};
struct GroupKeyHash {
    size_t operator()(const GroupKey &k) const {
        uint64_t h = k.syncs * 0x9e3779b97f4a7c15ull ^ reinterpret_cast<uintptr_t>(k.site) ^
                     (static_cast<uint64_t>(k.warp) << 40) ^ (static_cast<uint64_t>(k.occurrence) << 20) ^
                     static_cast<uint64_t>(k.space);
        return static_cast<size_t>(h ^ (h >> 29));
    }
};

/** One warp request in the making: the lanes that made it so far. */
struct Group {
    unsigned lanes = 0;
    LaneAccess access[kWarpSize];
};

struct Counts {
    int64_t launches = 0;
    int64_t shared_requests = 0;
    int64_t shared_wavefronts = 0;
    int64_t shared_ideal_wavefronts = 0;
    int64_t global_requests = 0;
    int64_t global_sectors = 0;
    int64_t global_ideal_sectors = 0;
};

/** Per thread of the running block: its sync count and how often it reached each call site since. */
struct ThreadSites {
    uint64_t syncs = ~0ull;
    std::vector<std::pair<const void *, uint32_t>> sites;
};

std::mutex perf_mutex;
std::atomic<bool> perf_on{false};
std::map<std::string, Counts> perf_counts;           // under perf_mutex
std::vector<std::pair<std::string, Counts>> perf_snapshot;  // what mdt_emu_perf_end froze

void count_shared(const Group &group, Counts &counts) {
    // The phase of a lane depends on the access width, as the hardware splits a warp's wide accesses.
    uint32_t bytes = 0;
    for (unsigned m = group.lanes; m; m &= m - 1) bytes = std::max(bytes, group.access[__builtin_ctz(m)].bytes);
    int lanes_per_phase = bytes <= 4 ? 32 : (bytes <= 8 ? 16 : 8);
    int64_t wavefronts = 0, ideal = 0;
    for (int first = 0; first < kWarpSize; first += lanes_per_phase) {
        std::vector<uintptr_t> words[32];
        bool any = false;
        for (int lane = first; lane < first + lanes_per_phase; lane++) {
            if (!(group.lanes >> lane & 1u)) continue;
            any = true;
            const LaneAccess &a = group.access[lane];
            for (uintptr_t word = a.address / 4; word <= (a.address + a.bytes - 1) / 4; word++) {
                std::vector<uintptr_t> &bank = words[word % 32];
                if (std::find(bank.begin(), bank.end(), word) == bank.end()) bank.push_back(word);
            }
        }
        if (!any) continue;
        size_t worst = 1;
        for (const auto &bank : words) worst = std::max(worst, bank.size());
        wavefronts += static_cast<int64_t>(worst);
        ideal += 1;
    }
    counts.shared_requests++;
    counts.shared_wavefronts += wavefronts;
    counts.shared_ideal_wavefronts += ideal;
}

void count_global(const Group &group, Counts &counts) {
    std::vector<std::pair<uintptr_t, uintptr_t>> ranges;
    for (unsigned m = group.lanes; m; m &= m - 1) {
        const LaneAccess &a = group.access[__builtin_ctz(m)];
        ranges.push_back({a.address, a.address + a.bytes});
    }
    std::sort(ranges.begin(), ranges.end());
    int64_t distinct_bytes = 0, sectors = 0;
    uintptr_t covered = 0, last_sector = ~uintptr_t{0};
    for (const auto &r : ranges) {
        uintptr_t begin = std::max(r.first, covered);
        if (r.second > begin) distinct_bytes += static_cast<int64_t>(r.second - begin);
        covered = std::max(covered, r.second);
        for (uintptr_t sector = r.first / 32; sector <= (r.second - 1) / 32; sector++) {
            if (last_sector == ~uintptr_t{0} || sector > last_sector) {
                sectors++;
                last_sector = sector;
            }
        }
    }
    counts.global_requests++;
    counts.global_sectors += sectors;
    counts.global_ideal_sectors += (distinct_bytes + 31) / 32;
}

// ------------------------------------------------------------------------------------------------ launch state

}  // namespace

/** A launch, as its caller began it (run_launch): shared by the host threads that run its blocks. */
struct CheckedLaunch {
    std::string kernel;
    uintptr_t body_begin = 0, body_end = 0;
    GlobalShadow global;
    bool perf = false;
    std::mutex counts_mutex;
    Counts counts;  // the workers' counts, added as each finishes
};

namespace {

/** The caller's launch (launches are synchronous and never nested), reused with its shadow's pages by the next. */
thread_local CheckedLaunch caller_launch;

/** What a host thread checks of the blocks it runs: the launch, the running block's shared memory and requests. */
struct WorkerCheck {
    CheckedLaunch *launch = nullptr;
    Shadow<SharedEntry> shared;
    Counts counts;
    std::vector<ThreadSites> threads;
    std::unordered_map<GroupKey, Group, GroupKeyHash> groups;
    // The global shadow's pages this thread found in the running launch, by page number (direct-mapped).
    static constexpr size_t kCachedPages = 64;
    struct CachedPage {
        uintptr_t key = ~uintptr_t{0};
        GlobalEntry *entries = nullptr;
    };
    CachedPage pages[kCachedPages];

    GlobalEntry *global_page(uintptr_t key) {
        CachedPage &cached = pages[key % kCachedPages];
        if (cached.key != key) {
            cached.entries = launch->global.page(key);
            cached.key = key;
        }
        return cached.entries;
    }
};
thread_local WorkerCheck worker_check;

void flush_groups(WorkerCheck &worker) {
    for (const auto &entry : worker.groups) {
        if (entry.first.space == Space::kShared) {
            count_shared(entry.second, worker.counts);
        } else {
            count_global(entry.second, worker.counts);
        }
    }
    worker.groups.clear();
}

void record_request(WorkerCheck &worker, const ThreadPosition &position, Space space, uintptr_t address,
                    size_t bytes, const void *site) {
    ThreadSites &thread = worker.threads[static_cast<size_t>(position.thread)];
    if (thread.syncs != position.syncs) {
        thread.syncs = position.syncs;
        thread.sites.clear();
    }
    uint32_t occurrence = 0;
    bool found = false;
    for (auto &s : thread.sites) {
        if (s.first == site) {
            occurrence = ++s.second;
            found = true;
            break;
        }
    }
    if (!found) thread.sites.push_back({site, 0});
    int lane = position.thread % kWarpSize;
    GroupKey key{position.syncs, site, static_cast<uint32_t>(position.thread / kWarpSize), occurrence, space};
    Group &group = worker.groups[key];
    group.lanes |= 1u << lane;
    group.access[lane] = {address, static_cast<uint32_t>(bytes)};
    if ((group.lanes & position.warp_live) == position.warp_live) {
        if (space == Space::kShared) {
            count_shared(group, worker.counts);
        } else {
            count_global(group, worker.counts);
        }
        worker.groups.erase(key);
    }
}

const char *kind(bool write) { return write ? "write" : "read"; }

/** The other party of a race, recorded as id + 1 or as {@code many}: "block 3 (linear index)", "several other
 *  blocks". */
void other_party(char (&text)[64], uint32_t other, uint32_t many, const char *one, const char *several) {
    if (other == many) {
        std::snprintf(text, sizeof(text), "several other %s", several);
    } else {
        std::snprintf(text, sizeof(text), "%s %u (linear index)", one, other - 1);
    }
}

void race_between_blocks(uintptr_t address, bool write, const Allocation &allocation, const char *what,
                         uint32_t other) {
    char other_text[64];
    other_party(other_text, other, kMany, "block", "blocks");
    violation(MDT_ERROR_RACE,
              "race between blocks: %s at offset %zu of the %zu-byte allocation at %p, which %s %s in the same "
              "launch without an atomic",
              kind(write), static_cast<size_t>(address - allocation.base), allocation.bytes,
              reinterpret_cast<void *>(allocation.base), other_text, what);
}

/** What an access found in one unit: the other block's kind of access ("wrote", ...) and who, or nothing. */
struct Conflict {
    const char *what = nullptr;
    uint32_t other = 0;
};

/** Checks one unit's entry against this access and records the access (under the unit's stripe lock). */
Conflict check_unit(GlobalEntry &entry, uint32_t me, bool write, bool atomic) {
    if (entry.writer != 0 && entry.writer != me) return {"wrote", entry.writer};
    if ((atomic || write) && entry.reader != 0 && entry.reader != me) return {"read", entry.reader};
    if (!atomic && entry.atomic != 0 && entry.atomic != me) return {"updated atomically", entry.atomic};
    if (atomic) {
        entry.atomic = entry.atomic == 0 || entry.atomic == me ? me : kMany;
    } else if (write) {
        entry.writer = me;
    } else {
        entry.reader = entry.reader == 0 || entry.reader == me ? me : kMany;
    }
    return {};
}

void check_global(WorkerCheck &worker, const ThreadPosition &position, uintptr_t address, size_t bytes, bool write,
                  bool atomic, const Allocation &allocation) {
    uint32_t me = static_cast<uint32_t>(position.block + 1);
    GlobalShadow &shadow = worker.launch->global;
    uintptr_t last = (address + bytes - 1) / 2;
    // A stripe's units at a time, under its lock (an access of up to 16 aligned bytes takes one).
    for (uintptr_t first = address / 2; first <= last;) {
        uintptr_t end = std::min(last, (first / GlobalShadow::kUnitsPerStripe + 1) * GlobalShadow::kUnitsPerStripe - 1);
        GlobalEntry *page = worker.global_page(first / GlobalShadow::kUnitsPerPage);
        Conflict conflict;
        uintptr_t unit = first;
        shadow.lock(first);
        for (; unit <= end && !conflict.what; unit++) {
            conflict = check_unit(page[unit % GlobalShadow::kUnitsPerPage], me, write, atomic);
        }
        shadow.unlock(first);  // before a violation, which never returns to this fiber
        if (conflict.what) {
            race_between_blocks(std::max(address, (unit - 1) * 2), write, allocation, conflict.what, conflict.other);
        }
        first = end + 1;
    }
}

void race_in_block(uintptr_t address, bool write, const char *what, uint16_t other) {
    char other_text[64];
    other_party(other_text, other, kMany16, "thread", "threads");
    violation(MDT_ERROR_RACE,
              "shared-memory race: %s of shared address %p, which %s %s since the last __syncthreads with no "
              "warp-synchronous call between",
              kind(write), reinterpret_cast<void *>(address), other_text, what);
}

void check_shared(WorkerCheck &worker, const ThreadPosition &position, uintptr_t address, size_t bytes, bool write) {
    uint16_t me = static_cast<uint16_t>(position.thread + 1);
    uint16_t warp = static_cast<uint16_t>(position.thread / kWarpSize + 1);
    uint32_t barriers = static_cast<uint32_t>(position.barriers + 1), syncs = static_cast<uint32_t>(position.syncs);
    for (uintptr_t unit = address / 2; unit <= (address + bytes - 1) / 2; unit++) {
        SharedEntry &entry = worker.shared.at(unit);
        uintptr_t at = std::max(address, unit * 2);
        if (entry.writer != 0 && entry.writer != me && entry.write_barriers == barriers) {
            bool same_warp = (entry.writer - 1) / kWarpSize + 1 == warp;
            if (!same_warp || syncs <= entry.write_syncs) race_in_block(at, write, "wrote", entry.writer);
        }
        if (write && entry.reader != 0 && entry.reader != me && entry.read_barriers == barriers) {
            if (entry.reader_warp != warp || syncs <= entry.read_syncs) race_in_block(at, write, "read", entry.reader);
        }
        if (write) {
            entry.writer = me;
            entry.write_barriers = barriers;
            entry.write_syncs = syncs;
        } else if (entry.read_barriers != barriers || entry.reader == 0) {
            entry.reader = me;
            entry.reader_warp = warp;
            entry.read_barriers = barriers;
            entry.read_syncs = syncs;
        } else if (entry.reader != me) {
            if (entry.reader_warp != warp) entry.reader_warp = kMany16;
            entry.reader = kMany16;
            entry.read_syncs = std::max(entry.read_syncs, syncs);
        }
    }
}

[[noreturn]] void out_of_bounds(uintptr_t address, size_t bytes, bool write) {
    std::string where = describe_outside(address, bytes);
    violation(MDT_ERROR_OUT_OF_BOUNDS,
              "out-of-bounds %s of %zu bytes at %p: outside every live allocation and the block's shared memory, "
              "%s",
              kind(write), bytes, reinterpret_cast<void *>(address), where.c_str());
}

enum class Access { kRead, kWrite, kAtomic };

void access(const void *pointer, size_t bytes, Access how, const void *site) {
    ThreadPosition position;
    if (!thread_position(position)) return;
    uintptr_t address = reinterpret_cast<uintptr_t>(pointer);
    uintptr_t stack = reinterpret_cast<uintptr_t>(position.stack);
    if (address >= stack && address - stack < position.stack_bytes) return;
    WorkerCheck &worker = worker_check;
    const CheckedLaunch &launch = *worker.launch;
    if (address >= launch.body_begin && address < launch.body_end) return;
    bool write = how != Access::kRead;
    if (in_shared_memory(pointer, bytes)) {
        if (how != Access::kAtomic) {
            check_shared(worker, position, address, bytes, write);
            if (launch.perf) record_request(worker, position, Space::kShared, address, bytes, site);
        }
        return;
    }
    Allocation allocation;
    if (find_allocation(address, bytes, allocation)) {
        check_global(worker, position, address, bytes, write, how == Access::kAtomic, allocation);
        if (launch.perf && how != Access::kAtomic) {
            record_request(worker, position, Space::kGlobal, address, bytes, site);
        }
        return;
    }
    if (library_data().contains(address, bytes)) return;
    out_of_bounds(address, bytes, write);
}

}  // namespace

CheckedLaunch *begin_checked_launch(const char *kernel, const std::function<void()> &body) {
    CheckedLaunch &launch = caller_launch;
    launch.kernel = ::mdt::launch_label(kernel);
    launch.body_begin = reinterpret_cast<uintptr_t>(&body);
    launch.body_end = launch.body_begin + sizeof(body);
    launch.global.reset();
    launch.perf = perf_on.load(std::memory_order_relaxed);
    launch.counts = Counts();
    launch.counts.launches = 1;
    library_data();
    return &launch;
}

void begin_checked_worker(CheckedLaunch *launch) {
    WorkerCheck &worker = worker_check;
    worker.launch = launch;
    worker.counts = Counts();
    for (WorkerCheck::CachedPage &cached : worker.pages) cached = WorkerCheck::CachedPage();
}

void begin_checked_block(int threads) {
    WorkerCheck &worker = worker_check;
    worker.shared.reset();
    flush_groups(worker);
    worker.threads.assign(static_cast<size_t>(threads), ThreadSites());
}

void end_checked_worker() {
    WorkerCheck &worker = worker_check;
    flush_groups(worker);
    CheckedLaunch &launch = *worker.launch;
    std::lock_guard<std::mutex> lock(launch.counts_mutex);
    launch.counts.shared_requests += worker.counts.shared_requests;
    launch.counts.shared_wavefronts += worker.counts.shared_wavefronts;
    launch.counts.shared_ideal_wavefronts += worker.counts.shared_ideal_wavefronts;
    launch.counts.global_requests += worker.counts.global_requests;
    launch.counts.global_sectors += worker.counts.global_sectors;
    launch.counts.global_ideal_sectors += worker.counts.global_ideal_sectors;
    worker.launch = nullptr;
}

void end_checked_launch(CheckedLaunch *launch) {
    launch->body_begin = launch->body_end = 0;
    if (launch->perf) {
        std::lock_guard<std::mutex> lock(perf_mutex);
        Counts &total = perf_counts[launch->kernel];
        total.launches += launch->counts.launches;
        total.shared_requests += launch->counts.shared_requests;
        total.shared_wavefronts += launch->counts.shared_wavefronts;
        total.shared_ideal_wavefronts += launch->counts.shared_ideal_wavefronts;
        total.global_requests += launch->counts.global_requests;
        total.global_sectors += launch->counts.global_sectors;
        total.global_ideal_sectors += launch->counts.global_ideal_sectors;
    }
}

void register_allocation(const void *base, size_t bytes) {
    std::lock_guard<std::mutex> lock(allocations.mutex);
    uintptr_t address = reinterpret_cast<uintptr_t>(base);
    allocations.live[address] = bytes;
    // Freed allocations the new one reuses any part of no longer describe that memory (a read past the new one's
    // end must be named by it, not by an older block the allocator carved it from).
    auto freed = allocations.freed.lower_bound(address);
    if (freed != allocations.freed.begin()) {
        auto before = std::prev(freed);
        if (before->first + before->second > address) freed = before;
    }
    while (freed != allocations.freed.end() && freed->first < address + (bytes == 0 ? 1 : bytes)) {
        freed = allocations.freed.erase(freed);
    }
    allocations.generation.fetch_add(1, std::memory_order_release);
}

void unregister_allocation(const void *base) {
    std::lock_guard<std::mutex> lock(allocations.mutex);
    auto it = allocations.live.find(reinterpret_cast<uintptr_t>(base));
    if (it == allocations.live.end()) return;
    if (allocations.freed.size() >= kFreedRemembered) allocations.freed.clear();
    allocations.freed[it->first] = it->second;
    allocations.live.erase(it);
    allocations.generation.fetch_add(1, std::memory_order_release);
}

void atomic_access(const void *address, size_t bytes) { access(address, bytes, Access::kAtomic, nullptr); }

void cp_async_access(const void *shared, const void *global, int source_bytes, const void *site) {
    if (source_bytes > 0) access(global, static_cast<size_t>(source_bytes), Access::kRead, site);
    access(shared, 16, Access::kWrite, site);
}

void ldmatrix_access(const void *row, const void *site) { access(row, 16, Access::kRead, site); }

}  // namespace mdt_emu

// The callbacks GCC's -fsanitize=kernel-address emits (recovering: _noabort), one per access width.
#define MDT_ACCESS_CALLBACKS(size)                                                                          \
    extern "C" void __asan_load##size##_noabort(void *address) {    \
        mdt_emu::access(address, size, mdt_emu::Access::kRead, __builtin_return_address(0));                \
    }                                                                                                       \
    extern "C" void __asan_store##size##_noabort(void *address) {   \
        mdt_emu::access(address, size, mdt_emu::Access::kWrite, __builtin_return_address(0));               \
    }
MDT_ACCESS_CALLBACKS(1)
MDT_ACCESS_CALLBACKS(2)
MDT_ACCESS_CALLBACKS(4)
MDT_ACCESS_CALLBACKS(8)
MDT_ACCESS_CALLBACKS(16)
extern "C" void __asan_loadN_noabort(void *address, size_t bytes) {
    mdt_emu::access(address, bytes, mdt_emu::Access::kRead, __builtin_return_address(0));
}
extern "C" void __asan_storeN_noabort(void *address, size_t bytes) {
    mdt_emu::access(address, bytes, mdt_emu::Access::kWrite, __builtin_return_address(0));
}
// Called once per instrumented translation unit; nothing to set up.
extern "C" void __asan_handle_no_return() {}

extern "C" int mdt_emu_perf_begin(void) {
    std::lock_guard<std::mutex> lock(mdt_emu::perf_mutex);
    mdt_emu::perf_counts.clear();
    mdt_emu::perf_on = true;
    return MDT_SUCCESS;
}

extern "C" int mdt_emu_perf_end(int *kernels) {
    if (!kernels) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_emu_perf_end: kernels is NULL");
    std::lock_guard<std::mutex> lock(mdt_emu::perf_mutex);
    mdt_emu::perf_on = false;
    mdt_emu::perf_snapshot.assign(mdt_emu::perf_counts.begin(), mdt_emu::perf_counts.end());
    *kernels = static_cast<int>(mdt_emu::perf_snapshot.size());
    return MDT_SUCCESS;
}

extern "C" int mdt_emu_perf_kernel(int index, char *name, int64_t name_capacity, int64_t *counts) {
    std::lock_guard<std::mutex> lock(mdt_emu::perf_mutex);
    if (index < 0 || static_cast<size_t>(index) >= mdt_emu::perf_snapshot.size() || !name || name_capacity < 1 ||
        !counts) {
        return mdt::fail(MDT_ERROR_INVALID_ARGUMENT,
                         "mdt_emu_perf_kernel: index %d of %zu kernels, or a NULL/empty output", index,
                         mdt_emu::perf_snapshot.size());
    }
    const auto &entry = mdt_emu::perf_snapshot[static_cast<size_t>(index)];
    std::snprintf(name, static_cast<size_t>(name_capacity), "%s", entry.first.c_str());
    const mdt_emu::Counts &c = entry.second;
    const int64_t values[MDT_PERF_COUNTS] = {c.launches,       c.shared_requests, c.shared_wavefronts,
                                             c.shared_ideal_wavefronts, c.global_requests, c.global_sectors,
                                             c.global_ideal_sectors};
    std::memcpy(counts, values, sizeof(values));
    return MDT_SUCCESS;
}

#endif
