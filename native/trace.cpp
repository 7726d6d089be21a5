// The launch trace (microdit.h, "launch trace"): a process-wide list of kernel launches, guarded by a mutex,
// that MDT_LAUNCH appends to while a trace is open. The entries stay readable after mdt_trace_end until the next
// mdt_trace_begin. A dry run exists only on the emulator: on a GPU the kernels have to run.
#include "trace.h"

#include <atomic>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "microdit.h"
#include "status.h"

namespace {

struct Launch {
    std::string kernel;
    int64_t shape[7];
};

// A full-size training step makes a few thousand launches; the cap bounds a trace left open by mistake.
constexpr size_t kMaxEntries = size_t{1} << 22;

std::mutex trace_mutex;
std::vector<Launch> entries;
int64_t dropped = 0;
std::atomic<bool> open{false};
std::atomic<bool> dry{false};

}  // namespace

namespace mdt {

bool tracing() { return open.load(std::memory_order_relaxed); }

bool dry_run() { return dry.load(std::memory_order_relaxed); }

std::string launch_label(const char *kernel) {
    std::string name(kernel);
    // MDT_LAUNCH((a<1, T>), ...): a kernel expression with a comma comes parenthesised.
    if (name.size() >= 2 && name.front() == '(' && name.back() == ')') name = name.substr(1, name.size() - 2);
    size_t open_bracket = name.find('<');
    size_t colons = name.rfind("::", open_bracket);
    if (colons != std::string::npos) {
        name.erase(0, colons + 2);
        open_bracket = name.find('<');
    }
    if (open_bracket == std::string::npos) return name;
    std::string numeric;
    size_t close_bracket = name.find('>', open_bracket);
    size_t at = open_bracket + 1;
    while (at < close_bracket) {
        size_t comma = name.find(',', at);
        if (comma == std::string::npos || comma > close_bracket) comma = close_bracket;
        std::string argument = name.substr(at, comma - at);
        argument.erase(0, argument.find_first_not_of(' '));
        argument.erase(argument.find_last_not_of(' ') + 1);
        if (!argument.empty() && argument.find_first_not_of("0123456789") == std::string::npos) {
            numeric += (numeric.empty() ? "" : ", ") + argument;
        }
        at = comma + 1;
    }
    return name.substr(0, open_bracket) + (numeric.empty() ? "" : "<" + numeric + ">");
}

void trace_launch(const char *kernel, unsigned grid_x, unsigned grid_y, unsigned grid_z, unsigned block_x,
                  unsigned block_y, unsigned block_z, size_t shared_bytes) {
    if (!tracing()) return;
    std::lock_guard<std::mutex> lock(trace_mutex);
    if (entries.size() >= kMaxEntries) {
        dropped++;
        return;
    }
    entries.push_back({launch_label(kernel), {grid_x, grid_y, grid_z, block_x, block_y, block_z,
                                static_cast<int64_t>(shared_bytes)}});
}

}  // namespace mdt

extern "C" {

int mdt_trace_begin(int dry_run) {
    if (dry_run != 0 && dry_run != 1) {
        return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_trace_begin: dry_run must be 0 or 1, got %d", dry_run);
    }
    if (dry_run && mdt_library_kind() != MDT_KIND_EMULATOR) {
        return mdt::fail(MDT_ERROR_INVALID_ARGUMENT,
                         "mdt_trace_begin: a dry run (kernels not run) exists only on the emulator library");
    }
    std::lock_guard<std::mutex> lock(trace_mutex);
    if (open.load()) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_trace_begin: a trace is already open");
    entries.clear();
    dropped = 0;
    dry.store(dry_run == 1);
    open.store(true);
    return MDT_SUCCESS;
}

int mdt_trace_end(void) {
    std::lock_guard<std::mutex> lock(trace_mutex);
    if (!open.load()) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_trace_end: no trace is open");
    open.store(false);
    dry.store(false);
    if (dropped > 0) {
        return mdt::fail(MDT_ERROR_RUNTIME, "mdt_trace_end: the trace kept the first %zu launches and dropped %lld",
                         entries.size(), static_cast<long long>(dropped));
    }
    return MDT_SUCCESS;
}

int mdt_trace_count(int64_t *launches) {
    if (!launches) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_trace_count: launches is NULL");
    std::lock_guard<std::mutex> lock(trace_mutex);
    *launches = static_cast<int64_t>(entries.size());
    return MDT_SUCCESS;
}

int mdt_trace_entry(int64_t index, char *kernel, size_t capacity, int64_t *shape) {
    if (!kernel || capacity == 0 || !shape) {
        return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_trace_entry: NULL kernel buffer or shape, or capacity 0");
    }
    std::lock_guard<std::mutex> lock(trace_mutex);
    if (index < 0 || index >= static_cast<int64_t>(entries.size())) {
        return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_trace_entry: index %lld outside the trace's %zu launches",
                         static_cast<long long>(index), entries.size());
    }
    const Launch &launch = entries[static_cast<size_t>(index)];
    std::strncpy(kernel, launch.kernel.c_str(), capacity - 1);
    kernel[capacity - 1] = '\0';
    std::memcpy(shape, launch.shape, sizeof(launch.shape));
    return MDT_SUCCESS;
}

}  // extern "C"
