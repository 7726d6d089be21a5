package io.microdit.train;

import io.microdit.io.Png;
import java.io.IOException;
import java.math.BigDecimal;
import java.math.MathContext;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Draws (step, value) series as a line chart into an RGB PNG, headless: title, framed plot area with light grid
 * lines, ticks with numeric labels on both axes, axis labels, and a legend. The y axis can be logarithmic, which
 * suits a diffusion loss that falls quickly and then creeps.
 *
 * <p>Points that cannot be drawn are skipped rather than fatal, because a plot is written while training runs and
 * must not stop it: non-finite values (a diverged step) and, on a log axis, values ≤ 0. A skipped point breaks the
 * line there, and the legend says how many points of a series are not shown.
 *
 * <p>Text uses the 5×7 {@link BitmapFont}, enlarged to stay legible at the chart's size (×2 at 800×500).
 */
public final class LossCurvePlot {
    static final int BACKGROUND = 0xffffff;
    static final int GRID = 0xe6e6e6;
    static final int FRAME = 0x303030;
    static final int TEXT = 0x202020;
    static final int RAW_COLOUR = 0xa9c8ec;
    static final int SMOOTHED_COLOUR = 0x1f5bb4;
    private static final int TICK_LENGTH = 5;
    private static final int PADDING = 10;

    private final int width;
    private final int height;
    private final String title;
    private final String xLabel;
    private final String yLabel;
    private final boolean logScale;
    private final int textScale;

    /**
     * One line of the chart. Steps need not be integers; both arrays have one entry per point.
     *
     * @param colour packed 0xRRGGBB
     * @param pen    line width in pixels, ≥ 1
     */
    public record Series(String name, double[] steps, double[] values, int colour, int pen) {
        /** Checks that steps and values pair up and the pen is at least a pixel. */
        public Series {
            if (steps.length != values.length) {
                throw new IllegalArgumentException("loss plot series '" + name + "': " + steps.length + " steps but "
                        + values.length + " values");
            }
            if (pen < 1) {
                throw new IllegalArgumentException("loss plot series '" + name + "': pen must be ≥ 1, got " + pen);
            }
        }
    }

    /**
     * A chart of {@code width}×{@code height} pixels (at least 320×200, room for the labels) with its title and axis
     * labels; {@code logScale} puts the y axis on a log scale (losses span decades).
     */
    public LossCurvePlot(int width, int height, String title, String xLabel, String yLabel, boolean logScale) {
        if (width < 320 || height < 200) {
            throw new IllegalArgumentException("loss plot: size must be at least 320×200 to fit its labels, got "
                    + width + "×" + height);
        }
        this.width = width;
        this.height = height;
        this.title = title;
        this.xLabel = xLabel;
        this.yLabel = yLabel;
        this.logScale = logScale;
        this.textScale = Math.max(1, Math.min(width / 400, height / 250));
    }

    /**
     * The usual training view: the raw per-step values, pale and thin, with their exponential moving average drawn
     * over them, dark and thicker.
     *
     * @param smoothing the EMA's weight on the past, in [0, 1); 0.98 averages over roughly the last 50 points
     */
    public static List<Series> rawAndSmoothed(String name, double[] steps, double[] values, double smoothing) {
        return List.of(new Series(name, steps, values, RAW_COLOUR, 1),
                new Series(name + " EMA " + BigDecimal.valueOf(smoothing).stripTrailingZeros().toPlainString(), steps,
                        exponentialMovingAverage(values, smoothing), SMOOTHED_COLOUR, 2));
    }

    /**
     * The debiased exponential moving average (as TensorBoard smooths): {@code m ← s·m + (1−s)·v}, divided by
     * {@code 1 − s^n} after n values, so the curve starts at the first value instead of rising from zero.
     * Non-finite values do not enter the average; their positions get non-finite results so they are skipped too.
     */
    public static double[] exponentialMovingAverage(double[] values, double smoothing) {
        if (!(smoothing >= 0 && smoothing < 1)) {
            throw new IllegalArgumentException("loss plot: smoothing must be in [0, 1), got " + smoothing);
        }
        double[] smoothed = new double[values.length];
        double average = 0, weight = 1;
        for (int i = 0; i < values.length; i++) {
            if (!Double.isFinite(values[i])) {
                smoothed[i] = Double.NaN;
                continue;
            }
            average = smoothing * average + (1 - smoothing) * values[i];
            weight *= smoothing;
            smoothed[i] = average / (1 - weight);
        }
        return smoothed;
    }

    /** Renders {@code series} and replaces {@code file} with the chart atomically. */
    public void write(Path file, List<Series> series) throws IOException {
        Png.write(file, render(series));
    }

    /** The chart of {@code series} as an RGB image (axes fitted to all series' finite values). */
    public Png.Image render(List<Series> series) {
        Layout layout = layout(series);
        RgbCanvas canvas = new RgbCanvas(width, height, BACKGROUND);
        drawGrid(canvas, layout);
        for (Series line : series) {
            drawSeries(canvas, layout, line);
        }
        drawFrameAndTicks(canvas, layout);
        drawLabels(canvas, layout);
        drawLegend(canvas, layout, series);
        return canvas.toImage();
    }

    /**
     * Where the plot area lies and how data maps onto it. Ranges are in axis units: steps for x, values or their
     * base-10 logarithms for y.
     */
    record Layout(int left, int top, int right, int bottom, double xMin, double xMax, double yMin, double yMax,
                  List<Double> xTicks, List<Double> yTicks, boolean logScale) {
        int xPixel(double step) {
            return (int) Math.round(left + (step - xMin) / (xMax - xMin) * (right - left));
        }

        int yPixel(double value) {
            double axis = logScale ? Math.log10(value) : value;
            return (int) Math.round(bottom - (axis - yMin) / (yMax - yMin) * (bottom - top));
        }
    }

    Layout layout(List<Series> series) {
        double xLow = Double.POSITIVE_INFINITY, xHigh = Double.NEGATIVE_INFINITY;
        double yLow = Double.POSITIVE_INFINITY, yHigh = Double.NEGATIVE_INFINITY;
        for (Series line : series) {
            for (int i = 0; i < line.steps().length; i++) {
                if (isDrawable(line.steps()[i], line.values()[i])) {
                    double axis = logScale ? Math.log10(line.values()[i]) : line.values()[i];
                    xLow = Math.min(xLow, line.steps()[i]);
                    xHigh = Math.max(xHigh, line.steps()[i]);
                    yLow = Math.min(yLow, axis);
                    yHigh = Math.max(yHigh, axis);
                }
            }
        }
        if (xLow > xHigh) {
            // Nothing drawable yet (the first plot of a run): show empty axes over a unit range.
            xLow = 0;
            xHigh = 1;
            yLow = 0;
            yHigh = 1;
        }
        if (xLow > 0 && xLow < 0.1 * (xHigh - xLow)) {
            // A run logged from step 1 or 50 reads better from 0; a resumed run keeps its own start.
            xLow = 0;
        }
        if (xLow == xHigh) {
            xLow -= 1;
            xHigh += 1;
        }
        // Margins so the line never runs along the frame, which would hide the first and last points.
        double xMargin = 0.01 * (xHigh - xLow);
        xLow -= xMargin;
        xHigh += xMargin;
        double yMargin = yHigh > yLow ? 0.05 * (yHigh - yLow) : Math.max(0.05 * Math.abs(yLow), 0.1);
        yLow -= yMargin;
        yHigh += yMargin;

        int lineHeight = BitmapFont.LINE_HEIGHT * textScale;
        int top = PADDING + lineHeight + PADDING;
        int bottom = height - (TICK_LENGTH + PADDING / 2 + lineHeight + PADDING / 2 + lineHeight + PADDING / 2);
        int yTickCount = Math.max(2, (bottom - top) / (3 * lineHeight));
        List<Double> yTicks = logScale ? Ticks.logarithmic(yLow, yHigh, yTickCount)
                : Ticks.linear(yLow, yHigh, yTickCount, 0);
        int widestYLabel = 0;
        for (double tick : yTicks) {
            widestYLabel = Math.max(widestYLabel, BitmapFont.width(Ticks.format(tick)) * textScale);
        }
        int left = PADDING + lineHeight + PADDING + widestYLabel + PADDING / 2 + TICK_LENGTH;
        int right = width - PADDING - BitmapFont.width(Ticks.format(xHigh)) * textScale / 2;
        List<Double> xTicks = fittingXTicks(xLow, xHigh, right - left);
        return new Layout(left, top, right, bottom, xLow, xHigh, yLow, yHigh, xTicks, yTicks, logScale);
    }

    /** As many x ticks as fit with their labels at least two glyphs apart; steps are whole, so ticks are too. */
    private List<Double> fittingXTicks(double low, double high, int plotWidth) {
        int gap = 2 * BitmapFont.ADVANCE * textScale;
        for (int count = 10; count > 2; count--) {
            List<Double> ticks = Ticks.linear(low, high, count, 1);
            int widest = 0;
            for (double tick : ticks) {
                widest = Math.max(widest, BitmapFont.width(Ticks.format(tick)) * textScale);
            }
            double spacing = ticks.size() < 2 ? plotWidth : (ticks.get(1) - ticks.get(0)) / (high - low) * plotWidth;
            if (spacing >= widest + gap) {
                return ticks;
            }
        }
        return Ticks.linear(low, high, 2, 1);
    }

    private boolean isDrawable(double step, double value) {
        return Double.isFinite(step) && Double.isFinite(value) && (!logScale || value > 0);
    }

    private void drawGrid(RgbCanvas canvas, Layout layout) {
        for (double tick : layout.xTicks()) {
            int x = layout.xPixel(tick);
            canvas.line(x, layout.top(), x, layout.bottom(), GRID, 1);
        }
        for (double tick : layout.yTicks()) {
            int y = layout.yPixel(tick);
            canvas.line(layout.left(), y, layout.right(), y, GRID, 1);
        }
    }

    /** Connects consecutive drawable points; an isolated drawable point is drawn as a dot. */
    private void drawSeries(RgbCanvas canvas, Layout layout, Series series) {
        boolean previousDrawable = false;
        int previousX = 0, previousY = 0;
        for (int i = 0; i < series.steps().length; i++) {
            if (!isDrawable(series.steps()[i], series.values()[i])) {
                previousDrawable = false;
                continue;
            }
            int x = layout.xPixel(series.steps()[i]), y = layout.yPixel(series.values()[i]);
            if (previousDrawable) {
                canvas.line(previousX, previousY, x, y, series.colour(), series.pen());
            } else {
                canvas.line(x, y, x, y, series.colour(), series.pen() + 1);
            }
            previousDrawable = true;
            previousX = x;
            previousY = y;
        }
    }

    private void drawFrameAndTicks(RgbCanvas canvas, Layout layout) {
        int left = layout.left(), top = layout.top(), right = layout.right(), bottom = layout.bottom();
        canvas.rectangleOutline(left, top, right, bottom, FRAME);
        int textHeight = BitmapFont.GLYPH_HEIGHT * textScale;
        for (double tick : layout.xTicks()) {
            int x = layout.xPixel(tick);
            canvas.line(x, bottom, x, bottom + TICK_LENGTH, FRAME, 1);
            String label = Ticks.format(tick);
            canvas.text(x - BitmapFont.width(label) * textScale / 2, bottom + TICK_LENGTH + PADDING / 2, label,
                    textScale, TEXT);
        }
        for (double tick : layout.yTicks()) {
            int y = layout.yPixel(tick);
            canvas.line(left - TICK_LENGTH, y, left, y, FRAME, 1);
            String label = Ticks.format(tick);
            canvas.text(left - TICK_LENGTH - PADDING / 2 - BitmapFont.width(label) * textScale, y - textHeight / 2,
                    label, textScale, TEXT);
        }
    }

    private void drawLabels(RgbCanvas canvas, Layout layout) {
        int lineHeight = BitmapFont.LINE_HEIGHT * textScale;
        canvas.text((width - BitmapFont.width(title) * textScale) / 2, PADDING, title, textScale, TEXT);
        int plotCentreX = (layout.left() + layout.right()) / 2;
        canvas.text(plotCentreX - BitmapFont.width(xLabel) * textScale / 2, height - PADDING / 2 - lineHeight, xLabel,
                textScale, TEXT);
        String fullYLabel = logScale ? yLabel + " (log)" : yLabel;
        int plotCentreY = (layout.top() + layout.bottom()) / 2;
        canvas.verticalText(PADDING, plotCentreY + BitmapFont.width(fullYLabel) * textScale / 2, fullYLabel, textScale,
                TEXT);
    }

    /**
     * A boxed key in the corner of the plot area that hides the fewest drawn series pixels, preferring the top
     * right, where a falling loss curve usually leaves room.
     */
    private void drawLegend(RgbCanvas canvas, Layout layout, List<Series> series) {
        if (series.isEmpty()) {
            return;
        }
        int textHeight = BitmapFont.GLYPH_HEIGHT * textScale;
        int sampleLength = 8 * textScale;
        int rowHeight = BitmapFont.LINE_HEIGHT * textScale + PADDING / 2;
        List<String> labels = new ArrayList<>();
        int widest = 0;
        for (Series line : series) {
            String label = legendLabel(line);
            labels.add(label);
            widest = Math.max(widest, BitmapFont.width(label) * textScale);
        }
        int boxWidth = PADDING + sampleLength + PADDING + widest + PADDING;
        int boxHeight = PADDING + series.size() * rowHeight;
        int[][] corners = {
            {layout.right() - PADDING - boxWidth, layout.top() + PADDING},
            {layout.left() + PADDING, layout.top() + PADDING},
            {layout.right() - PADDING - boxWidth, layout.bottom() - PADDING - boxHeight},
            {layout.left() + PADDING, layout.bottom() - PADDING - boxHeight}};
        int[] best = corners[0];
        long fewestCovered = Long.MAX_VALUE;
        for (int[] corner : corners) {
            long covered = canvas.countOtherThan(corner[0], corner[1], boxWidth, boxHeight, BACKGROUND, GRID);
            if (covered < fewestCovered) {
                fewestCovered = covered;
                best = corner;
            }
        }
        int boxLeft = best[0], boxTop = best[1];
        canvas.fillRectangle(boxLeft, boxTop, boxWidth, boxHeight, BACKGROUND);
        canvas.rectangleOutline(boxLeft, boxTop, boxLeft + boxWidth, boxTop + boxHeight, GRID);
        for (int i = 0; i < series.size(); i++) {
            int rowTop = boxTop + PADDING + i * rowHeight;
            int sampleY = rowTop + textHeight / 2;
            canvas.line(boxLeft + PADDING, sampleY, boxLeft + PADDING + sampleLength, sampleY, series.get(i).colour(),
                    series.get(i).pen() + 1);
            canvas.text(boxLeft + PADDING + sampleLength + PADDING, rowTop, labels.get(i), textScale, TEXT);
        }
    }

    /** The series name, and how many of its points are not drawn if any (non-finite, or ≤ 0 on a log axis). */
    String legendLabel(Series series) {
        int hidden = 0;
        for (int i = 0; i < series.steps().length; i++) {
            if (!isDrawable(series.steps()[i], series.values()[i])) {
                hidden++;
            }
        }
        if (hidden == 0) {
            return series.name();
        }
        return series.name() + " (" + hidden + " hidden: " + (logScale ? "NaN, inf or <= 0)" : "NaN or inf)");
    }

    /** Tick positions and labels: "nice" numbers 1, 2 or 5 × 10^k, in data units. */
    static final class Ticks {
        private Ticks() {
        }

        /**
         * Multiples of a nice step between {@code low} and {@code high}, at most about {@code count} + 1 of them,
         * the step at least {@code minimumStep}.
         */
        static List<Double> linear(double low, double high, int count, double minimumStep) {
            double step = Math.max(minimumStep, niceStep((high - low) / count));
            List<Double> ticks = new ArrayList<>();
            for (long k = (long) Math.ceil(low / step); k * step <= high; k++) {
                ticks.add(k * step);
            }
            return ticks;
        }

        /**
         * Ticks for a log axis spanning 10^{@code lowExponent} to 10^{@code highExponent}, returned as values (not
         * exponents): powers of ten when the range spans several decades (every second or more when crowded), else
         * 1-2-5 or 1..9 multiples within the decades, else linear ticks when the range is narrower than that.
         */
        static List<Double> logarithmic(double lowExponent, double highExponent, int count) {
            int[][] mantissaSets = {{1}, {1, 2, 5}, {1, 2, 3, 4, 5, 6, 7, 8, 9}};
            for (int[] mantissas : mantissaSets) {
                List<Double> ticks = new ArrayList<>();
                for (int decade = (int) Math.floor(lowExponent); decade <= Math.ceil(highExponent); decade++) {
                    for (int mantissa : mantissas) {
                        double exponent = decade + Math.log10(mantissa);
                        if (exponent >= lowExponent && exponent <= highExponent) {
                            ticks.add(Double.parseDouble(mantissa + "e" + decade));
                        }
                    }
                }
                if (ticks.size() >= 3) {
                    int stride = (ticks.size() + count - 1) / count;
                    List<Double> thinned = new ArrayList<>();
                    for (int i = 0; i < ticks.size(); i += stride) {
                        thinned.add(ticks.get(i));
                    }
                    return thinned;
                }
            }
            List<Double> ticks = new ArrayList<>();
            for (double tick : linear(Math.pow(10, lowExponent), Math.pow(10, highExponent), count, 0)) {
                if (tick > 0) {
                    ticks.add(tick);
                }
            }
            return ticks;
        }

        /** The smallest of 1, 2, 5, 10 × 10^k that is ≥ {@code rough}. */
        static double niceStep(double rough) {
            double magnitude = Math.pow(10, Math.floor(Math.log10(rough)));
            for (double multiple : new double[] {1, 2, 5}) {
                if (multiple * magnitude >= rough * (1 - 1e-9)) {
                    return multiple * magnitude;
                }
            }
            return 10 * magnitude;
        }

        /**
         * Short labels: plain decimals from 0.001 to below a million ("0.25", "150000"), else mantissa-e-exponent
         * ("2.5e-4", "1e6"). Six significant digits remove the float noise of k·step.
         */
        static String format(double value) {
            if (value == 0) {
                return "0";
            }
            BigDecimal rounded = new BigDecimal(value).round(new MathContext(6)).stripTrailingZeros();
            double magnitude = Math.abs(rounded.doubleValue());
            if (magnitude >= 1e-3 && magnitude < 1e6) {
                return rounded.toPlainString();
            }
            int exponent = rounded.precision() - rounded.scale() - 1;
            BigDecimal mantissa = rounded.movePointLeft(exponent).stripTrailingZeros();
            return mantissa.toPlainString() + "e" + exponent;
        }
    }
}
