package io.microdit.data;

import io.microdit.random.Philox;
import java.nio.charset.StandardCharsets;
import java.util.Locale;

/**
 * A stand-in for a real text encoder: a fixed, seeded word-embedding table. A caption is lower-cased and split on
 * non-letters; word i of at most {@code length} words becomes {@code (e(word) + 0.5·p(i)) / sqrt(1.25)}, where
 * e(word) and p(i) are vectors of standard normals drawn from Philox (seed, stream = 64-bit FNV-1a hash of the
 * word, or of "#position i"), so every word has a stable random vector and the order of words matters. Positions
 * past the caption's words are zero, like padding; the all-zero embedding is the unconditional input of
 * classifier-free guidance. Nothing is trained or downloaded; the same seed gives the same table everywhere.
 *
 * <p>Real use replaces this with precomputed embeddings of a real text encoder (e.g. CLIP's 77×1024 token
 * embeddings) in latent shards.
 */
public final class CaptionEncoder {
    private final int length;
    private final int channels;
    private final long seed;

    /**
     * An encoder of captions of at most {@code length} words into [{@code length}, {@code channels}] embeddings, its
     * table drawn from {@code seed}; throws {@link IllegalArgumentException} unless both sizes are positive.
     */
    public CaptionEncoder(int length, int channels, long seed) {
        if (length < 1 || channels < 1) {
            throw new IllegalArgumentException("caption length and channels must be positive, got " + length + ", "
                    + channels);
        }
        this.length = length;
        this.channels = channels;
        this.seed = seed;
    }

    /** Tokens per embedding: the model's caption length L. */
    public int length() {
        return length;
    }

    /** Channels per token: the model's caption channels Cc. */
    public int channels() {
        return channels;
    }

    /** The embedding [length, channels] of {@code caption}, row-major. */
    public float[] encode(String caption) {
        String[] words = caption.toLowerCase(Locale.ROOT).split("[^\\p{L}\\p{N}]+");
        float[] out = new float[length * channels];
        float[] word = new float[channels];
        float[] position = new float[channels];
        float norm = (float) (1 / Math.sqrt(1.25));
        int slot = 0;
        for (String w : words) {
            if (w.isEmpty()) {
                continue;
            }
            if (slot == length) {
                throw new IllegalArgumentException("caption '" + caption + "' has more than " + length + " words");
            }
            Philox.fillNormal(seed, hash(w), 0, word);
            Philox.fillNormal(seed, hash("#position " + slot), 0, position);
            for (int c = 0; c < channels; c++) {
                out[slot * channels + c] = (word[c] + 0.5f * position[c]) * norm;
            }
            slot++;
        }
        return out;
    }

    /** 64-bit FNV-1a of the UTF-8 bytes. */
    static long hash(String text) {
        long h = 0xcbf29ce484222325L;
        for (byte b : text.getBytes(StandardCharsets.UTF_8)) {
            h ^= b & 0xff;
            h *= 0x100000001b3L;
        }
        return h;
    }
}
