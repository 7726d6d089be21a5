package io.microdit.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The issue-12 targets of the hot kernels on the checked emulator's memory-access model (MemoryAccessModel): no bank
 * conflicts (excess shared wavefronts) and at least 90% global sector efficiency, at MicroDiT-XL's widths (D 1024,
 * head_dim 64, 16 heads, 8 experts at capacity 2) with few tokens, so that the once-per-block loads and the output
 * stores weigh as much as they do in the bench report. The counts are deterministic (a model of the hardware, not a
 * timing). Runs only with -Dmicrodit.device=emu-checked, like CheckedEmulatorTest.
 */
@Tag("emu")
class HotKernelAccessTest extends CudaVersusCpu {
    private static final int WIDTH = 1024;
    private static final int HEADS = 16;

    @BeforeAll
    static void onlyOnTheCheckedEmulator() {
        assumeTrue("emu-checked".equals(System.getProperty("microdit.device")),
                "runs in the checked-emulator surefire execution (-Dmicrodit.device=emu-checked)");
        assertTrue(CudaRuntime.isCheckedEmulator(), CudaRuntime.libraryPath());
    }

    /** The counts of every kernel {@code launches} runs, after a device synchronisation. */
    private static List<MemoryAccessModel.KernelCounts> counted(Runnable launches) {
        MemoryAccessModel.begin();
        launches.run();
        cuda.synchronize();
        List<MemoryAccessModel.KernelCounts> counts = MemoryAccessModel.end();
        System.out.print(MemoryAccessModel.format(counts));  // the numbers bench/RESULTS.md quotes
        return counts;
    }

    /** Asserts the targets for the kernel named {@code kernel} (one line of {@code counts}). */
    private static void assertMeetsTargets(List<MemoryAccessModel.KernelCounts> counts, String kernel) {
        MemoryAccessModel.KernelCounts c = counts.stream().filter(k -> k.kernel().equals(kernel)).findFirst()
                .orElseThrow(() -> new AssertionError(kernel + " not launched:\n" + MemoryAccessModel.format(counts)));
        String table = MemoryAccessModel.format(List.of(c));
        assertEquals(0, c.excessWavefronts(), () -> "bank conflicts:\n" + table);
        assertTrue(c.sectorEfficiency() >= 0.9, () -> "sector efficiency below 90%:\n" + table);
    }

    private static Tensor bf16(MemoryScope host, MemoryScope device, Random random, int... shape) {
        return cuda.upload(random(host, random, shape).to(DType.BF16, host), device);
    }

    private static Tensor f32(MemoryScope host, MemoryScope device, Random random, int... shape) {
        return cuda.upload(random(host, random, shape), device);
    }

    @Test
    void bf16GemmTilesAndStoresInEveryLayout() {
        Random random = new Random(121);
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            // 128 tokens through linear layers and a weight gradient: A tiles k-contiguous (A·Bᵀ, A·B) and
            // m-contiguous (Aᵀ·B), B tiles k- and n-contiguous; f32 out, bf16 out, and split-K partials (K = D with
            // only 2 output tiles).
            Tensor x = bf16(host, device, random, 128, WIDTH), w = bf16(host, device, random, 256, WIDTH);
            Tensor hidden = bf16(host, device, random, 128, 256), wt = bf16(host, device, random, 256, 256);
            Tensor bias = f32(host, device, random, 256);
            Tensor y = cuda.upload(output(host, 128, 256), device);
            Tensor yBf16 = device.zeros(DType.BF16, 128, 256);
            Tensor dw = cuda.upload(output(host, 256, WIDTH), device);
            List<MemoryAccessModel.KernelCounts> counts = counted(() -> {
                cuda.matmul(x, false, w, true, bias, y, false);
                cuda.matmul(hidden, false, wt, false, bias, yBf16, false);
                cuda.matmul(hidden, true, x, false, null, dw, false);
            });
            assertMeetsTargets(counts, "gemm_bf16");
        }
    }

    /**
     * q, k, v [1, tokens, W] random bf16 (in that order from {@code random}) on the device, out of {@code outType},
     * F32 gradients, the rest as AttentionOperands makes them.
     */
    private static AttentionOperands randomOperands(MemoryScope host, MemoryScope device, Random random, int tokens,
                                                    int heads, DType outType) {
        Tensor q = random(host, random, 1, tokens, WIDTH).to(DType.BF16, host);
        Tensor k = random(host, random, 1, tokens, WIDTH).to(DType.BF16, host);
        Tensor v = random(host, random, 1, tokens, WIDTH).to(DType.BF16, host);
        return AttentionOperands.on(cuda, device, q, k, v, heads, outType, DType.F32);
    }

    /**
     * F32 dO and gradients (the gradient kernels store f32 pairs as 64-bit words), at the backward's two head dims: 16
     * heads of 64, and 32 of 32, whose 80-byte shared rows pair rows r and r + 4 in a phase (paired_row in
     * attention.cu; rows r and r + 1 put 10–23% excess wavefronts on every bf16 attention kernel).
     */
    @ParameterizedTest
    @ValueSource(ints = {HEADS, 2 * HEADS})
    void bf16AttentionForwardAndBackward(int heads) {
        Random random = new Random(122);
        int tokens = 128, headDim = WIDTH / heads;
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            AttentionOperands a = randomOperands(host, device, random, tokens, heads, DType.F32);
            Tensor outBf16 = device.zeros(DType.BF16, 1, tokens, WIDTH);
            Tensor dOut = f32(host, device, random, 1, tokens, WIDTH);
            List<MemoryAccessModel.KernelCounts> counts = counted(() -> {
                cuda.attention(a.q, a.k, a.v, heads, a.out, a.lse);
                cuda.attention(a.q, a.k, a.v, heads, outBf16, a.lse);
                cuda.attentionBackward(dOut, a.q, a.k, a.v, outBf16, a.lse, heads, a.dq, a.dk, a.dv);
            });
            assertMeetsTargets(counts, "attention_forward_bf16_kernel<" + headDim + ">");
            assertMeetsTargets(counts, "attention_key_gradients_bf16_kernel");
            assertMeetsTargets(counts, "attention_query_gradients_bf16_kernel");
        }
    }

    /**
     * QK-norm fused into attention: the statistics pass and the attention kernels with their in-place normalisation
     * of the q and k tiles (F32 dO and gradients, as bf16AttentionForwardAndBackward measures the kernels without it).
     */
    @Test
    void bf16NormalizedAttentionForwardAndBackward() {
        Random random = new Random(123);
        int tokens = 128, headDim = WIDTH / HEADS;
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            AttentionOperands a = randomOperands(host, device, random, tokens, HEADS, DType.BF16);
            Tensor dOut = f32(host, device, random, 1, tokens, WIDTH);
            List<MemoryAccessModel.KernelCounts> counts = counted(
                    () -> a.normalizedAttentionAndBackward(cuda, dOut, HEADS, 1e-6f));
            assertMeetsTargets(counts, "layer_norm");
            assertMeetsTargets(counts, "attention_forward_bf16_kernel<" + headDim + ">");
            assertMeetsTargets(counts, "attention_key_gradients_bf16_kernel");
            assertMeetsTargets(counts, "attention_query_gradients_bf16_kernel");
        }
    }

    /**
     * Self-attention over one q|k|v [tokens, 3·W] (normalizedSelfAttention and its backward): the statistics pass and
     * the attention kernels reading q, k and v rows 3·W apart, the gradients stored into q|k|v's gradient's column
     * blocks (BF16 dO and gradients, as a bf16 graph has them) and each QK-norm's backward in place there, with 16
     * heads of 64 and 32 of 32 (bf16AttentionForwardAndBackward says why both). The two gradient kernels meet the
     * targets with strided rows and with q, k and v of their own (normalizedAttentionBackward), at the same counts:
     * the strided rows cost nothing more. Their BF16 stores regroup a row's columns across the quad of lanes into
     * 8-byte stores; stored as 4-byte pairs (half a 32-byte sector per quad) they were at 80.8% and 88.0% with 16
     * heads of 64.
     */
    @ParameterizedTest
    @ValueSource(ints = {HEADS, 2 * HEADS})
    void bf16SelfAttentionOverOneQkv(int heads) {
        Random random = new Random(321);
        int tokens = 128, headDim = WIDTH / heads;
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            Tensor qkv = bf16(host, device, random, 1, tokens, 3 * WIDTH);
            AttentionOperands.Statistics s = AttentionOperands.Statistics.poisoned(cuda, device, tokens, tokens);
            Tensor out = device.zeros(DType.BF16, 1, tokens, WIDTH);
            Tensor lse = cuda.upload(output(host, 1, heads, tokens), device);
            Tensor dOut = bf16(host, device, random, 1, tokens, WIDTH);
            Tensor dqkv = device.zeros(DType.BF16, 1, tokens, 3 * WIDTH);
            List<MemoryAccessModel.KernelCounts> counts = counted(() -> {
                cuda.normalizedSelfAttention(qkv, heads, 1e-6f, s.qMean(), s.qRstd(), s.qCenter(), s.kMean(),
                        s.kRstd(), s.kCenter(), out, lse);
                cuda.normalizedSelfAttentionBackward(dOut, qkv, out, lse, heads, 1e-6f, s.qMean(), s.qRstd(),
                        s.qCenter(), s.kMean(), s.kRstd(), s.kCenter(), dqkv);
            });
            assertMeetsTargets(counts, "layer_norm");
            assertMeetsTargets(counts, "attention_forward_bf16_kernel<" + headDim + ">");
            assertMeetsTargets(counts, "layer_norm_backward_kernel");
            Tensor q = bf16(host, device, random, 1, tokens, WIDTH), k = bf16(host, device, random, 1, tokens, WIDTH);
            Tensor v = bf16(host, device, random, 1, tokens, WIDTH);
            Tensor dq = device.zeros(DType.BF16, 1, tokens, WIDTH), dk = device.zeros(DType.BF16, 1, tokens, WIDTH);
            Tensor dv = device.zeros(DType.BF16, 1, tokens, WIDTH);
            List<MemoryAccessModel.KernelCounts> contiguous = counted(() -> cuda.normalizedAttentionBackward(dOut, q, k,
                    v, out, lse, heads, 1e-6f, s.qCenter(), s.qRstd(), s.kCenter(), s.kRstd(), dq, dk, dv));
            for (String kernel : new String[] {"attention_key_gradients_bf16_kernel",
                "attention_query_gradients_bf16_kernel"}) {
                assertMeetsTargets(counts, kernel);
                assertMeetsTargets(contiguous, kernel);
                assertEquals(line(contiguous, kernel), line(counts, kernel), kernel + " with strided rows");
            }
        }
    }

    /** The counts of {@code kernel} without its name, for comparing two runs of it. */
    private static List<Long> line(List<MemoryAccessModel.KernelCounts> counts, String kernel) {
        MemoryAccessModel.KernelCounts c = counts.stream().filter(k -> k.kernel().equals(kernel)).findFirst()
                .orElseThrow(() -> new AssertionError(kernel + " not launched:\n" + MemoryAccessModel.format(counts)));
        return List.of(c.launches(), c.sharedRequests(), c.sharedWavefronts(), c.sharedIdealWavefronts(),
                c.globalRequests(), c.globalSectors(), c.globalIdealSectors());
    }

    @Test
    void moeDispatchAndCombineForwardAndBackward() {
        Random random = new Random(123);
        int tokens = 64, experts = 8, k = 2 * tokens / experts;  // capacity 2
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            Tensor probs = f32(host, device, random, 1, tokens, experts);
            Tensor gates = device.zeros(DType.F32, 1, experts, k), indices = device.zeros(DType.I32, 1, experts, k);
            cuda.expertChoiceTopK(probs, k, gates, indices);
            Tensor x = f32(host, device, random, 1, tokens, WIDTH);
            Tensor routed = device.zeros(DType.F32, experts, k, WIDTH);
            Tensor routedBf16 = device.zeros(DType.BF16, experts, k, WIDTH);
            Tensor h = bf16(host, device, random, experts, k, WIDTH);
            Tensor out = device.zeros(DType.F32, 1, tokens, WIDTH);
            Tensor dOut = f32(host, device, random, 1, tokens, WIDTH);
            Tensor dH = device.zeros(DType.F32, experts, k, WIDTH), dGates = device.zeros(DType.F32, 1, experts, k);
            Tensor dx = device.zeros(DType.F32, 1, tokens, WIDTH);
            // A bf16 graph's combine: bf16 out, and its backward from a bf16 dOut.
            Tensor outBf16 = device.zeros(DType.BF16, 1, tokens, WIDTH);
            Tensor dOutBf16 = bf16(host, device, random, 1, tokens, WIDTH);
            List<MemoryAccessModel.KernelCounts> counts = counted(() -> {
                cuda.moeDispatch(x, indices, routed);
                cuda.moeDispatch(x, indices, routedBf16);
                cuda.moeCombine(h, gates, indices, out);
                cuda.moeCombine(h, gates, indices, outBf16);
                cuda.moeCombineBackward(dOut, h, gates, indices, dH, dGates);
                cuda.moeCombineBackward(dOutBf16, h, gates, indices, dH, dGates);
                cuda.moeDispatchBackward(dH, indices, dx);
            });
            assertMeetsTargets(counts, "dispatch_kernel");
            assertMeetsTargets(counts, "token_rows_kernel");
            assertMeetsTargets(counts, "combine_backward_kernel");
        }
    }

    /**
     * The experts' gathered products (the dispatch inside the GEMM's operand load): the first product with GELU, its
     * A rows read from the tokens through the routed rows (k-contiguous tiles, a row index per tile row), and the
     * weight gradient, whose transposed A tiles walk the routed rows along K. 8 samples of 64 tokens at capacity 2
     * (128 routed rows per expert: one whole row tile), a hidden width of 256 (two column tiles), a top-k's routing.
     */
    @Test
    void moeGatheredExpertProducts() {
        Random random = new Random(124);
        int samples = 8, tokens = 64, experts = 8, k = 2 * tokens / experts, hidden = 256, rows = samples * k;
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            Tensor probs = f32(host, device, random, samples, tokens, experts);
            Tensor gates = device.zeros(DType.F32, samples, experts, k);
            Tensor indices = device.zeros(DType.I32, samples, experts, k);
            cuda.expertChoiceTopK(probs, k, gates, indices);
            Tensor x = bf16(host, device, random, samples, tokens, WIDTH);
            Tensor w = bf16(host, device, random, experts, WIDTH, hidden);
            Tensor pre = device.zeros(DType.BF16, experts, rows, hidden);
            Tensor out = device.zeros(DType.BF16, experts, rows, hidden);
            Tensor dPre = bf16(host, device, random, experts, rows, hidden);
            Tensor dw = device.zeros(DType.F32, experts, WIDTH, hidden);
            List<MemoryAccessModel.KernelCounts> counts = counted(() -> {
                cuda.moeExpertsGelu(x, indices, w, pre, out, false);
                cuda.moeExpertsWeightGradient(x, indices, dPre, dw, false);
            });
            assertMeetsTargets(counts, "gemm_bf16");
        }
    }

    /**
     * Residual + gate + LayerNorm + modulate (every DiT block's seams), forward and backward with bf16 f, output,
     * dOut and dF and the residual's incoming gradient added in place, as a bf16 graph runs them.
     */
    @Test
    void residualLayerNormForwardAndBackward() {
        Random random = new Random(321);
        int samples = 2, tokens = 8, rows = samples * tokens;
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            Tensor x = f32(host, device, random, samples, tokens, WIDTH), f = bf16(host, device, random, samples,
                    tokens, WIDTH);
            Tensor gate = f32(host, device, random, samples, WIDTH), weight = f32(host, device, random, WIDTH);
            Tensor shift = f32(host, device, random, samples, WIDTH), scale = f32(host, device, random, samples,
                    WIDTH);
            Tensor residual = device.zeros(DType.F32, samples, tokens, WIDTH);
            Tensor out = device.zeros(DType.BF16, samples, tokens, WIDTH);
            Tensor mean = device.zeros(DType.F32, rows), rstd = device.zeros(DType.F32, rows);
            Tensor dOut = bf16(host, device, random, samples, tokens, WIDTH);
            Tensor dx = f32(host, device, random, samples, tokens, WIDTH);
            Tensor dWeight = device.zeros(DType.F32, WIDTH), dShift = device.zeros(DType.F32, samples, WIDTH);
            Tensor dScale = device.zeros(DType.F32, samples, WIDTH), dGate = device.zeros(DType.F32, samples, WIDTH);
            Tensor dF = device.zeros(DType.BF16, samples, tokens, WIDTH);
            List<MemoryAccessModel.KernelCounts> counts = counted(() -> {
                cuda.residualLayerNorm(x, gate, f, weight, shift, scale, 1e-6f, residual, out, mean, rstd);
                cuda.residualLayerNormBackward(dOut, dx, residual, gate, f, weight, scale, mean, rstd, dx, dWeight,
                        dShift, dScale, dGate, dF);
            });
            assertMeetsTargets(counts, "residual_layer_norm_kernel");
            assertMeetsTargets(counts, "layer_norm_backward_kernel");
            assertMeetsTargets(counts, "residual_sums_kernel");
        }
    }

    /**
     * The gathered LayerNorm of patch_mixer_map_xout (XL's mixer width, 768; the deferred mask keeping a quarter of
     * the tokens), forward with a bf16 output and backward from a bf16 dOut into x's full-size gradient, with the
     * weight's column sum, as a bf16 graph runs them.
     */
    @Test
    void gatheredLayerNormForwardAndBackward() {
        Random random = new Random(325);
        int samples = 2, tokens = 16, kept = 4, width = 768, rows = samples * kept;
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            Tensor x = f32(host, device, random, samples, tokens, width), weight = f32(host, device, random, width);
            int[] keep = {13, 2, 7, 10, 0, 15, 4, 9};
            Tensor ids = cuda.upload(Tensor.ofInts(host, keep, samples, kept), device);
            Tensor out = device.zeros(DType.BF16, samples, kept, width);
            Tensor mean = device.zeros(DType.F32, rows), rstd = device.zeros(DType.F32, rows);
            Tensor dOut = bf16(host, device, random, samples, kept, width);
            Tensor dx = device.zeros(DType.F32, samples, tokens, width), dWeight = device.zeros(DType.F32, width);
            List<MemoryAccessModel.KernelCounts> counts = counted(() -> {
                cuda.gatherLayerNorm(x, ids, weight, 1e-6f, out, mean, rstd);
                cuda.gatherLayerNormBackward(dOut, x, ids, weight, mean, rstd, dx, dWeight, false);
            });
            assertMeetsTargets(counts, "layer_norm");
            assertMeetsTargets(counts, "layer_norm_backward_kernel");
        }
    }

    /** The same forward with an F32 output and its bf16 copy (the MoE's input: the router's and the experts'). */
    @Test
    void residualLayerNormWithABf16Copy() {
        Random random = new Random(323);
        int samples = 2, tokens = 8, rows = samples * tokens;
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            Tensor x = f32(host, device, random, samples, tokens, WIDTH), f = bf16(host, device, random, samples,
                    tokens, WIDTH);
            Tensor gate = f32(host, device, random, samples, WIDTH), weight = f32(host, device, random, WIDTH);
            Tensor shift = f32(host, device, random, samples, WIDTH), scale = f32(host, device, random, samples,
                    WIDTH);
            Tensor residual = device.zeros(DType.F32, samples, tokens, WIDTH);
            Tensor out = device.zeros(DType.F32, samples, tokens, WIDTH);
            Tensor copy = device.zeros(DType.BF16, samples, tokens, WIDTH);
            Tensor mean = device.zeros(DType.F32, rows), rstd = device.zeros(DType.F32, rows);
            List<MemoryAccessModel.KernelCounts> counts = counted(() -> cuda.residualLayerNorm(x, gate, f, weight,
                    shift, scale, 1e-6f, residual, out, copy, mean, rstd));
            assertMeetsTargets(counts, "residual_layer_norm_kernel");
        }
    }

    /** AdamW writing its bf16 working copies (every stepped weight, once a step), over a list of weight-sized tensors. */
    @Test
    void adamwWithBf16Copies() {
        Random random = new Random(322);
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            int[][] shapes = {{WIDTH, 64}, {3 * 64, WIDTH}, {WIDTH + 8, 32}};
            List<Tensor> params = new java.util.ArrayList<>(), grads = new java.util.ArrayList<>();
            List<Tensor> m = new java.util.ArrayList<>(), v = new java.util.ArrayList<>();
            List<Tensor> copies = new java.util.ArrayList<>();
            for (int[] shape : shapes) {
                params.add(f32(host, device, random, shape));
                grads.add(f32(host, device, random, shape));
                m.add(f32(host, device, random, shape));
                v.add(device.zeros(DType.F32, shape));
                copies.add(device.zeros(DType.BF16, shape));
            }
            List<MemoryAccessModel.KernelCounts> counts = counted(() -> cuda.adamw(params, grads, m, v, copies, 1e-3f,
                    0.9f, 0.999f, 1e-8f, 0.1f, 1, 1f));
            assertMeetsTargets(counts, "adamw_bf16_copy_multi_kernel");
        }
    }
}
