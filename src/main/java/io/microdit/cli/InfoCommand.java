package io.microdit.cli;

import io.microdit.backend.cpu.CpuBackend;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.util.Random;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * Prints what this machine offers the engine: version, Java, the CPU backend's measured GEMM speed, and what
 * {@code --backend cuda} would run on (device, library and why, driver and runtime versions) or why it cannot.
 */
@Command(name = "info", description = "Print version, Java, CPU backend GEMM GFLOP/s, and the CUDA backend's device, "
        + "library (and why) and driver and runtime versions.")
final class InfoCommand implements Callable<Integer> {
    @Option(names = "--gemm-size", description = "Square GEMM size for the speed probe (default ${DEFAULT-VALUE}).")
    int gemmSize = 512;

    @Option(names = "--seconds", description = "Time spent measuring the GEMM (default ${DEFAULT-VALUE}).")
    double seconds = 1.0;

    @Mixin
    DeviceOption device;

    @Override
    public Integer call() {
        System.out.println("microdit " + Main.version());
        System.out.println("java     " + Runtime.version() + " (" + System.getProperty("java.vendor") + ", "
                + System.getProperty("os.arch") + ", " + Runtime.getRuntime().availableProcessors() + " cpus)");
        try (CpuBackend backend = new CpuBackend(); MemoryScope scope = new MemoryScope("info")) {
            System.out.println("backend  " + backend.name());
            System.out.printf("gemm     %.3g GFLOP/s (F32, %d×%d×%d, all threads, measured now)%n",
                    measureGemm(backend, scope, gemmSize, seconds), gemmSize, gemmSize, gemmSize);
        }
        System.out.println(CudaProbe.describe(device.device));
        return 0;
    }

    static double measureGemm(CpuBackend backend, MemoryScope scope, int n, double seconds) {
        Random random = new Random(1);
        float[] values = new float[n * n];
        for (int i = 0; i < values.length; i++) {
            values[i] = random.nextFloat() * 2 - 1;
        }
        Tensor a = Tensor.of(scope, values, n, n);
        Tensor b = Tensor.of(scope, values, n, n);
        Tensor c = scope.zeros(n, n);
        backend.matmul(a, false, b, false, null, c, false); // warm-up and JIT
        long runs = 0;
        long start = System.nanoTime();
        long deadline = start + (long) (seconds * 1e9);
        long now;
        do {
            backend.matmul(a, false, b, false, null, c, false);
            runs++;
            now = System.nanoTime();
        } while (now < deadline);
        return 2.0 * n * n * n * runs / (now - start);
    }
}
