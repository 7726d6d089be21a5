package io.microdit.bench;

import io.microdit.tensor.Tensor;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * A backend's LayerNorm (CPU, or -p backend=cuda; with weight, eps 1e-6) on a MicroDiT activation: rows = 16
 * samples × 256 tokens, width D = 512 or 1024, on all processors. LayerNorm is memory-bound, so the figure of merit
 * is bandwidth:
 *
 * <pre>
 * forward  bytes/call = 4·(R·D read x + R·D write out + D read weight + 2·R write mean, rstd)
 * backward bytes/call = 4·(2·R·D read dOut, x + R·D write dx + 2·R read mean, rstd + 2·D read/write dWeight)
 * GB/s = bytes/call × ops/s / 1e9
 * </pre>
 *
 * R = 4096: D = 512 moves 16.8 MB forward and 25.2 MB backward per call; D = 1024 moves 33.6 MB and 50.4 MB.
 * (Each row is read more than once by the kernel, but from L1; only the traffic above reaches memory.)
 *
 * Run: {@code java -cp ... org.openjdk.jmh.Main LayerNormBenchmark -f 1 -wi 2 -i 3 -w 1s -r 1s}.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
public class LayerNormBenchmark {
    private static final int ROWS = 16 * 256;
    private static final float EPS = 1e-6f;

    @Param({"512", "1024"})
    public int width;

    @Param({"cpu"})
    public String backend;

    private BenchBackend bench;
    private Tensor x, weight, out, mean, rstd, dOut, dx, dWeight;

    @Setup(Level.Trial)
    public void setUp() {
        bench = BenchBackend.open(backend, 0, "layer-norm-benchmark");
        Random random = new Random(1);
        x = bench.gaussian(random, ROWS, width);
        weight = bench.gaussian(random, width);
        dOut = bench.gaussian(random, ROWS, width);
        out = bench.zeros(ROWS, width);
        dx = bench.zeros(ROWS, width);
        dWeight = bench.zeros(width);
        mean = bench.zeros(ROWS);
        rstd = bench.zeros(ROWS);
        bench.backend.layerNorm(x, weight, EPS, out, mean, rstd);
    }

    @TearDown(Level.Trial)
    public void tearDown() throws Exception {
        bench.close();
    }

    @Benchmark
    public Tensor forward() {
        bench.backend.layerNorm(x, weight, EPS, out, mean, rstd);
        bench.finish();
        return out;
    }

    @Benchmark
    public Tensor backward() {
        bench.backend.layerNormBackward(dOut, x, weight, mean, rstd, dx, dWeight);
        bench.finish();
        return dx;
    }
}
