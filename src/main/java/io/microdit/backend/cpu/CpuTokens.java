package io.microdit.backend.cpu;

import io.microdit.backend.Checks;
import io.microdit.backend.FlopCounter;
import io.microdit.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Token movement: the deferred-mask gather and scatter, the mean over tokens, and the patch embedding
 * permutations.
 *
 * <p>Gather, scatter, patchify and unpatchify are pure permutations (0 FLOPs, memory bound). Gather and
 * scatter move whole D-float rows with one bulk copy each; scatter first inverts the ids into a per-sample
 * "which kept row lands here" table, which both detects duplicate ids and lets every output row be written
 * exactly once (copied or zeroed). The patch permutations work per (sample, row of patches): that block is
 * C slabs of p·W contiguous floats on the image side and one contiguous run of (W/p) tokens on the token side,
 * so it is copied into per-thread scratch, permuted there and copied out, keeping both memory sides
 * sequential. The mean over tokens is N·T·D adds (vectorised over D, float accumulation, one divide per output)
 * and its backward N·D divides.
 */
final class CpuTokens {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT;
    /** Floats per parallel chunk below which splitting costs more than it saves. */
    private static final int GRAIN_FLOATS = 1 << 14;

    private final Parallel parallel;
    private final FlopCounter flops;

    CpuTokens(Parallel parallel, FlopCounter flops) {
        this.parallel = parallel;
        this.flops = flops;
    }

    void gatherRows(Tensor x, Tensor ids, Tensor out) {
        String op = "gatherRows";
        int[] s = Checks.gatherRows(x, ids, out);
        int samples = s[0], tokens = s[1], kept = s[2], width = s[3];
        int[] index = ids.toIntArray();
        for (int r = 0; r < index.length; r++) {
            checkId(op, index[r], r / kept, r % kept, tokens);
        }
        MemorySegment source = x.segment(), target = out.segment();
        long rowBytes = (long) width * Float.BYTES;
        parallel.forRange(samples * kept, rowsPerChunk(width), (start, end) -> {
            for (int r = start; r < end; r++) {
                long sourceRow = (long) (r / kept) * tokens + index[r];
                MemorySegment.copy(source, sourceRow * rowBytes, target, r * rowBytes, rowBytes);
            }
        });
    }

    void scatterRows(Tensor x, Tensor ids, Tensor out) {
        String op = "scatterRows";
        int[] s = Checks.scatterRows(x, ids, out);
        int samples = s[0], tokens = s[1], kept = s[2], width = s[3];
        int[] keptRowOf = keptRowOf(op, ids, tokens);
        MemorySegment source = x.segment(), target = out.segment();
        long rowBytes = (long) width * Float.BYTES;
        parallel.forRange(samples * tokens, rowsPerChunk(width), (start, end) -> {
            for (int r = start; r < end; r++) {
                int j = keptRowOf[r];
                if (j < 0) {
                    target.asSlice(r * rowBytes, rowBytes).fill((byte) 0);
                } else {
                    long sourceRow = (long) (r / tokens) * kept + j;
                    MemorySegment.copy(source, sourceRow * rowBytes, target, r * rowBytes, rowBytes);
                }
            }
        });
    }

    void meanTokens(Tensor x, Tensor out) {
        String op = "meanTokens";
        int[] s = Checks.meanTokens(x, out);
        int samples = s[0], tokens = s[1], width = s[2];
        MemorySegment source = x.segment(), target = out.segment();
        float count = tokens;
        int bound = SPECIES.loopBound(width), lanes = SPECIES.length();
        parallel.forRange(samples, Math.max(1, GRAIN_FLOATS / Math.max(1, tokens * width)), (start, end) -> {
            for (int n = start; n < end; n++) {
                long sampleBase = (long) n * tokens * width;
                int d = 0;
                for (; d < bound; d += lanes) {
                    FloatVector sum = FloatVector.zero(SPECIES);
                    for (int t = 0; t < tokens; t++) {
                        long offset = (sampleBase + (long) t * width + d) * Float.BYTES;
                        sum = sum.add(FloatVector.fromMemorySegment(SPECIES, source, offset, ORDER));
                    }
                    sum.div(count).intoMemorySegment(target, ((long) n * width + d) * Float.BYTES, ORDER);
                }
                for (; d < width; d++) {
                    float sum = 0f;
                    for (int t = 0; t < tokens; t++) {
                        sum += source.getAtIndex(FLOAT, sampleBase + (long) t * width + d);
                    }
                    target.setAtIndex(FLOAT, (long) n * width + d, sum / count);
                }
            }
        });
        flops.add(op, (long) samples * tokens * width);
    }

    void meanTokensBackward(Tensor dOut, Tensor dx) {
        String op = "meanTokensBackward";
        int[] s = Checks.meanTokensBackward(dOut, dx);
        int samples = s[0], tokens = s[1], width = s[2];
        MemorySegment source = dOut.segment(), target = dx.segment();
        float count = tokens;
        parallel.forRange(samples, Math.max(1, GRAIN_FLOATS / Math.max(1, tokens * width)), (start, end) -> {
            float[] row = new float[width];
            for (int n = start; n < end; n++) {
                for (int d = 0; d < width; d++) {
                    row[d] = source.getAtIndex(FLOAT, (long) n * width + d) / count;
                }
                for (int t = 0; t < tokens; t++) {
                    MemorySegment.copy(row, 0, target, FLOAT, ((long) n * tokens + t) * width * Float.BYTES, width);
                }
            }
        });
        flops.add(op, (long) samples * width);
    }

    void patchify(Tensor image, int patch, Tensor out) {
        int[] dims = Checks.patchify(image, patch, out);
        permute(image, out, dims, patch, true, true);
    }

    void patchifyBackward(Tensor dOut, int patch, Tensor dImage) {
        int[] dims = Checks.patchifyBackward(dOut, patch, dImage);
        permute(dImage, dOut, dims, patch, true, false);
    }

    void unpatchify(Tensor tokens, int patch, Tensor out) {
        int[] dims = Checks.unpatchify(tokens, patch, out);
        permute(out, tokens, dims, patch, false, false);
    }

    void unpatchifyBackward(Tensor dOut, int patch, Tensor dTokens) {
        int[] dims = Checks.unpatchifyBackward(dOut, patch, dTokens);
        permute(dOut, dTokens, dims, patch, false, true);
    }

    /**
     * Moves elements between image [N, C, H, W] and tokens [N, (H/p)·(W/p), C·p·p]: element (n, c, y, x) with
     * y = gy·p + i, x = gx·p + j is token gy·(W/p) + gx, feature (c·p + i)·p + j when {@code channelSlowest}
     * (patchify, the Conv2d weight order) or (i·p + j)·C + c otherwise (unpatchify, channel fastest).
     */
    private void permute(Tensor image, Tensor tokens, int[] dims, int patch, boolean channelSlowest,
                         boolean imageToTokens) {
        int samples = dims[0], channels = dims[1], height = dims[2], width = dims[3];
        int gridH = height / patch, gridW = width / patch;
        int slab = patch * width;
        int block = channels * slab;
        int features = channels * patch * patch;
        MemorySegment imageMemory = image.segment(), tokenMemory = tokens.segment();
        parallel.forRange(samples * gridH, Math.max(1, GRAIN_FLOATS / Math.max(1, block)), (start, end) -> {
            float[] imageBlock = new float[block];
            float[] tokenBlock = new float[block];
            for (int item = start; item < end; item++) {
                int n = item / gridH, gy = item % gridH;
                long tokenOffset = (long) item * block;
                if (imageToTokens) {
                    for (int c = 0; c < channels; c++) {
                        long offset = (((long) n * channels + c) * height + (long) gy * patch) * width;
                        MemorySegment.copy(imageMemory, FLOAT, offset * Float.BYTES, imageBlock, c * slab, slab);
                    }
                } else {
                    MemorySegment.copy(tokenMemory, FLOAT, tokenOffset * Float.BYTES, tokenBlock, 0, block);
                }
                for (int c = 0; c < channels; c++) {
                    for (int i = 0; i < patch; i++) {
                        int imageRow = c * slab + i * width;
                        for (int gx = 0; gx < gridW; gx++) {
                            int tokenBase = gx * features;
                            for (int j = 0; j < patch; j++) {
                                int feature = channelSlowest ? (c * patch + i) * patch + j
                                        : (i * patch + j) * channels + c;
                                int imageIndex = imageRow + gx * patch + j;
                                if (imageToTokens) {
                                    tokenBlock[tokenBase + feature] = imageBlock[imageIndex];
                                } else {
                                    imageBlock[imageIndex] = tokenBlock[tokenBase + feature];
                                }
                            }
                        }
                    }
                }
                if (imageToTokens) {
                    MemorySegment.copy(tokenBlock, 0, tokenMemory, FLOAT, tokenOffset * Float.BYTES, block);
                } else {
                    for (int c = 0; c < channels; c++) {
                        long offset = (((long) n * channels + c) * height + (long) gy * patch) * width;
                        MemorySegment.copy(imageBlock, c * slab, imageMemory, FLOAT, offset * Float.BYTES, slab);
                    }
                }
            }
        });
    }

    /**
     * The inverse map of ids I32 [N, K] over T tokens: {@code keptRowOf[n·T + t] = j} when {@code ids[n, j] == t},
     * else -1; throws, naming {@code op}, for an id out of [0, T) or ids of a sample that are not distinct.
     */
    static int[] keptRowOf(String op, Tensor ids, int tokens) {
        int samples = ids.dim(0), kept = ids.dim(1);
        int[] index = ids.toIntArray();
        int[] keptRowOf = new int[samples * tokens];
        Arrays.fill(keptRowOf, -1);
        for (int r = 0; r < index.length; r++) {
            int sample = r / kept, j = r % kept;
            checkId(op, index[r], sample, j, tokens);
            int slot = sample * tokens + index[r];
            if (keptRowOf[slot] >= 0) {
                throw new IllegalArgumentException(op + ": ids of sample " + sample + " are not distinct: "
                        + index[r] + " appears at positions " + keptRowOf[slot] + " and " + j);
            }
            keptRowOf[slot] = j;
        }
        return keptRowOf;
    }

    /**
     * The row of x [N, T, D] that each kept row r = n·K + j names: {@code n·T + ids[n, j]}; throws, naming
     * {@code op}, for an id out of [0, T).
     */
    static int[] sourceRows(String op, Tensor ids, int tokens) {
        int kept = ids.dim(1);
        int[] rows = ids.toIntArray();
        for (int r = 0; r < rows.length; r++) {
            checkId(op, rows[r], r / kept, r % kept, tokens);
            rows[r] += r / kept * tokens;
        }
        return rows;
    }

    private static void checkId(String op, int id, int sample, int position, int tokens) {
        if (id < 0 || id >= tokens) {
            throw new IllegalArgumentException(op + ": ids[" + sample + ", " + position + "] = " + id
                    + " is out of range [0, " + tokens + ")");
        }
    }

    private static int rowsPerChunk(int width) {
        return Math.max(1, GRAIN_FLOATS / Math.max(1, width));
    }
}
