package io.microdit.bench;

import io.microdit.tensor.Tensor;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Throughput of a backend's matmul (the CPU backend, or -p backend=cuda), {@code out[M, N] = a · op(b)}. JMH
 * reports calls per second; each call does 2·M·N·K FLOPs, so GFLOP/s = ops/s × 2·M·N·K / 1e9 (e.g. 512x512x512 at
 * 1000 ops/s is 268 GFLOP/s). Shapes are MxNxK: squares, and MicroDiT's linear layers with M = tokens × batch and K
 * the model width: qkv (N = 3·512), the attention output (512 × 512), the SwiGLU up and down projections (1408
 * hidden) and a 1024-wide layer; and two of a patch-2 fashion-small step's own: a width-128 linear over 16,384
 * tokens (16384x128x128) and its weight gradient (128x128x16384, with {@code -p layout=TN}). {@code layout} NT is the
 * linear forward (x · Wᵀ), NN its input gradient (dy · W) and TN its weight gradient (dyᵀ · x, accumulated). Run: {@code bench/run-jmh.sh GemmBenchmark} (add {@code -p
 * shape=512x512x512 -p threads=1} to narrow it). On a GPU: {@code -p backend=cuda -p threads=0 -p dtype=bf16} (the
 * tensor-core kernel; {@code f32} the SIMT one).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
public class GemmBenchmark {
    @Param({"256x256x256", "512x512x512", "1024x1024x1024", "2048x2048x2048", "4096x1536x512", "4096x512x512",
            "4096x1408x512", "4096x512x1408", "1024x3072x1024", "16384x128x128", "128x128x16384"})
    public String shape;

    @Param({"1", "2"})
    public int threads;

    @Param({"NN", "NT"})
    public String layout;

    @Param({"cpu"})
    public String backend;

    /** Operand type: f32, or bf16 (tensor cores on the CUDA backend; the CPU backend upcasts). */
    @Param({"f32"})
    public String dtype;

    private BenchBackend bench;
    private Tensor a;
    private Tensor b;
    private Tensor out;
    private boolean transposeA;
    private boolean transposeB;

    @Setup(Level.Trial)
    public void setUp() {
        String[] sizes = shape.split("x");
        int m = Integer.parseInt(sizes[0]), n = Integer.parseInt(sizes[1]), k = Integer.parseInt(sizes[2]);
        transposeA = layout.charAt(0) == 'T';
        transposeB = layout.charAt(1) == 'T';
        bench = BenchBackend.open(backend, threads, "gemm-benchmark");
        Random random = new Random(42);
        a = bench.as(dtype, transposeA ? bench.uniform(random, k, m) : bench.uniform(random, m, k));
        b = bench.as(dtype, transposeB ? bench.uniform(random, n, k) : bench.uniform(random, k, n));
        out = bench.zeros(m, n);
    }

    @TearDown(Level.Trial)
    public void tearDown() throws Exception {
        bench.close();
    }

    @Benchmark
    public void matmul() {
        bench.backend.matmul(a, transposeA, b, transposeB, null, out, transposeA);
        bench.finish();
    }
}
