package io.microdit.model;

import io.microdit.autograd.Parameter;
import io.microdit.backend.Backend;
import io.microdit.io.Safetensors;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * A model's weights as a safetensors file with the official state-dict names (the DiT's {@code state_dict()},
 * buffers {@code pos_embed} [1, T, D] and {@code mask_token} [1, 1, p²·C] included), so files move between
 * microdit and PyTorch's {@code load_state_dict} unchanged. The config is stored in the metadata. The model's
 * tensors live on its backend: saving downloads each once to the host, loading uploads each once.
 */
public final class Weights {
    /** The metadata key under which a weights file keeps its model's config as JSON ({@link ConfigFile}'s format). */
    public static final String CONFIG_METADATA = "microdit.config";

    private Weights() {
    }

    /** Writes the model's weights atomically (temp file, fsync, rename). */
    public static void save(MicroDiT model, Path file, Map<String, String> extraMetadata) throws IOException {
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        for (Parameter p : model.parameters().all()) {
            tensors.put(p.name(), p.value());
        }
        save(model, tensors, file, extraMetadata);
    }

    /**
     * Writes other weights of the same model (e.g. its moving average; host or backend tensors), by official name,
     * atomically.
     */
    public static void save(MicroDiT model, Map<String, Tensor> weights, Path file, Map<String, String> extraMetadata)
            throws IOException {
        try (MemoryScope scope = new MemoryScope("weights-buffers")) {
            Map<String, Tensor> tensors = download(model.backend(), weights, scope);
            MicroDiTConfig c = model.config();
            tensors.put("pos_embed", model.backend().download(model.positionEmbedding(), scope)
                    .reshape(1, c.tokens(), c.dim()));
            tensors.put("mask_token", scope.zeros(1, 1, c.patchFeatures()));
            Map<String, String> metadata = new LinkedHashMap<>(extraMetadata);
            metadata.put(CONFIG_METADATA, ConfigFile.toJson(c));
            Safetensors.write(file, tensors, metadata);
        }
    }

    /**
     * Loads every parameter by name (F32, BF16 or F16 in the file; converted to F32). Buffers in the file are
     * accepted and ignored ({@code pos_embed} is recomputed for the model's resolution, as the official 512-px
     * stages do). A missing or unexpected tensor, or a shape that differs, is an error naming the file and tensor.
     */
    public static void load(MicroDiT model, Path file) throws IOException {
        try (MemoryScope scope = new MemoryScope("weights-load")) {
            Map<String, Tensor> tensors = Safetensors.read(file, scope).tensors();
            Set<String> unexpected = new TreeSet<>(tensors.keySet());
            unexpected.removeAll(Set.of("pos_embed", "mask_token"));
            for (Parameter p : model.parameters().all()) {
                Tensor source = tensors.get(p.name());
                if (source == null) {
                    throw new IOException(file + ": missing tensor '" + p.name() + "' " + p.value().describe());
                }
                if (!Arrays.equals(source.shape(), p.value().shape())) {
                    throw new IOException(file + ": tensor '" + p.name() + "' has shape "
                            + Arrays.toString(source.shape()) + ", the model needs "
                            + Arrays.toString(p.value().shape()));
                }
                model.backend().copy(source.dtype() == DType.F32 ? source : source.to(DType.F32, scope), p.value());
                unexpected.remove(p.name());
            }
            if (!unexpected.isEmpty()) {
                throw new IOException(file + ": tensors the model does not have: " + unexpected);
            }
        }
    }

    /** Host views of {@code tensors} in their order: copies in {@code hostScope} where the backend's memory is not. */
    public static Map<String, Tensor> download(Backend backend, Map<String, Tensor> tensors, MemoryScope hostScope) {
        Map<String, Tensor> host = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : tensors.entrySet()) {
            host.put(e.getKey(), backend.download(e.getValue(), hostScope));
        }
        return host;
    }
}
