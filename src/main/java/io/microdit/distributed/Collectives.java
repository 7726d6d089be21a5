package io.microdit.distributed;

import io.microdit.tensor.DType;
import io.microdit.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/** Argument checks shared by the communicators, and the fixed-order sum their reductions end with. */
final class Collectives {
    private Collectives() {
    }

    static void checkDtype(Tensor t, String call) {
        if (t.dtype() != DType.F32 && t.dtype() != DType.I32) {
            throw new IllegalArgumentException(call + ": " + t.describe() + " is " + t.dtype()
                    + "; collectives take F32 or I32 tensors");
        }
        checkHostAccessible(t, call);
    }

    private static void checkHostAccessible(Tensor t, String call) {
        if (!t.scope().hostAccessible()) {
            throw new IllegalArgumentException(call + ": " + t.describe() + " lives in " + t.device()
                    + " memory; the MPI collectives read host memory (copy it to a host tensor first)");
        }
    }

    static void checkShard(Tensor t, long[] starts, Tensor shard, int size, int rank, String call) {
        checkDtype(t, call);
        checkDtype(shard, call);
        checkShardBounds(t, starts, shard, size, rank, call);
    }

    /**
     * {@link #checkShard} for a gather, which adds nothing and so also moves BF16 (ZeRO-2's bf16 working copies of
     * the owners' weights).
     */
    static void checkGatherShard(Tensor t, long[] starts, Tensor shard, int size, int rank, String call) {
        if (t.dtype() == DType.BF16) {
            checkHostAccessible(t, call);
            checkHostAccessible(shard, call);
        } else {
            checkDtype(t, call);
            checkDtype(shard, call);
        }
        checkShardBounds(t, starts, shard, size, rank, call);
    }

    /** {@code starts} bound {@code t}'s shards over {@code size} ranks, and {@code shard} is rank {@code rank}'s. */
    static void checkShardBounds(Tensor t, long[] starts, Tensor shard, int size, int rank, String call) {
        if (shard.dtype() != t.dtype()) {
            throw new IllegalArgumentException(call + ": shard " + shard.describe() + " and tensor " + t.describe()
                    + " differ in dtype");
        }
        if (starts.length != size + 1 || starts[0] != 0 || starts[size] != t.numel()) {
            throw new IllegalArgumentException(call + ": shard starts " + Arrays.toString(starts) + " do not bound "
                    + t.numel() + " elements over " + size + " ranks");
        }
        for (int r = 0; r < size; r++) {
            if (starts[r + 1] < starts[r]) {
                throw new IllegalArgumentException(call + ": shard starts " + Arrays.toString(starts)
                        + " decrease");
            }
        }
        long expected = starts[rank + 1] - starts[rank];
        if (shard.numel() != expected) {
            throw new IllegalArgumentException(call + ": rank " + rank + "'s shard of " + t.numel()
                    + " elements over " + size + " ranks holds " + expected + ", got " + shard.describe());
        }
    }

    static void checkRoot(int root, int size) {
        if (root < 0 || root >= size) {
            throw new IllegalArgumentException("broadcast: root " + root + " is not a rank of a world of " + size);
        }
    }

    /**
     * {@code out[i] = ((parts[0][i] + parts[1][i]) + …)}, the parts lying one after another in {@code parts},
     * {@code count} elements each: the order a single process accumulating rank by rank adds in. With
     * {@code accumulate} the sum starts from {@code out[i]}: {@code ((out[i] + parts[0][i]) + …)}.
     */
    static void sumInRankOrder(MemorySegment parts, int ranks, long count, DType dtype, MemorySegment out,
                               boolean accumulate) {
        int first = accumulate ? 0 : 1;
        if (dtype == DType.F32) {
            for (long i = 0; i < count; i++) {
                float sum = accumulate ? out.getAtIndex(ValueLayout.JAVA_FLOAT, i)
                        : parts.getAtIndex(ValueLayout.JAVA_FLOAT, i);
                for (int r = first; r < ranks; r++) {
                    sum += parts.getAtIndex(ValueLayout.JAVA_FLOAT, r * count + i);
                }
                out.setAtIndex(ValueLayout.JAVA_FLOAT, i, sum);
            }
        } else {
            for (long i = 0; i < count; i++) {
                int sum = accumulate ? out.getAtIndex(ValueLayout.JAVA_INT, i)
                        : parts.getAtIndex(ValueLayout.JAVA_INT, i);
                for (int r = first; r < ranks; r++) {
                    sum += parts.getAtIndex(ValueLayout.JAVA_INT, r * count + i);
                }
                out.setAtIndex(ValueLayout.JAVA_INT, i, sum);
            }
        }
    }
}
