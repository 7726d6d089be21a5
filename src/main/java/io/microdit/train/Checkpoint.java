package io.microdit.train;

import io.microdit.io.Json;
import io.microdit.io.Safetensors;
import io.microdit.model.MicroDiT;
import io.microdit.model.Weights;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.io.IOException;
import java.io.InputStream;
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
import java.util.stream.Stream;

/**
 * A training checkpoint: a folder {@code checkpoints/step-NNNNNNN} holding {@code model.safetensors} (weights, the
 * official names), {@code ema.safetensors} (the moving average, same names, when EMA is on),
 * {@code optimizer.safetensors} (AdamW moments {@code <name>.exp_avg}/{@code .exp_avg_sq}) and {@code state.json}
 * (step, samples seen, the training config). The folder is written under a temporary name, every file fsynced,
 * then renamed in one atomic step; {@code checkpoints/latest} names the newest complete one. A crash at any
 * moment leaves the previous checkpoint intact.
 */
public final class Checkpoint {
    public static final String MODEL = "model.safetensors";
    public static final String EMA = "ema.safetensors";
    public static final String OPTIMIZER = "optimizer.safetensors";
    public static final String STATE = "state.json";
    private static final String LATEST = "latest";
    private static final int MAX_POINTER_BYTES = 64;

    /** What state.json holds. */
    public record State(long step, long samplesSeen, String trainingConfigJson) {
        /** The text of {@code state.json}. */
        public String toJson() throws IOException {
            Map<String, Object> json = new LinkedHashMap<>();
            json.put("step", step);
            json.put("samples_seen", samplesSeen);
            json.put("training_config", Json.parse(trainingConfigJson));
            return Json.write(json);
        }
    }

    private Checkpoint() {
    }

    /**
     * Writes a checkpoint and keeps the newest {@code keep}; returns its folder. {@code optimizerState} is every
     * parameter's AdamW moments ({@link AdamW#state()}, gathered from the ranks when they are sharded).
     */
    public static Path write(Path runDirectory, State state, MicroDiT model, Map<String, Tensor> optimizerState,
                             ExponentialMovingAverage ema, int keep) throws IOException {
        Path checkpoints = Files.createDirectories(runDirectory.resolve("checkpoints"));
        String name = String.format("step-%07d", state.step());
        Path target = checkpoints.resolve(name);
        Path temporary = checkpoints.resolve("." + name + ".tmp-" + System.nanoTime());
        Files.createDirectory(temporary);
        try {
            Map<String, String> metadata = Map.of("microdit.step", Long.toString(state.step()));
            Weights.save(model, temporary.resolve(MODEL), metadata);
            if (ema != null) {
                Weights.save(model, ema.weights(), temporary.resolve(EMA), metadata);
            }
            try (MemoryScope host = new MemoryScope("checkpoint-moments")) {
                Safetensors.write(temporary.resolve(OPTIMIZER), Weights.download(model.backend(), optimizerState,
                        host), metadata);
            }
            writeDurably(temporary.resolve(STATE), state.toJson());
            fsync(temporary);
            if (Files.exists(target)) {
                deleteRecursively(target);
            }
            move(temporary, target);
            fsync(checkpoints);
        } catch (IOException | RuntimeException e) {
            deleteRecursively(temporary);
            throw e;
        }
        Path latestTemporary = checkpoints.resolve("." + LATEST + ".tmp-" + System.nanoTime());
        writeDurably(latestTemporary, name + "\n");
        move(latestTemporary, checkpoints.resolve(LATEST));
        fsync(checkpoints);
        prune(checkpoints, keep);
        return target;
    }

    /** The newest complete checkpoint of a run, or null when it has none. */
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
        try {
            TrainingConfig.fromMap(config);
        } catch (IllegalArgumentException e) {
            throw new IOException(file + ": training_config: " + e.getMessage(), e);
        }
        return new State(step, seen, Json.write(config));
    }

    /** Loads weights, optimizer moments and EMA from a checkpoint into existing objects. */
    public static void restore(Path checkpoint, MicroDiT model, AdamW optimizer, ExponentialMovingAverage ema)
            throws IOException {
        State state = readState(checkpoint);
        Weights.load(model, checkpoint.resolve(MODEL));
        try (MemoryScope scope = new MemoryScope("checkpoint-restore")) {
            Map<String, Tensor> moments = Safetensors.read(checkpoint.resolve(OPTIMIZER), scope).tensors();
            try {
                optimizer.restore(moments, state.step());
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
        if (bytes.length > MAX_POINTER_BYTES || !name.matches("step-[0-9]{7,19}")) {
            throw new IOException(pointer + ": does not name a checkpoint folder (step-NNNNNNN)");
        }
        return name;
    }

    private static void writeDurably(Path file, String text) throws IOException {
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            channel.write(java.nio.ByteBuffer.wrap(text.getBytes(StandardCharsets.UTF_8)));
            channel.force(true);
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

    private static void prune(Path checkpoints, int keep) throws IOException {
        List<Path> complete = new ArrayList<>();
        try (Stream<Path> entries = Files.list(checkpoints)) {
            entries.filter(p -> p.getFileName().toString().matches("step-\\d+") && Files.isDirectory(p))
                    .sorted(Comparator.comparing(p -> p.getFileName().toString()))
                    .forEach(complete::add);
        }
        for (int i = 0; i < complete.size() - keep; i++) {
            deleteRecursively(complete.get(i));
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
