package io.microdit.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.microdit.autograd.ActivationFunctions;
import io.microdit.autograd.GradScope;
import io.microdit.autograd.Graph;
import io.microdit.autograd.MatmulFunctions;
import io.microdit.autograd.Parameter;
import io.microdit.autograd.Precision;
import io.microdit.autograd.Variable;
import io.microdit.backend.Backend;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * GELU and the SwiGLU gate in the bf16 GEMM's epilogue (mdt_gemm_matmul_bf16_gelu, _gelu_bwd, _swiglu, _swiglu_bwd)
 * against the separate passes they replace, bit for bit: matmul into a BF16 tensor, then gelu or swigluGate; matmul
 * into a BF16 gradient, then geluBackward or swigluGateBackward. Shapes reach the epilogue's three store paths: the
 * quad-regrouped bf16 tile (n a multiple of 4), the element path (odd n) and split-K's second pass (a small output
 * over a long K); both GELU forms, every transpose. Then the model's functions built on them (geluProducts,
 * swigluLinears) against the ops they fuse, values and gradients.
 */
@Tag("emu")
class CudaActivationEpilogueTest extends CudaVersusCpu {

    @ParameterizedTest
    @CsvSource({
        "2, 37, 40, 24, false, false, false",
        "2, 37, 40, 24, true, true, true",
        "3, 19, 33, 21, false, true, false",
        "1, 24, 1024, 20, true, false, true",
        "1, 16, 2048, 16, false, false, false"})
    void fusedEpiloguesGiveTheSeparatePassesBits(int batch, int m, int k, int n, boolean transposeA,
                                                 boolean transposeB, boolean tanh) {
        Random random = new Random(batch * 1000L + m * 31L + k * 7L + n);
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            int[] aShape = transposeA ? new int[] {batch, k, m} : new int[] {batch, m, k};
            int[] bShape = transposeB ? new int[] {batch, n, k} : new int[] {batch, k, n};
            // Products of order 1-3: GELU's curved part, both signs.
            Tensor a = cuda.upload(uniform(host, random, 3f / (float) Math.sqrt(k), aShape).to(DType.BF16, host),
                    device);
            Tensor b = cuda.upload(random(host, random, bShape).to(DType.BF16, host), device);
            Tensor bias = cuda.upload(random(host, random, n), device);

            Tensor pre = poisoned(device, batch, m, n), out = poisoned(device, batch, m, n);
            cuda.matmulGelu(a, transposeA, b, transposeB, bias, pre, out, tanh);
            Tensor prePasses = poisoned(device, batch, m, n), outPasses = poisoned(device, batch, m, n);
            cuda.matmul(a, transposeA, b, transposeB, bias, prePasses, false);
            cuda.gelu(prePasses, outPasses, tanh);
            assertBits(prePasses, pre, "pre");
            assertBits(outPasses, out, "gelu(pre)");

            Tensor dPre = poisoned(device, batch, m, n);
            cuda.matmulGeluBackward(a, transposeA, b, transposeB, pre, dPre, tanh);
            Tensor dOut = poisoned(device, batch, m, n), dPrePasses = poisoned(device, batch, m, n);
            cuda.matmul(a, transposeA, b, transposeB, null, dOut, false);
            cuda.geluBackward(dOut, pre, dPrePasses, tanh);
            assertBits(dPrePasses, dPre, "dPre");

            // The gate: a (another product's output) and b = this product, gate = silu(a)·b; its backward.
            Tensor gateA = cuda.upload(uniform(host, random, 3f, batch, m, n).to(DType.BF16, host), device);
            Tensor gateB = poisoned(device, batch, m, n), gate = poisoned(device, batch, m, n);
            cuda.matmulSwiglu(a, transposeA, b, transposeB, bias, gateA, gateB, gate);
            Tensor gateBPasses = poisoned(device, batch, m, n), gatePasses = poisoned(device, batch, m, n);
            cuda.matmul(a, transposeA, b, transposeB, bias, gateBPasses, false);
            cuda.swigluGate(gateA, gateBPasses, gatePasses);
            assertBits(gateBPasses, gateB, "gate b");
            assertBits(gatePasses, gate, "silu(a)·b");

            Tensor dA = poisoned(device, batch, m, n), dB = poisoned(device, batch, m, n);
            cuda.matmulSwigluBackward(a, transposeA, b, transposeB, gateA, gateB, dA, dB);
            Tensor dAPasses = poisoned(device, batch, m, n), dBPasses = poisoned(device, batch, m, n);
            cuda.swigluGateBackward(dOut, gateA, gateB, dAPasses, dBPasses);
            assertBits(dAPasses, dA, "gate da");
            assertBits(dBPasses, dB, "gate db");
        }
    }

    @ParameterizedTest
    @CsvSource({"false", "true"})
    void otherDtypesTakeTheSeparatePassesOnBothBackends(boolean tanh) {
        // F32 operands have no fused kernel: both backends run the two passes, and agree within F32 tolerance.
        Random random = new Random(tanh ? 3 : 4);
        try (MemoryScope host = new MemoryScope("host")) {
            Tensor a = random(host, random, 5, 9), b = random(host, random, 9, 6), bias = random(host, random, 6);
            compare("matmulGelu f32", new Tensor[] {a, b, bias, output(host, 5, 6), output(host, 5, 6)},
                    t -> cpu.matmulGelu(t[0], false, t[1], false, t[2], t[3], t[4], tanh),
                    t -> cuda.matmulGelu(t[0], false, t[1], false, t[2], t[3], t[4], tanh));
            Tensor pre = random(host, random, 5, 6);
            compare("matmulGeluBackward f32", new Tensor[] {a, b, pre, output(host, 5, 6)},
                    t -> cpu.matmulGeluBackward(t[0], false, t[1], false, t[2], t[3], tanh),
                    t -> cuda.matmulGeluBackward(t[0], false, t[1], false, t[2], t[3], tanh));
            compare("matmulSwiglu f32", new Tensor[] {a, b, bias, pre, output(host, 5, 6), output(host, 5, 6)},
                    t -> cpu.matmulSwiglu(t[0], false, t[1], false, t[2], t[3], t[4], t[5]),
                    t -> cuda.matmulSwiglu(t[0], false, t[1], false, t[2], t[3], t[4], t[5]));
            Tensor gateB = random(host, random, 5, 6);
            compare("matmulSwigluBackward f32", new Tensor[] {a, b, pre, gateB, output(host, 5, 6), output(host, 5, 6)},
                    t -> cpu.matmulSwigluBackward(t[0], false, t[1], false, t[2], t[3], t[4], t[5]),
                    t -> cuda.matmulSwigluBackward(t[0], false, t[1], false, t[2], t[3], t[4], t[5]));
        }
    }

    @ParameterizedTest
    @CsvSource({"false", "true"})
    void aGateOrPreOfTheWrongShapeIsRefusedByBothBackends(boolean fused) {
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            Random random = new Random(9);
            DType type = fused ? DType.BF16 : DType.F32;
            for (Backend be : new Backend[] {cpu, cuda}) {
                MemoryScope scope = be == cpu ? host : device;
                Tensor a = be.upload(random(host, random, 4, 8).to(type, host), scope);
                Tensor b = be.upload(random(host, random, 8, 4).to(type, host), scope);
                Tensor pre = Tensor.empty(scope, type, 4, 4), wrong = Tensor.empty(scope, type, 4, 5);
                assertThrows(IllegalArgumentException.class,
                        () -> be.matmulGelu(a, false, b, false, null, pre, wrong, false), be.name());
                assertThrows(IllegalArgumentException.class,
                        () -> be.matmulGeluBackward(a, false, b, false, wrong, pre, false), be.name());
                assertThrows(IllegalArgumentException.class,
                        () -> be.matmulSwiglu(a, false, b, false, null, wrong, pre, pre), be.name());
                assertThrows(IllegalArgumentException.class,
                        () -> be.matmulSwigluBackward(a, false, b, false, pre, wrong, pre, pre), be.name());
            }
        }
    }

    /**
     * The experts' feed-forward as one function (MatmulFunctions.geluProducts) against the ops it fuses, in a bf16
     * graph on both backends: output and every gradient (x, w1, w2: parameters with and without an earlier
     * gradient) bit for bit.
     */
    @ParameterizedTest
    @CsvSource({"false", "true"})
    void geluProductsHasTheSeparateOpsValuesAndGradients(boolean secondStep) {
        for (Backend be : new Backend[] {cpu, cuda}) {
            int experts = 3, rows = 13, dim = 20, hidden = 28;
            Random random = new Random(secondStep ? 5 : 6);
            try (MemoryScope host = new MemoryScope("host")) {
                Tensor x = random(host, random, experts, rows, dim);
                Tensor w1 = uniform(host, random, 2f / (float) Math.sqrt(dim), experts, dim, hidden);
                Tensor w2 = random(host, random, experts, hidden, dim);
                Tensor seed = random(host, random, experts, rows, dim);
                float[][] fused = runExperts(be, true, secondStep, x, w1, w2, seed);
                float[][] separate = runExperts(be, false, secondStep, x, w1, w2, seed);
                String[] names = {"out", "dx", "dw1", "dw2"};
                for (int i = 0; i < names.length; i++) {
                    assertArrayEquals(separate[i], fused[i], be.name() + " " + names[i]);
                }
            }
        }
    }

    /**
     * The dense SwiGLU feed-forward as one function (MatmulFunctions.swigluLinears) against the three linears and the
     * gate it fuses, in a bf16 graph on both backends, with and without biases: output and every gradient bit for
     * bit. x is a BF16 activation for the fused function and the same values as F32 for the separate linears: x's
     * two contributions (w2's first, then w1's added to it) are summed in F32 by both, where separate linears on a
     * BF16 x store the first one as BF16 (before the fused backward's F32 target, dx differed in its low bits).
     */
    @ParameterizedTest
    @CsvSource({"false", "true"})
    void swigluLinearsHasTheSeparateOpsValuesAndGradients(boolean biases) {
        for (Backend be : new Backend[] {cpu, cuda}) {
            int rows = 11, dim = 16, hidden = 24;
            Random random = new Random(biases ? 7 : 8);
            try (MemoryScope host = new MemoryScope("host")) {
                Tensor[] weights = {
                    uniform(host, random, 2f / (float) Math.sqrt(dim), hidden, dim), random(host, random, hidden),
                    uniform(host, random, 2f / (float) Math.sqrt(dim), hidden, dim), random(host, random, hidden),
                    random(host, random, dim, hidden), random(host, random, dim)};
                Tensor x = random(host, random, 1, rows, dim), seed = random(host, random, 1, rows, dim);
                float[][] fused = runSwiglu(be, true, biases, x, weights, seed);
                float[][] separate = runSwiglu(be, false, biases, x, weights, seed);
                for (int i = 0; i < separate.length; i++) {
                    assertArrayEquals(separate[i], fused[i], be.name() + " output/gradient " + i);
                }
            }
        }
    }

    /**
     * The fused SwiGLU's backward on a BF16 x converts nothing: x's first contribution is written to its F32 gradient
     * and the second added there (before, the first was stored BF16 and widened by a convert to add the second).
     */
    @org.junit.jupiter.api.Test
    void swigluLinearsBackwardWritesXsGradientWithoutAConvert() {
        Random random = new Random(9);
        int rows = 13, dim = 16, hidden = 24;
        try (MemoryScope host = new MemoryScope("host"); MemoryScope params = cuda.scope("params");
             MemoryScope scope = cuda.scope("step")) {
            Parameter[] p = new Parameter[3];
            for (int i = 0; i < 3; i++) {
                Tensor w = i < 2 ? uniform(host, random, 2f / (float) Math.sqrt(dim), hidden, dim)
                        : random(host, random, dim, hidden);
                p[i] = new Parameter("w" + i, cuda.upload(w, params));
            }
            Graph g = new Graph(cuda, scope, Precision.BF16);
            Variable input = g.leaf(cuda.upload(random(host, random, 1, rows, dim).to(DType.BF16, host), scope));
            java.util.List<String> ops;
            try (GradScope ignored = g.recordGradients()) {
                Variable y = MatmulFunctions.swigluLinears(g, input, p[0], null, p[1], null, p[2], null,
                        DType.BF16);
                Tensor seed = cuda.upload(random(host, random, 1, rows, dim), scope);
                try (LaunchTrace trace = cuda.traceLaunches(false)) {
                    g.backward(y, seed);
                    ops = trace.calls().stream().map(LaunchTrace.OpCall::op).toList();
                }
            }
            assertEquals(DType.F32, input.grad().dtype());
            // The seed's bf16 copy for the last product comes first; nothing after the gate's backward converts.
            java.util.List<String> after = ops.subList(ops.indexOf("matmulSwigluBackward"), ops.size());
            assertEquals(0, after.stream().filter("convert"::equals).count(), "ops of the backward: " + ops);
        }
    }

    /**
     * out, dx and the gradients of w1, b1, w2, b2, w3, b3 (those present) of the SwiGLU FFN in a bf16 graph; x BF16
     * for the fused function, its values as F32 for the separate ops.
     */
    private static float[][] runSwiglu(Backend be, boolean fused, boolean biases, Tensor x, Tensor[] weights,
                                       Tensor seed) {
        try (MemoryScope params = be.scope("params"); MemoryScope scope = be.scope("step");
             MemoryScope host = new MemoryScope("run-host")) {
            Parameter[] p = new Parameter[weights.length];
            for (int i = 0; i < p.length; i++) {
                p[i] = i % 2 == 1 && !biases ? null : new Parameter("p" + i, be.upload(weights[i], params));
            }
            Graph g = new Graph(be, scope, Precision.BF16);
            Tensor bf16 = x.to(DType.BF16, host);
            Variable input = g.leaf(be.upload(fused ? bf16 : bf16.to(DType.F32, host), scope));
            java.util.List<float[]> results = new java.util.ArrayList<>();
            try (GradScope ignored = g.recordGradients()) {
                DType stored = g.activationType();
                Variable y = fused
                        ? MatmulFunctions.swigluLinears(g, input, p[0], p[1], p[2], p[3], p[4], p[5], stored)
                        : MatmulFunctions.linear(g, ActivationFunctions.swigluGate(g,
                                MatmulFunctions.linear(g, input, p[0], p[1], stored),
                                MatmulFunctions.linear(g, input, p[2], p[3], stored), g.matmulOperandType()),
                                p[4], p[5], stored);
                results.add(be.read(y.value()));
                g.backward(y, be.upload(seed, scope));
            }
            results.add(be.read(input.grad()));
            for (Parameter parameter : p) {
                if (parameter != null) {
                    results.add(be.read(parameter.grad()));
                }
            }
            return results.toArray(new float[0][]);
        }
    }

    /** out, dx, dw1, dw2 of gelu(bf16(x)·w1)·w2 in a bf16 graph; x is a BF16 activation as the MoE's routed rows. */
    private static float[][] runExperts(Backend be, boolean fused, boolean secondStep, Tensor x, Tensor w1, Tensor w2,
                                        Tensor seed) {
        try (MemoryScope host = new MemoryScope("run-host"); MemoryScope params = be.scope("params");
             MemoryScope scope = be.scope("step")) {
            Parameter p1 = new Parameter("w1", be.upload(w1.to(DType.F32, host), params));
            Parameter p2 = new Parameter("w2", be.upload(w2.to(DType.F32, host), params));
            if (secondStep) {
                // Gradients from an earlier backward: the products add to them.
                p1.gradBuffer();
                p2.gradBuffer();
                be.write(p1.grad(), seedValues(p1.grad().numel()));
                be.write(p2.grad(), seedValues(p2.grad().numel()));
            }
            Graph g = new Graph(be, scope, Precision.BF16);
            Variable input = g.leaf(be.upload(x.to(DType.BF16, host), scope));
            float[] out;
            try (GradScope ignored = g.recordGradients()) {
                Variable y = fused
                        ? MatmulFunctions.geluProducts(g, input, p1, p2, false, DType.BF16)
                        : MatmulFunctions.matmul(g, ActivationFunctions.gelu(g,
                                MatmulFunctions.matmul(g, input, false, p1, false, g.activationType()), false,
                                g.matmulOperandType()), false, p2, false, DType.BF16);
                out = be.read(y.value());
                g.backward(y, be.upload(seed, scope));
            }
            return new float[][] {out, be.read(input.grad()), be.read(p1.grad()), be.read(p2.grad())};
        }
    }

    private static float[] seedValues(long n) {
        float[] values = new float[Math.toIntExact(n)];
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) Math.sin(i * 0.37);
        }
        return values;
    }

    private static Tensor poisoned(MemoryScope device, int... shape) {
        Tensor t = Tensor.empty(device, DType.BF16, shape);
        cuda.fill(t, Float.NaN);
        return t;
    }

    private static void assertBits(Tensor expected, Tensor actual, String what) {
        float[] e = cuda.read(expected), a = cuda.read(actual);
        assertEquals(e.length, a.length, what);
        int[] eBits = new int[e.length], aBits = new int[a.length];
        for (int i = 0; i < e.length; i++) {
            eBits[i] = Float.floatToRawIntBits(e[i]);
            aBits[i] = Float.floatToRawIntBits(a[i]);
        }
        assertArrayEquals(eBits, aBits, what);
    }
}
