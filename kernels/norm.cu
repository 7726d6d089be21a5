// LayerNorm without bias, weight-only (weight [D]) or non-affine (weight NULL, as QK-norm), forward and backward,
// alone or fused with the adaLN modulation that follows it in every DiT block (out = LN(x)·(1 + scale) + shift,
// x [N, T, D], shift and scale [N, D]).
// Forward: one block of 128 threads per row. The mean comes in two steps as on the CPU backend: a rough mean
// m0, then the sum of (x - m0) and of its squares (float per thread, combined in double), so x - m0 stays exact
// and the variance keeps full precision when |mean| >> std. Saves mean and rstd per row. The fused form modulates
// in the output pass (one FMA), so the normalised rows are never written. The _bf16out forms store the result
// rounded to bf16 (nearest even, as convert rounds) for an output that only bf16 matrix products read (a linear
// layer, attention after QK-norm), so no f32 copy is written, kept and converted; the backwards read x, mean and
// rstd, never the output. The _bf16in forwards and backward read a bf16 x (q and k of QK-norm, written bf16 by their
// linear layer) through mdt::load_as_float: exactly the results for x's f32 upcast, 2 bytes per element less.
// The _bf16grad backwards take dOut (and LayerNorm's dx) as f32 or bf16 (mdt::GradIn/GradOut): in a bf16 graph the
// gradient of a bf16 value is bf16; dWeight, dShift and dScale stay f32 (they accumulate over rows).
// mdt_norm_layer_norm_statistics is the forward without its output (or with it, optionally) that also saves each
// row's two offsets (m0 and the correction) for attention's fused QK-norm (attention.cu, the _qknorm entries): the
// normalised q and k are then never written, 2 bytes per element instead of 4.
// Backward: one block per row computes dy = dOut·w and x̂ = (x - mean)·rstd, reduces Σdy and Σdy·x̂, and writes
// dx = (dy - mean(dy) - x̂·mean(dy·x̂))·rstd; the weight gradient Σ_rows dOut·x̂ is the two-pass column sum of
// column_sum.cuh (row chunks × column tiles writing partials to the caller's workspace, then a fixed-order
// add; deterministic, no atomics), added into dWeight.
// Fused backward: the row kernel takes dOut' = dOut·(1 + scale) (as fmaf(dOut, scale, dOut)); a second kernel, one
// thread per (sample, column) walking the tokens in order, writes dShift = Σ_t dOut and S = Σ_t dOut·x̂ (x̂
// recomputed from the saved mean and rstd) into dScale (samples·width threads, coalesced across columns: enough
// for a GPU at training batch sizes); with a weight a third, the column sum over samples, adds Σ_n (1 + scale)·S
// into dWeight and scales dScale = w·S in place. No atomics anywhere.
// Cost per call with E = rows·D elements: forward 8E FLOPs, 12E bytes (x read twice from cache, out written);
// backward 14E FLOPs (+3E with dWeight), 12E bytes (+8E for dWeight's pass). Fused forward 11E FLOPs, 12E bytes
// (10E with a bf16 output; the separate ops move 20E); fused backward 15E FLOPs, 20E bytes (the separate ops move
// 24E, +8E with dWeight), plus O(N·D) for the per-sample rows.
// Residual + gate + LayerNorm (+ modulate), the seam between two sublayers of a DiT block: x' = x + gate·f (gate
// NULL: x + f) is written (the next residual needs it) and normalised in the same row pass, so x' is not read back
// from memory by a separate LayerNorm. The arithmetic is that of the gated residual (or add) kernel followed by the
// LayerNorm kernel, in the same order, so the fused op gives their bits. Its backward folds three passes into the
// LayerNorm's: the row kernel adds the incoming gradient of x' (d_residual, may be NULL, may be dx itself) to the
// LayerNorm's dx as it stores it (the separate ops stored dx and added it by an axpy), and one thread per
// (sample, column) walking the tokens writes dF = gate·dx' and dGate = Σ_t dx'·f next to dShift and dScale (the
// separate ops copied dx' for x and read it again for the gate). Bytes with bf16 f, out and dOut: forward 16E
// (the separate ops 20E), backward 28E + the weight's pass (the separate ops 52E). The _bf16copy forward also
// stores the f32 output rounded to bf16 for an output both an f32 reader and bf16 products read (the MoE's input:
// the router keeps f32, the experts' products take bf16): 2E more, where a separate convert moved 6E.
// Gathered LayerNorm (the deferred mask's kept rows into patch_mixer_map_xout's norm): the LayerNorm and its backward
// with x's row looked up in ids [N, K] (row n·K + r reads x's row n·T + ids[n, r]), the same kernels with an index
// pointer that is NULL for the plain LayerNorm, so the per-row arithmetic and the bits are those of the gather
// followed by the LayerNorm. The forward never writes the gathered rows (8E bytes less, E = N·K·D, than gather +
// LayerNorm); the backward stores each kept row's dx straight into x's full-size gradient (added to it when
// accumulating; else the gradient is zeroed first by a memset, as the scatter's was), so the kept-row gradient and
// the scatter's copy of it are gone (8E bytes less). An id outside [0, T) is reported into the error record and its
// row skipped (outputs unspecified), as the token kernels do.
#include "column_sum.cuh"
#include "common.cuh"
#include "grad_operand.cuh"

namespace {

constexpr int kThreads = 128;
// The index and error-record arguments of the kernels' ungathered forms.
constexpr const int32_t *kNoIds = nullptr;
constexpr int32_t *kNoErrorRecord = nullptr;

// A row's statistics from each thread's sums around the rough mean m0 (shifted = Σ(v − m0), squares = Σ(v − m0)²):
// block totals in double, m0's correction (their mean) and rstd = 1/sqrt(var + eps), the same in every thread.
struct RowStatistics {
    double correction;
    float rstd;
};
__device__ RowStatistics shifted_row_statistics(float shifted, float squares, int64_t width, float eps,
                                                double *scratch) {
    double shifted_total = mdt::block_sum(static_cast<double>(shifted), scratch);
    double squares_total = mdt::block_sum(static_cast<double>(squares), scratch);
    double correction = shifted_total / width;
    double variance = squares_total / width - correction * correction;
    if (variance < 0) variance = 0;
    return {correction, static_cast<float>(1.0 / sqrt(variance + eps))};
}

// shift NULL: plain LayerNorm; else modulated by sample (tokens rows per sample). In and Out: float, or uint16_t for
// bf16 bits (f32 maths, one rounding at the store).
// out NULL: the statistics alone. center (may be NULL) gets each row's rough mean m0 and its correction, the two
// offsets the output subtracts one after the other, so a consumer can normalise x itself to the same bits.
// x's rows are x_stride elements apart (a column block of a wider matrix: q or k inside self-attention's q|k|v).
// ids (NULL: x's row is the row itself) I32 [N, tokens]: row n·tokens + r normalises x's row n·x_tokens + ids[row]
// (no modulation then); an id outside [0, x_tokens) is reported into error and the row skipped.
// Bounded to 32 registers (16 blocks per SM), the full occupancy it had before the index: the index lookup added two.
template <class In, class Out>
__global__ void __launch_bounds__(kThreads, 16) layer_norm_kernel(const In *x, const float *weight, const float *shift, const float *scale,
                                  float eps, Out *out, float *mean, float *rstd, float *center, int64_t tokens,
                                  int64_t width, int64_t x_stride, const int32_t *ids, int64_t x_tokens,
                                  int32_t *error) {
    MDT_SHARED(float, float_scratch, [32]);
    MDT_SHARED(double, double_scratch, [32]);
    int64_t row = blockIdx.x;
    int64_t x_row = row;
    if (ids) {
        // 32-bit division (the grid's rows fit): a 64-bit one costs the plain LayerNorm registers too.
        int64_t sample = static_cast<uint32_t>(row) / static_cast<uint32_t>(tokens);
        int32_t id = ids[row];
        if (id < 0 || id >= x_tokens) {  // the whole block leaves
            if (threadIdx.x == 0) {
                mdt::report_error(error, MDT_CHECK_NORM_GATHER_FWD_RANGE, id, x_tokens, sample, row - sample * tokens,
                                  0);
            }
            return;
        }
        x_row = sample * x_tokens + id;
    }
    const In *xr = x + x_row * x_stride;
    float sum = 0.0f;
    for (int64_t c = threadIdx.x; c < width; c += blockDim.x) sum += mdt::load_as_float(xr, c);
    float m0 = mdt::block_sum(sum, float_scratch) / static_cast<float>(width);
    float shifted = 0.0f, squares = 0.0f;
    for (int64_t c = threadIdx.x; c < width; c += blockDim.x) {
        float d = mdt::load_as_float(xr, c) - m0;
        shifted += d;
        squares = fmaf(d, d, squares);
    }
    RowStatistics statistics = shifted_row_statistics(shifted, squares, width, eps, double_scratch);
    double correction = statistics.correction;
    float row_rstd = statistics.rstd;
    float correction_f = static_cast<float>(correction);
    if (threadIdx.x == 0) {
        mean[row] = static_cast<float>(m0 + correction);
        rstd[row] = row_rstd;
        if (center) {
            center[2 * row] = m0;
            center[2 * row + 1] = correction_f;
        }
    }
    if (!out) return;
    Out *outr = out + row * width;
    const float *shift_row = shift ? shift + row / tokens * width : nullptr;
    const float *scale_row = shift ? scale + row / tokens * width : nullptr;
    for (int64_t c = threadIdx.x; c < width; c += blockDim.x) {
        float y = (mdt::load_as_float(xr, c) - m0 - correction_f) * row_rstd;
        if (weight) y *= weight[c];
        mdt::store_out(outr, c, shift_row ? fmaf(y, 1.0f + scale_row[c], shift_row[c]) : y);
    }
}

// scale NULL: plain LayerNorm; else the LayerNorm's output gradient is dOut·(1 + scale) of the row's sample.
// d_residual (may be NULL, may be dx itself: each element is read before the same thread stores it) is a gradient
// of x from elsewhere, added as the value is stored. The rows of d_out, x, d_residual and dx are stride elements
// apart; dx may be d_out itself for the same reason (the QK-norms' in-place backward inside q|k|v's gradient).
// ids (NULL: none; then scale is NULL): as layer_norm_kernel's, x, d_residual and dx at x's row, d_out at the row.
template <class In>
__global__ void layer_norm_backward_kernel(mdt::GradIn d_out, const In *x, const float *weight, const float *scale,
                                           const float *mean, const float *rstd, const float *d_residual,
                                           mdt::GradOut dx, int64_t tokens, int64_t width, int64_t stride,
                                           const int32_t *ids, int64_t x_tokens, int32_t *error) {
    MDT_SHARED(float, scratch, [32]);
    int64_t row = blockIdx.x;
    int64_t base = row * stride, x_base = base;
    if (ids) {
        int64_t sample = static_cast<uint32_t>(row) / static_cast<uint32_t>(tokens);
        int32_t id = ids[row];
        if (id < 0 || id >= x_tokens) {  // the whole block leaves
            if (threadIdx.x == 0) {
                mdt::report_error(error, MDT_CHECK_NORM_GATHER_BWD_RANGE, id, x_tokens, sample, row - sample * tokens,
                                  0);
            }
            return;
        }
        x_base = (sample * x_tokens + id) * stride;
    }
    const In *xr = x + x_base;
    const float *scale_row = scale ? scale + row / tokens * width : nullptr;
    float m = mean[row], r = rstd[row];
    float sum_dy = 0.0f, sum_dy_xhat = 0.0f;
    for (int64_t c = threadIdx.x; c < width; c += blockDim.x) {
        float gv = d_out[base + c];
        float gc = scale_row ? fmaf(gv, scale_row[c], gv) : gv;
        float dy = weight ? gc * weight[c] : gc;
        float xhat = (mdt::load_as_float(xr, c) - m) * r;
        sum_dy += dy;
        sum_dy_xhat = fmaf(dy, xhat, sum_dy_xhat);
    }
    float mean_dy = mdt::block_sum(sum_dy, scratch) / static_cast<float>(width);
    float mean_dy_xhat = mdt::block_sum(sum_dy_xhat, scratch) / static_cast<float>(width);
    for (int64_t c = threadIdx.x; c < width; c += blockDim.x) {
        float gv = d_out[base + c];
        float gc = scale_row ? fmaf(gv, scale_row[c], gv) : gv;
        float dy = weight ? gc * weight[c] : gc;
        float xhat = (mdt::load_as_float(xr, c) - m) * r;
        float value = fmaf(xhat, -mean_dy_xhat, dy - mean_dy) * r;
        dx.store(x_base + c, d_residual ? d_residual[x_base + c] + value : value);
    }
}

// Σ_rows dOut·x̂ (x̂ recomputed from the saved mean and rstd).
template <class In>
struct WeightGradientTerm {
    mdt::GradIn d_out;
    const In *x;
    const float *mean, *rstd;
    int64_t width;
    __device__ float operator()(float sum, int64_t row, int64_t column) const {
        int64_t i = row * width + column;
        return fmaf(d_out[i], (mdt::load_as_float(x, i) - mean[row]) * rstd[row], sum);
    }
};

// WeightGradientTerm of the gathered LayerNorm: x's row looked up as layer_norm_kernel does (kept rows per sample),
// the same terms in the same order. A term of its own, so the plain one's column sum keeps its registers; a row with
// a bad id, reported by the row kernel, adds nothing.
struct GatheredWeightGradientTerm {
    mdt::GradIn d_out;
    const float *x;
    const float *mean, *rstd;
    int64_t width;
    const int32_t *ids;
    int64_t kept, x_tokens;
    __device__ float operator()(float sum, int64_t row, int64_t column) const {
        int32_t id = ids[row];
        if (id < 0 || id >= x_tokens) return sum;
        int64_t sample = static_cast<uint32_t>(row) / static_cast<uint32_t>(kept);
        return fmaf(d_out[row * width + column],
                    (x[(sample * x_tokens + id) * width + column] - mean[row]) * rstd[row], sum);
    }
};

// dShift[n, c] = Σ_t dOut and dScale[n, c] = Σ_t dOut·x̂ (before the weight), tokens in order.
__global__ void modulate_sums_kernel(mdt::GradIn d_out, const float *x, const float *mean, const float *rstd,
                                     float *d_shift, float *d_scale, int64_t samples, int64_t tokens, int64_t width) {
    int64_t count = samples * width;
    for (int64_t p = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; p < count; p += (int64_t)gridDim.x * blockDim.x) {
        int64_t sample = p / width, column = p % width;
        float shift_sum = 0.0f, scale_sum = 0.0f;
        for (int64_t t = 0; t < tokens; t++) {
            int64_t row = sample * tokens + t, i = row * width + column;
            float g = d_out[i];
            shift_sum += g;
            scale_sum = fmaf(g, (x[i] - mean[row]) * rstd[row], scale_sum);
        }
        d_shift[p] = shift_sum;
        d_scale[p] = scale_sum;
    }
}

// With S = Σ_t dOut·x̂ in d_scale, rows = samples: the term (1 + scale)·S of dWeight, and d_scale = w·S.
struct ModulateWeightTerm {
    const float *weight, *scale;
    float *d_scale;
    int64_t width;
    __device__ float operator()(float sum, int64_t sample, int64_t column) const {
        int64_t i = sample * width + column;
        float s = d_scale[i];
        d_scale[i] = s * weight[column];
        return fmaf(1.0f + scale[i], s, sum);
    }
};

// x' = x + gate·f (gate NULL: x + f), stored in residual, then layer_norm_kernel's statistics and output on x'
// (shift NULL: not modulated). f and out are f32 or bf16 by the flags of their operand structs. copy (may be NULL)
// gets the output rounded to bf16 as well, as convert rounds it: the bf16 operand of products reading an f32 output.
__global__ void residual_layer_norm_kernel(const float *x, const float *gate, mdt::GradIn f, const float *weight,
                                           const float *shift, const float *scale, float eps, float *residual,
                                           mdt::GradOut out, uint16_t *copy, float *mean, float *rstd,
                                           int64_t tokens, int64_t width) {
    MDT_SHARED(float, float_scratch, [32]);
    MDT_SHARED(double, double_scratch, [32]);
    int64_t row = blockIdx.x, base = row * width;
    const float *gate_row = gate ? gate + row / tokens * width : nullptr;
    float *rr = residual + base;
    float sum = 0.0f;
    for (int64_t c = threadIdx.x; c < width; c += blockDim.x) {
        float v = gate_row ? fmaf(f[base + c], gate_row[c], x[base + c]) : x[base + c] + f[base + c];
        rr[c] = v;
        sum += v;
    }
    // Each thread reads back only the elements it stored: no barrier needed between the passes.
    float m0 = mdt::block_sum(sum, float_scratch) / static_cast<float>(width);
    float shifted = 0.0f, squares = 0.0f;
    for (int64_t c = threadIdx.x; c < width; c += blockDim.x) {
        float d = rr[c] - m0;
        shifted += d;
        squares = fmaf(d, d, squares);
    }
    RowStatistics statistics = shifted_row_statistics(shifted, squares, width, eps, double_scratch);
    double correction = statistics.correction;
    float row_rstd = statistics.rstd;
    float correction_f = static_cast<float>(correction);
    if (threadIdx.x == 0) {
        mean[row] = static_cast<float>(m0 + correction);
        rstd[row] = row_rstd;
    }
    const float *shift_row = shift ? shift + row / tokens * width : nullptr;
    const float *scale_row = shift ? scale + row / tokens * width : nullptr;
    for (int64_t c = threadIdx.x; c < width; c += blockDim.x) {
        float y = (rr[c] - m0 - correction_f) * row_rstd;
        if (weight) y *= weight[c];
        float value = shift_row ? fmaf(y, 1.0f + scale_row[c], shift_row[c]) : y;
        out.store(base + c, value);
        if (copy) mdt::store_out(copy, base + c, value);
    }
}

// Per (sample, column), tokens in order, from dx' (the residual's whole gradient): dF = gate·dx' (gate NULL: dx'),
// dGate = Σ_t dx'·f; with d_shift, modulate_sums_kernel's dShift = Σ_t dOut and S = Σ_t dOut·x̂ into d_scale.
__global__ void residual_sums_kernel(mdt::GradIn d_out, const float *residual, const float *mean, const float *rstd,
                                     const float *dx, const float *gate, mdt::GradIn f, mdt::GradOut d_f,
                                     float *d_gate, float *d_shift, float *d_scale, int64_t samples, int64_t tokens,
                                     int64_t width) {
    int64_t count = samples * width;
    for (int64_t p = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; p < count; p += (int64_t)gridDim.x * blockDim.x) {
        int64_t sample = p / width, column = p % width;
        float gate_value = gate ? gate[p] : 1.0f;
        float gate_sum = 0.0f, shift_sum = 0.0f, scale_sum = 0.0f;
        for (int64_t t = 0; t < tokens; t++) {
            int64_t row = sample * tokens + t, i = row * width + column;
            float g = dx[i];
            if (gate) {
                d_f.store(i, g * gate_value);
                gate_sum = fmaf(g, f[i], gate_sum);
            } else {
                d_f.store(i, g);
            }
            if (d_shift) {
                float o = d_out[i];
                shift_sum += o;
                scale_sum = fmaf(o, (residual[i] - mean[row]) * rstd[row], scale_sum);
            }
        }
        if (gate) d_gate[p] = gate_sum;
        if (d_shift) {
            d_shift[p] = shift_sum;
            d_scale[p] = scale_sum;
        }
    }
}

template <class In, class Out>
int layer_norm_forward(const char *op, mdt_stream_t stream, const In *x, const float *weight, float eps, Out *out,
                       float *mean, float *rstd, int64_t rows, int64_t width) {
    MDT_REQUIRE(rows >= 0 && width > 0, "%s: need rows >= 0 and width > 0, got %lld and %lld", op, (long long)rows,
                (long long)width);
    MDT_REQUIRE(eps >= 0.0f && eps < __builtin_inff(), "%s: eps must be finite and >= 0", op);
    MDT_REQUIRE(rows <= 2147483647, "%s: %lld rows exceed the grid", op, (long long)rows);
    if (rows == 0) return MDT_SUCCESS;
    MDT_REQUIRE(x && out && mean && rstd, "%s: NULL tensor pointer", op);
    // Through a pointer named after the kernel: the launch macro's argument cannot hold the template's comma.
    auto *layer_norm = &layer_norm_kernel<In, Out>;
    return MDT_LAUNCH(layer_norm, static_cast<unsigned>(rows), kThreads, 0, stream, x, weight, nullptr, nullptr, eps,
                      out, mean, rstd, static_cast<float *>(nullptr), int64_t{1}, width, width, kNoIds, int64_t{1},
                      kNoErrorRecord);
}

// Non-affine LayerNorm statistics (mean, rstd and center [rows, 2]) with the output optional (NULL: not written);
// x's rows x_stride elements apart.
template <class In, class Out>
int layer_norm_statistics(const char *op, mdt_stream_t stream, const In *x, float eps, Out *out, float *mean,
                          float *rstd, float *center, int64_t rows, int64_t width, int64_t x_stride) {
    MDT_REQUIRE(rows >= 0 && width > 0, "%s: need rows >= 0 and width > 0, got %lld and %lld", op, (long long)rows,
                (long long)width);
    MDT_REQUIRE(x_stride >= width, "%s: x's row stride %lld is below its width %lld", op, (long long)x_stride,
                (long long)width);
    MDT_REQUIRE(eps >= 0.0f && eps < __builtin_inff(), "%s: eps must be finite and >= 0", op);
    MDT_REQUIRE(rows <= 2147483647, "%s: %lld rows exceed the grid", op, (long long)rows);
    if (rows == 0) return MDT_SUCCESS;
    MDT_REQUIRE(x && mean && rstd && center, "%s: NULL tensor pointer", op);
    auto *layer_norm = &layer_norm_kernel<In, Out>;
    return MDT_LAUNCH(layer_norm, static_cast<unsigned>(rows), kThreads, 0, stream, x, static_cast<const float *>(nullptr),
                      static_cast<const float *>(nullptr), static_cast<const float *>(nullptr), eps, out, mean, rstd,
                      center, int64_t{1}, width, x_stride, kNoIds, int64_t{1}, kNoErrorRecord);
}

template <class Out>
int layer_norm_modulate_forward(const char *op, mdt_stream_t stream, const float *x, const float *weight,
                                const float *shift, const float *scale, float eps, Out *out, float *mean, float *rstd,
                                int64_t samples, int64_t tokens, int64_t width) {
    MDT_REQUIRE(samples >= 0 && tokens >= 0 && width > 0,
                "%s: need samples, tokens >= 0 and width > 0, got %lld, %lld, %lld", op, (long long)samples,
                (long long)tokens, (long long)width);
    MDT_REQUIRE(eps >= 0.0f && eps < __builtin_inff(), "%s: eps must be finite and >= 0", op);
    int64_t rows = samples * tokens;
    MDT_REQUIRE(rows <= 2147483647, "%s: %lld rows exceed the grid", op, (long long)rows);
    if (rows == 0) return MDT_SUCCESS;
    MDT_REQUIRE(x && shift && scale && out && mean && rstd, "%s: NULL tensor pointer", op);
    auto *layer_norm = &layer_norm_kernel<float, Out>;
    return MDT_LAUNCH(layer_norm, static_cast<unsigned>(rows), kThreads, 0, stream, x, weight, shift, scale, eps, out,
                      mean, rstd, static_cast<float *>(nullptr), tokens, width, width, kNoIds, int64_t{1},
                      kNoErrorRecord);
}

// bf16_grads: bit 0 dOut, bit 1 dx (the _bf16grad entries; 0 for the others). accumulate: dx (f32) holds x's
// gradient so far, and the LayerNorm's dx is added to it as it is stored (the _accumulate entries).
template <class In>
int layer_norm_backward(const char *op, mdt_stream_t stream, const void *d_out, const In *x, const float *weight,
                        const float *mean, const float *rstd, void *dx, float *d_weight, int64_t rows, int64_t width,
                        float *workspace, int64_t workspace_capacity, int bf16_grads, bool accumulate = false) {
    MDT_REQUIRE(rows >= 0 && width > 0, "%s: need rows >= 0 and width > 0, got %lld and %lld", op, (long long)rows,
                (long long)width);
    MDT_REQUIRE(mdt::valid_grads(bf16_grads, 2), "%s: bf16_grads %d names operands past dOut and dx", op, bf16_grads);
    MDT_REQUIRE(weight || !d_weight, "%s: d_weight given for a LayerNorm without weight", op);
    MDT_REQUIRE(rows <= 2147483647, "%s: %lld rows exceed the grid", op, (long long)rows);
    if (rows == 0) return MDT_SUCCESS;
    MDT_REQUIRE(d_out && x && mean && rstd && dx, "%s: NULL tensor pointer", op);
    if (d_weight) {
        if (int s = mdt::column_sum::require_workspace(op, rows, width, workspace, workspace_capacity)) return s;
    }
    mdt::GradIn g = mdt::grad_in(d_out, bf16_grads, 0);
    int status = MDT_LAUNCH(layer_norm_backward_kernel<In>, static_cast<unsigned>(rows), kThreads, 0, stream, g, x,
                            weight, nullptr, mean, rstd, accumulate ? static_cast<const float *>(dx) : nullptr,
                            mdt::grad_out(dx, bf16_grads, 1), int64_t{1}, width, width, kNoIds, int64_t{1},
                            kNoErrorRecord);
    if (status != MDT_SUCCESS || !d_weight) return status;
    return mdt::column_sum::run(op, stream, WeightGradientTerm<In>{g, x, mean, rstd, width}, rows, width, d_weight, 1,
                                workspace, workspace_capacity);
}

// bf16_grads: bit 0 dOut (the _bf16grad entry; 0 for the plain one). accumulate: as for layer_norm_backward.
int layer_norm_modulate_backward(const char *op, mdt_stream_t stream, const void *d_out, const float *x,
                                 const float *weight, const float *scale, const float *mean, const float *rstd,
                                 float *dx, float *d_weight, float *d_shift, float *d_scale, int64_t samples,
                                 int64_t tokens, int64_t width, float *workspace, int64_t workspace_capacity,
                                 int bf16_grads, bool accumulate = false) {
    MDT_REQUIRE(samples >= 0 && tokens >= 0 && width > 0,
                "%s: need samples, tokens >= 0 and width > 0, got %lld, %lld, %lld", op, (long long)samples,
                (long long)tokens, (long long)width);
    MDT_REQUIRE(weight || !d_weight, "%s: d_weight given for a LayerNorm without weight", op);
    MDT_REQUIRE(mdt::valid_grads(bf16_grads, 1), "%s: bf16_grads %d names operands past dOut", op, bf16_grads);
    int64_t rows = samples * tokens;
    MDT_REQUIRE(rows <= 2147483647, "%s: %lld rows exceed the grid", op, (long long)rows);
    if (samples == 0) return MDT_SUCCESS;
    MDT_REQUIRE(d_out && x && scale && mean && rstd && dx && d_shift && d_scale, "%s: NULL tensor pointer", op);
    if (d_weight) {
        if (int s = mdt::column_sum::require_workspace(op, samples, width, workspace, workspace_capacity)) return s;
    }
    mdt::GradIn g = mdt::grad_in(d_out, bf16_grads, 0);
    if (rows > 0) {
        int status = MDT_LAUNCH(layer_norm_backward_kernel<float>, static_cast<unsigned>(rows), kThreads, 0, stream,
                                g, x, weight, scale, mean, rstd, accumulate ? dx : nullptr, mdt::GradOut{dx, false},
                                tokens, width, width, kNoIds, int64_t{1}, kNoErrorRecord);
        if (status != MDT_SUCCESS) return status;
    }
    int status = MDT_LAUNCH(modulate_sums_kernel, mdt::blocks_for(samples * width, kThreads), kThreads, 0, stream, g,
                            x, mean, rstd, d_shift, d_scale, samples, tokens, width);
    if (status != MDT_SUCCESS || !weight) return status;
    // d_weight NULL (a frozen weight): the pass still scales d_scale, its sums discarded.
    return mdt::column_sum::run(op, stream, ModulateWeightTerm{weight, scale, d_scale, width}, samples, width, d_weight,
                                1, workspace, workspace_capacity);
}

// bf16: bit 0 f, bit 1 out. copy: NULL, or the f32 output's bf16 copy (out must then be f32).
int residual_layer_norm_forward(const char *op, mdt_stream_t stream, const float *x, const float *gate, const void *f,
                                const float *weight, const float *shift, const float *scale, float eps,
                                float *residual, void *out, float *mean, float *rstd, int64_t samples, int64_t tokens,
                                int64_t width, int bf16, uint16_t *copy = nullptr) {
    MDT_REQUIRE(samples >= 0 && tokens >= 0 && width > 0,
                "%s: need samples, tokens >= 0 and width > 0, got %lld, %lld, %lld", op, (long long)samples,
                (long long)tokens, (long long)width);
    MDT_REQUIRE(eps >= 0.0f && eps < __builtin_inff(), "%s: eps must be finite and >= 0", op);
    MDT_REQUIRE(mdt::valid_grads(bf16, 2), "%s: bf16 operands %d name operands past f and out", op, bf16);
    MDT_REQUIRE(!shift == !scale, "%s: shift and scale come together (both NULL: no modulation)", op);
    int64_t rows = samples * tokens;
    MDT_REQUIRE(rows <= 2147483647, "%s: %lld rows exceed the grid", op, (long long)rows);
    if (rows == 0) return MDT_SUCCESS;
    MDT_REQUIRE(x && f && residual && out && mean && rstd, "%s: NULL tensor pointer", op);
    return MDT_LAUNCH(residual_layer_norm_kernel, static_cast<unsigned>(rows), kThreads, 0, stream, x, gate,
                      mdt::grad_in(f, bf16, 0), weight, shift, scale, eps, residual, mdt::grad_out(out, bf16, 1), copy,
                      mean, rstd, tokens, width);
}

// bf16: bit 0 dOut, bit 1 f, bit 2 dF.
int residual_layer_norm_backward(const char *op, mdt_stream_t stream, const void *d_out, const float *d_residual,
                                 const float *residual, const float *gate, const void *f, const float *weight,
                                 const float *scale, const float *mean, const float *rstd, float *dx, float *d_weight,
                                 float *d_shift, float *d_scale, float *d_gate, void *d_f, int64_t samples,
                                 int64_t tokens, int64_t width, float *workspace, int64_t workspace_capacity,
                                 int bf16) {
    MDT_REQUIRE(samples >= 0 && tokens >= 0 && width > 0,
                "%s: need samples, tokens >= 0 and width > 0, got %lld, %lld, %lld", op, (long long)samples,
                (long long)tokens, (long long)width);
    MDT_REQUIRE(mdt::valid_grads(bf16, 3), "%s: bf16 operands %d name operands past dOut, f and dF", op, bf16);
    MDT_REQUIRE(weight || !d_weight, "%s: d_weight given for a LayerNorm without weight", op);
    MDT_REQUIRE(!scale == !d_shift && !scale == !d_scale,
                "%s: scale, d_shift and d_scale come together (all NULL: no modulation)", op);
    MDT_REQUIRE(!gate == !d_gate, "%s: gate and d_gate come together (both NULL: a plain residual add)", op);
    int64_t rows = samples * tokens;
    MDT_REQUIRE(rows <= 2147483647, "%s: %lld rows exceed the grid", op, (long long)rows);
    if (samples == 0) return MDT_SUCCESS;
    MDT_REQUIRE(d_out && residual && f && mean && rstd && dx && d_f, "%s: NULL tensor pointer", op);
    // The weight's column sum runs over samples when modulated (the tokens are summed into d_scale), else rows.
    int64_t weight_rows = scale ? samples : rows;
    if (d_weight) {
        if (int s = mdt::column_sum::require_workspace(op, weight_rows, width, workspace, workspace_capacity)) return s;
    }
    mdt::GradIn g = mdt::grad_in(d_out, bf16, 0);
    if (rows > 0) {
        int status = MDT_LAUNCH(layer_norm_backward_kernel<float>, static_cast<unsigned>(rows), kThreads, 0, stream,
                                g, residual, weight, scale, mean, rstd, d_residual, mdt::GradOut{dx, false}, tokens,
                                width, width, kNoIds, int64_t{1}, kNoErrorRecord);
        if (status != MDT_SUCCESS) return status;
    }
    int status = MDT_LAUNCH(residual_sums_kernel, mdt::blocks_for(samples * width, kThreads), kThreads, 0, stream, g,
                            residual, mean, rstd, dx, gate, mdt::grad_in(f, bf16, 1), mdt::grad_out(d_f, bf16, 2),
                            d_gate, d_shift, d_scale, samples, tokens, width);
    if (status != MDT_SUCCESS || !weight) return status;
    if (scale) {
        // d_weight NULL (a frozen weight): the pass still scales d_scale, its sums discarded.
        return mdt::column_sum::run(op, stream, ModulateWeightTerm{weight, scale, d_scale, width}, samples, width,
                                    d_weight, 1, workspace, workspace_capacity);
    }
    if (!d_weight) return MDT_SUCCESS;
    return mdt::column_sum::run(op, stream, WeightGradientTerm<float>{g, residual, mean, rstd, width}, rows, width,
                                d_weight, 1, workspace, workspace_capacity);
}

// The gathered LayerNorm's sizes: x [samples, tokens, width], ids and the outputs' rows [samples, kept].
int check_gathered(const char *op, int64_t samples, int64_t tokens, int64_t kept, int64_t width) {
    MDT_REQUIRE(samples >= 0 && tokens >= 0 && kept >= 0 && width > 0,
                "%s: need samples, tokens, kept >= 0 and width > 0, got %lld, %lld, %lld, %lld", op,
                (long long)samples, (long long)tokens, (long long)kept, (long long)width);
    MDT_REQUIRE(kept <= tokens, "%s: %lld kept tokens exceed the %lld tokens", op, (long long)kept, (long long)tokens);
    MDT_REQUIRE(samples * kept <= 2147483647, "%s: %lld rows exceed the grid", op, (long long)(samples * kept));
    return MDT_SUCCESS;
}

template <class Out>
int gather_layer_norm_forward(const char *op, mdt_stream_t stream, const float *x, const int32_t *ids,
                              const float *weight, float eps, Out *out, float *mean, float *rstd, int64_t samples,
                              int64_t tokens, int64_t kept, int64_t width, int32_t *error) {
    if (int s = check_gathered(op, samples, tokens, kept, width)) return s;
    MDT_REQUIRE(eps >= 0.0f && eps < __builtin_inff(), "%s: eps must be finite and >= 0", op);
    int64_t rows = samples * kept;
    if (rows == 0) return MDT_SUCCESS;
    MDT_REQUIRE(x && ids && out && mean && rstd, "%s: NULL tensor pointer", op);
    auto *layer_norm = &layer_norm_kernel<float, Out>;
    return MDT_LAUNCH(layer_norm, static_cast<unsigned>(rows), kThreads, 0, stream, x, weight,
                      static_cast<const float *>(nullptr), static_cast<const float *>(nullptr), eps, out, mean, rstd,
                      static_cast<float *>(nullptr), kept, width, width, ids, tokens, error);
}

}  // namespace

extern "C" {

int mdt_norm_layer_norm_fwd(mdt_stream_t stream, const float *x, const float *weight, float eps, float *out,
                            float *mean, float *rstd, int64_t rows, int64_t width) {
    return layer_norm_forward("mdt_norm_layer_norm_fwd", stream, x, weight, eps, out, mean, rstd, rows, width);
}

int mdt_norm_layer_norm_fwd_bf16out(mdt_stream_t stream, const float *x, const float *weight, float eps,
                                    uint16_t *out, float *mean, float *rstd, int64_t rows, int64_t width) {
    return layer_norm_forward("mdt_norm_layer_norm_fwd_bf16out", stream, x, weight, eps, out, mean, rstd, rows,
                              width);
}

int mdt_norm_layer_norm_fwd_bf16in(mdt_stream_t stream, const uint16_t *x, const float *weight, float eps, float *out,
                                   float *mean, float *rstd, int64_t rows, int64_t width) {
    return layer_norm_forward("mdt_norm_layer_norm_fwd_bf16in", stream, x, weight, eps, out, mean, rstd, rows, width);
}

int mdt_norm_layer_norm_fwd_bf16in_bf16out(mdt_stream_t stream, const uint16_t *x, const float *weight, float eps,
                                           uint16_t *out, float *mean, float *rstd, int64_t rows, int64_t width) {
    return layer_norm_forward("mdt_norm_layer_norm_fwd_bf16in_bf16out", stream, x, weight, eps, out, mean, rstd, rows,
                              width);
}

int mdt_norm_layer_norm_statistics(mdt_stream_t stream, const void *x, float eps, void *out, float *mean, float *rstd,
                                   float *center, int64_t rows, int64_t width, int64_t x_stride, int bf16_operands) {
    const char *op = "mdt_norm_layer_norm_statistics";
    MDT_REQUIRE(!out || x_stride == width, "%s: an output needs x's rows contiguous (x_stride %lld, width %lld)", op,
                (long long)x_stride, (long long)width);
    MDT_REQUIRE(mdt::valid_grads(bf16_operands, 2), "%s: bf16 operands %d name operands past x and out", op,
                bf16_operands);
    bool bf16_x = mdt::bf16_grad(bf16_operands, 0), bf16_out = mdt::bf16_grad(bf16_operands, 1);
    if (bf16_x && bf16_out) {
        return layer_norm_statistics(op, stream, static_cast<const uint16_t *>(x), eps, static_cast<uint16_t *>(out),
                                     mean, rstd, center, rows, width, x_stride);
    }
    if (bf16_x) {
        return layer_norm_statistics(op, stream, static_cast<const uint16_t *>(x), eps, static_cast<float *>(out), mean,
                                     rstd, center, rows, width, x_stride);
    }
    if (bf16_out) {
        return layer_norm_statistics(op, stream, static_cast<const float *>(x), eps, static_cast<uint16_t *>(out), mean,
                                     rstd, center, rows, width, x_stride);
    }
    return layer_norm_statistics(op, stream, static_cast<const float *>(x), eps, static_cast<float *>(out), mean, rstd,
                                 center, rows, width, x_stride);
}

int mdt_norm_layer_norm_bwd(mdt_stream_t stream, const float *d_out, const float *x, const float *weight,
                            const float *mean, const float *rstd, float *dx, float *d_weight, int64_t rows,
                            int64_t width, float *workspace, int64_t workspace_capacity) {
    return layer_norm_backward("mdt_norm_layer_norm_bwd", stream, d_out, x, weight, mean, rstd, dx, d_weight, rows,
                               width, workspace, workspace_capacity, 0);
}

int mdt_norm_layer_norm_bwd_bf16in(mdt_stream_t stream, const float *d_out, const uint16_t *x, const float *weight,
                                   const float *mean, const float *rstd, float *dx, float *d_weight, int64_t rows,
                                   int64_t width, float *workspace, int64_t workspace_capacity) {
    return layer_norm_backward("mdt_norm_layer_norm_bwd_bf16in", stream, d_out, x, weight, mean, rstd, dx, d_weight,
                               rows, width, workspace, workspace_capacity, 0);
}

int mdt_norm_layer_norm_bwd_bf16grad(mdt_stream_t stream, const void *d_out, const float *x, const float *weight,
                                     const float *mean, const float *rstd, void *dx, float *d_weight, int64_t rows,
                                     int64_t width, float *workspace, int64_t workspace_capacity, int bf16_grads) {
    return layer_norm_backward("mdt_norm_layer_norm_bwd_bf16grad", stream, d_out, x, weight, mean, rstd, dx, d_weight,
                               rows, width, workspace, workspace_capacity, bf16_grads);
}

int mdt_norm_layer_norm_bwd_bf16in_bf16grad(mdt_stream_t stream, const void *d_out, const uint16_t *x,
                                            const float *weight, const float *mean, const float *rstd, void *dx,
                                            float *d_weight, int64_t rows, int64_t width, float *workspace,
                                            int64_t workspace_capacity, int bf16_grads) {
    return layer_norm_backward("mdt_norm_layer_norm_bwd_bf16in_bf16grad", stream, d_out, x, weight, mean, rstd, dx,
                               d_weight, rows, width, workspace, workspace_capacity, bf16_grads);
}

int mdt_norm_layer_norm_bwd_bf16_rows(mdt_stream_t stream, const uint16_t *d_out, const uint16_t *x, const float *mean,
                                      const float *rstd, uint16_t *dx, int64_t rows, int64_t width, int64_t row_stride) {
    const char *op = "mdt_norm_layer_norm_bwd_bf16_rows";
    MDT_REQUIRE(rows >= 0 && width > 0 && row_stride >= width,
                "%s: need rows >= 0, width > 0 and row_stride >= width, got %lld, %lld and %lld", op, (long long)rows,
                (long long)width, (long long)row_stride);
    MDT_REQUIRE(rows <= 2147483647, "%s: %lld rows exceed the grid", op, (long long)rows);
    if (rows == 0) return MDT_SUCCESS;
    MDT_REQUIRE(d_out && x && mean && rstd && dx, "%s: NULL tensor pointer", op);
    return MDT_LAUNCH(layer_norm_backward_kernel<uint16_t>, static_cast<unsigned>(rows), kThreads, 0, stream,
                      mdt::GradIn{d_out, true}, x, static_cast<const float *>(nullptr),
                      static_cast<const float *>(nullptr), mean, rstd, static_cast<const float *>(nullptr),
                      mdt::GradOut{dx, true}, int64_t{1}, width, row_stride, kNoIds, int64_t{1}, kNoErrorRecord);
}

int mdt_norm_layer_norm_modulate_fwd(mdt_stream_t stream, const float *x, const float *weight, const float *shift,
                                     const float *scale, float eps, float *out, float *mean, float *rstd,
                                     int64_t samples, int64_t tokens, int64_t width) {
    return layer_norm_modulate_forward("mdt_norm_layer_norm_modulate_fwd", stream, x, weight, shift, scale, eps, out,
                                       mean, rstd, samples, tokens, width);
}

int mdt_norm_layer_norm_modulate_fwd_bf16out(mdt_stream_t stream, const float *x, const float *weight,
                                             const float *shift, const float *scale, float eps, uint16_t *out,
                                             float *mean, float *rstd, int64_t samples, int64_t tokens,
                                             int64_t width) {
    return layer_norm_modulate_forward("mdt_norm_layer_norm_modulate_fwd_bf16out", stream, x, weight, shift, scale,
                                       eps, out, mean, rstd, samples, tokens, width);
}

int mdt_norm_layer_norm_modulate_bwd(mdt_stream_t stream, const float *d_out, const float *x, const float *weight,
                                     const float *scale, const float *mean, const float *rstd, float *dx,
                                     float *d_weight, float *d_shift, float *d_scale, int64_t samples, int64_t tokens,
                                     int64_t width, float *workspace, int64_t workspace_capacity) {
    return layer_norm_modulate_backward("mdt_norm_layer_norm_modulate_bwd", stream, d_out, x, weight, scale, mean, rstd,
                                        dx, d_weight, d_shift, d_scale, samples, tokens, width, workspace,
                                        workspace_capacity, 0);
}

int mdt_norm_layer_norm_modulate_bwd_bf16grad(mdt_stream_t stream, const void *d_out, const float *x,
                                              const float *weight, const float *scale, const float *mean,
                                              const float *rstd, float *dx, float *d_weight, float *d_shift,
                                              float *d_scale, int64_t samples, int64_t tokens, int64_t width,
                                              float *workspace, int64_t workspace_capacity, int bf16_grads) {
    return layer_norm_modulate_backward("mdt_norm_layer_norm_modulate_bwd_bf16grad", stream, d_out, x, weight, scale,
                                        mean, rstd, dx, d_weight, d_shift, d_scale, samples, tokens, width, workspace,
                                        workspace_capacity, bf16_grads);
}

int mdt_norm_layer_norm_bwd_accumulate(mdt_stream_t stream, const void *d_out, const void *x, const float *weight,
                                       const float *mean, const float *rstd, float *dx, float *d_weight, int64_t rows,
                                       int64_t width, float *workspace, int64_t workspace_capacity,
                                       int bf16_operands) {
    const char *op = "mdt_norm_layer_norm_bwd_accumulate";
    MDT_REQUIRE(mdt::valid_grads(bf16_operands, 2), "%s: bf16 operands %d name operands past dOut and x", op,
                bf16_operands);
    // Bit 1 of the mask is x here; the shared backward's bit 1 is dx, which accumulates in f32.
    int grads = bf16_operands & 1;
    if (mdt::bf16_grad(bf16_operands, 1)) {
        return layer_norm_backward(op, stream, d_out, static_cast<const uint16_t *>(x), weight, mean, rstd, dx,
                                   d_weight, rows, width, workspace, workspace_capacity, grads, true);
    }
    return layer_norm_backward(op, stream, d_out, static_cast<const float *>(x), weight, mean, rstd, dx, d_weight,
                               rows, width, workspace, workspace_capacity, grads, true);
}

int mdt_norm_layer_norm_modulate_bwd_accumulate(mdt_stream_t stream, const void *d_out, const float *x,
                                                const float *weight, const float *scale, const float *mean,
                                                const float *rstd, float *dx, float *d_weight, float *d_shift,
                                                float *d_scale, int64_t samples, int64_t tokens, int64_t width,
                                                float *workspace, int64_t workspace_capacity, int bf16_grads) {
    return layer_norm_modulate_backward("mdt_norm_layer_norm_modulate_bwd_accumulate", stream, d_out, x, weight,
                                        scale, mean, rstd, dx, d_weight, d_shift, d_scale, samples, tokens, width,
                                        workspace, workspace_capacity, bf16_grads, true);
}

int mdt_norm_residual_layer_norm_fwd(mdt_stream_t stream, const float *x, const float *gate, const void *f,
                                     const float *weight, const float *shift, const float *scale, float eps,
                                     float *residual, void *out, float *mean, float *rstd, int64_t samples,
                                     int64_t tokens, int64_t width, int bf16_operands) {
    return residual_layer_norm_forward("mdt_norm_residual_layer_norm_fwd", stream, x, gate, f, weight, shift, scale,
                                       eps, residual, out, mean, rstd, samples, tokens, width, bf16_operands);
}

int mdt_norm_residual_layer_norm_fwd_bf16copy(mdt_stream_t stream, const float *x, const float *gate, const void *f,
                                               const float *weight, const float *shift, const float *scale,
                                               float eps, float *residual, float *out, uint16_t *out_bf16,
                                               float *mean, float *rstd, int64_t samples, int64_t tokens,
                                               int64_t width, int bf16_f) {
    const char *op = "mdt_norm_residual_layer_norm_fwd_bf16copy";
    MDT_REQUIRE(bf16_f == 0 || bf16_f == 1, "%s: bf16_f must be 0 or 1, got %d", op, bf16_f);
    MDT_REQUIRE(samples * tokens == 0 || out_bf16, "%s: NULL tensor pointer", op);
    return residual_layer_norm_forward(op, stream, x, gate, f, weight, shift, scale, eps, residual, out, mean, rstd,
                                       samples, tokens, width, bf16_f, out_bf16);
}

int mdt_norm_residual_layer_norm_bwd(mdt_stream_t stream, const void *d_out, const float *d_residual,
                                     const float *residual, const float *gate, const void *f, const float *weight,
                                     const float *scale, const float *mean, const float *rstd, float *dx,
                                     float *d_weight, float *d_shift, float *d_scale, float *d_gate, void *d_f,
                                     int64_t samples, int64_t tokens, int64_t width, float *workspace,
                                     int64_t workspace_capacity, int bf16_operands) {
    return residual_layer_norm_backward("mdt_norm_residual_layer_norm_bwd", stream, d_out, d_residual, residual, gate,
                                        f, weight, scale, mean, rstd, dx, d_weight, d_shift, d_scale, d_gate, d_f,
                                        samples, tokens, width, workspace, workspace_capacity, bf16_operands);
}

int mdt_norm_gather_layer_norm_fwd(mdt_stream_t stream, const float *x, const int32_t *ids, const float *weight,
                                   float eps, void *out, float *mean, float *rstd, int64_t samples, int64_t tokens,
                                   int64_t kept, int64_t width, int bf16_out, int32_t *error_record) {
    const char *op = "mdt_norm_gather_layer_norm_fwd";
    MDT_REQUIRE(bf16_out == 0 || bf16_out == 1, "%s: bf16_out must be 0 or 1, got %d", op, bf16_out);
    if (bf16_out) {
        return gather_layer_norm_forward(op, stream, x, ids, weight, eps, static_cast<uint16_t *>(out), mean, rstd,
                                         samples, tokens, kept, width, error_record);
    }
    return gather_layer_norm_forward(op, stream, x, ids, weight, eps, static_cast<float *>(out), mean, rstd, samples,
                                     tokens, kept, width, error_record);
}

int mdt_norm_gather_layer_norm_bwd(mdt_stream_t stream, const void *d_out, const float *x, const int32_t *ids,
                                   const float *weight, const float *mean, const float *rstd, float *dx,
                                   float *d_weight, int64_t samples, int64_t tokens, int64_t kept, int64_t width,
                                   float *workspace, int64_t workspace_capacity, int bf16_d_out, int accumulate,
                                   int32_t *error_record) {
    const char *op = "mdt_norm_gather_layer_norm_bwd";
    if (int s = check_gathered(op, samples, tokens, kept, width)) return s;
    MDT_REQUIRE(bf16_d_out == 0 || bf16_d_out == 1, "%s: bf16_d_out must be 0 or 1, got %d", op, bf16_d_out);
    MDT_REQUIRE(accumulate == 0 || accumulate == 1, "%s: accumulate must be 0 or 1, got %d", op, accumulate);
    MDT_REQUIRE(weight || !d_weight, "%s: d_weight given for a LayerNorm without weight", op);
    if (samples * tokens == 0) return MDT_SUCCESS;
    MDT_REQUIRE(x && dx, "%s: NULL tensor pointer", op);
    if (!accumulate) {
        // The rows no id names get the zero gradient; the kept rows are overwritten below.
        if (int s = mdt_memset(dx, 0, static_cast<size_t>(samples * tokens * width) * sizeof(float), stream)) return s;
    }
    int64_t rows = samples * kept;
    if (rows == 0) return MDT_SUCCESS;
    MDT_REQUIRE(d_out && ids && mean && rstd, "%s: NULL tensor pointer", op);
    if (d_weight) {
        if (int s = mdt::column_sum::require_workspace(op, rows, width, workspace, workspace_capacity)) return s;
    }
    mdt::GradIn g = mdt::grad_in(d_out, bf16_d_out, 0);
    int status = MDT_LAUNCH(layer_norm_backward_kernel<float>, static_cast<unsigned>(rows), kThreads, 0, stream, g, x,
                            weight, static_cast<const float *>(nullptr), mean, rstd,
                            accumulate ? static_cast<const float *>(dx) : nullptr, mdt::GradOut{dx, false}, kept,
                            width, width, ids, tokens, error_record);
    if (status != MDT_SUCCESS || !d_weight) return status;
    GatheredWeightGradientTerm term{g, x, mean, rstd, width, ids, kept, tokens};
    return mdt::column_sum::run(op, stream, term, rows, width, d_weight, 1, workspace, workspace_capacity);
}

}  // extern "C"
