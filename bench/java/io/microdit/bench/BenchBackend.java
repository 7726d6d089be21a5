package io.microdit.bench;

import io.microdit.backend.Backend;
import io.microdit.backend.cpu.CpuBackend;
import io.microdit.backend.cuda.CudaBackend;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.util.Random;

/**
 * The backend a benchmark measures, chosen by its {@code backend} parameter: {@code cpu} (the default suite) or
 * {@code cuda} (the GPU; the host emulator only with {@code -Dmicrodit.device=emu} in the forks' JVM arguments, and
 * then its timings mean nothing; without a usable GPU an error), with one scope of
 * that backend's memory for the benchmark's tensors. Benchmarks call {@link #finish()} at the end of each
 * invocation so a GPU's queued work is inside the measured time.
 */
final class BenchBackend implements AutoCloseable {
    final Backend backend;
    final MemoryScope scope;
    private final AutoCloseable closer;

    private BenchBackend(Backend backend, AutoCloseable closer, String scopeName) {
        this.backend = backend;
        this.closer = closer;
        this.scope = backend.scope(scopeName);
    }

    /** {@code name} is cpu or cuda; {@code threads} applies to the CPU backend (0 = all processors). */
    static BenchBackend open(String name, int threads, String scopeName) {
        return switch (name) {
            case "cpu" -> {
                CpuBackend cpu = threads > 0 ? new CpuBackend(threads) : new CpuBackend();
                yield new BenchBackend(cpu, cpu, scopeName);
            }
            case "cuda" -> {
                CudaBackend cuda = new CudaBackend();
                yield new BenchBackend(cuda, cuda, scopeName);
            }
            default -> throw new IllegalArgumentException("benchmark parameter backend must be cpu or cuda, got '"
                    + name + "'");
        };
    }

    /** Uniform values in [-1, 1) in this backend's memory. */
    Tensor uniform(Random random, int... shape) {
        float[] values = new float[count(shape)];
        for (int i = 0; i < values.length; i++) {
            values[i] = random.nextFloat() * 2f - 1f;
        }
        return of(values, shape);
    }

    /** Standard normal values in this backend's memory. */
    Tensor gaussian(Random random, int... shape) {
        float[] values = new float[count(shape)];
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) random.nextGaussian();
        }
        return of(values, shape);
    }

    Tensor of(float[] values, int... shape) {
        Tensor t = zeros(DType.F32, shape);
        backend.write(t, values);
        return t;
    }

    Tensor zeros(DType dtype, int... shape) {
        return Tensor.zeros(scope, dtype, shape);
    }

    Tensor zeros(int... shape) {
        return zeros(DType.F32, shape);
    }

    /** {@code t} itself for {@code f32}, else a BF16 copy (the operand type of the tensor-core kernels). */
    Tensor as(String dtype, Tensor t) {
        return switch (dtype) {
            case "f32" -> t;
            case "bf16" -> {
                Tensor copy = zeros(DType.BF16, t.shape());
                backend.convert(t, copy);
                yield copy;
            }
            default -> throw new IllegalArgumentException("benchmark parameter dtype must be f32 or bf16, got '"
                    + dtype + "'");
        };
    }

    /** Waits for the queued work (a no-op on the CPU, whose ops finish before they return). */
    void finish() {
        backend.synchronize();
    }

    private static int count(int[] shape) {
        int n = 1;
        for (int d : shape) {
            n = Math.multiplyExact(n, d);
        }
        return n;
    }

    @Override
    public void close() throws Exception {
        scope.close();
        closer.close();
    }
}
