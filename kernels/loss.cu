// The masked EDM loss (CpuLoss semantics): per sample n, weight[n]·(denoised − target)² averaged over channels
// and each p×p patch, then over the kept patches weighted by keep = 1 − mask[n, patch] (every patch when mask
// is NULL); the result is the mean over samples.
// Forward: one block per sample sums keep·(D − x)² over its pixels and keep over its patches in double, each
// thread over a strided range then a fixed-order block reduction (deterministic); removed patches are skipped
// (keep 0), even when non-finite. The per-sample losses go to per_sample (float) and, in double, to the
// workspace; one thread then adds them in sample order into workspace[N], the batch mean. 3 FLOPs and 8 bytes
// per pixel.
// Backward: a block per sample first sums keep (double); then a grid-stride loop writes
// dD = coefficient·(D − x) with coefficient = float(2·dLoss/N · weight[n] · keep / (C·p·p · Σkeep)), an exact 0
// for removed patches. 3 FLOPs and 12 bytes per pixel.
// A sample whose mask removes every patch has no loss (0/0): both directions report it into the caller's error
// record (microdit.h) instead of a host check of the mask.
#include "common.cuh"

namespace {

constexpr int kThreads = 256;

struct Image {
    int64_t samples, channels, height, width, patch;
    __device__ int64_t patch_of(int64_t pixel) const {  // pixel within a sample's [C, H, W]
        int64_t x = pixel % width, y = pixel / width % height;
        return (y / patch) * (width / patch) + x / patch;
    }
    __device__ int64_t patches() const { return (height / patch) * (width / patch); }
};

__device__ __forceinline__ double keep_of(const float *mask, int64_t sample, int64_t patches, int64_t p) {
    return mask ? 1.0 - static_cast<double>(mask[sample * patches + p]) : 1.0;
}

/** Reports a sample that keeps no patch (its loss would be 0/0); without a mask every patch is kept. */
__device__ __forceinline__ void check_kept(const float *mask, double keep_total, int64_t sample, int64_t patches,
                                           int code, int32_t *error) {
    if (mask && !(keep_total > 0.0)) mdt::report_error(error, code, 0, patches, sample, 0, 0);
}

__global__ void keep_sums_kernel(const float *mask, Image image, double *keep_sums, int32_t *error) {
    MDT_SHARED(double, scratch, [32]);
    int64_t sample = blockIdx.x, patches = image.patches();
    double sum = 0.0;
    for (int64_t p = threadIdx.x; p < patches; p += blockDim.x) sum += keep_of(mask, sample, patches, p);
    sum = mdt::block_sum(sum, scratch);
    if (threadIdx.x == 0) {
        keep_sums[sample] = sum;
        check_kept(mask, sum, sample, patches, MDT_CHECK_LOSS_EDM_BWD_EMPTY, error);
    }
}

__global__ void edm_loss_kernel(const float *denoised, const float *target, const float *weight, const float *mask,
                                Image image, float *per_sample, double *losses, int32_t *error) {
    MDT_SHARED(double, scratch, [32]);
    int64_t sample = blockIdx.x, patches = image.patches();
    int64_t pixels = image.channels * image.height * image.width;
    const float *prediction = denoised + sample * pixels, *reference = target + sample * pixels;
    double kept = 0.0, keep_total = 0.0;
    for (int64_t i = threadIdx.x; i < pixels; i += blockDim.x) {
        double keep = keep_of(mask, sample, patches, image.patch_of(i));
        if (keep != 0.0) {
            double difference = static_cast<double>(prediction[i]) - static_cast<double>(reference[i]);
            kept += difference * difference * keep;
        }
    }
    for (int64_t p = threadIdx.x; p < patches; p += blockDim.x) keep_total += keep_of(mask, sample, patches, p);
    kept = mdt::block_sum(kept, scratch);
    keep_total = mdt::block_sum(keep_total, scratch);
    if (threadIdx.x == 0) {
        double pixels_per_patch = static_cast<double>(image.channels) * image.patch * image.patch;
        double loss = static_cast<double>(weight[sample]) * kept / (pixels_per_patch * keep_total);
        per_sample[sample] = static_cast<float>(loss);
        losses[sample] = loss;
        check_kept(mask, keep_total, sample, patches, MDT_CHECK_LOSS_EDM_FWD_EMPTY, error);
    }
}

__global__ void mean_kernel(double *losses, int64_t samples) {
    double total = 0.0;
    for (int64_t n = 0; n < samples; n++) total += losses[n];
    losses[samples] = total / static_cast<double>(samples);
}

__global__ void edm_loss_backward_kernel(float d_loss, const float *denoised, const float *target,
                                         const float *weight, const float *mask, Image image,
                                         const double *keep_sums, float *d_denoised) {
    int64_t pixels = image.channels * image.height * image.width, n = image.samples * pixels;
    int64_t patches = image.patches();
    double pixels_per_patch = static_cast<double>(image.channels) * image.patch * image.patch;
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t sample = e / pixels;
        double sample_scale = 2.0 * d_loss / image.samples * weight[sample] / (pixels_per_patch * keep_sums[sample]);
        float coefficient =
            static_cast<float>(sample_scale * keep_of(mask, sample, patches, image.patch_of(e % pixels)));
        d_denoised[e] = coefficient == 0.0f ? 0.0f : coefficient * (denoised[e] - target[e]);
    }
}

int check_image(const char *op, int64_t samples, int64_t channels, int64_t height, int64_t width, int64_t patch) {
    MDT_REQUIRE(samples > 0 && channels >= 0 && height >= 0 && width >= 0,
                "%s: need samples > 0 and non-negative sizes, got %lld, %lld, %lld, %lld", op, (long long)samples,
                (long long)channels, (long long)height, (long long)width);
    MDT_REQUIRE(patch >= 1, "%s: patch must be at least 1, got %lld", op, (long long)patch);
    MDT_REQUIRE(height % patch == 0 && width % patch == 0,
                "%s: height %lld and width %lld must be divisible by the patch size %lld", op, (long long)height,
                (long long)width, (long long)patch);
    MDT_REQUIRE(samples <= 2147483647, "%s: %lld samples exceed the grid", op, (long long)samples);
    return MDT_SUCCESS;
}

}  // namespace

extern "C" {

int mdt_loss_edm_fwd(mdt_stream_t stream, const float *denoised, const float *target, const float *weight,
                     const float *mask, float *per_sample, double *workspace, int64_t samples, int64_t channels,
                     int64_t height, int64_t width, int64_t patch, int32_t *error) {
    if (int s = check_image("mdt_loss_edm_fwd", samples, channels, height, width, patch)) return s;
    MDT_REQUIRE(denoised && target && weight && per_sample && workspace, "mdt_loss_edm_fwd: NULL tensor pointer");
    Image image{samples, channels, height, width, patch};
    int status = MDT_LAUNCH(edm_loss_kernel, static_cast<unsigned>(samples), kThreads, 0, stream, denoised, target,
                            weight, mask, image, per_sample, workspace, error);
    if (status != MDT_SUCCESS) return status;
    return MDT_LAUNCH(mean_kernel, 1, 1, 0, stream, workspace, samples);
}

int mdt_loss_edm_bwd(mdt_stream_t stream, float d_loss, const float *denoised, const float *target,
                     const float *weight, const float *mask, float *d_denoised, double *workspace, int64_t samples,
                     int64_t channels, int64_t height, int64_t width, int64_t patch, int32_t *error) {
    if (int s = check_image("mdt_loss_edm_bwd", samples, channels, height, width, patch)) return s;
    MDT_REQUIRE(denoised && target && weight && d_denoised && workspace, "mdt_loss_edm_bwd: NULL tensor pointer");
    Image image{samples, channels, height, width, patch};
    int status = MDT_LAUNCH(keep_sums_kernel, static_cast<unsigned>(samples), kThreads, 0, stream, mask, image,
                            workspace, error);
    if (status != MDT_SUCCESS) return status;
    int64_t n = samples * channels * height * width;
    if (n == 0) return MDT_SUCCESS;
    return MDT_LAUNCH(edm_loss_backward_kernel, mdt::blocks_for(n, kThreads), kThreads, 0, stream, d_loss, denoised,
                      target, weight, mask, image, workspace, d_denoised);
}

}  // extern "C"
