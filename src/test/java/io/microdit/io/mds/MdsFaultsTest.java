package io.microdit.io.mds;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Shards and indexes that disagree are refused when the stream is opened, each with a message naming the file and,
 * where one sample is at fault, the sample.
 */
class MdsFaultsTest {
    @TempDir
    Path temp;
    Path shard;
    Path index;
    byte[] bytes;

    @BeforeEach
    void writeDataset() throws IOException {
        Map<String, String> columns = new LinkedHashMap<>();
        columns.put("id", "int");
        columns.put("text", "str");
        columns.put("blob", "bytes");
        Random random = new Random(9);
        try (MdsWriter writer = new MdsWriter(temp, columns, null, List.of(), 0)) {
            for (int i = 0; i < 6; i++) {
                byte[] blob = new byte[1 + random.nextInt(50)];
                random.nextBytes(blob);
                writer.write(Map.of("id", (long) i, "text", "sample " + i, "blob", blob));
            }
        }
        shard = temp.resolve("shard.00000.mds");
        index = temp.resolve("index.json");
        bytes = Files.readAllBytes(shard);
    }

    private int offset(int k) {
        return ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getInt(4 * (k + 1));
    }

    private void setOffset(int k, int value) {
        ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).putInt(4 * (k + 1), value);
    }

    private void refused(String... fragments) {
        MdsException e = assertThrows(MdsException.class, () -> MdsStream.open(temp).close());
        for (String f : fragments) {
            assertTrue(e.getMessage().contains(f), "'" + f + "' not in: " + e.getMessage());
        }
    }

    @Test
    void aTruncatedShardNamesTheFirstSampleItLost() throws IOException {
        Files.write(shard, Arrays.copyOf(bytes, offset(4) - 3)); // cuts into sample 3, which ends at offsets[4]
        refused(shard.toString(), "sample 3", "truncated");
        Files.write(shard, Arrays.copyOf(bytes, 10)); // inside the offsets table
        refused(shard.toString(), "offsets table", "truncated");
    }

    @Test
    void offsetsOutOfRangeOrOutOfOrderAreNamed() throws IOException {
        int end1 = offset(2);
        setOffset(2, bytes.length + 100);
        Files.write(shard, bytes);
        refused(shard.toString(), "sample 1", "beyond");
        setOffset(2, offset(1) - 1);
        Files.write(shard, bytes);
        refused(shard.toString(), "sample 1", "before it starts");
        setOffset(2, end1);
        setOffset(0, 8);
        Files.write(shard, bytes);
        refused(shard.toString(), "sample 0", "inside the header");
    }

    @Test
    void aColumnSizeRunningPastItsSampleIsNamed() throws IOException {
        // sample 2's first stored size is its 'blob' column's (columns are sorted: blob, id, text)
        int at = offset(2);
        ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).putInt(at, 1 << 20);
        Files.write(shard, bytes);
        refused(shard.toString(), "sample 2", "'blob'");
    }

    @Test
    void anIndexThatDisagreesWithItsShardIsRefused() throws IOException {
        String text = Files.readString(index);
        Files.writeString(index, text.replace("\"samples\": 6", "\"samples\": 7"));
        refused(shard.toString(), "holds 6 samples", "says 7");
        Files.writeString(index, text.replace("\"bytes\": " + bytes.length, "\"bytes\": " + (bytes.length + 1)));
        refused(shard.toString(), bytes.length + " bytes", "says " + (bytes.length + 1));
        Files.writeString(index, text.replace("[null, 8, null]", "[null, 4, null]"));
        refused(index.toString(), "column 'id'", "says 4");
        Files.writeString(index, text.replace("shard.00000.mds", "../shard.00000.mds"));
        refused(index.toString(), "plain file name");
        Files.writeString(index, text.replace("\"version\": 2, \"zip", "\"version\": 3, \"zip"));
        refused(index.toString(), "'version' must be 2");
        Files.delete(shard);
        Files.writeString(index, text);
        refused(shard.toString(), "no such file");
    }

    @Test
    void aTruncatedCompressedShardIsRefused() throws IOException {
        Path zipped = temp.resolve("zipped");
        try (MdsWriter writer = new MdsWriter(zipped, Map.of("x", "bytes"), "zstd", List.of(), 0)) {
            for (int i = 0; i < 4; i++) {
                writer.write(Map.of("x", new byte[100 * i]));
            }
        }
        Path file = zipped.resolve("shard.00000.mds.zstd");
        byte[] zip = Files.readAllBytes(file);
        Files.write(file, Arrays.copyOf(zip, zip.length - 5));
        MdsException e = assertThrows(MdsException.class, () -> MdsStream.open(zipped).close());
        assertTrue(e.getMessage().contains(file.toString()) && e.getMessage().contains("truncated"), e.getMessage());
        // the index's raw size must be what the frame holds
        Files.write(file, zip);
        Path zipIndex = zipped.resolve("index.json");
        String text = Files.readString(zipIndex);
        String raw = text.replaceAll(".*\"raw_data\": \\{\"basename\": \"shard.00000.mds\", \"bytes\": (\\d+).*", "$1");
        Files.writeString(zipIndex, text.replace("\"bytes\": " + raw, "\"bytes\": " + (Long.parseLong(raw) + 1)));
        e = assertThrows(MdsException.class, () -> MdsStream.open(zipped).close());
        assertTrue(e.getMessage().contains(file.toString()) && e.getMessage().contains("holds " + raw),
                e.getMessage());
    }

    @Test
    void randomlyDamagedShardsAreReadOrRefusedWithMdsExceptionOnly() throws IOException {
        Path folder = temp.resolve("fuzz");
        Random random = new Random(31);
        try (MdsWriter writer = new MdsWriter(folder, MdsRoundTripTest.COLUMNS, null, List.of(), 0)) {
            for (Map<String, Object> sample : MdsRoundTripTest.samples(6, random)) {
                writer.write(sample);
            }
        }
        Path file = folder.resolve("shard.00000.mds");
        byte[] good = Files.readAllBytes(file);
        for (int trial = 0; trial < 300; trial++) {
            byte[] damaged = trial % 3 == 0 ? Arrays.copyOf(good, random.nextInt(good.length)) : good.clone();
            if (trial % 3 != 0) {
                for (int k = 0; k < 1 + random.nextInt(3); k++) {
                    damaged[random.nextInt(damaged.length)] ^= (byte) (1 + random.nextInt(255));
                }
            }
            Files.write(file, damaged);
            try (MdsStream stream = MdsStream.open(folder)) {
                for (int i = 0; i < stream.size(); i++) {
                    stream.read(i);
                }
            } catch (MdsException e) {
                assertTrue(e.getMessage().contains(file.toString()), e.getMessage());
            }
        }
    }
}
