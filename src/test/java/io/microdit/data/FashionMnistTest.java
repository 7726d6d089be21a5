package io.microdit.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.io.IdxFile;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class FashionMnistTest {
    @TempDir
    Path temp;

    @Test
    void loadsTheRealTestSplitPaddedAndScaled() throws IOException {
        FashionMnist.Split test = FashionMnist.test(FashionMnist.locate(null));
        assertEquals(10_000, test.count());
        int[] perClass = new int[10];
        for (int label : test.labels()) {
            perClass[label]++;
        }
        for (int c = 0; c < 10; c++) {
            assertEquals(1000, perClass[c], "Fashion-MNIST's test split has 1000 images per class");
        }
        float min = Float.MAX_VALUE, max = -Float.MAX_VALUE;
        for (float v : test.images()) {
            min = Math.min(min, v);
            max = Math.max(max, v);
        }
        assertEquals(-1f, min);
        assertEquals(1f, max);
        float[] first = test.image(0);
        for (int x = 0; x < 32; x++) {
            assertEquals(-1f, first[x], "top padding row is background");
            assertEquals(-1f, first[31 * 32 + x], "bottom padding row is background");
        }
        double mean = 0;
        for (int i = 2 * 32; i < 30 * 32; i++) {
            mean += first[i];
        }
        assertTrue(mean / (28 * 32) > -0.99, "the first image has content");
    }

    @Test
    void readsPlainAndGzipIdx() throws IOException {
        byte[] file = idx(0, 0x08, 2, new int[] {2, 3}, new byte[] {1, 2, 3, 4, 5, (byte) 250});
        Path plain = Files.write(temp.resolve("plain-idx2-ubyte"), file);
        Path gz = temp.resolve("zipped-idx2-ubyte.gz");
        try (OutputStream out = new GZIPOutputStream(Files.newOutputStream(gz))) {
            out.write(file);
        }
        for (Path p : new Path[] {plain, gz}) {
            IdxFile idx = IdxFile.read(p);
            assertEquals(2, idx.shape()[0]);
            assertEquals(3, idx.shape()[1]);
            assertEquals(250, idx.unsigned(5));
        }
    }

    @Test
    void malformedFilesNameTheFileAndOffset() throws IOException {
        assertRejected(idx(0, 0x08, 1, new int[] {10}, new byte[4]), "offset 12", "truncated");
        assertRejected(idx(0x0102, 0x08, 1, new int[] {1}, new byte[1]), "offset 0", "not an IDX file");
        assertRejected(idx(0, 0x0d, 1, new int[] {1}, new byte[4]), "offset 2", "element type");
        assertRejected(idx(0, 0x08, 9, new int[] {}, new byte[0]), "offset 3", "rank");
        assertRejected(new byte[] {0, 0, 8}, "offset 3", "truncated IDX header");
        assertRejected(idx(0, 0x08, 2, new int[] {1 << 20, 1 << 20}, new byte[0]), "offset 8", "larger than");
        Path corrupt = Files.write(temp.resolve("corrupt.gz"), new byte[] {0x1f, (byte) 0x8b, 8, 0, 1, 2, 3, 4, 5});
        IOException e = assertThrows(IOException.class, () -> IdxFile.read(corrupt));
        assertTrue(e.getMessage().contains("corrupt.gz"), e.getMessage());
    }

    @Test
    void missingDataSaysWhereItLookedAndHowToGetIt() {
        IOException e = assertThrows(IOException.class, () -> FashionMnist.locate(temp));
        assertTrue(e.getMessage().contains(temp.toString()), e.getMessage());
        assertTrue(e.getMessage().contains("apt-get install dataset-fashion-mnist"), e.getMessage());
    }

    private void assertRejected(byte[] content, String... fragments) throws IOException {
        Path file = Files.write(Files.createTempFile(temp, "bad", "-idx"), content);
        IOException e = assertThrows(IOException.class, () -> IdxFile.read(file));
        assertTrue(e.getMessage().startsWith(file.toString()), e.getMessage());
        for (String fragment : fragments) {
            assertTrue(e.getMessage().contains(fragment), e.getMessage());
        }
    }

    private static byte[] idx(int zero, int type, int rank, int[] dims, byte[] data) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteBuffer header = ByteBuffer.allocate(4 + 4 * dims.length);
        header.putShort((short) zero).put((byte) type).put((byte) rank);
        for (int d : dims) {
            header.putInt(d);
        }
        out.writeBytes(header.array());
        out.writeBytes(data);
        return out.toByteArray();
    }
}
