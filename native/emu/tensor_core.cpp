// The warp-level tensor-core instructions on the emulator, following the PTX ISA's fragment layouts
// ("Matrix fragments for mma.m16n8k16", "Matrix fragments for mma.m16n8k8" and "Warp-level matrix load
// instruction: ldmatrix"), and the tf32 conversion cvt.rna.tf32.f32. Each is a
// warp-collective: every lane deposits its operands with warp_gather (waiting like a shuffle), then computes its
// own share of the result from the whole warp's operands.
#include <cstdint>
#include <cstring>

#include "mdt_emu.h"
#include "microdit.h"

namespace mdt_emu {

namespace {

float bf16_half(uint32_t pair, int half) {
    uint32_t bits = (half ? pair >> 16 : pair & 0xffffu) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

/** The tf32 a tensor core reads from an operand register: its upper 19 bits. */
float tf32_value(uint32_t bits) {
    bits &= 0xffffe000u;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

struct MmaOperands {
    uint32_t a[4];
    uint32_t b[2];
};

}  // namespace

// Lane l = 4·group + t. A (16×16, row-major) element (r, k) sits in lane 4·(r mod 8) + (k mod 8)/2, register
// r/8 + 2·(k/8), half k mod 2 (the lower k in the low 16 bits). B (16×8, column-major) element (k, n) sits in
// lane 4·n + (k mod 8)/2, register k/8, half k mod 2. C and D element i of lane l is (group + 8·(i/2), 2t + i mod 2).
void mma_m16n8k16_bf16(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4]) {
    MmaOperands mine, warp[kWarpSize];
    std::memcpy(mine.a, a, sizeof(mine.a));
    std::memcpy(mine.b, b, sizeof(mine.b));
    warp_gather(&mine, sizeof(MmaOperands), warp, {"mma.sync.m16n8k16", __FILE__, __LINE__});
    int lane = lane_id(), group = lane >> 2, t = lane & 3;
    float result[4];
    for (int i = 0; i < 4; i++) {
        int row = group + 8 * (i >> 1), column = 2 * t + (i & 1);
        // bf16 products are exact in f32; they accumulate in f32 in k order.
        float sum = c[i];
        for (int k = 0; k < 16; k++) {
            const MmaOperands &holder_a = warp[4 * (row & 7) + ((k & 7) >> 1)];
            const MmaOperands &holder_b = warp[4 * column + ((k & 7) >> 1)];
            float av = bf16_half(holder_a.a[(row >> 3) + 2 * (k >> 3)], k & 1);
            float bv = bf16_half(holder_b.b[k >> 3], k & 1);
            sum += av * bv;
        }
        result[i] = sum;
    }
    std::memcpy(d, result, sizeof(result));
}

uint32_t to_tf32(float value) {
    uint32_t bits;
    std::memcpy(&bits, &value, 4);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return 0x7fffffffu;
    // Sign and magnitude: adding half of the dropped range rounds the magnitude to nearest, ties away from zero; a
    // carry walks into the exponent as it should (up to infinity), and an infinity has nothing to round.
    return (bits + 0x1000u) & 0xffffe000u;
}

// m16n8k8 .tf32, lane l = 4·group + t: A (16×8, row-major) element (r, k) sits in lane 4·(r mod 8) + k mod 4,
// register r/8 + 2·(k/4); B (8×8, column-major) element (k, n) in lane 4·n + k mod 4, register k/4; C and D as
// m16n8k16. The tensor cores read the upper 19 bits of each operand register (a tf32), ignoring the low 13.
void mma_m16n8k8_tf32(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4]) {
    MmaOperands mine, warp[kWarpSize];
    std::memcpy(mine.a, a, sizeof(mine.a));
    std::memcpy(mine.b, b, sizeof(mine.b));
    warp_gather(&mine, sizeof(MmaOperands), warp, {"mma.sync.m16n8k8", __FILE__, __LINE__});
    int lane = lane_id(), group = lane >> 2, t = lane & 3;
    float result[4];
    for (int i = 0; i < 4; i++) {
        int row = group + 8 * (i >> 1), column = 2 * t + (i & 1);
        // Products of two 11-bit significands are exact in f32; they accumulate in f32 in k order.
        float sum = c[i];
        for (int k = 0; k < 8; k++) {
            float av = tf32_value(warp[4 * (row & 7) + (k & 3)].a[(row >> 3) + 2 * (k >> 2)]);
            float bv = tf32_value(warp[4 * column + (k & 3)].b[k >> 2]);
            sum += av * bv;
        }
        result[i] = sum;
    }
    std::memcpy(d, result, sizeof(result));
}

// ldmatrix .m8n8 .b16: lanes 8i..8i+7 give the row addresses (16 bytes each) of matrix i. Without .trans lane
// l receives row l/4, columns 2(l mod 4) and 2(l mod 4)+1 of each matrix in that matrix's register; with .trans
// it receives the same positions of the transposed matrix, i.e. rows 2(l mod 4) and 2(l mod 4)+1 of column l/4.
// Row addresses must be 16-byte aligned and inside the block's shared memory (the GPU faults: misaligned or
// out-of-range address); x2 ignores lanes 16..31's.
void ldmatrix(uint32_t *registers, int matrices, bool transpose, const void *row) {
    const unsigned char *rows[kWarpSize];
    int lane = lane_id();
    if (lane < 8 * matrices) {
        check_shared_operand(matrices == 4 ? "ldmatrix.x4 row" : "ldmatrix.x2 row", row, 16);
        ldmatrix_access(row, __builtin_return_address(0));
    }
    warp_gather(&row, sizeof(row), rows, {"ldmatrix", __FILE__, __LINE__});
    for (int i = 0; i < matrices; i++) {
        uint16_t halves[2];
        for (int h = 0; h < 2; h++) {
            int r = transpose ? 2 * (lane & 3) + h : lane >> 2;
            int c = transpose ? lane >> 2 : 2 * (lane & 3) + h;
            std::memcpy(&halves[h], rows[8 * i + r] + 2 * c, 2);
        }
        registers[i] = static_cast<uint32_t>(halves[0]) | (static_cast<uint32_t>(halves[1]) << 16);
    }
    // The warp's reads complete before any lane goes on to write the rows (as the instruction's are).
    sync_warp(0xffffffffu, {"ldmatrix", __FILE__, __LINE__});
}

}  // namespace mdt_emu
