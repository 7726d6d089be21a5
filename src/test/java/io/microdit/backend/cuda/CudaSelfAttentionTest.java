package io.microdit.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.backend.Backend;
import io.microdit.backend.cpu.CpuBackend;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Self-attention over one q|k|v (normalizedSelfAttention and its backward, q, k and v read as column blocks of one
 * [N, T, 3·W] tensor and their gradients written into the column blocks of one) against the ops on the blocks copied
 * out (layerNormStatistics, normalizedAttention, its backward with BF16 gradients, each QK-norm's layerNormBackward),
 * bit for bit on each backend: statistics, out, lse and q|k|v's gradient. Token counts leave tails in the 64-row
 * tiles; q carries a large mean; head dimensions 32 and 64 take the tensor-core kernels with strided rows, 128 the
 * tensor-core forward and the copied-out backward, 16 the CUDA backend's copied-out path. CUDA against the CPU
 * within the bf16 attention tolerance. Outputs start as NaN.
 */
@Tag("emu")
class CudaSelfAttentionTest {
    /** CudaNormalizedAttentionTest's: the tensor cores round P, dO and dS to bf16 where the CPU keeps F32. */
    private static final double TOLERANCE = 1e-2;
    private static final float EPS = 1e-6f;
    private static final String[] NAMES = {"qMean", "qRstd", "qCenter", "kMean", "kRstd", "kCenter", "out", "lse",
        "dqkv"};
    private static CpuBackend cpu;
    private static CudaBackend cuda;

    @BeforeAll
    static void start() {
        cpu = new CpuBackend(2);
        cuda = new CudaBackend();
    }

    @AfterAll
    static void stop() {
        cuda.close();
        cpu.close();
    }

    @ParameterizedTest
    @CsvSource({"2,3,64,70,true", "1,2,32,130,false", "2,2,16,9,true", "1,2,128,40,true"})
    void oneQkvEqualsTheOpsOnItsBlocksOnBothBackendsAndCudaMatchesCpu(int batch, int heads, int headDim, int tokens,
                                                                      boolean bf16DOut) {
        Random random = new Random(batch * 1009L + heads * 101L + headDim * 11L + tokens);
        int width = heads * headDim;
        try (MemoryScope host = new MemoryScope("host")) {
            Tensor qkv = TestData.uniform(host, random, batch, tokens, 3 * width);
            for (long i = 0; i < qkv.numel(); i++) {
                // q's columns carry a large mean and k's a small negative one, v none.
                long column = i % (3 * width);
                float offset = column < width ? 40f : column < 2 * width ? -1.5f : 0f;
                qkv.setFloat(i, offset + 2f * qkv.getFloat(i));
            }
            qkv = qkv.to(DType.BF16, host);
            Tensor dOut = TestData.uniform(host, random, batch, tokens, width).to(bf16DOut ? DType.BF16 : DType.F32,
                    host);
            Map<String, float[]> cpuPacked = null;
            for (Backend be : new Backend[] {cpu, cuda}) {
                String name = be == cpu ? "CPU" : "CUDA";
                Map<String, float[]> blocks = onBlocks(be, host, qkv, dOut, heads);
                Map<String, float[]> packed = packed(be, host, qkv, dOut, heads);
                for (var e : blocks.entrySet()) {
                    float[] got = packed.get(e.getKey());
                    for (float value : got) {
                        assertTrue(!Float.isNaN(value), name + ": " + e.getKey() + " has an unwritten element");
                    }
                    assertArrayEquals(e.getValue(), got, name + ": " + e.getKey() + " differs from the ops on the "
                            + "blocks");
                }
                if (be == cpu) {
                    cpuPacked = packed;
                    continue;
                }
                for (String output : new String[] {"out", "dqkv"}) {
                    double error = TestData.maxRelativeError(packed.get(output),
                            TestData.toDouble(cpuPacked.get(output)));
                    assertTrue(error <= TOLERANCE, output + ": CUDA differs from the CPU by " + error);
                }
            }
        }
    }

    /** normalizedSelfAttention and its backward on qkv. */
    private static Map<String, float[]> packed(Backend be, MemoryScope host, Tensor qkv, Tensor dOut, int heads) {
        try (MemoryScope scope = scope(be)) {
            int rows = Math.toIntExact(qkv.rowCount());
            Tensor[] statistics = statistics(be, scope, rows);
            Tensor out = poisoned(be, scope, DType.BF16, dOut.shape());
            Tensor lse = poisoned(be, scope, DType.F32, qkv.dim(0), heads, qkv.dim(1));
            Tensor values = on(be, scope, qkv);
            be.normalizedSelfAttention(values, heads, EPS, statistics[0], statistics[1], statistics[2], statistics[3],
                    statistics[4], statistics[5], out, lse);
            Tensor dqkv = poisoned(be, scope, DType.BF16, qkv.shape());
            be.normalizedSelfAttentionBackward(on(be, scope, dOut), values, out, lse, heads, EPS, statistics[0],
                    statistics[1], statistics[2], statistics[3], statistics[4], statistics[5], dqkv);
            return download(be, host, statistics[0], statistics[1], statistics[2], statistics[3], statistics[4],
                    statistics[5], out, lse, dqkv);
        }
    }

    /** The same on q, k and v copied out of qkv, the gradients copied into one q|k|v gradient. */
    private static Map<String, float[]> onBlocks(Backend be, MemoryScope host, Tensor qkv, Tensor dOut, int heads) {
        int batch = qkv.dim(0), tokens = qkv.dim(1), width = qkv.dim(2) / 3, rows = batch * tokens;
        try (MemoryScope scope = scope(be)) {
            Tensor[] blocks = new Tensor[3];
            for (int b = 0; b < 3; b++) {
                Tensor block = Tensor.empty(host, DType.BF16, batch, tokens, width);
                for (long r = 0; r < rows; r++) {
                    java.lang.foreign.MemorySegment.copy(qkv.segment(), (r * 3 + b) * width * 2L, block.segment(),
                            r * width * 2L, width * 2L);
                }
                blocks[b] = on(be, scope, block);
            }
            Tensor[] statistics = statistics(be, scope, rows);
            be.layerNormStatistics(blocks[0], EPS, statistics[0], statistics[1], statistics[2]);
            be.layerNormStatistics(blocks[1], EPS, statistics[3], statistics[4], statistics[5]);
            Tensor out = poisoned(be, scope, DType.BF16, dOut.shape());
            Tensor lse = poisoned(be, scope, DType.F32, batch, heads, tokens);
            be.normalizedAttention(blocks[0], blocks[1], blocks[2], heads, EPS, statistics[2], statistics[1],
                    statistics[5], statistics[4], out, lse);
            int[] shape = blocks[0].shape();
            Tensor dqNormalized = poisoned(be, scope, DType.BF16, shape);
            Tensor dkNormalized = poisoned(be, scope, DType.BF16, shape);
            Tensor dv = poisoned(be, scope, DType.BF16, shape);
            be.normalizedAttentionBackward(on(be, scope, dOut), blocks[0], blocks[1], blocks[2], out, lse, heads, EPS,
                    statistics[2], statistics[1], statistics[5], statistics[4], dqNormalized, dkNormalized, dv);
            Tensor dq = poisoned(be, scope, DType.BF16, shape), dk = poisoned(be, scope, DType.BF16, shape);
            be.layerNormBackward(dkNormalized, blocks[1], null, statistics[3], statistics[4], dk, null);
            be.layerNormBackward(dqNormalized, blocks[0], null, statistics[0], statistics[1], dq, null);
            Map<String, float[]> values = download(be, host, statistics[0], statistics[1], statistics[2],
                    statistics[3], statistics[4], statistics[5], out, lse, dq);
            float[][] gradients = {values.get("dqkv"), fetch(be, host, dk), fetch(be, host, dv)};
            float[] dqkv = new float[rows * 3 * width];
            for (int b = 0; b < 3; b++) {
                for (int r = 0; r < rows; r++) {
                    System.arraycopy(gradients[b], r * width, dqkv, (r * 3 + b) * width, width);
                }
            }
            values.put("dqkv", dqkv);
            return values;
        }
    }

    /** mean, rstd and center of q, then of k, poisoned. */
    private static Tensor[] statistics(Backend be, MemoryScope scope, int rows) {
        return new Tensor[] {poisoned(be, scope, DType.F32, rows), poisoned(be, scope, DType.F32, rows),
            poisoned(be, scope, DType.F32, rows, 2), poisoned(be, scope, DType.F32, rows),
            poisoned(be, scope, DType.F32, rows), poisoned(be, scope, DType.F32, rows, 2)};
    }

    private static MemoryScope scope(Backend be) {
        return be == cuda ? cuda.scope("device") : new MemoryScope("cpu");
    }

    private static Tensor on(Backend be, MemoryScope scope, Tensor host) {
        return be == cuda ? cuda.upload(host, scope) : Tensor.empty(scope, host.dtype(), host.shape()).copyFrom(host);
    }

    private static Tensor poisoned(Backend be, MemoryScope scope, DType dtype, int... shape) {
        try (MemoryScope staging = new MemoryScope("poison")) {
            return on(be, scope, TestData.poisoned(staging, shape).to(dtype, staging));
        }
    }

    private static float[] fetch(Backend be, MemoryScope host, Tensor t) {
        return (be == cuda ? cuda.download(t, host) : t).to(DType.F32, host).toFloatArray();
    }

    private static Map<String, float[]> download(Backend be, MemoryScope host, Tensor... tensors) {
        Map<String, float[]> values = new LinkedHashMap<>();
        for (int i = 0; i < NAMES.length; i++) {
            values.put(NAMES[i], fetch(be, host, tensors[i]));
        }
        return values;
    }
}
