package io.microdit.train;

import io.microdit.io.Png;

/**
 * An RGB raster with the few drawing operations a chart needs: filled rectangles, straight lines of a given pen
 * width (Bresenham, no anti-aliasing, so a test can find a line by its exact colour) and {@link BitmapFont} text,
 * horizontal or turned a quarter anticlockwise. Drawing outside the raster is clipped silently.
 * Colours are packed 0xRRGGBB.
 */
final class RgbCanvas {
    private final int width;
    private final int height;
    private final byte[] pixels;

    RgbCanvas(int width, int height, int background) {
        this.width = width;
        this.height = height;
        this.pixels = new byte[width * height * 3];
        fillRectangle(0, 0, width, height, background);
    }

    void set(int x, int y, int rgb) {
        if (x < 0 || y < 0 || x >= width || y >= height) {
            return;
        }
        int index = (y * width + x) * 3;
        pixels[index] = (byte) (rgb >> 16);
        pixels[index + 1] = (byte) (rgb >> 8);
        pixels[index + 2] = (byte) rgb;
    }

    void fillRectangle(int left, int top, int rectangleWidth, int rectangleHeight, int rgb) {
        for (int y = top; y < top + rectangleHeight; y++) {
            for (int x = left; x < left + rectangleWidth; x++) {
                set(x, y, rgb);
            }
        }
    }

    /** The one-pixel outline of the rectangle with corners ({@code left}, {@code top}), ({@code right}, {@code bottom}). */
    void rectangleOutline(int left, int top, int right, int bottom, int rgb) {
        line(left, top, right, top, rgb, 1);
        line(left, bottom, right, bottom, rgb, 1);
        line(left, top, left, bottom, rgb, 1);
        line(right, top, right, bottom, rgb, 1);
    }

    /** How many pixels of the rectangle are neither of two colours; pixels outside the raster do not count. */
    long countOtherThan(int left, int top, int rectangleWidth, int rectangleHeight, int first, int second) {
        long count = 0;
        for (int y = Math.max(0, top); y < Math.min(height, top + rectangleHeight); y++) {
            for (int x = Math.max(0, left); x < Math.min(width, left + rectangleWidth); x++) {
                int rgb = get(x, y);
                if (rgb != first && rgb != second) {
                    count++;
                }
            }
        }
        return count;
    }

    int get(int x, int y) {
        int index = (y * width + x) * 3;
        return (pixels[index] & 0xff) << 16 | (pixels[index + 1] & 0xff) << 8 | pixels[index + 2] & 0xff;
    }

    /** A line whose every point is a {@code pen}×{@code pen} square, so thick lines keep their width at any slope. */
    void line(int x0, int y0, int x1, int y1, int rgb, int pen) {
        int dx = Math.abs(x1 - x0), dy = -Math.abs(y1 - y0);
        int stepX = x0 < x1 ? 1 : -1, stepY = y0 < y1 ? 1 : -1;
        int error = dx + dy;
        int x = x0, y = y0;
        int offset = (pen - 1) / 2;
        while (true) {
            fillRectangle(x - offset, y - offset, pen, pen, rgb);
            if (x == x1 && y == y1) {
                return;
            }
            int doubled = 2 * error;
            if (doubled >= dy) {
                error += dy;
                x += stepX;
            }
            if (doubled <= dx) {
                error += dx;
                y += stepY;
            }
        }
    }

    /** Text with its top-left corner at ({@code left}, {@code top}), each font pixel a {@code scale}² square. */
    void text(int left, int top, String text, int scale, int rgb) {
        for (int index = 0; index < text.length(); index++) {
            char character = text.charAt(index);
            int glyphLeft = left + index * BitmapFont.ADVANCE * scale;
            for (int row = 0; row < BitmapFont.LINE_HEIGHT; row++) {
                for (int column = 0; column < BitmapFont.GLYPH_WIDTH; column++) {
                    if (BitmapFont.isSet(character, column, row)) {
                        fillRectangle(glyphLeft + column * scale, top + row * scale, scale, scale, rgb);
                    }
                }
            }
        }
    }

    /** Text read bottom to top (turned a quarter anticlockwise), its first glyph's corner at ({@code left}, {@code bottom}). */
    void verticalText(int left, int bottom, String text, int scale, int rgb) {
        for (int index = 0; index < text.length(); index++) {
            char character = text.charAt(index);
            int glyphBottom = bottom - index * BitmapFont.ADVANCE * scale;
            for (int row = 0; row < BitmapFont.LINE_HEIGHT; row++) {
                for (int column = 0; column < BitmapFont.GLYPH_WIDTH; column++) {
                    if (BitmapFont.isSet(character, column, row)) {
                        fillRectangle(left + row * scale, glyphBottom - (column + 1) * scale, scale, scale, rgb);
                    }
                }
            }
        }
    }

    Png.Image toImage() {
        return new Png.Image(width, height, 3, pixels.clone());
    }
}
