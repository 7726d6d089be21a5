package io.microdit.train;

import io.microdit.autograd.Parameter;
import io.microdit.backend.Backend;
import io.microdit.distributed.Communicator;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * The gradient of a global batch as the sum of its micro-batches' gradients in their global order, whichever rank
 * computed them: {@code ((g0 + g1) + g2) + …}. In round t of a step rank r computes micro-batch t·N + r into freshly
 * zeroed gradients; rank 0 adds the running sum to its own, and a rank-order all-reduce then adds the other ranks'
 * in order — so N ranks reproduce, bit for bit, one process that accumulates every micro-batch, for any N dividing
 * the accumulation steps. (A backward that accumulated into the running gradient would round differently.)
 *
 * <p>Gradients travel in host buckets of about {@link #BUCKET_BYTES}, one collective each, which also stages them
 * for backends whose memory Java cannot read. A world of one moves nothing.
 */
final class GradientReduction implements AutoCloseable {
    static final long BUCKET_BYTES = 25L << 20;

    private record Bucket(Tensor flat, List<Parameter> parameters, List<Tensor> views) {
    }

    private final Backend backend;
    private final Communicator communicator;
    private final List<Parameter> parameters;
    private final int rounds;
    private final MemoryScope runningScope;
    private final Map<Parameter, Tensor> running = new IdentityHashMap<>();
    private final MemoryScope hostScope = new MemoryScope("gradient-buckets");
    private final List<Bucket> buckets = new ArrayList<>();
    private long communicationNanos;

    /** For steps of {@code rounds} rounds of micro-batches on each rank. */
    GradientReduction(Backend backend, Communicator communicator, List<Parameter> parameters, int rounds) {
        this.backend = backend;
        this.communicator = communicator;
        this.parameters = List.copyOf(parameters);
        this.rounds = rounds;
        this.runningScope = backend.scope("gradient-running-sum");
        // Only rank 0 adds the running sum in (the others contribute their fresh gradients alone), and only
        // between rounds.
        if (communicator.rank() == 0 && rounds > 1) {
            for (Parameter p : this.parameters) {
                running.put(p, runningScope.zeros(p.value().shape()));
            }
        }
        if (communicator.size() > 1) {
            planBuckets();
        }
    }

    private void planBuckets() {
        List<Parameter> members = new ArrayList<>();
        long elements = 0;
        for (Parameter p : parameters) {
            if (!members.isEmpty() && (elements + p.value().numel()) * Float.BYTES > BUCKET_BYTES) {
                addBucket(members, elements);
                members = new ArrayList<>();
                elements = 0;
            }
            members.add(p);
            elements += p.value().numel();
        }
        if (!members.isEmpty()) {
            addBucket(members, elements);
        }
    }

    private void addBucket(List<Parameter> members, long elements) {
        Tensor flat = hostScope.zeros(Math.toIntExact(elements));
        List<Tensor> views = new ArrayList<>();
        int offset = 0;
        for (Parameter p : members) {
            int n = Math.toIntExact(p.value().numel());
            views.add(flat.rows(offset, n));
            offset += n;
        }
        buckets.add(new Bucket(flat, List.copyOf(members), List.copyOf(views)));
    }

    /**
     * Called after round {@code round} of the step (each rank's micro-batch of the round back-propagated into
     * zeroed gradients): leaves the sum of every micro-batch so far in the running sum, or after the last round in
     * the parameters' gradients.
     */
    void addRound(int round) {
        boolean last = round == rounds - 1;
        for (Parameter p : parameters) {
            Tensor g = p.gradBuffer();
            if (round > 0 && communicator.rank() == 0) {
                backend.add(running.get(p), g, g);
            }
        }
        if (communicator.size() > 1) {
            long start = System.nanoTime();
            for (Bucket bucket : buckets) {
                for (int i = 0; i < bucket.parameters().size(); i++) {
                    backend.copy(bucket.parameters().get(i).grad(), bucket.views().get(i));
                }
                communicator.allReduceSum(bucket.flat());
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

    /** Seconds spent moving gradients between ranks so far (copies to and from the buckets included). */
    double communicationSeconds() {
        return communicationNanos / 1e9;
    }

    @Override
    public void close() {
        runningScope.close();
        hostScope.close();
    }
}
