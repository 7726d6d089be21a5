package io.microdit.distributed;

import io.microdit.backend.cuda.CudaBackend;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.util.Arrays;

/**
 * Device buffers for buckets of gradients whose collectives run on the communication stream while the backend's
 * stream goes on with the backward: a ring of a few slots of one size, each with its completion event. A bucket is
 * packed into a slot, its collective issued deferred ({@link DeviceCommunicator#allReduceSumDeferred}), and the slot
 * is packed again only after the backend's stream has joined that collective: {@link #acquire} joins whatever is
 * still pending there first (a stream wait on a GPU, not a host wait). So bucket k + 1 is packed while bucket k is in
 * flight, and no buffer is overwritten while its collective may still read or write it. Memory: {@link #bytes}, the
 * slots times the largest bucket.
 *
 * <p>Collectives carry a tag (the caller's bucket index): {@link #acquire} and {@link #join} return the tag of the
 * collective they joined, whose results the caller may then read from the slot.
 */
public final class BucketRing implements AutoCloseable {
    /** The tag of no collective: the slot is free. */
    public static final int NONE = -1;

    private final DeviceCommunicator communicator;
    private final MemoryScope scope;
    private final Tensor[] buffers;
    private final DeviceCommunicator.Completion[] completions;
    private final int[] pending;
    /** Collectives issued and not yet joined. */
    private int inFlight;
    private int mostInFlight;
    private long joinsBeforeReuse;

    /** {@code slots} buffers of {@code elements} F32 elements each on {@code backend}'s device. */
    public BucketRing(DeviceCommunicator communicator, CudaBackend backend, int slots, long elements) {
        if (slots < 1 || elements < 0) {
            throw new IllegalArgumentException("a bucket ring needs at least one slot and a size ≥ 0, got " + slots
                    + " slots of " + elements + " elements");
        }
        this.communicator = communicator;
        this.scope = backend.scope("gradient-bucket-ring");
        this.buffers = new Tensor[slots];
        this.completions = new DeviceCommunicator.Completion[slots];
        this.pending = new int[slots];
        Arrays.fill(pending, NONE);
        for (int s = 0; s < slots; s++) {
            buffers[s] = scope.zeros(Math.toIntExact(elements));
            completions[s] = communicator.completion();
        }
    }

    /** The number of slots (buffers) in the ring. */
    public int slots() {
        return buffers.length;
    }

    /** The device memory the ring holds: every slot's buffer. */
    public long bytes() {
        long bytes = 0;
        for (Tensor buffer : buffers) {
            bytes += buffer.byteSize();
        }
        return bytes;
    }

    /** Slot {@code slot}'s buffer: pack a bucket into a view of it after {@link #acquire}. */
    public Tensor buffer(int slot) {
        return buffers[slot];
    }

    /** The tag of the collective in flight on {@code slot} (issued, not yet joined), or {@link #NONE}. */
    public int pending(int slot) {
        return pending[slot];
    }

    /**
     * Makes {@code slot} free to pack: joins the collective still in flight there, if any, and returns its tag (its
     * results are then ready in the slot for the backend's ops, until the slot is packed again), else {@link #NONE}.
     */
    public int acquire(int slot) {
        int tag = join(slot);
        if (tag != NONE) {
            joinsBeforeReuse++;
        }
        return tag;
    }

    /** The backend's stream waits for {@code slot}'s collective: its tag, or {@link #NONE} when none was in flight. */
    public int join(int slot) {
        int tag = pending[slot];
        if (tag != NONE) {
            communicator.join(completions[slot]);
            pending[slot] = NONE;
            inFlight--;
        }
        return tag;
    }

    /**
     * The rank-order sum of every rank's {@code flat} (a view of {@code slot}'s buffer), deferred, tagged
     * {@code tag}.
     */
    public void allReduceSum(int slot, Tensor flat, int tag) {
        checkIssue(slot, flat, tag);
        communicator.allReduceSumDeferred(flat, completions[slot]);
        issued(slot, tag);
    }

    /**
     * {@link Communicator#reduceScatterSum(Tensor, long[], Tensor, boolean)} of {@code flat} (a view of {@code slot}'s
     * buffer) into {@code shard}, deferred, tagged {@code tag}; {@code shard} too belongs to the collective until its
     * join.
     */
    public void reduceScatterSum(int slot, Tensor flat, long[] starts, Tensor shard, boolean accumulate, int tag) {
        checkIssue(slot, flat, tag);
        communicator.reduceScatterSumDeferred(flat, starts, shard, accumulate, completions[slot]);
        issued(slot, tag);
    }

    /** The most collectives that were in flight at once. */
    public int mostInFlight() {
        return mostInFlight;
    }

    /** How many times {@link #acquire} had to join a slot's collective before the slot could be packed again. */
    public long joinsBeforeReuse() {
        return joinsBeforeReuse;
    }

    private void checkIssue(int slot, Tensor flat, int tag) {
        if (tag == NONE) {
            throw new IllegalArgumentException("a bucket collective needs a tag other than NONE");
        }
        if (pending[slot] != NONE) {
            throw new IllegalStateException("slot " + slot + " of the bucket ring still has collective "
                    + pending[slot] + " in flight: acquire the slot before packing it");
        }
        Tensor buffer = buffers[slot];
        long start = flat.segment().address() - buffer.segment().address();
        if (start < 0 || start + flat.byteSize() > buffer.byteSize()) {
            throw new IllegalArgumentException(flat.describe() + " is not inside slot " + slot + " of the bucket ring");
        }
    }

    private void issued(int slot, int tag) {
        pending[slot] = tag;
        inFlight++;
        mostInFlight = Math.max(mostInFlight, inFlight);
    }

    /** Joins what is in flight, then frees the buffers and events. */
    @Override
    public void close() {
        for (int s = 0; s < buffers.length; s++) {
            join(s);
        }
        for (DeviceCommunicator.Completion completion : completions) {
            completion.close();
        }
        scope.close();
    }
}
