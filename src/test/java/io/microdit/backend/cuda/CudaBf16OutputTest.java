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

    @Test
    void bothBackendsRefuseAnIntegerOutputAlike() {
        try (MemoryScope scope = new MemoryScope("bad")) {
            Tensor x = random(scope, new Random(3), 2, 3, 4);
            sameRefusal("gelu", new Tensor[] {x, Tensor.zeros(scope, DType.I32, 2, 3, 4)},
                    a -> cpu.gelu(a[0], a[1], true), a -> cuda.gelu(a[0], a[1], true));
            sameRefusal("layerNormModulate", new Tensor[] {x, random(scope, new Random(4), 2, 4),
                    random(scope, new Random(5), 2, 4), Tensor.zeros(scope, DType.BF16, 2, 3, 5), output(scope, 6),
                    output(scope, 6)},
                    a -> cpu.layerNormModulate(a[0], null, a[1], a[2], 1e-6f, a[3], a[4], a[5]),
                    a -> cuda.layerNormModulate(a[0], null, a[1], a[2], 1e-6f, a[3], a[4], a[5]));
        }
    }
}
