package io.microdit.data;

import io.microdit.io.Safetensors;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;

/**
 * Precomputed training data for real use: safetensors shards, each holding {@code latents} [N, C, H, W] (the
 * VAE latents, F16/BF16/F32, already multiplied by the VAE's scaling factor) and {@code caption_embeddings}
 * [N, L, Cc] (the text encoder's token embeddings), as users produce them with their own VAE and text encoder.
 * Every shard of a folder is loaded (in name order) into memory owned by this object, converted to F32. A shard's
 * header is checked before its data is loaded (names, float dtypes, ranks, the same N, no empty sample
 * dimension), and every value must be finite: a NaN in the data would otherwise surface steps later as a
 * non-finite loss.
 */
public final class LatentShards implements TrainingData, AutoCloseable {
    /** The tensor name of a shard's VAE latents [N, C, H, W]. */
    public static final String LATENTS = "latents";
    /** The tensor name of a shard's caption embeddings [N, L, Cc]. */
    public static final String CAPTIONS = "caption_embeddings";

    private final MemoryScope scope = new MemoryScope("latent-shards");
    private final List<Tensor> latentShards = new ArrayList<>();
    private final List<Tensor> captionShards = new ArrayList<>();
    private final int[] shardStart;
    private final int size;
    private final int[] latentShape;
    private final int[] captionShape;

    /** Loads {@code *.safetensors} from a folder, or one file. */
    public LatentShards(Path location) throws IOException {
        List<Path> files = new ArrayList<>();
        if (Files.isDirectory(location)) {
            try (Stream<Path> entries = Files.list(location)) {
                entries.filter(p -> p.getFileName().toString().endsWith(".safetensors")).sorted().forEach(files::add);
            }
        } else if (Files.isRegularFile(location)) {
            files.add(location);
        }
        if (files.isEmpty()) {
            throw new IOException("no latent shards (*.safetensors with '" + LATENTS + "' and '" + CAPTIONS
                    + "') found at " + location);
        }
        try {
            int[] latent = null;
            int[] caption = null;
            shardStart = new int[files.size() + 1];
            for (int i = 0; i < files.size(); i++) {
                Path file = files.get(i);
                checkHeader(file, Safetensors.readHeader(file));
                Tensor latents = load(file, LATENTS);
                Tensor captions = load(file, CAPTIONS);
                int[] l = Arrays.copyOfRange(latents.shape(), 1, 4);
                int[] c = Arrays.copyOfRange(captions.shape(), 1, 3);
                if (latent == null) {
                    latent = l;
                    caption = c;
                } else if (!Arrays.equals(latent, l) || !Arrays.equals(caption, c)) {
                    throw new IOException(file + ": sample shapes " + Arrays.toString(l) + " / " + Arrays.toString(c)
                            + " differ from the first shard's " + Arrays.toString(latent) + " / "
                            + Arrays.toString(caption));
                }
                latentShards.add(latents);
                captionShards.add(captions);
                shardStart[i + 1] = Math.addExact(shardStart[i], latents.dim(0));
            }
            this.size = shardStart[files.size()];
            this.latentShape = latent;
            this.captionShape = caption;
            if (size == 0) {
                throw new IOException("the latent shards at " + location + " hold no samples");
            }
        } catch (IOException | RuntimeException e) {
            scope.close();
            throw e;
        }
    }

    private static void checkHeader(Path file, Safetensors.Header header) throws IOException {
        Safetensors.Entry latents = header.entries().get(LATENTS);
        Safetensors.Entry captions = header.entries().get(CAPTIONS);
        if (latents == null || captions == null) {
            throw new IOException(file + ": no tensor '" + (latents == null ? LATENTS : CAPTIONS) + "' (a latent shard "
                    + "holds '" + LATENTS + "' and '" + CAPTIONS + "')");
        }
        int[] l = latents.shape();
        int[] c = captions.shape();
        if (l.length != 4 || c.length != 3 || l[0] != c[0]) {
            throw new IOException(file + ": expected " + LATENTS + " [N, C, H, W] and " + CAPTIONS
                    + " [N, L, Cc] with the same N, got " + Arrays.toString(l) + " and " + Arrays.toString(c));
        }
        for (Safetensors.Entry entry : List.of(latents, captions)) {
            if (!List.of("F32", "BF16", "F16").contains(entry.dtype())) {
                throw new IOException(file + ": tensor '" + entry.name() + "' has dtype " + entry.dtype()
                        + "; latent shards hold F32, BF16 or F16");
            }
            int[] shape = entry.shape();
            for (int d = 1; d < shape.length; d++) {
                if (shape[d] == 0) {
                    throw new IOException(file + ": tensor '" + entry.name() + "' has an empty sample dimension: "
                            + Arrays.toString(shape));
                }
            }
        }
    }

    private Tensor load(Path file, String name) throws IOException {
        Tensor t = Safetensors.readTensor(file, name, scope);
        Tensor f32 = t.dtype() == DType.F32 ? t : t.to(DType.F32, scope);
        for (long i = 0; i < f32.numel(); i++) {
            if (!Float.isFinite(f32.getFloat(i))) {
                throw new IOException(file + ": tensor '" + name + "' element " + i + " is " + f32.getFloat(i)
                        + " (training data must be finite)");
            }
        }
        return f32;
    }

    @Override
    public int size() {
        return size;
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
        for (int b = 0; b < indices.length; b++) {
            int index = indices[b];
            int shard = Arrays.binarySearch(shardStart, index);
            shard = shard >= 0 ? shard : -shard - 2;
            while (shardStart[shard + 1] <= index) {
                shard++; // skips empty shards
            }
            int local = index - shardStart[shard];
            latents.rows(b, 1).copyFrom(latentShards.get(shard).rows(local, 1));
            captions.rows(b, 1).copyFrom(captionShards.get(shard).rows(local, 1));
        }
    }

    @Override
    public void close() {
        scope.close();
    }
}
