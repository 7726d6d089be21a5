package io.microdit.testing;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import io.microdit.backend.Backend;
import io.microdit.tensor.DType;
import io.microdit.tensor.Device;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * The ops that take BF16 inputs (LayerNorm's x, the gated residual's f, add's b, GELU's x, the SwiGLU gate's a and
 * b), forward and backward, as calls on host tensors for any backend. Each BF16 operand is a random F32 tensor
 * converted to BF16, and beside it its exact F32 upcast; the rule the cases check is that an op given the BF16
 * tensor writes, bit for bit, what it writes given the upcast. Inputs are random (never all zeros); shapes are odd,
 * so vector tails and (at 40 003 elements) the CPU backend's thread split are crossed; outputs start poisoned.
 */
public final class Bf16InputCases {
    private static final int SAMPLES = 3, TOKENS = 11, WIDTH = 37, POINTWISE = 40_003;

    private Bf16InputCases() {
    }

    /** An op over its arguments (inputs, then outputs), all on the backend's device. */
    @FunctionalInterface
    public interface Op {
        void apply(Backend backend, Tensor[] arguments);
    }

    /**
     * One call of an op. {@code bf16} holds the arguments with the BF16 operands, {@code upcast} the same with
     * their F32 upcasts (the other arguments are shared); arguments from {@code firstOutput} on are written by the
     * op: poisoned, or random where it accumulates. {@code f32Outputs}: every output is F32.
     */
    public record Case(String name, Tensor[] bf16, Tensor[] upcast, int firstOutput, Op op) {
        public boolean f32Outputs() {
            for (int i = firstOutput; i < bf16.length; i++) {
                if (bf16[i] != null && bf16[i].dtype() != DType.F32) {
                    return false;
                }
            }
            return true;
        }
    }

    /** Builds the cases' host tensors in {@code scope}. */
    public static List<Case> cases(MemoryScope scope, long seed) {
        Random random = new Random(seed);
        Builder b = new Builder(scope, random);
        int rows = SAMPLES * TOKENS;
        int[] tokens = {SAMPLES, TOKENS, WIDTH}, perSample = {SAMPLES, WIDTH};
        List<Case> cases = new ArrayList<>();

        // LayerNorm: x off-centre (|mean| > std), so the centring is exercised; outputs F32 and BF16.
        Tensor x = b.scaled(tokens, 4f, 3f);
        Tensor weight = b.scaled(new int[] {WIDTH}, 2f, 0f);
        for (Tensor w : new Tensor[] {weight, null}) {
            for (DType outType : new DType[] {DType.F32, DType.BF16}) {
                cases.add(b.build("layerNorm" + (w == null ? "" : " with weight") + ", " + outType + " out",
                        new Tensor[] {x, w, b.poisoned(outType, tokens), b.poisoned(DType.F32, rows),
                                b.poisoned(DType.F32, rows)}, new int[] {0}, 2,
                        (be, a) -> be.layerNorm(a[0], a[1], 1e-6f, a[2], a[3], a[4])));
            }
        }
        Tensor mean = b.scaled(new int[] {rows}, 1f, 3f), rstd = b.scaled(new int[] {rows}, 0.25f, 0.5f);
        cases.add(b.build("layerNormBackward with dWeight", new Tensor[] {b.scaled(tokens, 1f, 0f), x, weight, mean,
                rstd, b.poisoned(DType.F32, tokens), b.scaled(new int[] {WIDTH}, 1f, 0f)}, new int[] {1}, 5,
                (be, a) -> be.layerNormBackward(a[0], a[1], a[2], a[3], a[4], a[5], a[6])));
        cases.add(b.build("layerNormBackward, frozen weight", new Tensor[] {b.scaled(tokens, 1f, 0f), x, weight, mean,
                rstd, b.poisoned(DType.F32, tokens)}, new int[] {1}, 5,
                (be, a) -> be.layerNormBackward(a[0], a[1], a[2], a[3], a[4], a[5], null)));
        cases.add(b.build("layerNormBackward without weight", new Tensor[] {b.scaled(tokens, 1f, 0f), x, mean, rstd,
                b.poisoned(DType.F32, tokens)}, new int[] {1}, 4,
                (be, a) -> be.layerNormBackward(a[0], a[1], null, a[2], a[3], a[4], null)));

        // The gated residual with a BF16 f, and add with a BF16 b of a's shape or a suffix of it.
        Tensor f = b.scaled(tokens, 3f, 0f), gate = b.scaled(perSample, 1f, 0f);
        cases.add(b.build("gatedResidual", new Tensor[] {b.scaled(tokens, 1f, 0f), gate, f,
                b.poisoned(DType.F32, tokens)}, new int[] {2}, 3, (be, a) -> be.gatedResidual(a[0], a[1], a[2], a[3])));
        cases.add(b.build("gatedResidualBackward", new Tensor[] {b.scaled(tokens, 1f, 0f), gate, f,
                b.poisoned(DType.F32, perSample), b.poisoned(DType.F32, tokens)}, new int[] {2}, 3,
                (be, a) -> be.gatedResidualBackward(a[0], a[1], a[2], a[3], a[4])));
        for (int[] bShape : new int[][] {tokens, {TOKENS, WIDTH}}) {
            cases.add(b.build("add, b of rank " + bShape.length, new Tensor[] {b.scaled(tokens, 1f, 0f),
                    b.scaled(bShape, 2f, 0f), b.poisoned(DType.F32, tokens)}, new int[] {1}, 2,
                    (be, a) -> be.add(a[0], a[1], a[2])));
        }

        // GELU (both forms) and the SwiGLU gate over a long odd vector; outputs F32 and BF16.
        int[] n = {POINTWISE};
        Tensor g = b.scaled(n, 6f, 0f), gateA = b.scaled(n, 6f, 0f), gateB = b.scaled(n, 3f, 0f);
        for (boolean tanh : new boolean[] {true, false}) {
            String form = tanh ? " tanh" : " exact";
            for (DType outType : new DType[] {DType.F32, DType.BF16}) {
                cases.add(b.build("gelu" + form + ", " + outType + " out", new Tensor[] {g, b.poisoned(outType, n)},
                        new int[] {0}, 1, (be, a) -> be.gelu(a[0], a[1], tanh)));
            }
            cases.add(b.build("geluBackward" + form, new Tensor[] {b.scaled(n, 1f, 0f), g,
                    b.poisoned(DType.F32, n)}, new int[] {1}, 2, (be, a) -> be.geluBackward(a[0], a[1], a[2], tanh)));
        }
        for (DType outType : new DType[] {DType.F32, DType.BF16}) {
            cases.add(b.build("swigluGate, " + outType + " out", new Tensor[] {gateA, gateB,
                    b.poisoned(outType, n)}, new int[] {0, 1}, 2, (be, a) -> be.swigluGate(a[0], a[1], a[2])));
        }
        cases.add(b.build("swigluGateBackward", new Tensor[] {b.scaled(n, 1f, 0f), gateA, gateB,
                b.poisoned(DType.F32, n), b.poisoned(DType.F32, n)}, new int[] {1, 2}, 3,
                (be, a) -> be.swigluGateBackward(a[0], a[1], a[2], a[3], a[4])));
        return cases;
    }

    /**
     * Runs {@code c} on {@code backend} with the BF16 operands and with their upcasts, each on fresh copies of all
     * arguments in {@code deviceScope}, and asserts that every output has the same bits in both runs and that no
     * output element is left poisoned.
     */
    public static void assertBf16InputIsItsUpcast(Backend backend, MemoryScope deviceScope, MemoryScope hostScope,
                                                  Case c) {
        Tensor[] withBf16 = run(backend, deviceScope, hostScope, c, c.bf16());
        Tensor[] withUpcast = run(backend, deviceScope, hostScope, c, c.upcast());
        for (int i = c.firstOutput(); i < withBf16.length; i++) {
            if (withBf16[i] == null) {
                continue;
            }
            String what = c.name() + ": output argument " + i;
            assertArrayEquals(withUpcast[i].segment().toArray(ValueLayout.JAVA_BYTE),
                    withBf16[i].segment().toArray(ValueLayout.JAVA_BYTE), what + " differs from the upcast's");
            float[] values = withBf16[i].toFloatArray();
            for (int e = 0; e < values.length; e++) {
                int index = e;
                assertFalse(Float.isNaN(values[e]), () -> what + " left element " + index + " unwritten (NaN)");
            }
        }
    }

    /** The op on copies of {@code arguments} in {@code deviceScope}; returns host copies of them afterwards. */
    private static Tensor[] run(Backend backend, MemoryScope deviceScope, MemoryScope hostScope, Case c,
                                Tensor[] arguments) {
        Tensor[] placed = new Tensor[arguments.length];
        for (int i = 0; i < arguments.length; i++) {
            if (arguments[i] != null) {
                placed[i] = deviceScope.device() == Device.CPU
                        ? deviceScope.zeros(arguments[i].dtype(), arguments[i].shape()).copyFrom(arguments[i])
                        : backend.upload(arguments[i], deviceScope);
            }
        }
        c.op().apply(backend, placed);
        Tensor[] results = new Tensor[placed.length];
        for (int i = 0; i < placed.length; i++) {
            results[i] = placed[i] == null ? null : backend.download(placed[i], hostScope);
        }
        return results;
    }

    private record Builder(MemoryScope scope, Random random) {
        /** Uniform in [offset - range, offset + range). */
        Tensor scaled(int[] shape, float range, float offset) {
            Tensor t = TestData.uniform(scope, random, shape);
            for (long i = 0; i < t.numel(); i++) {
                t.setFloat(i, t.getFloat(i) * range + offset);
            }
            return t;
        }

        /** F32 NaN, or BF16 0xFFFF (a NaN). */
        Tensor poisoned(DType dtype, int... shape) {
            Tensor t = scope.zeros(dtype, shape);
            t.segment().fill((byte) 0xFF);
            return t;
        }

        /** The case with arguments {@code bf16Operands} converted to BF16 in one list and upcast in the other. */
        Case build(String name, Tensor[] arguments, int[] bf16Operands, int firstOutput, Op op) {
            Tensor[] bf16 = arguments.clone(), upcast = arguments.clone();
            for (int i : bf16Operands) {
                bf16[i] = arguments[i].to(DType.BF16, scope);
                upcast[i] = bf16[i].to(DType.F32, scope);
            }
            return new Case(name, bf16, upcast, firstOutput, op);
        }
    }
}
