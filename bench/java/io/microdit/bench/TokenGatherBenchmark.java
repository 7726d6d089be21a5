package io.microdit.bench;

import io.microdit.tensor.DType;
import io.microdit.tensor.Tensor;
import java.lang.foreign.MemorySegment;
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
 * The deferred mask's token movement on a backend (CPU, or -p backend=cuda): after the patch-mixer, each of 16
 * samples keeps 64 of its 256 tokens (75% masking; random distinct ids per sample) — {@code gather} copies the kept
 * rows out, {@code scatter} puts them back among zero mask tokens for the final layer. Memory-bound, so the figure
 * of merit is bandwidth, next to {@code copy}: one contiguous copy of the gathered bytes on one thread ({@code
 * MemorySegment.copy}), the copy bandwidth the kernels are measured against.
 *
 * <pre>
 * gather  bytes/call = 4·(N·K·D read + N·K·D write)            (+ N·K ids)
 * scatter bytes/call = 4·(N·K·D read + N·T·D write)            (unkept rows written as zeros)
 * copy    bytes/call = 4·(N·K·D read + N·K·D write)
 * GB/s = bytes/call × ops/s / 1e9
 * </pre>
 *
 * N = 16, T = 256, K = 64: D = 1152 (MicroDiT-XL's width) moves 9.4 MB per gather and 23.6 MB per scatter.
 *
 * Run: {@code bench/run-jmh.sh TokenGatherBenchmark -f 1 -wi 2 -i 3 -w 1s -r 1s}.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
public class TokenGatherBenchmark {
    private static final int SAMPLES = 16, TOKENS = 256, KEPT = 64;

    @Param({"384", "1152"})
    public int width;

    @Param({"cpu"})
    public String backend;

    private BenchBackend bench;
    private Tensor x, ids, kept, scattered, copySource, copyTarget;

    @Setup(Level.Trial)
    public void setUp() {
        bench = BenchBackend.open(backend, 0, "token-gather-benchmark");
        Random random = new Random(1);
        x = bench.gaussian(random, SAMPLES, TOKENS, width);
        ids = bench.zeros(DType.I32, SAMPLES, KEPT);
        int[] keep = new int[SAMPLES * KEPT];
        for (int n = 0; n < SAMPLES; n++) {
            int[] order = new int[TOKENS];
            for (int t = 0; t < TOKENS; t++) {
                order[t] = t;
            }
            for (int t = TOKENS - 1; t > 0; t--) {
                int j = random.nextInt(t + 1);
                int swap = order[t];
                order[t] = order[j];
                order[j] = swap;
            }
            java.util.Arrays.sort(order, 0, KEPT);
            System.arraycopy(order, 0, keep, n * KEPT, KEPT);
        }
        bench.backend.write(ids, keep);
        kept = bench.zeros(SAMPLES, KEPT, width);
        scattered = bench.zeros(SAMPLES, TOKENS, width);
        copySource = bench.zeros(SAMPLES, KEPT, width);
        copyTarget = bench.zeros(SAMPLES, KEPT, width);
        bench.backend.gatherRows(x, ids, kept);
    }

    @TearDown(Level.Trial)
    public void tearDown() throws Exception {
        bench.close();
    }

    @Benchmark
    public Tensor gather() {
        bench.backend.gatherRows(x, ids, kept);
        bench.finish();
        return kept;
    }

    @Benchmark
    public Tensor scatter() {
        bench.backend.scatterRows(kept, ids, scattered);
        bench.finish();
        return scattered;
    }

    @Benchmark
    public Tensor copy() {
        if (bench.scope.hostAccessible()) {
            MemorySegment.copy(copySource.segment(), 0, copyTarget.segment(), 0, copySource.segment().byteSize());
        } else {
            bench.backend.copy(copySource, copyTarget); // device to device
        }
        bench.finish();
        return copyTarget;
    }
}
