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
 * A backend's fused attention at MicroDiT shapes (the CPU backend on all processors, or -p backend=cuda). FLOPs per
 * call (the FlashAttention convention): forward F = 4·N·H·Tq·Tk·Dh, forward + backward 3.5·F; GFLOP/s = FLOPs ×
 * ops/s / 1e9.
 *
 * <pre>
 * shape                    N   Tq    Tk   H   Dh   F (MFLOP)
 * self-n8-t256-h8-d32      8   256   256  8   32    537
 * self-n8-t256-h16-d32     8   256   256  16  32   1074
 * self-n1-t1024-h16-d64    1   1024  1024 16  64   4295
 * cross-n8-t256-k77-h16-d32 8  256   77   16  32    323
 * </pre>
 *
 * Run: {@code java -cp ... org.openjdk.jmh.Main AttentionBenchmark -f 1 -wi 2 -i 3 -w 1s -r 1s}.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
public class AttentionBenchmark {
    @Param({"self-n8-t256-h8-d32", "self-n8-t256-h16-d32", "self-n1-t1024-h16-d64", "cross-n8-t256-k77-h16-d32"})
    public String shape;

    @Param({"cpu"})
    public String backend;

    /** q, k and v as f32, or bf16 (the tensor-core kernels on the CUDA backend; the CPU backend upcasts). */
    @Param({"f32"})
    public String dtype;

    private BenchBackend bench;
    private int heads;
    private Tensor q, k, v, out, lse, dOut, dq, dk, dv;

    @Setup(Level.Trial)
    public void setUp() {
        int batch = parse("n"), queries = parse("t"), heads = parse("h"), headDim = parse("d");
        int keys = shape.startsWith("cross") ? parse("k") : queries;
        int width = heads * headDim;
        this.heads = heads;
        bench = BenchBackend.open(backend, 0, "attention-benchmark");
        Random random = new Random(1);
        q = bench.as(dtype, bench.uniform(random, batch, queries, width));
        k = bench.as(dtype, bench.uniform(random, batch, keys, width));
        v = bench.as(dtype, bench.uniform(random, batch, keys, width));
        dOut = bench.uniform(random, batch, queries, width);
        out = bench.zeros(batch, queries, width);
        lse = bench.zeros(batch, heads, queries);
        dq = bench.zeros(batch, queries, width);
        dk = bench.zeros(batch, keys, width);
        dv = bench.zeros(batch, keys, width);
    }

    /** The number after "-prefix" in the shape name. */
    private int parse(String prefix) {
        for (String part : shape.split("-")) {
            if (part.startsWith(prefix) && part.length() > prefix.length()
                    && Character.isDigit(part.charAt(prefix.length()))) {
                return Integer.parseInt(part.substring(prefix.length()));
            }
        }
        throw new IllegalArgumentException("shape " + shape + " has no " + prefix + " part");
    }

    @TearDown(Level.Trial)
    public void tearDown() throws Exception {
        bench.close();
    }

    @Benchmark
    public Tensor forward() {
        bench.backend.attention(q, k, v, heads, out, lse);
        bench.finish();
        return out;
    }

    @Benchmark
    public Tensor forwardBackward() {
        bench.backend.attention(q, k, v, heads, out, lse);
        bench.backend.attentionBackward(dOut, q, k, v, out, lse, heads, dq, dk, dv);
        bench.finish();
        return dq;
    }
}
