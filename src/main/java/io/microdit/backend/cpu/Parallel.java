package io.microdit.backend.cpu;

import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinTask;
import java.util.concurrent.ForkJoinWorkerThread;

/**
 * The CPU backend's worker threads. Kernels split their work into ranges of an index space; one range runs on
 * the calling thread, the others on the pool. With one thread everything runs inline.
 */
public final class Parallel implements AutoCloseable {
    /** Body of a parallel loop over the index range [start, end). */
    @FunctionalInterface
    public interface RangeBody {
        void run(int start, int end);
    }

    private final int threads;
    private final ForkJoinPool pool;

    public Parallel(int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("threads must be at least 1, got " + threads);
        }
        this.threads = threads;
        this.pool = threads == 1 ? null : new ForkJoinPool(threads, p -> {
            ForkJoinWorkerThread t = ForkJoinPool.defaultForkJoinWorkerThreadFactory.newThread(p);
            t.setName("microdit-cpu-" + t.getPoolIndex());
            t.setDaemon(true);
            return t;
        }, null, false);
    }

    public int threads() {
        return threads;
    }

    /**
     * Runs {@code body} over [0, n) split into at most {@code threads} contiguous ranges of at least
     * {@code minChunk} indices each.
     */
    public void forRange(int n, int minChunk, RangeBody body) {
        if (n <= 0) {
            return;
        }
        int chunks = Math.min(threads, Math.max(1, n / Math.max(1, minChunk)));
        if (chunks == 1 || pool == null) {
            body.run(0, n);
            return;
        }
        if (ForkJoinTask.inForkJoinPool() && ForkJoinTask.getPool() == pool) {
            body.run(0, n); // already on a worker: nested parallelism would only add overhead
            return;
        }
        ForkJoinTask<?>[] tasks = new ForkJoinTask<?>[chunks - 1];
        for (int c = 1; c < chunks; c++) {
            int start = (int) ((long) n * c / chunks);
            int end = (int) ((long) n * (c + 1) / chunks);
            tasks[c - 1] = pool.submit(() -> body.run(start, end));
        }
        RuntimeException failure = null;
        try {
            body.run(0, (int) ((long) n / chunks));
        } catch (RuntimeException e) {
            failure = e;
        }
        for (ForkJoinTask<?> task : tasks) {
            try {
                task.join();
            } catch (RuntimeException e) {
                if (failure == null) {
                    failure = e;
                }
            }
        }
        if (failure != null) {
            throw failure;
        }
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
        if (pool != null) {
            pool.shutdown();
        }
    }
}
