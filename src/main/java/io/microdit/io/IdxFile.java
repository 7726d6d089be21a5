package io.microdit.io;

import java.io.BufferedInputStream;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.zip.GZIPInputStream;
import java.util.zip.ZipException;

/**
 * Reads IDX files (the MNIST / Fashion-MNIST format), gzip-compressed or not: a big-endian header of two zero
 * bytes, a type byte (only 0x08, unsigned byte, is supported), the rank, one 32-bit size per dimension, then the
 * data, and nothing after it. Every problem is reported with the file and the byte offset where it was found.
 * Memory is bounded by the file: an uncompressed file's declared size is checked against the file's length
 * before anything is allocated, and a compressed file's data is read in growing chunks, so the buffer never
 * exceeds twice the bytes the stream actually delivered.
 *
 * @param shape the dimensions from the header
 * @param data  the unsigned bytes, row-major
 */
public record IdxFile(int[] shape, byte[] data) {
    private static final int UNSIGNED_BYTE = 0x08;
    /** Refuse headers that claim more than this many elements (1 GiB), before allocating. */
    private static final long MAX_ELEMENTS = 1L << 30;
    /** Compressed data is read in chunks starting at this size and doubling, never beyond what arrived. */
    private static final int FIRST_CHUNK = 1 << 16;

    /**
     * Reads a whole IDX file, gunzipping it when it starts with gzip's magic bytes; throws {@link IOException} naming
     * the file and byte offset for a missing file, a malformed or oversized header, short data or trailing bytes.
     */
    public static IdxFile read(Path file) throws IOException {
        if (!Files.isRegularFile(file)) {
            throw new IOException(file + ": no such file");
        }
        try (InputStream raw = new BufferedInputStream(Files.newInputStream(file))) {
            raw.mark(2);
            int b0 = raw.read(), b1 = raw.read();
            raw.reset();
            boolean gzip = b0 == 0x1f && b1 == 0x8b;
            try (DataInputStream in = new DataInputStream(gzip ? new GZIPInputStream(raw, 1 << 16) : raw)) {
                return parse(file, in, gzip ? Long.MAX_VALUE : Files.size(file));
            } catch (ZipException | EOFException e) {
                throw new IOException(file + ": corrupt or truncated gzip stream (" + e + ")", e);
            }
        }
    }

    /** {@code available}: the stream's length when known (an uncompressed file), else {@code Long.MAX_VALUE}. */
    private static IdxFile parse(Path file, DataInputStream in, long available) throws IOException {
        long offset = 0;
        int zero = readUnsignedShort(file, in, offset);
        int type = readByte(file, in, offset + 2);
        int rank = readByte(file, in, offset + 3);
        if (zero != 0) {
            throw new IOException(file + ": offset 0: not an IDX file (first two bytes must be zero, got 0x"
                    + Integer.toHexString(zero) + ")");
        }
        if (type != UNSIGNED_BYTE) {
            throw new IOException(file + ": offset 2: unsupported IDX element type 0x" + Integer.toHexString(type)
                    + " (only 0x08, unsigned byte)");
        }
        if (rank < 1 || rank > 4) {
            throw new IOException(file + ": offset 3: IDX rank must be 1 to 4, got " + rank);
        }
        offset = 4;
        int[] shape = new int[rank];
        long elements = 1;
        for (int i = 0; i < rank; i++) {
            int size = readInt(file, in, offset);
            if (size < 0) {
                throw new IOException(file + ": offset " + offset + ": negative dimension " + size);
            }
            shape[i] = size;
            elements *= size;
            if (elements > MAX_ELEMENTS) {
                throw new IOException(file + ": offset " + offset + ": shape " + Arrays.toString(shape)
                        + " is larger than " + MAX_ELEMENTS + " elements");
            }
            offset += 4;
        }
        if (elements > available - offset) {
            throw new IOException(file + ": offset " + available + ": truncated: the header's shape "
                    + Arrays.toString(shape) + " needs " + elements + " data bytes, the file has "
                    + (available - offset));
        }
        byte[] data = new byte[(int) Math.min(elements, FIRST_CHUNK)];
        int read = 0;
        while (read < elements) {
            if (read == data.length) {
                data = Arrays.copyOf(data, (int) Math.min(elements, 2L * data.length));
            }
            int n = in.readNBytes(data, read, data.length - read);
            read += n;
            if (n == 0) {
                throw new IOException(file + ": offset " + (offset + read) + ": truncated: the header's shape "
                        + Arrays.toString(shape) + " needs " + elements + " data bytes, the file has " + read);
            }
        }
        // Reading on to the end also makes a gzip stream check its CRC and length trailer.
        if (in.read() >= 0) {
            throw new IOException(file + ": offset " + (offset + elements) + ": bytes after the data the header's "
                    + "shape " + Arrays.toString(shape) + " describes");
        }
        return new IdxFile(shape, data);
    }

    private static int readByte(Path file, DataInputStream in, long offset) throws IOException {
        int b = in.read();
        if (b < 0) {
            throw new IOException(file + ": offset " + offset + ": truncated IDX header");
        }
        return b;
    }

    private static int readUnsignedShort(Path file, DataInputStream in, long offset) throws IOException {
        try {
            return in.readUnsignedShort();
        } catch (EOFException e) {
            throw new IOException(file + ": offset " + offset + ": truncated IDX header", e);
        }
    }

    private static int readInt(Path file, DataInputStream in, long offset) throws IOException {
        try {
            return in.readInt();
        } catch (EOFException e) {
            throw new IOException(file + ": offset " + offset + ": truncated IDX header", e);
        }
    }

    /** Element i as an unsigned value 0..255. */
    public int unsigned(int i) {
        return data[i] & 0xff;
    }
}
