// The emulator's collectives (microdit.h, mdt_comm_*): the ABI the CUDA library implements with NCCL, here with MPI
// between emulator processes, so the CUDA backend's data-parallel path runs in CI as it would on GPUs. Emulated
// device memory is host memory, so MPI moves it directly. Each collective first completes the stream's pending work
// (a deferred stream, mdt_emu_stream_mode), then runs to completion: ordered after the work before it and before
// the work after it, as the CUDA library orders its collectives with events.
//
// Sums are rank-order: MPI_Alltoallv gives each rank every rank's copy of its shard, which it adds in rank order
// (as io.microdit.distributed.MpiCommunicator does on the CPU), so N emulated ranks equal one process bit for bit.
//
// libmpi.so.40 is opened at run time (the build needs no MPI headers): the handful of entry points are declared
// here with Open MPI's ABI, where handles (MPI_Comm, MPI_Datatype, ...) are the addresses of its global objects
// (ompi_mpi_comm_world, ompi_mpi_float, ...), looked up by name as MpiLibrary.java does.
#include <dlfcn.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

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
    int (*alltoallv)(const void *, const int *, const int *, Handle, void *, const int *, const int *, Handle, Handle);
    int (*allgatherv)(const void *, int, Handle, void *, const int *, const int *, Handle, Handle);
    int (*bcast)(void *, int, Handle, int, Handle);
    int (*error_string)(int, char *, int *);
    Handle world, float_type, byte_type, errors_return;
};

// Open MPI's MPI_IN_PLACE.
void *const kInPlace = reinterpret_cast<void *>(1);
// The emulator's unique id: MPI needs none (its world is the job's), so it only tells a blob from another library.
const char kUniqueIdTag[] = "microdit emulator collectives over MPI";

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
    bind(library, "MPI_Alltoallv", m.alltoallv, missing);
    bind(library, "MPI_Allgatherv", m.allgatherv, missing);
    bind(library, "MPI_Bcast", m.bcast, missing);
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
    std::vector<float> parts;  // every rank's copy of this rank's shard, rank after rank
    std::vector<float> sum;    // this rank's summed shard of an all-reduce
    std::vector<int> counts, displacements, receive_counts, receive_displacements;

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
        if (int s = check_mpi(mpi, mpi->alltoallv(data, counts.data(), displacements.data(), mpi->float_type,
                                                  parts.data(), receive_counts.data(),
                                                  receive_displacements.data(), mpi->float_type, comm),
                              call)) {
            return s;
        }
        for (int64_t i = 0; i < mine; i++) {
            float total = accumulate ? out[i] : parts[i];
            for (int q = accumulate ? 0 : 1; q < size; q++) total += parts[q * mine + i];
            out[i] = total;
        }
        return MDT_SUCCESS;
    }

    int gather(const float *shard, const int64_t *starts, float *data, const char *call) {
        for (int q = 0; q < size; q++) {
            counts[q] = static_cast<int>(starts[q + 1] - starts[q]);
            displacements[q] = static_cast<int>(starts[q]);
        }
        // MPI forbids a send buffer inside the receive buffer unless it says so with MPI_IN_PLACE.
        const void *send = shard == data + starts[rank] ? kInPlace : shard;
        return check_mpi(mpi, mpi->allgatherv(send, counts[rank], mpi->float_type, data, counts.data(),
                                              displacements.data(), mpi->float_type, comm),
                         call);
    }
};

namespace {
int check_comm(mdt_comm_t comm, const char *call) {
    return comm ? MDT_SUCCESS : mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "%s: comm is NULL", call);
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
    Handle duplicate = nullptr;
    if (int s = check_mpi(m, m->comm_dup(m->world, &duplicate), "MPI_Comm_dup")) return s;
    if (int s = check_mpi(m, m->comm_set_errhandler(duplicate, m->errors_return), "MPI_Comm_set_errhandler")) {
        m->comm_free(&duplicate);
        return s;
    }
    auto created = new mdt_comm_s{m, duplicate, rank, size, {}, {}, {}, {}, {}, {}};
    created->counts.resize(size);
    created->displacements.resize(size);
    created->receive_counts.resize(size);
    created->receive_displacements.resize(size);
    *comm = created;
    return MDT_SUCCESS;
}

int mdt_comm_destroy(mdt_comm_t comm) {
    if (int s = check_comm(comm, "mdt_comm_destroy")) return s;
    int status = check_mpi(comm->mpi, comm->mpi->comm_free(&comm->comm), "MPI_Comm_free");
    delete comm;
    return status;
}

int mdt_comm_all_reduce_sum(mdt_comm_t comm, mdt_stream_t stream, float *data, int64_t n) {
    const char *call = "mdt_comm_all_reduce_sum";
    if (int s = check_comm(comm, call)) return s;
    if (n < 0 || n > INT_MAX || (n > 0 && !data)) {
        return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "%s: n = %lld elements at %p", call,
                         static_cast<long long>(n), static_cast<void *>(data));
    }
    if (int s = mdt_stream_synchronize(stream)) return s;
    std::vector<int64_t> starts(comm->size + 1);
    for (int r = 0; r <= comm->size; r++) {
        starts[r] = r * (n / comm->size) + (r < n % comm->size ? r : n % comm->size);
    }
    comm->sum.resize(static_cast<size_t>(starts[comm->rank + 1] - starts[comm->rank]));
    if (int s = comm->reduce_scatter(data, starts.data(), comm->sum.data(), false, call)) return s;
    return comm->gather(comm->sum.data(), starts.data(), data, call);
}

int mdt_comm_reduce_scatter_sum(mdt_comm_t comm, mdt_stream_t stream, const float *data, const int64_t *starts,
                                float *shard, int accumulate) {
    const char *call = "mdt_comm_reduce_scatter_sum";
    if (int s = check_comm(comm, call)) return s;
    if (int s = check_starts(starts, comm->size, call)) return s;
    if ((starts[comm->size] > 0 && !data) || (starts[comm->rank + 1] > starts[comm->rank] && !shard)) {
        return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "%s: NULL buffer", call);
    }
    if (int s = mdt_stream_synchronize(stream)) return s;
    return comm->reduce_scatter(data, starts, shard, accumulate != 0, call);
}

int mdt_comm_all_gather(mdt_comm_t comm, mdt_stream_t stream, const float *shard, const int64_t *starts,
                        float *data) {
    const char *call = "mdt_comm_all_gather";
    if (int s = check_comm(comm, call)) return s;
    if (int s = check_starts(starts, comm->size, call)) return s;
    if ((starts[comm->size] > 0 && !data) || (starts[comm->rank + 1] > starts[comm->rank] && !shard)) {
        return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "%s: NULL buffer", call);
    }
    if (int s = mdt_stream_synchronize(stream)) return s;
    return comm->gather(shard, starts, data, call);
}

int mdt_comm_broadcast(mdt_comm_t comm, mdt_stream_t stream, void *data, int64_t bytes, int root) {
    const char *call = "mdt_comm_broadcast";
    if (int s = check_comm(comm, call)) return s;
    if (root < 0 || root >= comm->size || bytes < 0 || bytes > INT_MAX || (bytes > 0 && !data)) {
        return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "%s: root %d of %d ranks, %lld bytes at %p", call, root,
                         comm->size, static_cast<long long>(bytes), data);
    }
    if (int s = mdt_stream_synchronize(stream)) return s;
    return check_mpi(comm->mpi, comm->mpi->bcast(data, static_cast<int>(bytes), comm->mpi->byte_type, root,
                                                 comm->comm),
                     call);
}

}  // extern "C"
