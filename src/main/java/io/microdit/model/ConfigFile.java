package io.microdit.model;

import io.microdit.io.Json;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Reads a {@link MicroDiTConfig} from JSON with the official DiT constructor's field names. A file may start from
 * a built-in config ({@code "base": "microdit-tiny-2"}) and override fields; fields it leaves out take the
 * official constructor's defaults. Multipliers are a list or {@code {"linspace": [start, stop]}} (depth values).
 * Unknown fields are errors, so a typo never silently falls back to a default. Numbers must be finite (a
 * huge integer literal would otherwise become an infinite double) and depths at most {@value #MAX_DEPTH}, since a
 * depth sizes the per-block multiplier arrays allocated while reading.
 */
public final class ConfigFile {
    /** Far above any real model (DiT-XL has 28 blocks); bounds what a hostile depth makes the reader allocate. */
    static final int MAX_DEPTH = 4096;
    private static final Set<String> FIELDS = Set.of("name", "base", "input_size", "patch_size", "in_channels", "dim",
            "depth", "head_dim", "multiple_of", "caption_channels", "pos_interp_scale", "norm_eps", "depth_init",
            "qkv_multipliers", "ffn_multipliers", "use_patch_mixer", "patch_mixer_depth", "patch_mixer_dim",
            "patch_mixer_qkv_ratio", "patch_mixer_mlp_ratio", "use_bias", "num_experts", "expert_capacity",
            "experts_every_n");

    private ConfigFile() {
    }

    /** A built-in name, or the path of a JSON config file. */
    public static MicroDiTConfig resolve(String nameOrPath) throws IOException {
        if (MicroDiTConfigs.NAMES.contains(nameOrPath)) {
            return MicroDiTConfigs.builtin(nameOrPath);
        }
        Path file = Path.of(nameOrPath);
        if (!Files.isRegularFile(file)) {
            throw new IOException("config '" + nameOrPath + "' is neither a built-in config ("
                    + String.join(", ", MicroDiTConfigs.NAMES) + ") nor a file");
        }
        return read(file);
    }

    /**
     * Reads a config file as the class comment describes; throws {@link IOException} naming the file and the field for
     * unreadable JSON, an unknown field or base, or a value the config refuses.
     */
    public static MicroDiTConfig read(Path file) throws IOException {
        Object root = Json.readFile(file);
        if (!(root instanceof Map<?, ?> map)) {
            throw new IOException(file + ": a config must be a JSON object");
        }
        try {
            return fromMap(map, file.getFileName().toString().replaceFirst("\\.json$", ""));
        } catch (IllegalArgumentException e) {
            throw new IOException(file + ": " + e.getMessage(), e);
        }
    }

    /** The JSON text of a config (every field, multipliers as lists). */
    public static String toJson(MicroDiTConfig c) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("name", c.name());
        m.put("input_size", (long) c.inputSize());
        m.put("patch_size", (long) c.patchSize());
        m.put("in_channels", (long) c.inChannels());
        m.put("dim", (long) c.dim());
        m.put("depth", (long) c.depth());
        m.put("head_dim", (long) c.headDim());
        m.put("multiple_of", (long) c.multipleOf());
        m.put("caption_channels", (long) c.captionChannels());
        m.put("pos_interp_scale", c.posInterpScale());
        m.put("norm_eps", c.normEps());
        m.put("depth_init", c.depthInit());
        m.put("qkv_multipliers", toList(c.qkvMultipliers()));
        m.put("ffn_multipliers", toList(c.ffnMultipliers()));
        m.put("use_patch_mixer", c.usePatchMixer());
        m.put("patch_mixer_depth", (long) c.patchMixerDepth());
        m.put("patch_mixer_dim", (long) c.patchMixerDim());
        m.put("patch_mixer_qkv_ratio", c.patchMixerQkvRatio());
        m.put("patch_mixer_mlp_ratio", c.patchMixerMlpRatio());
        m.put("use_bias", c.useBias());
        m.put("num_experts", (long) c.numExperts());
        m.put("expert_capacity", c.expertCapacity());
        m.put("experts_every_n", (long) c.expertsEveryN());
        return Json.write(m);
    }

    private static List<Object> toList(double[] values) {
        return java.util.Arrays.stream(values).boxed().map(v -> (Object) v).toList();
    }

    static MicroDiTConfig fromMap(Map<?, ?> map, String defaultName) {
        for (Object key : map.keySet()) {
            if (!FIELDS.contains(key)) {
                throw new IllegalArgumentException("unknown config field '" + key + "' (fields: "
                        + String.join(", ", new java.util.TreeSet<>(FIELDS)) + ")");
            }
        }
        Fields f = new Fields(map, map.containsKey("base")
                ? MicroDiTConfigs.builtin(string(map.get("base"), "base")) : null);
        int depth = f.integer("depth", MicroDiTConfig::depth, 28);
        if (depth < 1 || depth > MAX_DEPTH) {
            throw new IllegalArgumentException("config field 'depth' must be in [1, " + MAX_DEPTH + "], got " + depth);
        }
        return new MicroDiTConfig(
                map.containsKey("name") ? string(map.get("name"), "name") : defaultName,
                f.integer("input_size", MicroDiTConfig::inputSize, 32),
                f.integer("patch_size", MicroDiTConfig::patchSize, 2),
                f.integer("in_channels", MicroDiTConfig::inChannels, 4),
                f.integer("dim", MicroDiTConfig::dim, 1152),
                depth,
                f.integer("head_dim", MicroDiTConfig::headDim, 64),
                f.integer("multiple_of", MicroDiTConfig::multipleOf, 256),
                f.integer("caption_channels", MicroDiTConfig::captionChannels, 1024),
                f.number("pos_interp_scale", MicroDiTConfig::posInterpScale, 1.0),
                f.number("norm_eps", MicroDiTConfig::normEps, 1e-6),
                f.bool("depth_init", MicroDiTConfig::depthInit, true),
                f.multipliers("qkv_multipliers", MicroDiTConfig::qkvMultipliers, new double[] {1.0}, depth),
                f.multipliers("ffn_multipliers", MicroDiTConfig::ffnMultipliers, new double[] {4.0}, depth),
                f.bool("use_patch_mixer", MicroDiTConfig::usePatchMixer, true),
                f.integer("patch_mixer_depth", MicroDiTConfig::patchMixerDepth, 4),
                f.integer("patch_mixer_dim", MicroDiTConfig::patchMixerDim, 512),
                f.number("patch_mixer_qkv_ratio", MicroDiTConfig::patchMixerQkvRatio, 1.0),
                f.number("patch_mixer_mlp_ratio", MicroDiTConfig::patchMixerMlpRatio, 1.0),
                f.bool("use_bias", MicroDiTConfig::useBias, true),
                f.integer("num_experts", MicroDiTConfig::numExperts, 8),
                f.number("expert_capacity", MicroDiTConfig::expertCapacity, 1.0),
                f.integer("experts_every_n", MicroDiTConfig::expertsEveryN, 2));
    }

    private static String string(Object value, String field) {
        if (!(value instanceof String s)) {
            throw new IllegalArgumentException("config field '" + field + "' must be a string, got " + value);
        }
        return s;
    }

    private static double finite(Object value, String what) {
        if (!(value instanceof Number n) || !Double.isFinite(n.doubleValue())) {
            throw new IllegalArgumentException(what + " must be a finite number, got " + value);
        }
        return n.doubleValue();
    }

    /** Field lookup: the JSON value, else the base config's, else the official default. */
    private record Fields(Map<?, ?> map, MicroDiTConfig base) {
        int integer(String field, java.util.function.ToIntFunction<MicroDiTConfig> fromBase, int fallback) {
            Object v = map.get(field);
            if (v == null) {
                return base != null ? fromBase.applyAsInt(base) : fallback;
            }
            if (!(v instanceof Long l) || l > Integer.MAX_VALUE || l < Integer.MIN_VALUE) {
                throw new IllegalArgumentException("config field '" + field + "' must be an integer, got " + v);
            }
            return (int) (long) l;
        }

        double number(String field, java.util.function.ToDoubleFunction<MicroDiTConfig> fromBase, double fallback) {
            Object v = map.get(field);
            if (v == null) {
                return base != null ? fromBase.applyAsDouble(base) : fallback;
            }
            return finite(v, "config field '" + field + "'");
        }

        boolean bool(String field, java.util.function.Predicate<MicroDiTConfig> fromBase, boolean fallback) {
            Object v = map.get(field);
            if (v == null) {
                return base != null ? fromBase.test(base) : fallback;
            }
            if (!(v instanceof Boolean b)) {
                throw new IllegalArgumentException("config field '" + field + "' must be true or false, got " + v);
            }
            return b;
        }

        double[] multipliers(String field, java.util.function.Function<MicroDiTConfig, double[]> fromBase,
                             double[] fallback, int depth) {
            Object v = map.get(field);
            if (v == null) {
                if (base == null) {
                    return fallback;
                }
                double[] inherited = fromBase.apply(base);
                // A base's per-block linspace follows a changed depth: re-spread its end points.
                return inherited.length == depth || inherited.length == 1 ? inherited
                        : MicroDiTConfig.linspace(inherited[0], inherited[inherited.length - 1], depth);
            }
            if (v instanceof Map<?, ?> m && m.size() == 1 && m.get("linspace") instanceof List<?> ends
                    && ends.size() == 2) {
                String where = "config field '" + field + "' linspace end";
                return MicroDiTConfig.linspace(finite(ends.get(0), where), finite(ends.get(1), where), depth);
            }
            if (v instanceof List<?> list && !list.isEmpty()) {
                double[] out = new double[list.size()];
                for (int i = 0; i < out.length; i++) {
                    out[i] = finite(list.get(i), "config field '" + field + "' element " + i);
                }
                return out;
            }
            throw new IllegalArgumentException("config field '" + field + "' must be a list of numbers or "
                    + "{\"linspace\": [start, stop]}, got " + v);
        }
    }
}
