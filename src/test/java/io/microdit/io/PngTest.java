package io.microdit.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import java.util.zip.CRC32;
import java.util.zip.Deflater;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class PngTest {
    @TempDir
    Path directory;

    private static final int[][] SIZES = {{1, 1}, {3, 7}, {7, 3}, {1, 17}, {33, 1}, {77, 45}, {211, 151}};

    @ParameterizedTest
    @ValueSource(ints = {1, 3})
    void randomImagesRoundTripBitExactly(int channels) throws IOException {
        Random random = new Random(17 + channels);
        for (int[] size : SIZES) {
            Png.Image image = randomImage(random, size[0], size[1], channels);
            Path file = directory.resolve("random-" + size[0] + "x" + size[1] + ".png");
            Png.write(file, image);
            Png.Image back = Png.read(file);
            assertEquals(size[0], back.width());
            assertEquals(size[1], back.height());
            assertEquals(channels, back.channels());
            assertArrayEquals(image.pixels(), back.pixels(), "pixels of " + file);
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 3})
    void smoothImagesRoundTripAndCompress(int channels) throws IOException {
        int width = 101, height = 67;
        byte[] pixels = new byte[width * height * channels];
        for (int y = 0; y < height; y++) {
            for (int x = 0; x < width; x++) {
                for (int c = 0; c < channels; c++) {
                    pixels[(y * width + x) * channels + c] = (byte) (x * 2 + y * (c + 1) + (x * y) / 50);
                }
            }
        }
        Png.Image image = new Png.Image(width, height, channels, pixels);
        byte[] encoded = Png.encode(image);
        assertTrue(encoded.length < pixels.length / 4, "filtered smooth image compresses: " + encoded.length);
        Path file = directory.resolve("smooth.png");
        Files.write(file, encoded);
        assertArrayEquals(pixels, Png.read(file).pixels());
    }

    @Test
    void chunksAreInOrderWithValidCrcs() {
        // 211×151×3 random bytes do not compress, so the image data spans more than one IDAT chunk.
        byte[] encoded = Png.encode(randomImage(new Random(5), 211, 151, 3));
        List<String> types = new ArrayList<>();
        ByteBuffer in = ByteBuffer.wrap(encoded).position(8);
        while (in.hasRemaining()) {
            int length = in.getInt();
            byte[] typeAndData = new byte[4 + length];
            in.get(typeAndData);
            CRC32 crc = new CRC32();
            crc.update(typeAndData);
            String type = new String(typeAndData, 0, 4, StandardCharsets.ISO_8859_1);
            assertEquals((int) crc.getValue(), in.getInt(), "CRC of " + type);
            types.add(type);
        }
        assertEquals("IHDR", types.getFirst());
        assertEquals("IEND", types.getLast());
        assertTrue(types.size() > 3, "several IDAT chunks: " + types);
        assertTrue(types.subList(1, types.size() - 1).stream().allMatch("IDAT"::equals), types.toString());
        assertArrayEquals(new byte[] {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'},
                Arrays.copyOf(encoded, 8));
    }

    /** The reader against rows filtered by this test's own filters, one filter type for the whole image. */
    @ParameterizedTest
    @ValueSource(ints = {0, 1, 2, 3, 4})
    void readerUndoesEveryFilterType(int filterType) throws IOException {
        Random random = new Random(filterType);
        for (int channels : new int[] {1, 3}) {
            Png.Image image = randomImage(random, 13, 9, channels);
            byte[] filtered = filterAllRows(image, filterType);
            Path file = directory.resolve("filter" + filterType + ".png");
            Files.write(file, pngFile(13, 9, 8, channels == 1 ? 0 : 2, 0, filtered, true));
            assertArrayEquals(image.pixels(), Png.read(file).pixels(), "filter type " + filterType);
        }
    }

    @Test
    void writeReplacesAnExistingFileAndLeavesNoTemporaryFiles() throws IOException {
        Path file = directory.resolve("grid.png");
        Png.write(file, randomImage(new Random(1), 5, 4, 1));
        Png.Image second = randomImage(new Random(2), 3, 2, 3);
        Png.write(file, second);
        assertArrayEquals(second.pixels(), Png.read(file).pixels());
        try (Stream<Path> files = Files.list(directory)) {
            assertEquals(List.of(file), files.toList());
        }
    }

    @Test
    void malformedFilesAreRejectedWithTheFileAndTheProblem() throws IOException {
        byte[] good = Png.encode(randomImage(new Random(3), 6, 5, 3));
        byte[] rows = filterAllRows(randomImage(new Random(4), 6, 5, 1), 0);

        assertRejected("bad.png", "not a PNG file (bad signature)", withByte(good, 1, 'Q'));
        assertRejected("empty.png", "bad signature", new byte[0]);
        int idatData = indexOf(good, "IDAT") + 4;
        assertRejected("crc.png", "chunk 'IDAT' has a bad CRC", withByte(good, idatData + 3, good[idatData + 3] ^ 1));
        assertRejected("cut.png", "truncated chunk 'IDAT'", Arrays.copyOf(good, idatData + 5));
        assertRejected("noend.png", "truncated: no IEND chunk", Arrays.copyOf(good, indexOf(good, "IEND") - 4));
        assertRejected("rgba.png", "unsupported colour type 6", pngFile(6, 5, 8, 6, 0, rows, true));
        assertRejected("palette.png", "unsupported colour type 3", pngFile(6, 5, 8, 3, 0, rows, true));
        assertRejected("deep.png", "unsupported bit depth 16", pngFile(6, 5, 16, 0, 0, rows, true));
        assertRejected("adam7.png", "unsupported interlace method 1", pngFile(6, 5, 8, 0, 1, rows, true));
        assertRejected("short.png", "truncated image data", pngFile(6, 5, 8, 0, 0,
                Arrays.copyOf(rows, rows.length - 1), true));
        assertRejected("long.png", "more image data than", pngFile(6, 5, 8, 0, 0,
                Arrays.copyOf(rows, rows.length + 7), true));
        assertRejected("filter.png", "row 2: unknown filter type 5", pngFile(6, 5, 8, 0, 0,
                withByte(rows, 2 * 7, 5), true));
        assertRejected("noidat.png", "no IDAT chunk", pngFile(6, 5, 8, 0, 0, null, true));

        byte[] zlibCorrupted = pngFile(6, 5, 8, 0, 0, rows, false);
        assertRejected("zlib.png", "corrupt zlib data in IDAT", zlibCorrupted);

        byte[] noHeader = concat(Arrays.copyOf(good, 8), chunk("IDAT", new byte[] {1, 2}), chunk("IEND", new byte[0]));
        assertRejected("noheader.png", "first chunk is 'IDAT', expected IHDR", noHeader);
        byte[] unknownCritical = concat(Arrays.copyOf(good, indexOf(good, "IEND") - 4),
                chunk("ZZZZ", new byte[] {7}), chunk("IEND", new byte[0]));
        assertRejected("critical.png", "unsupported critical chunk 'ZZZZ'", unknownCritical);
        byte[] ancillary = concat(Arrays.copyOf(good, indexOf(good, "IEND") - 4),
                chunk("tEXt", "Comment\0fine".getBytes(StandardCharsets.ISO_8859_1)), chunk("IEND", new byte[0]));
        Files.write(directory.resolve("text.png"), ancillary);
        assertEquals(6, Png.read(directory.resolve("text.png")).width(), "ancillary chunks are skipped");
    }

    @Test
    void badImageArgumentsAreRejected() {
        var wrongLength = assertThrows(IllegalArgumentException.class, () -> new Png.Image(3, 2, 3, new byte[17]));
        assertTrue(wrongLength.getMessage().contains("needs 18 samples, got 17"), wrongLength.getMessage());
        var channels = assertThrows(IllegalArgumentException.class, () -> new Png.Image(1, 1, 4, new byte[4]));
        assertTrue(channels.getMessage().contains("channels must be 1 (grey) or 3 (RGB)"), channels.getMessage());
        var empty = assertThrows(IllegalArgumentException.class, () -> new Png.Image(0, 5, 1, new byte[0]));
        assertTrue(empty.getMessage().contains("width and height must be ≥ 1"), empty.getMessage());
    }

    private void assertRejected(String name, String problem, byte[] bytes) throws IOException {
        Path file = directory.resolve(name);
        Files.write(file, bytes);
        IOException e = assertThrows(IOException.class, () -> Png.read(file), name);
        assertTrue(e.getMessage().startsWith(file.toString()), "names the file: " + e.getMessage());
        assertTrue(e.getMessage().contains(problem), "says '" + problem + "': " + e.getMessage());
    }

    private static Png.Image randomImage(Random random, int width, int height, int channels) {
        byte[] pixels = new byte[width * height * channels];
        random.nextBytes(pixels);
        return new Png.Image(width, height, channels, pixels);
    }

    /** Rows filtered with one filter type, written from the PNG specification's definitions. */
    private static byte[] filterAllRows(Png.Image image, int filterType) {
        int channels = image.channels(), stride = image.width() * channels;
        byte[] out = new byte[image.height() * (stride + 1)];
        for (int y = 0; y < image.height(); y++) {
            out[y * (stride + 1)] = (byte) filterType;
            for (int i = 0; i < stride; i++) {
                int x = i / channels, c = i % channels;
                int value = image.sample(x, y, c);
                int left = x > 0 ? image.sample(x - 1, y, c) : 0;
                int up = y > 0 ? image.sample(x, y - 1, c) : 0;
                int upLeft = x > 0 && y > 0 ? image.sample(x - 1, y - 1, c) : 0;
                int prediction = switch (filterType) {
                    case 0 -> 0;
                    case 1 -> left;
                    case 2 -> up;
                    case 3 -> (left + up) / 2;
                    default -> {
                        int p = left + up - upLeft;
                        int pa = Math.abs(p - left), pb = Math.abs(p - up), pc = Math.abs(p - upLeft);
                        yield pa <= pb && pa <= pc ? left : pb <= pc ? up : upLeft;
                    }
                };
                out[y * (stride + 1) + 1 + i] = (byte) (value - prediction);
            }
        }
        return out;
    }

    /** A PNG with the given header fields; {@code validZlib} false breaks the zlib stream's header check. */
    private static byte[] pngFile(int width, int height, int bitDepth, int colourType, int interlace,
                                  byte[] filteredRows, boolean validZlib) {
        ByteBuffer header = ByteBuffer.allocate(13).putInt(width).putInt(height).put((byte) bitDepth)
                .put((byte) colourType).put((byte) 0).put((byte) 0).put((byte) interlace);
        byte[] signature = {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
        if (filteredRows == null) {
            return concat(signature, chunk("IHDR", header.array()), chunk("IEND", new byte[0]));
        }
        Deflater deflater = new Deflater();
        deflater.setInput(filteredRows);
        deflater.finish();
        byte[] buffer = new byte[filteredRows.length + 64];
        byte[] zlib = Arrays.copyOf(buffer, deflater.deflate(buffer));
        deflater.end();
        if (!validZlib) {
            zlib[1] ^= 0x1;
        }
        return concat(signature, chunk("IHDR", header.array()), chunk("IDAT", zlib), chunk("IEND", new byte[0]));
    }

    private static byte[] chunk(String type, byte[] data) {
        byte[] typeBytes = type.getBytes(StandardCharsets.ISO_8859_1);
        CRC32 crc = new CRC32();
        crc.update(typeBytes);
        crc.update(data);
        return ByteBuffer.allocate(12 + data.length).putInt(data.length).put(typeBytes).put(data)
                .putInt((int) crc.getValue()).array();
    }

    private static byte[] concat(byte[]... parts) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (byte[] part : parts) {
            out.writeBytes(part);
        }
        return out.toByteArray();
    }

    private static byte[] withByte(byte[] bytes, int index, int value) {
        byte[] copy = bytes.clone();
        copy[index] = (byte) value;
        return copy;
    }

    private static int indexOf(byte[] bytes, String type) {
        byte[] pattern = type.getBytes(StandardCharsets.ISO_8859_1);
        for (int i = 0; i + pattern.length <= bytes.length; i++) {
            if (Arrays.equals(bytes, i, i + pattern.length, pattern, 0, pattern.length)) {
                return i;
            }
        }
        throw new AssertionError(type + " not found");
    }
}
