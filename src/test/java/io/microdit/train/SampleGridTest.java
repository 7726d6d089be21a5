package io.microdit.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.io.Png;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SampleGridTest {
    @TempDir
    Path directory;

    @Test
    void valuesMapFromMinusOneToOneOntoBytesWithClamping() {
        assertEquals(0, SampleGrid.toByte(-1f) & 0xff);
        assertEquals(255, SampleGrid.toByte(1f) & 0xff);
        assertEquals(128, SampleGrid.toByte(0f) & 0xff, "127.5 rounds up");
        assertEquals(191, SampleGrid.toByte(0.5f) & 0xff, "191.25");
        assertEquals(0, SampleGrid.toByte(-7f) & 0xff);
        assertEquals(255, SampleGrid.toByte(3.5f) & 0xff);
        assertEquals(255, SampleGrid.toByte(Float.POSITIVE_INFINITY) & 0xff);
        assertEquals(0, SampleGrid.toByte(Float.NaN) & 0xff);
    }

    /** Five 2×3 grey images, three per row, doubled: every pixel of the file read back, cell by cell. */
    @Test
    void greyGridPlacesEveryPixel() throws IOException {
        int count = 5, height = 2, width = 3, columns = 3, scale = 2;
        float[] batch = randomBatch(new Random(7), count * height * width);
        Path file = directory.resolve("grid.png");
        new SampleGrid(1, height, width, columns, scale).write(file, batch);
        Png.Image grid = Png.read(file);

        assertEquals(2 + 3 * (3 * 2 + 2), grid.width());
        assertEquals(2 + 2 * (2 * 2 + 2), grid.height());
        assertEquals(1, grid.channels());
        int[][] expected = new int[grid.height()][grid.width()];
        for (int[] row : expected) {
            Arrays.fill(row, 128);
        }
        for (int image = 0; image < count; image++) {
            int left = 2 + (image % 3) * 8, top = 2 + (image / 3) * 6;
            for (int y = 0; y < height; y++) {
                for (int x = 0; x < width; x++) {
                    int level = reference(batch[image * 6 + y * width + x]);
                    for (int dy = 0; dy < 2; dy++) {
                        for (int dx = 0; dx < 2; dx++) {
                            expected[top + 2 * y + dy][left + 2 * x + dx] = level;
                        }
                    }
                }
            }
        }
        for (int y = 0; y < grid.height(); y++) {
            for (int x = 0; x < grid.width(); x++) {
                assertEquals(expected[y][x], grid.sample(x, y, 0), "pixel (" + x + ", " + y + ")");
            }
        }
        assertEquals(128, grid.sample(grid.width() - 3, grid.height() - 3, 0), "the sixth cell is empty border");
    }

    /** Planar C×H×W input becomes interleaved RGB; a batch smaller than the column count makes one short row. */
    @Test
    void rgbImagesAreInterleaved() {
        int height = 3, width = 2;
        float[] batch = randomBatch(new Random(11), 2 * 3 * height * width);
        Png.Image grid = new SampleGrid(3, height, width, 8, 1).render(batch);
        assertEquals(2 + 2 * (width + 2), grid.width(), "two columns, not eight");
        assertEquals(2 + height + 2, grid.height());
        assertEquals(3, grid.channels());
        for (int image = 0; image < 2; image++) {
            for (int channel = 0; channel < 3; channel++) {
                for (int y = 0; y < height; y++) {
                    for (int x = 0; x < width; x++) {
                        float value = batch[((image * 3 + channel) * height + y) * width + x];
                        assertEquals(reference(value), grid.sample(2 + image * (width + 2) + x, 2 + y, channel));
                    }
                }
            }
        }
        for (int channel = 0; channel < 3; channel++) {
            assertEquals(128, grid.sample(0, 0, channel));
            assertEquals(128, grid.sample(2 + width, 2, channel), "border between the two images");
        }
    }

    @Test
    void badArgumentsAreRejected() {
        var grid = new SampleGrid(1, 4, 4, 2, 1);
        var ragged = assertThrows(IllegalArgumentException.class, () -> grid.render(new float[17]));
        assertTrue(ragged.getMessage().contains("not a positive whole number of 1×4×4 images"), ragged.getMessage());
        assertThrows(IllegalArgumentException.class, () -> grid.render(new float[0]));
        var channels = assertThrows(IllegalArgumentException.class, () -> new SampleGrid(2, 4, 4, 2, 1));
        assertTrue(channels.getMessage().contains("channels must be 1 or 3"), channels.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new SampleGrid(1, 4, 4, 2, 0));
    }

    /** Values spread over [−1.3, 1.3] so clamping is exercised, plus exact ends. */
    private static float[] randomBatch(Random random, int length) {
        float[] batch = new float[length];
        for (int i = 0; i < length; i++) {
            batch[i] = (random.nextFloat() * 2 - 1) * 1.3f;
        }
        batch[0] = -1f;
        batch[length - 1] = 1f;
        return batch;
    }

    private static int reference(float value) {
        double clamped = Math.max(-1, Math.min(1, value));
        return (int) Math.floor((clamped + 1) * 127.5 + 0.5);
    }
}
