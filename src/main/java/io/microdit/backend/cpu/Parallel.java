package io.microdit.backend.cpu;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The CPU backend's worker threads. Kernels split their work into ranges of an index space, which the calling
 * thread and the workers claim in turn. With one thread everything runs inline as one range.
 *
 * <p>Why not a ForkJoinPool: a training step is about 1,400 ops of 0.05-2 ms each, and each forked op paid
 * ~0.1 ms to wake a parked pool thread (a futex, then in a VM an IPI to a halted vCPU), about what the second
 * thread saved (fashion-small's step: 500 ms on one thread, 490 on two). Here idle workers spin on the latest
 * job for {@link #SPIN_NANOS} after their last one before they park, so back-to-back ops start on every thread
 * at once. And a job is cut into up to {@link #PIECES_PER_THREAD} ranges per thread, claimed from a counter,
 * so a worker that starts late (descheduled by the JIT or GC threads, or parked) or runs slower costs the
 * caller only its unclaimed pieces, never a wait; the caller waits only for pieces already running.
 *
 * <p>Determinism: the ranges depend on n, minChunk and the thread count only, never on which thread runs
 * them, and each kernel's results do not depend on where its ranges are cut (a kernel reduces within an index,
 * never across a range).
 */
public final class Parallel implements AutoCloseable {
    /** Body of a parallel loop over the index range [start, end). */
    @FunctionalInterface
    public interface RangeBody {
        /** Runs the loop body over [start, end). */
        void run(int start, int end);
    }

    /** How long an idle worker spins for the next job before it parks: longer than the gaps between ops. */
    private static final long SPIN_NANOS = 5_000_000;
    /**
     * Pause instructions (about 20 µs) an idle worker spins before it yields the core between its checks for a
     * job: most ops follow the last one within that, and a JFR profile of fashion-small on a shared 2-core
     * machine had the worker spinning in 25% of all samples, time the caller's serial work (or another
     * process) waited for the core. A yield costs a system call and returns at once on an idle machine.
     */
    private static final int PURE_SPINS = 1 << 10;
    /** Ranges per thread: enough to even out a late start, few enough that per-range setup stays small. */
    private static final int PIECES_PER_THREAD = 4;

    private final int threads;
    private final Worker[] workers;
    /** Held by the thread whose job the workers run; others (and nested calls) run their loops inline. */
    private final ReentrantLock submit = new ReentrantLock();
    /** The latest job; each worker helps with every job it sees. */
    private volatile Job job = new Job(0, null, 0, 0);
    private volatile boolean closed;

    /** One forRange call: its pieces, the next one to claim, how many have finished, the first failure. */
    private static final class Job {
        final long generation;
        final RangeBody body;
        final int n;
        final int pieces;
        final AtomicInteger next = new AtomicInteger();
        final AtomicInteger finished = new AtomicInteger();
        volatile Throwable failure;

        Job(long generation, RangeBody body, int n, int pieces) {
            this.generation = generation;
            this.body = body;
            this.n = n;
            this.pieces = pieces;
        }

        /** Claims and runs pieces until none is left. */
        void help() {
            for (int piece; (piece = next.getAndIncrement()) < pieces; ) {
                try {
                    body.run((int) ((long) n * piece / pieces), (int) ((long) n * (piece + 1) / pieces));
                } catch (Throwable e) {
                    if (failure == null) {
                        failure = e;
                    }
                } finally {
                    finished.incrementAndGet();
                }
            }
        }
    }

    /** The calling thread plus {@code threads} − 1 started workers (daemon threads, stopped by {@link #close}). */
    public Parallel(int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("threads must be at least 1, got " + threads);
        }
        this.threads = threads;
        this.workers = new Worker[threads - 1];
        for (int w = 0; w < workers.length; w++) {
            workers[w] = new Worker(w + 1);
            workers[w].start();
        }
    }

    /** The threads a loop runs on, the caller's included. */
    public int threads() {
        return threads;
    }

    /**
     * Runs {@code body} over [0, n) split into contiguous ranges of at least {@code minChunk} indices each (one
     * range on one thread, at most {@link #PIECES_PER_THREAD} per thread otherwise).
     */
    public void forRange(int n, int minChunk, RangeBody body) {
        if (n <= 0) {
            return;
        }
        int pieces = pieces(n, minChunk);
        if (threads == 1 || pieces == 1 || closed || Thread.currentThread() instanceof Worker
                || !submit.tryLock()) {
            body.run(0, n); // one range, or nested in a job (or another thread's): more threads would only wait
            return;
        }
        try {
            if (submit.getHoldCount() > 1) {
                body.run(0, n);
                return;
            }
            Job job = new Job(this.job.generation + 1, body, n, pieces);
            this.job = job; // publishes it
            for (int w = 0; w < Math.min(workers.length, pieces - 1); w++) {
                if (workers[w].parked) {
                    LockSupport.unpark(workers[w]);
                }
            }
            job.help();
            for (int spins = 0; job.finished.get() != pieces; spins++) {
                if (spins < 1 << 16) {
                    Thread.onSpinWait();
                } else {
                    Thread.yield(); // more threads than cores: let the worker we wait for run
                }
            }
            Throwable failure = job.failure;
            if (failure instanceof RuntimeException e) {
                throw e;
            }
            if (failure instanceof Error e) {
                throw e;
            }
            if (failure != null) {
                throw new IllegalStateException(failure);
            }
        } finally {
            submit.unlock();
        }
    }

    /** The ranges {@link #forRange} cuts [0, n) into for this {@code minChunk}, so that a kernel can plan for them. */
    int pieces(int n, int minChunk) {
        return Math.min(threads * PIECES_PER_THREAD, Math.max(1, n / Math.max(1, minChunk)));
    }

    /** Runs {@code body} once per index in [0, n), indices spread over the threads in contiguous ranges. */
    public void forEach(int n, java.util.function.IntConsumer body) {
        forRange(n, 1, (start, end) -> {
            for (int i = start; i < end; i++) {
                body.accept(i);
            }
        });
    }

    @Override
    public void close() {
        closed = true;
        for (Worker w : workers) {
            LockSupport.unpark(w);
        }
    }

    /** A worker claims pieces of each job it sees; a job it sees late may have none left. */
    private final class Worker extends Thread {
        volatile boolean parked;

        Worker(int index) {
            super("microdit-cpu-" + index);
            setDaemon(true);
        }

        @Override
        public void run() {
            long seen = 0; // the initial job's: a job posted before this thread started is still helped with
            for (Job current; (current = awaitJob(seen)) != null; ) {
                seen = current.generation;
                current.help();
            }
        }

        /** The latest job, once it is newer than generation {@code seen}: spins a while, then parks; null once closed. */
        private Job awaitJob(long seen) {
            long spinStart = System.nanoTime();
            for (int spins = 0; ; spins++) {
                Job current = job;
                if (current.generation != seen) {
                    return current;
                }
                if (closed) {
                    return null;
                }
                if ((spins & 255) != 255 || System.nanoTime() - spinStart < SPIN_NANOS) {
                    if (spins < PURE_SPINS) {
                        Thread.onSpinWait();
                    } else {
                        Thread.yield(); // on a busy machine the core goes to a thread with work, often our caller
                    }
                    continue;
                }
                parked = true;
                if (job.generation == seen && !closed) { // a job posted before the flag was seen would be missed
                    LockSupport.park(this);
                }
                parked = false;
                spinStart = System.nanoTime();
            }
        }
    }
}
