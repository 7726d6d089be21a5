package io.microdit.train;

import io.microdit.io.Json;
import io.microdit.io.Safetensors;
import io.microdit.model.MicroDiT;
import io.microdit.model.Weights;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import java.util.stream.Stream;
import java.util.zip.CRC32C;

/**
 * A training checkpoint: a folder {@code checkpoints/step-NNNNNNN} holding {@code model.safetensors} (weights, the
 * official names), {@code ema.safetensors} (the moving average, same names, when EMA is on),
 * {@code optimizer.safetensors} (AdamW moments {@code <name>.exp_avg}/{@code .exp_avg_sq}) and {@code state.json}
 * (step, samples seen, optimizer steps, the training config, and each other file's size and CRC-32C). The folder is
 * written under a temporary name, every file fsynced, then renamed in one atomic step; only then is
 * {@code checkpoints/latest} replaced (also by an atomic rename) to name it. A crash at any moment leaves the
 * previous checkpoint intact and {@code latest} naming a complete one; a file damaged later is caught by its
 * checksum, and {@link #candidates} lets a resume fall back to the previous checkpoint.
 */
public final class Checkpoint {
    /** The weights, official names. */
    public static final String MODEL = "model.safetensors";
    /** The EMA of the weights, official names (present when the run keeps an EMA). */
    public static final String EMA = "ema.safetensors";
    /** AdamW's moments, named after their parameters. */
    public static final String OPTIMIZER = "optimizer.safetensors";
    /** Step, samples seen, the training config and the other files' sizes and checksums. */
    public static final String STATE = "state.json";
    private static final String LATEST = "latest";
    private static final int MAX_POINTER_BYTES = 64;
    private static final String FOLDER_PATTERN = "step-[0-9]{7,19}";

    /**
     * Called before each file of a checkpoint is written (the weights, EMA, moments, state.json, the latest pointer):
     * tests inject a failed write (a full disk) or a pause (to kill the process mid-checkpoint) here.
     */
    interface WriteHook {
        void beforeWrite(Path file) throws IOException;
    }

    static volatile WriteHook writeHook = file -> { };

    /** A file's size and CRC-32C, as state.json records them. */
    public record FileSum(long bytes, int crc32c) {
        Map<String, Object> toJson() {
            Map<String, Object> json = new LinkedHashMap<>();
            json.put("bytes", bytes);
            json.put("crc32c", String.format("%08x", crc32c));
            return json;
        }
    }

    /**
     * What state.json holds. {@code optimizerStep} is the AdamW step count, behind {@code step} by the steps skipped
     * for non-finite values; {@code files} maps the checkpoint's other files to their checksums (empty only in a
     * state not yet written).
     */
    public record State(long step, long samplesSeen, String trainingConfigJson, long optimizerStep,
                        Map<String, FileSum> files) {
        /** Copies {@code files}. */
        public State {
            files = Map.copyOf(files);
        }

        /** A state whose optimizer took every step, before its files are written. */
        public State(long step, long samplesSeen, String trainingConfigJson) {
            this(step, samplesSeen, trainingConfigJson, step, Map.of());
        }

        /** The text of {@code state.json}. */
        public String toJson() throws IOException {
            Map<String, Object> json = new LinkedHashMap<>();
            json.put("step", step);
            json.put("samples_seen", samplesSeen);
            json.put("optimizer_step", optimizerStep);
            json.put("training_config", Json.parse(trainingConfigJson));
            if (!files.isEmpty()) {
                Map<String, Object> sums = new LinkedHashMap<>();
                for (String name : List.of(MODEL, EMA, OPTIMIZER)) {
                    if (files.containsKey(name)) {
                        sums.put(name, files.get(name).toJson());
                    }
                }
                json.put("files", sums);
            }
            return Json.write(json);
        }
    }

    private Checkpoint() {
    }

    /**
     * Writes a checkpoint and keeps the newest {@code keep}; returns its folder. {@code optimizerState} is every
     * parameter's AdamW moments ({@link AdamW#state()}, gathered from the ranks when they are sharded), and
     * {@code averagedWeights} every parameter's EMA by name (gathered likewise), or null without EMA. A failed
     * write is an IOException naming the file and the system's reason; the previous checkpoints stay as they were.
     */
    public static Path write(Path runDirectory, State state, MicroDiT model, Map<String, Tensor> optimizerState,
                             Map<String, Tensor> averagedWeights, int keep) throws IOException {
        Path checkpoints = Files.createDirectories(runDirectory.resolve("checkpoints"));
        removeTemporaries(checkpoints);
        String name = String.format("step-%07d", state.step());
        Path target = checkpoints.resolve(name);
        Path temporary = checkpoints.resolve("." + name + ".tmp-" + System.nanoTime());
        Files.createDirectory(temporary);
        try {
            Map<String, String> metadata = Map.of("microdit.step", Long.toString(state.step()));
            Map<String, FileSum> sums = new LinkedHashMap<>();
            writeFile(temporary.resolve(MODEL), sums, file -> Weights.save(model, file, metadata));
            if (averagedWeights != null) {
                writeFile(temporary.resolve(EMA), sums, file -> Weights.save(model, averagedWeights, file, metadata));
            }
            try (MemoryScope host = new MemoryScope("checkpoint-moments")) {
                Map<String, Tensor> moments = Weights.download(model.backend(), optimizerState, host);
                writeFile(temporary.resolve(OPTIMIZER), sums, file -> Safetensors.write(file, moments, metadata));
            }
            String stateJson = new State(state.step(), state.samplesSeen(), state.trainingConfigJson(),
                    state.optimizerStep(), sums).toJson();
            writeDurably(temporary.resolve(STATE), stateJson);
            fsync(temporary);
            if (Files.exists(target)) {
                deleteRecursively(target);
            }
            move(temporary, target);
            fsync(checkpoints);
        } catch (IOException | RuntimeException e) {
            deleteQuietly(temporary, e);
            throw e;
        }
        Path latestTemporary = checkpoints.resolve("." + LATEST + ".tmp-" + System.nanoTime());
        try {
            writeDurably(latestTemporary, name + "\n");
            move(latestTemporary, checkpoints.resolve(LATEST));
        } catch (IOException | RuntimeException e) {
            deleteQuietly(latestTemporary, e);
            throw e;
        }
        fsync(checkpoints);
        prune(checkpoints, keep);
        return target;
    }

    /** Writes one file of a checkpoint. */
    private interface FileWriter {
        void write(Path file) throws IOException;
    }

    /**
     * Writes {@code file}, forces it to the disk and records its checksum, read back from the file itself so that it
     * covers what was written. The system's reasons (a full disk says only "No space left on device") are given
     * with the path.
     */
    private static void writeFile(Path file, Map<String, FileSum> sums, FileWriter writer) throws IOException {
        try {
            writeHook.beforeWrite(file);
            writer.write(file);
            try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
                channel.force(true);
            }
            sums.put(file.getFileName().toString(), sum(file));
        } catch (IOException e) {
            throw withPath(file, e);
        }
    }

    private static IOException withPath(Path file, IOException e) {
        String reason = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
        return reason.contains(file.toString()) ? e
                : new IOException("writing checkpoint file " + file + ": " + reason, e);
    }

    /** The size and CRC-32C of a file. */
    static FileSum sum(Path file) throws IOException {
        CRC32C crc = new CRC32C();
        long bytes = 0;
        ByteBuffer buffer = ByteBuffer.allocateDirect(1 << 20);
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            while (channel.read(buffer) >= 0) {
                buffer.flip();
                bytes += buffer.remaining();
                crc.update(buffer);
                buffer.clear();
            }
        }
        return new FileSum(bytes, (int) crc.getValue());
    }

    /**
     * Checks every file that state.json lists against its size and CRC-32C; a damaged or missing one is an
     * IOException naming it. Returns the state.
     */
    public static State verify(Path checkpoint) throws IOException {
        State state = readState(checkpoint);
        if (!state.files().containsKey(MODEL) || !state.files().containsKey(OPTIMIZER)) {
            throw new IOException(checkpoint.resolve(STATE) + ": lists no checksums of " + MODEL + " and "
                    + OPTIMIZER);
        }
        for (Map.Entry<String, FileSum> e : state.files().entrySet()) {
            Path file = checkpoint.resolve(e.getKey());
            if (!Files.isRegularFile(file)) {
                throw new IOException(file + ": missing (state.json lists it)");
            }
            FileSum found = sum(file);
            FileSum expected = e.getValue();
            if (found.bytes() != expected.bytes()) {
                throw new IOException(file + ": " + found.bytes() + " bytes, state.json says " + expected.bytes()
                        + " (truncated or overwritten)");
            }
            if (found.crc32c() != expected.crc32c()) {
                throw new IOException(file + ": damaged, CRC-32C " + String.format("%08x", found.crc32c())
                        + " where state.json says " + String.format("%08x", expected.crc32c()));
            }
        }
        return state;
    }

    /** The newest complete checkpoint of a run, as {@code checkpoints/latest} names it, or null when it has none. */
    public static Path latest(Path runDirectory) throws IOException {
        Path pointer = runDirectory.resolve("checkpoints").resolve(LATEST);
        if (!Files.isRegularFile(pointer)) {
            return null;
        }
        String name = readPointer(pointer);
        Path folder = runDirectory.resolve("checkpoints").resolve(name);
        if (!Files.isRegularFile(folder.resolve(STATE))) {
            throw new IOException(pointer + " names " + folder + ", which is not a complete checkpoint");
        }
        return folder;
    }

    /**
     * The checkpoints to resume from, best first: the one {@code latest} names, then the older complete ones, newest
     * first (when {@code latest} is missing or damaged, which {@code warnings} is told, every complete one). Empty
     * when the run has none. A resume tries them in order, so a damaged newest falls back to the previous one.
     */
    public static List<Path> candidates(Path runDirectory, Consumer<String> warnings) throws IOException {
        Path checkpoints = runDirectory.resolve("checkpoints");
        if (!Files.isDirectory(checkpoints)) {
            return List.of();
        }
        Path newest = null;
        try {
            newest = latest(runDirectory);
        } catch (IOException e) {
            warnings.accept(e.getMessage() + "; looking for older checkpoints");
        }
        List<Path> out = new ArrayList<>();
        if (newest != null) {
            out.add(newest);
        }
        String bound = newest == null ? null : newest.getFileName().toString();
        for (Path folder : folders(checkpoints).reversed()) {
            String name = folder.getFileName().toString();
            if (bound == null || name.compareTo(bound) < 0) {
                out.add(folder);
            }
        }
        return out;
    }

    /**
     * The newest checkpoint whose files match their checksums (see {@link #candidates}), warning of each damaged one
     * passed over; null when the run has no checkpoint, an IOException when it has some but none is loadable.
     */
    public static Path resumable(Path runDirectory, Consumer<String> warnings) throws IOException {
        List<Path> candidates = candidates(runDirectory, warnings);
        List<String> reasons = new ArrayList<>();
        for (Path candidate : candidates) {
            try {
                verify(candidate);
                return candidate;
            } catch (IOException e) {
                reasons.add(e.getMessage());
                warnings.accept("checkpoint " + candidate + " cannot be loaded (" + e.getMessage()
                        + "); falling back to the previous one");
            }
        }
        if (candidates.isEmpty()) {
            return null;
        }
        throw new IOException(runDirectory + ": no loadable checkpoint: " + String.join("; ", reasons));
    }

    /**
     * Reads and validates {@code state.json}: counters that are non-negative integers and a training config that
     * {@link TrainingConfig} accepts, so a damaged file is an error naming it here rather than later.
     */
    public static State readState(Path checkpoint) throws IOException {
        Path file = checkpoint.resolve(STATE);
        Object root = Json.readFile(file);
        if (!(root instanceof Map<?, ?> map) || !(map.get("step") instanceof Long step)
                || !(map.get("samples_seen") instanceof Long seen)
                || !(map.get("training_config") instanceof Map<?, ?> config)) {
            throw new IOException(file + ": expected {\"step\": int, \"samples_seen\": int, \"training_config\": {...}}");
        }
        if (step < 0 || seen < 0) {
            throw new IOException(file + ": step " + step + " and samples_seen " + seen + " must not be negative");
        }
        long optimizerStep = step;
        if (map.containsKey("optimizer_step")) {
            if (!(map.get("optimizer_step") instanceof Long o) || o < 0 || o > step) {
                throw new IOException(file + ": optimizer_step must be an integer in [0, step " + step + "], got "
                        + map.get("optimizer_step"));
            }
            optimizerStep = o;
        }
        try {
            TrainingConfig.fromMap(config);
        } catch (IllegalArgumentException e) {
            throw new IOException(file + ": training_config: " + e.getMessage(), e);
        }
        return new State(step, seen, Json.write(config), optimizerStep, fileSums(file, map.get("files")));
    }

    private static Map<String, FileSum> fileSums(Path file, Object json) throws IOException {
        if (json == null) {
            return Map.of();
        }
        if (!(json instanceof Map<?, ?> files)) {
            throw new IOException(file + ": 'files' must be an object");
        }
        Map<String, FileSum> sums = new LinkedHashMap<>();
        for (Map.Entry<?, ?> e : files.entrySet()) {
            // Only the names this class writes: a hostile state.json must not make a resume read other paths.
            if (!List.of(MODEL, EMA, OPTIMIZER).contains(e.getKey())
                    || !(e.getValue() instanceof Map<?, ?> entry) || !(entry.get("bytes") instanceof Long bytes)
                    || bytes < 0 || !(entry.get("crc32c") instanceof String crc) || !crc.matches("[0-9a-f]{8}")) {
                throw new IOException(file + ": 'files' must map " + MODEL + ", " + EMA + " or " + OPTIMIZER
                        + " to {\"bytes\": int, \"crc32c\": \"8 hex digits\"}, got " + e.getKey());
            }
            sums.put((String) e.getKey(), new FileSum(bytes, Integer.parseUnsignedInt(crc, 16)));
        }
        return sums;
    }

    /**
     * Loads weights, optimizer moments and EMA from a checkpoint into existing objects, after checking every file
     * against its checksum (nothing is loaded from a damaged checkpoint).
     */
    public static void restore(Path checkpoint, MicroDiT model, AdamW optimizer, ExponentialMovingAverage ema)
            throws IOException {
        State state = verify(checkpoint);
        Weights.load(model, checkpoint.resolve(MODEL));
        try (MemoryScope scope = new MemoryScope("checkpoint-restore")) {
            Map<String, Tensor> moments = Safetensors.read(checkpoint.resolve(OPTIMIZER), scope).tensors();
            try {
                optimizer.restore(moments, state.optimizerStep());
            } catch (IllegalArgumentException e) {
                throw new IOException(checkpoint.resolve(OPTIMIZER) + ": " + e.getMessage(), e);
            }
            if (ema != null) {
                Path emaFile = checkpoint.resolve(EMA);
                if (!Files.isRegularFile(emaFile)) {
                    throw new IOException(checkpoint + ": the run uses EMA but the checkpoint has no " + EMA);
                }
                Map<String, Tensor> averaged = Safetensors.read(emaFile, scope).tensors();
                for (Map.Entry<String, Tensor> e : ema.weights().entrySet()) {
                    Tensor source = averaged.get(e.getKey());
                    if (source == null || !source.sameShape(e.getValue())) {
                        throw new IOException(emaFile + ": missing or misshapen '" + e.getKey() + "'");
                    }
                    model.backend().copy(source, e.getValue());
                }
            }
        }
    }

    /**
     * The folder name in {@code latest}: it must look like one this class writes, so a damaged or hostile pointer
     * can neither name a path outside the run nor make the reader load a huge file.
     */
    private static String readPointer(Path pointer) throws IOException {
        byte[] bytes;
        try (InputStream in = Files.newInputStream(pointer)) {
            bytes = in.readNBytes(MAX_POINTER_BYTES + 1);
        }
        String name = new String(bytes, StandardCharsets.UTF_8).strip();
        if (bytes.length > MAX_POINTER_BYTES || !name.matches(FOLDER_PATTERN)) {
            throw new IOException(pointer + ": does not name a checkpoint folder (step-NNNNNNN)");
        }
        return name;
    }

    private static void writeDurably(Path file, String text) throws IOException {
        try {
            writeHook.beforeWrite(file);
            try (FileChannel channel = FileChannel.open(file, StandardOpenOption.CREATE_NEW,
                    StandardOpenOption.WRITE)) {
                ByteBuffer bytes = ByteBuffer.wrap(text.getBytes(StandardCharsets.UTF_8));
                while (bytes.hasRemaining()) {
                    channel.write(bytes);
                }
                channel.force(true);
            }
        } catch (IOException e) {
            throw withPath(file, e);
        }
    }

    private static void move(Path from, Path to) throws IOException {
        try {
            Files.move(from, to, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            throw new IOException("cannot rename " + from + " to " + to + " atomically on this file system", e);
        }
    }

    /** Flushes a directory's entries (best effort: not every platform allows opening a directory). */
    private static void fsync(Path directory) {
        try (FileChannel channel = FileChannel.open(directory, StandardOpenOption.READ)) {
            channel.force(true);
        } catch (IOException ignored) {
            // Directory fsync is unsupported on some systems; the files themselves were forced.
        }
    }

    /** The complete checkpoint folders (renamed into place only once complete), oldest first. */
    private static List<Path> folders(Path checkpoints) throws IOException {
        try (Stream<Path> entries = Files.list(checkpoints)) {
            return entries.filter(p -> p.getFileName().toString().matches(FOLDER_PATTERN) && Files.isDirectory(p))
                    .sorted(Comparator.comparing(p -> p.getFileName().toString()))
                    .toList();
        }
    }

    private static void prune(Path checkpoints, int keep) throws IOException {
        List<Path> complete = folders(checkpoints);
        for (int i = 0; i < complete.size() - keep; i++) {
            deleteRecursively(complete.get(i));
        }
    }

    /**
     * Removes what a writer killed mid-checkpoint left behind (its temporary folder or pointer): only the run's one
     * writer creates them, and it is here, so none is in use.
     */
    private static void removeTemporaries(Path checkpoints) throws IOException {
        List<Path> stale;
        try (Stream<Path> entries = Files.list(checkpoints)) {
            stale = entries.filter(p -> p.getFileName().toString().matches("\\.(step-[0-9]+|latest)\\.tmp--?[0-9]+"))
                    .toList();
        }
        for (Path p : stale) {
            deleteRecursively(p);
        }
    }

    /** Cleans up after a failed write without hiding why it failed. */
    private static void deleteQuietly(Path path, Exception cause) {
        try {
            deleteRecursively(path);
        } catch (IOException e) {
            cause.addSuppressed(e);
        }
    }

    private static void deleteRecursively(Path path) throws IOException {
        if (!Files.exists(path)) {
            return;
        }
        try (Stream<Path> walk = Files.walk(path)) {
            for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        }
    }
}
