package io.microdit.train;

import io.microdit.distributed.Communicator;
import io.microdit.distributed.InProcessWorld;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * Data-parallel replicas on threads of one process: how many {@code --replicas auto} runs, and running them as the
 * ranks of an {@link InProcessWorld}, rank 0 on the caller's thread. What a rank does is {@link TrainingRun}'s.
 */
final class Replicas {
    /** One rank's part of the run, on the thread {@link #run} gives it. */
    @FunctionalInterface
    interface Rank {
        TrainingRun.Outcome run(Communicator communicator) throws IOException;
    }

    private Replicas() {
    }

    /**
     * The replicas {@code --replicas auto} runs: one per CPU thread of the run, as far as the micro-batches of a step
     * go round evenly (a divisor of batch_size / micro_batch_size), on the CPU backend only, and only while each
     * replica's training state (weights, gradients, AdamW moments: 16 bytes a parameter; the backend's native
     * memory, not the Java heap) times the count stays within a quarter of {@code memory}, the machine's; one
     * otherwise. The replicas then share the CPU threads out.
     */
    static int auto(TrainingConfig config, String backendName, int processors, long parameters, long memory) {
        if (!"cpu".equals(backendName)) {
            return 1;
        }
        int accumulation = config.accumulationSteps();
        int threads = config.threads() == 0 ? processors : config.threads();
        for (int count = Math.min(threads, accumulation); count > 1; count--) {
            if (accumulation % count == 0 && 16L * parameters * count <= memory / 4) {
                return count;
            }
        }
        return 1;
    }

    /** The machine's memory in bytes, or the heap's limit where the JVM does not say. */
    static long physicalMemory() {
        if (java.lang.management.ManagementFactory.getOperatingSystemMXBean()
                instanceof com.sun.management.OperatingSystemMXBean os && os.getTotalMemorySize() > 0) {
            return os.getTotalMemorySize();
        }
        return Runtime.getRuntime().maxMemory();
    }

    /**
     * Runs {@code rank} on {@code count} ranks, rank 0 on the caller's thread and the others on threads named
     * {@code microdit-replica-N}, and returns rank 0's outcome once every rank is done. A rank that fails aborts the
     * world, so the others' collectives fail after it, naming it; the run's error is then that rank's own.
     */
    static TrainingRun.Outcome run(int count, Rank rank) throws IOException {
        TrainingRun.Outcome[] outcomes = new TrainingRun.Outcome[count];
        Throwable[] errors = new Throwable[count];
        try (InProcessWorld world = new InProcessWorld(count)) {
            List<Thread> others = new ArrayList<>();
            for (int r = 1; r < count; r++) {
                int index = r;
                Thread thread = new Thread(() -> {
                    try {
                        outcomes[index] = rank.run(world.rank(index));
                    } catch (Throwable e) {
                        errors[index] = e;
                        world.rank(index).abort(1);
                    }
                }, "microdit-replica-" + r);
                thread.start();
                others.add(thread);
            }
            try {
                outcomes[0] = rank.run(world.rank(0));
            } catch (IOException | RuntimeException | Error e) {
                errors[0] = e;
            }
            for (Thread thread : others) {
                try {
                    thread.join();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IOException("interrupted while waiting for the replicas to finish", e);
                }
            }
            Throwable error = world.failed() ? errors[world.failedRank()] : null;
            for (int r = 0; error == null && r < count; r++) {
                error = errors[r];
            }
            switch (error) {
                case null -> {
                    return outcomes[0];
                }
                case IOException e -> throw e;
                case RuntimeException e -> throw e;
                case Error e -> throw e;
                default -> throw new IOException(error);
            }
        }
    }
}
