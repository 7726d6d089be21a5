package io.microdit.io.fuzz;

import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.microdit.data.LatentShards;
import io.microdit.io.Safetensors;
import io.microdit.io.mds.MdsStream;
import io.microdit.io.mds.MdsWriter;
import io.microdit.io.torch.TorchFile;
import io.microdit.io.torch.TorchTensor;
import io.microdit.io.fuzz.Mutations.LengthField;
import io.microdit.io.fuzz.Mutations.Mutant;
import io.microdit.io.IdxFile;
import io.microdit.model.ConfigFile;
import io.microdit.model.MicroDiTConfigs;
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
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.SplittableRandom;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Mutation fuzzing of every format the engine reads. For each, a valid seed file made by our own writers, then
 * {@code microdit.fuzz.mutants} (default 1,000) mutants; each must be accepted or rejected with an
 * {@link IOException} whose message names the file, within {@link #PER_MUTANT} and allocating on the Java heap
 * at most {@link #HEAP_PER_FILE_BYTE} times the file's size plus {@link #HEAP_SLACK}. Any other outcome (an
 * unchecked exception, an Error such as StackOverflowError or OutOfMemoryError, a hang) fails with the run's seed
 * and the mutant's index and description. The seed is random unless {@code -Dmicrodit.fuzz.seed=...} repeats one.
 */
class MutationFuzzTest {
    private static final long SEED = Long.getLong("microdit.fuzz.seed", System.nanoTime());
    private static final int MUTANTS = Integer.getInteger("microdit.fuzz.mutants", 1000);
    private static final Duration PER_MUTANT = Duration.ofSeconds(10);
    /** A whole format's run; a hang is reported with the mutant in progress. */
    private static final Duration PER_FORMAT = Duration.ofSeconds(120);
    /** A parsed JSON tree is about an order of magnitude larger than its text. */
    private static final long HEAP_PER_FILE_BYTE = 32;
    /** Class loading and the first calls of each reader allocate a little whatever the file. */
    private static final long HEAP_SLACK = 8L << 20;
    private static final com.sun.management.ThreadMXBean THREADS =
            (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();

    @TempDir
    Path temp;

    @FunctionalInterface
    private interface Reader {
        void read(Path file) throws IOException;
    }

    @FunctionalInterface
    private interface Mutator {
        Mutant mutate(Random random) throws IOException;
    }

    @BeforeAll
    static void printSeed() {
        System.out.println("fuzz seed " + SEED + " (repeat with -Dmicrodit.fuzz.seed=" + SEED + ")");
    }

    @Test
    void safetensors() throws IOException {
        byte[] seed = safetensorsSeed(Map.of("bias", DType.BF16, "ids", DType.I32, "weight", DType.F32),
                new int[] {7}, new int[] {3}, new int[] {5, 7});
        fuzz("safetensors", "weights.safetensors", seed, safetensorsMutator(seed), file -> {
            try (MemoryScope scope = new MemoryScope("fuzz")) {
                Safetensors.read(file, scope);
            }
        });
    }

    @Test
    void latentShards() throws IOException {
        byte[] seed = safetensorsSeed(Map.of(LatentShards.LATENTS, DType.F32, LatentShards.CAPTIONS, DType.BF16),
                new int[] {3, 5, 8}, new int[] {3, 4, 4, 4});
        fuzz("latent shard", "shard-000.safetensors", seed, safetensorsMutator(seed), file -> {
            try (LatentShards shards = new LatentShards(file)) {
                assertTrue(shards.size() > 0);
            }
        });
    }

    @Test
    void idx() throws IOException {
        byte[] seed = idxSeed();
        byte[] zipped = gzip(seed);
        List<LengthField> dims = List.of(new LengthField(4, 4, ByteOrder.BIG_ENDIAN),
                new LengthField(8, 4, ByteOrder.BIG_ENDIAN), new LengthField(12, 4, ByteOrder.BIG_ENDIAN));
        fuzz("IDX", "images-idx3-ubyte", seed, random -> switch (random.nextInt(4)) {
            case 0, 1 -> Mutations.binary(seed, dims, random);
            case 2 -> {
                Mutant m = Mutations.binary(seed, dims, random);
                yield new Mutant(gzip(m.bytes()), "gzip of " + m.description());
            }
            default -> {
                Mutant m = Mutations.binary(zipped, List.of(), random);
                yield new Mutant(m.bytes(), "gzip stream: " + m.description());
            }
        }, IdxFile::read);
    }

    @Test
    void modelConfig() throws IOException {
        byte[] seed = ConfigFile.toJson(MicroDiTConfigs.fashionSmall()).getBytes(StandardCharsets.UTF_8);
        fuzz("model config", "model.json", seed, jsonMutator(seed), ConfigFile::read);
    }

    @Test
    void trainingConfig() throws IOException {
        byte[] seed = TrainingConfig.defaults().toJson().getBytes(StandardCharsets.UTF_8);
        fuzz("training config", "train.json", seed, jsonMutator(seed), TrainingConfig::read);
    }

    @Test
    void checkpointState() throws IOException {
        byte[] seed = new Checkpoint.State(1234, 78976, TrainingConfig.defaults().toJson()).toJson()
                .getBytes(StandardCharsets.UTF_8);
        fuzz("checkpoint state", Checkpoint.STATE, seed, jsonMutator(seed),
                file -> Checkpoint.readState(file.getParent()));
    }

    /** A PyTorch state dict `.pt` (zip of a pickle and storages) written by our writer, read with every tensor. */
    @Test
    void torchCheckpoint() throws IOException {
        Path seedFile = temp.resolve("seed.pt");
        Random random = new Random(21);
        try (MemoryScope scope = new MemoryScope("seed")) {
            Map<String, Tensor> tensors = new java.util.TreeMap<>();
            tensors.put("blocks.0.attn.qkv.weight", TestData.uniform(scope, random, 6, 4));
            tensors.put("blocks.0.norm1.weight", TestData.uniform(scope, random, 4).to(DType.BF16, scope));
            TorchFile.write(seedFile, tensors);
        }
        byte[] seed = Files.readAllBytes(seedFile);
        fuzz("pt", "model.pt", seed, random1 -> Mutations.binary(seed, List.of(), random1), file -> {
            try (TorchFile torch = TorchFile.open(file); MemoryScope scope = new MemoryScope("fuzz")) {
                if (torch.root() instanceof Map<?, ?> dict) {
                    for (Object value : dict.values()) {
                        if (value instanceof TorchTensor t) {
                            torch.load(t, scope);
                        }
                    }
                }
            }
        });
    }

    /** An MDS shard (sample count, offsets, samples) under a fixed index.json, opened and read sample by sample. */
    @Test
    void mdsShard() throws IOException {
        Path folder = mdsSeed("mds-shard");
        Path shard = folder.resolve("shard.00000.mds");
        byte[] seed = Files.readAllBytes(shard);
        List<LengthField> fields = List.of(new LengthField(0, 4, ByteOrder.LITTLE_ENDIAN),
                new LengthField(4, 4, ByteOrder.LITTLE_ENDIAN), new LengthField(8, 4, ByteOrder.LITTLE_ENDIAN));
        fuzzInPlace("MDS shard", shard, seed, random -> Mutations.binary(seed, fields, random), MutationFuzzTest::readMds);
    }

    /** The index.json of an MDS dataset, its shard fixed. */
    @Test
    void mdsIndex() throws IOException {
        Path folder = mdsSeed("mds-index");
        Path index = folder.resolve("index.json");
        byte[] seed = Files.readAllBytes(index);
        fuzzInPlace("MDS index", index, seed, jsonMutator(seed), MutationFuzzTest::readMds);
    }

    private static void readMds(Path file) throws IOException {
        try (MdsStream stream = MdsStream.open(file.getParent())) {
            for (int i = 0; i < stream.size(); i++) {
                stream.read(i);
            }
        }
    }

    /** Six samples of four columns, uncompressed, no digests (a digest would refuse every shard mutant at once). */
    private Path mdsSeed(String name) throws IOException {
        Path folder = temp.resolve(name);
        Random random = new Random(33);
        Map<String, String> columns = new java.util.LinkedHashMap<>();
        columns.put("caption", "str");
        columns.put("id", "int");
        columns.put("score", "float32");
        columns.put("blob", "bytes");
        try (MdsWriter writer = new MdsWriter(folder, columns, null, List.of(), 0)) {
            for (int i = 0; i < 6; i++) {
                byte[] blob = new byte[random.nextInt(20)];
                random.nextBytes(blob);
                writer.write(Map.of("caption", "sample " + random.nextInt(1000), "id", random.nextLong(),
                        "score", (double) (float) random.nextGaussian(), "blob", blob));
            }
        }
        return folder;
    }

    private void fuzz(String format, String fileName, byte[] seed, Mutator mutator, Reader reader)
            throws IOException {
        fuzzInPlace(format, Files.createDirectories(temp.resolve(format.replace(' ', '-'))).resolve(fileName), seed,
                mutator, reader);
    }

    /** Mutants of {@code seed} written over {@code file} (whose folder may hold the files it belongs with), read. */
    private void fuzzInPlace(String format, Path file, byte[] seed, Mutator mutator, Reader reader)
            throws IOException {
        Files.write(file, seed);
        reader.read(file); // the seed itself must be valid
        int[] accepted = {0};
        int[] rejected = {0};
        String[] current = {"none yet"};
        long start = System.nanoTime();
        assertTimeoutPreemptively(PER_FORMAT, () -> {
            for (int i = 0; i < MUTANTS; i++) {
                // Random's first draws from nearby seeds are correlated; SplittableRandom mixes (seed, i) first.
                Random random = new Random(new SplittableRandom(SEED).split().nextLong() ^ new SplittableRandom(i).nextLong());
                Mutant mutant = mutator.mutate(random);
                String where = format + " mutant " + i + " (" + mutant.description() + "), seed " + SEED;
                current[0] = where;
                Files.write(file, mutant.bytes());
                long heapBefore = THREADS.getCurrentThreadAllocatedBytes();
                long began = System.nanoTime();
                try {
                    reader.read(file);
                    accepted[0]++;
                } catch (IOException e) {
                    if (e.getMessage() == null || !e.getMessage().contains(file.toString())) {
                        fail(where + ": rejected without naming the file: " + e, e);
                    }
                    rejected[0]++;
                } catch (Throwable t) {
                    fail(where + ": " + t, t);
                }
                Duration took = Duration.ofNanos(System.nanoTime() - began);
                long heap = THREADS.getCurrentThreadAllocatedBytes() - heapBefore;
                long heapLimit = HEAP_PER_FILE_BYTE * mutant.bytes().length + HEAP_SLACK;
                assertTrue(took.compareTo(PER_MUTANT) < 0, where + ": took " + took);
                assertTrue(heap <= heapLimit, where + ": allocated " + heap + " bytes reading a "
                        + mutant.bytes().length + "-byte file (limit " + heapLimit + ")");
            }
        }, () -> format + ": over " + PER_FORMAT + ", last mutant started: " + current[0]);
        System.out.printf("fuzz %s: %d mutants, %d accepted, %d rejected, %.1f s, seed %d%n", format, MUTANTS,
                accepted[0], rejected[0], (System.nanoTime() - start) / 1e9, SEED);
    }

    /** Half byte-level damage with the header length as a length field, half JSON edits of the header. */
    private static Mutator safetensorsMutator(byte[] seed) {
        ByteBuffer buffer = ByteBuffer.wrap(seed).order(ByteOrder.LITTLE_ENDIAN);
        int headerLength = (int) buffer.getLong(0);
        String header = new String(seed, 8, headerLength, StandardCharsets.UTF_8);
        byte[] data = Arrays.copyOfRange(seed, 8 + headerLength, seed.length);
        return random -> {
            if (random.nextBoolean()) {
                return Mutations.binary(seed, List.of(new LengthField(0, 8, ByteOrder.LITTLE_ENDIAN)), random);
            }
            Mutant edit = Mutations.json(header.strip(), random);
            boolean keepLength = random.nextInt(8) == 0;
            long length = keepLength ? headerLength : edit.bytes().length;
            ByteBuffer out = ByteBuffer.allocate(8 + edit.bytes().length + data.length).order(ByteOrder.LITTLE_ENDIAN);
            out.putLong(length).put(edit.bytes()).put(data);
            return new Mutant(out.array(), "header: " + edit.description()
                    + (keepLength ? ", old header length kept" : ""));
        };
    }

    /** Mostly JSON edits, sometimes byte-level damage of the text. */
    private static Mutator jsonMutator(byte[] seed) {
        String text = new String(seed, StandardCharsets.UTF_8);
        return random -> random.nextInt(4) == 0 ? Mutations.binary(seed, List.of(), random)
                : Mutations.json(text, random);
    }

    /** Tensors with random values written by {@link Safetensors#write}; {@code shapes} in the order of the names. */
    private byte[] safetensorsSeed(Map<String, DType> dtypes, int[]... shapes) throws IOException {
        Random random = new Random(16);
        Path file = temp.resolve("seed.safetensors");
        try (MemoryScope scope = new MemoryScope("seed")) {
            Map<String, Tensor> tensors = new java.util.TreeMap<>();
            int i = 0;
            for (Map.Entry<String, DType> e : new java.util.TreeMap<>(dtypes).entrySet()) {
                int[] shape = shapes[i++];
                Tensor values = e.getValue() == DType.I32
                        ? Tensor.ofInts(scope, random.ints(Arrays.stream(shape).reduce(1, (a, b) -> a * b), -50, 50)
                        .toArray(), shape)
                        : TestData.uniform(scope, random, shape).to(e.getValue(), scope);
                tensors.put(e.getKey(), values);
            }
            Safetensors.write(file, tensors, Map.of("format", "pt", "microdit.step", "12"));
        }
        return Files.readAllBytes(file);
    }

    /** An IDX file of 2 × 3 × 5 unsigned bytes, as the Fashion-MNIST image files are laid out. */
    private static byte[] idxSeed() {
        Random random = new Random(3);
        ByteBuffer out = ByteBuffer.allocate(16 + 30).order(ByteOrder.BIG_ENDIAN);
        out.putShort((short) 0).put((byte) 0x08).put((byte) 3).putInt(2).putInt(3).putInt(5);
        for (int i = 0; i < 30; i++) {
            out.put((byte) random.nextInt(256));
        }
        return out.array();
    }

    private static byte[] gzip(byte[] bytes) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (GZIPOutputStream zip = new GZIPOutputStream(out)) {
            zip.write(bytes);
        }
        return out.toByteArray();
    }
}
