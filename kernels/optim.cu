// AdamW (decoupled weight decay, gradient pre-scaled by gradScale for global-norm clipping), EMA and the sum of
// squares for the global gradient norm, each for one tensor or for a whole list of tensors in one launch (the
// multi-tensor ops, as PyTorch's foreach/fused optimizers: a model's hundreds of small biases and norms would
// otherwise each pay a launch). AdamW and EMA are one fused elementwise pass each (param, grad, m, v read once and
// written once); the step-dependent scalars (decay, step size, √bias-correction) are computed on the host in double
// exactly as the CPU backend does, and the per-element arithmetic is one function shared by the single and the
// list kernels, so both give the same bits. The list kernels walk the flattened index space of the list (entries
// back to back, microdit.h's mdt_tensor_list_entry) in chunks of kChunk elements per block: the grid depends on
// the total element count, not on the number of tensors.
// Sum of squares: a tensor of n elements is cut into P(n) = min(ceil(n / 256), 256) partials ("units"); unit u
// is the block sum (tree reduction) of the squares, in double, of elements u·256 + t + k·P·256 summed over k by
// thread t; then the P partials are added in index order. P depends on n alone, so the sum has the same bits on
// every run and platform, whatever grid runs the units (on a GPU one block per unit, as before the list ops). The
// list version runs the units of all entries in one launch and adds each entry's partials in a second, one thread
// per entry: each entry's sum has the same bits as the single-tensor op; the host adds them in list order.
// Cost per call with E elements: AdamW 13E FLOPs, 28E bytes (30E with its bf16 working copy); EMA 3E FLOPs, 12E bytes; sum of squares 2E FLOPs,
// 4E bytes (lists: plus 56 bytes per entry, read from cache).
#include <math.h>

#include "common.cuh"

namespace {

constexpr int kThreads = MDT_SUM_OF_SQUARES_THREADS;
constexpr int kPartials = MDT_SUM_OF_SQUARES_MAX_PARTIALS;
/** Elements one block of a list kernel takes per chunk: 8 per thread, so a block does more than index lookups. */
constexpr int64_t kChunk = 8 * kThreads;

/** Step-dependent AdamW scalars, computed in double as the CPU backend does. */
struct AdamwScalars {
    float decay, step_size, correction2_sqrt, first_weight, second_weight;
};

AdamwScalars adamw_scalars(float learning_rate, float beta1, float beta2, float weight_decay, int64_t step) {
    AdamwScalars s;
    s.decay = static_cast<float>(1.0 - static_cast<double>(learning_rate) * weight_decay);
    s.step_size = static_cast<float>(learning_rate / (1.0 - pow(static_cast<double>(beta1), static_cast<double>(step))));
    s.correction2_sqrt = static_cast<float>(sqrt(1.0 - pow(static_cast<double>(beta2), static_cast<double>(step))));
    s.first_weight = static_cast<float>(1.0 - beta1);
    s.second_weight = static_cast<float>(1.0 - beta2);
    return s;
}

/** Updates element i in place and returns the new parameter value. */
__device__ __forceinline__ float adamw_element(float *param, const float *grad, float *m, float *v, int64_t i,
                                               const AdamwScalars &s, float beta2, float epsilon, float grad_scale) {
    float gradient = grad[i] * grad_scale;
    float moment1 = m[i];
    moment1 = moment1 + (gradient - moment1) * s.first_weight;
    float moment2 = v[i] * beta2 + gradient * gradient * s.second_weight;
    float denominator = sqrtf(moment2) / s.correction2_sqrt + epsilon;
    m[i] = moment1;
    v[i] = moment2;
    float updated = param[i] * s.decay - moment1 / denominator * s.step_size;
    param[i] = updated;
    return updated;
}

__device__ __forceinline__ void ema_element(float *ema, const float *param, int64_t i, float decay,
                                            float param_weight) {
    ema[i] = ema[i] * decay + param[i] * param_weight;
}

__global__ void adamw_kernel(float *param, const float *grad, float *m, float *v, int64_t n, AdamwScalars s,
                             float beta2, float epsilon, float grad_scale) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        adamw_element(param, grad, m, v, i, s, beta2, epsilon, grad_scale);
    }
}

__global__ void ema_kernel(float *ema, const float *param, int64_t n, float decay, float param_weight) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        ema_element(ema, param, i, decay, param_weight);
    }
}

/** P(n): the partials (units) of an n-element sum of squares; 0 for an empty tensor (its sum is 0). */
__host__ __device__ inline int64_t square_units(int64_t n) {
    if (n <= 0) return 0;
    int64_t units = (n + kThreads - 1) / kThreads;
    return units < kPartials ? units : kPartials;
}

/** Unit {@code unit} of the sum of squares of x[0, n) (see the file comment); the same on every thread. */
__device__ inline double square_unit(const float *x, int64_t n, int64_t units, int64_t unit, double *scratch) {
    double sum = 0.0;
    for (int64_t i = unit * kThreads + threadIdx.x; i < n; i += units * kThreads) {
        double value = x[i];
        sum += value * value;
    }
    return mdt::block_sum(sum, scratch);
}

__global__ void squares_kernel(const float *x, int64_t n, double *partials) {
    MDT_SHARED(double, scratch, [32]);
    int64_t units = square_units(n);
    for (int64_t u = blockIdx.x; u < units; u += gridDim.x) {
        double sum = square_unit(x, n, units, u, scratch);
        if (threadIdx.x == 0) partials[u] = sum;
    }
}

__global__ void add_partials_kernel(const double *partials, int count, double *result) {
    if (threadIdx.x == 0) {
        double total = 0.0;
        for (int i = 0; i < count; i++) total += partials[i];
        *result = total;
    }
}

// ---------------------------------------------------------------- tensor lists

/** The last entry whose offset field (element_offset or partial_offset) is at most {@code index}. */
template <bool kPartialOffset>
__device__ inline int64_t find_entry(const mdt_tensor_list_entry *entries, int64_t count, int64_t index) {
    int64_t low = 0, high = count - 1;
    while (low < high) {
        int64_t middle = (low + high + 1) / 2;
        int64_t offset = kPartialOffset ? entries[middle].partial_offset : entries[middle].element_offset;
        if (offset <= index) {
            low = middle;
        } else {
            high = middle - 1;
        }
    }
    return low;
}

/**
 * Block 0 checks that the offsets of the list are the running sums the header promises (element offsets, or the
 * partial offsets of a sum of squares), ending at {@code total}; a bad entry is reported (the kernels also never
 * access outside an entry's n elements or the partials, whatever the list holds).
 */
template <bool kPartialOffset>
__device__ inline void check_list(const mdt_tensor_list_entry *entries, int64_t count, int64_t total,
                                  int32_t *error) {
    if (blockIdx.x != 0) return;
    for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
        const mdt_tensor_list_entry &e = entries[i];
        int64_t expected = 0, size = kPartialOffset ? square_units(e.n) : e.n;
        if (i > 0) {
            const mdt_tensor_list_entry &before = entries[i - 1];
            expected = kPartialOffset ? before.partial_offset + square_units(before.n)
                                      : before.element_offset + before.n;
        }
        int64_t offset = kPartialOffset ? e.partial_offset : e.element_offset;
        if (e.n < 0 || offset != expected || (i == count - 1 && offset + size != total)) {
            mdt::report_error(error, MDT_CHECK_OPTIM_LIST, i, count, offset, expected, e.n);
        }
    }
}

/**
 * Calls {@code element(entry, e, i)} for every element i of every entry e, walking the flattened index space in chunks
 * of kChunk: a thread finds the entry of its first element by binary search and then steps forward. The current
 * entry (its pointers and offsets) and the next entry's offset live in registers, reloaded only when the walk
 * crosses into the next tensor, not per element.
 */
template <class Element>
__device__ inline void for_each_list_element(const mdt_tensor_list_entry *entries, int64_t count, int64_t total,
                                             Element element) {
    int64_t chunks = (total + kChunk - 1) / kChunk;
    for (int64_t chunk = blockIdx.x; chunk < chunks; chunk += gridDim.x) {
        int64_t first = chunk * kChunk + threadIdx.x;
        int64_t end = chunk * kChunk + kChunk < total ? chunk * kChunk + kChunk : total;
        if (first >= end) continue;
        int64_t e = find_entry<false>(entries, count, first);
        mdt_tensor_list_entry entry = entries[e];
        int64_t next_offset = e + 1 < count ? entries[e + 1].element_offset : INT64_MAX;
        for (int64_t j = first; j < end; j += blockDim.x) {
            while (next_offset <= j) {
                entry = entries[++e];
                next_offset = e + 1 < count ? entries[e + 1].element_offset : INT64_MAX;
            }
            int64_t local = j - entry.element_offset;
            if (local < 0 || local >= entry.n) continue;  // a malformed list: check_list reports it
            element(entry, e, local);
        }
    }
}

__global__ void adamw_multi_kernel(const mdt_tensor_list_entry *entries, int64_t count, int64_t total,
                                   AdamwScalars s, float beta2, float epsilon, float grad_scale, int32_t *error) {
    check_list<false>(entries, count, total, error);
    for_each_list_element(entries, count, total, [&](const mdt_tensor_list_entry &e, int64_t, int64_t i) {
        adamw_element(reinterpret_cast<float *>(e.pointers[0]), reinterpret_cast<const float *>(e.pointers[1]),
                      reinterpret_cast<float *>(e.pointers[2]), reinterpret_cast<float *>(e.pointers[3]), i, s,
                      beta2, epsilon, grad_scale);
    });
}

/**
 * adamw_multi_kernel that also stores each updated value, rounded as mdt_elementwise_f32_to_bf16 rounds, into its
 * entry's bf16 working copy (copies[e].pointers[0]): the next forward's products read that copy instead of a convert
 * pass over every weight (2 bytes written here instead of 4 read and 2 written there). Block 0 reports a copy whose n
 * differs from its entry's; such an entry gets no copy.
 */
__global__ void adamw_bf16_copy_multi_kernel(const mdt_tensor_list_entry *entries,
                                             const mdt_tensor_list_entry *copies, int64_t count, int64_t total,
                                             AdamwScalars s, float beta2, float epsilon, float grad_scale,
                                             int32_t *error) {
    check_list<false>(entries, count, total, error);
    if (blockIdx.x == 0) {
        for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
            if (copies[i].n != entries[i].n) {
                mdt::report_error(error, MDT_CHECK_OPTIM_LIST, i, count, copies[i].n, entries[i].n, 0);
            }
        }
    }
    for_each_list_element(entries, count, total, [&](const mdt_tensor_list_entry &e, int64_t index, int64_t i) {
        float updated = adamw_element(reinterpret_cast<float *>(e.pointers[0]),
                                      reinterpret_cast<const float *>(e.pointers[1]),
                                      reinterpret_cast<float *>(e.pointers[2]),
                                      reinterpret_cast<float *>(e.pointers[3]), i, s, beta2, epsilon, grad_scale);
        const mdt_tensor_list_entry &copy = copies[index];
        if (copy.n == e.n) mdt::store_out(reinterpret_cast<uint16_t *>(copy.pointers[0]), i, updated);
    });
}

__global__ void ema_multi_kernel(const mdt_tensor_list_entry *entries, int64_t count, int64_t total, float decay,
                                 float param_weight, int32_t *error) {
    check_list<false>(entries, count, total, error);
    for_each_list_element(entries, count, total, [&](const mdt_tensor_list_entry &e, int64_t, int64_t i) {
        ema_element(reinterpret_cast<float *>(e.pointers[0]), reinterpret_cast<const float *>(e.pointers[1]), i,
                    decay, param_weight);
    });
}

/** Unit u of the list: unit u − partial_offset of its entry, into partials[u]. */
__global__ void squares_multi_kernel(const mdt_tensor_list_entry *entries, int64_t count, int64_t total_units,
                                     double *partials) {
    MDT_SHARED(double, scratch, [32]);
    for (int64_t u = blockIdx.x; u < total_units; u += gridDim.x) {
        int64_t e = find_entry<true>(entries, count, u);
        int64_t n = entries[e].n, units = square_units(n), unit = u - entries[e].partial_offset;
        if (unit < 0 || unit >= units) continue;  // a malformed list (block-uniform): check_list reports it
        double sum = square_unit(reinterpret_cast<const float *>(entries[e].pointers[0]), n, units, unit, scratch);
        if (threadIdx.x == 0) partials[u] = sum;
    }
}

/** One thread per entry adds its partials in index order (as add_partials_kernel); a malformed entry gets NaN. */
__global__ void add_partials_multi_kernel(const mdt_tensor_list_entry *entries, int64_t count, int64_t total_units,
                                          const double *partials, double *results, int32_t *error) {
    check_list<true>(entries, count, total_units, error);
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < count; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t first = entries[e].partial_offset, units = square_units(entries[e].n);
        if (first < 0 || first + units > total_units) {
            results[e] = NAN;
            continue;
        }
        double total = 0.0;
        for (int64_t i = 0; i < units; i++) total += partials[first + i];
        results[e] = total;
    }
}

}  // namespace

extern "C" {

int mdt_optim_adamw(mdt_stream_t stream, float *param, const float *grad, float *m, float *v, int64_t n,
                    float learning_rate, float beta1, float beta2, float epsilon, float weight_decay, int64_t step,
                    float grad_scale) {
    MDT_REQUIRE(n >= 0, "mdt_optim_adamw: n must be non-negative, got %lld", (long long)n);
    MDT_REQUIRE(step >= 1, "mdt_optim_adamw: step counts from 1, got %lld", (long long)step);
    MDT_REQUIRE(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, "mdt_optim_adamw: betas must lie in [0, 1)");
    MDT_REQUIRE(epsilon > 0, "mdt_optim_adamw: epsilon must be positive");
    if (n == 0) return MDT_SUCCESS;
    MDT_REQUIRE(param && grad && m && v, "mdt_optim_adamw: NULL tensor pointer");
    AdamwScalars s = adamw_scalars(learning_rate, beta1, beta2, weight_decay, step);
    return MDT_LAUNCH(adamw_kernel, mdt::blocks_for(n, kThreads), kThreads, 0, stream, param, grad, m, v, n, s, beta2,
                      epsilon, grad_scale);
}

int mdt_optim_ema(mdt_stream_t stream, float *ema, const float *param, int64_t n, float decay) {
    MDT_REQUIRE(n >= 0, "mdt_optim_ema: n must be non-negative, got %lld", (long long)n);
    MDT_REQUIRE(decay >= 0 && decay <= 1, "mdt_optim_ema: decay must lie in [0, 1], got %g", decay);
    if (n == 0) return MDT_SUCCESS;
    MDT_REQUIRE(ema && param, "mdt_optim_ema: NULL tensor pointer");
    float param_weight = static_cast<float>(1.0 - decay);
    return MDT_LAUNCH(ema_kernel, mdt::blocks_for(n, kThreads), kThreads, 0, stream, ema, param, n, decay, param_weight);
}

int mdt_optim_sum_of_squares(mdt_stream_t stream, const float *x, int64_t n, double *partials,
                             int64_t partial_capacity, double *result) {
    MDT_REQUIRE(n >= 0, "mdt_optim_sum_of_squares: n must be non-negative, got %lld", (long long)n);
    MDT_REQUIRE(partial_capacity >= kPartials, "mdt_optim_sum_of_squares: partials must hold %d doubles, got %lld",
                kPartials, (long long)partial_capacity);
    MDT_REQUIRE(partials && result && (x || n == 0), "mdt_optim_sum_of_squares: NULL pointer");
    // One block per unit, at most the platform's grid cap (the emulator's blocks then take several units each):
    // the units depend on n alone, so the sum order is fixed.
    int64_t units = square_units(n);
    if (units > 0) {
        int64_t blocks = units < mdt::max_grid_blocks() ? units : mdt::max_grid_blocks();
        int status = MDT_LAUNCH(squares_kernel, static_cast<unsigned>(blocks), kThreads, 0, stream, x, n, partials);
        if (status != MDT_SUCCESS) return status;
    }
    return MDT_LAUNCH(add_partials_kernel, 1, 32, 0, stream, partials, static_cast<int>(units), result);
}

int mdt_optim_adamw_multi(mdt_stream_t stream, const mdt_tensor_list_entry *entries, int64_t count, int64_t total,
                          float learning_rate, float beta1, float beta2, float epsilon, float weight_decay,
                          int64_t step, float grad_scale, int32_t *error_record) {
    MDT_REQUIRE(count >= 0 && total >= 0, "mdt_optim_adamw_multi: count and total must be non-negative, got %lld and %lld",
                (long long)count, (long long)total);
    MDT_REQUIRE(step >= 1, "mdt_optim_adamw_multi: step counts from 1, got %lld", (long long)step);
    MDT_REQUIRE(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, "mdt_optim_adamw_multi: betas must lie in [0, 1)");
    MDT_REQUIRE(epsilon > 0, "mdt_optim_adamw_multi: epsilon must be positive");
    MDT_REQUIRE(count > 0 || total == 0, "mdt_optim_adamw_multi: an empty list has no elements, got total %lld",
                (long long)total);
    if (count == 0) return MDT_SUCCESS;
    MDT_REQUIRE(entries, "mdt_optim_adamw_multi: entries is NULL");
    AdamwScalars s = adamw_scalars(learning_rate, beta1, beta2, weight_decay, step);
    return MDT_LAUNCH(adamw_multi_kernel, mdt::blocks_for(total, static_cast<int>(kChunk)), kThreads, 0, stream,
                      entries, count, total, s, beta2, epsilon, grad_scale, error_record);
}

int mdt_optim_adamw_bf16_copy_multi(mdt_stream_t stream, const mdt_tensor_list_entry *entries,
                                    const mdt_tensor_list_entry *copies, int64_t count, int64_t total,
                                    float learning_rate, float beta1, float beta2, float epsilon, float weight_decay,
                                    int64_t step, float grad_scale, int32_t *error_record) {
    MDT_REQUIRE(count >= 0 && total >= 0,
                "mdt_optim_adamw_bf16_copy_multi: count and total must be non-negative, got %lld and %lld",
                (long long)count, (long long)total);
    MDT_REQUIRE(step >= 1, "mdt_optim_adamw_bf16_copy_multi: step counts from 1, got %lld", (long long)step);
    MDT_REQUIRE(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1,
                "mdt_optim_adamw_bf16_copy_multi: betas must lie in [0, 1)");
    MDT_REQUIRE(epsilon > 0, "mdt_optim_adamw_bf16_copy_multi: epsilon must be positive");
    MDT_REQUIRE(count > 0 || total == 0,
                "mdt_optim_adamw_bf16_copy_multi: an empty list has no elements, got total %lld", (long long)total);
    if (count == 0) return MDT_SUCCESS;
    MDT_REQUIRE(entries && copies, "mdt_optim_adamw_bf16_copy_multi: entries or copies is NULL");
    AdamwScalars s = adamw_scalars(learning_rate, beta1, beta2, weight_decay, step);
    return MDT_LAUNCH(adamw_bf16_copy_multi_kernel, mdt::blocks_for(total, static_cast<int>(kChunk)), kThreads, 0,
                      stream, entries, copies, count, total, s, beta2, epsilon, grad_scale, error_record);
}

int mdt_optim_ema_multi(mdt_stream_t stream, const mdt_tensor_list_entry *entries, int64_t count, int64_t total,
                        float decay, int32_t *error_record) {
    MDT_REQUIRE(count >= 0 && total >= 0, "mdt_optim_ema_multi: count and total must be non-negative, got %lld and %lld",
                (long long)count, (long long)total);
    MDT_REQUIRE(decay >= 0 && decay <= 1, "mdt_optim_ema_multi: decay must lie in [0, 1], got %g", decay);
    MDT_REQUIRE(count > 0 || total == 0, "mdt_optim_ema_multi: an empty list has no elements, got total %lld",
                (long long)total);
    if (count == 0) return MDT_SUCCESS;
    MDT_REQUIRE(entries, "mdt_optim_ema_multi: entries is NULL");
    float param_weight = static_cast<float>(1.0 - decay);
    return MDT_LAUNCH(ema_multi_kernel, mdt::blocks_for(total, static_cast<int>(kChunk)), kThreads, 0, stream,
                      entries, count, total, decay, param_weight, error_record);
}

int mdt_optim_sum_of_squares_multi(mdt_stream_t stream, const mdt_tensor_list_entry *entries, int64_t count,
                                   int64_t total_partials, double *partials, int64_t partial_capacity,
                                   double *results, int32_t *error_record) {
    MDT_REQUIRE(count >= 0 && total_partials >= 0,
                "mdt_optim_sum_of_squares_multi: count and total_partials must be non-negative, got %lld and %lld",
                (long long)count, (long long)total_partials);
    MDT_REQUIRE((total_partials + kPartials - 1) / kPartials <= count,
                "mdt_optim_sum_of_squares_multi: %lld entries have at most %lld partials, got %lld", (long long)count,
                (long long)(count * kPartials), (long long)total_partials);
    MDT_REQUIRE(partial_capacity >= total_partials,
                "mdt_optim_sum_of_squares_multi: partials must hold %lld doubles, got %lld",
                (long long)total_partials, (long long)partial_capacity);
    if (count == 0) return MDT_SUCCESS;
    MDT_REQUIRE(entries && results && (partials || total_partials == 0),
                "mdt_optim_sum_of_squares_multi: NULL pointer");
    if (total_partials > 0) {
        int64_t blocks = total_partials < mdt::max_grid_blocks() ? total_partials : mdt::max_grid_blocks();
        int status = MDT_LAUNCH(squares_multi_kernel, static_cast<unsigned>(blocks), kThreads, 0, stream, entries,
                                count, total_partials, partials);
        if (status != MDT_SUCCESS) return status;
    }
    return MDT_LAUNCH(add_partials_multi_kernel, mdt::blocks_for(count, kThreads), kThreads, 0, stream, entries, count,
                      total_partials, partials, results, error_record);
}

}  // extern "C"
