package io.microdit.data;

import io.microdit.io.mds.MdsException;
import io.microdit.io.mds.MdsMix;
import io.microdit.io.mds.MdsStream;
import io.microdit.tensor.Tensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * The official MicroDiT training data: MDS datasets (MosaicML Streaming) of precomputed latents, one folder per
 * stream, as the official {@code StreamingLatentsDataset} reads them: the image latents from column
 * {@code latents_256} or {@code latents_512} (by image size; raw float16 bytes, [C, size/8, size/8], already scaled
 * by the VAE's factor) and the caption embeddings from {@code caption_latents} (raw float16 bytes, [L, Cc]:
 * [77, 1024] for the official text encoder), both converted to F32.
 *
 * <p>Indices name the samples of one epoch of the streams' mix ({@link MdsMix#composition} of epoch 0): with the
 * official loader's weighting (none: every sample of every stream once per epoch), and with any whole
 * {@code repeat}, that is every epoch's draw; a fractional share is drawn once, by the run's seed. The trainer's
 * {@code DataOrder} then shuffles them per (seed, epoch) and gives each rank its micro-batches.
 */
public final class MdsLatents implements TrainingData, AutoCloseable {
    /**
     * The MDS column of the caption embeddings: raw little-endian float16, [77, 1024] per sample in the official data.
     */
    public static final String CAPTION_KEY = "caption_latents";
    /** Pixels per latent pixel of the official VAE (SD's, 8× downsampling). */
    public static final int VAE_FACTOR = 8;
    private static final ValueLayout.OfShort HALF = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** One stream of the config: its folder and Streaming's weight (at most one of proportion, repeat, choose). */
    public record Stream(String local, Double proportion, Double repeat, Long choose) {
        MdsMix.Weight weight() {
            return new MdsMix.Weight(proportion, repeat, choose);
        }
    }

    /**
     * The training config's {@code "mds"} block: {@code streams} (each {@code {"local": folder, "proportion" |
     * "repeat" | "choose": …}}), {@code image_size} (256 or 512: picks {@code latents_<size>}; default the model's
     * latent size × 8) and {@code epoch_size} (samples per epoch with proportions).
     */
    public record Settings(List<Stream> streams, Integer imageSize, Long epochSize) {
        private static final Set<String> KEYS = Set.of("streams", "image_size", "epoch_size");
        private static final Set<String> STREAM_KEYS = Set.of("local", "proportion", "repeat", "choose");

        /** Copies {@code streams}; throws {@link IllegalArgumentException} when it is empty. */
        public Settings {
            if (streams.isEmpty()) {
                throw new IllegalArgumentException("mds.streams must list at least one folder");
            }
            streams = List.copyOf(streams);
        }

        /** Parses the block; errors name the key at fault. */
        public static Settings fromJson(Object block) {
            if (!(block instanceof Map<?, ?> map)) {
                throw new IllegalArgumentException("training config key 'mds' must be an object like {\"streams\": "
                        + "[{\"local\": \"/data/cc12m\"}]}");
            }
            checkKeys(map, KEYS, "mds");
            if (!(map.get("streams") instanceof List<?> list) || list.isEmpty()) {
                throw new IllegalArgumentException("mds.streams must be a non-empty list of {\"local\": folder}");
            }
            List<Stream> streams = new ArrayList<>();
            for (int i = 0; i < list.size(); i++) {
                String where = "mds.streams[" + i + "]";
                if (!(list.get(i) instanceof Map<?, ?> s)) {
                    throw new IllegalArgumentException(where + " must be an object");
                }
                checkKeys(s, STREAM_KEYS, where);
                if (!(s.get("local") instanceof String local)) {
                    throw new IllegalArgumentException(where + ".local must be a folder name");
                }
                Stream stream = new Stream(local, number(s, "proportion", where), number(s, "repeat", where),
                        integer(s, "choose", where));
                try {
                    stream.weight();
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException(where + ": " + e.getMessage(), e);
                }
                streams.add(stream);
            }
            Long size = integer(map, "image_size", "mds");
            if (size != null && size != 256 && size != 512) {
                throw new IllegalArgumentException("mds.image_size must be 256 or 512, got " + size);
            }
            return new Settings(streams, size == null ? null : size.intValue(), integer(map, "epoch_size", "mds"));
        }

        /** The block as {@link #fromJson} reads it, unset keys left out, so that a run's saved config reproduces it. */
        public Map<String, Object> toJson() {
            Map<String, Object> m = new LinkedHashMap<>();
            List<Object> list = new ArrayList<>();
            for (Stream s : streams) {
                Map<String, Object> sm = new LinkedHashMap<>();
                sm.put("local", s.local());
                putIfSet(sm, "proportion", s.proportion());
                putIfSet(sm, "repeat", s.repeat());
                putIfSet(sm, "choose", s.choose());
                list.add(sm);
            }
            m.put("streams", list);
            putIfSet(m, "image_size", imageSize == null ? null : imageSize.longValue());
            putIfSet(m, "epoch_size", epochSize);
            return m;
        }

        private static void putIfSet(Map<String, Object> m, String key, Object value) {
            if (value != null) {
                m.put(key, value);
            }
        }

        private static void checkKeys(Map<?, ?> map, Set<String> allowed, String where) {
            for (Object key : map.keySet()) {
                if (!allowed.contains(key)) {
                    throw new IllegalArgumentException("unknown key '" + key + "' in " + where + " (known: "
                            + String.join(", ", new TreeSet<>(allowed)) + ")");
                }
            }
        }

        private static Double number(Map<?, ?> map, String key, String where) {
            Object v = map.get(key);
            if (v != null && !(v instanceof Number)) {
                throw new IllegalArgumentException(where + "." + key + " must be a number, got " + v);
            }
            return v == null ? null : ((Number) v).doubleValue();
        }

        private static Long integer(Map<?, ?> map, String key, String where) {
            Object v = map.get(key);
            if (v != null && !(v instanceof Long)) {
                throw new IllegalArgumentException(where + "." + key + " must be an integer, got " + v);
            }
            return (Long) v;
        }
    }

    private final List<MdsStream> streams = new ArrayList<>();
    private final MdsMix mix;
    private final int[] samples;
    private final String latentKey;
    private final int[] latentShape;
    private final int[] captionShape;

    /**
     * Opens and checks every stream of {@code settings} for a model of {@code channels} × {@code latentSize}²
     * latents and captions of [{@code captionLength}, {@code captionChannels}]; every sample's two columns must have
     * exactly those sizes.
     */
    public MdsLatents(Settings settings, int channels, int latentSize, int captionLength, int captionChannels,
                      long seed) throws IOException {
        int imageSize = settings.imageSize() != null ? settings.imageSize() : latentSize * VAE_FACTOR;
        if (imageSize != latentSize * VAE_FACTOR) {
            throw new IOException("mds.image_size " + imageSize + " gives " + imageSize / VAE_FACTOR + "² latents; "
                    + "the model takes " + latentSize + "²");
        }
        latentKey = "latents_" + imageSize;
        latentShape = new int[] {channels, latentSize, latentSize};
        captionShape = new int[] {captionLength, captionChannels};
        try {
            int[] sizes = new int[settings.streams().size()];
            List<MdsMix.Weight> weights = new ArrayList<>();
            for (int s = 0; s < sizes.length; s++) {
                Stream config = settings.streams().get(s);
                MdsStream stream = MdsStream.open(Path.of(config.local()));
                streams.add(stream);
                check(stream, latentKey, 2L * channels * latentSize * latentSize);
                check(stream, CAPTION_KEY, 2L * captionLength * captionChannels);
                sizes[s] = stream.size();
                weights.add(config.weight());
            }
            try {
                mix = new MdsMix(sizes, weights, settings.epochSize(), seed);
            } catch (IllegalArgumentException e) {
                throw new IOException("mds: " + e.getMessage(), e);
            }
            samples = mix.composition(0);
        } catch (IOException | RuntimeException e) {
            close();
            throw e;
        }
    }

    private static void check(MdsStream stream, String column, long bytes) throws MdsException {
        String encoding = stream.encoding(column);
        if (!"bytes".equals(encoding)) {
            throw new MdsException(stream.folder() + ": " + (encoding == null ? "no column '" + column + "'"
                    : "column '" + column + "' is " + encoding) + "; MicroDiT latents are raw float16 'bytes' in '"
                    + column + "' (columns: " + stream.columnNames() + ")");
        }
        for (int i = 0; i < stream.size(); i++) {
            long size = stream.column(i, column).byteSize();
            if (size != bytes) {
                throw new MdsException(stream.locate(i) + ": column '" + column + "' has " + size + " bytes, the "
                        + "model needs " + bytes + " (" + bytes / 2 + " float16 values)");
            }
        }
    }

    /** The streams' digests this reader could not check ("file: algorithm"). */
    public List<String> uncheckedHashes() {
        List<String> out = new ArrayList<>();
        for (MdsStream s : streams) {
            out.addAll(s.uncheckedHashes());
        }
        return out;
    }

    @Override
    public int size() {
        return samples.length;
    }

    @Override
    public int[] latentShape() {
        return latentShape.clone();
    }

    @Override
    public int[] captionShape() {
        return captionShape.clone();
    }

    @Override
    public void read(int[] indices, Tensor latents, Tensor captions) {
        float[] latent = new float[latentShape[0] * latentShape[1] * latentShape[2]];
        float[] caption = new float[captionShape[0] * captionShape[1]];
        for (int b = 0; b < indices.length; b++) {
            int id = samples[indices[b]];
            int s = mix.streamOf(id);
            int local = (int) (id - mix.start(s));
            try {
                halves(streams.get(s).column(local, latentKey), latent);
                halves(streams.get(s).column(local, CAPTION_KEY), caption);
            } catch (MdsException e) {
                throw new UncheckedIOException(e);
            }
            latents.rows(b, 1).copyFrom(latent);
            captions.rows(b, 1).copyFrom(caption);
        }
    }

    private static void halves(MemorySegment bytes, float[] out) {
        for (int i = 0; i < out.length; i++) {
            out[i] = Float.float16ToFloat(bytes.getAtIndex(HALF, i));
        }
    }

    @Override
    public void close() {
        for (MdsStream s : streams) {
            s.close();
        }
    }
}
