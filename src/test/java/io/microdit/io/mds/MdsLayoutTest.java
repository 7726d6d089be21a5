package io.microdit.io.mds;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The bytes of the MDS format, built here by hand from the specification (streaming/base/format/mds: writer.py's
 * {@code encode_joint_shard} and {@code encode_sample}, encodings.py, base/writer.py's {@code get_config} and
 * index), against what {@link MdsWriter} writes and what {@link MdsStream} reads.
 */
class MdsLayoutTest {
    @TempDir
    Path temp;

    /** The writer's config as Python's json.dumps(sort_keys=True) writes it, typed out by hand. */
    private static final String CONFIG = "{\"column_encodings\": [\"int\", \"str\", \"ndarray\"], \"column_names\": "
            + "[\"id\", \"text\", \"values\"], \"column_sizes\": [8, null, null], \"compression\": null, "
            + "\"format\": \"mds\", \"hashes\": [], \"size_limit\": 67108864, \"version\": 2}";

    private static final class Bytes extends ByteArrayOutputStream {
        Bytes u32(long v) {
            for (int i = 0; i < 4; i++) {
                write((int) (v >>> (8 * i)));
            }
            return this;
        }

        Bytes i64(long v) {
            for (int i = 0; i < 8; i++) {
                write((int) (v >>> (8 * i)));
            }
            return this;
        }

        Bytes raw(int... values) {
            for (int v : values) {
                write(v);
            }
            return this;
        }

        Bytes text(String s) {
            writeBytes(s.getBytes(StandardCharsets.UTF_8));
            return this;
        }
    }

    /** Two samples: (id 7, "hé", float32 [2, 3] 0…5) and (id -2, "", uint16 [300] 0…299). */
    private static byte[] expectedShard() {
        Bytes sample0 = new Bytes();
        // the variable-size columns' sizes first: text 3 bytes (h, é in UTF-8), values 1 + 1 + 2 + 24
        sample0.u32(3).u32(28).i64(7).text("hé");
        sample0.raw(34, 2 << 2, 2, 3); // dtype float32 = 34; ndim 2, dimensions as uint8; [2, 3]
        for (int i = 0; i < 6; i++) {
            sample0.u32(Float.floatToRawIntBits(i));
        }
        Bytes sample1 = new Bytes();
        sample1.u32(0).u32(1 + 1 + 2 + 600).i64(-2);
        sample1.raw(16, 1 << 2 | 1, 300 & 0xff, 300 >> 8); // uint16 = 16; ndim 1, dimensions as uint16: 300
        for (int i = 0; i < 300; i++) {
            sample1.raw(i & 0xff, i >> 8);
        }
        int header = 4 + 4 * 3 + CONFIG.length();
        Bytes shard = new Bytes();
        shard.u32(2).u32(header).u32(header + sample0.size()).u32(header + sample0.size() + sample1.size());
        shard.text(CONFIG);
        shard.writeBytes(sample0.toByteArray());
        shard.writeBytes(sample1.toByteArray());
        return shard.toByteArray();
    }

    private static Map<String, Object> sample(long id, String text, MdsArray values) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("values", values);
        m.put("text", text);
        m.put("id", id);
        return m;
    }

    private static MdsArray floats() {
        byte[] b = new byte[24];
        for (int i = 0; i < 6; i++) {
            int bits = Float.floatToRawIntBits(i);
            for (int k = 0; k < 4; k++) {
                b[4 * i + k] = (byte) (bits >>> (8 * k));
            }
        }
        return new MdsArray("float32", new long[] {2, 3}, b);
    }

    private static MdsArray shorts() {
        byte[] b = new byte[600];
        for (int i = 0; i < 300; i++) {
            b[2 * i] = (byte) i;
            b[2 * i + 1] = (byte) (i >> 8);
        }
        return new MdsArray("uint16", new long[] {300}, b);
    }

    @Test
    void writerWritesTheSpecifiedShardAndIndexByteForByte() throws IOException {
        Map<String, String> columns = new LinkedHashMap<>();
        columns.put("values", "ndarray");
        columns.put("text", "str");
        columns.put("id", "int");
        try (MdsWriter writer = new MdsWriter(temp, columns, null, List.of(), MdsWriter.DEFAULT_SIZE_LIMIT)) {
            writer.write(sample(7, "hé", floats()));
            writer.write(sample(-2, "", shorts()));
        }
        byte[] expected = expectedShard();
        assertArrayEquals(expected, Files.readAllBytes(temp.resolve("shard.00000.mds")));
        String index = "{\"shards\": [{\"column_encodings\": [\"int\", \"str\", \"ndarray\"], \"column_names\": "
                + "[\"id\", \"text\", \"values\"], \"column_sizes\": [8, null, null], \"compression\": null, "
                + "\"format\": \"mds\", \"hashes\": [], \"raw_data\": {\"basename\": \"shard.00000.mds\", "
                + "\"bytes\": " + expected.length + ", \"hashes\": {}}, \"samples\": 2, \"size_limit\": 67108864, "
                + "\"version\": 2, \"zip_data\": null}], \"version\": 2}";
        assertEquals(index, Files.readString(temp.resolve("index.json")));
    }

    @Test
    void readerReadsAHandMadeShard() throws IOException {
        byte[] shard = expectedShard();
        Files.write(temp.resolve("shard.00000.mds"), shard);
        String sha1 = HexFormat.of().formatHex(sha1(shard));
        Files.writeString(temp.resolve("index.json"), "{\"shards\": [{\"column_encodings\": [\"int\", \"str\", "
                + "\"ndarray\"], \"column_names\": [\"id\", \"text\", \"values\"], \"column_sizes\": [8, null, null], "
                + "\"compression\": null, \"format\": \"mds\", \"hashes\": [\"sha1\"], \"raw_data\": {\"basename\": "
                + "\"shard.00000.mds\", \"bytes\": " + shard.length + ", \"hashes\": {\"sha1\": \"" + sha1 + "\"}}, "
                + "\"samples\": 2, \"size_limit\": 67108864, \"version\": 2, \"zip_data\": null}], \"version\": 2}");
        try (MdsStream stream = MdsStream.open(temp)) {
            assertEquals(2, stream.size());
            assertEquals(List.of("id", "text", "values"), stream.columnNames());
            assertEquals(Map.of("id", 7L, "text", "hé", "values", floats()), stream.read(0));
            assertEquals(Map.of("id", -2L, "text", "", "values", shorts()), stream.read(1));
            assertEquals(List.of(), stream.uncheckedHashes());
        }
    }

    private static byte[] sha1(byte[] data) {
        try {
            return java.security.MessageDigest.getInstance("SHA-1").digest(data);
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new AssertionError(e);
        }
    }

    @Test
    void fixedNdarrayAndScalarEncodingsStoreOnlyTheValues() {
        byte[] values = {1, 2, 3, 4};
        assertArrayEquals(values, MdsEncoding.parse("ndarray:uint8:2,2").encode(new MdsArray("uint8",
                new long[] {2, 2}, values)));
        assertEquals(4, MdsEncoding.parse("ndarray:uint8:2,2").fixedSize());
        // a fixed dtype drops the dtype byte only: ndim 1 with uint8 dimensions, then [4]
        assertArrayEquals(new byte[] {1 << 2, 4, 1, 2, 3, 4}, MdsEncoding.parse("ndarray:uint8").encode(
                new MdsArray("uint8", new long[] {4}, values)));
        assertArrayEquals(new byte[] {0, 0x3c}, MdsEncoding.parse("float16").encode(1.0));
        assertArrayEquals(new byte[] {(byte) 0xfe, (byte) 0xff}, MdsEncoding.parse("int16").encode(-2L));
        assertArrayEquals(new byte[] {(byte) 0xff, 0, 0, 0}, MdsEncoding.parse("uint32").encode(255L));
        assertEquals(4294967295L, MdsEncoding.parse("uint32").decode(MemorySegment.ofArray(new byte[] {-1, -1, -1,
                -1})));
    }

    @Test
    void xxh64MatchesTheReferenceValuesAndZstdsFrameChecksums() {
        assertEquals(0xef46db3751d8e999L, MdsHashes.xxh64(MemorySegment.ofArray(new byte[0])));
        assertEquals(0x44bc2cf5ad770999L, MdsHashes.xxh64(MemorySegment.ofArray("abc".getBytes(
                StandardCharsets.US_ASCII))));
        // A zstd frame with a checksum ends with the low 32 bits of the content's XXH64 (seed 0), little-endian:
        // an independent implementation to check every length class (stripes, 8-, 4- and 1-byte tails) against.
        Random random = new Random(17);
        for (int length : new int[] {1, 3, 4, 7, 8, 31, 32, 33, 63, 64, 100, 1027}) {
            byte[] data = new byte[length];
            random.nextBytes(data);
            byte[] frame = new byte[(int) com.github.luben.zstd.Zstd.compressBound(length)];
            long n = com.github.luben.zstd.Zstd.compress(frame, data, 3, true);
            int stored = (frame[(int) n - 4] & 0xff) | (frame[(int) n - 3] & 0xff) << 8
                    | (frame[(int) n - 2] & 0xff) << 16 | (frame[(int) n - 1] & 0xff) << 24;
            assertEquals(stored, (int) MdsHashes.xxh64(MemorySegment.ofArray(data)), "length " + length);
        }
    }
}
