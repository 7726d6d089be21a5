package io.microdit.io.mds;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Random samples of every supported encoding written by {@link MdsWriter} and read back by {@link MdsStream}. */
class MdsRoundTripTest {
    @TempDir
    Path temp;

    static final Map<String, String> COLUMNS = new LinkedHashMap<>();

    static {
        for (String e : List.of("bytes", "str", "int", "uint8", "uint16", "uint32", "uint64", "int8", "int16",
                "int32", "int64", "float16", "float32", "float64", "ndarray", "ndarray:float16",
                "ndarray:int32:3,2", "ndarray:float64:5")) {
            COLUMNS.put("c_" + e.replace(':', '_').replace(',', '_'), e);
        }
    }

    static Object randomValue(String encoding, Random random) {
        return switch (encoding) {
            case "bytes" -> {
                byte[] b = new byte[random.nextInt(40)];
                random.nextBytes(b);
                yield b;
            }
            case "str" -> {
                StringBuilder s = new StringBuilder();
                int n = random.nextInt(12);
                for (int i = 0; i < n; i++) {
                    s.appendCodePoint(random.nextBoolean() ? 'a' + random.nextInt(26) : 0x3b1 + random.nextInt(20));
                }
                yield s.toString();
            }
            case "int", "int64", "uint64" -> random.nextLong();
            case "uint8" -> (long) random.nextInt(256);
            case "uint16" -> (long) random.nextInt(65536);
            case "uint32" -> random.nextLong() >>> 32;
            case "int8" -> (long) (byte) random.nextInt();
            case "int16" -> (long) (short) random.nextInt();
            case "int32" -> (long) random.nextInt();
            // values each width stores exactly, so that equality is the test
            case "float16" -> (double) Float.float16ToFloat(Float.floatToFloat16((float) random.nextGaussian()));
            case "float32" -> (double) (float) random.nextGaussian();
            case "float64" -> random.nextGaussian();
            case "ndarray" -> array(random, List.of("uint8", "int16", "float32", "int64", "float64")
                    .get(random.nextInt(5)), random.nextBoolean() ? new long[] {1 + random.nextInt(3),
                    1 + random.nextInt(300)} : new long[] {1 + random.nextInt(4)});
            case "ndarray:float16" -> array(random, "float16", new long[] {1 + random.nextInt(4), 2, 1});
            case "ndarray:int32:3,2" -> array(random, "int32", new long[] {3, 2});
            case "ndarray:float64:5" -> array(random, "float64", new long[] {5});
            default -> throw new AssertionError(encoding);
        };
    }

    static MdsArray array(Random random, String dtype, long[] shape) {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        byte[] values = new byte[(int) n * MdsEncoding.elementBytes(dtype)];
        random.nextBytes(values);
        return new MdsArray(dtype, shape, values);
    }

    static List<Map<String, Object>> samples(int count, Random random) {
        List<Map<String, Object>> out = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            Map<String, Object> sample = new LinkedHashMap<>();
            COLUMNS.forEach((name, encoding) -> sample.put(name, randomValue(encoding, random)));
            out.add(sample);
        }
        return out;
    }

    static void assertSameSample(Map<String, Object> expected, Map<String, Object> actual, String where) {
        assertEquals(expected.keySet(), actual.keySet(), where);
        for (String key : expected.keySet()) {
            Object e = expected.get(key);
            Object a = actual.get(key);
            if (e instanceof byte[] eb) {
                assertTrue(a instanceof byte[] ab && java.util.Arrays.equals(eb, ab), where + " " + key);
            } else {
                assertEquals(e, a, where + " " + key);
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"none", "zstd", "zstd:7"})
    void everyEncodingSurvivesAWriteAndARead(String compression) throws IOException {
        Random random = new Random(compression.hashCode());
        List<Map<String, Object>> samples = samples(57, random);
        String codec = compression.equals("none") ? null : compression;
        // a small size limit, so that the samples spread over several shards
        try (MdsWriter writer = new MdsWriter(temp, COLUMNS, codec, List.of("sha1", "md5", "xxh64"), 3000)) {
            for (Map<String, Object> s : samples) {
                writer.write(s);
            }
        }
        try (Stream<Path> files = Files.list(temp)) {
            List<String> names = files.map(p -> p.getFileName().toString()).sorted().toList();
            assertTrue(names.size() > 3, names.toString());
            for (String name : names) {
                assertTrue(name.equals("index.json") || name.endsWith(codec == null ? ".mds" : ".mds.zstd"), name);
            }
        }
        try (MdsStream stream = MdsStream.open(temp)) {
            assertEquals(samples.size(), stream.size());
            assertEquals(List.copyOf(new java.util.TreeSet<>(COLUMNS.keySet())), stream.columnNames());
            for (int i = 0; i < samples.size(); i++) {
                assertSameSample(samples.get(i), stream.read(i), "sample " + i);
            }
            assertEquals(List.of(), stream.uncheckedHashes());
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"none", "zstd"})
    void aChangedByteFailsTheListedDigest(String compression) throws IOException {
        String codec = compression.equals("none") ? null : compression;
        try (MdsWriter writer = new MdsWriter(temp, COLUMNS, codec, List.of("sha1"), 0)) {
            for (Map<String, Object> s : samples(5, new Random(3))) {
                writer.write(s);
            }
        }
        Path shard = temp.resolve(codec == null ? "shard.00000.mds" : "shard.00000.mds.zstd");
        byte[] bytes = Files.readAllBytes(shard);
        bytes[bytes.length - 1] ^= 1;
        Files.write(shard, bytes);
        MdsException e = assertThrows(MdsException.class, () -> MdsStream.open(temp));
        assertTrue(e.getMessage().contains(shard.toString()) && e.getMessage().contains("sha1"), e.getMessage());
    }

    @ParameterizedTest
    @ValueSource(strings = {"blake2b", "xxh3_64"})
    void anUnsupportedDigestIsReportedNotRefused(String algorithm) throws IOException {
        try (MdsWriter writer = new MdsWriter(temp, Map.of("x", "int"), null, List.of(), 0)) {
            writer.write(Map.of("x", 5L));
        }
        Path index = temp.resolve("index.json");
        Files.writeString(index, Files.readString(index).replace("\"hashes\": {}", "\"hashes\": {\"" + algorithm
                + "\": \"0123\"}"));
        try (MdsStream stream = MdsStream.open(temp)) {
            assertEquals(List.of(temp.resolve("shard.00000.mds") + ": " + algorithm), stream.uncheckedHashes());
            assertEquals(Map.of("x", 5L), stream.read(0));
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"pkl", "jpeg", "ndarray:complex64", "ndarray:float32:0,2", "str_int"})
    void unsupportedEncodingsAreRefusedByName(String encoding) throws IOException {
        try (MdsWriter writer = new MdsWriter(temp, Map.of("x", "int"), null, List.of(), 0)) {
            writer.write(Map.of("x", 5L));
        }
        Path index = temp.resolve("index.json");
        String size = encoding.equals("ndarray:float32:0,2") ? "0" : "null";
        Files.writeString(index, Files.readString(index).replace("[\"int\"]", "[\"" + encoding + "\"]")
                .replace("\"column_sizes\": [8]", "\"column_sizes\": [" + size + "]"));
        MdsException e = assertThrows(MdsException.class, () -> MdsStream.open(temp));
        assertTrue(e.getMessage().contains("index.json") && e.getMessage().contains(encoding), e.getMessage());
        assertFalse(e.getMessage().contains("null pointer"), e.getMessage());
    }
}
