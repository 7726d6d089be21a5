package io.microdit.train;

import java.io.Console;
import java.io.PrintStream;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Locale;
import java.util.function.LongSupplier;

/**
 * Training progress on the console: step/total, loss, images per second, elapsed time, ETA and free-form extra
 * fields (learning rate, MFU...).
 *
 * <p>On an interactive terminal one line is redrawn in place with '\r', at most ten times a second so a fast loop
 * does not spend its time printing. Anywhere else (CI, a redirected log) a full line is printed at most once per
 * interval, plus the first and the last step, so logs stay short and readable.
 *
 * <p>The loss shown is the mean over the steps since the previous line, so one noisy step does not make the log jump
 * (and a NaN in between still shows). Throughput is measured over the last {@value #RATE_WINDOW_SECONDS} seconds, so
 * start-up and JIT warm-up fade out of the rate and the ETA. The clock is injected so tests are deterministic.
 */
public final class ProgressBar {
    private static final long REDRAW_NANOS = 100_000_000L;
    private static final int RATE_WINDOW_SECONDS = 20;
    private static final long RATE_WINDOW_NANOS = RATE_WINDOW_SECONDS * 1_000_000_000L;
    private static final int BAR_WIDTH = 24;

    private final PrintStream out;
    private final LongSupplier nanoTime;
    private final boolean terminal;
    private final long totalSteps;
    private final int imagesPerStep;
    private final long intervalNanos;
    private final long startNanos;
    /** (time, step) pairs covering the rate window; the oldest is at or just before the window's start. */
    private final ArrayDeque<long[]> recent = new ArrayDeque<>();

    private long lastStep;
    private String lastExtra = "";
    private double lossSum;
    private int lossCount;
    private boolean emittedAny;
    private long lastEmitNanos;
    /** The bar as last drawn on the terminal, empty when none is on screen. */
    private String drawnLine = "";
    private boolean finished;

    /**
     * @param out           where to print
     * @param nanoTime      a monotonic clock in nanoseconds ({@code System::nanoTime} outside tests)
     * @param terminal      redraw one line in place (interactive terminal) rather than print lines
     * @param startStep     the step training starts from (0, or the step of the checkpoint it resumes)
     * @param totalSteps    the step training stops at
     * @param imagesPerStep the global batch size, for images per second
     * @param plainInterval the least time between two printed lines when not on a terminal
     */
    public ProgressBar(PrintStream out, LongSupplier nanoTime, boolean terminal, long startStep, long totalSteps,
                       int imagesPerStep, Duration plainInterval) {
        if (totalSteps < 1 || startStep < 0 || startStep > totalSteps || imagesPerStep < 1
                || plainInterval.isNegative()) {
            throw new IllegalArgumentException("progress bar: need 0 ≤ start step ≤ total steps, total ≥ 1, images "
                    + "per step ≥ 1 and an interval ≥ 0; got start " + startStep + ", total " + totalSteps
                    + ", images " + imagesPerStep + ", interval " + plainInterval);
        }
        this.out = out;
        this.nanoTime = nanoTime;
        this.terminal = terminal;
        this.totalSteps = totalSteps;
        this.imagesPerStep = imagesPerStep;
        this.intervalNanos = plainInterval.toNanos();
        this.startNanos = nanoTime.getAsLong();
        this.lastStep = startStep;
        recent.add(new long[] {startNanos, startStep});
    }

    /** On standard output with the system clock, redrawing in place if standard output is a terminal. */
    public static ProgressBar onConsole(long startStep, long totalSteps, int imagesPerStep, Duration plainInterval) {
        return new ProgressBar(System.out, System::nanoTime, consoleIsTerminal(), startStep, totalSteps,
                imagesPerStep, plainInterval);
    }

    /** Since Java 22 a console exists even when output is redirected; only {@code isTerminal} tells them apart. */
    public static boolean consoleIsTerminal() {
        Console console = System.console();
        return console != null && console.isTerminal();
    }

    /** Records that {@code step} steps are done, the last with loss {@code loss}. */
    public void update(long step, double loss) {
        update(step, loss, "");
    }

    /** As {@link #update(long, double)}, with {@code extra} (say "lr 2.4e-4") appended to the line. */
    public void update(long step, double loss, String extra) {
        long now = nanoTime.getAsLong();
        lastStep = step;
        lastExtra = extra;
        lossSum += loss;
        lossCount++;
        recent.addLast(new long[] {now, step});
        while (recent.size() > 2 && secondOldestTime() <= now - RATE_WINDOW_NANOS) {
            recent.removeFirst();
        }
        long sinceLast = now - lastEmitNanos;
        boolean due = !emittedAny || step >= totalSteps || sinceLast >= (terminal ? REDRAW_NANOS : intervalNanos);
        if (due) {
            emit(now);
        }
    }

    /**
     * Prints a message on a line of its own; on a terminal it replaces the bar for a moment and the bar is drawn
     * again below it, so messages and the bar do not overwrite each other.
     */
    public void log(String message) {
        if (terminal && !drawnLine.isEmpty()) {
            out.print("\r" + " ".repeat(drawnLine.length()) + "\r");
            out.println(message);
            out.print(drawnLine);
        } else {
            out.println(message);
        }
        out.flush();
    }

    /** Shows the last state if it is not shown yet and, on a terminal, ends the line. Idempotent. */
    public void finish() {
        if (finished) {
            return;
        }
        finished = true;
        if (lossCount > 0) {
            emit(nanoTime.getAsLong());
        }
        if (terminal && !drawnLine.isEmpty()) {
            out.println();
        }
        out.flush();
    }

    private long secondOldestTime() {
        var iterator = recent.iterator();
        iterator.next();
        return iterator.next()[0];
    }

    private void emit(long now) {
        String text = line(now);
        if (terminal) {
            // Spaces cover the tail of a longer previous line; '\r' alone would leave it visible.
            String padding = " ".repeat(Math.max(0, drawnLine.length() - text.length()));
            out.print("\r" + text + padding);
            drawnLine = text;
        } else {
            out.println(text);
        }
        out.flush();
        emittedAny = true;
        lastEmitNanos = now;
        lossSum = 0;
        lossCount = 0;
    }

    private String line(long now) {
        long[] oldest = recent.getFirst();
        double seconds = (now - oldest[0]) / 1e9;
        double stepsPerSecond = seconds > 0 ? (lastStep - oldest[1]) / seconds : Double.NaN;
        double remainingSeconds = (totalSteps - lastStep) / stepsPerSecond;
        double percent = 100.0 * lastStep / totalSteps;
        StringBuilder text = new StringBuilder();
        if (terminal) {
            int filled = (int) Math.min(BAR_WIDTH, BAR_WIDTH * lastStep / totalSteps);
            text.append(String.format(Locale.ROOT, "%3.0f%% [", Math.floor(percent)))
                    .append("=".repeat(filled)).append(filled < BAR_WIDTH ? ">" : "")
                    .append(" ".repeat(Math.max(0, BAR_WIDTH - filled - 1))).append("] ");
        }
        text.append("step ").append(lastStep).append('/').append(totalSteps);
        if (!terminal) {
            text.append(String.format(Locale.ROOT, " (%.1f%%)", percent));
        }
        if (lossCount > 0) {
            text.append(String.format(Locale.ROOT, "  loss %.4g", lossSum / lossCount));
        }
        double imagesPerSecond = stepsPerSecond * imagesPerStep;
        text.append("  ").append(Double.isFinite(imagesPerSecond) && imagesPerSecond > 0
                ? String.format(Locale.ROOT, imagesPerSecond < 100 ? "%.1f" : "%.0f", imagesPerSecond) : "--")
                .append(" img/s");
        text.append("  elapsed ").append(formatDuration((now - startNanos) / 1e9));
        text.append("  ETA ").append(lastStep >= totalSteps ? "0s" : formatDuration(remainingSeconds));
        if (!lastExtra.isEmpty()) {
            text.append("  ").append(lastExtra);
        }
        return text.toString();
    }

    /** "42s", "3m05s", "1h02m", "2d03h": two units, the larger first; "--" when unknown (no rate yet). */
    static String formatDuration(double seconds) {
        if (!Double.isFinite(seconds) || seconds < 0) {
            return "--";
        }
        long total = Math.round(seconds);
        if (total < 60) {
            return total + "s";
        }
        if (total < 3600) {
            return String.format(Locale.ROOT, "%dm%02ds", total / 60, total % 60);
        }
        if (total < 86_400) {
            return String.format(Locale.ROOT, "%dh%02dm", total / 3600, total % 3600 / 60);
        }
        return String.format(Locale.ROOT, "%dd%02dh", total / 86_400, total % 86_400 / 3600);
    }
}
