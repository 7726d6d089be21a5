package io.microdit.train;

import io.microdit.autograd.Parameter;
import io.microdit.distributed.Communicator;
import java.util.Collection;
import java.util.IdentityHashMap;
import java.util.Map;

/**
 * Which rank owns which parameter under ZeRO-2 ({@link Sharding#SHARD_GRAD_OP}): whole parameters in their store
 * order, rank q owning those whose first element falls in q's even share of all elements. The owner alone keeps a
 * parameter's AdamW moments and steps it, so a rank's optimizer memory is about 1/N of the whole.
 */
public final class ZeroShards {
    private ZeroShards() {
    }

    /** The owning rank of every parameter, for {@code ranks} ranks. */
    public static Map<Parameter, Integer> owners(Collection<Parameter> parameters, int ranks) {
        if (ranks < 1) {
            throw new IllegalArgumentException("ZeRO-2 sharding needs at least one rank, got " + ranks);
        }
        long total = 0;
        for (Parameter p : parameters) {
            total += p.value().numel();
        }
        long[] shares = Communicator.evenStarts(total, ranks);
        Map<Parameter, Integer> owners = new IdentityHashMap<>();
        long offset = 0;
        int owner = 0;
        for (Parameter p : parameters) {
            while (owner + 1 < ranks && offset >= shares[owner + 1]) {
                owner++;
            }
            owners.put(p, owner);
            offset += p.value().numel();
        }
        return owners;
    }

    /** The rank that owns the most parameter elements (the one whose optimizer memory bounds every rank's). */
    public static int largestShard(Collection<Parameter> parameters, int ranks) {
        long[] elements = new long[ranks];
        owners(parameters, ranks).forEach((p, rank) -> elements[rank] += p.value().numel());
        int largest = 0;
        for (int r = 1; r < ranks; r++) {
            if (elements[r] > elements[largest]) {
                largest = r;
            }
        }
        return largest;
    }
}
