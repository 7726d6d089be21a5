package io.microdit.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

class SafetensorsTest {
    @TempDir
    Path directory;

    /** A tensor of random bits: any float pattern (NaN payloads included) must survive bit for bit. */
    private static Tensor randomBits(MemoryScope scope, Random random, DType dtype, int... shape) {
        Tensor t = scope.zeros(dtype, shape);
        MemorySegment segment = t.segment();
        for (long i = 0; i < segment.byteSize(); i++) {
            segment.set(ValueLayout.JAVA_BYTE, i, (byte) random.nextInt());
        }
        return t;
    }

    private static void assertSameBits(Tensor expected, Tensor actual, String name) {
        assertEquals(expected.dtype(), actual.dtype(), name);
        assertArrayEquals(expected.shape(), actual.shape(), name);
        assertEquals(-1, expected.segment().mismatch(actual.segment()), name + " differs at byte");
    }

    @Test
    void roundTripsEveryDTypeBitExactlyWithMetadata() throws IOException {
        Random random = new Random(3);
        Path file = directory.resolve("model.safetensors");
        try (MemoryScope scope = new MemoryScope("write"); MemoryScope readScope = new MemoryScope("read")) {
            Map<String, Tensor> tensors = new LinkedHashMap<>();
            tensors.put("blocks.0.attn.qkv.weight", randomBits(scope, random, DType.F32, 17, 33));
            tensors.put("blocks.0.norm.weight", randomBits(scope, random, DType.BF16, 77));
            tensors.put("ids", randomBits(scope, random, DType.I32, 3, 5));
            tensors.put("odd_bf16", randomBits(scope, random, DType.BF16, 3)); // 6 bytes: tests alignment order
            tensors.put("scalar", Tensor.of(scope, new float[] {1.5f}));
            tensors.put("empty", scope.zeros(DType.F32, 0, 4));
            tensors.put("empty_bf16", scope.zeros(DType.BF16, 0));
            Map<String, String> metadata = Map.of("format", "pt", "step", "1200", "note", "é \"quoted\"\n");
            Safetensors.write(file, tensors, metadata);

            Safetensors.Contents contents = Safetensors.read(file, readScope);
            assertEquals(metadata, contents.metadata());
            assertEquals(tensors.keySet(), contents.tensors().keySet());
            for (Map.Entry<String, Tensor> entry : tensors.entrySet()) {
                assertSameBits(entry.getValue(), contents.tensors().get(entry.getKey()), entry.getKey());
            }
            assertArrayEquals(new int[0], contents.tensors().get("scalar").shape());
            assertEquals(1.5f, contents.tensors().get("scalar").getFloat(0));

            Safetensors.Header header = Safetensors.readHeader(file);
            assertEquals(0, (header.dataStart() - 8) % 8, "header padded to a multiple of 8");
            List<String> order = new ArrayList<>(header.entries().keySet());
            // Element size descending, then by name: every tensor starts aligned to its element size.
            assertEquals(List.of("blocks.0.attn.qkv.weight", "empty", "ids", "scalar", "blocks.0.norm.weight",
                    "empty_bf16", "odd_bf16"), order);
            for (Safetensors.Entry entry : header.entries().values()) {
                int size = entry.dtype().equals("BF16") ? 2 : 4;
                assertEquals(0, entry.begin() % size, entry.toString());
            }
            assertEquals(header.dataStart() + 17 * 33 * 4 + 15 * 4 + 4 + 77 * 2 + 6, Files.size(file));
        }
    }

    @Test
    void headerIsCompactJsonInDataOrderAndWritingIsDeterministic() throws IOException {
        Path first = directory.resolve("a.safetensors");
        Path second = directory.resolve("b.safetensors");
        try (MemoryScope scope = new MemoryScope("write")) {
            Map<String, Tensor> tensors = new LinkedHashMap<>();
            tensors.put("w", Tensor.of(scope, new float[] {1, 2, 3, 4, 5, 6}, 2, 3));
            tensors.put("b", scope.zeros(DType.BF16, 2));
            Safetensors.write(first, tensors, Map.of("z", "1", "a", "2"));
            Map<String, Tensor> reversed = new LinkedHashMap<>();
            reversed.put("b", tensors.get("b"));
            reversed.put("w", tensors.get("w"));
            Safetensors.write(second, reversed, new LinkedHashMap<>(Map.of("a", "2", "z", "1")));
        }
        byte[] bytes = Files.readAllBytes(first);
        assertArrayEquals(bytes, Files.readAllBytes(second));
        long headerLength = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        String header = new String(bytes, 8, (int) headerLength, StandardCharsets.UTF_8);
        assertEquals("{\"__metadata__\":{\"a\":\"2\",\"z\":\"1\"},"
                + "\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                + "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[24,28]}}", header.stripTrailing());
        assertEquals(0, headerLength % 8);
        assertEquals(1f, ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getFloat(8 + (int) headerLength));
    }

    @Test
    void emptyMetadataIsOmittedAndAFileWithoutTensorsIsValid() throws IOException {
        Path file = directory.resolve("empty.safetensors");
        Safetensors.write(file, Map.of(), Map.of());
        byte[] bytes = Files.readAllBytes(file);
        assertEquals("{}      ", new String(bytes, 8, bytes.length - 8, StandardCharsets.UTF_8));
        try (MemoryScope scope = new MemoryScope("read")) {
            Safetensors.Contents contents = Safetensors.read(file, scope);
            assertTrue(contents.tensors().isEmpty());
            assertTrue(contents.metadata().isEmpty());
        }
    }

    @Test
    void readsOneTensorByNameAndListsWithoutLoading() throws IOException {
        Path file = directory.resolve("pick.safetensors");
        Random random = new Random(5);
        try (MemoryScope scope = new MemoryScope("write"); MemoryScope readScope = new MemoryScope("read")) {
            Tensor a = randomBits(scope, random, DType.F32, 4, 5);
            Tensor b = randomBits(scope, random, DType.I32, 7);
            Safetensors.write(file, Map.of("a", a, "b", b), Map.of());
            long before = readScope.ownedBytes();
            Safetensors.Header header = Safetensors.readHeader(file);
            assertEquals(before, readScope.ownedBytes());
            assertArrayEquals(new int[] {4, 5}, header.entries().get("a").shape());
            assertEquals("I32", header.entries().get("b").dtype());
            assertEquals(28, header.entries().get("b").byteSize());
            assertSameBits(b, Safetensors.readTensor(file, "b", readScope), "b");
            assertEquals(28, readScope.ownedBytes());
            SafetensorsException missing = assertThrows(SafetensorsException.class,
                    () -> Safetensors.readTensor(file, "c", readScope));
            assertEquals(file + ": no tensor \"c\" (the file has 2 tensors)", missing.getMessage());
        }
    }

    @Test
    void halfPrecisionLoadsAsExactFloats() throws IOException {
        // Every one of the 65536 half bit patterns, against the IEEE binary16 definition evaluated in double.
        byte[] data = new byte[65536 * 2];
        for (int h = 0; h < 65536; h++) {
            data[2 * h] = (byte) h;
            data[2 * h + 1] = (byte) (h >>> 8);
        }
        Path file = craft("halves.safetensors",
                "{\"h\":{\"dtype\":\"F16\",\"shape\":[256,256],\"data_offsets\":[0,131072]}}", data);
        try (MemoryScope scope = new MemoryScope("read")) {
            Tensor t = Safetensors.readTensor(file, "h", scope);
            assertEquals(DType.F32, t.dtype());
            assertArrayEquals(new int[] {256, 256}, t.shape());
            for (int h = 0; h < 65536; h++) {
                float actual = t.getFloat(h);
                int sign = h >>> 15;
                int exponent = (h >>> 10) & 0x1f;
                int mantissa = h & 0x3ff;
                double magnitude = exponent == 0 ? mantissa * Math.pow(2, -24)
                        : (1 + mantissa / 1024.0) * Math.pow(2, exponent - 15);
                if (exponent == 31) {
                    assertTrue(mantissa == 0 ? Float.isInfinite(actual) : Float.isNaN(actual), "half " + h);
                    if (mantissa == 0) {
                        assertEquals(sign == 0 ? Float.POSITIVE_INFINITY : Float.NEGATIVE_INFINITY, actual);
                    }
                } else {
                    float expected = (float) (sign == 0 ? magnitude : -magnitude);
                    assertEquals(Float.floatToRawIntBits(expected), Float.floatToRawIntBits(actual), "half " + h);
                }
            }
            assertEquals(0x1.0p-24f, t.getFloat(0x0001)); // smallest subnormal
            assertEquals(65504f, t.getFloat(0x7bff)); // largest finite
            assertEquals(Float.floatToRawIntBits(-0f), Float.floatToRawIntBits(t.getFloat(0x8000)));
        }
    }

    @Test
    void otherKnownDTypesCanBeListedButNotLoaded() throws IOException {
        Path file = craft("f64.safetensors",
                "{\"d\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]}}", new byte[16]);
        assertEquals("F64", Safetensors.readHeader(file).entries().get("d").dtype());
        try (MemoryScope scope = new MemoryScope("read")) {
            SafetensorsException e = assertThrows(SafetensorsException.class, () -> Safetensors.read(file, scope));
            assertEquals(file + ": tensor \"d\" has dtype F64; microdit loads F32, BF16, I32 and F16 (as F32)",
                    e.getMessage());
            assertEquals(0, scope.ownedBytes(), "nothing loaded before the dtype check");
        }
    }

    // ---------------------------------------------------------------- malformed files

    private Path craft(String name, String header, byte[] data) throws IOException {
        byte[] json = header.getBytes(StandardCharsets.UTF_8);
        return craft(name, json.length, json, data);
    }

    private Path craft(String name, long headerLength, byte[] header, byte[] data) throws IOException {
        ByteBuffer buffer = ByteBuffer.allocate(8 + header.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        buffer.putLong(headerLength).put(header).put(data);
        Path file = directory.resolve(name);
        Files.write(file, buffer.array());
        return file;
    }

    private static final String F32_2X3 = "\"dtype\":\"F32\",\"shape\":[2,3]";

    static Stream<Arguments> malformedHeaders() {
        return Stream.of(
                Arguments.of("not-an-object", "[1, 2]", 0, "header is not a JSON object"),
                Arguments.of("bad-json", "{\"w\": {\"dtype\": \"F32\",}}", 0,
                        "header is not valid JSON: unexpected character '}', expected a string key at character 22"),
                Arguments.of("duplicate-name", "{\"w\":{" + F32_2X3 + ",\"data_offsets\":[0,24]},\"w\":{" + F32_2X3
                        + ",\"data_offsets\":[24,48]}}", 48, "header is not valid JSON: duplicate key \"w\""),
                Arguments.of("entry-not-object", "{\"w\": 5}", 0, "tensor \"w\": entry is not a JSON object"),
                Arguments.of("missing-dtype", "{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
                        "tensor \"w\": missing dtype"),
                Arguments.of("missing-shape", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8,
                        "tensor \"w\": missing shape"),
                Arguments.of("missing-offsets", "{\"w\":{" + F32_2X3 + "}}", 24, "tensor \"w\": missing data_offsets"),
                Arguments.of("unknown-dtype", "{\"w\":{\"dtype\":\"Q7\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
                        "tensor \"w\": unknown dtype \"Q7\""),
                Arguments.of("dtype-not-string", "{\"w\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
                        "tensor \"w\": dtype is not a string: 4"),
                Arguments.of("negative-dim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,-3],\"data_offsets\":[0,8]}}",
                        8, "tensor \"w\": shape dimension -3 is negative"),
                Arguments.of("fractional-dim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}",
                        8, "tensor \"w\": shape dimension 2.5 is not an integer"),
                Arguments.of("string-dim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}",
                        8, "tensor \"w\": shape dimension \"2\" is not an integer"),
                Arguments.of("huge-dim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[3000000000],\"data_offsets\":[0,8]}}",
                        8, "tensor \"w\": shape dimension 3000000000 is larger than 2^31 - 1"),
                Arguments.of("shape-overflow", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2000000000,2000000000,"
                        + "2000000000],\"data_offsets\":[0,8]}}", 8,
                        "tensor \"w\": shape [2000000000, 2000000000, 2000000000] of F32 holds more than 2^63 - 1 bytes"),
                Arguments.of("shape-not-array", "{\"w\":{\"dtype\":\"F32\",\"shape\":6,\"data_offsets\":[0,24]}}", 24,
                        "tensor \"w\": shape is not a JSON array: 6"),
                Arguments.of("size-mismatch", "{\"w\":{" + F32_2X3 + ",\"data_offsets\":[0,20]}}", 20,
                        "tensor \"w\": shape [2, 3] of F32 needs 24 bytes but data_offsets [0, 20] span 20"),
                Arguments.of("reversed-offsets", "{\"w\":{" + F32_2X3 + ",\"data_offsets\":[24,0]}}", 24,
                        "tensor \"w\": data_offsets [24, 0] end before they begin"),
                Arguments.of("three-offsets", "{\"w\":{" + F32_2X3 + ",\"data_offsets\":[0,12,24]}}", 24,
                        "tensor \"w\": data_offsets must be [begin, end], got [0,12,24]"),
                Arguments.of("negative-offset", "{\"w\":{" + F32_2X3 + ",\"data_offsets\":[-24,0]}}", 24,
                        "tensor \"w\": data_offsets [-24,0] are not two non-negative 64-bit integers"),
                Arguments.of("truncated-data", "{\"w\":{" + F32_2X3 + ",\"data_offsets\":[0,24]}}", 23,
                        "tensor \"w\": data_offsets [0, 24] run past the end of the data buffer (23 bytes): "
                                + "the file is truncated"),
                Arguments.of("overlap", "{\"a\":{" + F32_2X3 + ",\"data_offsets\":[0,24]},\"b\":{" + F32_2X3
                        + ",\"data_offsets\":[16,40]}}", 40, "tensors \"a\" [0, 24) and \"b\" [16, 40) overlap"),
                Arguments.of("gap", "{\"a\":{" + F32_2X3 + ",\"data_offsets\":[0,24]},\"b\":{" + F32_2X3
                        + ",\"data_offsets\":[32,56]}}", 56,
                        "bytes [24, 32) of the data buffer belong to no tensor (gaps are not allowed)"),
                Arguments.of("leading-gap", "{\"a\":{" + F32_2X3 + ",\"data_offsets\":[4,28]}}", 28,
                        "bytes [0, 4) of the data buffer belong to no tensor (gaps are not allowed)"),
                Arguments.of("trailing-bytes", "{\"a\":{" + F32_2X3 + ",\"data_offsets\":[0,24]}}", 30,
                        "the data buffer has 6 bytes after the last tensor"),
                Arguments.of("metadata-not-string", "{\"__metadata__\":{\"step\":12}}", 0,
                        "__metadata__ value of \"step\" is not a string: 12"),
                Arguments.of("metadata-not-object", "{\"__metadata__\":[\"a\"]}", 0,
                        "__metadata__ is not a JSON object"));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("malformedHeaders")
    void malformedHeadersAreRejectedWithTheFileAndTheProblem(String name, String header, int dataBytes,
            String problem) throws IOException {
        Path file = craft(name + ".safetensors", header, new byte[dataBytes]);
        assertRejected(file, problem);
    }

    private static void assertRejected(Path file, String problem) {
        try (MemoryScope scope = new MemoryScope("read")) {
            SafetensorsException e = assertThrows(SafetensorsException.class, () -> Safetensors.read(file, scope));
            assertTrue(e.getMessage().startsWith(file + ": "), e.getMessage());
            assertTrue(e.problem().startsWith(problem), "expected <" + problem + "> got <" + e.problem() + ">");
            assertEquals(file, e.file());
            SafetensorsException listing = assertThrows(SafetensorsException.class,
                    () -> Safetensors.readHeader(file));
            assertEquals(e.getMessage(), listing.getMessage());
            assertEquals(0, scope.ownedBytes(), "nothing allocated for a rejected file");
        }
    }

    @Test
    void filesShorterThanTheLengthFieldAreRejected() throws IOException {
        Path empty = directory.resolve("empty.safetensors");
        Files.write(empty, new byte[0]);
        assertRejected(empty, "file is 0 bytes, shorter than the 8-byte header length");
        Path seven = directory.resolve("seven.safetensors");
        Files.write(seven, new byte[7]);
        assertRejected(seven, "file is 7 bytes, shorter than the 8-byte header length");
    }

    @Test
    void absurdHeaderLengthsAreRejectedBeforeAnyAllocation() throws IOException {
        Path huge = craft("huge.safetensors", 1L << 40, "{}".getBytes(StandardCharsets.UTF_8), new byte[0]);
        assertRejected(huge, "header length 1099511627776 exceeds the limit of 104857600 bytes");
        Path unsigned = craft("unsigned.safetensors", -1L, "{}".getBytes(StandardCharsets.UTF_8), new byte[0]);
        assertRejected(unsigned, "header length 18446744073709551615 exceeds the limit of 104857600 bytes");
        Path pastEnd = craft("past-end.safetensors", 1000, "{}".getBytes(StandardCharsets.UTF_8), new byte[0]);
        assertRejected(pastEnd, "header length 1000 runs past the end of the file (10 bytes)");
    }

    @Test
    void invalidUtf8IsRejectedWithItsBytePosition() throws IOException {
        byte[] header = {'{', '"', 'a', (byte) 0xC3, (byte) 0x28, '"', ':', '1', '}'};
        Path file = craft("utf8.safetensors", header.length, header, new byte[0]);
        assertRejected(file, "header is not valid UTF-8 at byte 3 of the header");
    }

    @Test
    void aValidFileTruncatedAnywhereIsRejected() throws IOException {
        Path file = directory.resolve("whole.safetensors");
        try (MemoryScope scope = new MemoryScope("write")) {
            Safetensors.write(file, Map.of("w", Tensor.of(scope, new float[] {1, 2, 3}, 3)), Map.of("k", "v"));
        }
        byte[] bytes = Files.readAllBytes(file);
        for (int length = 0; length < bytes.length; length++) {
            Path cut = directory.resolve("cut.safetensors");
            Files.write(cut, java.util.Arrays.copyOf(bytes, length));
            try (MemoryScope scope = new MemoryScope("read")) {
                SafetensorsException e = assertThrows(SafetensorsException.class, () -> Safetensors.read(cut, scope),
                        "truncated to " + length + " bytes");
                assertTrue(e.getMessage().startsWith(cut + ": "), e.getMessage());
            }
        }
    }

    // ---------------------------------------------------------------- atomic writes

    @Test
    void writeReplacesAnExistingFileAndLeavesNoTemporaryFile() throws IOException {
        Path file = directory.resolve("ckpt.safetensors");
        try (MemoryScope scope = new MemoryScope("write"); MemoryScope readScope = new MemoryScope("read")) {
            Safetensors.write(file, Map.of("w", Tensor.of(scope, new float[] {1, 2}, 2)), Map.of("step", "1"));
            Safetensors.write(file, Map.of("w", Tensor.of(scope, new float[] {3, 4, 5}, 3)), Map.of("step", "2"));
            Safetensors.Contents contents = Safetensors.read(file, readScope);
            assertEquals(Map.of("step", "2"), contents.metadata());
            assertArrayEquals(new float[] {3, 4, 5}, contents.tensors().get("w").toFloatArray());
        }
        try (Stream<Path> files = Files.list(directory)) {
            assertEquals(List.of(file), files.toList());
        }
    }

    @Test
    void failedWriteKeepsTheOldFileAndLeavesNoTemporaryFile() throws IOException {
        Path file = directory.resolve("ckpt.safetensors");
        try (MemoryScope scope = new MemoryScope("write")) {
            Safetensors.write(file, Map.of("w", Tensor.of(scope, new float[] {1, 2}, 2)), Map.of());
        }
        byte[] before = Files.readAllBytes(file);
        Tensor dead;
        try (MemoryScope closed = new MemoryScope("closed")) {
            dead = Tensor.of(closed, new float[] {7, 8}, 2);
        }
        try (MemoryScope scope = new MemoryScope("write")) {
            Map<String, Tensor> tensors = new LinkedHashMap<>();
            tensors.put("a", Tensor.of(scope, new float[] {5}, 1));
            tensors.put("z", dead); // fails after the header and "a" are written
            assertThrows(IllegalStateException.class, () -> Safetensors.write(file, tensors, Map.of()));
        }
        assertArrayEquals(before, Files.readAllBytes(file));
        try (Stream<Path> files = Files.list(directory)) {
            assertEquals(List.of(file), files.toList());
        }
    }

    @Test
    void reservedAndNullNamesAreRejected() {
        Path file = directory.resolve("bad.safetensors");
        try (MemoryScope scope = new MemoryScope("write")) {
            Tensor t = scope.zeros(2);
            IllegalArgumentException reserved = assertThrows(IllegalArgumentException.class,
                    () -> Safetensors.write(file, Map.of("__metadata__", t), Map.of()));
            assertTrue(reserved.getMessage().contains("__metadata__ is reserved"), reserved.getMessage());
            Map<String, Tensor> withNull = new LinkedHashMap<>();
            withNull.put("w", null);
            assertThrows(IllegalArgumentException.class, () -> Safetensors.write(file, withNull, Map.of()));
        }
        assertTrue(Files.notExists(file));
    }
}
