package io.microdit.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.io.Png;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class LossCurvePlotTest {
    /** A colour nothing but the test series uses. */
    private static final int RED = 0xff0000;

    @TempDir
    Path directory;

    /** y = 1 + 2·step: the line rises steadily from the bottom-left to the top-right of the frame. */
    @Test
    void risingLineIsDrawnInsideTheFrameWhereTheAxesPutIt() throws IOException {
        double[] steps = new double[101], values = new double[101];
        for (int i = 0; i <= 100; i++) {
            steps[i] = i;
            values[i] = 1 + 2 * i;
        }
        List<LossCurvePlot.Series> series = List.of(new LossCurvePlot.Series("line", steps, values, RED, 1));
        LossCurvePlot plot = new LossCurvePlot(800, 500, "rising", "step", "value", false);
        Path file = directory.resolve("loss.png");
        plot.write(file, series);
        Png.Image image = Png.read(file);
        assertEquals(800, image.width());
        assertEquals(500, image.height());
        assertEquals(3, image.channels());

        LossCurvePlot.Layout layout = plot.layout(series);
        int middleX = (layout.left() + layout.right()) / 2, middleY = (layout.top() + layout.bottom()) / 2;
        assertEquals(LossCurvePlot.FRAME, rgb(image, layout.left(), middleY), "left edge of the frame");
        assertEquals(LossCurvePlot.FRAME, rgb(image, layout.right(), middleY), "right edge");
        assertEquals(LossCurvePlot.FRAME, rgb(image, middleX, layout.top()), "top edge");
        assertEquals(LossCurvePlot.FRAME, rgb(image, middleX, layout.bottom()), "bottom edge");
        for (int i = 0; i <= 100; i += 10) {
            assertEquals(RED, rgb(image, layout.xPixel(steps[i]), layout.yPixel(values[i])), "point " + i);
        }

        int plotHeight = layout.bottom() - layout.top();
        double previousRow = Double.POSITIVE_INFINITY;
        int firstRow = -1, lastRow = -1;
        // The lowest red pixel of each column: the legend's red sample sits in the empty top-left corner, above it.
        for (int x = 0; x < image.width(); x++) {
            double row = lowestRow(image, x);
            if (Double.isNaN(row)) {
                continue;
            }
            assertTrue(x >= layout.left() && x <= layout.right(), "line pixel outside the frame at column " + x);
            assertTrue(row <= previousRow, "the line rises from left to right (column " + x + ")");
            previousRow = row;
            firstRow = firstRow < 0 ? (int) row : firstRow;
            lastRow = (int) row;
        }
        assertTrue(firstRow > layout.bottom() - plotHeight * 0.1, "starts near the bottom: row " + firstRow);
        assertTrue(lastRow < layout.top() + plotHeight * 0.1, "ends near the top: row " + lastRow);
    }

    /** 10^(step/50) is straight on a log axis: its middle lies halfway between its ends, unlike on a linear one. */
    @Test
    void logScaleStraightensAnExponential() {
        double[] steps = new double[101], values = new double[101];
        for (int i = 0; i <= 100; i++) {
            steps[i] = i;
            values[i] = Math.pow(10, i / 50.0);
        }
        List<LossCurvePlot.Series> series = List.of(new LossCurvePlot.Series("growth", steps, values, RED, 1));
        for (boolean logScale : new boolean[] {true, false}) {
            LossCurvePlot plot = new LossCurvePlot(800, 500, "growth", "step", "value", logScale);
            LossCurvePlot.Layout layout = plot.layout(series);
            Png.Image image = plot.render(series);
            double start = meanRow(image, layout.xPixel(1), layout.top(), layout.bottom());
            double middle = meanRow(image, layout.xPixel(50), layout.top(), layout.bottom());
            double end = meanRow(image, layout.xPixel(99), layout.top(), layout.bottom());
            double halfway = (start + end) / 2;
            if (logScale) {
                assertEquals(halfway, middle, 3, "straight on the log axis");
            } else {
                assertTrue(middle > halfway + (start - end) * 0.3, "sags on the linear axis: " + middle);
            }
        }
    }

    /** Values ≤ 0 cannot be placed on a log axis: they are skipped, the line breaks there, the legend says so. */
    @Test
    void logScaleSkipsValuesAtOrBelowZero() {
        double[] steps = {0, 1, 2, 3, 4, 5};
        double[] values = {1, 0, -1, 10, 100, 1000};
        LossCurvePlot.Series series = new LossCurvePlot.Series("loss", steps, values, RED, 1);
        LossCurvePlot plot = new LossCurvePlot(800, 500, "skips", "step", "loss", true);
        LossCurvePlot.Layout layout = plot.layout(List.of(series));
        Png.Image image = plot.render(List.of(series));

        int low = layout.yPixel(10), high = layout.yPixel(1);
        for (int x = layout.xPixel(0) + 3; x < layout.xPixel(3) - 3; x++) {
            assertTrue(Double.isNaN(meanRow(image, x, low, high)), "no line across the skipped points, column " + x);
        }
        for (int x = layout.xPixel(3); x <= layout.xPixel(5); x++) {
            assertFalse(Double.isNaN(meanRow(image, x, layout.top(), layout.bottom())), "line at column " + x);
        }
        assertEquals(RED, rgb(image, layout.xPixel(0), layout.yPixel(1)), "the isolated first point is a dot");
        assertEquals("loss (2 hidden: NaN, inf or <= 0)", plot.legendLabel(series));
        assertEquals(-0.15, layout.yMin(), 1e-12, "the axis spans 10^0 to 10^3 plus 5% margins");
        assertEquals(3.15, layout.yMax(), 1e-12);

        LossCurvePlot linear = new LossCurvePlot(800, 500, "nan", "step", "loss", false);
        var withNaN = new LossCurvePlot.Series("loss", steps, new double[] {1, Double.NaN, -1, 2, 3, 4}, RED, 1);
        assertEquals("loss (1 hidden: NaN or inf)", linear.legendLabel(withNaN));
        assertEquals("loss", linear.legendLabel(series), "values ≤ 0 are fine on a linear axis");
    }

    @Test
    void emptyPlotsRenderAxesAndTitle() {
        LossCurvePlot plot = new LossCurvePlot(400, 250, "no data yet", "step", "loss", true);
        Png.Image image = plot.render(List.of(new LossCurvePlot.Series("loss", new double[0], new double[0], RED, 1)));
        LossCurvePlot.Layout layout = plot.layout(List.of());
        int titlePixels = 0;
        for (int y = 0; y < layout.top(); y++) {
            for (int x = 0; x < image.width(); x++) {
                titlePixels += rgb(image, x, y) == LossCurvePlot.TEXT ? 1 : 0;
            }
        }
        assertTrue(titlePixels > 50, "the title is drawn above the plot: " + titlePixels + " pixels");
        assertEquals(LossCurvePlot.FRAME, rgb(image, layout.left(), layout.bottom()));
    }

    /** Debiased EMA against its definition m_n = (1−s)·Σ s^(n−k)·v_k / (1 − s^n). */
    @Test
    void exponentialMovingAverageIsDebiased() {
        double s = 0.9;
        double[] values = {0.7, 0.3, Double.NaN, 0.5, 0.9};
        double[] smoothed = LossCurvePlot.exponentialMovingAverage(values, s);
        double[] finite = {0.7, 0.3, 0.5, 0.9};
        double[] expected = new double[finite.length];
        for (int n = 1; n <= finite.length; n++) {
            double sum = 0;
            for (int k = 1; k <= n; k++) {
                sum += Math.pow(s, n - k) * finite[k - 1];
            }
            expected[n - 1] = (1 - s) * sum / (1 - Math.pow(s, n));
        }
        assertEquals(0.7, smoothed[0], 1e-15, "starts at the first value");
        assertEquals(expected[1], smoothed[1], 1e-15);
        assertTrue(Double.isNaN(smoothed[2]), "a NaN value stays a gap");
        assertEquals(expected[2], smoothed[3], 1e-15, "and does not poison what follows");
        assertEquals(expected[3], smoothed[4], 1e-15);
        assertEquals(0.3, LossCurvePlot.exponentialMovingAverage(values, 0)[1], 0, "no smoothing");
        var bad = assertThrows(IllegalArgumentException.class,
                () -> LossCurvePlot.exponentialMovingAverage(values, 1));
        assertTrue(bad.getMessage().contains("smoothing must be in [0, 1)"), bad.getMessage());

        List<LossCurvePlot.Series> pair = LossCurvePlot.rawAndSmoothed("loss", new double[] {1, 2, 3, 4, 5}, values, s);
        assertEquals("loss", pair.get(0).name());
        assertEquals("loss EMA 0.9", pair.get(1).name());
        assertEquals(expected[3], pair.get(1).values()[4], 1e-15);
    }

    @Test
    void ticksAreNiceNumbersWithShortLabels() {
        assertEquals("0.3", LossCurvePlot.Ticks.format(0.1 * 3));
        assertEquals("250000", LossCurvePlot.Ticks.format(250_000));
        assertEquals("0.001", LossCurvePlot.Ticks.format(1e-3));
        assertEquals("2.5e-4", LossCurvePlot.Ticks.format(2.5e-4));
        assertEquals("1e6", LossCurvePlot.Ticks.format(1e6));
        assertEquals("-0.5", LossCurvePlot.Ticks.format(-0.5));
        assertEquals("0", LossCurvePlot.Ticks.format(0));

        assertEquals(0.5, LossCurvePlot.Ticks.niceStep(0.23));
        assertEquals(0.2, LossCurvePlot.Ticks.niceStep(0.11), 1e-17);
        assertEquals(1, LossCurvePlot.Ticks.niceStep(1));
        assertEquals(10, LossCurvePlot.Ticks.niceStep(7));
        assertEquals(List.of(-0.5, 0.0, 0.5, 1.0), LossCurvePlot.Ticks.linear(-0.6, 1.2, 4, 0));
        assertEquals(List.of(0.0, 1.0, 2.0, 3.0), LossCurvePlot.Ticks.linear(0, 3, 10, 1), "whole steps");

        assertEquals(List.of(1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0, 1000.0),
                LossCurvePlot.Ticks.logarithmic(-4.2, 3.3, 8), "one per decade");
        assertEquals(List.of(1e-4, 1e-2, 1.0, 100.0), LossCurvePlot.Ticks.logarithmic(-4.2, 3.3, 4), "thinned");
        assertEquals(List.of(0.1, 0.2, 0.5, 1.0, 2.0), LossCurvePlot.Ticks.logarithmic(-1, 0.5, 8), "1-2-5");
        assertEquals(List.of(0.3, 0.4, 0.5, 0.6), LossCurvePlot.Ticks.logarithmic(Math.log10(0.25),
                Math.log10(0.65), 8), "1..9 within a decade");
    }

    @Test
    void badArgumentsAreRejected() {
        var small = assertThrows(IllegalArgumentException.class,
                () -> new LossCurvePlot(100, 80, "t", "x", "y", false));
        assertTrue(small.getMessage().contains("at least 320×200"), small.getMessage());
        var mismatch = assertThrows(IllegalArgumentException.class,
                () -> new LossCurvePlot.Series("loss", new double[3], new double[2], RED, 1));
        assertTrue(mismatch.getMessage().contains("3 steps but 2 values"), mismatch.getMessage());
    }

    private static int rgb(Png.Image image, int x, int y) {
        return image.sample(x, y, 0) << 16 | image.sample(x, y, 1) << 8 | image.sample(x, y, 2);
    }

    private static double lowestRow(Png.Image image, int x) {
        for (int y = image.height() - 1; y >= 0; y--) {
            if (rgb(image, x, y) == RED) {
                return y;
            }
        }
        return Double.NaN;
    }

    /** The mean row of the test colour's pixels in column {@code x} between two rows, NaN if there are none. */
    private static double meanRow(Png.Image image, int x, int fromRow, int toRow) {
        double sum = 0;
        int count = 0;
        for (int y = fromRow; y <= toRow; y++) {
            if (rgb(image, x, y) == RED) {
                sum += y;
                count++;
            }
        }
        return count == 0 ? Double.NaN : sum / count;
    }
}
