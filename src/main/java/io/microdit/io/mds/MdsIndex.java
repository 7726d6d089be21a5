package io.microdit.io.mds;

import io.microdit.io.Json;
import io.microdit.io.JsonException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * An MDS dataset's {@code index.json} (version 2): {@code {"shards": [...], "version": 2}}, each shard entry
 * holding its writer's config ({@code column_names}, {@code column_encodings}, {@code column_sizes} with null for a
 * variable size, {@code compression}, {@code format}, {@code hashes}, {@code size_limit}, {@code version}), its
 * sample count and its files: {@code raw_data} (the uncompressed shard) and {@code zip_data} (the compressed one,
 * null without compression), each {@code {"basename", "bytes", "hashes": {algorithm: hex digest}}}.
 */
final class MdsIndex {
    static final String FILE = "index.json";
    static final long MAX_SAMPLES = 0xffffffffL;

    record FileInfo(String basename, long bytes, Map<String, String> hashes) {
        Map<String, Object> toJson() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("basename", basename);
            m.put("bytes", bytes);
            m.put("hashes", new LinkedHashMap<>(hashes));
            return m;
        }
    }

    record Shard(List<String> columnNames, List<MdsEncoding> columnEncodings, String compression, FileInfo rawData,
                 FileInfo zipData, long samples, Long sizeLimit, List<String> hashes) {
        /** The file a reader opens: the compressed one when there is one. */
        FileInfo stored() {
            return zipData != null ? zipData : rawData;
        }

        /** The writer's config as the shard file embeds it and as index.json repeats it. */
        Map<String, Object> config() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("column_encodings", columnEncodings.stream().map(MdsEncoding::name).toList());
            m.put("column_names", columnNames);
            List<Object> sizes = new ArrayList<>();
            for (MdsEncoding e : columnEncodings) {
                sizes.add(e.fixedSize() < 0 ? null : e.fixedSize());
            }
            m.put("column_sizes", sizes);
            m.put("compression", compression);
            m.put("format", "mds");
            m.put("hashes", hashes);
            m.put("size_limit", sizeLimit);
            m.put("version", 2L);
            return m;
        }

        Map<String, Object> toJson() {
            Map<String, Object> m = config();
            m.put("raw_data", rawData.toJson());
            m.put("samples", samples);
            m.put("zip_data", zipData == null ? null : zipData.toJson());
            return m;
        }
    }

    private MdsIndex() {
    }

    /** The shards {@code file} lists, every field checked. */
    static List<Shard> read(Path file) throws MdsException {
        Object root;
        try {
            root = Json.parse(Files.readString(file, StandardCharsets.UTF_8));
        } catch (JsonException e) {
            throw new MdsException(file + ": not JSON: " + e.getMessage(), e);
        } catch (IOException e) {
            throw new MdsException(file + ": " + e.getMessage(), e);
        }
        try {
            if (!(root instanceof Map<?, ?> map)) {
                throw new IllegalArgumentException("an index is a JSON object");
            }
            if (!Long.valueOf(2).equals(map.get("version"))) {
                throw new IllegalArgumentException("'version' must be 2 (MDS index version 2), got "
                        + map.get("version"));
            }
            if (!(map.get("shards") instanceof List<?> list)) {
                throw new IllegalArgumentException("'shards' must be a list");
            }
            List<Shard> shards = new ArrayList<>();
            Set<String> basenames = new HashSet<>();
            for (int i = 0; i < list.size(); i++) {
                try {
                    Shard shard = shard(list.get(i));
                    for (FileInfo f : shard.zipData == null ? List.of(shard.rawData)
                            : List.of(shard.rawData, shard.zipData)) {
                        if (!basenames.add(f.basename)) {
                            throw new IllegalArgumentException("file '" + f.basename + "' is listed twice");
                        }
                    }
                    shards.add(shard);
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException("shards[" + i + "]: " + e.getMessage(), e);
                }
            }
            return shards;
        } catch (IllegalArgumentException e) {
            throw new MdsException(file + ": " + e.getMessage(), e);
        }
    }

    private static Shard shard(Object entry) {
        if (!(entry instanceof Map<?, ?> map)) {
            throw new IllegalArgumentException("a shard entry is a JSON object");
        }
        if (!"mds".equals(map.get("format"))) {
            throw new IllegalArgumentException("format '" + map.get("format") + "' is not supported (only mds)");
        }
        if (!Long.valueOf(2).equals(map.get("version"))) {
            throw new IllegalArgumentException("'version' must be 2, got " + map.get("version"));
        }
        List<String> names = strings(map, "column_names");
        List<String> encodingNames = strings(map, "column_encodings");
        if (!(map.get("column_sizes") instanceof List<?> sizes) || sizes.size() != names.size()
                || encodingNames.size() != names.size()) {
            throw new IllegalArgumentException("column_names, column_encodings and column_sizes must be lists of "
                    + "one length");
        }
        if (new HashSet<>(names).size() != names.size()) {
            throw new IllegalArgumentException("column_names repeats a name: " + names);
        }
        List<MdsEncoding> encodings = new ArrayList<>();
        for (int c = 0; c < names.size(); c++) {
            MdsEncoding encoding = MdsEncoding.parse(encodingNames.get(c));
            Object size = sizes.get(c);
            long expected = encoding.fixedSize();
            if (expected < 0 ? size != null : !Long.valueOf(expected).equals(size)) {
                throw new IllegalArgumentException("column '" + names.get(c) + "' (" + encoding + ") has size "
                        + (expected < 0 ? "null (variable)" : expected) + ", the index says " + size);
            }
            encodings.add(encoding);
        }
        Object compression = map.get("compression");
        if (compression != null && !(compression instanceof String)) {
            throw new IllegalArgumentException("'compression' must be a string or null");
        }
        String codec = (String) compression;
        if (codec != null) {
            MdsCompression.check(codec);
        }
        FileInfo raw = file(map.get("raw_data"), "raw_data");
        FileInfo zip = map.get("zip_data") == null ? null : file(map.get("zip_data"), "zip_data");
        if ((codec == null) != (zip == null)) {
            throw new IllegalArgumentException(codec == null ? "zip_data is given without a compression"
                    : "compression " + codec + " needs zip_data");
        }
        long samples = count(map.get("samples"), "samples", MAX_SAMPLES);
        Object limit = map.get("size_limit");
        Long sizeLimit = limit == null ? null : count(limit, "size_limit", Long.MAX_VALUE);
        List<String> hashes = map.get("hashes") == null ? List.of() : strings(map, "hashes");
        return new Shard(names, List.copyOf(encodings), codec, raw, zip, samples, sizeLimit, hashes);
    }

    private static FileInfo file(Object entry, String key) {
        if (!(entry instanceof Map<?, ?> map)) {
            throw new IllegalArgumentException(key + " must be an object {basename, bytes, hashes}");
        }
        if (!(map.get("basename") instanceof String name) || name.isEmpty() || name.equals(".")
                || name.equals("..") || name.contains("/") || name.contains("\\") || name.indexOf('\0') >= 0) {
            // A basename is a file beside index.json: a path would let an index point anywhere on the disk.
            throw new IllegalArgumentException(key + ".basename must be a plain file name, got "
                    + map.get("basename"));
        }
        long bytes = count(map.get("bytes"), key + ".bytes", Long.MAX_VALUE);
        Map<String, String> hashes = new LinkedHashMap<>();
        Object h = map.get("hashes");
        if (h != null) {
            if (!(h instanceof Map<?, ?> hm)) {
                throw new IllegalArgumentException(key + ".hashes must be an object");
            }
            for (Map.Entry<?, ?> e : hm.entrySet()) {
                if (!(e.getValue() instanceof String digest)) {
                    throw new IllegalArgumentException(key + ".hashes." + e.getKey() + " must be a hex string");
                }
                hashes.put((String) e.getKey(), digest);
            }
        }
        return new FileInfo(name, bytes, hashes);
    }

    private static long count(Object value, String key, long max) {
        if (!(value instanceof Long n) || n < 0 || n > max) {
            throw new IllegalArgumentException("'" + key + "' must be an integer in [0, " + max + "], got " + value);
        }
        return n;
    }

    private static List<String> strings(Map<?, ?> map, String key) {
        if (!(map.get(key) instanceof List<?> list)) {
            throw new IllegalArgumentException("'" + key + "' must be a list of strings");
        }
        List<String> out = new ArrayList<>();
        for (Object o : list) {
            if (!(o instanceof String s)) {
                throw new IllegalArgumentException("'" + key + "' must be a list of strings, holds " + o);
            }
            out.add(s);
        }
        return List.copyOf(out);
    }
}
