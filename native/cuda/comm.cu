// The collectives between GPU ranks (microdit.h, mdt_comm_*), over NCCL opened at run time: libnccl.so.2 (from
// LD_LIBRARY_PATH; PyTorch's wheels ship it as nvidia-nccl-cu13) or the file MICRODIT_NCCL_LIBRARY names, so the
// build needs no NCCL. The few entry points are declared below with nccl.h's (2.x) types and values.
//
// Ordering: each collective records an event on the caller's stream, makes the communicator's own stream wait for
// it and runs there; then the caller's stream waits for an event recorded after it, at once, or for the _deferred
// entries only at mdt_comm_join on the caller's event `done`, so the collective runs alongside the caller's later
// work (the backward). The host never waits.
//
// Sums in rank order, for the same bits as one process (and as the emulator, native/emu/comm.cpp): a reduce-scatter
// is a grouped send/receive of shards (each rank gets every rank's copy of its shard, rank after rank, into the
// communicator's scratch) followed by rank_order_sum_kernel, which adds them in rank order. NCCL's own ncclSum
// would add in the order of its ring or tree. Bytes moved per rank are those of NCCL's reduce-scatter,
// (N − 1)/N of the buffer; an all-reduce is a reduce-scatter then an all-gather (grouped broadcasts, which allow
// shards of different sizes), 2(N − 1)/N, as a ring all-reduce.
#include <cuda_runtime.h>
#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "common.cuh"
#include "microdit.h"
#include "status.h"

namespace {
// nccl.h (2.x): ncclResult_t is an int enum (ncclSuccess = 0), ncclDataType_t too (ncclFloat32 = 7, ncclUint8 = 1),
// ncclUniqueId 128 bytes (NCCL_UNIQUE_ID_BYTES) passed by value.
typedef struct ncclComm *ncclComm_t;
struct ncclUniqueId {
    char internal[MDT_COMM_UNIQUE_ID_BYTES];
};
constexpr int kNcclUint8 = 1;
constexpr int kNcclFloat32 = 7;
constexpr int kNcclBfloat16 = 9;

struct Nccl {
    int (*get_unique_id)(ncclUniqueId *);
    int (*comm_init_rank)(ncclComm_t *, int, ncclUniqueId, int);
    int (*comm_destroy)(ncclComm_t);
    const char *(*get_error_string)(int);
    int (*group_start)();
    int (*group_end)();
    int (*send)(const void *, size_t, int, int, ncclComm_t, cudaStream_t);
    int (*recv)(void *, size_t, int, int, ncclComm_t, cudaStream_t);
    int (*broadcast)(const void *, void *, size_t, int, int, ncclComm_t, cudaStream_t);
};

std::mutex load_mutex;
Nccl loaded;
bool load_tried = false;
std::string load_error;

template <typename Function>
void bind(void *library, const char *name, Function &function, std::string &missing) {
    function = reinterpret_cast<Function>(dlsym(library, name));
    if (!function && missing.empty()) missing = name;
}

// Opens NCCL once per process (a failure is kept and reported by every later call).
const Nccl *nccl() {
    std::lock_guard<std::mutex> lock(load_mutex);
    if (load_tried) return load_error.empty() ? &loaded : nullptr;
    load_tried = true;
    const char *named = std::getenv("MICRODIT_NCCL_LIBRARY");
    const char *name = named && *named ? named : "libnccl.so.2";
    void *library = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        load_error = std::string("multi-GPU training needs NCCL's ") + name + ", which could not be loaded (" +
                     dlerror() + "): install NCCL (e.g. pip install nvidia-nccl-cu13) and put the folder holding "
                     "libnccl.so.2 on LD_LIBRARY_PATH, or name the file with MICRODIT_NCCL_LIBRARY";
        return nullptr;
    }
    std::string missing;
    Nccl n{};
    bind(library, "ncclGetUniqueId", n.get_unique_id, missing);
    bind(library, "ncclCommInitRank", n.comm_init_rank, missing);
    bind(library, "ncclCommDestroy", n.comm_destroy, missing);
    bind(library, "ncclGetErrorString", n.get_error_string, missing);
    bind(library, "ncclGroupStart", n.group_start, missing);
    bind(library, "ncclGroupEnd", n.group_end, missing);
    bind(library, "ncclSend", n.send, missing);
    bind(library, "ncclRecv", n.recv, missing);
    bind(library, "ncclBroadcast", n.broadcast, missing);
    if (!missing.empty()) {
        load_error = std::string(name) + " has no symbol " + missing + ": microdit needs NCCL 2.7 or later";
        return nullptr;
    }
    loaded = n;
    return &loaded;
}

int no_nccl(const char *call) { return mdt::fail(MDT_ERROR_COMMUNICATION, "%s: %s", call, load_error.c_str()); }

int check_nccl(const Nccl *n, int result, const char *call) {
    if (result == 0) return MDT_SUCCESS;
    return mdt::fail(MDT_ERROR_COMMUNICATION, "%s failed with NCCL error %d: %s", call, result,
                     n->get_error_string(result));
}

int check_cuda(cudaError_t error, const char *call) {
    if (error == cudaSuccess) return MDT_SUCCESS;
    cudaGetLastError();
    return mdt::fail(error == cudaErrorMemoryAllocation ? MDT_ERROR_OUT_OF_MEMORY : MDT_ERROR_RUNTIME, "%s: %s (%s)",
                     call, cudaGetErrorString(error), cudaGetErrorName(error));
}

int check_starts(const int64_t *starts, int size, const char *call) {
    if (!starts) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "%s: starts is NULL", call);
    if (starts[0] != 0) {
        return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "%s: starts[0] is %lld, not 0", call,
                         static_cast<long long>(starts[0]));
    }
    for (int r = 0; r < size; r++) {
        if (starts[r + 1] < starts[r]) {
            return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "%s: starts decrease at rank %d (%lld then %lld)", call, r,
                             static_cast<long long>(starts[r]), static_cast<long long>(starts[r + 1]));
        }
    }
    return MDT_SUCCESS;
}

/** out[i] = ((parts[0][i] + parts[1][i]) + …), or with accumulate ((out[i] + parts[0][i]) + …); grid-stride. */
__global__ void rank_order_sum_kernel(const float *parts, int ranks, int64_t n, float *out, int accumulate) {
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        float total = accumulate ? out[i] : parts[i];
        for (int r = accumulate ? 0 : 1; r < ranks; r++) total += parts[r * n + i];
        out[i] = total;
    }
}
constexpr int kSumThreads = 256;
}  // namespace

struct mdt_comm_s {
    const Nccl *nccl;
    ncclComm_t comm;
    int rank, size;
    cudaStream_t stream;       // the collectives' own stream
    cudaEvent_t before, after; // the caller's stream → ours, ours → the caller's
    float *scratch = nullptr;  // every rank's copy of this rank's shard
    size_t scratch_floats = 0;

    // Queues `collective` (its work on our stream) after the caller's work so far; then records `done` after it
    // (deferred: the caller joins it later) or, without `done`, makes the caller's later work wait for it now.
    template <class Collective>
    int issue(mdt_stream_t caller, mdt_event_t done, const char *call, Collective collective) {
        cudaStream_t theirs = reinterpret_cast<cudaStream_t>(caller);
        if (int s = check_cuda(cudaEventRecord(before, theirs), call)) return s;
        if (int s = check_cuda(cudaStreamWaitEvent(stream, before, 0), call)) return s;
        if (int s = collective()) return s;
        if (done) return check_cuda(cudaEventRecord(reinterpret_cast<cudaEvent_t>(done), stream), call);
        if (int s = check_cuda(cudaEventRecord(after, stream), call)) return s;
        return check_cuda(cudaStreamWaitEvent(theirs, after, 0), call);
    }

    int reserve(size_t floats, const char *call) {
        if (floats <= scratch_floats) return MDT_SUCCESS;
        // Earlier collectives on our stream may still read the old scratch.
        if (int s = check_cuda(cudaStreamSynchronize(stream), call)) return s;
        cudaFree(scratch);
        scratch = nullptr;
        scratch_floats = 0;
        if (int s = check_cuda(cudaMalloc(&scratch, floats * sizeof(float)), call)) return s;
        scratch_floats = floats;
        return MDT_SUCCESS;
    }

    // Every rank's data[starts[rank] ...] into scratch, then their rank-order sum into out, all on our stream.
    int reduce_scatter(const float *data, const int64_t *starts, float *out, int accumulate, const char *call) {
        int64_t mine = starts[rank + 1] - starts[rank];
        if (int s = reserve(static_cast<size_t>(mine) * size, call)) return s;
        if (int s = check_nccl(nccl, nccl->group_start(), "ncclGroupStart")) return s;
        int status = MDT_SUCCESS;
        for (int q = 0; q < size && status == MDT_SUCCESS; q++) {
            int64_t theirs = starts[q + 1] - starts[q];
            if (q == rank) {
                if (mine > 0) {
                    status = check_cuda(cudaMemcpyAsync(scratch + q * mine, data + starts[q], mine * sizeof(float),
                                                        cudaMemcpyDeviceToDevice, stream),
                                        call);
                }
                continue;
            }
            if (theirs > 0) {
                status = check_nccl(nccl, nccl->send(data + starts[q], theirs, kNcclFloat32, q, comm, stream),
                                    "ncclSend");
            }
            if (status == MDT_SUCCESS && mine > 0) {
                status = check_nccl(nccl, nccl->recv(scratch + q * mine, mine, kNcclFloat32, q, comm, stream),
                                    "ncclRecv");
            }
        }
        int ended = check_nccl(nccl, nccl->group_end(), "ncclGroupEnd");
        if (status != MDT_SUCCESS || ended != MDT_SUCCESS) return status != MDT_SUCCESS ? status : ended;
        if (mine == 0) return MDT_SUCCESS;
        return MDT_LAUNCH(rank_order_sum_kernel, mdt::blocks_for(mine, kSumThreads), kSumThreads, 0, stream, scratch,
                          size, mine, out, accumulate);
    }

    // Each rank's shard broadcast into its place in data, grouped (shards may differ in size).
    // Elements of T moved as NCCL's `type` (no arithmetic: 4-byte elements as float32, bf16 as bfloat16).
    template <class T>
    int gather(const T *shard, const int64_t *starts, T *data, int type = kNcclFloat32) {
        if (int s = check_nccl(nccl, nccl->group_start(), "ncclGroupStart")) return s;
        int status = MDT_SUCCESS;
        for (int q = 0; q < size && status == MDT_SUCCESS; q++) {
            int64_t count = starts[q + 1] - starts[q];
            if (count > 0) {
                status = check_nccl(nccl, nccl->broadcast(shard, data + starts[q], count, type, q, comm, stream),
                                    "ncclBroadcast");
            }
        }
        int ended = check_nccl(nccl, nccl->group_end(), "ncclGroupEnd");
        return status != MDT_SUCCESS ? status : ended;
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

int check_done(mdt_event_t done, const char *call) {
    return done ? MDT_SUCCESS : mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "%s: done is NULL", call);
}

int all_reduce_sum(mdt_comm_t comm, mdt_stream_t stream, float *data, int64_t n, mdt_event_t done,
                   const char *call) {
    if (int s = check_comm(comm, call)) return s;
    if (n < 0 || (n > 0 && !data)) {
        return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "%s: n = %lld elements at %p", call, static_cast<long long>(n),
                         static_cast<void *>(data));
    }
    std::vector<int64_t> starts(comm->size + 1);
    for (int r = 0; r <= comm->size; r++) {
        starts[r] = r * (n / comm->size) + (r < n % comm->size ? r : n % comm->size);
    }
    // The sends read the other ranks' shards of data and the sum overwrites this rank's own, only after the group's
    // receives and sends are done (both on our stream), so the sum can go straight to its place.
    float *mine = data + starts[comm->rank];
    return comm->issue(stream, done, call, [&]() {
        if (int s = comm->reduce_scatter(data, starts.data(), mine, 0, call)) return s;
        return comm->gather(mine, starts.data(), data);
    });
}

int reduce_scatter_sum(mdt_comm_t comm, mdt_stream_t stream, const float *data, const int64_t *starts, float *shard,
                       int accumulate, mdt_event_t done, const char *call) {
    if (int s = check_sharded(comm, starts, data, shard, call)) return s;
    return comm->issue(stream, done, call,
                       [&]() { return comm->reduce_scatter(data, starts, shard, accumulate, call); });
}
}  // namespace

extern "C" {

int mdt_comm_unique_id(void *unique_id) {
    if (!unique_id) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_comm_unique_id: unique_id is NULL");
    const Nccl *n = nccl();
    if (!n) return no_nccl("mdt_comm_unique_id");
    return check_nccl(n, n->get_unique_id(static_cast<ncclUniqueId *>(unique_id)), "ncclGetUniqueId");
}

int mdt_comm_init(mdt_comm_t *comm, const void *unique_id, int rank, int size) {
    if (!comm || !unique_id) return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_comm_init: NULL argument");
    *comm = nullptr;
    if (size < 1 || rank < 0 || rank >= size) {
        return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "mdt_comm_init: rank %d of %d", rank, size);
    }
    const Nccl *n = nccl();
    if (!n) return no_nccl("mdt_comm_init");
    auto created = new mdt_comm_s{};
    created->nccl = n;
    created->rank = rank;
    created->size = size;
    ncclUniqueId id;
    std::memcpy(&id, unique_id, sizeof id);
    int status = check_cuda(cudaStreamCreateWithFlags(&created->stream, cudaStreamNonBlocking), "cudaStreamCreate");
    if (!status) status = check_cuda(cudaEventCreateWithFlags(&created->before, cudaEventDisableTiming), "cudaEventCreate");
    if (!status) status = check_cuda(cudaEventCreateWithFlags(&created->after, cudaEventDisableTiming), "cudaEventCreate");
    if (!status) status = check_nccl(n, n->comm_init_rank(&created->comm, size, id, rank), "ncclCommInitRank");
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
    int status = check_cuda(cudaStreamSynchronize(comm->stream), "mdt_comm_destroy");
    int destroyed = check_nccl(comm->nccl, comm->nccl->comm_destroy(comm->comm), "ncclCommDestroy");
    cudaFree(comm->scratch);
    cudaEventDestroy(comm->after);
    cudaEventDestroy(comm->before);
    cudaStreamDestroy(comm->stream);
    delete comm;
    return status != MDT_SUCCESS ? status : destroyed;
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
    return comm->issue(stream, nullptr, call, [&]() { return comm->gather(shard, starts, data); });
}

int mdt_comm_all_gather_bf16(mdt_comm_t comm, mdt_stream_t stream, const uint16_t *shard, const int64_t *starts,
                             uint16_t *data) {
    const char *call = "mdt_comm_all_gather_bf16";
    if (int s = check_sharded(comm, starts, data, shard, call)) return s;
    return comm->issue(stream, nullptr, call, [&]() { return comm->gather(shard, starts, data, kNcclBfloat16); });
}

int mdt_comm_broadcast(mdt_comm_t comm, mdt_stream_t stream, void *data, int64_t bytes, int root) {
    const char *call = "mdt_comm_broadcast";
    if (int s = check_comm(comm, call)) return s;
    if (root < 0 || root >= comm->size || bytes < 0 || (bytes > 0 && !data)) {
        return mdt::fail(MDT_ERROR_INVALID_ARGUMENT, "%s: root %d of %d ranks, %lld bytes at %p", call, root,
                         comm->size, static_cast<long long>(bytes), data);
    }
    if (bytes == 0) return MDT_SUCCESS;
    return comm->issue(stream, nullptr, call, [&]() {
        return check_nccl(comm->nccl,
                          comm->nccl->broadcast(data, data, bytes, kNcclUint8, root, comm->comm, comm->stream),
                          "ncclBroadcast");
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
    return check_cuda(cudaStreamWaitEvent(reinterpret_cast<cudaStream_t>(stream), reinterpret_cast<cudaEvent_t>(done),
                                          0),
                      call);
}


}  // extern "C"
