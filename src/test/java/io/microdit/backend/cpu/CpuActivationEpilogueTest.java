package io.microdit.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * GELU and the SwiGLU gate in the CPU GEMM's epilogue (CpuBackend's matmulGelu, matmulGeluBackward, matmulSwiglu and
 * matmulSwigluBackward) against the separate passes they replace, bit for bit, on one thread and two. The shapes reach
 * the direct loop (a tiny product), whole-row panels, rows cut by column blocks (n past
 * {@link CpuGemm#BLOCK_COLUMNS}), several depth blocks (k past {@link CpuGemm#BLOCK_DEPTH}), the column split (few
 * rows), batches, n off the vector width (the kernels' scalar tails) and every transpose; both GELU forms; BF16
 * operands take the interface's two calls and are checked the same way.
 */
class CpuActivationEpilogueTest {
    private static final CpuBackend ONE_THREAD = new CpuBackend(1);
    private static final CpuBackend TWO_THREADS = new CpuBackend(2);

    @AfterAll
    static void close() {
        ONE_THREAD.close();
        TWO_THREADS.close();
    }

    @ParameterizedTest
    @CsvSource({
        "1, 3, 5, 4, false, false, false, false",
        "1, 50, 128, 48, false, true, true, false",
        "2, 37, 40, 24, true, true, false, false",
        "3, 19, 33, 21, false, false, true, false",
        "1, 130, 70, 600, false, true, false, false",
        "1, 24, 1100, 64, true, false, true, false",
        "1, 7, 600, 200, false, true, false, false",
        "4, 61, 128, 512, false, false, false, false",
        "2, 37, 40, 24, false, true, true, true"})
    void fusedEpiloguesGiveTheSeparatePassesBits(int batch, int m, int k, int n, boolean transposeA,
                                                 boolean transposeB, boolean tanh, boolean bf16) {
        for (CpuBackend cpu : new CpuBackend[] {ONE_THREAD, TWO_THREADS}) {
            String where = cpu.threads() + " thread(s): ";
            Random random = new Random(batch * 1000L + m * 31L + k * 7L + n);
            try (MemoryScope scope = new MemoryScope("epilogue")) {
                int[] aShape = transposeA ? new int[] {batch, k, m} : new int[] {batch, m, k};
                int[] bShape = transposeB ? new int[] {batch, n, k} : new int[] {batch, k, n};
                // Products of order 1-3: GELU's curved part, both signs.
                Tensor a = scaled(scope, random, 3f / (float) Math.sqrt(k), aShape);
                Tensor b = TestData.uniform(scope, random, bShape);
                if (bf16) {
                    a = a.to(DType.BF16, scope);
                    b = b.to(DType.BF16, scope);
                }
                Tensor bias = TestData.uniform(scope, random, n);

                Tensor pre = TestData.poisoned(scope, batch, m, n), out = TestData.poisoned(scope, batch, m, n);
                cpu.matmulGelu(a, transposeA, b, transposeB, bias, pre, out, tanh);
                Tensor prePasses = TestData.poisoned(scope, batch, m, n);
                Tensor outPasses = TestData.poisoned(scope, batch, m, n);
                cpu.matmul(a, transposeA, b, transposeB, bias, prePasses, false);
                cpu.gelu(prePasses, outPasses, tanh);
                assertBits(cpu, prePasses, pre, where + "pre");
                assertBits(cpu, outPasses, out, where + "gelu(pre)");

                Tensor dPre = TestData.poisoned(scope, batch, m, n);
                cpu.matmulGeluBackward(a, transposeA, b, transposeB, pre, dPre, tanh);
                Tensor dOut = TestData.poisoned(scope, batch, m, n);
                Tensor dPrePasses = TestData.poisoned(scope, batch, m, n);
                cpu.matmul(a, transposeA, b, transposeB, null, dOut, false);
                cpu.geluBackward(dOut, pre, dPrePasses, tanh);
                assertBits(cpu, dPrePasses, dPre, where + "dPre");

                // The gate: a (another product's output) and b = this product, gate = silu(a)·b; its backward.
                Tensor gateA = scaled(scope, random, 3f, batch, m, n);
                Tensor gateB = TestData.poisoned(scope, batch, m, n), gate = TestData.poisoned(scope, batch, m, n);
                cpu.matmulSwiglu(a, transposeA, b, transposeB, bias, gateA, gateB, gate);
                Tensor gateBPasses = TestData.poisoned(scope, batch, m, n);
                Tensor gatePasses = TestData.poisoned(scope, batch, m, n);
                cpu.matmul(a, transposeA, b, transposeB, bias, gateBPasses, false);
                cpu.swigluGate(gateA, gateBPasses, gatePasses);
                assertBits(cpu, gateBPasses, gateB, where + "gate b");
                assertBits(cpu, gatePasses, gate, where + "silu(a)·b");

                Tensor dA = TestData.poisoned(scope, batch, m, n), dB = TestData.poisoned(scope, batch, m, n);
                cpu.matmulSwigluBackward(a, transposeA, b, transposeB, gateA, gateB, dA, dB);
                Tensor dAPasses = TestData.poisoned(scope, batch, m, n);
                Tensor dBPasses = TestData.poisoned(scope, batch, m, n);
                Tensor dGate = TestData.poisoned(scope, batch, m, n);
                cpu.matmul(a, transposeA, b, transposeB, null, dGate, false);
                cpu.swigluGateBackward(dGate, gateA, gateB, dAPasses, dBPasses);
                assertBits(cpu, dAPasses, dA, where + "da");
                assertBits(cpu, dBPasses, dB, where + "db");
            }
        }
    }

    /** Uniform values in [-scale, scale). */
    private static Tensor scaled(MemoryScope scope, Random random, float scale, int... shape) {
        Tensor t = TestData.uniform(scope, random, shape);
        float[] values = t.toFloatArray();
        for (int i = 0; i < values.length; i++) {
            values[i] *= scale;
        }
        return Tensor.of(scope, values, shape);
    }

    private static void assertBits(CpuBackend cpu, Tensor expected, Tensor actual, String what) {
        float[] want = cpu.read(expected), got = cpu.read(actual);
        assertEquals(want.length, got.length, what);
        boolean curved = false;
        for (int i = 0; i < want.length; i++) {
            if (Float.floatToRawIntBits(want[i]) != Float.floatToRawIntBits(got[i])) {
                fail(what + " differs at element " + i + ": " + got[i] + " instead of " + want[i]);
            }
            curved |= Math.abs(want[i]) > 0.5f;
        }
        assertTrue(curved, what + ": the values must not be all near zero");
    }
}
