package io.microdit.bench;

import com.sun.management.OperatingSystemMXBean;
import io.microdit.backend.cpu.CpuBackend;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.lang.management.ManagementFactory;
import java.util.Arrays;
import java.util.Random;

/**
 * Times the CPU backend's matmul (C = A·B, no transposes) the way bench/gemm/sgemm_bench.c times OpenBLAS, so
 * bench/compare-gemm.sh can print them side by side: per size, warm up (long enough for C2 to compile the
 * kernel even on busy cores), then medians over repeats of runs of calls lasting about 50 ms each
 * (2·M·N·K FLOPs per call). GFLOP/s is by wall clock; CPU-GFLOP/s divides by the process's CPU time and
 * multiplies by the thread count: the rate had each thread a core to itself.
 * Usage: GemmThroughput THREADS REPEATS M N K [M N K ...]; prints "M N K GFLOP/s CPU-GFLOP/s" per size.
 */
public final class GemmThroughput {
    private GemmThroughput() {
    }

    public static void main(String[] args) {
        if (args.length < 5 || (args.length - 2) % 3 != 0) {
            System.err.println("usage: GemmThroughput THREADS REPEATS M N K [M N K ...]");
            System.exit(2);
        }
        int threads = Integer.parseInt(args[0]), repeats = Integer.parseInt(args[1]);
        Random random = new Random(12345);
        var os = (OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
        try (CpuBackend backend = new CpuBackend(threads)) {
            System.err.println("GemmThroughput: " + backend.name());
            for (int arg = 2; arg + 2 < args.length; arg += 3) {
                int m = Integer.parseInt(args[arg]), n = Integer.parseInt(args[arg + 1]);
                int k = Integer.parseInt(args[arg + 2]);
                try (MemoryScope scope = new MemoryScope("gemm-throughput")) {
                    Tensor a = Tensor.of(scope, uniform(random, m * k), m, k);
                    Tensor b = Tensor.of(scope, uniform(random, k * n), k, n);
                    Tensor c = scope.zeros(m, n);
                    double flops = 2.0 * m * n * k;
                    long warmEnd = System.nanoTime() + 3_000_000_000L;
                    while (System.nanoTime() < warmEnd) {
                        backend.matmul(a, false, b, false, null, c, false);
                    }
                    int calls = (int) (0.05 / (flops / 50e9)) + 1;
                    double[] rates = new double[repeats], cpuRates = new double[repeats];
                    for (int r = 0; r < repeats; r++) {
                        long start = System.nanoTime(), cpuStart = os.getProcessCpuTime();
                        for (int i = 0; i < calls; i++) {
                            backend.matmul(a, false, b, false, null, c, false);
                        }
                        rates[r] = flops * calls / (System.nanoTime() - start);
                        cpuRates[r] = flops * calls * threads / (os.getProcessCpuTime() - cpuStart);
                    }
                    Arrays.sort(rates);
                    Arrays.sort(cpuRates);
                    System.out.printf("%d %d %d %.1f %.1f%n", m, n, k, rates[repeats / 2], cpuRates[repeats / 2]);
                }
            }
        }
    }

    private static float[] uniform(Random random, int count) {
        float[] values = new float[count];
        for (int i = 0; i < count; i++) {
            values[i] = random.nextFloat() * 2f - 1f;
        }
        return values;
    }
}
