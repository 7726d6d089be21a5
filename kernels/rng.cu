// Philox4x32-10 uniform and normal floats, word for word the recipe of io.microdit.random.Philox (read its
// javadoc: it is the contract). Element e = offset + i uses block c = e >> 2 of counter (c, stream) under key
// seed, word j = e & 3. One thread per block of four elements computes the 10 rounds once and writes the
// elements of that block that fall inside the request. Uniform: (w >> 8) · 2^-24, exact. Normal: Box–Muller in
// double on the element's word pair (w0, w1) or (w2, w3), cosine for even e, sine for odd e, rounded to float;
// CUDA's double log/sin/cos may differ from Java's fdlibm by an ulp of double, which reaches the float result
// about once in 10^8 elements (one float ulp).
// Cost per call with n elements: about n/4 · 10 rounds of 2 multiplies (counted as n FLOPs uniform, 5n normal,
// as the CPU backend counts), 4n bytes written.
#include <math.h>

#include "common.cuh"

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ void philox(uint64_t c, uint64_t stream, uint64_t seed, uint32_t out[4]) {
    uint32_t x0 = static_cast<uint32_t>(c), x1 = static_cast<uint32_t>(c >> 32);
    uint32_t x2 = static_cast<uint32_t>(stream), x3 = static_cast<uint32_t>(stream >> 32);
    uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
    for (int round = 0; round < 10; round++) {
        if (round > 0) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        uint64_t product0 = static_cast<uint64_t>(0xD2511F53u) * x0;
        uint64_t product1 = static_cast<uint64_t>(0xCD9E8D57u) * x2;
        uint32_t y0 = static_cast<uint32_t>(product1 >> 32) ^ x1 ^ k0;
        uint32_t y2 = static_cast<uint32_t>(product0 >> 32) ^ x3 ^ k1;
        x1 = static_cast<uint32_t>(product1);
        x3 = static_cast<uint32_t>(product0);
        x0 = y0;
        x2 = y2;
    }
    out[0] = x0;
    out[1] = x1;
    out[2] = x2;
    out[3] = x3;
}

__global__ void philox_kernel(uint64_t seed, uint64_t stream, int64_t offset, float *out, int64_t n, int normal) {
    int64_t first_block = offset >> 2, last_block = (offset + n - 1) >> 2;
    int64_t blocks = last_block - first_block + 1;
    for (int64_t b = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; b < blocks; b += (int64_t)gridDim.x * blockDim.x) {
        int64_t c = first_block + b;
        uint32_t words[4];
        philox(static_cast<uint64_t>(c), stream, seed, words);
        for (int j = 0; j < 4; j++) {
            int64_t e = c * 4 + j;
            if (e < offset || e >= offset + n) continue;
            float value;
            if (!normal) {
                value = __uint2float_rn(words[j] >> 8) * 0x1p-24f;
            } else {
                int pair = j & 2;
                double u1 = (static_cast<double>(words[pair]) + 1.0) * 0x1p-32;
                double u2 = static_cast<double>(words[pair + 1]) * 0x1p-32;
                double radius = sqrt(-2.0 * log(u1));
                double theta = 6.283185307179586 * u2;
                value = static_cast<float>((j & 1) ? radius * sin(theta) : radius * cos(theta));
            }
            out[e - offset] = value;
        }
    }
}

int fill(const char *op, mdt_stream_t stream, uint64_t seed, uint64_t philox_stream, int64_t offset, float *out,
         int64_t n, int normal) {
    MDT_REQUIRE(offset >= 0, "%s: offset must be non-negative, got %lld", op, (long long)offset);
    MDT_REQUIRE(n >= 0 && offset <= INT64_MAX - n, "%s: %lld elements from offset %lld run past 2^63 - 1", op,
                (long long)n, (long long)offset);
    if (n == 0) return MDT_SUCCESS;
    MDT_REQUIRE(out, "%s: NULL output pointer", op);
    int64_t blocks = ((offset + n - 1) >> 2) - (offset >> 2) + 1;
    return MDT_LAUNCH(philox_kernel, mdt::blocks_for(blocks, kThreads), kThreads, 0, stream, seed, philox_stream,
                      offset, out, n, normal);
}

}  // namespace

extern "C" {

int mdt_rng_uniform(mdt_stream_t stream, uint64_t seed, uint64_t philox_stream, int64_t offset, float *out, int64_t n) {
    return fill("mdt_rng_uniform", stream, seed, philox_stream, offset, out, n, 0);
}

int mdt_rng_normal(mdt_stream_t stream, uint64_t seed, uint64_t philox_stream, int64_t offset, float *out, int64_t n) {
    return fill("mdt_rng_normal", stream, seed, philox_stream, offset, out, n, 1);
}

}  // extern "C"
