package io.microdit.backend.cpu;

import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.concurrent.atomic.DoubleAdder;
import java.util.concurrent.atomic.LongAdder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Measures the CPU's F32 peak, the denominator of the CPU backend's MFU: every thread runs twelve independent
 * chains of vector fused multiply-adds (enough to cover FMA latency on current cores) for a fixed time, and the
 * FLOPs of all threads are summed. It is the peak this JVM reaches with the Vector API, not a datasheet figure.
 */
public final class CpuPeak {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final int CHAINS = 12;
    private static final int INNER = 1 << 10;
    private static final int TRIALS = 5;
    private static final int ON_CORE_PERCENT = 95;

    private CpuPeak() {
    }

    /**
     * GFLOP/s over {@code threads} threads: a warm-up of about {@code seconds}, then timed trials of half as long
     * until one ran uncontended, at most {@value #TRIALS}; the best trial counts. A trial is uncontended when every
     * worker was on a core for at least {@value #ON_CORE_PERCENT}% of it: at start-up the JIT's compiler threads
     * or another process can hold a core for a whole short trial, and a single trial then reported half the peak
     * on a 2-core machine.
     */
    public static double measure(int threads, double seconds) {
        runOnThreads(threads, (long) (seconds * 1e9)); // lets C2 compile the burst before it is timed
        double best = 0;
        for (int trial = 0; trial < TRIALS; trial++) {
            Trial t = runOnThreads(threads, (long) (seconds * 0.5e9));
            best = Math.max(best, t.flops() / t.wallNanos());
            if (t.onCoreNanos() >= ON_CORE_PERCENT / 100.0 * threads * t.wallNanos()) {
                break;
            }
        }
        return best;
    }

    /** One timed run: the FLOPs of all workers, its wall time, and the CPU time its workers got. */
    private record Trial(double flops, long wallNanos, long onCoreNanos) {
    }

    private static Trial runOnThreads(int threads, long nanos) {
        ThreadMXBean cpuTimes = ManagementFactory.getThreadMXBean();
        DoubleAdder flops = new DoubleAdder();
        LongAdder onCore = new LongAdder();
        Thread[] workers = new Thread[threads];
        long start = System.nanoTime();
        for (int t = 0; t < threads; t++) {
            workers[t] = new Thread(() -> {
                long cpuStart = cpuTimes.getCurrentThreadCpuTime();
                long deadline = System.nanoTime() + nanos;
                long bursts = 0;
                float sink = 0;
                while (System.nanoTime() < deadline) {
                    sink += burst(sink);
                    bursts++;
                }
                onCore.add(cpuTimes.getCurrentThreadCpuTime() - cpuStart);
                flops.add(bursts * 2.0 * SPECIES.length() * CHAINS * INNER + (sink == Float.MIN_VALUE ? 1 : 0));
            }, "microdit-peak-" + t);
            workers[t].start();
        }
        for (Thread worker : workers) {
            try {
                worker.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while measuring the CPU peak", e);
            }
        }
        return new Trial(flops.sum(), System.nanoTime() - start, onCore.sum());
    }

    /**
     * {@code INNER} rounds of twelve independent FMA chains, in locals so that the JIT keeps them in registers;
     * a small method called often, so that it is compiled normally rather than through on-stack replacement.
     */
    private static float burst(float seed) {
        FloatVector a = FloatVector.broadcast(SPECIES, 0.999f);
        FloatVector b = FloatVector.broadcast(SPECIES, 1e-7f);
        FloatVector c0 = FloatVector.broadcast(SPECIES, seed), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0,
                c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
        for (int k = 0; k < INNER; k++) {
            c0 = c0.fma(a, b);
            c1 = c1.fma(a, b);
            c2 = c2.fma(a, b);
            c3 = c3.fma(a, b);
            c4 = c4.fma(a, b);
            c5 = c5.fma(a, b);
            c6 = c6.fma(a, b);
            c7 = c7.fma(a, b);
            c8 = c8.fma(a, b);
            c9 = c9.fma(a, b);
            c10 = c10.fma(a, b);
            c11 = c11.fma(a, b);
        }
        return c0.add(c1).add(c2).add(c3).add(c4).add(c5).add(c6).add(c7).add(c8).add(c9).add(c10).add(c11).lane(0)
                * 1e-30f;
    }
}
