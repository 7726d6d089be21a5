package io.microdit.backend.cpu;

import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.concurrent.atomic.DoubleAdder;
import java.util.concurrent.atomic.LongAdder;

/**
 * Measures the CPU's F32 peak as the engine reaches it, the denominator of the CPU backend's MFU: every thread runs
 * the GEMM micro-kernel ({@link GemmKernel#multiply}) on panels that stay in L1 for a fixed time, and the FLOPs of
 * all threads are summed. It is the rate of the kernel that does the engine's FLOPs, not a datasheet figure.
 *
 * <p>An earlier probe timed bare chains of vector FMAs. C2 compiled that loop to two different speeds depending on
 * the order of events (inlined into the worker's loop, alone, or on-stack-replaced): on the AMD EPYC guest six calls
 * in one JVM measured 225 and then about 105 GFLOP/s, and the main job logged 119–206 from run to run
 * (bench/RESULTS.md, issue 15). The micro-kernel is compiled the way the training step compiles it, and measured
 * 208–216 GFLOP/s on every call there.
 */
public final class CpuPeak {
    /** Steps of k per kernel call: A's and B's panels (6 and 16 KiB) stay in L1. */
    private static final int DEPTH = 128;
    private static final int CALLS_PER_CHECK = 64;
    private static final int TRIALS = 5;
    private static final int ON_CORE_PERCENT = 95;

    private CpuPeak() {
    }

    /**
     * GFLOP/s over {@code threads} threads: a warm-up of about {@code seconds}, then timed trials of half as long
     * until one ran uncontended, at most {@value #TRIALS}; the best trial counts. A trial is uncontended when every
     * worker was on a core for at least {@value #ON_CORE_PERCENT}% of it: at start-up the JIT's compiler threads
     * or another process can hold a core for a whole short trial.
     */
    public static double measure(int threads, double seconds) {
        runOnThreads(threads, (long) (seconds * 1e9)); // lets C2 compile the kernel before it is timed
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
                long calls = 0;
                float[] a = panel(GemmKernel.ROWS), b = panel(GemmKernel.COLUMNS);
                float[] tile = new float[GemmKernel.ROWS * GemmKernel.COLUMNS];
                while (System.nanoTime() < deadline) {
                    for (int i = 0; i < CALLS_PER_CHECK; i++) {
                        GemmKernel.multiply(a, 0, b, 0, DEPTH, tile);
                    }
                    calls += CALLS_PER_CHECK;
                }
                onCore.add(cpuTimes.getCurrentThreadCpuTime() - cpuStart);
                // The tile is read once, so that the JIT cannot drop the products as unused.
                double sink = tile[0] == Float.MIN_VALUE ? 1 : 0;
                flops.add(calls * 2.0 * GemmKernel.ROWS * GemmKernel.COLUMNS * DEPTH + sink);
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

    /** A packed panel of {@code width} values per step of k over {@link #DEPTH} steps, values in [0.5, 1). */
    private static float[] panel(int width) {
        float[] panel = new float[DEPTH * width];
        for (int i = 0; i < panel.length; i++) {
            panel[i] = 0.5f + (i % 97) / 194f;
        }
        return panel;
    }
}
