/*
 * microdit's C ABI: the only door between Java and native code. The same header is implemented twice, by
 * libmicrodit_cuda.so (nvcc, a real GPU) and libmicrodit_emu.so (g++, the host emulator in native/emu).
 *
 * Every function returns an int status (MDT_SUCCESS or an MDT_ERROR_*); mdt_error_string names a status and
 * mdt_last_error_message gives the calling thread's last detailed message. Bad arguments return
 * MDT_ERROR_INVALID_ARGUMENT; nothing aborts the process. Pointers to tensors are device pointers; sizes are
 * element counts (int64_t). Kernel ops are named mdt_<family>_<op>[_fwd|_bwd] and run asynchronously on the
 * given stream (NULL is the default stream).
 *
 * Element types: tensors are float unless a suffix says otherwise. _bf16out: the output is bf16 (bits as uint16_t,
 * f32 maths rounded to nearest even at the store). _bf16in: the inputs the entry's comment names are bf16 (bits as
 * uint16_t), read as their exact f32 values, so the results are bit for bit those of the plain entry on the inputs'
 * f32 upcast; everything else (other inputs, statistics, gradients) stays float. Both suffixes: _bf16in_bf16out.
 * _bf16grad (backwards, for a bf16 graph, where a value's gradient has the value's type): the gradient operands the
 * entry declares void * are each float or bf16 bits (uint16_t), as the int argument bf16_grads says: bit i set when
 * the i-th of them, in argument order, is bf16 (bits past them are an invalid argument). A bf16 incoming gradient is
 * read as its exact f32 value; a bf16 gradient output is the f32 result rounded once to nearest even at the store.
 * So the results are bit for bit those of the plain entry on the gradients' f32 upcast, converted; one entry takes
 * every mix. With _bf16in (its inputs as above): _bf16in_bf16grad.
 *
 * Keep one declaration per line: a Java test parses this file and checks the FFM bindings against it.
 */
#ifndef MICRODIT_H
#define MICRODIT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MDT_API __attribute__((visibility("default")))

enum {
    MDT_SUCCESS = 0,
    MDT_ERROR_INVALID_ARGUMENT = 1,
    MDT_ERROR_NO_DEVICE = 2,
    MDT_ERROR_OUT_OF_MEMORY = 3,
    MDT_ERROR_LAUNCH_SHAPE = 4,
    MDT_ERROR_SHARED_MEMORY = 5,
    MDT_ERROR_DEADLOCK = 6,
    MDT_ERROR_RUNTIME = 7,
    MDT_ERROR_DRIVER_TOO_OLD = 8, /* an NVIDIA driver is installed but older than the CUDA runtime linked in */
    MDT_ERROR_OUT_OF_BOUNDS = 9,  /* checked emulator: a kernel touched memory outside every live allocation */
    MDT_ERROR_RACE = 10,          /* checked emulator: a data race between blocks, or between threads of a block */
    MDT_ERROR_COMMUNICATION = 11  /* a collective between ranks failed, or its library (NCCL, MPI) is missing */
};

enum {
    MDT_KIND_CUDA = 0,
    MDT_KIND_EMULATOR = 1
};

/* Checks on values that live on the device (routing indices, token ids, masks) run in the kernels, so the host
 * never waits to read them: a bad entry is skipped (outputs are then unspecified) and reported in an error record,
 * device memory of MDT_ERROR_RECORD_INTS int32 that the caller zeroes and reads whenever it waits for the stream
 * anyway. The first failing check claims the record (atomicCAS of record[0] from 0 to its MDT_CHECK_* code) and
 * writes record[1] = the bad value, record[2] = its bound, record[3..5] = its position; later failures leave the
 * record as it is. Ops that check take it as their last argument, int32_t *error_record; NULL skips reporting. */
enum {
    MDT_ERROR_RECORD_INTS = 8,
    MDT_CHECK_MOE_TOPK_BWD = 1,            /* indices[n, e, j] = value outside [0, tokens) */
    MDT_CHECK_MOE_DISPATCH_FWD = 2,        /* as above */
    MDT_CHECK_MOE_DISPATCH_BWD = 3,        /* as above */
    MDT_CHECK_MOE_COMBINE_FWD = 4,         /* as above */
    MDT_CHECK_MOE_COMBINE_BWD = 5,         /* as above */
    MDT_CHECK_TOKENS_GATHER_RANGE = 6,     /* ids[n, j] = value outside [0, tokens) */
    MDT_CHECK_TOKENS_SCATTER_RANGE = 7,    /* as above */
    MDT_CHECK_TOKENS_SCATTER_DISTINCT = 8, /* ids[n, j] == ids[n, l] = value, j < l the first two positions */
    MDT_CHECK_LOSS_EDM_FWD_EMPTY = 9,      /* sample n keeps none of its `bound` patches (the mask removes all) */
    MDT_CHECK_LOSS_EDM_BWD_EMPTY = 10,     /* as above */
    MDT_CHECK_OPTIM_LIST = 11,             /* entries[i]: value = i, bound = count, then its offset, the expected
                                            * offset and its n (a malformed mdt_tensor_list_entry array) */
    MDT_CHECK_NORM_GATHER_FWD_RANGE = 12,  /* ids[n, j] = value outside [0, tokens) */
    MDT_CHECK_NORM_GATHER_BWD_RANGE = 13   /* as above */
};

typedef struct mdt_stream_s *mdt_stream_t;
typedef struct mdt_event_s *mdt_event_t;

/* ------------------------------------------------------------------ errors and context */
MDT_API const char *mdt_error_string(int status);
MDT_API const char *mdt_last_error_message(void);
MDT_API int mdt_library_kind(void);
MDT_API int mdt_device_count(int *count);
MDT_API int mdt_device_name(int device, char *buffer, size_t capacity);
MDT_API int mdt_device_sm_count(int device, int *count);
MDT_API int mdt_device_memory(int device, size_t *free_bytes, size_t *total_bytes);
MDT_API int mdt_set_device(int device);
MDT_API int mdt_device_synchronize(void);
/* Versions in CUDA's integer format (1000 * major + 10 * minor: 13000 is 13.0). The driver's is the newest CUDA it
 * supports, 0 when no NVIDIA driver is installed; the runtime's is the CUDA runtime linked into the library (the
 * CUDA build links it statically, so it needs a driver of at least that version). The emulator reports 13000 for
 * both. Neither call needs a device. */
MDT_API int mdt_driver_version(int *version);
MDT_API int mdt_runtime_version(int *version);

/* ------------------------------------------------------------------ streams and events */
MDT_API int mdt_stream_create(mdt_stream_t *stream);
MDT_API int mdt_stream_destroy(mdt_stream_t stream);
MDT_API int mdt_stream_synchronize(mdt_stream_t stream);
MDT_API int mdt_stream_wait_event(mdt_stream_t stream, mdt_event_t event);
/* An event that records a timestamp (mdt_event_elapsed_ms can time it). */
MDT_API int mdt_event_create(mdt_event_t *event);
/* An event for ordering and completion only (cudaEventDisableTiming): cheaper to record and to query, the kind to
 * poll; mdt_event_elapsed_ms refuses it. */
MDT_API int mdt_event_create_untimed(mdt_event_t *event);
MDT_API int mdt_event_destroy(mdt_event_t event);
MDT_API int mdt_event_record(mdt_event_t event, mdt_stream_t stream);
MDT_API int mdt_event_synchronize(mdt_event_t event);
MDT_API int mdt_event_elapsed_ms(mdt_event_t start, mdt_event_t end, float *milliseconds);

/* ------------------------------------------------------------------ memory */
MDT_API int mdt_malloc(void **pointer, size_t bytes);
MDT_API int mdt_free(void *pointer);
MDT_API int mdt_memcpy_htod(void *device_target, const void *host_source, size_t bytes, mdt_stream_t stream);
MDT_API int mdt_memcpy_dtoh(void *host_target, const void *device_source, size_t bytes, mdt_stream_t stream);
MDT_API int mdt_memcpy_dtod(void *device_target, const void *device_source, size_t bytes, mdt_stream_t stream);
MDT_API int mdt_memset(void *device_target, int value, size_t bytes, mdt_stream_t stream);
/* Host→device copies without a host wait: the caller stages its data in page-locked host memory (cudaMallocHost;
 * on the emulator, host memory whose copies queue like a GPU's: mdt_emu_stream_mode), copies from there with
 * mdt_memcpy_htod, records an event after the copy and reuses the staging bytes only once mdt_event_query reports
 * the event complete (a copy from pageable memory would make the CUDA runtime wait for the stream first).
 * complete: 1 when all work before the event's record has finished, else 0; the query never waits. */
MDT_API int mdt_host_alloc(void **pointer, size_t bytes);
MDT_API int mdt_host_free(void *pointer);
MDT_API int mdt_event_query(mdt_event_t event, int *complete);

/* ------------------------------------------------------------------ launch trace */
/* Between mdt_trace_begin and mdt_trace_end every kernel launch is recorded (process-wide, all streams): its
 * kernel's name and shape[7] = {grid x, y, z, block x, y, z, dynamic shared bytes}. The entries stay readable
 * until the next begin. dry_run = 1 (the emulator only; the CUDA library refuses it): launches are checked and
 * recorded but not run, grid-stride kernels size their grids as on a GPU, writes to device memory (copies, memset)
 * are skipped and device→host copies return zeros, so a full-size training step can be planned on a CPU in seconds
 * without touching its memory (device contents are then unspecified). */
MDT_API int mdt_trace_begin(int dry_run);
MDT_API int mdt_trace_end(void);
MDT_API int mdt_trace_count(int64_t *launches);
MDT_API int mdt_trace_entry(int64_t index, char *kernel, size_t capacity, int64_t *shape);

/* ------------------------------------------------------------------ emulator self-tests (emu primitives) */
/* Runs one named primitive check kernel (barrier, shuffle, ballot, atomics, bf16, launch-shape, ...) with the
 * given launch shape; writes the kernel's outputs to host_out (capacity floats). Both libraries implement it. */
MDT_API int mdt_selftest_run(const char *name, int grid_x, int block_x, int shared_bytes, float *host_out, int64_t capacity);

/* The order in which the emulator's threads claim the blocks of a launch (mdt_emu_threads). A kernel whose
 * result depends on that order (a block reading what another block of the launch writes, two blocks writing one
 * output without atomics, a "last block" reduction without a fence) is a race on a GPU; running the tests under
 * another order exposes it. FORWARD: x fastest, then y, then z (the default); REVERSE: the opposite; SHUFFLED: a
 * permutation of the block indices drawn from seed (the same for the same seed and grid). The setting is
 * process-global, applies to every later launch from every thread, and starts from the environment variable
 * MDT_EMU_BLOCK_ORDER=forward|reverse|shuffled[:seed] (read once when the library loads; a malformed value makes
 * every launch fail until this function is called). Nothing else is randomised. The CUDA library accepts only
 * FORWARD (a no-op: there the order is the hardware's) and refuses the others with MDT_ERROR_INVALID_ARGUMENT. */
enum {
    MDT_BLOCK_ORDER_FORWARD = 0,
    MDT_BLOCK_ORDER_REVERSE = 1,
    MDT_BLOCK_ORDER_SHUFFLED = 2
};
MDT_API int mdt_emu_block_order(int order, uint64_t seed);

/* How many host threads run the blocks of each later launch at once (the calling thread and count - 1 workers of the
 * emulator's pool, each with its own fibers and shared memory); 1 runs them one after another on the calling thread.
 * count 1..64 sets it, 0 keeps it; the count in effect goes to *in_effect unless that is NULL. Process-global; starts
 * from the environment variable MICRODIT_EMU_THREADS (read once when the library loads; a malformed value makes every
 * launch fail until this function sets a count), else the CPUs the process may use, at most 8, divided among the MPI
 * ranks on the machine (OMPI_COMM_WORLD_LOCAL_SIZE). Every kernel of microdit gives the same bits with any count. The
 * CUDA library refuses it with MDT_ERROR_INVALID_ARGUMENT. */
MDT_API int mdt_emu_threads(int count, int *in_effect);

/* The architecture whose shared-memory limits the emulator applies: 90 (sm_90, the default) or 80 (sm_80). A block
 * gets 48 KiB of static + dynamic shared memory, or with the launch's opt-in (MDT_LAUNCH_OPT_IN, kernels/common.cuh)
 * the architecture's opt-in limit: 232448 bytes (227 KiB) on sm_90, 166912 bytes (163 KiB) on sm_80. Process-global,
 * applies to every later launch, and starts from the environment variable MDT_EMU_ARCH=80|90 (read once when the
 * library loads; a malformed value makes every launch fail until this function is called). The CUDA library accepts
 * only the current device's architecture (10 * major + minor, a no-op) and refuses others with
 * MDT_ERROR_INVALID_ARGUMENT. */
MDT_API int mdt_emu_architecture(int sm);
/* When the emulator's streams run their work. DEFERRED, as on a GPU: launches, copies, memsets and event records
 * queue on their stream and run in order at a later mdt_stream_synchronize, mdt_event_synchronize,
 * mdt_device_synchronize or mdt_stream_wait_event, or when mdt_event_query finds its event pending (that query
 * answers "not ready" and then runs the pending work, so a polling loop makes progress). Copies between device
 * memory and pageable host memory first run the stream's pending work and complete before they return (the CUDA
 * runtime stages them); copies from or to mdt_host_alloc memory queue like kernels, so host writes to a staging
 * buffer before its copy's event completes change what the device gets. A kernel that fails (deadlock, fault)
 * leaves its stream a sticky error that every later call on the stream returns. IMMEDIATE: every call completes
 * before it returns and a kernel's failure is its launch's status. The setting is process-global; setting it first
 * runs all pending work, then clears every sticky error (a fresh start, as a new process gets on a GPU). It starts
 * from MDT_EMU_STREAMS=deferred|immediate (read when the library loads; unset is immediate; a malformed value makes
 * every launch fail until this function is called). The CUDA library accepts only DEFERRED (a no-op: the GPU's own
 * behaviour). */
enum {
    MDT_STREAMS_IMMEDIATE = 0,
    MDT_STREAMS_DEFERRED = 1
};
MDT_API int mdt_emu_stream_mode(int mode);
/* Test hook: sets the calling thread's CUDA last error to cudaErrorInvalidValue, as a failed CUDA call made by other
 * code in the thread would leave it (the next launch's status must not report it). Emulator only. */
MDT_API int mdt_emu_inject_last_error(void);

/* The checked emulator's performance model (libmicrodit_emu_checked.so, native/emu/memory_check.cpp): per kernel,
 * its warp-level memory requests and what they cost. begin clears the counts and counts every later launch of any
 * thread; end stops counting and freezes the counts for mdt_emu_perf_kernel (kernels in name order; counts gets
 * MDT_PERF_COUNTS values, indexed by the MDT_PERF_* below). A shared-memory request costs wavefronts (bank
 * conflicts make more than the ideal); a global one sectors of 32 bytes (uncoalesced accesses more than the ideal,
 * its distinct bytes / 32). The CUDA library and the unchecked emulator refuse these with
 * MDT_ERROR_INVALID_ARGUMENT: they are an emulator tool. */
enum {
    MDT_PERF_LAUNCHES = 0,
    MDT_PERF_SHARED_REQUESTS = 1,
    MDT_PERF_SHARED_WAVEFRONTS = 2,
    MDT_PERF_SHARED_IDEAL_WAVEFRONTS = 3,
    MDT_PERF_GLOBAL_REQUESTS = 4,
    MDT_PERF_GLOBAL_SECTORS = 5,
    MDT_PERF_GLOBAL_IDEAL_SECTORS = 6,
    MDT_PERF_COUNTS = 7
};
MDT_API int mdt_emu_perf_begin(void);
MDT_API int mdt_emu_perf_end(int *kernels);
MDT_API int mdt_emu_perf_kernel(int index, char *name, int64_t name_capacity, int64_t *counts);

/* ------------------------------------------------------------------ elementwise (kernels/elementwise.cu) */
MDT_API int mdt_elementwise_add(mdt_stream_t stream, const float *a, const float *b, float *out, int64_t n, int64_t b_n);
/* b bf16 (the output of a bf16 linear layer added to the f32 residual stream). */
MDT_API int mdt_elementwise_add_bf16in(mdt_stream_t stream, const float *a, const uint16_t *b, float *out, int64_t n, int64_t b_n);
MDT_API int mdt_elementwise_mul(mdt_stream_t stream, const float *a, const float *b, float *out, int64_t n, int64_t b_n);
MDT_API int mdt_elementwise_scale(mdt_stream_t stream, const float *x, float alpha, float *out, int64_t n);
MDT_API int mdt_elementwise_axpy(mdt_stream_t stream, float alpha, const float *x, float *y, int64_t n);
MDT_API int mdt_elementwise_fill(mdt_stream_t stream, float *out, float value, int64_t n);
MDT_API int mdt_elementwise_modulate_fwd(mdt_stream_t stream, const float *x, const float *shift, const float *scale, float *out, int64_t samples, int64_t tokens, int64_t width);
MDT_API int mdt_elementwise_modulate_bwd(mdt_stream_t stream, const float *d_out, const float *x, const float *scale, float *dx, float *d_shift, float *d_scale, int64_t samples, int64_t tokens, int64_t width);
MDT_API int mdt_elementwise_gated_residual_fwd(mdt_stream_t stream, const float *x, const float *gate, const float *f, float *out, int64_t samples, int64_t tokens, int64_t width);
MDT_API int mdt_elementwise_gated_residual_bwd(mdt_stream_t stream, const float *d_out, const float *gate, const float *f, float *d_gate, float *d_f, int64_t samples, int64_t tokens, int64_t width);
/* f bf16 (x, gate, out and the gradients float). */
MDT_API int mdt_elementwise_gated_residual_fwd_bf16in(mdt_stream_t stream, const float *x, const float *gate, const uint16_t *f, float *out, int64_t samples, int64_t tokens, int64_t width);
MDT_API int mdt_elementwise_gated_residual_bwd_bf16in(mdt_stream_t stream, const float *d_out, const float *gate, const uint16_t *f, float *d_gate, float *d_f, int64_t samples, int64_t tokens, int64_t width);
/* d_f float or bf16 (bf16_grads bit 0). */
MDT_API int mdt_elementwise_gated_residual_bwd_bf16grad(mdt_stream_t stream, const float *d_out, const float *gate, const float *f, float *d_gate, void *d_f, int64_t samples, int64_t tokens, int64_t width, int bf16_grads);
MDT_API int mdt_elementwise_gated_residual_bwd_bf16in_bf16grad(mdt_stream_t stream, const float *d_out, const float *gate, const uint16_t *f, float *d_gate, void *d_f, int64_t samples, int64_t tokens, int64_t width, int bf16_grads);
MDT_API int mdt_elementwise_slice_columns_fwd(mdt_stream_t stream, const float *x, int64_t start, float *out, int64_t rows, int64_t columns, int64_t width);
MDT_API int mdt_elementwise_slice_columns_bwd(mdt_stream_t stream, const float *d_out, int64_t start, float *dx, int64_t rows, int64_t columns, int64_t width);
MDT_API int mdt_elementwise_f32_to_bf16(mdt_stream_t stream, const float *source, uint16_t *target, int64_t n);
MDT_API int mdt_elementwise_bf16_to_f32(mdt_stream_t stream, const uint16_t *source, float *target, int64_t n);

/* ------------------------------------------------------------------ normalisation (kernels/norm.cu) */
MDT_API int mdt_norm_layer_norm_fwd(mdt_stream_t stream, const float *x, const float *weight, float eps, float *out, float *mean, float *rstd, int64_t rows, int64_t width);
/* The _bf16out forwards store out as bf16 (bits as uint16_t; f32 maths, rounded to nearest even at the store), for
 * an output that only bf16 matrix products read; the backwards are the same (they never read out). */
MDT_API int mdt_norm_layer_norm_fwd_bf16out(mdt_stream_t stream, const float *x, const float *weight, float eps, uint16_t *out, float *mean, float *rstd, int64_t rows, int64_t width);
/* The backward adds into d_weight (may be NULL) through workspace: device floats, at least
 * mdt_gemm_sum_rows_workspace_floats(rows, width) of them when d_weight is given (may be NULL when that is 0). */
MDT_API int mdt_norm_layer_norm_bwd(mdt_stream_t stream, const float *d_out, const float *x, const float *weight, const float *mean, const float *rstd, float *dx, float *d_weight, int64_t rows, int64_t width, float *workspace, int64_t workspace_capacity);
/* x bf16 (QK-norm of bf16 q and k); weight, mean, rstd and the gradients float. */
MDT_API int mdt_norm_layer_norm_fwd_bf16in(mdt_stream_t stream, const uint16_t *x, const float *weight, float eps, float *out, float *mean, float *rstd, int64_t rows, int64_t width);
MDT_API int mdt_norm_layer_norm_fwd_bf16in_bf16out(mdt_stream_t stream, const uint16_t *x, const float *weight, float eps, uint16_t *out, float *mean, float *rstd, int64_t rows, int64_t width);
/* Non-affine LayerNorm's statistics for QK-norm fused into attention: mean and rstd [rows] as the forwards save them,
 * center [rows, 2] the rough mean m0 and its correction that the output subtracts one after the other (the _qknorm
 * attention entries normalise q and k from them to the bits of the bf16 output); out may be NULL (not written).
 * x's rows are x_stride (>= width) elements apart: a column block of a wider matrix (q or k inside self-attention's
 * q|k|v); out needs x_stride == width. bf16_operands: bit 0 x, bit 1 out. */
MDT_API int mdt_norm_layer_norm_statistics(mdt_stream_t stream, const void *x, float eps, void *out, float *mean, float *rstd, float *center, int64_t rows, int64_t width, int64_t x_stride, int bf16_operands);
/* Non-affine LayerNorm backward of bf16 rows row_stride (>= width) elements apart in d_out, x and dx, dx bf16: the
 * QK-norms' backward inside self-attention's q|k|v gradient. dx may be d_out itself (each element is read before the
 * thread that read it stores it). */
MDT_API int mdt_norm_layer_norm_bwd_bf16_rows(mdt_stream_t stream, const uint16_t *d_out, const uint16_t *x, const float *mean, const float *rstd, uint16_t *dx, int64_t rows, int64_t width, int64_t row_stride);
MDT_API int mdt_norm_layer_norm_bwd_bf16in(mdt_stream_t stream, const float *d_out, const uint16_t *x, const float *weight, const float *mean, const float *rstd, float *dx, float *d_weight, int64_t rows, int64_t width, float *workspace, int64_t workspace_capacity);
/* d_out (bf16_grads bit 0) and dx (bit 1) float or bf16; d_weight stays float (it accumulates). */
MDT_API int mdt_norm_layer_norm_bwd_bf16grad(mdt_stream_t stream, const void *d_out, const float *x, const float *weight, const float *mean, const float *rstd, void *dx, float *d_weight, int64_t rows, int64_t width, float *workspace, int64_t workspace_capacity, int bf16_grads);
MDT_API int mdt_norm_layer_norm_bwd_bf16in_bf16grad(mdt_stream_t stream, const void *d_out, const uint16_t *x, const float *weight, const float *mean, const float *rstd, void *dx, float *d_weight, int64_t rows, int64_t width, float *workspace, int64_t workspace_capacity, int bf16_grads);
/* LayerNorm fused with adaLN modulate: out = LN(x)·(1 + scale) + shift, x [samples, tokens, width], shift and
 * scale [samples, width]; the backward writes dx, d_shift and d_scale and adds into d_weight (may be NULL), its
 * workspace then at least mdt_gemm_sum_rows_workspace_floats(samples, width) floats. */
MDT_API int mdt_norm_layer_norm_modulate_fwd(mdt_stream_t stream, const float *x, const float *weight, const float *shift, const float *scale, float eps, float *out, float *mean, float *rstd, int64_t samples, int64_t tokens, int64_t width);
MDT_API int mdt_norm_layer_norm_modulate_fwd_bf16out(mdt_stream_t stream, const float *x, const float *weight, const float *shift, const float *scale, float eps, uint16_t *out, float *mean, float *rstd, int64_t samples, int64_t tokens, int64_t width);
MDT_API int mdt_norm_layer_norm_modulate_bwd(mdt_stream_t stream, const float *d_out, const float *x, const float *weight, const float *scale, const float *mean, const float *rstd, float *dx, float *d_weight, float *d_shift, float *d_scale, int64_t samples, int64_t tokens, int64_t width, float *workspace, int64_t workspace_capacity);
/* d_out float or bf16 (bf16_grads bit 0); dx, d_weight, d_shift and d_scale stay float. */
MDT_API int mdt_norm_layer_norm_modulate_bwd_bf16grad(mdt_stream_t stream, const void *d_out, const float *x, const float *weight, const float *scale, const float *mean, const float *rstd, float *dx, float *d_weight, float *d_shift, float *d_scale, int64_t samples, int64_t tokens, int64_t width, float *workspace, int64_t workspace_capacity, int bf16_grads);
/* The backwards adding into dx (float, holding x's gradient so far) instead of writing it: dx += the LayerNorm's
 * dx in the same pass. d_out float or bf16 (bit 0); the LayerNorm's x float or bf16 (bit 1 of bf16_operands). */
MDT_API int mdt_norm_layer_norm_bwd_accumulate(mdt_stream_t stream, const void *d_out, const void *x, const float *weight, const float *mean, const float *rstd, float *dx, float *d_weight, int64_t rows, int64_t width, float *workspace, int64_t workspace_capacity, int bf16_operands);
MDT_API int mdt_norm_layer_norm_modulate_bwd_accumulate(mdt_stream_t stream, const void *d_out, const float *x, const float *weight, const float *scale, const float *mean, const float *rstd, float *dx, float *d_weight, float *d_shift, float *d_scale, int64_t samples, int64_t tokens, int64_t width, float *workspace, int64_t workspace_capacity, int bf16_grads);
/* LayerNorm of the rows the deferred mask keeps, read in place: out[n, r, :] = LN(x[n, ids[n, r], :])·weight, x
 * [samples, tokens, width] float, ids int32 [samples, kept], out [samples, kept, width] float or bf16 (bf16_out),
 * mean and rstd [samples·kept]; bit for bit mdt_tokens_gather_rows then mdt_norm_layer_norm_fwd. The backward writes
 * x's whole gradient dx [samples, tokens, width] float: the kept rows get the LayerNorm's dx (added to dx's values
 * when accumulate is 1), the other rows zero (when accumulate is 0; left as they are when 1); d_out float or bf16
 * (bf16_d_out). Ids of a sample must be distinct; one outside [0, tokens) is reported (MDT_CHECK_NORM_GATHER_*). */
MDT_API int mdt_norm_gather_layer_norm_fwd(mdt_stream_t stream, const float *x, const int32_t *ids, const float *weight, float eps, void *out, float *mean, float *rstd, int64_t samples, int64_t tokens, int64_t kept, int64_t width, int bf16_out, int32_t *error_record);
MDT_API int mdt_norm_gather_layer_norm_bwd(mdt_stream_t stream, const void *d_out, const float *x, const int32_t *ids, const float *weight, const float *mean, const float *rstd, float *dx, float *d_weight, int64_t samples, int64_t tokens, int64_t kept, int64_t width, float *workspace, int64_t workspace_capacity, int bf16_d_out, int accumulate, int32_t *error_record);
/* Residual + gate + LayerNorm (+ modulate), fused: residual = x + gate·f (gate NULL: x + f), out = LN(residual),
 * modulated as above unless shift and scale are NULL; x, residual [samples, tokens, width] float, gate [samples,
 * width]; f (bf16_operands bit 0) and out (bit 1) float or bf16. The backward takes d_out (bit 0) and d_residual, the
 * gradient of residual from its other readers (float; may be NULL; may be dx itself), writes dx (the residual's whole
 * gradient, also x's), d_f (bit 2 bf16), d_gate (with gate), d_shift and d_scale (with scale), and adds into d_weight
 * (may be NULL); workspace as the LayerNorm backwards (rows = samples with scale, else samples·tokens). */
MDT_API int mdt_norm_residual_layer_norm_fwd(mdt_stream_t stream, const float *x, const float *gate, const void *f, const float *weight, const float *shift, const float *scale, float eps, float *residual, void *out, float *mean, float *rstd, int64_t samples, int64_t tokens, int64_t width, int bf16_operands);
/* The forward with an f32 out and its bf16 copy out_bf16 (rounded to nearest even, as convert): for an output that
 * f32 ops and bf16 products both read. bf16_f: f is bf16 (1) or float (0). */
MDT_API int mdt_norm_residual_layer_norm_fwd_bf16copy(mdt_stream_t stream, const float *x, const float *gate, const void *f, const float *weight, const float *shift, const float *scale, float eps, float *residual, float *out, uint16_t *out_bf16, float *mean, float *rstd, int64_t samples, int64_t tokens, int64_t width, int bf16_f);
MDT_API int mdt_norm_residual_layer_norm_bwd(mdt_stream_t stream, const void *d_out, const float *d_residual, const float *residual, const float *gate, const void *f, const float *weight, const float *scale, const float *mean, const float *rstd, float *dx, float *d_weight, float *d_shift, float *d_scale, float *d_gate, void *d_f, int64_t samples, int64_t tokens, int64_t width, float *workspace, int64_t workspace_capacity, int bf16_operands);

/* ------------------------------------------------------------------ tokens (kernels/tokens.cu) */
/* ids [N, kept] in [0, T) (checked into error_record); the scatter's ids of a sample must also be distinct, which
 * it checks with a bitmap of T bits in shared memory when error_record is given (then T <= 393216). */
MDT_API int mdt_tokens_gather_rows(mdt_stream_t stream, const float *x, const int32_t *ids, float *out, int64_t samples, int64_t tokens, int64_t kept, int64_t width, int32_t *error_record);
MDT_API int mdt_tokens_scatter_rows(mdt_stream_t stream, const float *x, const int32_t *ids, float *out, int64_t samples, int64_t tokens, int64_t kept, int64_t width, int32_t *error_record);
MDT_API int mdt_tokens_mean_fwd(mdt_stream_t stream, const float *x, float *out, int64_t samples, int64_t tokens, int64_t width);
MDT_API int mdt_tokens_mean_bwd(mdt_stream_t stream, const float *d_out, float *dx, int64_t samples, int64_t tokens, int64_t width);

/* ------------------------------------------------------------------ optimizer (kernels/optim.cu) */
MDT_API int mdt_optim_adamw(mdt_stream_t stream, float *param, const float *grad, float *m, float *v, int64_t n, float learning_rate, float beta1, float beta2, float epsilon, float weight_decay, int64_t step, float grad_scale);
MDT_API int mdt_optim_ema(mdt_stream_t stream, float *ema, const float *param, int64_t n, float decay);
MDT_API int mdt_optim_sum_of_squares(mdt_stream_t stream, const float *x, int64_t n, double *partials, int64_t partial_capacity, double *result);
/* Multi-tensor versions: one op over a list of tensors in one or two launches. The list is a DEVICE array of
 * `count` mdt_tensor_list_entry (7 int64, 56 bytes each), the entries' elements back to back in one flattened index
 * space of `total` elements:
 *   pointers[4]     the entry's device tensors (float): AdamW param, grad, m, v; EMA ema, param; sum of squares x;
 *                   unused ones 0
 *   n               elements of each of them (>= 0; 0 is allowed)
 *   element_offset  the sum of n over the entries before it (so the last one's plus its n is `total`)
 *   partial_offset  sum of squares: the sum of P(n) over the entries before it, P(n) = min(ceil(n /
 *                   MDT_SUM_OF_SQUARES_THREADS), MDT_SUM_OF_SQUARES_MAX_PARTIALS) (0 for n = 0), the last one's plus its
 *                   P(n) is total_partials; the other ops ignore it
 * The kernels check the offsets (MDT_CHECK_OPTIM_LIST in error_record; NULL skips reporting) and never access outside
 * an entry's n elements. AdamW and EMA give each element the bits of mdt_optim_adamw / mdt_optim_ema; the sum of
 * squares writes results[i] = entry i's sum, the bits of mdt_optim_sum_of_squares, using partials[total_partials]. */
enum {
    MDT_SUM_OF_SQUARES_THREADS = 256,
    MDT_SUM_OF_SQUARES_MAX_PARTIALS = 256
};
typedef struct mdt_tensor_list_entry {
    int64_t pointers[4];
    int64_t n;
    int64_t element_offset;
    int64_t partial_offset;
} mdt_tensor_list_entry;
MDT_API int mdt_optim_adamw_multi(mdt_stream_t stream, const mdt_tensor_list_entry *entries, int64_t count, int64_t total, float learning_rate, float beta1, float beta2, float epsilon, float weight_decay, int64_t step, float grad_scale, int32_t *error_record);
/* mdt_optim_adamw_multi that also writes each updated parameter, rounded as mdt_elementwise_f32_to_bf16 rounds, into
 * its bf16 working copy: `copies` is a second DEVICE list of `count` entries whose pointers[0] is entry i's copy (bf16
 * bits, uint16_t) and whose n equals entry i's (other fields unused; a differing n is reported and that copy not
 * written). The parameters, moments and their bits are those of mdt_optim_adamw_multi. */
MDT_API int mdt_optim_adamw_bf16_copy_multi(mdt_stream_t stream, const mdt_tensor_list_entry *entries, const mdt_tensor_list_entry *copies, int64_t count, int64_t total, float learning_rate, float beta1, float beta2, float epsilon, float weight_decay, int64_t step, float grad_scale, int32_t *error_record);
MDT_API int mdt_optim_ema_multi(mdt_stream_t stream, const mdt_tensor_list_entry *entries, int64_t count, int64_t total, float decay, int32_t *error_record);
MDT_API int mdt_optim_sum_of_squares_multi(mdt_stream_t stream, const mdt_tensor_list_entry *entries, int64_t count, int64_t total_partials, double *partials, int64_t partial_capacity, double *results, int32_t *error_record);

/* ------------------------------------------------------------------ random numbers (kernels/rng.cu) */
MDT_API int mdt_rng_uniform(mdt_stream_t stream, uint64_t seed, uint64_t philox_stream, int64_t offset, float *out, int64_t n);
MDT_API int mdt_rng_normal(mdt_stream_t stream, uint64_t seed, uint64_t philox_stream, int64_t offset, float *out, int64_t n);

/* ------------------------------------------------------------------ GEMM (kernels/gemm.cu) */
/* F32: out = op(a)·op(b) + bias (+ out when accumulate). Split-K and its workspace as for mdt_gemm_matmul_bf16
 * below (32×32 output tiles); mdt_gemm_matmul_workspace gives the floats a shape wants (0: no split). */
MDT_API int mdt_gemm_matmul(mdt_stream_t stream, const float *a, int transpose_a, const float *b, int transpose_b, const float *bias, float *out, int64_t batch, int64_t m, int64_t n, int64_t k, int64_t stride_a, int64_t stride_b, int accumulate, float *workspace, int64_t workspace_capacity);
MDT_API int mdt_gemm_matmul_workspace(int64_t batch, int64_t m, int64_t n, int64_t k, int64_t *floats);
/* BF16 operands (bf16 bits as uint16_t) on tensor cores, f32 accumulation and output:
 * out = gelu?(op(a)·op(b) + bias) (+ out when accumulate); gelu (0 or 1) is the tanh form.
 * Small output, long K: K is split into slices whose f32 partials go to workspace (workspace_capacity floats,
 * device memory, not overlapping the operands; its contents afterwards are unspecified); the split depends only
 * on the shape, so results have the same bits on every run. mdt_gemm_matmul_bf16_workspace gives the floats a
 * shape wants (0: no split); a smaller workspace, or NULL and 0, splits less or not at all, never an error. */
MDT_API int mdt_gemm_matmul_bf16(mdt_stream_t stream, const uint16_t *a, int transpose_a, const uint16_t *b, int transpose_b, const float *bias, float *out, int64_t batch, int64_t m, int64_t n, int64_t k, int64_t stride_a, int64_t stride_b, int accumulate, int gelu, float *workspace, int64_t workspace_capacity);
/* mdt_gemm_matmul_bf16 with a bf16 output (bits as uint16_t): the epilogue (bias, GELU) computed in f32 as there, then
 * rounded to nearest even once at the store, so out equals mdt_gemm_matmul_bf16's f32 out converted with
 * mdt_elementwise_f32_to_bf16 bit for bit. No accumulate form (a bf16 output is an op's fresh result). Split-K and
 * workspace as for mdt_gemm_matmul_bf16 (the partials stay f32). */
MDT_API int mdt_gemm_matmul_bf16_out(mdt_stream_t stream, const uint16_t *a, int transpose_a, const uint16_t *b, int transpose_b, const float *bias, uint16_t *out, int64_t batch, int64_t m, int64_t n, int64_t k, int64_t stride_a, int64_t stride_b, int gelu, float *workspace, int64_t workspace_capacity);
/* GELU in the bf16 GEMM's epilogue, with the bits of the separate passes: mdt_gemm_matmul_bf16_gelu stores
 * pre = bf16(op(a)·op(b) + bias) (mdt_gemm_matmul_bf16_out's pre-activation, kept for the backward) and
 * out = mdt_activations_gelu_fwd_bf16in_bf16out(pre); mdt_gemm_matmul_bf16_gelu_bwd stores
 * d_pre = mdt_activations_gelu_bwd_bf16in_bf16grad(dOut = bf16(op(a)·op(b)), x = pre), both gradients bf16.
 * tanh_approximation 0 is the exact (erf) GELU. Split-K and its workspace as for mdt_gemm_matmul_bf16 (sized by
 * mdt_gemm_matmul_bf16_workspace). */
MDT_API int mdt_gemm_matmul_bf16_gelu(mdt_stream_t stream, const uint16_t *a, int transpose_a, const uint16_t *b, int transpose_b, const float *bias, uint16_t *pre, uint16_t *out, int64_t batch, int64_t m, int64_t n, int64_t k, int64_t stride_a, int64_t stride_b, int tanh_approximation, float *workspace, int64_t workspace_capacity);
MDT_API int mdt_gemm_matmul_bf16_gelu_bwd(mdt_stream_t stream, const uint16_t *a, int transpose_a, const uint16_t *b, int transpose_b, const uint16_t *pre, uint16_t *d_pre, int64_t batch, int64_t m, int64_t n, int64_t k, int64_t stride_a, int64_t stride_b, int tanh_approximation, float *workspace, int64_t workspace_capacity);
/* The SwiGLU gate silu(gate_a)·gate_b in the bf16 GEMM's epilogue, with the bits of the separate passes:
 * mdt_gemm_matmul_bf16_swiglu stores gate_b = bf16(op(a)·op(b) + bias) (mdt_gemm_matmul_bf16_out's) and
 * out = mdt_activations_swiglu_fwd_bf16in_bf16out(gate_a, gate_b); mdt_gemm_matmul_bf16_swiglu_bwd stores
 * d_gate_a, d_gate_b = mdt_activations_swiglu_bwd_bf16in_bf16grad(dOut = bf16(op(a)·op(b)), gate_a, gate_b), all
 * gradients bf16. gate_a, gate_b, out and the gradients are [batch, m, n]. Workspace as for mdt_gemm_matmul_bf16. */
MDT_API int mdt_gemm_matmul_bf16_swiglu(mdt_stream_t stream, const uint16_t *a, int transpose_a, const uint16_t *b, int transpose_b, const float *bias, const uint16_t *gate_a, uint16_t *gate_b, uint16_t *out, int64_t batch, int64_t m, int64_t n, int64_t k, int64_t stride_a, int64_t stride_b, float *workspace, int64_t workspace_capacity);
MDT_API int mdt_gemm_matmul_bf16_swiglu_bwd(mdt_stream_t stream, const uint16_t *a, int transpose_a, const uint16_t *b, int transpose_b, const uint16_t *gate_a, const uint16_t *gate_b, uint16_t *d_gate_a, uint16_t *d_gate_b, int64_t batch, int64_t m, int64_t n, int64_t k, int64_t stride_a, int64_t stride_b, float *workspace, int64_t workspace_capacity);
/* Gathered A (the MoE experts' first product without the dispatched copy): A's stored rows are rows of
 * x [x_rows, lead] chosen by rows [batch][A's stored rows: m, or k when transpose_a] (mdt_moe_routed_rows); an entry
 * outside [0, x_rows) reads as a zero row. lead (k, or m when transpose_a) must be a multiple of 8 and x 16-byte
 * aligned (the 16-byte cp.async copies), else MDT_ERROR_INVALID_ARGUMENT. The bits of the same call on the gathered
 * copy: mdt_gemm_matmul_bf16_gelu_gathered is mdt_gemm_matmul_bf16_gelu (transpose_a 0), mdt_gemm_matmul_bf16_gathered
 * is mdt_gemm_matmul_bf16 (gelu 0; the experts' weight gradient takes transpose_a 1). Workspace as there. */
MDT_API int mdt_gemm_matmul_bf16_gelu_gathered(mdt_stream_t stream, const uint16_t *x, const int32_t *rows, int64_t x_rows, const uint16_t *b, int transpose_b, const float *bias, uint16_t *pre, uint16_t *out, int64_t batch, int64_t m, int64_t n, int64_t k, int64_t stride_b, int tanh_approximation, float *workspace, int64_t workspace_capacity);
MDT_API int mdt_gemm_matmul_bf16_gathered(mdt_stream_t stream, const uint16_t *x, const int32_t *rows, int64_t x_rows, int transpose_a, const uint16_t *b, int transpose_b, const float *bias, float *out, int64_t batch, int64_t m, int64_t n, int64_t k, int64_t stride_b, int accumulate, float *workspace, int64_t workspace_capacity);
MDT_API int mdt_gemm_matmul_bf16_workspace(int64_t batch, int64_t m, int64_t n, int64_t k, int64_t *floats);
/* F32 operands on TF32 tensor cores (opt-in, like PyTorch's allow_tf32: 10 mantissa bits where mdt_gemm_matmul
 * keeps 23): out = gelu?(op(a)·op(b) + bias) (+ out when accumulate) as mdt_gemm_matmul_bf16, with each operand
 * element rounded to tf32 (nearest, ties away from zero) and the products accumulated in f32. Split-K and its
 * workspace as for mdt_gemm_matmul_bf16 (128×128 output tiles); mdt_gemm_matmul_tf32_workspace gives the floats
 * a shape wants (0: no split). */
MDT_API int mdt_gemm_matmul_tf32(mdt_stream_t stream, const float *a, int transpose_a, const float *b, int transpose_b, const float *bias, float *out, int64_t batch, int64_t m, int64_t n, int64_t k, int64_t stride_a, int64_t stride_b, int accumulate, int gelu, float *workspace, int64_t workspace_capacity);
MDT_API int mdt_gemm_matmul_tf32_workspace(int64_t batch, int64_t m, int64_t n, int64_t k, int64_t *floats);
/* out[c] = Σ_r x[r, c] (+ out[c] when accumulate), in two passes (row chunks × column tiles, then the chunks'
 * partials in a fixed order: the same bits on every run) through workspace, device floats: at least
 * mdt_gemm_sum_rows_workspace_floats(rows, columns) of them (NULL allowed when that is 0). */
MDT_API int mdt_gemm_sum_rows(mdt_stream_t stream, const float *x, float *out, int64_t rows, int64_t columns, int accumulate, float *workspace, int64_t workspace_capacity);
/* x bf16 (a bf16 graph's dy, for its bias gradient): the row sums of its f32 upcast. */
MDT_API int mdt_gemm_sum_rows_bf16in(mdt_stream_t stream, const uint16_t *x, float *out, int64_t rows, int64_t columns, int accumulate, float *workspace, int64_t workspace_capacity);
/* Floats of workspace the column sums over rows need (mdt_gemm_sum_rows, and the d_weight of the LayerNorm
 * backwards); a host function, depends on rows and columns alone. */
MDT_API int mdt_gemm_sum_rows_workspace_floats(int64_t rows, int64_t columns, int64_t *floats);

/* ------------------------------------------------------------------ activations (kernels/activations.cu) */
MDT_API int mdt_activations_gelu_fwd(mdt_stream_t stream, const float *x, float *out, int64_t n, int tanh_approximation);
/* The _bf16out forwards store out as bf16 (bits as uint16_t; f32 maths, rounded to nearest even at the store). */
MDT_API int mdt_activations_gelu_fwd_bf16out(mdt_stream_t stream, const float *x, uint16_t *out, int64_t n, int tanh_approximation);
MDT_API int mdt_activations_gelu_bwd(mdt_stream_t stream, const float *d_out, const float *x, float *dx, int64_t n, int tanh_approximation);
/* x bf16; dOut and dx float. */
MDT_API int mdt_activations_gelu_fwd_bf16in(mdt_stream_t stream, const uint16_t *x, float *out, int64_t n, int tanh_approximation);
MDT_API int mdt_activations_gelu_fwd_bf16in_bf16out(mdt_stream_t stream, const uint16_t *x, uint16_t *out, int64_t n, int tanh_approximation);
MDT_API int mdt_activations_gelu_bwd_bf16in(mdt_stream_t stream, const float *d_out, const uint16_t *x, float *dx, int64_t n, int tanh_approximation);
/* d_out (bf16_grads bit 0) and dx (bit 1) float or bf16. */
MDT_API int mdt_activations_gelu_bwd_bf16grad(mdt_stream_t stream, const void *d_out, const float *x, void *dx, int64_t n, int tanh_approximation, int bf16_grads);
MDT_API int mdt_activations_gelu_bwd_bf16in_bf16grad(mdt_stream_t stream, const void *d_out, const uint16_t *x, void *dx, int64_t n, int tanh_approximation, int bf16_grads);
MDT_API int mdt_activations_silu_fwd(mdt_stream_t stream, const float *x, float *out, int64_t n);
MDT_API int mdt_activations_silu_bwd(mdt_stream_t stream, const float *d_out, const float *x, float *dx, int64_t n);
MDT_API int mdt_activations_swiglu_fwd(mdt_stream_t stream, const float *a, const float *b, float *out, int64_t n);
MDT_API int mdt_activations_swiglu_fwd_bf16out(mdt_stream_t stream, const float *a, const float *b, uint16_t *out, int64_t n);
MDT_API int mdt_activations_swiglu_bwd(mdt_stream_t stream, const float *d_out, const float *a, const float *b, float *da, float *db, int64_t n);
/* a and b bf16; dOut, da and db float. */
MDT_API int mdt_activations_swiglu_fwd_bf16in(mdt_stream_t stream, const uint16_t *a, const uint16_t *b, float *out, int64_t n);
MDT_API int mdt_activations_swiglu_fwd_bf16in_bf16out(mdt_stream_t stream, const uint16_t *a, const uint16_t *b, uint16_t *out, int64_t n);
MDT_API int mdt_activations_swiglu_bwd_bf16in(mdt_stream_t stream, const float *d_out, const uint16_t *a, const uint16_t *b, float *da, float *db, int64_t n);
/* d_out (bf16_grads bit 0), da (bit 1) and db (bit 2) float or bf16. */
MDT_API int mdt_activations_swiglu_bwd_bf16grad(mdt_stream_t stream, const void *d_out, const float *a, const float *b, void *da, void *db, int64_t n, int bf16_grads);
MDT_API int mdt_activations_swiglu_bwd_bf16in_bf16grad(mdt_stream_t stream, const void *d_out, const uint16_t *a, const uint16_t *b, void *da, void *db, int64_t n, int bf16_grads);
MDT_API int mdt_activations_softmax_fwd(mdt_stream_t stream, const float *x, float *out, int64_t rows, int64_t width);
MDT_API int mdt_activations_softmax_bwd(mdt_stream_t stream, const float *d_out, const float *y, float *dx, int64_t rows, int64_t width);

/* ------------------------------------------------------------------ patches and sinusoids (kernels/embed.cu) */
MDT_API int mdt_embed_patchify_fwd(mdt_stream_t stream, const float *image, float *out, int64_t samples, int64_t channels, int64_t height, int64_t width, int64_t patch);
MDT_API int mdt_embed_patchify_bwd(mdt_stream_t stream, const float *d_out, float *d_image, int64_t samples, int64_t channels, int64_t height, int64_t width, int64_t patch);
MDT_API int mdt_embed_unpatchify_fwd(mdt_stream_t stream, const float *tokens, float *out, int64_t samples, int64_t channels, int64_t height, int64_t width, int64_t patch);
MDT_API int mdt_embed_unpatchify_bwd(mdt_stream_t stream, const float *d_out, float *d_tokens, int64_t samples, int64_t channels, int64_t height, int64_t width, int64_t patch);
MDT_API int mdt_embed_position_2d(mdt_stream_t stream, float *out, int64_t grid_h, int64_t grid_w, int64_t dim, float interpolation_scale);
MDT_API int mdt_embed_timestep(mdt_stream_t stream, const float *t, float *out, int64_t samples, int64_t size);

/* ------------------------------------------------------------------ loss (kernels/loss.cu) */
/* mask may be NULL (every patch kept). workspace: device doubles, samples + 1 of them; the forward leaves the
 * per-sample losses in [0, samples) and their mean in [samples]. */
MDT_API int mdt_loss_edm_fwd(mdt_stream_t stream, const float *denoised, const float *target, const float *weight, const float *mask, float *per_sample, double *workspace, int64_t samples, int64_t channels, int64_t height, int64_t width, int64_t patch, int32_t *error_record);
MDT_API int mdt_loss_edm_bwd(mdt_stream_t stream, float d_loss, const float *denoised, const float *target, const float *weight, const float *mask, float *d_denoised, double *workspace, int64_t samples, int64_t channels, int64_t height, int64_t width, int64_t patch, int32_t *error_record);

/* ------------------------------------------------------------------ expert-choice MoE (kernels/moe.cu) */
/* probs [N, T, E]; gates and indices [N, E, k]; routed rows expert-major [E, N·k, D]. Indices must lie in [0, T)
 * (checked on the device into error_record, see above). Top-k needs T <= 4096. */
MDT_API int mdt_moe_topk_fwd(mdt_stream_t stream, const float *probs, float *gates, int32_t *indices, int64_t samples, int64_t tokens, int64_t experts, int64_t k);
MDT_API int mdt_moe_topk_bwd(mdt_stream_t stream, const float *d_gates, const int32_t *indices, float *d_probs, int64_t samples, int64_t tokens, int64_t experts, int64_t k, int32_t *error_record);
MDT_API int mdt_moe_dispatch_fwd(mdt_stream_t stream, const float *x, const int32_t *indices, float *out, int64_t samples, int64_t tokens, int64_t experts, int64_t k, int64_t dim, int32_t *error_record);
/* The token→slot map of a routing, per sample n: offsets [N, T+1] (offsets[n, 0] = 0) and slots [N, E·k], token t's
 * slots s = e·k + j (those with indices[n, e, j] == t) ascending in slots[n, offsets[n, t] .. offsets[n, t+1]). A bad
 * index is left out of the map and reported under `check`, the MDT_CHECK_MOE_* code of the op the map is built for
 * (error_record NULL: not reported, check unused). Combine and the dispatch backward read the map, not the indices. */
MDT_API int mdt_moe_token_slots(mdt_stream_t stream, const int32_t *indices, int32_t *offsets, int32_t *slots, int64_t samples, int64_t tokens, int64_t experts, int64_t k, int check, int32_t *error_record);
/* The routed rows as rows of x [N·T, D]: rows[e·N·k + n·k + j] = n·T + indices[n, e, j] (I32 [E, N·k]), what the
 * gathered GEMMs read; an index outside [0, T) gives -1 (a zero row) and is reported under check as above. */
MDT_API int mdt_moe_routed_rows(mdt_stream_t stream, const int32_t *indices, int32_t *rows, int64_t samples, int64_t tokens, int64_t experts, int64_t k, int check, int32_t *error_record);
MDT_API int mdt_moe_dispatch_bwd(mdt_stream_t stream, const float *d_out, const int32_t *offsets, const int32_t *slots, float *dx, int64_t samples, int64_t tokens, int64_t experts, int64_t k, int64_t dim);
MDT_API int mdt_moe_combine_fwd(mdt_stream_t stream, const float *h, const float *gates, const int32_t *offsets, const int32_t *slots, float *out, int64_t samples, int64_t tokens, int64_t experts, int64_t k, int64_t dim);
MDT_API int mdt_moe_combine_bwd(mdt_stream_t stream, const float *d_out, const float *h, const float *gates, const int32_t *indices, float *d_h, float *d_gates, int64_t samples, int64_t tokens, int64_t experts, int64_t k, int64_t dim, int32_t *error_record);
/* bf16 variants for a bf16 graph (bits as uint16_t): the dispatched rows rounded to nearest even as they are stored
 * (only the experts' bf16 products read them), and combine forward/backward reading bf16 expert outputs h (widened
 * exactly; everything else as above). */
MDT_API int mdt_moe_dispatch_fwd_bf16out(mdt_stream_t stream, const float *x, const int32_t *indices, uint16_t *out, int64_t samples, int64_t tokens, int64_t experts, int64_t k, int64_t dim, int32_t *error_record);
MDT_API int mdt_moe_combine_fwd_bf16in(mdt_stream_t stream, const uint16_t *h, const float *gates, const int32_t *offsets, const int32_t *slots, float *out, int64_t samples, int64_t tokens, int64_t experts, int64_t k, int64_t dim);
MDT_API int mdt_moe_combine_bwd_bf16in(mdt_stream_t stream, const float *d_out, const uint16_t *h, const float *gates, const int32_t *indices, float *d_h, float *d_gates, int64_t samples, int64_t tokens, int64_t experts, int64_t k, int64_t dim, int32_t *error_record);
/* mdt_moe_combine_fwd_bf16in with a bf16 out: the f32 sum rounded once to nearest even at the store. */
MDT_API int mdt_moe_combine_fwd_bf16in_bf16out(mdt_stream_t stream, const uint16_t *h, const float *gates, const int32_t *offsets, const int32_t *slots, uint16_t *out, int64_t samples, int64_t tokens, int64_t experts, int64_t k, int64_t dim);
/* The gradients of a bf16 graph: the dispatch backward's d_out (the routed rows' gradient) and the combine
 * backward's d_h float or bf16 (bf16_grads bit 0), the combine backward's d_out too (bit 1, read widened exactly);
 * dx and d_gates stay float. */
MDT_API int mdt_moe_dispatch_bwd_bf16grad(mdt_stream_t stream, const void *d_out, const int32_t *offsets, const int32_t *slots, float *dx, int64_t samples, int64_t tokens, int64_t experts, int64_t k, int64_t dim, int bf16_grads);
MDT_API int mdt_moe_combine_bwd_bf16grad(mdt_stream_t stream, const void *d_out, const float *h, const float *gates, const int32_t *indices, void *d_h, float *d_gates, int64_t samples, int64_t tokens, int64_t experts, int64_t k, int64_t dim, int bf16_grads, int32_t *error_record);
MDT_API int mdt_moe_combine_bwd_bf16in_bf16grad(mdt_stream_t stream, const void *d_out, const uint16_t *h, const float *gates, const int32_t *indices, void *d_h, float *d_gates, int64_t samples, int64_t tokens, int64_t experts, int64_t k, int64_t dim, int bf16_grads, int32_t *error_record);

/* ------------------------------------------------------------------ attention (kernels/attention.cu) */
/* q and out [N, Tq, H·Dh], k and v [N, Tk, H·Dh], lse [N, H, Tq]; head_dim <= 128, N·H <= 65535. The backward's
 * delta is device scratch of N·H·Tq floats (rowsum(dO∘O)). */
MDT_API int mdt_attention_fwd(mdt_stream_t stream, const float *q, const float *k, const float *v, float *out, float *lse, int64_t samples, int64_t queries, int64_t keys, int64_t heads, int64_t head_dim);
MDT_API int mdt_attention_bwd(mdt_stream_t stream, const float *d_out, const float *q, const float *k, const float *v, const float *out, const float *lse, float *delta, float *dq, float *dk, float *dv, int64_t samples, int64_t queries, int64_t keys, int64_t heads, int64_t head_dim);
/* BF16 q, k, v (bf16 bits as uint16_t) on tensor cores (FlashAttention-2, mma.sync m16n8k16, f32 softmax and
 * accumulation); f32 out and lse, shapes as above. head_dim 32, 64 or 128; k and v 16-byte aligned, q 4-byte. */
MDT_API int mdt_attention_fwd_bf16(mdt_stream_t stream, const uint16_t *q, const uint16_t *k, const uint16_t *v, float *out, float *lse, int64_t samples, int64_t queries, int64_t keys, int64_t heads, int64_t head_dim);
/* Its backward on tensor cores (deterministic, no atomics): dO, out, lse, delta, dq, dk, dv f32; d_out_bf16 is device
 * scratch like d_out (dO rounded to bf16). head_dim 32 or 64; q, k, v and d_out_bf16 16-byte aligned. */
MDT_API int mdt_attention_bwd_bf16(mdt_stream_t stream, const float *d_out, const uint16_t *q, const uint16_t *k, const uint16_t *v, const float *out, const float *lse, float *delta, uint16_t *d_out_bf16, float *dq, float *dk, float *dv, int64_t samples, int64_t queries, int64_t keys, int64_t heads, int64_t head_dim);

/* The same two with a bf16 out (bits as uint16_t): the forward rounds each f32 output once at the store (the bits
 * mdt_attention_fwd_bf16's out converted with mdt_elementwise_f32_to_bf16 has), the backward reads that out (for
 * D = Σ dO·O) as it is. For a bf16 graph, where only bf16 products read the attention output. */
MDT_API int mdt_attention_fwd_bf16_out(mdt_stream_t stream, const uint16_t *q, const uint16_t *k, const uint16_t *v, uint16_t *out, float *lse, int64_t samples, int64_t queries, int64_t keys, int64_t heads, int64_t head_dim);
MDT_API int mdt_attention_bwd_bf16_out(mdt_stream_t stream, const float *d_out, const uint16_t *q, const uint16_t *k, const uint16_t *v, const uint16_t *out, const float *lse, float *delta, uint16_t *d_out_bf16, float *dq, float *dk, float *dv, int64_t samples, int64_t queries, int64_t keys, int64_t heads, int64_t head_dim);

/* The two backwards with d_out (bf16_grads bit 0), dq (bit 1), dk (bit 2) and dv (bit 3) float or bf16. A bf16 d_out
 * is the tensor cores' operand as it is (16-byte aligned; d_out_bf16 is then unused and may be NULL). */
MDT_API int mdt_attention_bwd_bf16_bf16grad(mdt_stream_t stream, const void *d_out, const uint16_t *q, const uint16_t *k, const uint16_t *v, const float *out, const float *lse, float *delta, uint16_t *d_out_bf16, void *dq, void *dk, void *dv, int64_t samples, int64_t queries, int64_t keys, int64_t heads, int64_t head_dim, int bf16_grads);
MDT_API int mdt_attention_bwd_bf16_out_bf16grad(mdt_stream_t stream, const void *d_out, const uint16_t *q, const uint16_t *k, const uint16_t *v, const uint16_t *out, const float *lse, float *delta, uint16_t *d_out_bf16, void *dq, void *dk, void *dv, int64_t samples, int64_t queries, int64_t keys, int64_t heads, int64_t head_dim, int bf16_grads);

/* QK-norm fused into attention: q and k are the raw rows, normalised as their tiles arrive from center and rstd
 * (mdt_norm_layer_norm_statistics), each element rounded to bf16 as the separate QK-norm's bf16 output is, so the
 * results are bit for bit those of mdt_attention_fwd_bf16_out / _bwd_bf16_out_bf16grad on the normalised q and k; dq
 * and dk are the gradients of the normalised q and k. Head dimensions as those entries. Rows of q and dq are q_stride
 * elements apart, of k, v, dk and dv kv_stride (each >= heads·head_dim, a multiple of 8; 0: heads·head_dim): column blocks of one
 * matrix, as self-attention's q|k|v is one product's output [rows, 3·heads·head_dim] (q_stride = kv_stride = 3·width,
 * the gradients written into the column blocks of one q|k|v gradient). */
MDT_API int mdt_attention_fwd_bf16_out_qknorm(mdt_stream_t stream, const uint16_t *q, const uint16_t *k, const uint16_t *v, const float *q_center, const float *q_rstd, const float *k_center, const float *k_rstd, uint16_t *out, float *lse, int64_t samples, int64_t queries, int64_t keys, int64_t heads, int64_t head_dim, int64_t q_stride, int64_t kv_stride);
MDT_API int mdt_attention_bwd_bf16_out_bf16grad_qknorm(mdt_stream_t stream, const void *d_out, const uint16_t *q, const uint16_t *k, const uint16_t *v, const float *q_center, const float *q_rstd, const float *k_center, const float *k_rstd, const uint16_t *out, const float *lse, float *delta, uint16_t *d_out_bf16, void *dq, void *dk, void *dv, int64_t samples, int64_t queries, int64_t keys, int64_t heads, int64_t head_dim, int64_t q_stride, int64_t kv_stride, int bf16_grads);

/* ------------------------------------------------------------------ collectives between ranks (data parallel) */
/* One communicator per process of a multi-process run (one process per device), over a world of `size` ranks. The
 * CUDA library runs the collectives with NCCL, opened at run time (libnccl.so.2 from LD_LIBRARY_PATH, or the file
 * the environment variable MICRODIT_NCCL_LIBRARY names), so the build needs no NCCL; the emulator runs them with
 * MPI between emulator processes, over the MPI world the calling process has initialised (Open MPI's libmpi.so.40,
 * or MICRODIT_MPI_LIBRARY). A library that cannot be opened is MDT_ERROR_COMMUNICATION naming it. Bootstrap: rank 0
 * calls mdt_comm_unique_id, the caller broadcasts its MDT_COMM_UNIQUE_ID_BYTES bytes to every rank (over MPI), then
 * every rank calls mdt_comm_init with them (collective: it returns when every rank has joined) on its device.
 *
 * Every rank calls the same collectives in the same order with the same sizes. A collective runs after the work
 * queued on `stream` before the call, and work queued on `stream` after the call runs after it: both libraries run it
 * on the communicator's own stream between two events; the CUDA library returns at once, the emulator (whose stream
 * waits run the awaited work there and then) once the collective has run. Buffers are device memory of 4-byte
 * elements. Sums are of float32 in rank order, ((x0 + x1) + x2) + ..., the bits one process adding the ranks' values
 * in that order gets: each rank receives its shard of every rank's buffer and adds them itself (never NCCL's or
 * MPI's own sum, whose order depends on the algorithm and the message sizes). starts: size + 1 non-decreasing host
 * offsets from 0 to the element count; rank r's shard is elements [starts[r], starts[r + 1]), possibly empty. */
enum { MDT_COMM_UNIQUE_ID_BYTES = 128 };
typedef struct mdt_comm_s *mdt_comm_t;
MDT_API int mdt_comm_unique_id(void *unique_id);
MDT_API int mdt_comm_init(mdt_comm_t *comm, const void *unique_id, int rank, int size);
/* Frees the communicator after its collectives have finished. */
MDT_API int mdt_comm_destroy(mdt_comm_t comm);
/* data[i] = the rank-order sum of every rank's data[i], i < n. */
MDT_API int mdt_comm_all_reduce_sum(mdt_comm_t comm, mdt_stream_t stream, float *data, int64_t n);
/* shard[i] = the rank-order sum of every rank's data[starts[rank] + i]; with accumulate, onto shard's own values:
 * ((shard[i] + x0) + x1) + .... shard must not overlap data. */
MDT_API int mdt_comm_reduce_scatter_sum(mdt_comm_t comm, mdt_stream_t stream, const float *data, const int64_t *starts, float *shard, int accumulate);
/* data[starts[r] + i] = rank r's shard[i] on every rank (shard may be this rank's own place in data). */
MDT_API int mdt_comm_all_gather(mdt_comm_t comm, mdt_stream_t stream, const float *shard, const int64_t *starts, float *data);
/* mdt_comm_all_gather of bf16 elements (the owners' bf16 working copies of their weights under ZeRO-2). */
MDT_API int mdt_comm_all_gather_bf16(mdt_comm_t comm, mdt_stream_t stream, const uint16_t *shard, const int64_t *starts, uint16_t *data);
/* data = rank root's data, bytes bytes. */
MDT_API int mdt_comm_broadcast(mdt_comm_t comm, mdt_stream_t stream, void *data, int64_t bytes, int root);
/* Deferred join: a collective's issue and the wait for its result, apart, so that it runs on the communicator's
 * stream while `stream` goes on (a bucket of gradients reduced while the backward computes the next). An _deferred
 * entry does what the entry without the suffix does, after the work queued on `stream` before the call, then records
 * `done` (an event of mdt_event_create_untimed) on the communicator's stream after the collective and returns: nothing
 * queued on `stream` afterwards waits for it. Its buffers belong to the collective until the caller joins it: reading
 * them gives unspecified values (on the emulator with deferred streams the old ones: the collective has not run) and
 * writing them corrupts the result. mdt_comm_join(comm, stream, done) makes the work queued on `stream` after it run
 * after the collective that last recorded `done`, without a host wait; mdt_event_synchronize(done) waits on the host.
 * A rank's collectives, deferred or not, run in the order it issued them. On the emulator a pending collective runs
 * (over MPI, on the host) when its process first waits for it: a join, a synchronisation that covers `done`, a later
 * collective without the suffix, mdt_device_synchronize, mdt_free, mdt_comm_destroy; so every rank must join its
 * deferred collectives before it waits on the host for something the other ranks do only after theirs (an MPI call
 * of its own), or the ranks wait for each other forever. A failure found at issue is the _deferred call's status; on
 * the emulator, where the collective runs later, its failure is the join's status (and every later call's). A rank
 * that dies during a collective is ended with the job by mpirun; where the launcher leaves the others running, the
 * emulator's collective that waits for a dead rank on its host fails with MDT_ERROR_COMMUNICATION naming the rank. */
MDT_API int mdt_comm_all_reduce_sum_deferred(mdt_comm_t comm, mdt_stream_t stream, float *data, int64_t n, mdt_event_t done);
MDT_API int mdt_comm_reduce_scatter_sum_deferred(mdt_comm_t comm, mdt_stream_t stream, const float *data, const int64_t *starts, float *shard, int accumulate, mdt_event_t done);
MDT_API int mdt_comm_join(mdt_comm_t comm, mdt_stream_t stream, mdt_event_t done);

#ifdef __cplusplus
}
#endif

#endif
