package io.microdit.io.mds;

import java.util.List;

/**
 * Several streams drawn into one epoch, weighted as MosaicML Streaming weights them ({@code Stream.apply_weights}),
 * and the epoch's order. Samples are numbered globally: stream s's sample i is {@code start(s) + i}.
 *
 * <p>Weights, one per stream, all relative or all absolute:
 * <ul>
 *   <li><b>absolute</b> (the official MicroDiT loader gives none: every stream's samples once per epoch): a stream
 *       contributes {@code choose} samples, or {@code floor(repeat × size)}, or its size;</li>
 *   <li><b>relative</b>: every stream has a {@code proportion}; the epoch holds {@code epochSize} samples (default:
 *       all streams' sizes summed), stream s {@code floor(epochSize × p_s / Σp)} of them, and the shortfall that
 *       rounding leaves goes one each to streams picked at random (by seed) without repetition. With no weights but
 *       an {@code epochSize}, the proportions are the streams' sizes.</li>
 * </ul>
 *
 * <p>The epoch, for (seed, epoch), is built in three steps, each drawn from a counter-based generator (SplitMix64's
 * finalizer over (seed, stream, index), so the io layer needs no higher one) and so the same on every machine and rank:
 * <ol>
 *   <li>each stream contributes {@code choose / size} whole copies of its samples, then the first
 *       {@code choose % size} samples of a random permutation of them (drawn afresh each epoch; Streaming draws
 *       this remainder by shard granules, here it is by sample);</li>
 *   <li>the streams' contributions, concatenated in stream order ({@link #composition}), are shuffled by a
 *       Fisher–Yates permutation ({@link #epoch});</li>
 *   <li>rank r of {@code worldSize} takes the shuffled epoch's positions r, r + worldSize, r + 2 × worldSize, …
 *       ({@link #rankSamples}), so the ranks together read every drawn sample exactly once, their counts differing
 *       by at most one.</li>
 * </ol>
 */
public final class MdsMix {
    private static final long STREAM_SHORTFALL = 1;
    private static final long STREAM_REMAINDER = 2;
    private static final long STREAM_SHUFFLE = 3;
    private static final long GOLDEN = 0x9E3779B97F4A7C15L;

    /**
     * A stream's weight, Streaming's names: at most one of {@code repeat} and {@code choose}, or a
     * {@code proportion}; all null for "every sample once".
     */
    public record Weight(Double proportion, Double repeat, Long choose) {
        /** No weight: every sample of the stream once per epoch. */
        public static final Weight NONE = new Weight(null, null, null);

        /**
         * Throws {@link IllegalArgumentException} unless at most one of the three is set and it is positive (choose:
         * non-negative) and finite.
         */
        public Weight {
            if (proportion != null && !(proportion > 0 && Double.isFinite(proportion))) {
                throw new IllegalArgumentException("proportion must be positive, got " + proportion);
            }
            if (repeat != null && !(repeat > 0 && Double.isFinite(repeat))) {
                throw new IllegalArgumentException("repeat must be positive, got " + repeat);
            }
            if (choose != null && choose < 0) {
                throw new IllegalArgumentException("choose must be non-negative, got " + choose);
            }
            if (proportion != null && (repeat != null || choose != null) || repeat != null && choose != null) {
                throw new IllegalArgumentException("a stream takes one of proportion, repeat and choose");
            }
        }
    }

    private final int[] sizes;
    private final long[] start;
    private final long[] choose;
    private final int epochSize;
    private final long seed;

    /**
     * The mix of streams of {@code sizes} samples with {@code weights} (one per stream) and, for relative weights,
     * {@code epochSize} samples per epoch (null: the streams' total).
     */
    public MdsMix(int[] sizes, List<Weight> weights, Long epochSize, long seed) {
        if (sizes.length == 0 || sizes.length != weights.size()) {
            throw new IllegalArgumentException("a mix needs one weight per stream, and at least one stream: "
                    + sizes.length + " streams, " + weights.size() + " weights");
        }
        this.sizes = sizes.clone();
        this.seed = seed;
        start = new long[sizes.length + 1];
        for (int s = 0; s < sizes.length; s++) {
            start[s + 1] = start[s] + sizes[s];
        }
        long relative = weights.stream().filter(w -> w.proportion() != null).count();
        boolean unweighted = weights.stream().allMatch(w -> w.equals(Weight.NONE));
        if (relative != 0 && relative != weights.size()) {
            throw new IllegalArgumentException("either every stream has a proportion or none has");
        }
        if (epochSize != null && epochSize < 1) {
            throw new IllegalArgumentException("epoch size must be positive, got " + epochSize);
        }
        choose = new long[sizes.length];
        if (relative > 0 || unweighted && epochSize != null) {
            double[] p = new double[sizes.length];
            double sum = 0;
            for (int s = 0; s < sizes.length; s++) {
                p[s] = relative > 0 ? weights.get(s).proportion() : sizes[s];
                sum += p[s];
            }
            long total = epochSize != null ? epochSize : start[sizes.length];
            long assigned = 0;
            for (int s = 0; s < sizes.length; s++) {
                choose[s] = (long) (total * (p[s] / sum));
                assigned += choose[s];
            }
            int[] order = permutationPrefix(sizes.length, (int) Math.min(sizes.length, total - assigned),
                    STREAM_SHORTFALL, 0);
            for (int k = 0; k < total - assigned && k < order.length; k++) {
                choose[order[k]]++;
            }
        } else {
            if (epochSize != null) {
                throw new IllegalArgumentException("an epoch size goes with proportions, not with repeat or choose");
            }
            for (int s = 0; s < sizes.length; s++) {
                Weight w = weights.get(s);
                choose[s] = w.choose() != null ? w.choose()
                        : w.repeat() != null ? (long) (w.repeat() * sizes[s]) : sizes[s];
            }
        }
        long total = 0;
        for (int s = 0; s < sizes.length; s++) {
            if (choose[s] > 0 && sizes[s] == 0) {
                throw new IllegalArgumentException("stream " + s + " is empty but is to give " + choose[s]
                        + " samples an epoch");
            }
            total += choose[s];
        }
        if (total < 1 || total > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("an epoch of " + total + " samples (must be 1 … 2^31 - 9)");
        }
        this.epochSize = (int) total;
    }

    /** Samples per epoch. */
    public int epochSize() {
        return epochSize;
    }

    /** How many samples stream {@code s} gives each epoch. */
    public long choose(int s) {
        return choose[s];
    }

    /** The global number of stream {@code s}'s first sample. */
    public long start(int s) {
        return start[s];
    }

    /** The stream global sample {@code id} belongs to. */
    public int streamOf(long id) {
        for (int s = 0; s < sizes.length; s++) {
            if (id < start[s + 1]) {
                return s;
            }
        }
        throw new IndexOutOfBoundsException("sample " + id + " of " + start[sizes.length]);
    }

    /** The samples epoch {@code epoch} draws, stream by stream, before shuffling. */
    public int[] composition(long epoch) {
        int[] out = new int[epochSize];
        int at = 0;
        for (int s = 0; s < sizes.length; s++) {
            int n = sizes[s];
            if (choose[s] == 0) {
                continue;
            }
            for (long copy = 0; copy < choose[s] / n; copy++) {
                for (int i = 0; i < n; i++) {
                    out[at++] = (int) (start[s] + i);
                }
            }
            int remainder = (int) (choose[s] % n);
            int[] picked = permutationPrefix(n, remainder, STREAM_REMAINDER,
                    epoch * start[sizes.length] + start[s]);
            for (int i = 0; i < remainder; i++) {
                out[at++] = (int) (start[s] + picked[i]);
            }
        }
        return out;
    }

    /** Epoch {@code epoch}'s samples in the order they are read. */
    public int[] epoch(long epoch) {
        int[] out = composition(epoch);
        for (int i = out.length - 1; i > 0; i--) {
            int j = below(i + 1, STREAM_SHUFFLE, epoch * epochSize + i);
            int t = out[i];
            out[i] = out[j];
            out[j] = t;
        }
        return out;
    }

    /** The samples rank {@code rank} of {@code worldSize} reads in epoch {@code epoch}, in order. */
    public int[] rankSamples(long epoch, int rank, int worldSize) {
        if (worldSize < 1 || rank < 0 || rank >= worldSize) {
            throw new IllegalArgumentException("rank " + rank + " of " + worldSize);
        }
        int[] all = epoch(epoch);
        int[] out = new int[(all.length - rank + worldSize - 1) / worldSize];
        for (int k = 0; k < out.length; k++) {
            out[k] = all[rank + k * worldSize];
        }
        return out;
    }

    /** The first {@code count} entries of a random permutation of 0 … n-1 (a partial Fisher–Yates). */
    private int[] permutationPrefix(int n, int count, long stream, long offset) {
        int[] p = new int[n];
        for (int i = 0; i < n; i++) {
            p[i] = i;
        }
        for (int i = 0; i < count; i++) {
            int j = i + below(n - i, stream, offset + i);
            int t = p[i];
            p[i] = p[j];
            p[j] = t;
        }
        return p;
    }

    /** A uniform integer in [0, bound) (Lemire's multiply-shift over 32 random bits) for (seed, stream, index). */
    private int below(int bound, long stream, long index) {
        long bits = mix(mix(mix(seed + GOLDEN) + stream * GOLDEN) + index * GOLDEN) >>> 32;
        return (int) ((bits * bound) >>> 32);
    }

    /** SplitMix64's output function (Stafford's variant 13). */
    private static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }
}
