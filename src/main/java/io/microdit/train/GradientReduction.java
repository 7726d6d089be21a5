package io.microdit.train;

import io.microdit.autograd.Graph;
import io.microdit.autograd.Parameter;
import io.microdit.backend.Backend;
import io.microdit.backend.cuda.CudaBackend;
import io.microdit.distributed.BucketRing;
import io.microdit.distributed.Communicator;
import io.microdit.distributed.DeviceCommunicator;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
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
 * <p>Gradients travel in buckets of about {@link #bucketBytes()} (25 MB unless {@value #BUCKET_PROPERTY} says
 * otherwise), one collective each. On the CPU backend the buckets are host memory and the collectives the host
 * communicator's (MPI). On the CUDA backend they are device memory and the collectives a {@link DeviceCommunicator}'s
 * (NCCL; MPI between emulator processes) on its communication stream: gradients never make a round trip through the
 * host. A world of one moves nothing.
 *
 * <p>Overlap with the backward (on unless {@value #OVERLAP_PROPERTY} is {@code false}): the graph tells when each
 * parameter's gradient is final ({@link Graph#onGradientsFinal}), and a bucket's collective is issued as soon as
 * its gradients and those of every later bucket are (buckets go out last first, the order the backward finishes
 * them, and the same order on every rank whatever the timing). On the CPU backend a communication thread runs the
 * collectives while the backward goes on, each bucket in a buffer of its own (one more copy of the gradients in host
 * memory); the MPI communicator serialises its calls, which MPI_THREAD_SERIALIZED, the level it checks it was
 * given, allows from any thread. On the CUDA backend the backward's thread packs each bucket into a slot of a
 * {@link BucketRing} ({@value #DEFAULT_BUFFERS} device buffers of the largest bucket unless {@value #BUFFERS_PROPERTY}
 * says otherwise) and issues its collective deferred: it runs on the communication stream while the compute stream
 * goes on with the backward and packs the next buckets into the other slots. The compute stream waits for a
 * collective (a join: a stream wait, never a host wait) only where its result is needed: before its slot is packed
 * again (the bucket is emptied into the gradients there) and at the end of the round, before the clip norm and the
 * optimizer step or the ZeRO-2 shard update. Either way every sum is the one the serial path computes, in the same
 * order, so the bits are the same.
 */
final class GradientReduction implements AutoCloseable {
    /** The system property giving the bucket size in MB (MiB; fractions allowed). */
    static final String BUCKET_PROPERTY = "microdit.bucket.mb";
    /** The system property that turns the overlap of the collectives with the backward off ({@code false}). */
    static final String OVERLAP_PROPERTY = "microdit.gradient.overlap";
    static final double DEFAULT_BUCKET_MB = 25;
    /** The system property giving the number of device bucket buffers on the CUDA backend (the ring's slots). */
    static final String BUFFERS_PROPERTY = "microdit.bucket.buffers";
    /**
     * Three: a bucket's collective can still run while the next is packed and the one after waits for its
     * gradients; 3 × 25 MB of device memory.
     */
    static final int DEFAULT_BUFFERS = 3;

    /**
     * Consecutive parameters as one flat tensor ({@code views} are theirs) in a buffer of its own or shared or, on
     * the CUDA backend, in slot {@code slot} of the ring (−1 otherwise); {@code starts} bound each rank's owned
     * parameters in it, and {@code owned} holds this rank's: its running gradient sum, then its updated values.
     */
    private record Bucket(Tensor flat, int slot, List<Parameter> parameters, List<Tensor> views, long[] starts,
                          Tensor owned) {
    }

    /** How far this round's reduction has gone: the buckets still waiting for gradients, and those issued. */
    private static final class RoundProgress {
        final int round;
        final int[] pendingParameters;
        final List<Future<?>> inFlight;
        int nextBucket;

        RoundProgress(int round, List<Bucket> buckets) {
            this.round = round;
            this.pendingParameters = new int[buckets.size()];
            for (int b = 0; b < buckets.size(); b++) {
                pendingParameters[b] = buckets.get(b).parameters().size();
            }
            this.inFlight = new ArrayList<>(Collections.nCopies(buckets.size(), null));
            this.nextBucket = buckets.size() - 1;
        }
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
    /** On the CUDA backend, the device buffers the buckets take turns in; else null. */
    private BucketRing ring;
    private final long bucketBytes;
    private final boolean overlap;
    private final Map<Parameter, Integer> bucketOf = new IdentityHashMap<>();
    /** On the CPU backend with overlap, the thread that runs the buckets' collectives; else null. */
    private final ExecutorService communicationThread;
    private final List<Bucket> buckets = new ArrayList<>();
    private RoundProgress progress;
    /**
     * Sharded, per bucket holding parameters a bf16 graph converts (else null): the bf16 working copies of the
     * bucket's flat, where the gather puts every owner's (read by the next forward in place of a convert), and of
     * this rank's owned run, which its optimizer writes in the update's pass (the gather's source).
     */
    private final Map<Bucket, Tensor> copyFlats = new IdentityHashMap<>();
    private final Map<Bucket, Tensor> ownedCopies = new IdentityHashMap<>();
    /** The other ranks' converted parameters and their places in {@link #copyFlats}. */
    private final Map<Parameter, Tensor> gatheredPlaces = new LinkedHashMap<>();
    /** Those of {@link #gatheredPlaces} the last {@link #gatherParameters} filled with the owners' fresh copies. */
    private final Map<Parameter, Tensor> gatheredCopies = new LinkedHashMap<>();
    private long communicationNanos;
    private long bucketsIssued;
    private long bucketsIssuedDuringBackward;

    /**
     * For steps of {@code rounds} rounds of micro-batches on each rank, in buckets of {@link #bucketBytes()},
     * overlapped with the backward as {@link #overlap()} says.
     */
    GradientReduction(Backend backend, Communicator communicator, List<Parameter> parameters, int rounds,
                      Sharding sharding) {
        this.backend = backend;
        this.bucketBytes = bucketBytes();
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
        this.overlap = overlap() && communicator.size() > 1;
        this.communicationThread = this.overlap && deviceCollectives == null
                ? Executors.newSingleThreadExecutor(task -> {
                    Thread thread = new Thread(task, "microdit-gradient-collectives");
                    thread.setDaemon(true);
                    return thread;
                }) : null;
        if (communicator.size() > 1) {
            planBuckets();
        }
    }

    /** The bucket size {@value #BUCKET_PROPERTY} sets, in bytes ({@value #DEFAULT_BUCKET_MB} MB without it). */
    static long bucketBytes() {
        String text = System.getProperty(BUCKET_PROPERTY);
        double mb;
        try {
            mb = text == null ? DEFAULT_BUCKET_MB : Double.parseDouble(text);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("-D" + BUCKET_PROPERTY + " must be a number of MB, got '" + text + "'");
        }
        long bytes = (long) (mb * (1 << 20));
        if (!(bytes >= Float.BYTES)) {
            throw new IllegalArgumentException("-D" + BUCKET_PROPERTY + " must hold at least one gradient element ("
                    + Float.BYTES + " bytes), got '" + text + "'");
        }
        return bytes;
    }

    /** The device bucket buffers {@value #BUFFERS_PROPERTY} sets ({@value #DEFAULT_BUFFERS} without it). */
    static int bucketBuffers() {
        String text = System.getProperty(BUFFERS_PROPERTY, Integer.toString(DEFAULT_BUFFERS));
        if (!text.matches("[1-9][0-9]{0,2}")) {
            throw new IllegalArgumentException("-D" + BUFFERS_PROPERTY + " must be a count of buffers from 1 to 999, "
                    + "got '" + text + "'");
        }
        return Integer.parseInt(text);
    }

    /** Whether the collectives overlap the backward: unless {@value #OVERLAP_PROPERTY} is {@code false}. */
    static boolean overlap() {
        String text = System.getProperty(OVERLAP_PROPERTY, "true");
        if (!text.equals("true") && !text.equals("false")) {
            throw new IllegalArgumentException("-D" + OVERLAP_PROPERTY + " must be true or false, got '" + text + "'");
        }
        return text.equals("true");
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

    /** Groups consecutive parameters into buckets of at most {@link #bucketBytes} (or one larger parameter). */
    private void planBuckets() {
        List<List<Parameter>> groups = new ArrayList<>();
        List<Parameter> members = new ArrayList<>();
        long elements = 0;
        for (Parameter p : parameters) {
            if (!members.isEmpty() && (elements + p.value().numel()) * Float.BYTES > bucketBytes) {
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
        // Buckets in flight together on the communication thread each need their own buffer; on the device they take
        // turns in the ring's slots (neighbours in different ones, since they go out one after another); reduced
        // serially on the host, they share one.
        if (deviceCollectives != null) {
            int slots = Math.clamp(groups.size(), 1, bucketBuffers());
            ring = new BucketRing(deviceCollectives, (CudaBackend) backend, slots, largest);
        }
        Tensor shared = communicationThread == null && ring == null ? bucketScope.zeros(Math.toIntExact(largest))
                : null;
        for (List<Parameter> group : groups) {
            int n = Math.toIntExact(elements(group));
            int slot = ring != null ? buckets.size() % ring.slots() : -1;
            addBucket(group, slot, ring != null ? ring.buffer(slot).rows(0, n)
                    : shared != null ? shared.rows(0, n) : bucketScope.zeros(n));
        }
    }

    private static long elements(List<Parameter> group) {
        long n = 0;
        for (Parameter p : group) {
            n += p.value().numel();
        }
        return n;
    }

    private void addBucket(List<Parameter> members, int slot, Tensor flat) {
        for (Parameter p : members) {
            bucketOf.put(p, buckets.size());
        }
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
        buckets.add(new Bucket(flat, slot, List.copyOf(members), List.copyOf(views), starts, owned));
    }

    /**
     * Before round {@code round}'s backward on {@code graph}: with overlap, the graph reports the gradients it
     * finishes and their buckets' collectives are issued from the backward. Without overlap nothing happens until
     * {@link #addRound}.
     */
    void watch(Graph graph, int round) {
        if (!overlap) {
            return;
        }
        progress = new RoundProgress(round, buckets);
        graph.onGradientsFinal((finished, nodesLeft) -> {
            for (Parameter p : finished) {
                Integer bucket = bucketOf.get(p);
                if (bucket != null) {
                    progress.pendingParameters[bucket]--;
                }
            }
            long start = System.nanoTime();
            issueReady(nodesLeft > 0);
            communicationNanos += System.nanoTime() - start;
        });
    }

    /** Issues, last first, the buckets whose gradients are all final and whose later buckets are issued. */
    private void issueReady(boolean duringBackward) {
        RoundProgress round = progress;
        while (round.nextBucket >= 0 && round.pendingParameters[round.nextBucket] <= 0) {
            issue(round, round.nextBucket--, duringBackward);
        }
    }

    /**
     * Called after round {@code round} of the step (each rank's micro-batch of the round back-propagated into
     * zeroed gradients): leaves the sum of every micro-batch so far in the running sum, or after the last round in
     * the gradients of the parameters this rank {@link #owns}.
     */
    void addRound(int round) {
        long start = System.nanoTime();
        if (!sharded && communicator.size() == 1) {
            addRunningSum(parameters, round);
            keepRunningSum(parameters, round);
        } else {
            if (progress == null || progress.round != round) {
                progress = new RoundProgress(round, buckets);
            }
            // Buckets the backward has not finished (parameters no op read, or no overlap) go now.
            for (int b = 0; b < buckets.size(); b++) {
                progress.pendingParameters[b] = 0;
            }
            issueReady(false);
            // The results are needed now (the next round's sums, the clip norm, the step): in issue order, the
            // communication thread's collectives awaited, the device ones joined.
            for (int b = buckets.size() - 1; b >= 0; b--) {
                Future<?> collective = progress.inFlight.get(b);
                if (collective != null) {
                    await(collective);
                    empty(buckets.get(b), round);
                } else if (ring != null && ring.pending(buckets.get(b).slot()) == b) {
                    ring.join(buckets.get(b).slot());
                    empty(buckets.get(b), round);
                }
            }
            progress = null;
        }
        communicationNanos += System.nanoTime() - start;
    }

    /**
     * Fills bucket {@code b} from the gradients and issues its collective: deferred on the communication stream
     * (after joining and emptying the bucket its ring slot held, if that one is still in flight), on the communication
     * thread, or, serially on the host, at once and emptied.
     */
    private void issue(RoundProgress round, int b, boolean duringBackward) {
        Bucket bucket = buckets.get(b);
        boolean accumulate = round.round > 0;
        if (!sharded) {
            addRunningSum(bucket.parameters(), round.round);
        }
        if (ring != null) {
            int previous = ring.acquire(bucket.slot());
            if (previous != BucketRing.NONE) {
                empty(buckets.get(previous), round.round);
            }
        }
        toBucket(bucket);
        bucketsIssued++;
        if (duringBackward) {
            bucketsIssuedDuringBackward++;
        }
        if (ring != null) {
            if (sharded) {
                ring.reduceScatterSum(bucket.slot(), bucket.flat(), bucket.starts(), bucket.owned(), accumulate, b);
            } else {
                ring.allReduceSum(bucket.slot(), bucket.flat(), b);
            }
            return;
        }
        Runnable collective = sharded
                ? () -> collectives.reduceScatterSum(bucket.flat(), bucket.starts(), bucket.owned(), accumulate)
                : () -> collectives.allReduceSum(bucket.flat());
        if (communicationThread != null) {
            round.inFlight.set(b, communicationThread.submit(collective));
        } else {
            collective.run();
            empty(bucket, round.round);
        }
    }

    /** Unsharded, rank 0 adds the running sum (micro-batches of earlier rounds) into its fresh gradients. */
    private void addRunningSum(List<Parameter> members, int round) {
        if (round > 0 && communicator.rank() == 0) {
            for (Parameter p : members) {
                Tensor g = p.gradBuffer();
                backend.add(running.get(p), g, g);
            }
        }
    }

    /** After its collective: the bucket's sums into the gradients (and the running sum), or its owned shard's. */
    private void empty(Bucket bucket, int round) {
        boolean last = round == rounds - 1;
        if (sharded) {
            if (last) {
                forOwned(bucket, (p, view) -> backend.copy(view, p.grad()));
            }
            return;
        }
        for (int i = 0; i < bucket.parameters().size(); i++) {
            backend.copy(bucket.views().get(i), bucket.parameters().get(i).grad());
        }
        keepRunningSum(bucket.parameters(), round);
    }

    private void keepRunningSum(List<Parameter> members, int round) {
        if (round < rounds - 1 && communicator.rank() == 0) {
            for (Parameter p : members) {
                backend.copy(p.grad(), running.get(p));
            }
        }
    }

    private static void await(Future<?> collective) {
        try {
            collective.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for a gradient collective", e);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException runtime) {
                throw runtime;
            }
            throw new IllegalStateException("gradient collective failed: " + e.getCause(), e.getCause());
        }
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

    /**
     * Sends the values of the parameters this rank owns (just stepped) to every rank, and the bf16 working copies of
     * those a bf16 graph converts ({@link #keepBf16Copies}), which the owners' optimizers wrote in the same update: no
     * rank converts another's weights for its forward. The F32 values stay gathered too: every rank keeps whole
     * master weights (checkpoints, the EMA and a resume on another number of ranks read them).
     */
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
            Tensor copies = copyFlats.get(bucket);
            if (copies != null) {
                collectives.allGather(ownedCopies.get(bucket), bucket.starts(), copies);
            }
        }
        // The owners' optimizers wrote the copies of the parameters that had a gradient (the same on every rank).
        gatheredCopies.clear();
        gatheredPlaces.forEach((p, copy) -> {
            if (p.grad() != null) {
                gatheredCopies.put(p, copy);
            }
        });
        communicationNanos += System.nanoTime() - start;
    }

    /**
     * Sharded: makes room for bf16 working copies of {@code converted} (the parameters a bf16 graph converted for its
     * products, {@code Graph.convertedParameters}, the same on every rank) in the parameter gather, and returns the
     * places of this rank's own ones, for its optimizer to write ({@code AdamW.keepBf16Copies(Map)}); unsharded,
     * nothing. Idempotent.
     */
    Map<Parameter, Tensor> keepBf16Copies(Collection<Parameter> converted) {
        Map<Parameter, Tensor> places = new LinkedHashMap<>();
        if (!sharded) {
            return places;
        }
        Set<Parameter> wanted = Collections.newSetFromMap(new IdentityHashMap<>());
        wanted.addAll(converted);
        int rank = communicator.rank();
        for (Bucket bucket : buckets) {
            if (bucket.parameters().stream().noneMatch(wanted::contains)) {
                continue;
            }
            Tensor flat = copyFlats.computeIfAbsent(bucket,
                    b -> Tensor.empty(bucketScope, DType.BF16, Math.toIntExact(elements(b.parameters()))));
            Tensor owned = ownedCopies.computeIfAbsent(bucket, b -> Tensor.empty(bucketScope, DType.BF16,
                    Math.toIntExact(b.starts()[rank + 1] - b.starts()[rank])));
            int offset = 0, ownedOffset = 0;
            for (Parameter p : bucket.parameters()) {
                int n = Math.toIntExact(p.value().numel());
                boolean mine = owners.get(p) == rank;
                if (wanted.contains(p)) {
                    if (mine) {
                        places.put(p, owned.rows(ownedOffset, n).reshape(p.value().shape()));
                    } else if (!gatheredPlaces.containsKey(p)) {
                        gatheredPlaces.put(p, flat.rows(offset, n).reshape(p.value().shape()));
                    }
                }
                offset += n;
                if (mine) {
                    ownedOffset += n;
                }
            }
        }
        return places;
    }

    /**
     * The other ranks' bf16 working copies the last {@link #gatherParameters} brought (convert's bits of their
     * values), for the next step's graphs ({@code Graph.useBf16Copies}) beside the optimizer's own.
     */
    Map<Parameter, Tensor> bf16Copies() {
        return Collections.unmodifiableMap(gatheredCopies);
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
     * Seconds the steps' own thread spent moving gradients and parameters between ranks so far (copies to and from
     * buckets included; what the communication thread did while a backward ran is not counted, since the step did
     * not wait for it); on the CUDA backend the time to queue that work, since the host does not wait for it.
     */
    double communicationSeconds() {
        return communicationNanos / 1e9;
    }

    /** Bucket collectives issued so far, and those of them issued while a backward still had ops to run. */
    long[] bucketsIssued() {
        return new long[] {bucketsIssued, bucketsIssuedDuringBackward};
    }

    int bucketCount() {
        return buckets.size();
    }

    @Override
    public void close() {
        if (communicationThread != null) {
            communicationThread.shutdownNow();
        }
        if (ring != null) {
            ring.close();
        }
        if (deviceCollectives != null) {
            deviceCollectives.close();
        }
        runningScope.close();
        bucketScope.close();
    }
}
