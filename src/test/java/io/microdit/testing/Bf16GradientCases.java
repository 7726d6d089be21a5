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
 * The backwards that take BF16 gradients (a bf16 graph keeps a BF16 value's gradient in BF16), as calls on host
 * tensors for any backend: attention (dOut, dq, dk, dv), LayerNorm (dOut, dx), LayerNorm+modulate (dOut), GELU
 * (dOut, dx), the SwiGLU gate (dOut, da and db), the gated residual (dF), the MoE combine (dH) and dispatch (dOut)
 * and sumRows (x, a bias gradient's dy). Each case runs an op with some gradient operands BF16 and, as reference,
 * with the exact F32 upcast of each BF16 incoming gradient and an F32 tensor for each BF16 gradient output; the rule
 * checked is that every output has the reference's bits, a BF16 output those of the reference's F32 output
 * converted (nearest even). Mixes of F32 and BF16 gradients, and of F32 and BF16 activations (the _bf16in inputs),
 * are crossed. Inputs are random, never all zeros; shapes are odd (row tails, partial attention tiles, the CPU
 * backend's thread split at 40 003 elements, the column sum's two passes); outputs start poisoned (accumulated ones
 * random).
 */
public final class Bf16GradientCases {
    private static final int SAMPLES = 3, TOKENS = 11, WIDTH = 37, POINTWISE = 40_003;

    private Bf16GradientCases() {
    }

    /**
     * One call of an op. {@code bf16} holds the arguments with the BF16 gradients, {@code reference} the same with
     * F32 upcasts of the BF16 incoming gradients and F32 outputs for the BF16 ones (other arguments are shared);
     * arguments from {@code firstOutput} on are written by the op. {@code tensorCores}: the CUDA backend runs the
     * case on tensor cores (bf16 products; CudaBf16AttentionTest bounds its distance from the CPU's F32 maths).
     */
    public record Case(String name, Tensor[] bf16, Tensor[] reference, int firstOutput, Bf16InputCases.Op op,
                       boolean tensorCores) {
        /** Every output F32 (so the case can be compared across backends within the F32 tolerance). */
        public boolean f32Outputs() {
            for (int i = firstOutput; i < bf16.length; i++) {
                if (bf16[i] != null && bf16[i].dtype() != DType.F32) {
                    return false;
                }
            }
            return true;
        }

        Case onTensorCores(boolean onTensorCores) {
            return new Case(name, bf16, reference, firstOutput, op, onTensorCores);
        }
    }

    /** Builds the cases' host tensors in {@code scope}. */
    public static List<Case> cases(MemoryScope scope, long seed) {
        Builder b = new Builder(scope, new Random(seed));
        List<Case> cases = new ArrayList<>();
        int rows = SAMPLES * TOKENS;
        int[] tokens = {SAMPLES, TOKENS, WIDTH}, perSample = {SAMPLES, WIDTH}, width = {WIDTH};
        int[][] gradientMixes = {{0}, {1}, {0, 1}};

        // LayerNorm: dOut (0) and dx (5) each F32 or BF16, x F32 or BF16, with a weight (dWeight accumulates) or none.
        Tensor mean = b.scaled(new int[] {rows}, 1f, 3f), rstd = b.scaled(new int[] {rows}, 0.25f, 0.5f);
        Tensor weight = b.scaled(width, 2f, 0f), x = b.scaled(tokens, 4f, 3f);
        for (DType xType : new DType[] {DType.F32, DType.BF16}) {
            Tensor xs = b.as(x, xType);
            for (int[] mix : gradientMixes) {
                int[] operands = select(mix, 0, 5);
                cases.add(b.build("layerNormBackward, x " + xType + describe(mix, "dOut", "dx"), new Tensor[] {
                        b.scaled(tokens, 1f, 0f), xs, weight, mean, rstd, b.poisoned(tokens),
                        b.scaled(width, 1f, 0f)}, operands, 5,
                        (be, a) -> be.layerNormBackward(a[0], a[1], a[2], a[3], a[4], a[5], a[6])));
                cases.add(b.build("layerNormBackward without weight, x " + xType + describe(mix, "dOut", "dx"),
                        new Tensor[] {b.scaled(tokens, 1f, 0f), xs, mean, rstd, b.poisoned(tokens)},
                        select(mix, 0, 4), 4, (be, a) -> be.layerNormBackward(a[0], a[1], null, a[2], a[3], a[4], null)));
            }
        }

        // LayerNorm+modulate: dOut BF16; dx, dWeight, dShift and dScale F32.
        Tensor scale = b.scaled(perSample, 1f, 0f);
        cases.add(b.build("layerNormModulateBackward, BF16 dOut", new Tensor[] {b.scaled(tokens, 1f, 0f), x, weight,
                scale, mean, rstd, b.poisoned(tokens), b.scaled(width, 1f, 0f), b.poisoned(perSample),
                b.poisoned(perSample)}, new int[] {0}, 6,
                (be, a) -> be.layerNormModulateBackward(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9])));
        cases.add(b.build("layerNormModulateBackward without weight, BF16 dOut", new Tensor[] {
                b.scaled(tokens, 1f, 0f), x, scale, mean, rstd, b.poisoned(tokens), b.poisoned(perSample),
                b.poisoned(perSample)}, new int[] {0}, 5,
                (be, a) -> be.layerNormModulateBackward(a[0], a[1], null, a[2], a[3], a[4], a[5], null, a[6], a[7])));

        // GELU (both forms): dOut (0) and dx (2), x F32 or BF16.
        int[] n = {POINTWISE};
        Tensor g = b.scaled(n, 6f, 0f);
        for (DType xType : new DType[] {DType.F32, DType.BF16}) {
            for (boolean tanh : new boolean[] {true, false}) {
                for (int[] mix : gradientMixes) {
                    cases.add(b.build("geluBackward" + (tanh ? " tanh" : " exact") + ", x " + xType
                                    + describe(mix, "dOut", "dx"), new Tensor[] {b.scaled(n, 1f, 0f), b.as(g, xType),
                                    b.poisoned(n)}, select(mix, 0, 2), 2,
                            (be, a) -> be.geluBackward(a[0], a[1], a[2], tanh)));
                }
            }
        }

        // The SwiGLU gate: dOut (0), and da (3) with db (4), a and b F32 or BF16.
        Tensor gateA = b.scaled(n, 6f, 0f), gateB = b.scaled(n, 3f, 0f);
        for (DType inType : new DType[] {DType.F32, DType.BF16}) {
            for (int[] mix : gradientMixes) {
                int[] operands = mix.length == 2 ? new int[] {0, 3, 4} : mix[0] == 0 ? new int[] {0} : new int[] {3, 4};
                cases.add(b.build("swigluGateBackward, a and b " + inType + describe(mix, "dOut", "da and db"),
                        new Tensor[] {b.scaled(n, 1f, 0f), b.as(gateA, inType), b.as(gateB, inType), b.poisoned(n),
                                b.poisoned(n)}, operands, 3,
                        (be, a) -> be.swigluGateBackward(a[0], a[1], a[2], a[3], a[4])));
            }
        }

        // The gated residual: dF BF16, f F32 or BF16.
        Tensor f = b.scaled(tokens, 3f, 0f), gate = b.scaled(perSample, 1f, 0f);
        for (DType fType : new DType[] {DType.F32, DType.BF16}) {
            cases.add(b.build("gatedResidualBackward, f " + fType + ", BF16 dF", new Tensor[] {b.scaled(tokens, 1f, 0f),
                    gate, b.as(f, fType), b.poisoned(perSample), b.poisoned(tokens)}, new int[] {4}, 3,
                    (be, a) -> be.gatedResidualBackward(a[0], a[1], a[2], a[3], a[4])));
        }

        // sumRows of a BF16 x over 1 002 rows (two passes of the column sum on the GPU), into out or added to it.
        int[] dy = {2, 501, WIDTH};
        cases.add(b.build("sumRows, BF16 x", new Tensor[] {b.scaled(dy, 1f, 0f), b.poisoned(width)}, new int[] {0}, 1,
                (be, a) -> be.sumRows(a[0], a[1], false)));
        cases.add(b.build("sumRows accumulating, BF16 x", new Tensor[] {b.scaled(dy, 1f, 0f),
                b.scaled(width, 1f, 0f)}, new int[] {0}, 1, (be, a) -> be.sumRows(a[0], a[1], true)));

        // Expert-choice MoE: 3 experts choosing 5 of 13 tokens per sample; the combine's dH BF16 (h F32 or BF16), the
        // dispatch's dOut BF16 (dx accumulates).
        int moeSamples = 2, moeTokens = 13, experts = 3, k = 5;
        int[] routed = {experts, moeSamples * k, WIDTH}, moeTokensShape = {moeSamples, moeTokens, WIDTH};
        int[] gatesShape = {moeSamples, experts, k};
        Tensor indices = b.routing(moeSamples, moeTokens, experts, k), h = b.scaled(routed, 2f, 0f);
        Tensor gates = b.scaled(gatesShape, 1f, 0f);
        for (DType hType : new DType[] {DType.F32, DType.BF16}) {
            cases.add(b.build("moeCombineBackward, h " + hType + ", BF16 dH", new Tensor[] {
                    b.scaled(moeTokensShape, 1f, 0f), b.as(h, hType), gates, indices, b.poisoned(routed),
                    b.poisoned(gatesShape)}, new int[] {4}, 4,
                    (be, a) -> be.moeCombineBackward(a[0], a[1], a[2], a[3], a[4], a[5])));
        }
        cases.add(b.build("moeDispatchBackward, BF16 dOut", new Tensor[] {b.scaled(routed, 1f, 0f), indices,
                b.scaled(moeTokensShape, 1f, 0f)}, new int[] {0}, 2,
                (be, a) -> be.moeDispatchBackward(a[0], a[1], a[2])));

        // Attention: dOut (0), dq (6), dk (7), dv (8) in mixes, on the tensor-core backward (BF16 q, k, v, head
        // dimension 32; out F32 or BF16), on its f32 fallback for BF16 operands (head dimension 24) and on F32 q, k, v.
        // lse lies above every score (|S|·scale < 6 here), so P = exp(S − lse) stays in (0, 1].
        int[][] attentionMixes = {{0}, {6, 7, 8}, {0, 6, 7, 8}, {0, 7}, {6, 8}};
        int heads = 2, batch = 2, queries = 67, keys = 37;
        for (int headDim : new int[] {32, 24}) {
            int[] q = {batch, queries, heads * headDim}, kv = {batch, keys, heads * headDim};
            Tensor lse = b.scaled(new int[] {batch, heads, queries}, 1f, 7f);
            for (DType operandType : new DType[] {DType.BF16, DType.F32}) {
                Tensor qs = b.as(b.scaled(q, 1f, 0f), operandType), ks = b.as(b.scaled(kv, 1f, 0f), operandType);
                Tensor vs = b.as(b.scaled(kv, 1f, 0f), operandType);
                DType[] outTypes = operandType == DType.BF16 && headDim == 32
                        ? new DType[] {DType.F32, DType.BF16} : new DType[] {DType.F32};
                for (DType outType : outTypes) {
                    Tensor out = b.as(b.scaled(q, 1f, 0f), outType);
                    boolean tensorCores = operandType == DType.BF16 && headDim == 32;
                    for (int[] mix : attentionMixes) {
                        cases.add(b.build("attentionBackward, head dim " + headDim + ", q k v " + operandType
                                        + ", out " + outType + ", BF16 " + names(mix), new Tensor[] {
                                        b.scaled(q, 1f, 0f), qs, ks, vs, out, lse, b.poisoned(q), b.poisoned(kv),
                                        b.poisoned(kv)}, mix, 6,
                                (be, a) -> be.attentionBackward(a[0], a[1], a[2], a[3], a[4], a[5], heads, a[6], a[7],
                                        a[8])).onTensorCores(tensorCores));
                    }
                }
            }
        }
        return cases;
    }

    /**
     * Runs {@code c} on {@code backend} with the BF16 gradients and with the reference arguments, each on fresh
     * copies in {@code deviceScope}, and asserts that every output has the reference's bits (a BF16 one those of the
     * reference's F32 output converted) and that no output element is left poisoned.
     */
    public static void assertBf16GradientsFollowTheRule(Backend backend, MemoryScope deviceScope,
                                                        MemoryScope hostScope, Case c) {
        Tensor[] withBf16 = run(backend, deviceScope, hostScope, c, c.bf16());
        Tensor[] withReference = run(backend, deviceScope, hostScope, c, c.reference());
        for (int i = c.firstOutput(); i < withBf16.length; i++) {
            Tensor expected = withReference[i].dtype() == withBf16[i].dtype() ? withReference[i]
                    : withReference[i].to(withBf16[i].dtype(), hostScope);
            String what = c.name() + ": output argument " + i;
            assertArrayEquals(expected.segment().toArray(ValueLayout.JAVA_BYTE),
                    withBf16[i].segment().toArray(ValueLayout.JAVA_BYTE), what + " differs from the reference's");
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
            placed[i] = deviceScope.device() == Device.CPU
                    ? deviceScope.zeros(arguments[i].dtype(), arguments[i].shape()).copyFrom(arguments[i])
                    : backend.upload(arguments[i], deviceScope);
        }
        c.op().apply(backend, placed);
        Tensor[] results = new Tensor[placed.length];
        for (int i = 0; i < placed.length; i++) {
            results[i] = backend.download(placed[i], hostScope);
        }
        return results;
    }

    /** The operands of {@code mix} (indices into {@code operands}). */
    private static int[] select(int[] mix, int... operands) {
        int[] selected = new int[mix.length];
        for (int i = 0; i < mix.length; i++) {
            selected[i] = operands[mix[i]];
        }
        return selected;
    }

    private static String describe(int[] mix, String... names) {
        StringBuilder text = new StringBuilder(", BF16");
        for (int i : mix) {
            text.append(i == mix[0] ? " " : " and ").append(names[i]);
        }
        return text.toString();
    }

    private static String names(int[] attentionOperands) {
        List<String> names = new ArrayList<>();
        for (int i : attentionOperands) {
            names.add(switch (i) {
                case 0 -> "dOut";
                case 6 -> "dq";
                case 7 -> "dk";
                default -> "dv";
            });
        }
        return String.join(", ", names);
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

        /** F32 NaN. */
        Tensor poisoned(int... shape) {
            return poisoned(DType.F32, shape);
        }

        /** F32 NaN, or BF16 0xFFFF (a NaN). */
        Tensor poisoned(DType dtype, int... shape) {
            Tensor t = scope.zeros(dtype, shape);
            t.segment().fill((byte) 0xFF);
            return t;
        }

        /** {@code t} as {@code dtype} (F32 as it is, BF16 rounded). */
        Tensor as(Tensor t, DType dtype) {
            return t.dtype() == dtype ? t : t.to(dtype, scope);
        }

        /** I32 [N, E, k]: each (sample, expert) chooses k distinct tokens of T, in random order. */
        Tensor routing(int samples, int tokens, int experts, int k) {
            Tensor indices = scope.zeros(DType.I32, samples, experts, k);
            int[] order = new int[tokens];
            for (int p = 0; p < samples * experts; p++) {
                for (int t = 0; t < tokens; t++) {
                    order[t] = t;
                }
                for (int j = 0; j < k; j++) {
                    int pick = j + random.nextInt(tokens - j), chosen = order[pick];
                    order[pick] = order[j];
                    order[j] = chosen;
                    indices.setInt((long) p * k + j, chosen);
                }
            }
            return indices;
        }

        /**
         * The case with the {@code gradients} operands BF16: an incoming gradient (before {@code firstOutput})
         * rounded to BF16, its exact upcast in the reference; an output poisoned BF16, the F32 one in the reference.
         */
        Case build(String name, Tensor[] arguments, int[] gradients, int firstOutput, Bf16InputCases.Op op) {
            Tensor[] bf16 = arguments.clone(), reference = arguments.clone();
            for (int i : gradients) {
                if (i < firstOutput) {
                    bf16[i] = arguments[i].to(DType.BF16, scope);
                    reference[i] = bf16[i].to(DType.F32, scope);
                } else {
                    bf16[i] = poisoned(DType.BF16, arguments[i].shape());
                }
            }
            return new Case(name, bf16, reference, firstOutput, op, false);
        }
    }
}
