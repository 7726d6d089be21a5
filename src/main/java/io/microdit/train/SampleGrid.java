package io.microdit.train;

import io.microdit.io.Png;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * Lays a batch of generated images out as one PNG: a grid of {@code columns} images separated and surrounded by a
 * {@value #BORDER}-pixel border, each image enlarged by an integer factor (nearest neighbour, so pixels stay sharp
 * and a 32×32 latent is still legible), values in [−1, 1] mapped to 0..255.
 *
 * <p>The border is mid-grey: Fashion-MNIST images are light garments on a black background, so neither black nor
 * white would separate neighbouring cells.
 *
 * @param channels 1 (greyscale) or 3 (RGB)
 * @param height   rows of one image
 * @param width    columns of one image
 * @param columns  images per grid row (fewer when the batch is smaller)
 * @param scale    integer enlargement of each image, ≥ 1
 */
public record SampleGrid(int channels, int height, int width, int columns, int scale) {
    static final int BORDER = 2;
    static final int BORDER_LEVEL = 128;

    /** Checks 1 or 3 channels and positive sizes. */
    public SampleGrid {
        if (channels != 1 && channels != 3) {
            throw new IllegalArgumentException("sample grid: channels must be 1 or 3, got " + channels);
        }
        if (height < 1 || width < 1 || columns < 1 || scale < 1) {
            throw new IllegalArgumentException("sample grid: height, width, columns and scale must be ≥ 1, got "
                    + height + ", " + width + ", " + columns + ", " + scale);
        }
    }

    /** Renders {@code batch} (N images, each channels×height×width, row-major, N ≥ 1) and writes it atomically. */
    public void write(Path file, float[] batch) throws IOException {
        Png.write(file, render(batch));
    }

    /**
     * The grid image of {@code batch}: N·channels·height·width floats, one image after another, each planar
     * (channel, row, column) as a tensor [N, C, H, W] stores them. Values outside [−1, 1] are clamped; NaN becomes 0
     * (black) so a diverged sample is visible rather than fatal.
     */
    public Png.Image render(float[] batch) {
        int imageSize = channels * height * width;
        if (batch.length == 0 || batch.length % imageSize != 0) {
            throw new IllegalArgumentException("sample grid: batch of " + batch.length
                    + " floats is not a positive whole number of " + channels + "×" + height + "×" + width
                    + " images");
        }
        int count = batch.length / imageSize;
        int gridColumns = Math.min(columns, count);
        int gridRows = (count + gridColumns - 1) / gridColumns;
        int cellWidth = width * scale + BORDER, cellHeight = height * scale + BORDER;
        int gridWidth = BORDER + gridColumns * cellWidth, gridHeight = BORDER + gridRows * cellHeight;
        byte[] pixels = new byte[gridWidth * gridHeight * channels];
        Arrays.fill(pixels, (byte) BORDER_LEVEL);
        for (int image = 0; image < count; image++) {
            int left = BORDER + (image % gridColumns) * cellWidth;
            int top = BORDER + (image / gridColumns) * cellHeight;
            for (int y = 0; y < height * scale; y++) {
                for (int x = 0; x < width * scale; x++) {
                    int target = ((top + y) * gridWidth + left + x) * channels;
                    int source = image * imageSize + (y / scale) * width + x / scale;
                    for (int channel = 0; channel < channels; channel++) {
                        pixels[target + channel] = toByte(batch[source + channel * height * width]);
                    }
                }
            }
        }
        return new Png.Image(gridWidth, gridHeight, channels, pixels);
    }

    /** [−1, 1] → 0..255, rounded to nearest. */
    static byte toByte(float value) {
        if (Float.isNaN(value)) {
            return 0;
        }
        float clamped = Math.clamp(value, -1f, 1f);
        return (byte) Math.round((clamped + 1.0) * 127.5);
    }
}
