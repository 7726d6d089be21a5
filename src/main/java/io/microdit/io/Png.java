package io.microdit.io;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.concurrent.ThreadLocalRandom;
import java.util.zip.CRC32;
import java.util.zip.DataFormatException;
import java.util.zip.Deflater;
import java.util.zip.Inflater;

/**
 * Writes and reads the PNG subset the engine needs: 8-bit greyscale (colour type 0) and 8-bit RGB (colour type 2),
 * non-interlaced. Pure JDK (no java.desktop), so it works headless and in a jlinked runtime.
 *
 * <p>The writer picks a filter per row with the usual minimum-sum-of-absolute-differences heuristic (the one the
 * PNG specification recommends and libpng uses): cheap, and it typically halves the size of smooth images compared
 * with no filter. Files are replaced atomically so a viewer polling a sample grid or loss plot during training
 * never sees a half-written file. The reader accepts all five filter types and exists to check what was written;
 * every problem is an {@link IOException} naming the file and what is wrong.
 */
public final class Png {
    private static final byte[] SIGNATURE = {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    private static final int BIT_DEPTH = 8;
    private static final int COLOUR_GREY = 0;
    private static final int COLOUR_RGB = 2;
    /** IDAT payloads are split so no single chunk gets large; readers must concatenate them anyway. */
    private static final int IDAT_CHUNK_BYTES = 1 << 16;
    /** Refuse headers that claim more than this many samples (1 GiB), before allocating. */
    private static final long MAX_SAMPLES = 1L << 30;

    private Png() {
    }

    /**
     * An 8-bit image with samples interleaved per pixel (grey, or red-green-blue), rows top to bottom.
     *
     * @param channels 1 (greyscale) or 3 (RGB)
     * @param pixels   {@code height·width·channels} samples, read as unsigned bytes
     */
    public record Image(int width, int height, int channels, byte[] pixels) {
        /**
         * Throws {@link IllegalArgumentException} for an empty image, a channel count other than 1 or 3, more than 2³⁰
         * samples, or pixels of the wrong length.
         */
        public Image {
            if (width < 1 || height < 1) {
                throw new IllegalArgumentException("PNG image: width and height must be ≥ 1, got " + width + "×"
                        + height);
            }
            if (channels != 1 && channels != 3) {
                throw new IllegalArgumentException("PNG image: channels must be 1 (grey) or 3 (RGB), got "
                        + channels);
            }
            if ((long) width * height * channels > MAX_SAMPLES) {
                throw new IllegalArgumentException("PNG image: " + width + "×" + height + "×" + channels
                        + " is larger than " + MAX_SAMPLES + " samples");
            }
            if (pixels.length != width * height * channels) {
                throw new IllegalArgumentException("PNG image: " + width + "×" + height + "×" + channels + " needs "
                        + width * height * channels + " samples, got " + pixels.length);
            }
        }

        /** The sample at column {@code x}, row {@code y}, as 0 to 255. */
        public int sample(int x, int y, int channel) {
            return pixels[(y * width + x) * channels + channel] & 0xff;
        }
    }

    /** Encodes {@code image} and replaces {@code file} with it atomically (temporary sibling, then a rename). */
    public static void write(Path file, Image image) throws IOException {
        byte[] encoded = encode(image);
        // A sibling, so the rename stays within one file system and is atomic; the leading dot hides it from
        // directory listings while it exists. Not Files.createTempFile, which would make the result owner-only.
        Path temporary = file.toAbsolutePath().resolveSibling("." + file.getFileName() + "."
                + Long.toHexString(ThreadLocalRandom.current().nextLong()) + ".tmp");
        try {
            Files.write(temporary, encoded, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
            Files.move(temporary, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException | RuntimeException e) {
            Files.deleteIfExists(temporary);
            throw e;
        }
    }

    /** The bytes of a PNG file holding {@code image}. */
    public static byte[] encode(Image image) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(SIGNATURE);
        ByteBuffer header = ByteBuffer.allocate(13)
                .putInt(image.width())
                .putInt(image.height())
                .put((byte) BIT_DEPTH)
                .put((byte) (image.channels() == 1 ? COLOUR_GREY : COLOUR_RGB))
                .put((byte) 0)   // compression method: zlib
                .put((byte) 0)   // filter method: the five adaptive filters
                .put((byte) 0);  // interlace: none
        writeChunk(out, "IHDR", header.array());
        byte[] compressed = deflate(filterRows(image));
        for (int start = 0; start < compressed.length; start += IDAT_CHUNK_BYTES) {
            int length = Math.min(IDAT_CHUNK_BYTES, compressed.length - start);
            writeChunk(out, "IDAT", Arrays.copyOfRange(compressed, start, start + length));
        }
        writeChunk(out, "IEND", new byte[0]);
        return out.toByteArray();
    }

    /** Reads a file written by {@link #write} or any 8-bit grey/RGB non-interlaced PNG. */
    public static Image read(Path file) throws IOException {
        return decode(Files.readAllBytes(file), file.toString());
    }

    /** Decodes PNG bytes; {@code source} names them in error messages. */
    static Image decode(byte[] bytes, String source) throws IOException {
        if (bytes.length < SIGNATURE.length || !Arrays.equals(bytes, 0, SIGNATURE.length, SIGNATURE, 0,
                SIGNATURE.length)) {
            throw new IOException(source + ": not a PNG file (bad signature)");
        }
        ByteBuffer in = ByteBuffer.wrap(bytes).position(SIGNATURE.length);
        Header header = null;
        ByteArrayOutputStream compressed = new ByteArrayOutputStream();
        while (true) {
            int offset = in.position();
            if (in.remaining() < 12) {
                throw new IOException(source + ": offset " + offset + ": truncated: "
                        + (in.remaining() == 0 ? "no IEND chunk" : "chunk header cut short"));
            }
            long length = Integer.toUnsignedLong(in.getInt());
            byte[] typeBytes = new byte[4];
            in.get(typeBytes);
            String type = new String(typeBytes, StandardCharsets.ISO_8859_1);
            if (length > in.remaining() - 4) {
                throw new IOException(source + ": offset " + offset + ": truncated chunk '" + type + "': declares "
                        + length + " data bytes, only " + Math.max(0, in.remaining() - 4) + " remain");
            }
            byte[] data = new byte[(int) length];
            in.get(data);
            int stored = in.getInt();
            int computed = crc(typeBytes, data);
            if (stored != computed) {
                throw new IOException(source + ": offset " + offset + ": chunk '" + type + "' has a bad CRC (stored 0x"
                        + Integer.toHexString(stored) + ", computed 0x" + Integer.toHexString(computed) + ")");
            }
            if (header == null && !type.equals("IHDR")) {
                throw new IOException(source + ": offset " + offset + ": first chunk is '" + type
                        + "', expected IHDR");
            }
            switch (type) {
                case "IHDR" -> header = Header.parse(data, source);
                case "IDAT" -> compressed.writeBytes(data);
                case "IEND" -> {
                    return decodePixels(header, compressed.toByteArray(), source);
                }
                default -> {
                    // Ancillary chunks (lower-case first letter) may be ignored by definition; a palette is only a
                    // display suggestion for grey and RGB images. Any other critical chunk changes the meaning.
                    boolean ancillary = Character.isLowerCase(type.charAt(0));
                    if (!ancillary && !type.equals("PLTE")) {
                        throw new IOException(source + ": offset " + offset + ": unsupported critical chunk '"
                                + type + "'");
                    }
                }
            }
        }
    }

    /** The IHDR fields this subset accepts. */
    private record Header(int width, int height, int channels) {
        static Header parse(byte[] data, String source) throws IOException {
            if (data.length != 13) {
                throw new IOException(source + ": IHDR has " + data.length + " bytes, expected 13");
            }
            ByteBuffer in = ByteBuffer.wrap(data);
            int width = in.getInt(), height = in.getInt();
            int bitDepth = in.get() & 0xff, colourType = in.get() & 0xff;
            int compression = in.get() & 0xff, filter = in.get() & 0xff, interlace = in.get() & 0xff;
            if (width <= 0 || height <= 0) {
                throw new IOException(source + ": invalid size " + Integer.toUnsignedString(width) + "×"
                        + Integer.toUnsignedString(height));
            }
            if (colourType != COLOUR_GREY && colourType != COLOUR_RGB) {
                throw new IOException(source + ": unsupported colour type " + colourType
                        + " (only 0, greyscale, and 2, RGB)");
            }
            if (bitDepth != BIT_DEPTH) {
                throw new IOException(source + ": unsupported bit depth " + bitDepth + " (only 8)");
            }
            if (compression != 0 || filter != 0) {
                throw new IOException(source + ": unknown compression method " + compression + " or filter method "
                        + filter + " (PNG defines only 0)");
            }
            if (interlace != 0) {
                throw new IOException(source + ": unsupported interlace method " + interlace
                        + " (only 0, non-interlaced)");
            }
            int channels = colourType == COLOUR_GREY ? 1 : 3;
            if ((long) width * height * channels > MAX_SAMPLES) {
                throw new IOException(source + ": image " + width + "×" + height + "×" + channels
                        + " is larger than " + MAX_SAMPLES + " samples");
            }
            return new Header(width, height, channels);
        }
    }

    private static Image decodePixels(Header header, byte[] compressed, String source) throws IOException {
        if (compressed.length == 0) {
            throw new IOException(source + ": no IDAT chunk");
        }
        int stride = header.width() * header.channels();
        byte[] filtered = new byte[header.height() * (1 + stride)];
        Inflater inflater = new Inflater();
        try {
            inflater.setInput(compressed);
            int produced = 0;
            while (produced < filtered.length) {
                int inflated = inflater.inflate(filtered, produced, filtered.length - produced);
                // Zero bytes out means the stream ended, ran out of input, or wants a preset dictionary.
                if (inflated == 0) {
                    break;
                }
                produced += inflated;
            }
            if (produced < filtered.length) {
                throw new IOException(source + ": truncated image data: " + produced + " of " + filtered.length
                        + " bytes after decompression");
            }
            if (!inflater.finished() && inflater.inflate(new byte[1]) > 0) {
                throw new IOException(source + ": more image data than the " + header.width() + "×"
                        + header.height() + " header allows");
            }
        } catch (DataFormatException e) {
            throw new IOException(source + ": corrupt zlib data in IDAT (" + e.getMessage() + ")", e);
        } finally {
            inflater.end();
        }
        byte[] pixels = new byte[header.height() * stride];
        for (int row = 0; row < header.height(); row++) {
            int filterType = filtered[row * (1 + stride)] & 0xff;
            if (filterType > 4) {
                throw new IOException(source + ": row " + row + ": unknown filter type " + filterType);
            }
            unfilterRow(filterType, filtered, row * (1 + stride) + 1, pixels, row * stride, stride,
                    header.channels());
        }
        return new Image(header.width(), header.height(), header.channels(), pixels);
    }

    /**
     * Reverses one row's filter in place of {@code pixels}: each reconstructed byte is the filtered byte plus a
     * prediction from its left neighbour {@code a}, the byte above {@code b} and the one above-left {@code c}.
     */
    private static void unfilterRow(int filterType, byte[] filtered, int from, byte[] pixels, int to, int stride,
                                    int bytesPerPixel) {
        for (int i = 0; i < stride; i++) {
            int a = i >= bytesPerPixel ? pixels[to + i - bytesPerPixel] & 0xff : 0;
            int b = to >= stride ? pixels[to - stride + i] & 0xff : 0;
            int c = i >= bytesPerPixel && to >= stride ? pixels[to - stride + i - bytesPerPixel] & 0xff : 0;
            pixels[to + i] = (byte) (filtered[from + i] + predict(filterType, a, b, c));
        }
    }

    /** The filtered rows, each led by its filter-type byte, the filter chosen per row. */
    private static byte[] filterRows(Image image) {
        int stride = image.width() * image.channels();
        byte[] pixels = image.pixels();
        byte[] out = new byte[image.height() * (1 + stride)];
        byte[] candidate = new byte[stride];
        for (int row = 0; row < image.height(); row++) {
            int start = row * stride;
            long bestCost = Long.MAX_VALUE;
            for (int filterType = 0; filterType <= 4; filterType++) {
                long cost = 0;
                for (int i = 0; i < stride; i++) {
                    int a = i >= image.channels() ? pixels[start + i - image.channels()] & 0xff : 0;
                    int b = row > 0 ? pixels[start - stride + i] & 0xff : 0;
                    int c = i >= image.channels() && row > 0 ? pixels[start - stride + i - image.channels()] & 0xff
                            : 0;
                    candidate[i] = (byte) (pixels[start + i] - predict(filterType, a, b, c));
                    cost += Math.abs(candidate[i]);
                }
                if (cost < bestCost) {
                    bestCost = cost;
                    out[row * (1 + stride)] = (byte) filterType;
                    System.arraycopy(candidate, 0, out, row * (1 + stride) + 1, stride);
                }
            }
        }
        return out;
    }

    /** The five PNG predictors: none, sub (left), up, average, Paeth. */
    private static int predict(int filterType, int a, int b, int c) {
        return switch (filterType) {
            case 0 -> 0;
            case 1 -> a;
            case 2 -> b;
            case 3 -> (a + b) >>> 1;
            case 4 -> paeth(a, b, c);
            default -> throw new IllegalArgumentException("PNG filter type " + filterType);
        };
    }

    /** Of left, above and above-left, the one closest to {@code a + b − c}; ties prefer that order. */
    private static int paeth(int a, int b, int c) {
        int estimate = a + b - c;
        int distanceA = Math.abs(estimate - a), distanceB = Math.abs(estimate - b), distanceC = Math.abs(estimate - c);
        if (distanceA <= distanceB && distanceA <= distanceC) {
            return a;
        }
        return distanceB <= distanceC ? b : c;
    }

    private static byte[] deflate(byte[] data) {
        Deflater deflater = new Deflater(Deflater.DEFAULT_COMPRESSION);
        try {
            deflater.setInput(data);
            deflater.finish();
            ByteArrayOutputStream out = new ByteArrayOutputStream(data.length / 2 + 64);
            byte[] buffer = new byte[1 << 16];
            while (!deflater.finished()) {
                out.write(buffer, 0, deflater.deflate(buffer));
            }
            return out.toByteArray();
        } finally {
            deflater.end();
        }
    }

    private static void writeChunk(ByteArrayOutputStream out, String type, byte[] data) {
        byte[] typeBytes = type.getBytes(StandardCharsets.ISO_8859_1);
        ByteBuffer framing = ByteBuffer.allocate(4);
        framing.putInt(0, data.length);
        out.writeBytes(framing.array());
        out.writeBytes(typeBytes);
        out.writeBytes(data);
        framing.putInt(0, crc(typeBytes, data));
        out.writeBytes(framing.array());
    }

    /** The chunk CRC covers the type and the data, not the length. */
    private static int crc(byte[] type, byte[] data) {
        CRC32 crc = new CRC32();
        crc.update(type);
        crc.update(data);
        return (int) crc.getValue();
    }
}
