package io.microdit.io.mds;

import com.github.luben.zstd.Zstd;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Shard compression: none, or zstd as MDS names it ({@code zstd} at level 3, or {@code zstd:L} for a level 1–22),
 * through zstd-jni. A compressed shard is the zstd frame of the whole raw shard file, stored as
 * {@code <raw basename>.zstd}.
 */
final class MdsCompression {
    static final String ZSTD = "zstd";
    private static final int DEFAULT_LEVEL = 3;

    private MdsCompression() {
    }

    /** The level {@code codec} names, or an error for a codec this reader does not take. */
    static int check(String codec) {
        if (codec.equals(ZSTD)) {
            return DEFAULT_LEVEL;
        }
        if (codec.startsWith(ZSTD + ":")) {
            try {
                int level = Integer.parseInt(codec.substring(ZSTD.length() + 1));
                if (level >= 1 && level <= 22) {
                    return level;
                }
            } catch (NumberFormatException e) {
                // falls through to the error below, which names what is accepted
            }
        }
        throw new IllegalArgumentException("compression '" + codec + "' is not supported (none, zstd or zstd:1 … "
                + "zstd:22)");
    }

    /** The file extension of a shard compressed with {@code codec}. */
    static String extension(String codec) {
        check(codec);
        return ZSTD;
    }

    static byte[] compress(String codec, byte[] raw) {
        return Zstd.compress(raw, check(codec));
    }

    /**
     * {@code zip} decompressed into memory of {@code arena}, which must come to exactly {@code rawBytes} (the index's
     * {@code raw_data.bytes}); checked against the frame's own size before anything is allocated. Errors start with
     * {@code where} (the shard) and name the index as {@code index} says it.
     */
    static MemorySegment decompress(MemorySegment zip, long rawBytes, Arena arena, String where, String index)
            throws MdsException {
        if (zip.byteSize() > Integer.MAX_VALUE || rawBytes > Integer.MAX_VALUE) {
            throw new MdsException(where + ": zstd shards over 2 GiB are not supported (raw " + rawBytes
                    + " bytes, compressed " + zip.byteSize() + ")");
        }
        int zipSize = (int) zip.byteSize();
        long declared = Zstd.getDirectByteBufferFrameContentSize(zip.asByteBuffer(), 0, zipSize);
        if (declared != rawBytes) {
            throw new MdsException(where + ": the zstd frame " + (declared < 0 ? "is not readable"
                    : "holds " + declared + " bytes") + ", " + index + " says raw_data has " + rawBytes);
        }
        MemorySegment raw = arena.allocate(Math.max(1, rawBytes));
        long n = Zstd.decompressDirectByteBuffer(raw.asByteBuffer(), 0, (int) rawBytes, zip.asByteBuffer(), 0, zipSize);
        if (Zstd.isError(n) || n != rawBytes) {
            throw new MdsException(where + ": zstd: " + (Zstd.isError(n) ? Zstd.getErrorName(n)
                    : "decompressed to " + n + " bytes, expected " + rawBytes));
        }
        return raw.asSlice(0, rawBytes);
    }
}
