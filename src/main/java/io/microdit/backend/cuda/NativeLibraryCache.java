package io.microdit.backend.cuda;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.function.Supplier;

/**
 * Unpacks a native library carried inside the jar into a per-user cache, so that a jar taken from a Maven
 * repository works on its own: {@code dlopen} needs a file. Each library goes to
 * {@code <cache>/<first 16 hex digits of its SHA-256>/<name>}: a new build gets a new folder, so a process still
 * running an older build keeps its file, and a file already there is used without being rewritten once its hash
 * checks out. A file whose hash does not match (a crash of an older, non-atomic writer, a disk error, an edit) is
 * replaced. Writes go to a temporary file in the same folder and are renamed into place, so processes that unpack
 * the same library at once each see either no file or a whole one; all write the same bytes.
 */
final class NativeLibraryCache {
    /** Hex digits of the hash that name the folder: 64 bits, far beyond any number of builds on one machine. */
    static final int KEY_DIGITS = 16;

    private NativeLibraryCache() {
    }

    /**
     * The default cache: {@code -Dmicrodit.native.cache}, else {@code $XDG_CACHE_HOME/microdit/native} (the XDG
     * base directory rule: only an absolute value counts), else {@code ~/.cache/microdit/native}.
     */
    static Path defaultRoot() {
        String configured = System.getProperty("microdit.native.cache");
        if (configured != null) {
            return Path.of(configured);
        }
        String xdg = System.getenv("XDG_CACHE_HOME");
        Path base = xdg != null && Path.of(xdg).isAbsolute() ? Path.of(xdg)
                : Path.of(System.getProperty("user.home"), ".cache");
        return base.resolve("microdit").resolve("native");
    }

    /**
     * The cached copy of library {@code name}, whose bytes {@code content} opens (called once to hash them and, when
     * the cache lacks a whole copy, once more to write them), under {@code root}. Throws IllegalStateException
     * naming the folder when the cache cannot be written.
     */
    static Path unpack(String name, Supplier<InputStream> content, Path root) {
        String hash = sha256(content, name);
        Path folder = root.resolve(hash.substring(0, KEY_DIGITS));
        Path target = folder.resolve(name);
        if (Files.isRegularFile(target) && hash.equals(sha256(target))) {
            return target;
        }
        Path temporary = null;
        try {
            Files.createDirectories(folder);
            temporary = Files.createTempFile(folder, name + ".", ".partial");
            try (InputStream in = content.get(); OutputStream out = Files.newOutputStream(temporary)) {
                in.transferTo(out);
            }
            try {
                Files.move(temporary, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException error) {
                // Same folder, so only an odd file system refuses; a plain replace is the best it offers.
                Files.move(temporary, target, StandardCopyOption.REPLACE_EXISTING);
            }
            temporary = null;
        } catch (IOException error) {
            throw new IllegalStateException("cannot unpack the native library " + name + " into the cache folder "
                    + folder + " (" + error + "): make it writable, or set -Dmicrodit.native.cache (or "
                    + "XDG_CACHE_HOME) to a writable folder, or point -Dmicrodit.native.dir at a folder that holds "
                    + name, error);
        } finally {
            if (temporary != null) {
                try {
                    Files.deleteIfExists(temporary);
                } catch (IOException ignored) {
                    // The write already failed and that error is the one to report; a stray .partial is harmless.
                }
            }
        }
        return target;
    }

    private static String sha256(Supplier<InputStream> content, String name) {
        try (InputStream in = content.get()) {
            return digest(in);
        } catch (IOException error) {
            throw new UncheckedIOException("cannot read the native library " + name + " from the jar", error);
        }
    }

    private static String sha256(Path file) {
        try (InputStream in = Files.newInputStream(file)) {
            return digest(in);
        } catch (IOException error) {
            throw new UncheckedIOException("cannot read the cached native library " + file, error);
        }
    }

    private static String digest(InputStream in) throws IOException {
        MessageDigest digest;
        try {
            digest = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException error) {
            throw new AssertionError("every Java platform has SHA-256", error);
        }
        try (DigestInputStream hashing = new DigestInputStream(in, digest)) {
            hashing.transferTo(OutputStream.nullOutputStream());
        }
        return HexFormat.of().formatHex(digest.digest());
    }
}
