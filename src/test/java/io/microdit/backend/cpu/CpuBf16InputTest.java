package io.microdit.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.Bf16InputCases;
import io.microdit.testing.TestData;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * The CPU backend's BF16 inputs (LayerNorm's x, the gated residual's f, add's b, GELU's x, the SwiGLU gate's a and b,
 * forward and backward): bit for bit the results for the inputs' F32 upcast; any other dtype mix is refused by name.
 */
class CpuBf16InputTest {
    /** Three threads, so the parallel splits (uneven, mid-vector) are exercised. */
    private static final CpuBackend BACKEND = new CpuBackend(3);

    @AfterAll
    static void close() {
        BACKEND.close();
    }

    @Test
    void everyBf16InputGivesTheResultOfItsUpcast() {
        try (MemoryScope inputs = new MemoryScope("inputs")) {
            List<Bf16InputCases.Case> cases = Bf16InputCases.cases(inputs, 14);
            for (Bf16InputCases.Case c : cases) {
                try (MemoryScope runs = new MemoryScope("runs")) {
                    Bf16InputCases.assertBf16InputIsItsUpcast(BACKEND, runs, runs, c);
                }
            }
        }
    }

    private static void refused(String messageStart, Executable call) {
        String message = assertThrows(IllegalArgumentException.class, call).getMessage();
        assertTrue(message.startsWith(messageStart), message);
    }

    @Test
    void otherDtypeMixesAreRefusedNamingTheOpAndOperand() {
        try (MemoryScope scope = new MemoryScope("bad")) {
            Random random = new Random(3);
            Tensor x = TestData.uniform(scope, random, 2, 3, 4), bf16 = x.to(DType.BF16, scope);
            Tensor ints = scope.zeros(DType.I32, 2, 3, 4), out = TestData.poisoned(scope, 2, 3, 4);
            Tensor gate = TestData.uniform(scope, random, 2, 4);
            Tensor mean = TestData.poisoned(scope, 6), rstd = TestData.poisoned(scope, 6);
            refused("layerNorm: x must be F32 or BF16", () -> BACKEND.layerNorm(ints, null, 1e-6f, out, mean, rstd));
            refused("layerNormBackward: dOut must be F32 or BF16",
                    () -> BACKEND.layerNormBackward(ints, bf16, null, mean, rstd, out, null));
            refused("layerNormBackward: dx must be F32 or BF16",
                    () -> BACKEND.layerNormBackward(x, bf16, null, mean, rstd, ints, null));
            // The fused LayerNorm+modulate normalises the F32 residual stream only.
            refused("layerNormModulate: x must be F32",
                    () -> BACKEND.layerNormModulate(bf16, null, gate, gate, 1e-6f, out, mean, rstd));
            refused("gatedResidual: x must be F32", () -> BACKEND.gatedResidual(bf16, gate, x, out));
            refused("gatedResidual: f must be F32 or BF16", () -> BACKEND.gatedResidual(x, gate, ints, out));
            refused("gatedResidual: out must be F32", () -> BACKEND.gatedResidual(x, gate, bf16, bf16));
            refused("gatedResidualBackward: dF must be F32 or BF16",
                    () -> BACKEND.gatedResidualBackward(x, gate, bf16, TestData.poisoned(scope, 2, 4), ints));
            refused("add: a must be F32", () -> BACKEND.add(bf16, x, out));
            refused("add: b must be F32 or BF16", () -> BACKEND.add(x, ints, out));
            refused("mul: b must be F32", () -> BACKEND.mul(x, bf16, out));
            refused("gelu: x must be F32 or BF16", () -> BACKEND.gelu(ints, out, true));
            refused("geluBackward: dOut must be F32 or BF16", () -> BACKEND.geluBackward(ints, bf16, out, true));
            refused("silu: x must be F32", () -> BACKEND.silu(bf16, out));
            refused("swigluGate: a and b must be both F32 or both BF16", () -> BACKEND.swigluGate(bf16, x, out));
            refused("swigluGateBackward: a and b must be both F32 or both BF16",
                    () -> BACKEND.swigluGateBackward(x, x, bf16, out, TestData.poisoned(scope, 2, 3, 4)));
            refused("swigluGateBackward: da and db must be both F32 or both BF16",
                    () -> BACKEND.swigluGateBackward(x, bf16, bf16, bf16, out));
        }
    }
}
