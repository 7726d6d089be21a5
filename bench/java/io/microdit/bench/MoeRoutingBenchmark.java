package io.microdit.bench;

import io.microdit.autograd.MoeFunctions;
import io.microdit.backend.cpu.CpuBackend;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
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
 * The CPU backend's expert-choice MoE routing at MicroDiT shapes: batch 16, 8 experts, capacity 2, so each
 * expert takes k = T/4 tokens per sample; T = 64 (256 px masked), 256 (256 px unmasked, 512 px masked) and
 * 1024 (512 px unmasked); D = 512 (Tiny) and 1024 (XL).
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

        CpuBackend backend;
        MemoryScope scope;
        int k;
        Tensor probs, gates, indices;

        @Setup(Level.Trial)
        public void setUp() {
            backend = new CpuBackend();
            scope = new MemoryScope("moe-routing-benchmark");
            k = route(this, new Random(1));
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            scope.close();
            backend.close();
        }
    }

    /** Routed data at one width: a routing plus token rows, expert rows and their gradients. */
    @State(Scope.Benchmark)
    public static class Rows {
        @Param({"64", "256", "1024"})
        public int tokens;

        @Param({"512", "1024"})
        public int dim;

        final Routing routing = new Routing();
        Tensor x, routed, h, out, dOut, dx, dH, dGates;

        @Setup(Level.Trial)
        public void setUp() {
            routing.tokens = tokens;
            routing.setUp();
            MemoryScope scope = routing.scope;
            int k = routing.k;
            Random random = new Random(2);
            x = uniform(scope, random, SAMPLES, tokens, dim);
            routed = scope.zeros(EXPERTS, SAMPLES * k, dim);
            h = uniform(scope, random, EXPERTS, SAMPLES * k, dim);
            out = scope.zeros(SAMPLES, tokens, dim);
            dOut = uniform(scope, random, SAMPLES, tokens, dim);
            dx = scope.zeros(SAMPLES, tokens, dim);
            dH = scope.zeros(EXPERTS, SAMPLES * k, dim);
            dGates = scope.zeros(SAMPLES, EXPERTS, k);
        }

        @TearDown(Level.Trial)
        public void tearDown() {
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
        state.backend.expertChoiceTopK(state.probs, state.k, state.gates, state.indices);
        long slots = (long) SAMPLES * EXPERTS * state.k;
        traffic.add(slots, state.probs.byteSize() + slots * 8);
    }

    @Benchmark
    public void dispatch(Rows state, Traffic traffic) {
        state.routing.backend.moeDispatch(state.x, state.routing.indices, state.routed);
        traffic.add(state.routedRows(), 2 * state.routedBytes());
    }

    @Benchmark
    public void dispatchBackward(Rows state, Traffic traffic) {
        state.routing.backend.moeDispatchBackward(state.h, state.routing.indices, state.dx);
        traffic.add(state.routedRows(), state.routedBytes() + 2 * state.tokenBytes());
    }

    @Benchmark
    public void combine(Rows state, Traffic traffic) {
        state.routing.backend.moeCombine(state.h, state.routing.gates, state.routing.indices, state.out);
        traffic.add(state.routedRows(), state.routedBytes() + state.tokenBytes());
    }

    @Benchmark
    public void combineBackward(Rows state, Traffic traffic) {
        Routing r = state.routing;
        r.backend.moeCombineBackward(state.dOut, state.h, r.gates, r.indices, state.dH, state.dGates);
        traffic.add(state.routedRows(), 3 * state.routedBytes());
    }

    private static Tensor uniform(MemoryScope scope, Random random, int... shape) {
        Tensor t = scope.zeros(shape);
        for (long i = 0; i < t.numel(); i++) {
            t.setFloat(i, random.nextFloat() * 2f - 1f);
        }
        return t;
    }

    /**
     * Fills a routing state: probs, the softmax over experts of random logits as the gate produces them, and the
     * routing they give. Returns k.
     */
    private static int route(Routing state, Random random) {
        int k = MoeFunctions.tokensPerExpert(CAPACITY, state.tokens, EXPERTS);
        state.probs = state.scope.zeros(SAMPLES, state.tokens, EXPERTS);
        state.backend.softmax(uniform(state.scope, random, SAMPLES, state.tokens, EXPERTS), state.probs);
        state.gates = state.scope.zeros(SAMPLES, EXPERTS, k);
        state.indices = state.scope.zeros(DType.I32, SAMPLES, EXPERTS, k);
        state.backend.expertChoiceTopK(state.probs, k, state.gates, state.indices);
        return k;
    }
}
