package io.microdit.distributed;

import io.microdit.tensor.DType;
import io.microdit.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/** Argument checks shared by the communicators, and the fixed-order sum their reductions end with. */
final class Collectives {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final int LANES = SPECIES.length();
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();

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
        MemorySegment[] sources = new MemorySegment[ranks];
        long[] starts = new long[ranks];
        for (int r = 0; r < ranks; r++) {
            sources[r] = parts;
            starts[r] = r * count;
        }
        sumInRankOrder(sources, starts, count, dtype, out, 0, accumulate);
    }

    /**
     * {@code out[outStart + i] = ((sources[0][starts[0] + i] + sources[1][starts[1] + i]) + …)} for i below
     * {@code count} (indices in elements), each source a rank's; with {@code accumulate} the sum starts from out's
     * value. F32 runs in vector lanes: each lane adds the same values in the same order as the scalar tail, so the
     * bits do not depend on where an element falls.
     */
    static void sumInRankOrder(MemorySegment[] sources, long[] starts, long count, DType dtype, MemorySegment out,
                               long outStart, boolean accumulate) {
        int ranks = sources.length;
        if (dtype == DType.I32) {
            for (long i = 0; i < count; i++) {
                int sum = accumulate ? out.getAtIndex(ValueLayout.JAVA_INT, outStart + i) : 0;
                for (int r = 0; r < ranks; r++) {
                    int v = sources[r].getAtIndex(ValueLayout.JAVA_INT, starts[r] + i);
                    sum = accumulate || r > 0 ? sum + v : v;
                }
                out.setAtIndex(ValueLayout.JAVA_INT, outStart + i, sum);
            }
            return;
        }
        long i = 0;
        for (; i + LANES <= count; i += LANES) {
            FloatVector sum = FloatVector.fromMemorySegment(SPECIES, sources[0], (starts[0] + i) * Float.BYTES, ORDER);
            if (accumulate) {
                sum = FloatVector.fromMemorySegment(SPECIES, out, (outStart + i) * Float.BYTES, ORDER).add(sum);
            }
            for (int r = 1; r < ranks; r++) {
                sum = sum.add(FloatVector.fromMemorySegment(SPECIES, sources[r], (starts[r] + i) * Float.BYTES, ORDER));
            }
            sum.intoMemorySegment(out, (outStart + i) * Float.BYTES, ORDER);
        }
        for (; i < count; i++) {
            float sum = sources[0].getAtIndex(ValueLayout.JAVA_FLOAT, starts[0] + i);
            if (accumulate) {
                sum = out.getAtIndex(ValueLayout.JAVA_FLOAT, outStart + i) + sum;
            }
            for (int r = 1; r < ranks; r++) {
                sum += sources[r].getAtIndex(ValueLayout.JAVA_FLOAT, starts[r] + i);
            }
            out.setAtIndex(ValueLayout.JAVA_FLOAT, outStart + i, sum);
        }
    }
}
