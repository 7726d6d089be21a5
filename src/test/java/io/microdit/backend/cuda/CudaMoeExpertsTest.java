package io.microdit.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.autograd.GradScope;
import io.microdit.autograd.Graph;
import io.microdit.autograd.MatmulFunctions;
import io.microdit.autograd.MoeFunctions;
import io.microdit.autograd.Precision;
import io.microdit.autograd.Variable;
import io.microdit.backend.Backend;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.function.BiFunction;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The experts' products with the dispatch inside their operand load (Backend.moeExpertsGelu and
 * moeExpertsWeightGradient: gemm.cu's gathered A through mdt_moe_routed_rows) against the same products on the
 * dispatched copy, bit for bit on the device (same tiles, same sums), for a top-k's routing (its kept routed rows)
 * and for indices from elsewhere (rows built per call); against the CPU backend's default; and MoeFunctions.experts
 * in a bf16 graph against dispatch + geluProducts, values and gradients bit for bit on both backends.
 */
@Tag("emu")
class CudaMoeExpertsTest extends CudaVersusCpu {
    private static Tensor bf16(MemoryScope host, Random random, int... shape) {
        return random(host, random, shape).to(DType.BF16, host);
    }

    /** The routed rows on {@code backend}, dispatched the unfused way: x (BF16) widened, dispatched to BF16 rows. */
    private static Tensor dispatched(Backend backend, MemoryScope scope, Tensor x, Tensor indices) {
        Tensor wide = scope.zeros(DType.F32, x.shape());
        backend.convert(x, wide);
        Tensor rows = scope.zeros(DType.BF16, indices.dim(1), indices.dim(0) * indices.dim(2), x.dim(2));
        backend.moeDispatch(wide, indices, rows);
        return rows;
    }

    private static void assertSameBits(String what, Tensor expected, Tensor actual, MemoryScope host) {
        assertArrayEquals(cuda.download(expected, host).toFloatArray(), cuda.download(actual, host).toFloatArray(),
                what);
    }

    /**
     * Gathered vs dispatched on the device for one shape: pre and out of the first product, and the weight gradient
     * written and accumulated; {@code topK} routes by the device's top-k (its kept rows), else uploaded indices.
     */
    private static void assertGatheredEqualsDispatched(Random random, int samples, int tokens, int experts, int k,
                                                       int dim, int hidden, boolean topK) {
        String what = Arrays.toString(new int[] {samples, tokens, experts, k, dim, hidden}) + (topK ? " top-k" : "");
        int rows = samples * k;
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            Tensor x = cuda.upload(bf16(host, random, samples, tokens, dim), device);
            Tensor indices = topK ? MoeRouting.topKIndices(cuda, host, device, random, samples, tokens, experts, k)
                    : cuda.upload(MoeRouting.distinctPickIndices(host, random, samples, tokens, experts, k), device);
            Tensor w = cuda.upload(bf16(host, random, experts, dim, hidden), device);
            Tensor routed = dispatched(cuda, device, x, indices);
            Tensor pre = cuda.upload(output(host, DType.BF16, experts, rows, hidden), device);
            Tensor out = cuda.upload(output(host, DType.BF16, experts, rows, hidden), device);
            Tensor expectedPre = device.zeros(DType.BF16, experts, rows, hidden);
            Tensor expectedOut = device.zeros(DType.BF16, experts, rows, hidden);
            cuda.moeExpertsGelu(x, indices, w, pre, out, false);
            cuda.matmulGelu(routed, false, w, false, null, expectedPre, expectedOut, false);
            assertSameBits(what + ": pre", expectedPre, pre, host);
            assertSameBits(what + ": out", expectedOut, out, host);

            Tensor dy = cuda.upload(bf16(host, random, experts, rows, hidden), device);
            Tensor start = random(host, random, experts, dim, hidden);
            for (boolean accumulate : new boolean[] {false, true}) {
                Tensor dw = cuda.upload(accumulate ? start : output(host, experts, dim, hidden), device);
                Tensor expected = cuda.upload(start, device);
                cuda.moeExpertsWeightGradient(x, indices, dy, dw, accumulate);
                cuda.matmul(routed, true, dy, false, null, expected, accumulate);
                assertSameBits(what + ": dw" + (accumulate ? " accumulated" : ""), expected, dw, host);
            }
        }
    }

    @Test
    void gatheredProductsHaveTheDispatchedProductsBits() {
        Random random = new Random(141);
        // Tails in every direction (27 routed rows, D 40 = 5 chunks, H 72); several row tiles per expert; a long
        // K = N·k (1,200 routed rows) with a small dW, which split-K cuts into slices; MicroDiT's 8 experts at k = T/4.
        assertGatheredEqualsDispatched(random, 3, 37, 4, 9, 40, 72, false);
        assertGatheredEqualsDispatched(random, 2, 300, 3, 150, 64, 136, false);
        assertGatheredEqualsDispatched(random, 4, 600, 2, 300, 16, 24, false);
        assertGatheredEqualsDispatched(random, 2, 64, 8, 16, 128, 96, true);
    }

    private static List<String> kernels(Runnable launches) {
        try (LaunchTrace trace = cuda.traceLaunches(false)) {
            launches.run();
            return trace.calls().stream().flatMap(c -> c.launches().stream()).map(LaunchTrace.Launch::kernel)
                    .toList();
        }
    }

    @Test
    void aTopKsRoutedRowsAreReusedUntilItsIndicesAreOverwritten() {
        Random random = new Random(146);
        int samples = 2, tokens = 30, experts = 3, k = 10, dim = 16, hidden = 24, rows = samples * k;
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            Tensor x = cuda.upload(bf16(host, random, samples, tokens, dim), device);
            Tensor w = cuda.upload(bf16(host, random, experts, dim, hidden), device);
            Tensor indices = MoeRouting.topKIndices(cuda, host, device, random, samples, tokens, experts, k);
            Tensor pre = device.zeros(DType.BF16, experts, rows, hidden), out = device.zeros(DType.BF16, experts,
                    rows, hidden);
            List<String> launched = kernels(() -> cuda.moeExpertsGelu(x, indices, w, pre, out, false));
            assertTrue(!launched.contains("routed_rows_kernel"), "the top-k's rows are read as kept: " + launched);

            // New indices written over the routing's: the products must follow them, not the top-k's rows.
            cuda.write(indices, MoeRouting.distinctPicks(random, samples, tokens, experts, k));
            launched = kernels(() -> cuda.moeExpertsGelu(x, indices, w, pre, out, false));
            assertEquals("routed_rows_kernel", launched.get(0), "rows built for the new indices: " + launched);
            Tensor expectedPre = device.zeros(DType.BF16, experts, rows, hidden);
            Tensor expectedOut = device.zeros(DType.BF16, experts, rows, hidden);
            cuda.matmulGelu(dispatched(cuda, device, x, indices), false, w, false, null, expectedPre, expectedOut,
                    false);
            assertSameBits("pre after a write", expectedPre, pre, host);
            assertSameBits("out after a write", expectedOut, out, host);
        }
    }

    @Test
    void gatheredProductsAgreeWithTheCpuBackend() {
        Random random = new Random(142);
        int samples = 2, tokens = 29, experts = 3, k = 11, dim = 24, hidden = 40, rows = samples * k;
        try (MemoryScope host = new MemoryScope("host")) {
            Tensor x = bf16(host, random, samples, tokens, dim);
            Tensor indices = MoeRouting.distinctPickIndices(host, random, samples, tokens, experts, k);
            Tensor w = bf16(host, random, experts, dim, hidden), dy = bf16(host, random, experts, rows, hidden);
            compare("moeExpertsGelu", new Tensor[] {x, indices, w, output(host, DType.BF16, experts, rows, hidden),
                    output(host, DType.BF16, experts, rows, hidden)},
                    a -> cpu.moeExpertsGelu(a[0], a[1], a[2], a[3], a[4], false),
                    a -> cuda.moeExpertsGelu(a[0], a[1], a[2], a[3], a[4], false));
            compare("moeExpertsWeightGradient", new Tensor[] {x, indices, dy, random(host, random, experts, dim,
                    hidden)}, a -> cpu.moeExpertsWeightGradient(a[0], a[1], a[2], a[3], true),
                    a -> cuda.moeExpertsWeightGradient(a[0], a[1], a[2], a[3], true));
        }
    }

    @Test
    void aWidthOffTheCopyAlignmentIsRefusedClearly() {
        Random random = new Random(143);
        int samples = 1, tokens = 9, experts = 2, k = 4, dim = 12, hidden = 16;
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            Tensor x = cuda.upload(bf16(host, random, samples, tokens, dim), device);
            Tensor indices = cuda.upload(MoeRouting.distinctPickIndices(host, random, samples, tokens, experts, k),
                    device);
            Tensor w = cuda.upload(bf16(host, random, experts, dim, hidden), device);
            Tensor pre = device.zeros(DType.BF16, experts, k, hidden), out = device.zeros(DType.BF16, experts, k, hidden);
            String message = assertThrows(IllegalArgumentException.class,
                    () -> cuda.moeExpertsGelu(x, indices, w, pre, out, false)).getMessage();
            assertTrue(message.contains("multiple of 8"), message);
        }
    }

    @Test
    void aBadIndexIsReportedAsTheDispatchsAndReadsAsAZeroRow() {
        Random random = new Random(144);
        int samples = 2, tokens = 20, experts = 2, k = 5, dim = 16, hidden = 8;
        int[] picks = MoeRouting.distinctPicks(random, samples, tokens, experts, k);
        picks[(experts + 1) * k + 2] = tokens + 4; // [1, 1, 2]
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            Tensor x = cuda.upload(bf16(host, random, samples, tokens, dim), device);
            Tensor indices = cuda.upload(Tensor.ofInts(host, picks, samples, experts, k), device);
            Tensor w = cuda.upload(bf16(host, random, experts, dim, hidden), device);
            Tensor pre = device.zeros(DType.BF16, experts, samples * k, hidden);
            Tensor out = device.zeros(DType.BF16, experts, samples * k, hidden);
            cuda.moeExpertsGelu(x, indices, w, pre, out, false);
            assertEquals("moeDispatch: indices[1, 1, 2] = 24 is not a token index in [0, 20)",
                    assertThrows(IllegalArgumentException.class, cuda::synchronize).getMessage());
            float[] values = cuda.download(pre, host).toFloatArray();
            int row = (1 * samples + 1) * k + 2; // expert 1, sample 1, slot 2
            for (int c = 0; c < hidden; c++) {
                assertEquals(0f, values[row * hidden + c], "the bad row's pre-activation");
            }
        }
    }

    private record Run(float[] output, List<float[]> gradients) {
    }

    /** A bf16 graph on {@code backend}: the MoE experts on leaves x, w1, w2 and their gradients for one seed. */
    private static Run run(Backend backend, MemoryScope scope, MemoryScope host, Tensor[] inputs, Tensor indices,
                           Tensor seed, BiFunction<Graph, Variable[], Variable> experts) {
        Graph g = new Graph(backend, scope, Precision.BF16);
        Variable[] leaves = new Variable[inputs.length];
        for (int i = 0; i < inputs.length; i++) {
            leaves[i] = g.leaf(backend == cuda ? cuda.upload(inputs[i], scope) : inputs[i]);
        }
        try (GradScope ignored = g.recordGradients()) {
            Variable out = experts.apply(g, leaves);
            g.backward(out, backend == cuda ? cuda.upload(seed, scope) : seed);
            List<float[]> gradients = new ArrayList<>();
            for (Variable leaf : leaves) {
                gradients.add(backend == cuda ? cuda.download(leaf.grad(), host).toFloatArray()
                        : leaf.grad().toFloatArray());
            }
            float[] output = backend == cuda ? cuda.download(out.value(), host).toFloatArray()
                    : out.value().toFloatArray();
            return new Run(output, gradients);
        }
    }

    @Test
    void theExpertsFunctionHasTheDispatchedCompositionsValuesAndGradients() {
        Random random = new Random(145);
        int samples = 2, tokens = 23, experts = 3, k = 7, dim = 16, hidden = 24;
        int[] picks = MoeRouting.distinctPicks(random, samples, tokens, experts, k);
        for (Backend backend : new Backend[] {cpu, cuda}) {
            try (MemoryScope host = new MemoryScope("host");
                 MemoryScope scope = backend == cuda ? cuda.scope("device") : new MemoryScope("cpu")) {
                Tensor[] inputs = {random(host, random, samples, tokens, dim),
                        random(host, random, experts, dim, hidden), random(host, random, experts, hidden, dim)};
                Tensor seed = random(host, random, experts, samples * k, dim).to(DType.BF16, host)
                        .to(DType.F32, host);
                Tensor hostIndices = Tensor.ofInts(host, picks, samples, experts, k);
                Tensor indices = backend == cuda ? cuda.upload(hostIndices, scope) : hostIndices;
                Run fused = run(backend, scope, host, inputs, indices, seed,
                        (g, v) -> MoeFunctions.experts(g, v[0], indices, v[1], v[2], DType.BF16));
                Run unfused = run(backend, scope, host, inputs, indices, seed,
                        (g, v) -> MatmulFunctions.geluProducts(g, MoeFunctions.dispatch(g, v[0], indices, experts,
                                DType.BF16), v[1], v[2], false, DType.BF16));
                String on = backend == cuda ? "cuda" : "cpu";
                assertArrayEquals(unfused.output(), fused.output(), on + ": output");
                for (int i = 0; i < inputs.length; i++) {
                    assertArrayEquals(unfused.gradients().get(i), fused.gradients().get(i),
                            on + ": gradient of input " + i);
                }
            }
        }
    }
}
