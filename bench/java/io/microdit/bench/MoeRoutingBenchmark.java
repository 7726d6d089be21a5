package io.microdit.bench;

import io.microdit.autograd.MoeFunctions;
import io.microdit.tensor.DType;
import io.microdit.tensor.Tensor;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.AuxCounters;
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
 * A backend's expert-choice MoE routing (CPU, or -p backend=cuda) at MicroDiT shapes: batch 16, 8 experts, capacity
 * 2, so each expert takes k = T/4 tokens per sample; T = 64 (256 px masked), 256 (256 px unmasked, 512 px masked)
 * and 1024 (512 px unmasked); D = 512 (Tiny) and 1024 (XL).
 *
 * <p>Besides calls per second, each benchmark reports two rates through {@link Traffic}: {@code routedRows}, the
 * routing slots (token copies sent to or returned from an expert, N·E·k per call) per second, and
 * {@code bytes}, the bytes each call must at least read and write, per second, so that bytes/1e9 is GB/s to be
 * compared with the machine's memory bandwidth (R = N·E·k·D·4 routed bytes, X = N·T·D·4 token bytes): dispatch
 * reads and writes each routed row once (2R); combine reads the routed rows and writes every token row (R + X);
 * the dispatch backward reads the routed rows and reads and writes the token rows (R + 2X); the combine backward
 * reads a dOut row and an h row and writes a dH row per slot (3R); top-k reads probs once (N·T·E·4) and writes
 * the gates and indices (N·E·k·8). Top-k does no floating-point arithmetic, so routed rows/s is its figure of
 * merit; for the others it is GB/s.
 *
 * <pre>
 * src/main/scripts/mvn25 -q test-compile dependency:build-classpath -Dmdep.outputFile=target/bench.cp \
 *     -Dmdep.includeScope=test
 * java -cp target/test-classes:target/classes:$(cat target/bench.cp) org.openjdk.jmh.Main MoeRoutingBenchmark
 * </pre>
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
public class MoeRoutingBenchmark {
    private static final int SAMPLES = 16, EXPERTS = 8;
    private static final double CAPACITY = 2.0;

    /** Routing only: probabilities in, gates and indices out. */
    @State(Scope.Benchmark)
    public static class Routing {
        @Param({"64", "256", "1024"})
        public int tokens;

        @Param({"cpu"})
        public String backend;

        BenchBackend bench;
        int k;
        Tensor probs, gates, indices;

        @Setup(Level.Trial)
        public void setUp() {
            bench = BenchBackend.open(backend, 0, "moe-routing-benchmark");
            k = route(this, new Random(1));
        }

        @TearDown(Level.Trial)
        public void tearDown() throws Exception {
            bench.close();
        }
    }

    /** Routed data at one width: a routing plus token rows, expert rows and their gradients. */
    @State(Scope.Benchmark)
    public static class Rows {
        @Param({"64", "256", "1024"})
        public int tokens;

        @Param({"512", "1024"})
        public int dim;

        @Param({"cpu"})
        public String backend;

        final Routing routing = new Routing();
        Tensor x, routed, h, out, dOut, dx, dH, dGates;

        @Setup(Level.Trial)
        public void setUp() {
            routing.tokens = tokens;
            routing.backend = backend;
            routing.setUp();
            BenchBackend bench = routing.bench;
            int k = routing.k;
            Random random = new Random(2);
            x = bench.uniform(random, SAMPLES, tokens, dim);
            routed = bench.zeros(EXPERTS, SAMPLES * k, dim);
            h = bench.uniform(random, EXPERTS, SAMPLES * k, dim);
            out = bench.zeros(SAMPLES, tokens, dim);
            dOut = bench.uniform(random, SAMPLES, tokens, dim);
            dx = bench.zeros(SAMPLES, tokens, dim);
            dH = bench.zeros(EXPERTS, SAMPLES * k, dim);
            dGates = bench.zeros(SAMPLES, EXPERTS, k);
        }

        @TearDown(Level.Trial)
        public void tearDown() throws Exception {
            routing.tearDown();
        }

        long routedRows() {
            return (long) SAMPLES * EXPERTS * routing.k;
        }

        long routedBytes() {
            return routedRows() * dim * Float.BYTES;
        }

        long tokenBytes() {
            return (long) SAMPLES * tokens * dim * Float.BYTES;
        }
    }

    /** Per-second rates JMH reports next to the score (see the class comment). */
    @State(Scope.Thread)
    @AuxCounters(AuxCounters.Type.OPERATIONS)
    public static class Traffic {
        public long routedRows;
        public long bytes;

        @Setup(Level.Iteration)
        public void reset() {
            routedRows = 0;
            bytes = 0;
        }

        void add(long rows, long byteCount) {
            routedRows += rows;
            bytes += byteCount;
        }
    }

    @Benchmark
    public void topK(Routing state, Traffic traffic) {
        state.bench.backend.expertChoiceTopK(state.probs, state.k, state.gates, state.indices);
        state.bench.finish();
        long slots = (long) SAMPLES * EXPERTS * state.k;
        traffic.add(slots, state.probs.byteSize() + slots * 8);
    }

    @Benchmark
    public void dispatch(Rows state, Traffic traffic) {
        state.routing.bench.backend.moeDispatch(state.x, state.routing.indices, state.routed);
        state.routing.bench.finish();
        traffic.add(state.routedRows(), 2 * state.routedBytes());
    }

    @Benchmark
    public void dispatchBackward(Rows state, Traffic traffic) {
        state.routing.bench.backend.moeDispatchBackward(state.h, state.routing.indices, state.dx);
        state.routing.bench.finish();
        traffic.add(state.routedRows(), state.routedBytes() + 2 * state.tokenBytes());
    }

    @Benchmark
    public void combine(Rows state, Traffic traffic) {
        state.routing.bench.backend.moeCombine(state.h, state.routing.gates, state.routing.indices, state.out);
        state.routing.bench.finish();
        traffic.add(state.routedRows(), state.routedBytes() + state.tokenBytes());
    }

    @Benchmark
    public void combineBackward(Rows state, Traffic traffic) {
        Routing r = state.routing;
        r.bench.backend.moeCombineBackward(state.dOut, state.h, r.gates, r.indices, state.dH, state.dGates);
        r.bench.finish();
        traffic.add(state.routedRows(), 3 * state.routedBytes());
    }

    /**
     * Fills a routing state: probs, the softmax over experts of random logits as the gate produces them, and the
     * routing they give. Returns k.
     */
    private static int route(Routing state, Random random) {
        int k = MoeFunctions.tokensPerExpert(CAPACITY, state.tokens, EXPERTS);
        BenchBackend bench = state.bench;
        state.probs = bench.zeros(SAMPLES, state.tokens, EXPERTS);
        bench.backend.softmax(bench.uniform(random, SAMPLES, state.tokens, EXPERTS), state.probs);
        state.gates = bench.zeros(SAMPLES, EXPERTS, k);
        state.indices = bench.zeros(DType.I32, SAMPLES, EXPERTS, k);
        bench.backend.expertChoiceTopK(state.probs, k, state.gates, state.indices);
        return k;
    }
}
