package io.microdit.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.ByteArrayInputStream;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.FileTime;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Random;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class NativeLibraryCacheTest {
    private static final String NAME = "libmicrodit_test.so";

    @TempDir
    Path root;

    private static byte[] randomLibrary(long seed) {
        Random random = new Random(seed);
        byte[] bytes = new byte[100_000 + random.nextInt(50_000)];
        random.nextBytes(bytes);
        return bytes;
    }

    /** Opens {@code bytes} and counts how often it was opened. */
    private static Supplier<InputStream> source(byte[] bytes, AtomicInteger opened) {
        return () -> {
            opened.incrementAndGet();
            return new ByteArrayInputStream(bytes);
        };
    }

    private static String sha256(byte[] bytes) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
    }

    private List<Path> filesUnder(Path folder) throws IOException {
        try (Stream<Path> files = Files.walk(folder)) {
            return files.filter(Files::isRegularFile).toList();
        }
    }

    @Test
    void theFolderIsTheContentsHashAndTheFileIsTheContents() throws Exception {
        byte[] first = randomLibrary(1), second = randomLibrary(2);
        Path a = NativeLibraryCache.unpack(NAME, source(first, new AtomicInteger()), root);
        Path b = NativeLibraryCache.unpack(NAME, source(second, new AtomicInteger()), root);
        assertEquals(root.resolve(sha256(first).substring(0, NativeLibraryCache.KEY_DIGITS)).resolve(NAME), a);
        assertEquals(root.resolve(sha256(second).substring(0, NativeLibraryCache.KEY_DIGITS)).resolve(NAME), b);
        assertNotEquals(a.getParent(), b.getParent());
        assertArrayEquals(first, Files.readAllBytes(a));
        assertArrayEquals(second, Files.readAllBytes(b));
        assertEquals(List.of(a, b).stream().sorted().toList(), filesUnder(root).stream().sorted().toList(),
                "no temporary file is left behind");
    }

    @Test
    void aWholeCachedCopyIsReusedWithoutBeingRewritten() throws Exception {
        byte[] library = randomLibrary(3);
        AtomicInteger opened = new AtomicInteger();
        Path first = NativeLibraryCache.unpack(NAME, source(library, opened), root);
        assertEquals(2, opened.get(), "hashed once, written once");
        Object identity = Files.readAttributes(first, BasicFileAttributes.class).fileKey();
        FileTime modified = Files.getLastModifiedTime(first);
        opened.set(0);
        Path second = NativeLibraryCache.unpack(NAME, source(library, opened), root);
        assertEquals(first, second);
        assertEquals(1, opened.get(), "hashed only: the cached copy is not written again");
        assertEquals(identity, Files.readAttributes(second,
                BasicFileAttributes.class).fileKey(), "the same file, not a replacement");
        assertEquals(modified, Files.getLastModifiedTime(second));
    }

    @Test
    void aCorruptedCachedCopyIsFoundByItsHashAndReplaced() throws Exception {
        byte[] library = randomLibrary(4);
        Path cached = NativeLibraryCache.unpack(NAME, source(library, new AtomicInteger()), root);
        byte[] corrupted = library.clone();
        corrupted[corrupted.length / 2] ^= 0x10;
        Files.write(cached, corrupted);
        AtomicInteger opened = new AtomicInteger();
        assertEquals(cached, NativeLibraryCache.unpack(NAME, source(library, opened), root));
        assertEquals(2, opened.get(), "written again");
        assertArrayEquals(library, Files.readAllBytes(cached));

        Files.write(cached, new byte[] {1, 2, 3}); // truncated, as a crash of a writer that wrote in place leaves it
        assertArrayEquals(library, Files.readAllBytes(NativeLibraryCache.unpack(NAME,
                source(library, new AtomicInteger()), root)));
    }

    @Test
    void aWriteThatFailsLeavesNoFileUnderTheLibrarysName() throws Exception {
        byte[] library = randomLibrary(5);
        AtomicInteger opened = new AtomicInteger();
        // The first opening (hashing) reads everything; the second (the write) fails halfway through.
        Supplier<InputStream> failingWrite = () -> {
            InputStream whole = new ByteArrayInputStream(library);
            if (opened.incrementAndGet() == 1) {
                return whole;
            }
            return new FilterInputStream(whole) {
                private int read;

                @Override
                public int read(byte[] buffer, int offset, int length) throws IOException {
                    if (read > library.length / 2) {
                        throw new IOException("disk full (injected)");
                    }
                    int n = super.read(buffer, offset, Math.min(length, 4096));
                    read += Math.max(n, 0);
                    return n;
                }
            };
        };
        IllegalStateException error = assertThrows(IllegalStateException.class,
                () -> NativeLibraryCache.unpack(NAME, failingWrite, root));
        assertTrue(error.getMessage().contains("disk full (injected)"), error.getMessage());
        assertEquals(List.of(), filesUnder(root), "neither a half-written library nor its temporary file remains");
        Path cached = NativeLibraryCache.unpack(NAME, source(library, new AtomicInteger()), root);
        assertArrayEquals(library, Files.readAllBytes(cached));
    }

    @Test
    void processesUnpackingAtOnceAllGetTheWholeLibrary() throws Exception {
        byte[] library = randomLibrary(6);
        int writers = 8;
        ExecutorService pool = Executors.newFixedThreadPool(writers);
        try {
            List<Callable<Path>> tasks = new ArrayList<>();
            for (int i = 0; i < writers; i++) {
                tasks.add(() -> {
                    Path path = NativeLibraryCache.unpack(NAME, source(library, new AtomicInteger()), root);
                    // Whoever replaced the file last, any reader at any moment sees a whole copy.
                    assertArrayEquals(library, Files.readAllBytes(path));
                    return path;
                });
            }
            List<Path> paths = new ArrayList<>();
            for (Future<Path> result : pool.invokeAll(tasks)) {
                paths.add(result.get());
            }
            assertEquals(1, paths.stream().distinct().count());
            assertEquals(List.of(paths.getFirst()), filesUnder(root));
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void aCacheThatCannotBeWrittenIsAnErrorNamingIt() throws Exception {
        // A regular file where the cache folder should be: unwritable even for root, unlike a chmod'ed folder.
        Path blocked = root.resolve("blocked");
        Files.writeString(blocked, "not a folder");
        byte[] library = randomLibrary(7);
        IllegalStateException error = assertThrows(IllegalStateException.class,
                () -> NativeLibraryCache.unpack(NAME, source(library, new AtomicInteger()), blocked));
        Path folder = blocked.resolve(sha256(library).substring(0, NativeLibraryCache.KEY_DIGITS));
        assertTrue(error.getMessage().contains("cache folder " + folder), error.getMessage());
        assertTrue(error.getMessage().contains("-Dmicrodit.native.cache"), error.getMessage());
        assertTrue(error.getMessage().contains("-Dmicrodit.native.dir"), error.getMessage());
    }

    @Test
    void theBuildPutsTheEmulatorLibraryIntoTheJar() throws Exception {
        String directory = System.getProperty("microdit.native.dir");
        assumeTrue(directory != null && Files.isRegularFile(Path.of(directory, NativeLibrary.EMULATOR_LIBRARY)),
                "the emulator was not built");
        try (InputStream in = NativeLibrary.class.getResourceAsStream(NativeLibrary.RESOURCE_FOLDER
                + NativeLibrary.EMULATOR_LIBRARY)) {
            assertFalse(in == null, "no resource " + NativeLibrary.RESOURCE_FOLDER + NativeLibrary.EMULATOR_LIBRARY);
            assertArrayEquals(Files.readAllBytes(Path.of(directory, NativeLibrary.EMULATOR_LIBRARY)),
                    in.readAllBytes());
        }
    }
}
