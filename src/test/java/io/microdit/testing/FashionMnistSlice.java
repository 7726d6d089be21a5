package io.microdit.testing;

import io.microdit.data.FashionMnist;
import java.io.DataInputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.zip.GZIPInputStream;

/**
 * The first images of Fashion-MNIST's training split as IDX files of their own, for training runs in child processes:
 * each process that reads the whole split unpacks 60,000 images into 245 MB of floats before its first step, which
 * made start-up most of a short child run's time.
 */
public final class FashionMnistSlice {
    private FashionMnistSlice() {
    }

    /** Writes the first {@code count} training images and labels into {@code directory}, which it returns. */
    public static Path write(Path directory, int count) throws IOException {
        Path source = FashionMnist.locate(null);
        Files.createDirectories(directory);
        copy(source.resolve("train-images-idx3-ubyte.gz"), directory.resolve("train-images-idx3-ubyte"), 16,
                count, 28 * 28);
        copy(source.resolve("train-labels-idx1-ubyte.gz"), directory.resolve("train-labels-idx1-ubyte"), 8, count, 1);
        return directory;
    }

    /** The header with its count (the first dimension, at offset 4) set to {@code count}, then that many items. */
    private static void copy(Path from, Path to, int headerBytes, int count, int itemBytes) throws IOException {
        try (DataInputStream in = new DataInputStream(new GZIPInputStream(Files.newInputStream(from)))) {
            byte[] bytes = new byte[headerBytes + count * itemBytes];
            in.readFully(bytes);
            ByteBuffer.wrap(bytes).putInt(4, count);
            Files.write(to, bytes);
        }
    }
}
