// The emulator's collectives (microdit.h, mdt_comm_*): the ABI the CUDA library implements with NCCL, here with MPI
// between emulator processes, so the CUDA backend's data-parallel path runs in CI as it would on GPUs. Emulated
// device memory is host memory, so MPI moves it directly. Ordering as in the CUDA library: each collective is host
// work (cuda_runtime.h, enqueue_host_work) on the communicator's own emulated stream, after an event recorded on the
// caller's stream, and the caller's stream waits for an event recorded after it: at once, or only at mdt_comm_join
// for the _deferred entries. With deferred streams (mdt_emu_stream_mode) a deferred collective is really pending until
// its process waits for it (the emulator runs awaited work at the wait), so a missing join reads the old values.
//
// Sums are rank-order: MPI_Alltoallv gives each rank every rank's copy of its shard, which it adds in rank order
// (as io.microdit.distributed.MpiCommunicator does on the CPU), so N emulated ranks equal one process bit for bit.
//
// A rank that dies: Open MPI's own waits never return (it leaves a dead rank to mpirun, which ends the job, but
// another launcher, or mpirun --enable-recovery, need not), so each collective is MPI's nonblocking one, polled;
// while it waits, the ranks on this host (all of them in CI) are checked every kLivenessCheck, and a dead one fails
// the collective with a status naming it and the collective, which the caller's join or synchronisation returns.
//
// libmpi.so.40 is opened at run time (the build needs no MPI headers): the handful of entry points are declared
// here with Open MPI's ABI, where handles (MPI_Comm, MPI_Datatype, ...) are the addresses of its global objects
// (ompi_mpi_comm_world, ompi_mpi_float, ...), looked up by name as MpiLibrary.java does.
#include <dlfcn.h>
#include <unistd.h>

#include <chrono>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "cuda_runtime.h"
#include "microdit.h"
#include "status.h"

namespace {
using Handle = void *;

struct Mpi {
    int (*initialized)(int *);
    int (*comm_rank)(Handle, int *);
    int (*comm_size)(Handle, int *);
    int (*comm_dup)(Handle, Handle *);
    int (*comm_free)(Handle *);
    int (*comm_set_errhandler)(Handle, Handle);
    int (*allgather)(const void *, int, Handle, void *, int, Handle, Handle);
    int (*ialltoallv)(const void *, const int *, const int *, Handle, void *, const int *, const int *, Handle, Handle,
                      Handle *);
    int (*iallgatherv)(const void *, int, Handle, void *, const int *, const int *, Handle, Handle, Handle *);
    int (*ibcast)(void *, int, Handle, int, Handle, Handle *);
    int (*test)(Handle *, int *, void *);
    int (*error_string)(int, char *, int *);
    Handle world, float_type, byte_type, errors_return;
};

// Open MPI's MPI_IN_PLACE.
void *const kInPlace = reinterpret_cast<void *>(1);
// The emulator's unique id: MPI needs none (its world is the job's), so it only tells a blob from another library.
const char kUniqueIdTag[] = "microdit emulator collectives over MPI";
// How often a waiting collective looks for dead ranks: a few /proc reads, against the seconds a launcher takes.
constexpr std::chrono::milliseconds kLivenessCheck{100};

// Where a rank runs: its process id, and the host and pid namespace in which that id means that process.
struct Place {
    char host[96];
    char pid_namespace[32];
    int pid;
};

Place this_place() {
    Place place{};
    gethostname(place.host, sizeof place.host - 1);
    ssize_t length = readlink("/proc/self/ns/pid", place.pid_namespace, sizeof place.pid_namespace - 1);
    if (length < 0) place.pid_namespace[0] = 0;
    place.pid = static_cast<int>(getpid());
    return place;
}

bool same_process_space(const Place &a, const Place &b) {
    return a.pid_namespace[0] && std::strcmp(a.host, b.host) == 0 && std::strcmp(a.pid_namespace, b.pid_namespace) == 0;
}

// Whether process `pid` of this pid namespace has ended: gone, or a zombie its launcher has not reaped yet.
bool ended(int pid) {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *file = std::fopen(path, "r");
    if (!file) return errno == ENOENT;
    char line[512];
    size_t length = std::fread(line, 1, sizeof line - 1, file);
    std::fclose(file);
    line[length] = 0;
    // The state letter follows the command name's closing parenthesis (the name itself may hold one).
    const char *name_end = std::strrchr(line, ')');
    return name_end && name_end[1] == ' ' && (name_end[2] == 'Z' || name_end[2] == 'X');
}

std::mutex load_mutex;
Mpi loaded;
bool load_tried = false;
std::string load_error;

template <typename Function>
bool bind(void *library, const char *name, Function &function, std::string &missing) {
    function = reinterpret_cast<Function>(dlsym(library, name));
    if (!function && missing.empty()) missing = name;
    return function != nullptr;
}

// Opens MPI once per process (a failure is kept and reported by every later call).
const Mpi *mpi() {
    std::lock_guard<std::mutex> lock(load_mutex);
    if (load_tried) return load_error.empty() ? &loaded : nullptr;
    load_tried = true;
    const char *named = std::getenv("MICRODIT_MPI_LIBRARY");
    const char *name = named && *named ? named : "libmpi.so.40";
    void *library = dlopen(name, RTLD_NOW | RTLD_GLOBAL);
    if (!library) {
        load_error = std::string("the emulator's collectives need Open MPI's ") + name + ", which could not be "
                     "loaded (" + dlerror() + "): install Debian's openmpi-bin and libopenmpi-dev, or name the "
                     "library with MICRODIT_MPI_LIBRARY";
        return nullptr;
    }
    std::string missing;
    Mpi m{};
    bind(library, "MPI_Initialized", m.initialized, missing);
    bind(library, "MPI_Comm_rank", m.comm_rank, missing);
    bind(library, "MPI_Comm_size", m.comm_size, missing);
    bind(library, "MPI_Comm_dup", m.comm_dup, missing);
    bind(library, "MPI_Comm_free", m.comm_free, missing);
    bind(library, "MPI_Comm_set_errhandler", m.comm_set_errhandler, missing);
    bind(library, "MPI_Allgather", m.allgather, missing);
    bind(library, "MPI_Ialltoallv", m.ialltoallv, missing);
    bind(library, "MPI_Iallgatherv", m.iallgatherv, missing);
    bind(library, "MPI_Ibcast", m.ibcast, missing);
    bind(library, "MPI_Test", m.test, missing);
    bind(library, "MPI_Error_string", m.error_string, missing);
    for (auto [name_of, handle] : {std::pair<const char *, Handle *>{"ompi_mpi_comm_world", &m.world},
                                   {"ompi_mpi_float", &m.float_type},
                                   {"ompi_mpi_byte", &m.byte_type},
                                   {"ompi_mpi_errors_return", &m.errors_return}}) {
        *handle = dlsym(library, name_of);
        if (!*handle && missing.empty()) missing = name_of;
    }
    if (!missing.empty()) {
        load_error = std::string(name) + " has no symbol " + missing + ": the emulator's collectives need Open MPI 4 "
                     "or later";
        return nullptr;
    }
    loaded = m;
    return &loaded;
}

int no_mpi(const char *call) {
    return mdt::fail(MDT_ERROR_COMMUNICATION, "%s: %s", call, load_error.c_str());
}

int check_mpi(const Mpi *m, int status, const char *call) {
    if (status == 0) return MDT_SUCCESS;
    char text[512] = "";
    int length = 0;
    if (m->error_string(status, text, &length) != 0) std::strcpy(text, "unknown MPI error");
    return mdt::fail(MDT_ERROR_COMMUNICATION, "%s failed with MPI error %d: %s", call, status, text);
}

// starts: size + 1 non-decreasing offsets from 0, each an MPI int count.
int check_starts(const int64_t *starts, int size, const char *call) {
    if (!starts) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "%s: starts is NULL", call);
    if (starts[0] != 0) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "%s: starts[0] is %lld, not 0", call,
                                         static_cast<long long>(starts[0]));
    for (int r = 0; r < size; r++) {
        if (starts[r + 1] < starts[r]) {
            return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "%s: starts decrease at rank %d (%lld then %lld)", call, r,
                             static_cast<long long>(starts[r]), static_cast<long long>(starts[r + 1]));
        }
    }
    if (starts[size] > INT_MAX) {
        return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "%s: %lld elements is over MPI's int count; split the buffer",
                         call, static_cast<long long>(starts[size]));
    }
    return MDT_SUCCESS;
}
}  // namespace

struct mdt_comm_s {
    const Mpi *mpi;
    Handle comm;  // a duplicate of the world, so these collectives never match the caller's own MPI calls
    int rank, size;
    cudaStream_t stream = nullptr;                     // the collectives' own stream
    cudaEvent_t before = nullptr, after = nullptr;     // the caller's stream → ours, ours → the caller's
    std::vector<float> parts;  // every rank's copy of this rank's shard, rank after rank
    std::vector<float> sum;    // this rank's summed shard of an all-reduce
    std::vector<int> counts, displacements, receive_counts, receive_displacements;
    std::vector<Place> places;  // every rank's, exchanged at init
    // The first collective that failed (it ran as stream work, where only its status survives): every later call
    // reports it as the communication error it was, not as the stream's sticky launch failure.
    int failure = MDT_SUCCESS;
    std::string failure_message;

    // Every rank's data[starts[rank] ...] into parts, then their rank-order sum into out (onto it with accumulate).
    int reduce_scatter(const float *data, const int64_t *starts, float *out, bool accumulate, const char *call) {
        int64_t mine = starts[rank + 1] - starts[rank];
        parts.resize(static_cast<size_t>(mine) * size);
        for (int q = 0; q < size; q++) {
            counts[q] = static_cast<int>(starts[q + 1] - starts[q]);
            displacements[q] = static_cast<int>(starts[q]);
            receive_counts[q] = static_cast<int>(mine);
            receive_displacements[q] = static_cast<int>(q * mine);
        }
        if (int s = complete(call, [&](Handle *request) {
                return mpi->ialltoallv(data, counts.data(), displacements.data(), mpi->float_type, parts.data(),
                                       receive_counts.data(), receive_displacements.data(), mpi->float_type, comm,
                                       request);
            })) {
            return s;
        }
        for (int64_t i = 0; i < mine; i++) {
            float total = accumulate ? out[i] : parts[i];
            for (int q = accumulate ? 0 : 1; q < size; q++) total += parts[q * mine + i];
            out[i] = total;
        }
        return MDT_SUCCESS;
    }

    // Each rank's shard into its place in data. Elements of T move as `units` items each of MPI `type` (a gather
    // does no arithmetic: float32 as floats, bf16 as byte pairs), counts and offsets in those items.
    template <class T>
    int gather(const T *shard, const int64_t *starts, T *data, Handle type, int units, const char *call) {
        for (int q = 0; q < size; q++) {
            counts[q] = static_cast<int>(units * (starts[q + 1] - starts[q]));
            displacements[q] = static_cast<int>(units * starts[q]);
        }
        // MPI forbids a send buffer inside the receive buffer unless it says so with MPI_IN_PLACE.
        const void *send = shard == data + starts[rank] ? kInPlace : shard;
        return complete(call, [&](Handle *request) {
            return mpi->iallgatherv(send, counts[rank], type, data, counts.data(), displacements.data(), type, comm,
                                    request);
        });
    }

    // Starts a nonblocking MPI collective (`start` returns MPI's status and sets the request) and waits for it.
    template <class Start>
    int complete(const char *call, Start start) {
        Handle request = nullptr;
        if (int s = check_mpi(mpi, start(&request), call)) return s;
        return wait(request, call);
    }

    // Polls `request` to its end, checking the ranks on this host every kLivenessCheck (the file's opening comment).
    // After a failure the request stays active: the communicator is unusable (every later call reports the failure).
    int wait(Handle request, const char *call) {
        auto next_check = std::chrono::steady_clock::now() + kLivenessCheck;
        for (;;) {
            int finished = 0;
            if (int s = check_mpi(mpi, mpi->test(&request, &finished, nullptr), call)) return s;
            if (finished) return MDT_SUCCESS;
            if (std::chrono::steady_clock::now() < next_check) continue;
            for (int q = 0; q < size; q++) {
                if (q != rank && same_process_space(places[q], places[rank]) && ended(places[q].pid)) {
                    return mdt::fail(MDT_ERROR_COMMUNICATION,
                                     "%s: rank %d of %d (process %d on this host) died before the collective ended",
                                     call, q, size, places[q].pid);
                }
            }
            next_check = std::chrono::steady_clock::now() + kLivenessCheck;
        }
    }

    int failed(const char *call) {
        cudaGetLastError();
        return mdt::fail(failure, "%s: %s", call, failure_message.c_str());
    }

    int check_cuda(cudaError_t error, const char *call) {
        if (failure != MDT_SUCCESS) return failed(call);
        if (error == cudaSuccess) return MDT_SUCCESS;
        cudaGetLastError();
        return mdt::fail(MDT_ERROR_RUNTIME, "%s: %s (%s)", call, cudaGetErrorString(error), cudaGetErrorName(error));
    }

    // Queues `collective` on our stream after the caller's work so far; then records `done` after it (deferred) or,
    // without `done`, makes the caller's later work wait for it.
    int issue(mdt_stream_t caller, mdt_event_t done, const char *call, std::function<int()> collective) {
        if (failure != MDT_SUCCESS) return failed(call);
        cudaStream_t theirs = reinterpret_cast<cudaStream_t>(caller);
        if (int s = check_cuda(cudaEventRecord(before, theirs), call)) return s;
        if (int s = check_cuda(cudaStreamWaitEvent(stream, before, 0), call)) return s;
        cudaError_t queued = mdt_emu::enqueue_host_work(stream, [this, call, collective = std::move(collective)]() {
            int status = collective();
            if (status != MDT_SUCCESS && failure == MDT_SUCCESS) {
                failure = status;
                failure_message = mdt_last_error_message();
            }
            return status;
        });
        if (int s = check_cuda(queued, call)) return s;
        if (done) return check_cuda(cudaEventRecord(reinterpret_cast<cudaEvent_t>(done), stream), call);
        if (int s = check_cuda(cudaEventRecord(after, stream), call)) return s;
        return check_cuda(cudaStreamWaitEvent(theirs, after, 0), call);
    }
};

namespace {
int check_comm(mdt_comm_t comm, const char *call) {
    return comm ? MDT_SUCCESS : mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "%s: comm is NULL", call);
}

// The arguments of a collective over shards: the communicator, starts, and the buffers that hold elements.
int check_sharded(mdt_comm_t comm, const int64_t *starts, const void *data, const void *shard, const char *call) {
    if (int s = check_comm(comm, call)) return s;
    if (int s = check_starts(starts, comm->size, call)) return s;
    if ((starts[comm->size] > 0 && !data) || (starts[comm->rank + 1] > starts[comm->rank] && !shard)) {
        return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "%s: NULL buffer", call);
    }
    return MDT_SUCCESS;
}

// The shards of an all-reduce: n elements split as evenly as they go (io.microdit.distributed.Communicator's).
std::vector<int64_t> even_starts(int64_t n, int size) {
    std::vector<int64_t> starts(size + 1);
    for (int r = 0; r <= size; r++) starts[r] = r * (n / size) + (r < n % size ? r : n % size);
    return starts;
}

int all_reduce_sum(mdt_comm_t comm, mdt_stream_t stream, float *data, int64_t n, mdt_event_t done,
                   const char *call) {
    if (int s = check_comm(comm, call)) return s;
    if (n < 0 || n > INT_MAX || (n > 0 && !data)) {
        return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "%s: n = %lld elements at %p", call,
                         static_cast<long long>(n), static_cast<void *>(data));
    }
    return comm->issue(stream, done, call, [comm, data, starts = even_starts(n, comm->size), call]() {
        comm->sum.resize(static_cast<size_t>(starts[comm->rank + 1] - starts[comm->rank]));
        if (int s = comm->reduce_scatter(data, starts.data(), comm->sum.data(), false, call)) return s;
        return comm->gather(comm->sum.data(), starts.data(), data, comm->mpi->float_type, 1, call);
    });
}

int reduce_scatter_sum(mdt_comm_t comm, mdt_stream_t stream, const float *data, const int64_t *starts,
                       float *shard, int accumulate, mdt_event_t done, const char *call) {
    if (int s = check_sharded(comm, starts, data, shard, call)) return s;
    // The caller's starts may be gone by the time a deferred collective runs.
    std::vector<int64_t> kept(starts, starts + comm->size + 1);
    return comm->issue(stream, done, call, [comm, data, kept, shard, accumulate, call]() {
        return comm->reduce_scatter(data, kept.data(), shard, accumulate != 0, call);
    });
}

int check_done(mdt_event_t done, const char *call) {
    return done ? MDT_SUCCESS : mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "%s: done is NULL", call);
}
}  // namespace

extern "C" {

int mdt_comm_unique_id(void *unique_id) {
    if (!unique_id) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_comm_unique_id: unique_id is NULL");
    if (!mpi()) return no_mpi("mdt_comm_unique_id");
    std::memset(unique_id, 0, MDT_COMM_UNIQUE_ID_BYTES);
    std::memcpy(unique_id, kUniqueIdTag, sizeof kUniqueIdTag);
    return MDT_SUCCESS;
}

int mdt_comm_init(mdt_comm_t *comm, const void *unique_id, int rank, int size) {
    if (!comm || !unique_id) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_comm_init: NULL argument");
    *comm = nullptr;
    if (std::memcmp(unique_id, kUniqueIdTag, sizeof kUniqueIdTag) != 0) {
        return mdt::fail(MDT_ERROR_INVALID_ARGUMENT,
                         "mdt_comm_init: the unique id was not made by this library's mdt_comm_unique_id");
    }
    const Mpi *m = mpi();
    if (!m) return no_mpi("mdt_comm_init");
    int initialized = 0;
    if (int s = check_mpi(m, m->initialized(&initialized), "MPI_Initialized")) return s;
    if (!initialized) {
        return mdt::fail(MDT_ERROR_COMMUNICATION, "mdt_comm_init: MPI is not initialised in this process; the "
                                                  "emulator's collectives run over the caller's MPI world (mpirun)");
    }
    int world_rank = -1, world_size = 0;
    if (int s = check_mpi(m, m->comm_rank(m->world, &world_rank), "MPI_Comm_rank")) return s;
    if (int s = check_mpi(m, m->comm_size(m->world, &world_size), "MPI_Comm_size")) return s;
    if (rank != world_rank || size != world_size) {
        return mdt::fail(MDT_ERROR_INVALID_ARGUMENT,
                         "mdt_comm_init: rank %d of %d, but this process is rank %d of an MPI world of %d", rank,
                         size, world_rank, world_size);
    }
    auto created = new mdt_comm_s{};
    created->mpi = m;
    created->rank = rank;
    created->size = size;
    created->counts.resize(size);
    created->displacements.resize(size);
    created->receive_counts.resize(size);
    created->receive_displacements.resize(size);
    int status = created->check_cuda(cudaStreamCreateWithFlags(&created->stream, cudaStreamNonBlocking),
                                     "cudaStreamCreateWithFlags");
    if (!status) {
        status = created->check_cuda(cudaEventCreateWithFlags(&created->before, cudaEventDisableTiming),
                                     "cudaEventCreateWithFlags");
    }
    if (!status) {
        status = created->check_cuda(cudaEventCreateWithFlags(&created->after, cudaEventDisableTiming),
                                     "cudaEventCreateWithFlags");
    }
    if (!status) status = check_mpi(m, m->comm_dup(m->world, &created->comm), "MPI_Comm_dup");
    if (!status) {
        status = check_mpi(m, m->comm_set_errhandler(created->comm, m->errors_return), "MPI_Comm_set_errhandler");
        if (!status) {
            Place mine = this_place();
            created->places.resize(size);
            status = check_mpi(m, m->allgather(&mine, sizeof mine, m->byte_type, created->places.data(), sizeof mine,
                                               m->byte_type, created->comm),
                               "MPI_Allgather");
        }
        if (status) m->comm_free(&created->comm);
    }
    if (status) {
        if (created->after) cudaEventDestroy(created->after);
        if (created->before) cudaEventDestroy(created->before);
        if (created->stream) cudaStreamDestroy(created->stream);
        delete created;
        return status;
    }
    *comm = created;
    return MDT_SUCCESS;
}

int mdt_comm_destroy(mdt_comm_t comm) {
    if (int s = check_comm(comm, "mdt_comm_destroy")) return s;
    // Pending collectives run first: the other ranks wait for this one's part in them.
    int status = comm->check_cuda(cudaStreamSynchronize(comm->stream), "mdt_comm_destroy");
    cudaEventDestroy(comm->after);
    cudaEventDestroy(comm->before);
    cudaStreamDestroy(comm->stream);
    int freed = check_mpi(comm->mpi, comm->mpi->comm_free(&comm->comm), "MPI_Comm_free");
    delete comm;
    return status != MDT_SUCCESS ? status : freed;
}

int mdt_comm_all_reduce_sum(mdt_comm_t comm, mdt_stream_t stream, float *data, int64_t n) {
    return all_reduce_sum(comm, stream, data, n, nullptr, "mdt_comm_all_reduce_sum");
}

int mdt_comm_reduce_scatter_sum(mdt_comm_t comm, mdt_stream_t stream, const float *data, const int64_t *starts,
                                float *shard, int accumulate) {
    return reduce_scatter_sum(comm, stream, data, starts, shard, accumulate, nullptr, "mdt_comm_reduce_scatter_sum");
}

int mdt_comm_all_gather(mdt_comm_t comm, mdt_stream_t stream, const float *shard, const int64_t *starts,
                        float *data) {
    const char *call = "mdt_comm_all_gather";
    if (int s = check_sharded(comm, starts, data, shard, call)) return s;
    std::vector<int64_t> kept(starts, starts + comm->size + 1);
    return comm->issue(stream, nullptr, call, [comm, shard, kept, data, call]() {
        return comm->gather(shard, kept.data(), data, comm->mpi->float_type, 1, call);
    });
}

int mdt_comm_all_gather_bf16(mdt_comm_t comm, mdt_stream_t stream, const uint16_t *shard, const int64_t *starts,
                             uint16_t *data) {
    const char *call = "mdt_comm_all_gather_bf16";
    if (int s = check_sharded(comm, starts, data, shard, call)) return s;
    if (2 * starts[comm->size] > INT_MAX) {
        return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "%s: %lld elements exceed MPI's int count of bytes", call,
                         static_cast<long long>(starts[comm->size]));
    }
    std::vector<int64_t> kept(starts, starts + comm->size + 1);
    return comm->issue(stream, nullptr, call, [comm, shard, kept, data, call]() {
        return comm->gather(shard, kept.data(), data, comm->mpi->byte_type, 2, call);
    });
}

int mdt_comm_broadcast(mdt_comm_t comm, mdt_stream_t stream, void *data, int64_t bytes, int root) {
    const char *call = "mdt_comm_broadcast";
    if (int s = check_comm(comm, call)) return s;
    if (root < 0 || root >= comm->size || bytes < 0 || bytes > INT_MAX || (bytes > 0 && !data)) {
        return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "%s: root %d of %d ranks, %lld bytes at %p", call, root,
                         comm->size, static_cast<long long>(bytes), data);
    }
    return comm->issue(stream, nullptr, call, [comm, data, bytes, root, call]() {
        return comm->complete(call, [comm, data, bytes, root](Handle *request) {
            return comm->mpi->ibcast(data, static_cast<int>(bytes), comm->mpi->byte_type, root, comm->comm, request);
        });
    });
}

int mdt_comm_all_reduce_sum_deferred(mdt_comm_t comm, mdt_stream_t stream, float *data, int64_t n,
                                     mdt_event_t done) {
    const char *call = "mdt_comm_all_reduce_sum_deferred";
    if (int s = check_done(done, call)) return s;
    return all_reduce_sum(comm, stream, data, n, done, call);
}

int mdt_comm_reduce_scatter_sum_deferred(mdt_comm_t comm, mdt_stream_t stream, const float *data,
                                         const int64_t *starts, float *shard, int accumulate, mdt_event_t done) {
    const char *call = "mdt_comm_reduce_scatter_sum_deferred";
    if (int s = check_done(done, call)) return s;
    return reduce_scatter_sum(comm, stream, data, starts, shard, accumulate, done, call);
}

int mdt_comm_join(mdt_comm_t comm, mdt_stream_t stream, mdt_event_t done) {
    const char *call = "mdt_comm_join";
    if (int s = check_comm(comm, call)) return s;
    if (int s = check_done(done, call)) return s;
    // The emulator runs the awaited collective here, on this thread: the ranks meet in it over MPI.
    return comm->check_cuda(cudaStreamWaitEvent(reinterpret_cast<cudaStream_t>(stream),
                                                reinterpret_cast<cudaEvent_t>(done), 0),
                            call);
}

}  // extern "C"
