package io.microdit.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.backend.Backend;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.lang.foreign.ValueLayout;
import java.util.Random;
import java.util.function.Function;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The _bf16out kernels (LayerNorm, LayerNorm+modulate, GELU, the SwiGLU gate) against the same kernels' F32 output
 * converted on the device (the same bits: one rounding of the same f32 result) and against the CPU backend's bf16
 * output (within one bf16 ulp: the emulator's erff and expf may differ from the CPU's in the last f32 bit, which
 * can move a result across a rounding boundary). Outputs start as NaN; shapes leave tails.
 */
@Tag("emu")
class CudaBf16OutputTest extends CudaVersusCpu {
    private record Outputs(short[] direct, short[] converted) {
    }

    /** An op on one backend: inputs and out there; {@code scratch} makes poisoned F32 tensors there. */
    @FunctionalInterface
    private interface Op {
        void apply(Backend backend, Tensor[] inputs, Tensor out, Function<int[], Tensor> scratch);
    }

    /** {@code op} with a BF16 out, and with an F32 out then convert, on {@code backend}; returns both outputs' bits. */
    private static Outputs run(Backend backend, MemoryScope host, MemoryScope device, Tensor[] inputs, int[] shape,
                               Op op) {
        Function<Tensor, Tensor> place = t -> backend == cuda ? cuda.upload(t, device) : t;
        Function<int[], Tensor> scratch = s -> place.apply(output(host, s));
        Tensor[] args = new Tensor[inputs.length];
        for (int i = 0; i < inputs.length; i++) {
            args[i] = inputs[i] == null ? null : place.apply(inputs[i]);
        }
        Tensor f32 = scratch.apply(shape);
        op.apply(backend, args, f32, scratch);
        Tensor converted = place.apply(poisonedBf16(host, shape));
        backend.convert(f32, converted);
        Tensor direct = place.apply(poisonedBf16(host, shape));
        op.apply(backend, args, direct, scratch);
        Function<Tensor, Tensor> back = t -> backend == cuda ? cuda.download(t, host) : t;
        return new Outputs(bits(back.apply(direct)), bits(back.apply(converted)));
    }

    private static Tensor poisonedBf16(MemoryScope scope, int... shape) {
        Tensor t = Tensor.zeros(scope, DType.BF16, shape);
        t.segment().fill((byte) 0xFF);
        return t;
    }

    private static short[] bits(Tensor t) {
        assertEquals(DType.BF16, t.dtype());
        return t.segment().toArray(ValueLayout.JAVA_SHORT);
    }

    /** Same bits on the device for both paths; within one bf16 ulp of the CPU (same sign, NaN where it has NaN). */
    private static void check(String what, Tensor[] inputs, int[] shape, Op op) {
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            Outputs gpu = run(cuda, host, device, inputs, shape, op);
            assertArrayEquals(gpu.converted(), gpu.direct(), what + ": bf16 output vs f32 output then convert");
            Outputs cpuResult = run(cpu, host, device, inputs, shape, op);
            assertArrayEquals(cpuResult.converted(), cpuResult.direct(), what + ": on the CPU backend");
            short[] expected = cpuResult.direct(), actual = gpu.direct();
            for (int i = 0; i < expected.length; i++) {
                int e = expected[i] & 0xffff, a = actual[i] & 0xffff;
                boolean bothNaN = (e & 0x7fff) > 0x7f80 && (a & 0x7fff) > 0x7f80;
                int index = i;
                assertTrue(bothNaN || ((e ^ a) & 0x8000) == 0 && Math.abs(e - a) <= 1 && (a & 0x7fff) <= 0x7f80,
                        () -> what + ": element " + index + " is 0x" + Integer.toHexString(a) + ", the CPU's 0x"
                                + Integer.toHexString(e));
            }
        }
    }

    @Test
    void layerNormAndLayerNormModulate() {
        Random random = new Random(7);
        int samples = 2, tokens = 5, width = 37;
        try (MemoryScope scope = new MemoryScope("inputs")) {
            Tensor x = uniform(scope, random, 4f, samples, tokens, width);
            Tensor weight = random(scope, random, width);
            Tensor shift = random(scope, random, samples, width), scale = random(scope, random, samples, width);
            int[] shape = {samples, tokens, width};
            for (Tensor w : new Tensor[] {weight, null}) {
                check("layerNorm" + (w == null ? "" : " with weight"), new Tensor[] {x, w}, shape,
                        (be, in, out, scratch) -> be.layerNorm(in[0], in[1], 1e-6f, out,
                                scratch.apply(new int[] {samples * tokens}), scratch.apply(new int[] {samples * tokens})));
            }
            check("layerNormModulate", new Tensor[] {x, weight, shift, scale}, shape, (be, in, out, scratch) ->
                    be.layerNormModulate(in[0], in[1], in[2], in[3], 1e-6f, out,
                            scratch.apply(new int[] {samples * tokens}), scratch.apply(new int[] {samples * tokens})));
        }
    }

    @Test
    void geluBothFormsAndTheSwigluGate() {
        Random random = new Random(11);
        int n = 1029;
        try (MemoryScope scope = new MemoryScope("inputs")) {
            Tensor x = uniform(scope, random, 6f, n), b = uniform(scope, random, 3f, n);
            for (boolean tanh : new boolean[] {true, false}) {
                check("gelu" + (tanh ? " tanh" : " exact"), new Tensor[] {x}, new int[] {n},
                        (be, in, out, scratch) -> be.gelu(in[0], out, tanh));
            }
            check("swigluGate", new Tensor[] {x, b}, new int[] {n}, (be, in, out, scratch) -> be.swigluGate(in[0], in[1], out));
        }
    }

    /**
     * The bf16-output GEMM: bf16 operands, out rounded once from the f32 epilogue (bias, GELU) — the same bits as the
     * f32 output converted, on both backends; shapes cover paired and odd-column stores, a batched product with a
     * shared operand and a long K that takes split-K (the rounding then happens in the slices' second pass).
     */
    @Test
    void matmulWithABf16Output() {
        Random random = new Random(13);
        int[][] shapes = {{1, 70, 48, 40}, {1, 33, 37, 24}, {3, 20, 16, 8}, {1, 16, 24, 4096}}; // batch, m, n, k
        Op product = (be, in, out, scratch) -> be.matmul(in[0], false, in[1], true, in[2], out, false);
        try (MemoryScope scope = new MemoryScope("inputs"); MemoryScope device = cuda.scope("device")) {
            for (int[] s : shapes) {
                int batch = s[0], m = s[1], n = s[2], k = s[3];
                Tensor a = uniform(scope, random, 2f, batch, m, k).to(DType.BF16, scope);
                Tensor bT = uniform(scope, random, 2f, n, k).to(DType.BF16, scope); // shared, [n, k]: b transposed
                Tensor bias = random(scope, random, n);
                String what = "matmul " + batch + "×" + m + "×" + n + "×" + k;
                Outputs onCuda = run(cuda, scope, device, new Tensor[] {a, bT, bias}, new int[] {batch, m, n}, product);
                assertArrayEquals(onCuda.converted(), onCuda.direct(), what + ": bf16 out vs f32 out then convert");
                Outputs onCpu = run(cpu, scope, device, new Tensor[] {a, bT, bias}, new int[] {batch, m, n}, product);
                assertArrayEquals(onCpu.converted(), onCpu.direct(), what + ": on the CPU backend");
            }
        }
    }

    /**
     * Attention with a bf16 out (tensor-core head dims and the f32 fallback's): the f32 out rounded once, on both
     * backends; and the backward reading that bf16 out gives the same gradients bits as with its exact f32 upcast.
     */
    @Test
    void attentionWithABf16OutputAndItsBackward() {
        Random random = new Random(17);
        int batch = 2, heads = 2, queries = 37, keys = 70;
        for (int headDim : new int[] {16, 32, 64, 128}) {
            int width = heads * headDim;
            try (MemoryScope scope = new MemoryScope("inputs"); MemoryScope device = cuda.scope("device")) {
                Tensor q = uniform(scope, random, 2f, batch, queries, width).to(DType.BF16, scope);
                Tensor k = uniform(scope, random, 2f, batch, keys, width).to(DType.BF16, scope);
                Tensor v = uniform(scope, random, 2f, batch, keys, width).to(DType.BF16, scope);
                Op forward = (be, in, out, scratch) -> be.attention(in[0], in[1], in[2], heads, out,
                        scratch.apply(new int[] {batch, heads, queries}));
                String what = "attention head_dim " + headDim;
                Outputs onCuda;
                try (LaunchTrace trace = cuda.traceLaunches(false)) {
                    onCuda = run(cuda, scope, device, new Tensor[] {q, k, v}, new int[] {batch, queries, width},
                            forward);
                    // Launches are named by kernel and numeric template arguments, whatever the output's type.
                    String expected = headDim == 16 ? "attention_forward_kernel"
                            : "attention_forward_bf16_kernel<" + headDim + ">";
                    assertTrue(trace.launches().stream().anyMatch(l -> l.kernel().equals(expected)),
                            () -> what + ": no launch named " + expected + " in " + trace.launches());
                }
                assertArrayEquals(onCuda.converted(), onCuda.direct(), what + ": bf16 out vs f32 out then convert");
                Outputs onCpu = run(cpu, scope, device, new Tensor[] {q, k, v}, new int[] {batch, queries, width},
                        forward);
                assertArrayEquals(onCpu.converted(), onCpu.direct(), what + ": on the CPU backend");
                backwardReadsTheBf16Out(what, cuda, scope, device, q, k, v, heads);
                backwardReadsTheBf16Out(what, cpu, scope, device, q, k, v, heads);
            }
        }
    }

    private static void backwardReadsTheBf16Out(String what, Backend backend, MemoryScope host, MemoryScope device,
                                                Tensor q, Tensor k, Tensor v, int heads) {
        Function<Tensor, Tensor> place = t -> backend == cuda ? cuda.upload(t, device) : t;
        Function<Tensor, Tensor> back = t -> backend == cuda ? cuda.download(t, host) : t;
        Tensor dq = place.apply(q), dk = place.apply(k), dv = place.apply(v);
        int[] outShape = q.shape();
        Tensor lse = place.apply(output(host, q.dim(0), heads, q.dim(1)));
        Tensor out = place.apply(poisonedBf16(host, outShape));
        backend.attention(dq, dk, dv, heads, out, lse);
        Tensor outF32 = place.apply(back.apply(out).to(DType.F32, host));
        Tensor dOut = place.apply(uniform(host, new Random(19), 1f, outShape));
        float[][] gradients = new float[2][];
        for (int pass = 0; pass < 2; pass++) {
            Tensor gq = place.apply(output(host, outShape)), gk = place.apply(output(host, k.shape()));
            Tensor gv = place.apply(output(host, v.shape()));
            backend.attentionBackward(dOut, dq, dk, dv, pass == 0 ? out : outF32, lse, heads, gq, gk, gv);
            float[] a = back.apply(gq).toFloatArray(), b = back.apply(gk).toFloatArray(), c = back.apply(gv).toFloatArray();
            float[] all = java.util.Arrays.copyOf(a, a.length + b.length + c.length);
            System.arraycopy(b, 0, all, a.length, b.length);
            System.arraycopy(c, 0, all, a.length + b.length, c.length);
            gradients[pass] = all;
        }
        assertArrayEquals(gradients[1], gradients[0], what + ": backward from the bf16 out vs its f32 upcast on "
                + backend.name());
    }

    /**
     * The MoE's bf16 paths: dispatched rows stored as bf16 (the f32 rows rounded once), and combine forward and
     * backward reading bf16 expert outputs with the same bits as from their exact f32 upcast, on both backends.
     */
    @Test
    void moeDispatchToBf16AndCombineFromBf16() {
        Random random = new Random(23);
        int samples = 2, tokens = 13, experts = 4, k = 6, dim = 37;
        for (Backend backend : new Backend[] {cuda, cpu}) {
            try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
                Function<Tensor, Tensor> place = t -> backend == cuda ? cuda.upload(t, device) : t;
                Function<Tensor, Tensor> back = t -> backend == cuda ? cuda.download(t, host) : t;
                Tensor probs = place.apply(uniform(host, random, 1f, samples, tokens, experts));
                Tensor gates = place.apply(output(host, samples, experts, k));
                Tensor indices = place.apply(Tensor.zeros(host, DType.I32, samples, experts, k));
                backend.expertChoiceTopK(probs, k, gates, indices);
                Tensor x = place.apply(uniform(host, random, 3f, samples, tokens, dim));
                Tensor rows = place.apply(output(host, experts, samples * k, dim));
                backend.moeDispatch(x, indices, rows);
                Tensor direct = place.apply(poisonedBf16(host, experts, samples * k, dim));
                backend.moeDispatch(x, indices, direct);
                assertArrayEquals(bits(back.apply(rows).to(DType.BF16, host)), bits(back.apply(direct)),
                        "moeDispatch to bf16 vs f32 then convert on " + backend.name());
                Tensor h = direct, hWide = place.apply(back.apply(direct).to(DType.F32, host));
                Tensor dOut = place.apply(uniform(host, random, 1f, samples, tokens, dim));
                float[][] results = new float[2][];
                for (int pass = 0; pass < 2; pass++) {
                    Tensor experts0 = pass == 0 ? h : hWide;
                    Tensor out = place.apply(output(host, samples, tokens, dim));
                    backend.moeCombine(experts0, gates, indices, out);
                    Tensor dH = place.apply(output(host, experts, samples * k, dim));
                    Tensor dGates = place.apply(output(host, samples, experts, k));
                    backend.moeCombineBackward(dOut, experts0, gates, indices, dH, dGates);
                    float[] a = back.apply(out).toFloatArray(), b = back.apply(dH).toFloatArray();
                    float[] c = back.apply(dGates).toFloatArray();
                    float[] all = java.util.Arrays.copyOf(a, a.length + b.length + c.length);
                    System.arraycopy(b, 0, all, a.length, b.length);
                    System.arraycopy(c, 0, all, a.length + b.length, c.length);
                    results[pass] = all;
                }
                assertArrayEquals(results[1], results[0], "moeCombine and its backward from bf16 h vs its f32 upcast on "
                        + backend.name());
            }
        }
    }

    /**
     * A bf16 graph's combine: from bf16 expert outputs into a bf16 out (the f32 sum rounded once: the bits of the f32
     * out converted), and its backward reading a bf16 dOut (the bits of its backward from dOut's exact f32 upcast),
     * on both backends.
     */
    @Test
    void moeCombineToBf16AndItsBackwardFromABf16Gradient() {
        Random random = new Random(29);
        int samples = 2, tokens = 13, experts = 4, k = 6, dim = 37;
        for (Backend backend : new Backend[] {cuda, cpu}) {
            try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
                Function<Tensor, Tensor> place = t -> backend == cuda ? cuda.upload(t, device) : t;
                Function<Tensor, Tensor> back = t -> backend == cuda ? cuda.download(t, host) : t;
                Tensor probs = place.apply(uniform(host, random, 1f, samples, tokens, experts));
                Tensor gates = place.apply(output(host, samples, experts, k));
                Tensor indices = place.apply(Tensor.zeros(host, DType.I32, samples, experts, k));
                backend.expertChoiceTopK(probs, k, gates, indices);
                Tensor h = place.apply(uniform(host, random, 3f, experts, samples * k, dim).to(DType.BF16, host));
                Tensor wide = place.apply(output(host, samples, tokens, dim));
                backend.moeCombine(h, gates, indices, wide);
                Tensor direct = place.apply(poisonedBf16(host, samples, tokens, dim));
                backend.moeCombine(h, gates, indices, direct);
                assertArrayEquals(bits(back.apply(wide).to(DType.BF16, host)), bits(back.apply(direct)),
                        "moeCombine to bf16 vs f32 then convert on " + backend.name());
                Tensor dOut = uniform(host, random, 1f, samples, tokens, dim).to(DType.BF16, host);
                float[][] results = new float[2][];
                for (int pass = 0; pass < 2; pass++) {
                    Tensor gradient = place.apply(pass == 0 ? dOut : dOut.to(DType.F32, host));
                    Tensor dH = place.apply(poisonedBf16(host, experts, samples * k, dim));
                    Tensor dGates = place.apply(output(host, samples, experts, k));
                    backend.moeCombineBackward(gradient, h, gates, indices, dH, dGates);
                    float[] a = back.apply(dH).to(DType.F32, host).toFloatArray();
                    float[] b = back.apply(dGates).toFloatArray();
                    results[pass] = java.util.Arrays.copyOf(a, a.length + b.length);
                    System.arraycopy(b, 0, results[pass], a.length, b.length);
                }
                assertArrayEquals(results[1], results[0], "moeCombineBackward from a bf16 dOut vs its f32 upcast on "
                        + backend.name());
            }
        }
    }

    @Test
    void bothBackendsRefuseAnIntegerOutputAlike() {
        try (MemoryScope scope = new MemoryScope("bad")) {
            Tensor x = random(scope, new Random(3), 2, 3, 4);
            sameRefusal("gelu", new Tensor[] {x, Tensor.zeros(scope, DType.I32, 2, 3, 4)},
                    a -> cpu.gelu(a[0], a[1], true), a -> cuda.gelu(a[0], a[1], true));
            Tensor h = random(scope, new Random(6), 4, 8).to(DType.BF16, scope);
            sameRefusal("matmul", new Tensor[] {h, h, Tensor.zeros(scope, DType.BF16, 4, 4)},
                    t -> cpu.matmul(t[0], false, t[1], true, null, t[2], true),
                    t -> cuda.matmul(t[0], false, t[1], true, null, t[2], true));
            Tensor f = random(scope, new Random(8), 4, 8);
            sameRefusal("matmul", new Tensor[] {f, f, Tensor.zeros(scope, DType.BF16, 4, 4)},
                    t -> cpu.matmul(t[0], false, t[1], true, null, t[2], false),
                    t -> cuda.matmul(t[0], false, t[1], true, null, t[2], false));
            sameRefusal("layerNormModulate", new Tensor[] {x, random(scope, new Random(4), 2, 4),
                    random(scope, new Random(5), 2, 4), Tensor.zeros(scope, DType.BF16, 2, 3, 5), output(scope, 6),
                    output(scope, 6)},
                    a -> cpu.layerNormModulate(a[0], null, a[1], a[2], 1e-6f, a[3], a[4], a[5]),
                    a -> cuda.layerNormModulate(a[0], null, a[1], a[2], 1e-6f, a[3], a[4], a[5]));
        }
    }
}
