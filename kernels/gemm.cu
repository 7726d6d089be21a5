// F32 GEMM: out[b] = op(A[b])·op(B[b]) + bias (+ out[b] when accumulating), either operand transposed, batched
// with a stride per operand (0 shares one matrix across the batch), and the bias-gradient row sum.
// Algorithm: the classic shared-memory tiled GEMM. A 16×16 thread block computes a 32×32 tile of out, 2×2
// outputs per thread; each step stages a 32×32 tile of op(A) and of op(B) in shared memory (padded rows avoid
// bank conflicts), with the transposes folded into the loads, and accumulates in f32 registers. Tails in M, N
// and K are handled by zero-filling out-of-range tile elements. The bias add and the accumulate are fused
// into the epilogue. This is the correctness baseline; the tensor-core (mma.sync bf16) kernel comes later.
// Cost per call: 2·batch·M·N·K FLOPs; bytes ≈ 4·batch·(M·K·⌈N/32⌉ + K·N·⌈M/32⌉ + M·N (2M·N accumulating)).
// Row sum: one thread per column walking the rows in order (deterministic); rows·C FLOPs, 4·rows·C bytes.
#include "common.cuh"

namespace {

constexpr int kTile = 32;
constexpr int kThreadsPerSide = 16;

__global__ void gemm_kernel(const float *a, int transpose_a, const float *b, int transpose_b, const float *bias,
                            float *out, int64_t batch, int64_t m, int64_t n, int64_t k, int64_t stride_a,
                            int64_t stride_b, int accumulate) {
    __shared__ float a_tile[kTile][kTile + 1];  // a_tile[row of out][k]
    __shared__ float b_tile[kTile][kTile + 1];  // b_tile[k][column of out]
    int tx = threadIdx.x, ty = threadIdx.y, linear = ty * kThreadsPerSide + tx;
    int64_t row0 = static_cast<int64_t>(blockIdx.y) * kTile, column0 = static_cast<int64_t>(blockIdx.x) * kTile;
    for (int64_t batch_index = blockIdx.z; batch_index < batch; batch_index += gridDim.z) {
        const float *ab = a + batch_index * stride_a;
        const float *bb = b + batch_index * stride_b;
        float *ob = out + batch_index * m * n;
        float acc[2][2] = {{0.0f, 0.0f}, {0.0f, 0.0f}};
        for (int64_t k0 = 0; k0 < k; k0 += kTile) {
            for (int e = linear; e < kTile * kTile; e += kThreadsPerSide * kThreadsPerSide) {
                int r = e / kTile, c = e % kTile;
                // Consecutive threads walk the operand's contiguous dimension, so global loads coalesce.
                int64_t row = row0 + (transpose_a ? c : r), kk = k0 + (transpose_a ? r : c);
                float value = 0.0f;
                if (row < m && kk < k) value = transpose_a ? ab[kk * m + row] : ab[row * k + kk];
                if (transpose_a) a_tile[c][r] = value; else a_tile[r][c] = value;
                int64_t column = column0 + (transpose_b ? r : c), kb = k0 + (transpose_b ? c : r);
                value = 0.0f;
                if (column < n && kb < k) value = transpose_b ? bb[column * k + kb] : bb[kb * n + column];
                if (transpose_b) b_tile[c][r] = value; else b_tile[r][c] = value;
            }
            __syncthreads();
            for (int kk = 0; kk < kTile; kk++) {
                float a0 = a_tile[ty][kk], a1 = a_tile[ty + kThreadsPerSide][kk];
                float b0 = b_tile[kk][tx], b1 = b_tile[kk][tx + kThreadsPerSide];
                acc[0][0] = fmaf(a0, b0, acc[0][0]);
                acc[0][1] = fmaf(a0, b1, acc[0][1]);
                acc[1][0] = fmaf(a1, b0, acc[1][0]);
                acc[1][1] = fmaf(a1, b1, acc[1][1]);
            }
            __syncthreads();
        }
        for (int i = 0; i < 2; i++) {
            for (int j = 0; j < 2; j++) {
                int64_t row = row0 + ty + i * kThreadsPerSide, column = column0 + tx + j * kThreadsPerSide;
                if (row < m && column < n) {
                    float value = acc[i][j];
                    if (bias) value += bias[column];
                    if (accumulate) value += ob[row * n + column];
                    ob[row * n + column] = value;
                }
            }
        }
    }
}

__global__ void sum_rows_kernel(const float *x, float *out, int64_t rows, int64_t columns, int accumulate) {
    for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < columns; c += (int64_t)gridDim.x * blockDim.x) {
        float sum = accumulate ? out[c] : 0.0f;
        for (int64_t r = 0; r < rows; r++) sum += x[r * columns + c];
        out[c] = sum;
    }
}

}  // namespace

extern "C" {

int mdt_gemm_matmul(mdt_stream_t stream, const float *a, int transpose_a, const float *b, int transpose_b,
                    const float *bias, float *out, int64_t batch, int64_t m, int64_t n, int64_t k, int64_t stride_a,
                    int64_t stride_b, int accumulate) {
    MDT_REQUIRE(batch >= 0 && m >= 0 && n >= 0 && k >= 0,
                "mdt_gemm_matmul: negative size (batch %lld, m %lld, n %lld, k %lld)", (long long)batch,
                (long long)m, (long long)n, (long long)k);
    MDT_REQUIRE(stride_a >= 0 && stride_b >= 0, "mdt_gemm_matmul: negative batch stride");
    MDT_REQUIRE(m / kTile < 65535, "mdt_gemm_matmul: m %lld exceeds the grid's y limit", (long long)m);
    if (batch == 0 || m == 0 || n == 0) return MDT_SUCCESS;
    MDT_REQUIRE(out && (k == 0 || (a && b)), "mdt_gemm_matmul: NULL tensor pointer");
    dim3 grid(static_cast<unsigned>((n + kTile - 1) / kTile), static_cast<unsigned>((m + kTile - 1) / kTile),
              static_cast<unsigned>(batch < 65535 ? batch : 65535));
    dim3 block(kThreadsPerSide, kThreadsPerSide);
    return MDT_LAUNCH(gemm_kernel, grid, block, 0, stream, a, transpose_a, b, transpose_b, bias, out, batch, m, n, k,
                      stride_a, stride_b, accumulate);
}

int mdt_gemm_sum_rows(mdt_stream_t stream, const float *x, float *out, int64_t rows, int64_t columns, int accumulate) {
    MDT_REQUIRE(rows >= 0 && columns > 0, "mdt_gemm_sum_rows: need rows >= 0 and columns > 0, got %lld and %lld",
                (long long)rows, (long long)columns);
    MDT_REQUIRE(out && (x || rows == 0), "mdt_gemm_sum_rows: NULL tensor pointer");
    return MDT_LAUNCH(sum_rows_kernel, mdt::blocks_for(columns, 128), 128, 0, stream, x, out, rows, columns, accumulate);
}

}  // extern "C"
