package io.microdit.distributed;

import io.microdit.tensor.Tensor;

/** The world of one process: every sum is the tensor itself, every shard the whole tensor. */
public final class SingleProcessCommunicator implements Communicator {
    /** The communicator of a process that trains alone (rank 0 of 1). */
    public SingleProcessCommunicator() {
    }

    @Override
    public int rank() {
        return 0;
    }

    @Override
    public int size() {
        return 1;
    }

    @Override
    public int localRank() {
        return 0;
    }

    @Override
    public int localSize() {
        return 1;
    }

    @Override
    public String describe() {
        return "single process";
    }

    @Override
    public void allReduceSum(Tensor t) {
        Collectives.checkDtype(t, "allReduceSum");
    }

    @Override
    public void reduceScatterSum(Tensor t, long[] starts, Tensor shard, boolean accumulate) {
        Collectives.checkShard(t, starts, shard, 1, 0, "reduceScatterSum");
        if (accumulate) {
            Collectives.sumInRankOrder(t.segment(), 1, t.numel(), t.dtype(), shard.segment(), true);
        } else {
            shard.copyFrom(t);
        }
    }

    @Override
    public void allGather(Tensor shard, long[] starts, Tensor t) {
        Collectives.checkGatherShard(t, starts, shard, 1, 0, "allGather");
        t.copyFrom(shard);
    }

    @Override
    public void broadcast(Tensor t, int root) {
        Collectives.checkDtype(t, "broadcast");
        Collectives.checkRoot(root, 1);
    }

    @Override
    public void barrier() {
    }

    @Override
    public void abort(int code) {
    }

    @Override
    public void close() {
    }
}
