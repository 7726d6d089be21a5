package io.microdit.io.mds;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/**
 * The file digests an MDS index may list, by their Python names: hashlib's {@code md5}, {@code sha1},
 * {@code sha224} … {@code sha512}, {@code sha3_224} … {@code sha3_512} (through {@link MessageDigest}), and
 * xxhash's {@code xxh64} (seed 0, hex of the big-endian value, as {@code xxhash.xxh64(data).hexdigest()}).
 * Other algorithms (blake2, xxh32, xxh3, xxh128) are reported as not checked rather than refused: a digest is an
 * integrity check on top of the format, not part of it.
 */
final class MdsHashes {
    private static final Map<String, String> DIGESTS = Map.ofEntries(Map.entry("md5", "MD5"),
            Map.entry("sha1", "SHA-1"), Map.entry("sha224", "SHA-224"), Map.entry("sha256", "SHA-256"),
            Map.entry("sha384", "SHA-384"), Map.entry("sha512", "SHA-512"), Map.entry("sha3_224", "SHA3-224"),
            Map.entry("sha3_256", "SHA3-256"), Map.entry("sha3_384", "SHA3-384"), Map.entry("sha3_512", "SHA3-512"));
    static final String XXH64 = "xxh64";
    private static final int CHUNK = 1 << 20;

    private MdsHashes() {
    }

    static boolean supported(String algorithm) {
        return DIGESTS.containsKey(algorithm) || algorithm.equals(XXH64);
    }

    /** The names the writer accepts. */
    static List<String> supportedNames() {
        return Stream.concat(DIGESTS.keySet().stream(), Stream.of(XXH64))
                .sorted().toList();
    }

    /** The lowercase hex digest of {@code data} by {@code algorithm}, which must be {@link #supported}. */
    static String digest(String algorithm, MemorySegment data) {
        if (algorithm.equals(XXH64)) {
            return HexFormat.of().toHexDigits(xxh64(data));
        }
        MessageDigest digest;
        try {
            digest = MessageDigest.getInstance(DIGESTS.get(algorithm));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("this JDK lacks " + DIGESTS.get(algorithm), e);
        }
        for (long at = 0; at < data.byteSize(); at += CHUNK) {
            digest.update(data.asSlice(at, Math.min(CHUNK, data.byteSize() - at)).asByteBuffer());
        }
        return HexFormat.of().formatHex(digest.digest());
    }

    private static final long P1 = 0x9E3779B185EBCA87L;
    private static final long P2 = 0xC2B2AE3D27D4EB4FL;
    private static final long P3 = 0x165667B19E3779F9L;
    private static final long P4 = 0x85EBCA77C2B2AE63L;
    private static final long P5 = 0x27D4EB2F165667C5L;
    private static final ValueLayout.OfLong LONG = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt INT = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** XXH64 with seed 0 (the xxHash specification's algorithm). */
    static long xxh64(MemorySegment data) {
        long length = data.byteSize();
        long at = 0;
        long h;
        if (length >= 32) {
            long v1 = P1 + P2;
            long v2 = P2;
            long v3 = 0;
            long v4 = -P1;
            for (; at <= length - 32; at += 32) {
                v1 = round(v1, data.get(LONG, at));
                v2 = round(v2, data.get(LONG, at + 8));
                v3 = round(v3, data.get(LONG, at + 16));
                v4 = round(v4, data.get(LONG, at + 24));
            }
            h = Long.rotateLeft(v1, 1) + Long.rotateLeft(v2, 7) + Long.rotateLeft(v3, 12) + Long.rotateLeft(v4, 18);
            h = merge(h, v1);
            h = merge(h, v2);
            h = merge(h, v3);
            h = merge(h, v4);
        } else {
            h = P5;
        }
        h += length;
        for (; at + 8 <= length; at += 8) {
            h ^= round(0, data.get(LONG, at));
            h = Long.rotateLeft(h, 27) * P1 + P4;
        }
        if (at + 4 <= length) {
            h ^= (data.get(INT, at) & 0xffffffffL) * P1;
            h = Long.rotateLeft(h, 23) * P2 + P3;
            at += 4;
        }
        for (; at < length; at++) {
            h ^= (data.get(ValueLayout.JAVA_BYTE, at) & 0xffL) * P5;
            h = Long.rotateLeft(h, 11) * P1;
        }
        h ^= h >>> 33;
        h *= P2;
        h ^= h >>> 29;
        h *= P3;
        h ^= h >>> 32;
        return h;
    }

    private static long round(long acc, long lane) {
        return Long.rotateLeft(acc + lane * P2, 31) * P1;
    }

    private static long merge(long acc, long v) {
        return (acc ^ round(0, v)) * P1 + P4;
    }
}
