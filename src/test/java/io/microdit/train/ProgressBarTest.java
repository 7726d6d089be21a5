package io.microdit.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

class ProgressBarTest {
    private static final long SECOND = 1_000_000_000L;

    private final ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    private final PrintStream out = new PrintStream(bytes, true, StandardCharsets.UTF_8);
    private final AtomicLong clock = new AtomicLong(5 * SECOND);

    @Test
    void durationsUseTwoUnits() {
        assertEquals("0s", ProgressBar.formatDuration(0));
        assertEquals("42s", ProgressBar.formatDuration(42.4));
        assertEquals("1m00s", ProgressBar.formatDuration(59.6));
        assertEquals("3m05s", ProgressBar.formatDuration(185));
        assertEquals("1h00m", ProgressBar.formatDuration(3599.6));
        assertEquals("1h02m", ProgressBar.formatDuration(3720));
        assertEquals("23h59m", ProgressBar.formatDuration(86_399));
        assertEquals("1d02h", ProgressBar.formatDuration(93_784));
        assertEquals("--", ProgressBar.formatDuration(Double.POSITIVE_INFINITY));
        assertEquals("--", ProgressBar.formatDuration(Double.NaN));
    }

    /** One step a second, a line at most every 10 s: lines at steps 1, 11, 21, 31 and the last, 35. */
    @Test
    void plainLinesAreRateLimited() {
        var bar = new ProgressBar(out, clock::get, false, 0, 35, 4, Duration.ofSeconds(10));
        for (int step = 1; step <= 35; step++) {
            clock.addAndGet(SECOND);
            bar.update(step, loss(step), "lr 1e-4");
        }
        bar.finish();
        String text = output();
        assertFalse(text.contains("\r"), "no carriage returns in a log");
        List<String> lines = text.lines().toList();
        assertEquals(List.of(1L, 11L, 21L, 31L, 35L), lines.stream().map(line -> number(line, "step (\\d+)/35"))
                .toList(), text);
        assertEquals(format(loss(1)), field(lines.get(0), "loss (\\S+)"));
        assertEquals(format(mean(2, 11)), field(lines.get(1), "loss (\\S+)"), "mean of steps 2..11");
        assertEquals(format(mean(32, 35)), field(lines.get(4), "loss (\\S+)"), "mean of steps 32..35");
        assertEquals("4.0", field(lines.get(1), "(\\S+) img/s"), "one step of 4 images a second");
        assertEquals("24s", field(lines.get(1), "ETA (\\S+)"), "24 steps left at 1 s each");
        assertEquals("11s", field(lines.get(1), "elapsed (\\S+)"));
        assertTrue(lines.get(1).contains("step 11/35 (31.4%)"), lines.get(1));
        assertTrue(lines.get(1).endsWith("  lr 1e-4"), lines.get(1));
        assertEquals("0s", field(lines.get(4), "ETA (\\S+)"));
    }

    /** A terminal gets '\r'-redrawn frames, at most one per 100 ms, and a newline only at the end. */
    @Test
    void terminalRedrawsInPlace() {
        var bar = new ProgressBar(out, clock::get, true, 0, 40, 8, Duration.ofSeconds(10));
        for (int step = 1; step <= 40; step++) {
            clock.addAndGet(SECOND / 20);
            bar.update(step, loss(step), step < 20 ? "a long extra field" : "short");
        }
        String beforeFinish = output();
        assertFalse(beforeFinish.contains("\n"), "no newline while running");
        bar.finish();
        String text = output();
        assertTrue(text.endsWith("\n"), "finish ends the line");
        String[] frames = text.substring(1, text.length() - 1).split("\r");
        // Step 1 draws at once, then every second update (they are 50 ms apart): 3, 5, ..., 39; then the last, 40.
        assertEquals(1 + 19 + 1, frames.length, Arrays.toString(frames));
        assertTrue(frames[0].startsWith("  2% [>                       ] step 1/40  loss "), frames[0]);
        assertTrue(frames[10].startsWith(" 52% [============>           ] step 21/40  loss "), frames[10]);
        assertTrue(frames[20].startsWith("100% [========================] step 40/40  loss "), frames[20]);
        assertEquals(format(loss(40)), field(frames[20], "loss (\\S+)"), "only step 40 since the previous frame");
        assertEquals("160", field(frames[20], "(\\S+) img/s"), "20 steps/s × 8 images");
        assertTrue(frames[9].endsWith("a long extra field"), frames[9]);
        assertTrue(frames[10].stripTrailing().endsWith("  short"), frames[10]);
        assertEquals(frames[9].length(), frames[10].length(), "the shorter line is padded over the longer one");
    }

    @Test
    void messagesDoNotOverwriteTheBar() {
        var bar = new ProgressBar(out, clock::get, true, 0, 10, 1, Duration.ofSeconds(10));
        clock.addAndGet(SECOND);
        bar.update(1, 0.5);
        String frame = output().substring(1);
        bar.log("wrote samples.png");
        assertEquals("\r" + frame + "\r" + " ".repeat(frame.length()) + "\rwrote samples.png\n" + frame, output());

        bytes.reset();
        var plain = new ProgressBar(out, clock::get, false, 0, 10, 1, Duration.ofSeconds(10));
        plain.log("checkpoint saved");
        assertEquals("checkpoint saved\n", output());
    }

    /** Throughput over the last 20 s: a slow phase after a fast one shows the slow rate, and the ETA follows. */
    @Test
    void rateAndEtaFollowTheRecentWindow() {
        var bar = new ProgressBar(out, clock::get, false, 1000, 100_000, 2, Duration.ofSeconds(30));
        long step = 1000;
        for (int i = 0; i < 300; i++) {
            clock.addAndGet(SECOND / 10);
            bar.update(++step, 1.0);
        }
        for (int i = 0; i < 30; i++) {
            clock.addAndGet(SECOND);
            bar.update(++step, 1.0);
        }
        bar.finish();
        List<String> lines = output().lines().toList();
        String last = lines.getLast();
        assertEquals(1330, number(last, "step (\\d+)/"), "a resumed run counts from its checkpoint");
        assertEquals("2.0", field(last, "(\\S+) img/s"), "1 step/s × 2 images, the fast phase forgotten");
        assertEquals(ProgressBar.formatDuration(100_000 - 1330), field(last, "ETA (\\S+)"));
        assertEquals("1m00s", field(last, "elapsed (\\S+)"));
    }

    @Test
    void nonFiniteLossIsShownNotHidden() {
        var bar = new ProgressBar(out, clock::get, false, 0, 10, 1, Duration.ofSeconds(10));
        clock.addAndGet(SECOND);
        bar.update(1, Double.NaN);
        assertEquals("NaN", field(output(), "loss (\\S+)"));
    }

    @Test
    void badArgumentsAreRejected() {
        var bad = assertThrows(IllegalArgumentException.class,
                () -> new ProgressBar(out, clock::get, false, 11, 10, 1, Duration.ofSeconds(1)));
        assertTrue(bad.getMessage().contains("start 11, total 10"), bad.getMessage());
        assertThrows(IllegalArgumentException.class,
                () -> new ProgressBar(out, clock::get, false, 0, 10, 0, Duration.ofSeconds(1)));
    }

    private static double loss(int step) {
        return 1.0 / (step + 2) + 0.01 * (step % 3);
    }

    private static double mean(int fromStep, int toStep) {
        double sum = 0;
        for (int step = fromStep; step <= toStep; step++) {
            sum += loss(step);
        }
        return sum / (toStep - fromStep + 1);
    }

    private static String format(double loss) {
        return String.format(Locale.ROOT, "%.4g", loss);
    }

    private String output() {
        return bytes.toString(StandardCharsets.UTF_8);
    }

    private static String field(String line, String regex) {
        Matcher matcher = Pattern.compile(regex).matcher(line);
        assertTrue(matcher.find(), "'" + regex + "' in: " + line);
        return matcher.group(1);
    }

    private static long number(String line, String regex) {
        return Long.parseLong(field(line, regex));
    }
}
