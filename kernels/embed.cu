// Patch permutations and the fixed sinusoidal embeddings.
// Patchify/unpatchify and their backwards are one permutation kernel: a grid-stride loop over image elements
// (n, c, y, x) with y = gy·p + i, x = gx·p + j, token gy·(W/p) + gx and feature (c·p + i)·p + j (patchify, the
// Conv2d weight order) or (i·p + j)·C + c (unpatchify, channel fastest), as CpuTokens; the image side is read or
// written in order (coalesced), the token side strided within a token. 0 FLOPs, 8 bytes per element.
// Position embedding (numpy get_2d_sincos_pos_embed, as CpuEmbeddings): pos = float32(index / scale), the
// frequency 10000^(−k/(D/4)) and sin/cos in double, stored as float; the first D/2 channels from the column, the
// last D/2 from the row. One thread per output element: 1 sin-or-cos and a pow each, 4 bytes written.
// Timestep embedding (PyTorch's timestep_embedding): float32 frequencies exp(float32(k·float32(−ln 10000))/half)
// and float32 arguments t·f, cos/sin of each argument in double rounded once; [cos, sin], a zero column when F
// is odd. One thread per output element, 4 bytes written.
#include "common.cuh"

#include <math.h>

namespace {

constexpr int kThreads = 256;

__global__ void patch_permute_kernel(float *image, float *tokens, int64_t channels, int64_t height, int64_t width,
                                     int64_t patch, int channel_slowest, int image_to_tokens, int64_t n) {
    int64_t grid_w = width / patch, features = channels * patch * patch;
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t x = e % width, y = e / width % height, c = e / (width * height) % channels;
        int64_t sample = e / (width * height * channels);
        int64_t gy = y / patch, i = y % patch, gx = x / patch, j = x % patch;
        int64_t token = (sample * (height / patch) + gy) * grid_w + gx;
        int64_t feature = channel_slowest ? (c * patch + i) * patch + j : (i * patch + j) * channels + c;
        int64_t t = token * features + feature;
        if (image_to_tokens) {
            tokens[t] = image[e];
        } else {
            image[e] = tokens[t];
        }
    }
}

__global__ void position_embedding_kernel(float *out, int64_t grid_w, int64_t dim, float scale, int64_t n) {
    int64_t half = dim / 2, quarter = half / 2;
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t token = e / dim, channel = e % dim;
        int64_t index = channel < half ? token % grid_w : token / grid_w;
        int64_t within = channel % half;
        int64_t k = within % quarter;
        double omega = 1.0 / pow(10000.0, static_cast<double>(k) / static_cast<double>(quarter));
        double angle = static_cast<double>(static_cast<float>(index) / scale) * omega;
        out[e] = static_cast<float>(within < quarter ? sin(angle) : cos(angle));
    }
}

__global__ void timestep_embedding_kernel(const float *t, float *out, int64_t size, int64_t n) {
    int64_t half = size / 2;
    float log_period = static_cast<float>(-log(10000.0));
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t sample = e / size, column = e % size;
        if (column >= 2 * half) {
            out[e] = 0.0f;
            continue;
        }
        int64_t k = column % half;
        float exponent = (static_cast<float>(k) * log_period) / static_cast<float>(half);
        float frequency = static_cast<float>(exp(static_cast<double>(exponent)));
        double argument = static_cast<double>(t[sample] * frequency);
        out[e] = static_cast<float>(column < half ? cos(argument) : sin(argument));
    }
}

int patch_permute(const char *op, float *image, float *tokens, int64_t samples, int64_t channels, int64_t height,
                  int64_t width, int64_t patch, int channel_slowest, int image_to_tokens, mdt_stream_t stream) {
    MDT_REQUIRE(samples >= 0 && channels >= 0 && height >= 0 && width >= 0, "%s: negative image size", op);
    MDT_REQUIRE(patch >= 1, "%s: patch must be at least 1, got %lld", op, (long long)patch);
    MDT_REQUIRE(height % patch == 0 && width % patch == 0,
                "%s: height %lld and width %lld must be divisible by the patch size %lld", op, (long long)height,
                (long long)width, (long long)patch);
    int64_t n = samples * channels * height * width;
    if (n == 0) return MDT_SUCCESS;
    MDT_REQUIRE(image && tokens, "%s: NULL tensor pointer", op);
    return MDT_LAUNCH(patch_permute_kernel, mdt::blocks_for(n, kThreads), kThreads, 0, stream, image, tokens, channels,
                      height, width, patch, channel_slowest, image_to_tokens, n);
}

}  // namespace

extern "C" {

int mdt_embed_patchify_fwd(mdt_stream_t stream, const float *image, float *out, int64_t samples, int64_t channels,
                           int64_t height, int64_t width, int64_t patch) {
    return patch_permute("mdt_embed_patchify_fwd", const_cast<float *>(image), out, samples, channels, height, width,
                         patch, 1, 1, stream);
}

int mdt_embed_patchify_bwd(mdt_stream_t stream, const float *d_out, float *d_image, int64_t samples,
                           int64_t channels, int64_t height, int64_t width, int64_t patch) {
    return patch_permute("mdt_embed_patchify_bwd", d_image, const_cast<float *>(d_out), samples, channels, height,
                         width, patch, 1, 0, stream);
}

int mdt_embed_unpatchify_fwd(mdt_stream_t stream, const float *tokens, float *out, int64_t samples, int64_t channels,
                             int64_t height, int64_t width, int64_t patch) {
    return patch_permute("mdt_embed_unpatchify_fwd", out, const_cast<float *>(tokens), samples, channels, height,
                         width, patch, 0, 0, stream);
}

int mdt_embed_unpatchify_bwd(mdt_stream_t stream, const float *d_out, float *d_tokens, int64_t samples,
                             int64_t channels, int64_t height, int64_t width, int64_t patch) {
    return patch_permute("mdt_embed_unpatchify_bwd", const_cast<float *>(d_out), d_tokens, samples, channels, height,
                         width, patch, 0, 1, stream);
}

int mdt_embed_position_2d(mdt_stream_t stream, float *out, int64_t grid_h, int64_t grid_w, int64_t dim,
                          float interpolation_scale) {
    MDT_REQUIRE(grid_h >= 1 && grid_w >= 1, "mdt_embed_position_2d: grid must be at least 1x1, got %lldx%lld",
                (long long)grid_h, (long long)grid_w);
    MDT_REQUIRE(dim > 0 && dim % 4 == 0, "mdt_embed_position_2d: embedding size %lld must be a positive multiple of 4",
                (long long)dim);
    MDT_REQUIRE(interpolation_scale > 0.0f && interpolation_scale < __builtin_inff(),
                "mdt_embed_position_2d: interpolation scale must be positive and finite");
    MDT_REQUIRE(out, "mdt_embed_position_2d: NULL tensor pointer");
    int64_t n = grid_h * grid_w * dim;
    return MDT_LAUNCH(position_embedding_kernel, mdt::blocks_for(n, kThreads), kThreads, 0, stream, out, grid_w, dim,
                      interpolation_scale, n);
}

int mdt_embed_timestep(mdt_stream_t stream, const float *t, float *out, int64_t samples, int64_t size) {
    MDT_REQUIRE(samples >= 0 && size >= 1, "mdt_embed_timestep: need samples >= 0 and size >= 1, got %lld and %lld",
                (long long)samples, (long long)size);
    if (samples == 0) return MDT_SUCCESS;
    MDT_REQUIRE(t && out, "mdt_embed_timestep: NULL tensor pointer");
    int64_t n = samples * size;
    return MDT_LAUNCH(timestep_embedding_kernel, mdt::blocks_for(n, kThreads), kThreads, 0, stream, t, out, size, n);
}

}  // extern "C"
