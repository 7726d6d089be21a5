package io.microdit.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.function.Consumer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Every kernel family run by the emulator with its blocks in forward, reverse and shuffled order
 * (mdt_emu_block_order): the results must be bit-identical to the forward run, since on a GPU blocks run in any
 * order and at once, and a kernel whose result depends on the order (a block reading another block's output,
 * two blocks writing one output without atomics, float atomics summing in arrival order) is a race there. The
 * forward run is also checked against the CPU backend (F32 within 1e-5 of the largest magnitude, bf16 paths within
 * their usual bounds, I32 exact). Sizes give every launch at least two blocks (grid-stride kernels get at most
 * kMaxGridBlocks = 4 on the emulator, common.cuh); outputs start as NaN (F32) or -7 (I32).
 */
@Tag("emu")
class CudaBlockOrderTest extends CudaVersusCpu {
    /** {order, seed} pairs run after the forward order. */
    private static final long[][] OTHER_ORDERS = {
        {CudaRuntime.BLOCK_ORDER_REVERSE, 0}, {CudaRuntime.BLOCK_ORDER_SHUFFLED, 0x5eed},
        {CudaRuntime.BLOCK_ORDER_SHUFFLED, 7}, {CudaRuntime.BLOCK_ORDER_SHUFFLED, 0xdecafbadL}};
    /** The tensor-core GEMM against the CPU's F32 product of the same bf16 values (CudaBf16GemmTest). */
    private static final double BF16_GEMM_TOLERANCE = 1e-4;
    /** The tensor-core attention rounds P, dO and dS to bf16 (CudaBf16AttentionTest). */
    private static final double BF16_ATTENTION_TOLERANCE = 1e-2;

    @BeforeEach
    void onlyOnTheEmulator() {
        assumeTrue(CudaRuntime.isEmulator(), "the block order is the hardware's on a GPU");
    }

    @AfterEach
    void forwardAgain() {
        CudaRuntime.blockOrder(CudaRuntime.BLOCK_ORDER_FORWARD, 0);
    }

    private static String orderName(long[] order) {
        return order[0] == CudaRuntime.BLOCK_ORDER_REVERSE ? "reverse" : "shuffled:" + order[1];
    }

    /**
     * Runs {@code cpuOp} once on host copies of {@code arguments} (BF16 ones as their exact F32 values) and
     * {@code cudaOp} on fresh device copies under each block order; every argument afterwards must hold the same
     * bits under every order as under forward, and the forward F32/I32 arguments must agree with the CPU's.
     */
    private static void check(String what, double tolerance, Tensor[] arguments, Consumer<Tensor[]> cpuOp,
                              Consumer<Tensor[]> cudaOp) {
        try (MemoryScope host = new MemoryScope("host")) {
            Tensor[] expected = new Tensor[arguments.length];
            for (int i = 0; i < arguments.length; i++) {
                if (arguments[i] != null) {
                    expected[i] = arguments[i].dtype() == DType.BF16 ? arguments[i].to(DType.F32, host)
                            : host.zeros(arguments[i].dtype(), arguments[i].shape()).copyFrom(arguments[i]);
                }
            }
            cpuOp.accept(expected);
            CudaRuntime.blockOrder(CudaRuntime.BLOCK_ORDER_FORWARD, 0);
            int[][] forward = runOnDevice(arguments, cudaOp);
            for (int i = 0; i < arguments.length; i++) {
                if (arguments[i] == null || arguments[i].dtype() == DType.BF16) {
                    continue;
                }
                int index = i;
                if (arguments[i].dtype() == DType.I32) {
                    assertArrayEquals(expected[i].toIntArray(), forward[i], () -> what + ": integer argument "
                            + index + " differs from the CPU");
                } else {
                    float[] got = new float[forward[i].length], want = expected[i].toFloatArray();
                    for (int e = 0; e < got.length; e++) {
                        got[e] = Float.intBitsToFloat(forward[i][e]);
                        if (Float.isNaN(got[e]) && Float.isNaN(want[e])) {
                            got[e] = 0f;
                            want[e] = 0f;
                        }
                    }
                    double error = TestData.maxRelativeError(got, TestData.toDouble(want));
                    assertTrue(error <= tolerance, () -> what + ": argument " + index + " differs from the CPU by "
                            + error);
                }
            }
            for (long[] order : OTHER_ORDERS) {
                CudaRuntime.blockOrder((int) order[0], order[1]);
                int[][] other = runOnDevice(arguments, cudaOp);
                for (int i = 0; i < arguments.length; i++) {
                    int index = i;
                    assertArrayEquals(forward[i], other[i], () -> what + ": argument " + index + " has other bits"
                            + " with the blocks in " + orderName(order) + " order than in forward order");
                }
            }
        } finally {
            CudaRuntime.blockOrder(CudaRuntime.BLOCK_ORDER_FORWARD, 0);
        }
    }

    private static void check(String what, Tensor[] arguments, Consumer<Tensor[]> cpuOp, Consumer<Tensor[]> cudaOp) {
        check(what, TOLERANCE, arguments, cpuOp, cudaOp);
    }

    /** The bits of every argument after {@code cudaOp} on device copies (null for a null argument). */
    private static int[][] runOnDevice(Tensor[] arguments, Consumer<Tensor[]> cudaOp) {
        try (MemoryScope host = new MemoryScope("download"); MemoryScope device = cuda.scope("device")) {
            Tensor[] copies = new Tensor[arguments.length];
            for (int i = 0; i < arguments.length; i++) {
                copies[i] = arguments[i] == null ? null : cuda.upload(arguments[i], device);
            }
            cudaOp.accept(copies);
            int[][] bits = new int[arguments.length][];
            for (int i = 0; i < arguments.length; i++) {
                if (copies[i] == null) {
                    continue;
                }
                Tensor back = cuda.download(copies[i], host);
                if (back.dtype() == DType.I32) {
                    bits[i] = back.toIntArray();
                } else {
                    float[] values = back.toFloatArray(); // BF16 widens exactly
                    bits[i] = new int[values.length];
                    for (int e = 0; e < values.length; e++) {
                        bits[i][e] = Float.floatToRawIntBits(values[e]);
                    }
                }
            }
            return bits;
        }
    }

    private static Tensor bf16(MemoryScope scope, Random random, float amplitude, int... shape) {
        return uniform(scope, random, amplitude, shape).to(DType.BF16, scope);
    }

    @Test
    void gemmF32AndBf16() {
        Random random = new Random(61);
        try (MemoryScope scope = new MemoryScope("inputs")) {
            // F32: 32×32 tiles, grid (2, 2, batch 2); both transposes, bias, accumulate.
            int m = 40, n = 37, k = 45;
            for (int variant = 0; variant < 4; variant++) {
                boolean ta = (variant & 1) != 0, tb = (variant & 2) != 0, accumulate = variant == 3;
                Tensor a = random(scope, random, 2, ta ? k : m, ta ? m : k);
                Tensor b = random(scope, random, 2, tb ? n : k, tb ? k : n);
                Tensor bias = variant == 2 ? null : random(scope, random, n);
                Tensor out = accumulate ? random(scope, random, 2, m, n) : output(scope, 2, m, n);
                check("matmul f32 variant " + variant, new Tensor[] {a, b, bias, out},
                        t -> cpu.matmul(t[0], ta, t[1], tb, t[2], t[3], accumulate),
                        t -> cuda.matmul(t[0], ta, t[1], tb, t[2], t[3], accumulate));
            }
            // BF16 tensor cores: 128×128 tiles, grid (2, 2, batch 2) with tails in n and m.
            int bm = 140, bn = 130, bk = 40;
            Tensor a = bf16(scope, random, 1, 2, bm, bk), b = bf16(scope, random, 1, 2, bn, bk);
            Tensor bias = random(scope, random, bn);
            check("matmul bf16", BF16_GEMM_TOLERANCE, new Tensor[] {a, b, bias, output(scope, 2, bm, bn)},
                    t -> cpu.matmul(t[0], false, t[1], true, t[2], t[3], false),
                    t -> cuda.matmul(t[0], false, t[1], true, t[2], t[3], false));
        }
    }

    @Test
    void attentionF32ForwardAndBackward() {
        Random random = new Random(62);
        try (MemoryScope scope = new MemoryScope("inputs")) {
            // 16-query tiles × N·H: grid (2, 4) forward; the backward's key tiles (16) × N·H and row-dot blocks.
            int samples = 2, queries = 19, keys = 40, heads = 2, width = heads * 16;
            Tensor q = uniform(scope, random, 2, samples, queries, width);
            Tensor k = uniform(scope, random, 2, samples, keys, width), v = random(scope, random, samples, keys, width);
            check("attention f32", new Tensor[] {q, k, v, output(scope, samples, queries, width),
                    output(scope, samples, heads, queries)},
                    t -> cpu.attention(t[0], t[1], t[2], heads, t[3], t[4]),
                    t -> cuda.attention(t[0], t[1], t[2], heads, t[3], t[4]));
            Tensor out = scope.zeros(samples, queries, width), lse = scope.zeros(samples, heads, queries);
            cpu.attention(q, k, v, heads, out, lse);
            Tensor dOut = random(scope, random, samples, queries, width);
            check("attention f32 backward", new Tensor[] {dOut, q, k, v, out, lse,
                    output(scope, samples, queries, width), output(scope, samples, keys, width),
                    output(scope, samples, keys, width)},
                    t -> cpu.attentionBackward(t[0], t[1], t[2], t[3], t[4], t[5], heads, t[6], t[7], t[8]),
                    t -> cuda.attentionBackward(t[0], t[1], t[2], t[3], t[4], t[5], heads, t[6], t[7], t[8]));
        }
    }

    @Test
    void attentionBf16ForwardAndBackward() {
        Random random = new Random(63);
        try (MemoryScope scope = new MemoryScope("inputs")) {
            // 64-row tiles: queries 70 and keys 77 give two tiles each (with tails) × N·H = 2.
            int samples = 1, queries = 70, keys = 77, heads = 2, width = heads * 32;
            Tensor q = bf16(scope, random, 4, samples, queries, width);
            Tensor k = bf16(scope, random, 1, samples, keys, width), v = bf16(scope, random, 1, samples, keys, width);
            check("attention bf16", BF16_ATTENTION_TOLERANCE, new Tensor[] {q, k, v,
                    output(scope, samples, queries, width), output(scope, samples, heads, queries)},
                    t -> cpu.attention(t[0], t[1], t[2], heads, t[3], t[4]),
                    t -> cuda.attention(t[0], t[1], t[2], heads, t[3], t[4]));
            Tensor out = scope.zeros(samples, queries, width), lse = scope.zeros(samples, heads, queries);
            cpu.attention(q.to(DType.F32, scope), k.to(DType.F32, scope), v.to(DType.F32, scope), heads, out, lse);
            Tensor dOut = random(scope, random, samples, queries, width);
            check("attention bf16 backward", BF16_ATTENTION_TOLERANCE, new Tensor[] {dOut, q, k, v, out, lse,
                    output(scope, samples, queries, width), output(scope, samples, keys, width),
                    output(scope, samples, keys, width)},
                    t -> cpu.attentionBackward(t[0], t[1], t[2], t[3], t[4], t[5], heads, t[6], t[7], t[8]),
                    t -> cuda.attentionBackward(t[0], t[1], t[2], t[3], t[4], t[5], heads, t[6], t[7], t[8]));
        }
    }

    @Test
    void expertChoiceRoutingForwardAndBackward() {
        Random random = new Random(64);
        try (MemoryScope scope = new MemoryScope("inputs")) {
            // Top-k: one block per (sample, expert) = 6; dispatch/combine backward: E·N·k = 30; the token→slot map:
            // one block per sample = 2; combine and the dispatch backward: N·T = 40 rows over 4 blocks.
            int n = 2, tokens = 20, experts = 3, k = 5, dim = 33;
            Tensor probs = scope.zeros(n, tokens, experts);
            for (int i = 0; i < probs.numel(); i++) {
                probs.setFloat(i, random.nextInt(9) / 8f); // many ties
            }
            int[] routed = {n, experts, k}, expertRows = {experts, n * k, dim};
            check("expertChoiceTopK", new Tensor[] {probs, output(scope, routed), output(scope, DType.I32, routed)},
                    t -> cpu.expertChoiceTopK(t[0], k, t[1], t[2]), t -> cuda.expertChoiceTopK(t[0], k, t[1], t[2]));
            Tensor gates = scope.zeros(routed), indices = scope.zeros(DType.I32, routed);
            cpu.expertChoiceTopK(probs, k, gates, indices);
            Tensor dGates = random(scope, random, routed), dProbs = random(scope, random, n, tokens, experts);
            check("expertChoiceTopKBackward", new Tensor[] {dGates, indices, dProbs},
                    t -> cpu.expertChoiceTopKBackward(t[0], t[1], t[2]),
                    t -> cuda.expertChoiceTopKBackward(t[0], t[1], t[2]));
            Tensor x = random(scope, random, n, tokens, dim);
            check("moeDispatch", new Tensor[] {x, indices, output(scope, expertRows)},
                    t -> cpu.moeDispatch(t[0], t[1], t[2]), t -> cuda.moeDispatch(t[0], t[1], t[2]));
            Tensor h = random(scope, random, expertRows), dx = random(scope, random, n, tokens, dim);
            check("moeDispatchBackward", new Tensor[] {h, indices, dx},
                    t -> cpu.moeDispatchBackward(t[0], t[1], t[2]), t -> cuda.moeDispatchBackward(t[0], t[1], t[2]));
            check("moeCombine", new Tensor[] {h, gates, indices, output(scope, n, tokens, dim)},
                    t -> cpu.moeCombine(t[0], t[1], t[2], t[3]), t -> cuda.moeCombine(t[0], t[1], t[2], t[3]));
            check("moeCombineBackward", new Tensor[] {dx, h, gates, indices, output(scope, expertRows),
                    output(scope, routed)},
                    t -> cpu.moeCombineBackward(t[0], t[1], t[2], t[3], t[4], t[5]),
                    t -> cuda.moeCombineBackward(t[0], t[1], t[2], t[3], t[4], t[5]));
            check("expertChoiceTopK, then combine and dispatch backward on the top-k's map", new Tensor[] {probs,
                    output(scope, routed), output(scope, DType.I32, routed), h, output(scope, n, tokens, dim), dx},
                    t -> {
                        cpu.expertChoiceTopK(t[0], k, t[1], t[2]);
                        cpu.moeCombine(t[3], t[1], t[2], t[4]);
                        cpu.moeDispatchBackward(t[3], t[2], t[5]);
                    }, t -> {
                        cuda.expertChoiceTopK(t[0], k, t[1], t[2]);
                        cuda.moeCombine(t[3], t[1], t[2], t[4]);
                        cuda.moeDispatchBackward(t[3], t[2], t[5]);
                    });
            // The top-k backward has a thread per (sample, expert): 3·48 = 144 of them over 2 blocks of 128.
            int wide = 48;
            Tensor manyExperts = scope.zeros(3, 8, wide);
            cpu.softmax(uniform(scope, random, 3, 3, 8, wide), manyExperts);
            Tensor wideGates = scope.zeros(3, wide, 2), wideIndices = scope.zeros(DType.I32, 3, wide, 2);
            cpu.expertChoiceTopK(manyExperts, 2, wideGates, wideIndices);
            check("expertChoiceTopKBackward, 144 (sample, expert) pairs", new Tensor[] {
                    random(scope, random, 3, wide, 2), wideIndices, random(scope, random, 3, 8, wide)},
                    t -> cpu.expertChoiceTopKBackward(t[0], t[1], t[2]),
                    t -> cuda.expertChoiceTopKBackward(t[0], t[1], t[2]));
        }
    }

    @Test
    void tokenRowsAndMeans() {
        Random random = new Random(65);
        try (MemoryScope scope = new MemoryScope("inputs")) {
            // Rows: one block per kept row (15); means: N·D = 390 columns, 2 blocks of 256, and N·T·D over 4.
            int samples = 3, tokens = 17, kept = 5, width = 130;
            int[] ids = new int[samples * kept];
            for (int s = 0; s < samples; s++) {
                System.arraycopy(random.ints(0, tokens).distinct().limit(kept).toArray(), 0, ids, s * kept, kept);
            }
            Tensor idTensor = Tensor.ofInts(scope, ids, samples, kept);
            Tensor x = random(scope, random, samples, tokens, width);
            Tensor rows = random(scope, random, samples, kept, width);
            check("gatherRows", new Tensor[] {x, idTensor, output(scope, samples, kept, width)},
                    t -> cpu.gatherRows(t[0], t[1], t[2]), t -> cuda.gatherRows(t[0], t[1], t[2]));
            check("scatterRows", new Tensor[] {rows, idTensor, output(scope, samples, tokens, width)},
                    t -> cpu.scatterRows(t[0], t[1], t[2]), t -> cuda.scatterRows(t[0], t[1], t[2]));
            check("meanTokens", new Tensor[] {x, output(scope, samples, width)},
                    t -> cpu.meanTokens(t[0], t[1]), t -> cuda.meanTokens(t[0], t[1]));
            check("meanTokensBackward", new Tensor[] {random(scope, random, samples, width),
                    output(scope, samples, tokens, width)},
                    t -> cpu.meanTokensBackward(t[0], t[1]), t -> cuda.meanTokensBackward(t[0], t[1]));
        }
    }

    @Test
    void layerNormsAndModulation() {
        Random random = new Random(66);
        try (MemoryScope scope = new MemoryScope("inputs")) {
            // One block per row (10); the weight and modulation sums: width 300 over blocks of 128 / 256.
            int samples = 2, tokens = 5, width = 300, rows = samples * tokens;
            int[] shape = {samples, tokens, width}, perSample = {samples, width};
            Tensor x = uniform(scope, random, 3, shape);
            for (int v = 0; v < x.numel(); v++) {
                x.setFloat(v, x.getFloat(v) + 5); // a mean far from zero
            }
            Tensor weight = random(scope, random, width), dOut = random(scope, random, shape);
            Tensor shift = random(scope, random, perSample), scale = random(scope, random, perSample);
            check("layerNorm", new Tensor[] {x, weight, output(scope, shape), output(scope, rows), output(scope, rows)},
                    t -> cpu.layerNorm(t[0], t[1], 1e-6f, t[2], t[3], t[4]),
                    t -> cuda.layerNorm(t[0], t[1], 1e-6f, t[2], t[3], t[4]));
            Tensor mean = scope.zeros(rows), rstd = scope.zeros(rows);
            cpu.layerNorm(x, weight, 1e-6f, scope.zeros(shape), mean, rstd);
            check("layerNormBackward", new Tensor[] {dOut, x, weight, mean, rstd, random(scope, random, width),
                    output(scope, shape)},
                    t -> cpu.layerNormBackward(t[0], t[1], t[2], t[3], t[4], t[6], t[5]),
                    t -> cuda.layerNormBackward(t[0], t[1], t[2], t[3], t[4], t[6], t[5]));
            check("layerNormModulate", new Tensor[] {x, weight, shift, scale, output(scope, shape),
                    output(scope, rows), output(scope, rows)},
                    t -> cpu.layerNormModulate(t[0], t[1], t[2], t[3], 1e-6f, t[4], t[5], t[6]),
                    t -> cuda.layerNormModulate(t[0], t[1], t[2], t[3], 1e-6f, t[4], t[5], t[6]));
            cpu.layerNormModulate(x, weight, shift, scale, 1e-6f, scope.zeros(shape), mean, rstd);
            check("layerNormModulateBackward", new Tensor[] {dOut, x, weight, scale, mean, rstd,
                    random(scope, random, width), output(scope, shape), output(scope, perSample),
                    output(scope, perSample)},
                    t -> cpu.layerNormModulateBackward(t[0], t[1], t[2], t[3], t[4], t[5], t[7], t[6], t[8], t[9]),
                    t -> cuda.layerNormModulateBackward(t[0], t[1], t[2], t[3], t[4], t[5], t[7], t[6], t[8], t[9]));
            check("modulate", new Tensor[] {x, shift, scale, output(scope, shape)},
                    t -> cpu.modulate(t[0], t[1], t[2], t[3]), t -> cuda.modulate(t[0], t[1], t[2], t[3]));
            check("modulateBackward", new Tensor[] {dOut, x, scale, output(scope, shape), output(scope, perSample),
                    output(scope, perSample)},
                    t -> cpu.modulateBackward(t[0], t[1], t[2], t[3], t[4], t[5]),
                    t -> cuda.modulateBackward(t[0], t[1], t[2], t[3], t[4], t[5]));
            check("gatedResidualBackward", new Tensor[] {dOut, shift, x, output(scope, perSample),
                    output(scope, shape)},
                    t -> cpu.gatedResidualBackward(t[0], t[1], t[2], t[3], t[4]),
                    t -> cuda.gatedResidualBackward(t[0], t[1], t[2], t[3], t[4]));
            Tensor matrix = x.reshape(rows, width);
            check("sumRows", new Tensor[] {matrix, output(scope, width)},
                    t -> cpu.sumRows(t[0], t[1], false), t -> cuda.sumRows(t[0], t[1], false));
        }
    }

    @Test
    void edmLossForwardAndBackward() {
        Random random = new Random(67);
        try (MemoryScope scope = new MemoryScope("inputs")) {
            // One block per sample (3) and the mean; the backward over N·C·H·W = 864 (4 blocks of 256).
            int n = 3, c = 3, h = 8, w = 12, p = 4, patches = (h / p) * (w / p);
            Tensor denoised = uniform(scope, random, 2, n, c, h, w), target = uniform(scope, random, 2, n, c, h, w);
            Tensor weight = uniform(scope, random, 1, n), mask = scope.zeros(n, patches);
            for (int i = 0; i < n * patches; i++) {
                mask.setFloat(i, i % patches == 0 || random.nextInt(3) == 0 ? 1f : 0f);
            }
            mask.setFloat(1, 0f);
            float[] cpuLoss = new float[1];
            List<Float> cudaLosses = new ArrayList<>(); // forward, then each other order
            check("edmLoss", new Tensor[] {denoised, target, weight, mask, output(scope, n)},
                    t -> cpuLoss[0] = cpu.edmLoss(t[0], t[1], t[2], t[3], p, t[4]),
                    t -> cudaLosses.add(cuda.edmLoss(t[0], t[1], t[2], t[3], p, t[4])));
            assertEquals(1 + OTHER_ORDERS.length, cudaLosses.size());
            assertEquals(cpuLoss[0], cudaLosses.get(0), 1e-6 * Math.abs(cpuLoss[0]), "mean loss");
            for (float loss : cudaLosses) {
                assertEquals(Float.floatToRawIntBits(cudaLosses.get(0)), Float.floatToRawIntBits(loss),
                        "the mean loss has the same bits in every order: " + cudaLosses);
            }
            check("edmLossBackward", new Tensor[] {denoised, target, weight, mask, output(scope, n, c, h, w)},
                    t -> cpu.edmLossBackward(0.7f, t[0], t[1], t[2], t[3], p, t[4]),
                    t -> cuda.edmLossBackward(0.7f, t[0], t[1], t[2], t[3], p, t[4]));
        }
    }

    @Test
    void optimizerUpdatesAndSumOfSquares() {
        Random random = new Random(68);
        try (MemoryScope scope = new MemoryScope("inputs")) {
            int n = 1000 + 37; // 4 blocks of 256, grid-stride tails
            Tensor param = random(scope, random, n), grad = random(scope, random, n);
            Tensor m = random(scope, random, n), v = uniform(scope, random, 1, n);
            for (int i = 0; i < n; i++) {
                v.setFloat(i, Math.abs(v.getFloat(i)));
            }
            check("adamw", new Tensor[] {param, grad, m, v},
                    t -> cpu.adamw(t[0], t[1], t[2], t[3], 1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, 7, 0.5f),
                    t -> cuda.adamw(t[0], t[1], t[2], t[3], 1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, 7, 0.5f));
            check("emaUpdate", new Tensor[] {param, grad},
                    t -> cpu.emaUpdate(t[0], t[1], 0.99f), t -> cuda.emaUpdate(t[0], t[1], 0.99f));
            double expected = cpu.sumOfSquares(grad);
            double[] sums = new double[1 + OTHER_ORDERS.length];
            try (MemoryScope device = cuda.scope("device")) {
                Tensor onDevice = cuda.upload(grad, device);
                sums[0] = cuda.sumOfSquares(onDevice);
                for (int o = 0; o < OTHER_ORDERS.length; o++) {
                    CudaRuntime.blockOrder((int) OTHER_ORDERS[o][0], OTHER_ORDERS[o][1]);
                    sums[1 + o] = cuda.sumOfSquares(onDevice);
                }
            }
            assertEquals(expected, sums[0], 1e-12 * expected);
            for (int o = 0; o < OTHER_ORDERS.length; o++) {
                assertEquals(Double.doubleToRawLongBits(sums[0]), Double.doubleToRawLongBits(sums[1 + o]),
                        "sumOfSquares in " + orderName(OTHER_ORDERS[o]) + " order");
            }
        }
    }

    @Test
    void embeddingsActivationsSoftmaxAndRandomNumbers() {
        Random random = new Random(69);
        try (MemoryScope scope = new MemoryScope("inputs")) {
            int n = 2, c = 3, h = 8, w = 12, p = 2; // 576 patch elements: 3 blocks of 256
            int[] image = {n, c, h, w}, tokens = {n, (h / p) * (w / p), c * p * p};
            check("patchify", new Tensor[] {random(scope, random, image), output(scope, tokens)},
                    t -> cpu.patchify(t[0], p, t[1]), t -> cuda.patchify(t[0], p, t[1]));
            check("unpatchify", new Tensor[] {random(scope, random, tokens), output(scope, image)},
                    t -> cpu.unpatchify(t[0], p, t[1]), t -> cuda.unpatchify(t[0], p, t[1]));
            check("patchifyBackward", new Tensor[] {random(scope, random, tokens), output(scope, image)},
                    t -> cpu.patchifyBackward(t[0], p, t[1]), t -> cuda.patchifyBackward(t[0], p, t[1]));
            check("positionEmbedding2d", new Tensor[] {output(scope, 8 * 8, 64)},
                    t -> cpu.positionEmbedding2d(8, 8, 0.5f, t[0]), t -> cuda.positionEmbedding2d(8, 8, 0.5f, t[0]));
            check("timestepEmbedding", new Tensor[] {uniform(scope, random, 3, 5), output(scope, 5, 256)},
                    t -> cpu.timestepEmbedding(t[0], t[1]), t -> cuda.timestepEmbedding(t[0], t[1]));

            int[] shape = {3, 17, 33}; // 1683 elements over 4 grid-stride blocks
            Tensor x = uniform(scope, random, 6, shape), b = uniform(scope, random, 2, shape);
            Tensor dOut = random(scope, random, shape);
            check("gelu", new Tensor[] {x, output(scope, shape)},
                    t -> cpu.gelu(t[0], t[1], true), t -> cuda.gelu(t[0], t[1], true));
            check("siluBackward", new Tensor[] {dOut, x, output(scope, shape)},
                    t -> cpu.siluBackward(t[0], t[1], t[2]), t -> cuda.siluBackward(t[0], t[1], t[2]));
            check("swigluGateBackward", new Tensor[] {dOut, x, b, output(scope, shape), output(scope, shape)},
                    t -> cpu.swigluGateBackward(t[0], t[1], t[2], t[3], t[4]),
                    t -> cuda.swigluGateBackward(t[0], t[1], t[2], t[3], t[4]));
            // Softmax: a warp per row, 4 rows per block; 51 rows over 4 grid-stride blocks.
            check("softmax", new Tensor[] {x, output(scope, shape)},
                    t -> cpu.softmax(t[0], t[1]), t -> cuda.softmax(t[0], t[1]));
            Tensor y = scope.zeros(shape);
            cpu.softmax(x, y);
            check("softmaxBackward", new Tensor[] {dOut, y, output(scope, shape)},
                    t -> cpu.softmaxBackward(t[0], t[1], t[2]), t -> cuda.softmaxBackward(t[0], t[1], t[2]));
            check("convert to bf16 and back", new Tensor[] {x, output(scope, shape)}, t -> t[1].copyFrom(
                    t[0].to(DType.BF16, scope).to(DType.F32, scope)), t -> {
                        try (MemoryScope half = cuda.scope("bf16")) {
                            Tensor rounded = half.zeros(DType.BF16, shape);
                            cuda.convert(t[0], rounded);
                            cuda.convert(rounded, t[1]);
                        }
                    });

            // Philox: 4 values per counter, 1000 counters over 4 grid-stride blocks.
            long seed = 0x1234_5678_9abcL;
            check("uniform", 0, new Tensor[] {output(scope, 4001)},
                    t -> cpu.uniform(seed, 42, 3, t[0]), t -> cuda.uniform(seed, 42, 3, t[0]));
            check("normal", new Tensor[] {output(scope, 4001)},
                    t -> cpu.normal(seed, 42, 3, t[0]), t -> cuda.normal(seed, 42, 3, t[0]));
        }
    }

    @Test
    void aBadOrderIsRefusedAndTheOrderStays() {
        IllegalArgumentException error = assertThrows(IllegalArgumentException.class,
                () -> CudaRuntime.blockOrder(-1, 0));
        assertTrue(error.getMessage().contains("mdt_emu_block_order") && error.getMessage().contains("order -1"),
                error.getMessage());
        float[] out = new float[11];
        int threads = CudaRuntime.emulatorThreads(1); // blocks one after another: the last claimed writes last
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment segment = arena.allocate(ValueLayout.JAVA_FLOAT, out.length);
            assertEquals(CudaRuntime.SUCCESS, RuntimeBindings.mdt_selftest_run(arena.allocateFrom("block_order"), 9,
                    32, 0, segment, out.length));
            out = segment.toArray(ValueLayout.JAVA_FLOAT);
        } finally {
            CudaRuntime.emulatorThreads(threads);
        }
        assertEquals(8f, out[0], "still forward: the last block writes last; " + Arrays.toString(out));
    }
}
