package io.microdit.backend.cuda;

import static io.microdit.backend.cuda.AttentionOperands.download;
import static io.microdit.backend.cuda.AttentionOperands.fetch;
import static io.microdit.backend.cuda.AttentionOperands.on;
import static io.microdit.backend.cuda.AttentionOperands.poisoned;
import static io.microdit.backend.cuda.AttentionOperands.scopeOf;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.backend.Backend;
import io.microdit.backend.cpu.CpuBackend;
import io.microdit.backend.cuda.AttentionOperands.Statistics;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
import java.lang.foreign.MemorySegment;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Self-attention over one q|k|v (normalizedSelfAttention and its backward: q, k and v read as column blocks of one
 * [N, T, 3·W] tensor, their gradients written into the column blocks of one) and cross-attention over one k|v
 * (normalizedCrossAttention: q [N, Tq, W], k and v the blocks of one [N, Tk, 2·W]) against the ops on the blocks
 * copied out (layerNormStatistics, normalizedAttention, its backward with BF16 gradients, each QK-norm's
 * layerNormBackward), bit for bit on each backend: statistics, out, lse and the gradients. Token counts leave tails
 * in the 64-row tiles (77 caption keys); q carries a large mean; head dimensions 32 and 64 take the tensor-core
 * kernels with strided rows, 128 the tensor-core forward and the copied-out backward, 16 the CUDA backend's
 * copied-out path. CUDA against the CPU within the bf16 attention tolerance. Outputs start as NaN.
 */
@Tag("emu")
class CudaAttentionOfBlocksTest {
    /** CudaNormalizedAttentionTest's: the tensor cores round P, dO and dS to bf16 where the CPU keeps F32. */
    private static final double TOLERANCE = 1e-2;
    private static final float EPS = 1e-6f;
    private static final String[] NAMES = {"qMean", "qRstd", "qCenter", "kMean", "kRstd", "kCenter", "out", "lse",
        "dq", "dkv"};
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

    /** queries 0: self-attention over one q|k|v of {@code keys} tokens; else cross-attention. */
    @ParameterizedTest
    @CsvSource({"2,3,64,0,70,true", "1,2,32,0,130,false", "2,2,16,0,9,true", "1,2,128,0,40,true",
        "2,3,64,70,77,true", "1,2,32,130,5,false", "2,2,16,5,9,true", "1,2,128,33,77,false"})
    void blocksOfOneProductEqualTheOpsOnTheBlocksOnBothBackendsAndCudaMatchesCpu(int batch, int heads, int headDim,
                                                                               int queries, int keys,
                                                                               boolean bf16DOut) {
        Random random = new Random(batch * 1009L + heads * 101L + headDim * 11L + queries * 7L + keys);
        int width = heads * headDim;
        boolean self = queries == 0;
        try (MemoryScope host = new MemoryScope("host")) {
            // q carries a large mean and k a small negative one, v none.
            Tensor kv = blocks(host, random, batch, keys, self ? new float[] {40f, -1.5f, 0f} : new float[] {-1.5f, 0f},
                    width);
            Tensor q = self ? kv : blocks(host, random, batch, queries, new float[] {40f}, width);
            Tensor dOut = TestData.uniform(host, random, batch, self ? keys : queries, width)
                    .to(bf16DOut ? DType.BF16 : DType.F32, host);
            Map<String, float[]> cpuPacked = null;
            for (Backend be : new Backend[] {cpu, cuda}) {
                String name = be == cpu ? "CPU" : "CUDA";
                Map<String, float[]> separate = onBlocks(be, host, q, kv, dOut, heads);
                Map<String, float[]> packed = packed(be, host, q, kv, dOut, heads);
                for (var e : separate.entrySet()) {
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
                for (String output : new String[] {"out", "dq", "dkv"}) {
                    double error = TestData.maxRelativeError(packed.get(output),
                            TestData.toDouble(cpuPacked.get(output)));
                    assertTrue(error <= TOLERANCE, output + ": CUDA differs from the CPU by " + error);
                }
            }
        }
    }

    /** BF16 [batch, tokens, offsets.length·width]: block b is offsets[b] + uniform in [-2, 2). */
    private static Tensor blocks(MemoryScope host, Random random, int batch, int tokens, float[] offsets, int width) {
        int columns = offsets.length * width;
        Tensor t = TestData.uniform(host, random, batch, tokens, columns);
        for (long i = 0; i < t.numel(); i++) {
            t.setFloat(i, offsets[(int) (i % columns / width)] + 2f * t.getFloat(i));
        }
        return t.to(DType.BF16, host);
    }

    /** normalizedSelfAttention (q == kv) or normalizedCrossAttention and its backward. */
    private static Map<String, float[]> packed(Backend be, MemoryScope host, Tensor q, Tensor kv, Tensor dOut,
                                               int heads) {
        boolean self = q == kv;
        try (MemoryScope scope = scopeOf(be)) {
            Statistics s = Statistics.poisoned(be, scope, dOut.rowCount(), kv.rowCount());
            Tensor out = poisoned(be, scope, DType.BF16, dOut.shape());
            Tensor lse = poisoned(be, scope, DType.F32, dOut.dim(0), heads, dOut.dim(1));
            Tensor kvs = on(be, scope, kv), qs = self ? kvs : on(be, scope, q), dOuts = on(be, scope, dOut);
            Tensor dkv = poisoned(be, scope, DType.BF16, kv.shape());
            Tensor dq = self ? dkv : poisoned(be, scope, DType.BF16, q.shape());
            if (self) {
                be.normalizedSelfAttention(kvs, heads, EPS, s.qMean(), s.qRstd(), s.qCenter(), s.kMean(), s.kRstd(),
                        s.kCenter(), out, lse);
                be.normalizedSelfAttentionBackward(dOuts, kvs, out, lse, heads, EPS, s.qMean(), s.qRstd(),
                        s.qCenter(), s.kMean(), s.kRstd(), s.kCenter(), dkv);
            } else {
                be.normalizedCrossAttention(qs, kvs, heads, EPS, s.qMean(), s.qRstd(), s.qCenter(), s.kMean(),
                        s.kRstd(), s.kCenter(), out, lse);
                be.normalizedCrossAttentionBackward(dOuts, qs, kvs, out, lse, heads, EPS, s.qMean(), s.qRstd(),
                        s.qCenter(), s.kMean(), s.kRstd(), s.kCenter(), dq, dkv);
            }
            return download(be, host, NAMES, s.qMean(), s.qRstd(), s.qCenter(), s.kMean(), s.kRstd(), s.kCenter(),
                    out, lse, dq, dkv);
        }
    }

    /** The same on q, k and v copied out, the gradients copied into the blocks of a dq and a dkv like q and kv. */
    private static Map<String, float[]> onBlocks(Backend be, MemoryScope host, Tensor q, Tensor kv, Tensor dOut,
                                                 int heads) {
        boolean self = q == kv;
        int width = dOut.dim(2);
        try (MemoryScope scope = scopeOf(be)) {
            Tensor[] kvBlocks = copiedBlocks(host, kv, width);
            AttentionOperands a = AttentionOperands.on(be, scope, self ? kvBlocks[0] : q, kvBlocks[self ? 1 : 0],
                    kvBlocks[self ? 2 : 1], heads, DType.BF16, DType.BF16);
            Statistics s = a.statistics;
            // a.dq and a.dk: the gradients of the normalised q and k, which each QK-norm's backward takes on.
            a.normalizedAttentionAndBackward(be, on(be, scope, dOut), heads, EPS);
            Tensor dq = poisoned(be, scope, DType.BF16, a.q.shape()), dk = poisoned(be, scope, DType.BF16, a.k.shape());
            be.layerNormBackward(a.dk, a.k, null, s.kMean(), s.kRstd(), dk, null);
            be.layerNormBackward(a.dq, a.q, null, s.qMean(), s.qRstd(), dq, null);
            Map<String, float[]> values = download(be, host, NAMES, s.qMean(), s.qRstd(), s.qCenter(), s.kMean(),
                    s.kRstd(), s.kCenter(), a.out, a.lse, dq, dk);
            float[][] kvGradients = self ? new float[][] {values.get("dq"), values.get("dkv"), fetch(be, host, a.dv)}
                    : new float[][] {values.get("dkv"), fetch(be, host, a.dv)};
            float[] dkv = interleaved(kvGradients, Math.toIntExact(kv.rowCount()), width);
            values.put("dkv", dkv);
            values.put("dq", self ? dkv : values.get("dq"));
            return values;
        }
    }

    /** The column blocks {@code width} wide of a host BF16 matrix, each a host [N, T, width]. */
    private static Tensor[] copiedBlocks(MemoryScope host, Tensor matrix, int width) {
        int count = matrix.dim(2) / width;
        long rows = matrix.rowCount();
        Tensor[] blocks = new Tensor[count];
        for (int b = 0; b < count; b++) {
            blocks[b] = Tensor.empty(host, DType.BF16, matrix.dim(0), matrix.dim(1), width);
            for (long r = 0; r < rows; r++) {
                MemorySegment.copy(matrix.segment(), (r * count + b) * width * 2L, blocks[b].segment(),
                        r * width * 2L, width * 2L);
            }
        }
        return blocks;
    }

    /** Blocks [rows, width] side by side: [rows, blocks·width]. */
    private static float[] interleaved(float[][] blocks, int rows, int width) {
        float[] matrix = new float[rows * blocks.length * width];
        for (int b = 0; b < blocks.length; b++) {
            for (int r = 0; r < rows; r++) {
                System.arraycopy(blocks[b], r * width, matrix, (r * blocks.length + b) * width, width);
            }
        }
        return matrix;
    }
}
