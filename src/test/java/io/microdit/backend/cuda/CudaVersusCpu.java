package io.microdit.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.backend.cpu.CpuBackend;
import io.microdit.tensor.DType;
import io.microdit.tensor.Device;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
import java.util.Arrays;
import java.util.Random;
import java.util.function.Consumer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

/**
 * The fixture of the tests that run an op on the CUDA backend (the emulator in CI) and on the CPU backend and
 * compare: both backends, open for the test class (test classes run one at a time), random inputs, outputs
 * poisoned with NaN (F32) or -7 (I32), and the comparison itself.
 */
abstract class CudaVersusCpu {
    /** F32 agreement, relative to the largest magnitude of the CPU's result. */
    static final double TOLERANCE = 1e-5;
    private static final int POISONED_INDEX = -7;
    static CpuBackend cpu;
    static CudaBackend cuda;

    @BeforeAll
    static void openBackends() {
        cpu = new CpuBackend(2);
        cuda = new CudaBackend();
    }

    @AfterAll
    static void closeBackends() {
        cuda.close();
        cpu.close();
    }

    /** A poisoned host output of the given dtype and shape, for {@link #compare}. */
    static Tensor output(MemoryScope scope, DType dtype, int... shape) {
        Tensor t = scope.zeros(dtype, shape);
        for (long i = 0; i < t.numel(); i++) {
            if (dtype == DType.I32) {
                t.setInt(i, POISONED_INDEX);
            } else {
                t.setFloat(i, Float.NaN);
            }
        }
        return t;
    }

    static Tensor output(MemoryScope scope, int... shape) {
        return output(scope, DType.F32, shape);
    }

    /** Uniform in [-1, 1). */
    static Tensor random(MemoryScope scope, Random random, int... shape) {
        return TestData.uniform(scope, random, shape);
    }

    /** Uniform in [-range, range). */
    static Tensor uniform(MemoryScope scope, Random random, float range, int... shape) {
        Tensor t = TestData.uniform(scope, random, shape);
        for (long i = 0; i < t.numel(); i++) {
            t.setFloat(i, t.getFloat(i) * range);
        }
        return t;
    }

    /**
     * Runs {@code cpuOp} on host copies and {@code cudaOp} on device copies of {@code arguments} (inputs and
     * poisoned outputs alike, null allowed) and compares every argument afterwards: F32 within {@link #TOLERANCE},
     * I32 bit-identical.
     */
    static void compare(String what, Tensor[] arguments, Consumer<Tensor[]> cpuOp, Consumer<Tensor[]> cudaOp) {
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            Tensor[] cpuArgs = copies(arguments, host), cudaArgs = copies(arguments, device);
            cpuOp.accept(cpuArgs);
            cudaOp.accept(cudaArgs);
            for (int i = 0; i < arguments.length; i++) {
                if (cpuArgs[i] == null) {
                    continue;
                }
                Tensor actual = cuda.download(cudaArgs[i], host);
                int index = i;
                if (cpuArgs[i].dtype() == DType.I32) {
                    assertArrayEquals(cpuArgs[i].toIntArray(), actual.toIntArray(),
                            () -> what + ": integer argument " + index + " differs");
                } else {
                    float[] got = actual.toFloatArray(), expected = cpuArgs[i].toFloatArray();
                    // A NaN on both sides (an input left in place, a NaN probability routed as a gate) is no
                    // difference; a poisoned output the kernel skipped is still caught wherever the CPU wrote a number.
                    for (int e = 0; e < got.length; e++) {
                        if (Float.isNaN(got[e]) && Float.isNaN(expected[e])) {
                            got[e] = 0f;
                            expected[e] = 0f;
                        }
                    }
                    double error = TestData.maxRelativeError(got, TestData.toDouble(expected));
                    assertTrue(error <= TOLERANCE, () -> what + ": argument " + index + " differs by " + error);
                }
            }
        }
    }

    /** {@link #compare} of {@code inputs} followed by poisoned F32 outputs of {@code outputShapes}. */
    static void compare(String what, Tensor[] inputs, int[][] outputShapes, Consumer<Tensor[]> cpuOp,
                        Consumer<Tensor[]> cudaOp) {
        try (MemoryScope outputs = new MemoryScope("outputs")) {
            Tensor[] arguments = Arrays.copyOf(inputs, inputs.length + outputShapes.length);
            for (int o = 0; o < outputShapes.length; o++) {
                arguments[inputs.length + o] = output(outputs, outputShapes[o]);
            }
            compare(what, arguments, cpuOp, cudaOp);
        }
    }

    /** Both backends refuse {@code arguments} with the same message, which names {@code op}. */
    static void sameRefusal(String op, Tensor[] arguments, Consumer<Tensor[]> cpuOp, Consumer<Tensor[]> cudaOp) {
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            Tensor[] cpuArgs = copies(arguments, host), cudaArgs = copies(arguments, device);
            String onCpu = assertThrows(IllegalArgumentException.class, () -> cpuOp.accept(cpuArgs)).getMessage();
            String onCuda = assertThrows(IllegalArgumentException.class, () -> cudaOp.accept(cudaArgs)).getMessage();
            assertTrue(onCpu.startsWith(op + ": "), onCpu);
            assertEquals(onCpu, onCuda, op + ": the backends refuse differently");
        }
    }

    /** Copies of {@code arguments} (null stays null) in {@code scope}: host memory or the CUDA backend's. */
    private static Tensor[] copies(Tensor[] arguments, MemoryScope scope) {
        Tensor[] out = new Tensor[arguments.length];
        for (int i = 0; i < arguments.length; i++) {
            if (arguments[i] != null) {
                out[i] = scope.device() == Device.CUDA ? cuda.upload(arguments[i], scope)
                        : scope.zeros(arguments[i].dtype(), arguments[i].shape()).copyFrom(arguments[i]);
            }
        }
        return out;
    }
}
