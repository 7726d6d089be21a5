package io.microdit.train;

import io.microdit.random.Philox;

/**
 * The order samples are read in: each epoch a fresh permutation of the dataset (Fisher–Yates driven by Philox
 * on its own stream), so the sample at global position s is a pure function of (seed, s) and a resumed run reads
 * exactly what the uninterrupted run would have.
 */
public final class DataOrder {
    /** The Philox stream of the permutations (random/Philox's streams are disjoint per purpose). */
    public static final long STREAM_DATA_ORDER = 5;

    private final int size;
    private final long seed;
    private long cachedEpoch = -1;
    private int[] permutation;

    /** The order of a dataset of {@code size} samples for the run's {@code seed}. */
    public DataOrder(int size, long seed) {
        if (size < 1) {
            throw new IllegalArgumentException("the training set is empty");
        }
        this.size = size;
        this.seed = seed;
    }

    /** Dataset indices of the {@code count} samples starting at global position {@code first}. */
    public int[] indices(long first, int count) {
        int[] out = new int[count];
        for (int i = 0; i < count; i++) {
            long position = first + i;
            out[i] = permutation(position / size)[(int) (position % size)];
        }
        return out;
    }

    private int[] permutation(long epoch) {
        if (epoch != cachedEpoch) {
            int[] p = new int[size];
            for (int i = 0; i < size; i++) {
                p[i] = i;
            }
            for (int i = size - 1; i > 0; i--) {
                long bits = Philox.bits(seed, STREAM_DATA_ORDER, epoch * size + i) & 0xffffffffL;
                int j = (int) ((bits * (i + 1)) >>> 32);
                int t = p[i];
                p[i] = p[j];
                p[j] = t;
            }
            permutation = p;
            cachedEpoch = epoch;
        }
        return permutation;
    }
}
