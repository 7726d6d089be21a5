package io.microdit.train;

import io.microdit.autograd.Parameter;
import io.microdit.backend.Backend;
import io.microdit.backend.cuda.CudaBackend;
import io.microdit.distributed.Communicator;
import io.microdit.distributed.DeviceCommunicator;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.BiConsumer;

/**
 * The gradient of a global batch as the sum of its micro-batches' gradients in their global order, whichever rank
 * computed them: {@code ((g0 + g1) + g2) + …}. In round t of a step rank r computes micro-batch t·N + r into freshly
 * zeroed gradients; the running sum is added first, then the ranks' gradients in rank order — so N ranks
 * reproduce, bit for bit, one process that accumulates every micro-batch, for any N dividing the accumulation
 * steps. (A backward that accumulated into the running gradient would round differently.)
 *
 * <p>Without sharding every rank ends with the whole gradient: rank 0 adds the running sum into its fresh gradient
 * and a rank-order all-reduce adds the others'. With {@link Sharding#SHARD_GRAD_OP} each rank owns a contiguous run
 * of whole parameters (about 1/N of the elements): a reduce-scatter sums each parameter's gradient onto its owner's
 * running sum, the owner alone steps it ({@link #owns}), and {@link #gatherParameters} sends the updated values to
 * every rank. Whole parameters keep the clip norm exact: each owner's per-tensor sums of squares are exchanged and
 * added in parameter order, as one process adds them.
 *
 * <p>Gradients travel in buckets of about {@link #BUCKET_BYTES}, one collective each. On the CPU backend the buckets
 * are host memory and the collectives the host communicator's (MPI). On the CUDA backend they are device memory and
 * the collectives a {@link DeviceCommunicator}'s (NCCL; MPI between emulator processes), queued on the backend's
 * stream: gradients never make a round trip through the host. The buckets' flat tensors share one buffer, since a
 * bucket is filled, reduced and emptied before the next (one stream, or one thread, orders them). A world of one
 * moves nothing.
 */
final class GradientReduction implements AutoCloseable {
    static final long BUCKET_BYTES = 25L << 20;

    /**
     * Consecutive parameters as one flat tensor ({@code views} are theirs), in the buffer every bucket shares;
     * {@code starts} bound each rank's owned parameters in it, and {@code owned} holds this rank's: its running
     * gradient sum, then its updated values.
     */
    private record Bucket(Tensor flat, List<Parameter> parameters, List<Tensor> views, long[] starts, Tensor owned) {
    }

    private final Backend backend;
    private final Communicator communicator;
    /** The buckets' collectives: {@link #communicator}, or the device collectives over it on the CUDA backend. */
    private final Communicator collectives;
    private final DeviceCommunicator deviceCollectives;
    private final List<Parameter> parameters;
    private final int rounds;
    private final boolean sharded;
    private final Map<Parameter, Integer> owners = new IdentityHashMap<>();
    private final MemoryScope runningScope;
    private final Map<Parameter, Tensor> running = new IdentityHashMap<>();
    private final MemoryScope bucketScope;
    private Tensor bucketBuffer;
    private final List<Bucket> buckets = new ArrayList<>();
    private long communicationNanos;

    /** For steps of {@code rounds} rounds of micro-batches on each rank. */
    GradientReduction(Backend backend, Communicator communicator, List<Parameter> parameters, int rounds,
                      Sharding sharding) {
        this.backend = backend;
        this.communicator = communicator;
        this.parameters = List.copyOf(parameters);
        this.rounds = rounds;
        this.sharded = sharding == Sharding.SHARD_GRAD_OP && communicator.size() > 1;
        assignOwners();
        this.runningScope = backend.scope("gradient-running-sum");
        // Unsharded, only rank 0 adds the running sum in (the others contribute their fresh gradients alone), and
        // only between rounds; sharded, the owners keep it in their buckets.
        if (!sharded && communicator.rank() == 0 && rounds > 1) {
            for (Parameter p : this.parameters) {
                running.put(p, runningScope.zeros(p.value().shape()));
            }
        }
        this.deviceCollectives = backend instanceof CudaBackend cuda && communicator.size() > 1
                ? DeviceCommunicator.open(communicator, cuda) : null;
        this.collectives = deviceCollectives != null ? deviceCollectives : communicator;
        this.bucketScope = deviceCollectives != null ? backend.scope("gradient-buckets")
                : new MemoryScope("gradient-buckets");
        if (communicator.size() > 1) {
            planBuckets();
        }
    }

    /** Sharded, {@link ZeroShards}' owners; unsharded, this rank steps every parameter. */
    private void assignOwners() {
        if (sharded) {
            owners.putAll(ZeroShards.owners(parameters, communicator.size()));
        } else {
            for (Parameter p : parameters) {
                owners.put(p, communicator.rank());
            }
        }
    }

    /** Whether this rank steps {@code p}: every parameter without sharding, its own with. */
    boolean owns(Parameter p) {
        return owners.get(p) == communicator.rank();
    }

    /** Groups consecutive parameters into buckets of at most {@link #BUCKET_BYTES} (or one larger parameter). */
    private void planBuckets() {
        List<List<Parameter>> groups = new ArrayList<>();
        List<Parameter> members = new ArrayList<>();
        long elements = 0;
        for (Parameter p : parameters) {
            if (!members.isEmpty() && (elements + p.value().numel()) * Float.BYTES > BUCKET_BYTES) {
                groups.add(members);
                members = new ArrayList<>();
                elements = 0;
            }
            members.add(p);
            elements += p.value().numel();
        }
        if (!members.isEmpty()) {
            groups.add(members);
        }
        long largest = 0;
        for (List<Parameter> group : groups) {
            largest = Math.max(largest, elements(group));
        }
        bucketBuffer = bucketScope.zeros(Math.toIntExact(largest));
        for (List<Parameter> group : groups) {
            addBucket(group, elements(group));
        }
    }

    private static long elements(List<Parameter> group) {
        long n = 0;
        for (Parameter p : group) {
            n += p.value().numel();
        }
        return n;
    }

    private void addBucket(List<Parameter> members, long elements) {
        Tensor flat = bucketBuffer.rows(0, Math.toIntExact(elements));
        List<Tensor> views = new ArrayList<>();
        int size = communicator.size();
        long[] starts = new long[size + 1];
        int offset = 0;
        for (Parameter p : members) {
            int n = Math.toIntExact(p.value().numel());
            views.add(flat.rows(offset, n));
            offset += n;
            if (sharded) {
                for (int q = owners.get(p) + 1; q <= size; q++) {
                    starts[q] = offset;
                }
            }
        }
        Tensor owned = null;
        if (sharded) {
            int rank = communicator.rank();
            owned = bucketScope.zeros(Math.toIntExact(starts[rank + 1] - starts[rank]));
        }
        buckets.add(new Bucket(flat, List.copyOf(members), List.copyOf(views), starts, owned));
    }

    /**
     * Called after round {@code round} of the step (each rank's micro-batch of the round back-propagated into
     * zeroed gradients): leaves the sum of every micro-batch so far in the running sum, or after the last round in
     * the gradients of the parameters this rank {@link #owns}.
     */
    void addRound(int round) {
        boolean last = round == rounds - 1;
        if (sharded) {
            reduceScatter(round, last);
            return;
        }
        for (Parameter p : parameters) {
            Tensor g = p.gradBuffer();
            if (round > 0 && communicator.rank() == 0) {
                backend.add(running.get(p), g, g);
            }
        }
        if (communicator.size() > 1) {
            long start = System.nanoTime();
            for (Bucket bucket : buckets) {
                toBucket(bucket);
                collectives.allReduceSum(bucket.flat());
                for (int i = 0; i < bucket.parameters().size(); i++) {
                    backend.copy(bucket.views().get(i), bucket.parameters().get(i).grad());
                }
            }
            communicationNanos += System.nanoTime() - start;
        }
        if (!last && communicator.rank() == 0) {
            for (Parameter p : parameters) {
                backend.copy(p.grad(), running.get(p));
            }
        }
    }

    private void reduceScatter(int round, boolean last) {
        long start = System.nanoTime();
        for (Bucket bucket : buckets) {
            toBucket(bucket);
            collectives.reduceScatterSum(bucket.flat(), bucket.starts(), bucket.owned(), round > 0);
            if (last) {
                forOwned(bucket, (p, view) -> backend.copy(view, p.grad()));
            }
        }
        communicationNanos += System.nanoTime() - start;
    }

    /** Copies every member's gradient into the bucket's flat tensor. */
    private void toBucket(Bucket bucket) {
        for (int i = 0; i < bucket.parameters().size(); i++) {
            backend.copy(bucket.parameters().get(i).gradBuffer(), bucket.views().get(i));
        }
    }

    /** Calls {@code action} with each parameter of the bucket this rank owns and its place in {@code owned}. */
    private void forOwned(Bucket bucket, BiConsumer<Parameter, Tensor> action) {
        int rank = communicator.rank();
        int offset = 0;
        for (Parameter p : bucket.parameters()) {
            if (owners.get(p) == rank) {
                int n = Math.toIntExact(p.value().numel());
                action.accept(p, bucket.owned().rows(offset, n));
                offset += n;
            }
        }
    }

    /**
     * The global gradient norm, sharded: each owner's sums of squares of its parameters' gradients, exchanged
     * (their bits, as integers: a sum with zeros from the other ranks, so exact) and added in parameter order.
     */
    double gradientNorm() {
        int count = parameters.size();
        int[] bits = new int[2 * count];
        for (int i = 0; i < count; i++) {
            Parameter p = parameters.get(i);
            if (owns(p)) {
                long squares = Double.doubleToRawLongBits(backend.sumOfSquares(p.grad()));
                bits[2 * i] = (int) (squares >>> 32);
                bits[2 * i + 1] = (int) squares;
            }
        }
        try (MemoryScope scope = new MemoryScope("gradient-norm")) {
            Tensor all = Tensor.ofInts(scope, bits, bits.length);
            communicator.allReduceSum(all);
            int[] summed = all.toIntArray();
            double sum = 0;
            for (int i = 0; i < count; i++) {
                sum += Double.longBitsToDouble(((long) summed[2 * i] << 32) | (summed[2 * i + 1] & 0xffffffffL));
            }
            return Math.sqrt(sum);
        }
    }

    /** Sends the values of the parameters this rank owns (just stepped) to every rank. */
    void gatherParameters() {
        long start = System.nanoTime();
        for (Bucket bucket : buckets) {
            forOwned(bucket, (p, view) -> backend.copy(p.value(), view));
            collectives.allGather(bucket.owned(), bucket.starts(), bucket.flat());
            for (int i = 0; i < bucket.parameters().size(); i++) {
                Parameter p = bucket.parameters().get(i);
                if (!owns(p)) {
                    backend.copy(bucket.views().get(i), p.value());
                }
            }
        }
        communicationNanos += System.nanoTime() - start;
    }

    /**
     * Every parameter's entry of a per-parameter state whose owners hold their own ({@code state} maps
     * {@code name + suffix} to this rank's tensors), gathered onto every rank as host tensors in {@code host}: for
     * checkpoints, which hold the whole state whatever the number of ranks.
     */
    Map<String, Tensor> gatherState(Map<String, Tensor> state, List<String> suffixes, MemoryScope host) {
        Map<String, Tensor> gathered = new HashMap<>();
        for (String suffix : suffixes) {
            for (Bucket bucket : buckets) {
                forOwned(bucket, (p, view) -> backend.copy(state.get(p.name() + suffix), view));
                collectives.allGather(bucket.owned(), bucket.starts(), bucket.flat());
                for (int i = 0; i < bucket.parameters().size(); i++) {
                    Parameter p = bucket.parameters().get(i);
                    Tensor whole = Tensor.zeros(host, DType.F32, p.value().shape());
                    backend.copy(bucket.views().get(i).reshape(p.value().shape()), whole);
                    gathered.put(p.name() + suffix, whole);
                }
            }
        }
        // In the unsharded state's order (by parameter, then suffix), so the files are the same.
        Map<String, Tensor> all = new LinkedHashMap<>();
        for (Parameter p : parameters) {
            for (String suffix : suffixes) {
                all.put(p.name() + suffix, gathered.get(p.name() + suffix));
            }
        }
        return all;
    }

    boolean sharded() {
        return sharded;
    }

    /** The collectives the buckets go through. */
    String describe() {
        return collectives.describe();
    }

    /**
     * Seconds spent moving gradients and parameters between ranks so far (copies to and from buckets included); on
     * the CUDA backend the time to queue that work, since the host does not wait for it.
     */
    double communicationSeconds() {
        return communicationNanos / 1e9;
    }

    @Override
    public void close() {
        if (deviceCollectives != null) {
            deviceCollectives.close();
        }
        runningScope.close();
        bucketScope.close();
    }
}
