package io.microdit.cli;

import io.microdit.io.Safetensors;
import io.microdit.io.torch.StorageType;
import io.microdit.io.torch.TorchFile;
import io.microdit.io.torch.TorchTensor;
import io.microdit.model.ConfigFile;
import io.microdit.model.MicroDiTConfig;
import io.microdit.model.ParameterLayout;
import io.microdit.model.Weights;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * Converts DiT weights between PyTorch checkpoints and safetensors, both ways, with the official names. A {@code .pt}
 * is read without executing anything ({@link TorchFile}); it holds either the DiT's state dict or a Composer
 * checkpoint, whose model state sits at {@code state.model} under {@code dit.} (and possibly {@code model.})
 * prefixes, beside the VAE's and text encoder's weights, which are skipped. float32 and bfloat16 stay as they are;
 * float16 becomes float32, exactly (microdit has no F16 type; every half is a float).
 */
@Command(name = "convert", description = "Convert DiT weights between a PyTorch .pt (state dict or Composer"
        + " checkpoint) and .safetensors, either way; nothing in a .pt is executed.")
final class ConvertCommand implements Callable<Integer> {
    @Option(names = "--from", required = true, description = "Input: .pt/.pth or .safetensors.")
    Path from;

    @Option(names = "--to", required = true, description = "Output: .safetensors or .pt/.pth (the other format).")
    Path to;

    @Option(names = "--config", description = "Built-in config name or JSON file to check the tensors against.")
    String config;

    @Override
    public Integer call() throws Exception {
        MicroDiTConfig c = config == null ? null : ConfigFile.resolve(config);
        boolean fromTorch = isTorch(from);
        if (fromTorch == isTorch(to) || !(isSafetensors(from) || isSafetensors(to))) {
            throw new IOException("convert: one of --from and --to must be a .pt/.pth file and the other a"
                    + " .safetensors file (got " + from.getFileName() + " and " + to.getFileName() + ")");
        }
        try (MemoryScope scope = new MemoryScope("convert")) {
            Map<String, Tensor> tensors = fromTorch ? readTorch(c, scope) : Safetensors.read(from, scope).tensors();
            if (!fromTorch && c != null) {
                Map<String, int[]> shapes = new LinkedHashMap<>();
                tensors.forEach((name, tensor) -> shapes.put(name, tensor.shape()));
                check(shapes, c);
            }
            if (fromTorch) {
                Map<String, String> metadata = new LinkedHashMap<>();
                metadata.put("microdit.converted_from", from.getFileName().toString());
                if (c != null) {
                    metadata.put(Weights.CONFIG_METADATA, ConfigFile.toJson(c));
                }
                Safetensors.write(to, tensors, metadata);
            } else {
                TorchFile.write(to, tensors);
            }
            System.out.println("wrote " + to + ": " + tensors.size() + " tensors"
                    + (c == null ? " (not checked: no --config)" : ", checked against " + c.name()));
        }
        return 0;
    }

    private Map<String, Tensor> readTorch(MicroDiTConfig c, MemoryScope scope) throws IOException {
        try (TorchFile torch = TorchFile.open(from)) {
            Map<String, TorchTensor> named = stateDict(torch.root());
            if (c != null) {
                Map<String, int[]> shapes = new LinkedHashMap<>();
                named.forEach((name, tensor) -> shapes.put(name, tensor.shape()));
                check(shapes, c);
            }
            Map<String, Tensor> tensors = new LinkedHashMap<>();
            int halves = 0;
            for (Map.Entry<String, TorchTensor> entry : named.entrySet()) {
                tensors.put(entry.getKey(), torch.load(entry.getValue(), scope));
                halves += entry.getValue().type() == StorageType.HALF ? 1 : 0;
            }
            if (halves > 0) {
                System.out.println(halves + " float16 tensors converted to float32 (exactly)");
            }
            return tensors;
        }
    }

    /**
     * The DiT tensors by official name: the root dict, or a Composer checkpoint's {@code state.model}; prefixes
     * stripped; when some names carry {@code dit.}, only those (the rest belong to the VAE and text encoder).
     */
    private Map<String, TorchTensor> stateDict(Object root) throws IOException {
        if (!(root instanceof Map<?, ?> top)) {
            throw new IOException(from + ": holds no dict of tensors (a state dict or Composer checkpoint)");
        }
        Map<?, ?> state = top;
        if (top.get("state") instanceof Map<?, ?> composer && composer.get("model") instanceof Map<?, ?> model) {
            state = model;
        }
        boolean hasDit = state.keySet().stream().anyMatch(k -> k instanceof String s
                && (s.startsWith("dit.") || s.startsWith("model.dit.")));
        Map<String, TorchTensor> named = new LinkedHashMap<>();
        int skipped = 0;
        for (Map.Entry<?, ?> entry : state.entrySet()) {
            if (!(entry.getKey() instanceof String key)) {
                throw new IOException(from + ": state dict key " + entry.getKey() + " is not a string");
            }
            String name = key.startsWith("model.") ? key.substring("model.".length()) : key;
            if (hasDit && !name.startsWith("dit.")) {
                skipped++;
                continue;
            }
            name = hasDit ? name.substring("dit.".length()) : name;
            if (!(entry.getValue() instanceof TorchTensor tensor)) {
                throw new IOException(from + ": state dict entry '" + key + "' is not a tensor");
            }
            if (named.put(name, tensor) != null) {
                throw new IOException(from + ": two entries are named '" + name + "' once the model./dit. prefixes"
                        + " are stripped");
            }
        }
        if (skipped > 0) {
            System.out.println("skipped " + skipped + " tensors outside the DiT (no dit. prefix)");
        }
        return named;
    }

    /** Every parameter present with its layout shape; buffers optional but shaped right; nothing else. */
    private void check(Map<String, int[]> shapes, MicroDiTConfig c) throws IOException {
        Map<String, int[]> expected = new LinkedHashMap<>();
        for (ParameterLayout.Entry entry : ParameterLayout.of(c).entries()) {
            expected.put(entry.name(), entry.shape());
        }
        Map<String, int[]> buffers = Map.of("pos_embed", new int[] {1, c.tokens(), c.dim()},
                "mask_token", new int[] {1, 1, c.patchFeatures()});
        List<String> missing = new ArrayList<>();
        List<String> unexpected = new ArrayList<>();
        List<String> misshaped = new ArrayList<>();
        for (String name : expected.keySet()) {
            if (!shapes.containsKey(name)) {
                missing.add(name);
            }
        }
        for (Map.Entry<String, int[]> entry : shapes.entrySet()) {
            int[] want = expected.containsKey(entry.getKey()) ? expected.get(entry.getKey())
                    : buffers.get(entry.getKey());
            if (want == null) {
                unexpected.add(entry.getKey());
            } else if (!Arrays.equals(want, entry.getValue())) {
                misshaped.add(entry.getKey() + " " + Arrays.toString(entry.getValue()) + " (config: "
                        + Arrays.toString(want) + ")");
            }
        }
        if (!missing.isEmpty() || !unexpected.isEmpty() || !misshaped.isEmpty()) {
            throw new IOException(from + " does not match config " + c.name() + ": " + missing.size() + " missing "
                    + missing + ", " + unexpected.size() + " unexpected " + unexpected + ", " + misshaped.size()
                    + " with another shape " + misshaped);
        }
    }

    private static boolean isTorch(Path file) {
        String name = file.getFileName().toString().toLowerCase(Locale.ROOT);
        return name.endsWith(".pt") || name.endsWith(".pth");
    }

    private static boolean isSafetensors(Path file) {
        return file.getFileName().toString().toLowerCase(Locale.ROOT).endsWith(".safetensors");
    }
}
