package io.microdit.train;

import io.microdit.cli.Main;
import java.io.InterruptedIOException;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * {@code microdit} in a child JVM, pausing before its N-th checkpoint file write (counted over the process's life;
 * 0 = never) after printing {@code PAUSED <file>}, so a test can kill or signal it mid-checkpoint. Arguments: N, the
 * pause in milliseconds, then the command line.
 */
public final class FaultInjectingMain {
    private FaultInjectingMain() {
    }

    public static void main(String[] args) {
        int pauseAt = Integer.parseInt(args[0]);
        long pauseMillis = Long.parseLong(args[1]);
        AtomicInteger writes = new AtomicInteger();
        Checkpoint.writeHook = file -> {
            if (writes.incrementAndGet() == pauseAt) {
                System.out.println("PAUSED " + file);
                System.out.flush();
                try {
                    Thread.sleep(pauseMillis);
                } catch (InterruptedException e) {
                    throw new InterruptedIOException("interrupted mid-checkpoint");
                }
            }
        };
        System.exit(Main.run(Arrays.copyOfRange(args, 2, args.length)));
    }
}
