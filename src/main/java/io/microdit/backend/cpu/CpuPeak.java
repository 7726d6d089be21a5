package io.microdit.backend.cpu;

import java.util.concurrent.atomic.DoubleAdder;
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
    private static final int INNER = 1 << 12;

    private CpuPeak() {
    }

    /** GFLOP/s over {@code threads} threads, measured for about {@code seconds}. */
    public static double measure(int threads, double seconds) {
        DoubleAdder flops = new DoubleAdder();
        long nanos = (long) (seconds * 1e9);
        Thread[] workers = new Thread[threads];
        long start = System.nanoTime();
        for (int t = 0; t < threads; t++) {
            workers[t] = new Thread(() -> flops.add(run(nanos)), "microdit-peak-" + t);
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
        return flops.sum() / (System.nanoTime() - start);
    }

    private static double run(long nanos) {
        FloatVector a = FloatVector.broadcast(SPECIES, 0.999f);
        FloatVector b = FloatVector.broadcast(SPECIES, 1e-7f);
        // Locals, not an array: the JIT keeps them in registers.
        FloatVector c0 = a, c1 = a, c2 = a, c3 = a, c4 = a, c5 = a, c6 = a, c7 = a, c8 = a, c9 = a, c10 = a, c11 = a;
        long iterations = 0;
        long deadline = System.nanoTime() + nanos;
        while (System.nanoTime() < deadline) {
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
            iterations += INNER;
        }
        float sink = c0.add(c1).add(c2).add(c3).add(c4).add(c5).add(c6).add(c7).add(c8).add(c9).add(c10).add(c11)
                .lane(0);
        if (sink == Float.MIN_VALUE) {
            System.out.print(""); // keeps the chains alive for the JIT
        }
        return 2.0 * SPECIES.length() * CHAINS * iterations;
    }
}
