package io.microdit.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.Bf16GradientCases;
import io.microdit.testing.TestData;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * The CPU backend's BF16 gradients (attention's dOut, dq, dk, dv; LayerNorm's dOut and dx; LayerNorm+modulate's dOut;
 * GELU's dOut and dx; the SwiGLU gate's dOut, da and db; the gated residual's dF; the MoE combine's dH and dispatch's
 * dOut; sumRows' x): bit for bit the F32 results on the upcast, BF16 outputs those results converted; other dtype
 * mixes are refused naming the op and operand.
 */
class CpuBf16GradientTest {
    /** Three threads, so the parallel splits (uneven, mid-vector) are exercised. */
    private static final CpuBackend BACKEND = new CpuBackend(3);

    @AfterAll
    static void close() {
        BACKEND.close();
    }

    @Test
    void everyBf16GradientGivesTheF32ResultOnItsUpcastConverted() {
        try (MemoryScope inputs = new MemoryScope("inputs")) {
            for (Bf16GradientCases.Case c : Bf16GradientCases.cases(inputs, 14)) {
                try (MemoryScope runs = new MemoryScope("runs")) {
                    Bf16GradientCases.assertBf16GradientsFollowTheRule(BACKEND, runs, runs, c);
                }
            }
        }
    }

    private static void refused(String messageStart, Executable call) {
        String message = assertThrows(IllegalArgumentException.class, call).getMessage();
        assertTrue(message.startsWith(messageStart), message);
    }

    @Test
    void gradientsThatStayF32AndOtherDtypesAreRefusedNamingTheOpAndOperand() {
        try (MemoryScope scope = new MemoryScope("bad")) {
            Random random = new Random(3);
            Tensor x = TestData.uniform(scope, random, 2, 3, 4), bf16 = x.to(DType.BF16, scope);
            Tensor ints = scope.zeros(DType.I32, 2, 3, 4), out = TestData.poisoned(scope, 2, 3, 4);
            Tensor gate = TestData.uniform(scope, random, 2, 4), perSample = TestData.poisoned(scope, 2, 4);
            Tensor mean = TestData.uniform(scope, random, 6), rstd = TestData.uniform(scope, random, 6);
            Tensor weight = TestData.uniform(scope, random, 4), weightBf16 = weight.to(DType.BF16, scope);
            refused("sumRows: x must be F32 or BF16", () -> BACKEND.sumRows(ints, TestData.poisoned(scope, 4), false));
            refused("sumRows: out must be F32", () -> BACKEND.sumRows(bf16, weightBf16, false));
            refused("layerNormBackward: dWeight must be F32",
                    () -> BACKEND.layerNormBackward(bf16, x, weight, mean, rstd, bf16, weightBf16));
            refused("layerNormModulateBackward: dx must be F32", () -> BACKEND.layerNormModulateBackward(bf16, x,
                    null, gate, mean, rstd, bf16, null, perSample, TestData.poisoned(scope, 2, 4)));
            refused("layerNormModulateBackward: dOut must be F32 or BF16", () -> BACKEND.layerNormModulateBackward(
                    ints, x, null, gate, mean, rstd, out, null, perSample, TestData.poisoned(scope, 2, 4)));
            refused("gatedResidualBackward: dOut must be F32",
                    () -> BACKEND.gatedResidualBackward(bf16, gate, x, perSample, bf16));
            refused("geluBackward: dx must be F32 or BF16", () -> BACKEND.geluBackward(bf16, x, ints, true));
            refused("swigluGateBackward: da and db must be both F32 or both BF16",
                    () -> BACKEND.swigluGateBackward(bf16, x, x, out, bf16));
            refused("swigluGateBackward: dOut must be F32 or BF16",
                    () -> BACKEND.swigluGateBackward(ints, x, x, out, TestData.poisoned(scope, 2, 3, 4)));

            Tensor lse = TestData.uniform(scope, random, 2, 2, 3);
            refused("attentionBackward: dq must be F32 or BF16",
                    () -> BACKEND.attentionBackward(bf16, x, x, x, x, lse, 2, ints, bf16, bf16));
            refused("attentionBackward: dOut must be F32 or BF16",
                    () -> BACKEND.attentionBackward(ints, x, x, x, x, lse, 2, bf16, bf16, bf16));

            Tensor indices = scope.zeros(DType.I32, 2, 1, 1), routed = TestData.uniform(scope, random, 1, 2, 4);
            Tensor gates = TestData.uniform(scope, random, 2, 1, 1), dGates = TestData.poisoned(scope, 2, 1, 1);
            refused("moeCombineBackward: dOut",
                    () -> BACKEND.moeCombineBackward(ints, routed, gates, indices,
                            routed.to(DType.BF16, scope), dGates));
            refused("moeCombineBackward: dH must be F32 or BF16", () -> BACKEND.moeCombineBackward(x, routed, gates,
                    indices, scope.zeros(DType.I32, 1, 2, 4), dGates));
            refused("moeDispatchBackward: dx must be F32",
                    () -> BACKEND.moeDispatchBackward(routed.to(DType.BF16, scope), indices, bf16));
            refused("moeDispatchBackward: dOut must be F32 or BF16",
                    () -> BACKEND.moeDispatchBackward(scope.zeros(DType.I32, 1, 2, 4), indices, x));
        }
    }
}
