package io.microdit.io.fuzz;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.data.LatentShards;
import io.microdit.io.IdxFile;
import io.microdit.io.Json;
import io.microdit.io.JsonException;
import io.microdit.io.Safetensors;
import io.microdit.model.ConfigFile;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
import io.microdit.train.Checkpoint;
import io.microdit.train.TrainingConfig;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;

/** One hostile file per fault the readers had: each is refused with a message naming the file, cheaply. */
class HostileFilesTest {
    private static final com.sun.management.ThreadMXBean THREADS =
            (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
    private static final long ONE_MIB = 1 << 20;

    @TempDir
    Path temp;

    @Test
    void safetensorsDeclaringATerabyteTensorIsRefusedBeforeAllocating() throws IOException {
        String header = "{\"huge\":{\"dtype\":\"F32\",\"shape\":[1048576,262144],\"data_offsets\":[0,"
                + (1L << 40) + "]}}";
        byte[] json = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer file = ByteBuffer.allocate(8 + json.length + 64).order(ByteOrder.LITTLE_ENDIAN);
        file.putLong(json.length).put(json);
        Path path = Files.write(temp.resolve("huge.safetensors"), file.array());
        try (MemoryScope scope = new MemoryScope("huge")) {
            IOException e = refusedCheaply(path, () -> Safetensors.read(path, scope));
            assertTrue(e.getMessage().contains("run past the end"), e.getMessage());
            assertEquals(0, scope.ownedBytes());
        }
    }

    @Test
    void idxDeclaringAGigabyteIsRefusedBeforeAllocating() throws IOException {
        byte[] header = ByteBuffer.allocate(16).putShort((short) 0).put((byte) 8).put((byte) 3)
                .putInt(1024).putInt(1024).putInt(1024).array();
        Path plain = Files.write(temp.resolve("plain-idx3-ubyte"), header);
        IOException e = refusedCheaply(plain, () -> IdxFile.read(plain));
        assertTrue(e.getMessage().contains("offset 16: truncated"), e.getMessage());
        Path zipped = Files.write(temp.resolve("zipped-idx3-ubyte.gz"), gzip(header));
        e = refusedCheaply(zipped, () -> IdxFile.read(zipped));
        assertTrue(e.getMessage().contains("truncated"), e.getMessage());
    }

    @Test
    void idxWithBytesAfterItsDataIsRejected() throws IOException {
        byte[] file = ByteBuffer.allocate(8 + 3 + 2).putShort((short) 0).put((byte) 8).put((byte) 1).putInt(3)
                .put(new byte[] {1, 2, 3, 4, 5}).array();
        Path path = Files.write(temp.resolve("long-idx1-ubyte"), file);
        IOException e = refusedCheaply(path, () -> IdxFile.read(path));
        assertTrue(e.getMessage().contains("offset 11: bytes after the data"), e.getMessage());
    }

    @Test
    void jsonNumbersOfThousandsOfDigitsAreRejected() throws JsonException {
        String digits = "7".repeat(200_000);
        JsonException e = assertThrows(JsonException.class, () -> Json.parse("{\"n\": " + digits + "}"));
        assertTrue(e.getMessage().contains("200000 characters, more than " + Json.MAX_NUMBER_CHARS), e.getMessage());
        assertEquals(Long.MAX_VALUE, Json.parse(Long.toString(Long.MAX_VALUE)));
    }

    @Test
    void jsonOfManyEmptyContainersCostsLittleHeap() throws JsonException {
        String text = "[" + "{},[],".repeat(1 << 19) + "0]";
        long before = THREADS.getCurrentThreadAllocatedBytes();
        List<?> parsed = (List<?>) Json.parse(text);
        long allocated = THREADS.getCurrentThreadAllocatedBytes() - before;
        assertEquals(1 << 20, parsed.size() - 1);
        assertTrue(allocated < 8L * text.length(), "parsing " + text.length() + " characters allocated "
                + allocated + " bytes");
    }

    @Test
    void jsonFilesThatAreTooLargeOrNotUtf8NameTheFile() throws IOException {
        Path large = Files.writeString(temp.resolve("large.json"), "[" + " ".repeat((int) Json.MAX_FILE_BYTES) + "]");
        IOException e = refusedCheaply(large, () -> Json.readFile(large));
        assertTrue(e.getMessage().contains("more than the " + Json.MAX_FILE_BYTES), e.getMessage());
        Path latin1 = Files.write(temp.resolve("latin1.json"), new byte[] {'"', (byte) 0xe9, '"'});
        e = refusedCheaply(latin1, () -> ConfigFile.read(latin1));
        assertTrue(e.getMessage().contains("not valid UTF-8"), e.getMessage());
    }

    @Test
    void modelConfigWithAHugeDepthIsRefusedBeforeAllocating() throws IOException {
        Path file = Files.writeString(temp.resolve("deep.json"),
                "{\"base\": \"fashion-small\", \"depth\": 2000000000}");
        IOException e = refusedCheaply(file, () -> ConfigFile.read(file));
        assertTrue(e.getMessage().contains("'depth' must be in [1, "), e.getMessage());
    }

    @Test
    void modelConfigNumbersMustBeFinite() throws IOException {
        Path eps = Files.writeString(temp.resolve("eps.json"), "{\"norm_eps\": 1" + "0".repeat(320) + "}");
        IOException e = refusedCheaply(eps, () -> ConfigFile.read(eps));
        assertTrue(e.getMessage().contains("'norm_eps' must be a finite number"), e.getMessage());
        Path ends = Files.writeString(temp.resolve("ends.json"),
                "{\"ffn_multipliers\": {\"linspace\": [1, 1" + "0".repeat(320) + "]}}");
        e = refusedCheaply(ends, () -> ConfigFile.read(ends));
        assertTrue(e.getMessage().contains("linspace end must be a finite number"), e.getMessage());
    }

    @Test
    void trainingConfigIntegersMustBeIntegersAndNumbersFinite() throws IOException {
        Path half = Files.writeString(temp.resolve("half.json"), "{\"batch_size\": 1.5}");
        IOException e = refusedCheaply(half, () -> TrainingConfig.read(half));
        assertTrue(e.getMessage().contains("'batch_size' must be an integer"), e.getMessage());
        Path wide = Files.writeString(temp.resolve("wide.json"), "{\"batch_size\": 4294967360}");
        e = refusedCheaply(wide, () -> TrainingConfig.read(wide));
        assertTrue(e.getMessage().contains("'batch_size' must be a 32-bit integer"), e.getMessage());
        Path infinite = Files.writeString(temp.resolve("infinite.json"), "{\"p_std\": 1" + "0".repeat(320) + "}");
        e = refusedCheaply(infinite, () -> TrainingConfig.read(infinite));
        assertTrue(e.getMessage().contains("'p_std' must be a finite number"), e.getMessage());
        Path steps = Files.writeString(temp.resolve("steps.json"), "{\"stages\": [{\"steps\": 9223372036854775807,"
                + " \"lr\": {\"peak\": 0.001}}, {\"steps\": 9223372036854775807, \"lr\": {\"peak\": 0.001}}]}");
        e = refusedCheaply(steps, () -> TrainingConfig.read(steps));
        assertTrue(e.getMessage().contains("stages[0].steps must be at most"), e.getMessage());
    }

    @Test
    void checkpointStateProblemsNameStateJson() throws IOException {
        Path checkpoint = Files.createDirectories(temp.resolve("run/checkpoints/step-0000010"));
        Path state = checkpoint.resolve(Checkpoint.STATE);
        Files.writeString(state, "{\"step\": 10, \"samples_seen\": ");
        IOException e = refusedCheaply(state, () -> Checkpoint.readState(checkpoint));
        assertTrue(e.getMessage().contains("unexpected end of input"), e.getMessage());
        Files.writeString(state, new Checkpoint.State(10, 640, "{\"batch_size\": -3}").toJson());
        e = refusedCheaply(state, () -> Checkpoint.readState(checkpoint));
        assertTrue(e.getMessage().contains("training_config: training config key 'batch_size'"), e.getMessage());
        Files.writeString(state, new Checkpoint.State(-10, 640, "{}").toJson());
        e = refusedCheaply(state, () -> Checkpoint.readState(checkpoint));
        assertTrue(e.getMessage().contains("must not be negative"), e.getMessage());
    }

    @Test
    void checkpointPointerMustNameACheckpointFolder() throws IOException {
        Path run = temp.resolve("run");
        Path checkpoints = Files.createDirectories(run.resolve("checkpoints"));
        Files.createDirectories(run.resolve("elsewhere"));
        Files.writeString(run.resolve("elsewhere").resolve(Checkpoint.STATE), "{}");
        Path pointer = Files.writeString(checkpoints.resolve("latest"), "../elsewhere\n");
        IOException e = refusedCheaply(pointer, () -> Checkpoint.latest(run));
        assertTrue(e.getMessage().contains("does not name a checkpoint folder"), e.getMessage());
        Files.writeString(pointer, "step-0000001".repeat(1 << 16));
        refusedCheaply(pointer, () -> Checkpoint.latest(run));
    }

    @Test
    void latentShardsRejectNonFiniteValuesIntegerDtypesAndEmptySamples() throws IOException {
        Random random = new Random(7);
        try (MemoryScope scope = new MemoryScope("shards")) {
            Tensor latents = TestData.uniform(scope, random, 2, 3, 2, 2);
            Tensor captions = TestData.uniform(scope, random, 2, 4, 5);
            latents.setFloat(17, Float.NaN);
            Path nan = temp.resolve("nan.safetensors");
            Safetensors.write(nan, Map.of(LatentShards.LATENTS, latents, LatentShards.CAPTIONS, captions), Map.of());
            IOException e = refusedCheaply(nan, () -> new LatentShards(nan).close());
            assertTrue(e.getMessage().contains("'latents' element 17 is NaN"), e.getMessage());

            Path ints = temp.resolve("ints.safetensors");
            Safetensors.write(ints, Map.of(LatentShards.LATENTS, Tensor.zeros(scope, DType.I32, 2, 3, 2, 2),
                    LatentShards.CAPTIONS, captions), Map.of());
            e = refusedCheaply(ints, () -> new LatentShards(ints).close());
            assertTrue(e.getMessage().contains("dtype I32"), e.getMessage());

            Path empty = temp.resolve("empty.safetensors");
            Safetensors.write(empty, Map.of(LatentShards.LATENTS, Tensor.zeros(scope, DType.F32, 1 << 30, 0, 2, 2),
                    LatentShards.CAPTIONS, Tensor.zeros(scope, DType.F32, 1 << 30, 4, 0)), Map.of());
            e = refusedCheaply(empty, () -> new LatentShards(empty).close());
            assertTrue(e.getMessage().contains("empty sample dimension"), e.getMessage());
        }
    }

    /**
     * Runs a read that must fail with an IOException naming {@code file}, allocating under a mebibyte of Java
     * heap (what a read that sized a buffer from a hostile header would not manage).
     */
    private static IOException refusedCheaply(Path file, Executable read) {
        long before = THREADS.getCurrentThreadAllocatedBytes();
        IOException e = assertThrows(IOException.class, read);
        long allocated = THREADS.getCurrentThreadAllocatedBytes() - before;
        assertTrue(e.getMessage().contains(file.toString()), e.getMessage());
        assertTrue(allocated < ONE_MIB, "allocated " + allocated + " bytes before refusing " + file);
        return e;
    }

    private static byte[] gzip(byte[] bytes) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (GZIPOutputStream zip = new GZIPOutputStream(out)) {
            zip.write(bytes);
        }
        return out.toByteArray();
    }
}
