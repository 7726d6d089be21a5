package io.microdit.distributed;

import io.microdit.backend.cuda.CudaBackend;
import io.microdit.backend.cuda.CudaRuntime;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Run by {@link MpiCommunicatorTest} under mpirun, one process per rank. {@code check}: every collective on
 * awkward sizes, F32 and I32, against the single-process results computed here from every rank's inputs (each
 * rank draws every rank's inputs from the same seeds), compared bit for bit, and the gathers of BF16; prints one line per rank and exits 0
 * only when all agree. {@code device}: the same on the emulated CUDA backend's memory (an opaque backend: Java never
 * reads it) through a {@link DeviceCommunicator}, i.e. {@code mdt_comm_*} of the emulator; sums F32 only. {@code kill}:
 * rank 1 prints its pid and waits to be killed while rank 0 waits in an all-reduce.
 */
public final class CollectivesMain {
    private static final int[] SIZES = {0, 1, 2, 3, 5, 7, 64, 1001, 100_003};

    public static void main(String[] args) {
        try (Communicator comm = Communicator.fromEnvironment(); MemoryScope scope = new MemoryScope("collectives")) {
            switch (args[0]) {
                case "check" -> check(comm, scope, null);
                case "device" -> {
                    CudaRuntime.select("emu");
                    try (CudaBackend backend = CudaBackend.opaque();
                         DeviceCommunicator device = DeviceCommunicator.open(comm, backend)) {
                        check(device, scope, backend);
                    }
                }
                case "kill" -> waitToBeKilled(comm, scope);
                default -> throw new IllegalArgumentException("mode " + args[0]);
            }
        }
    }

    /** The collectives on host tensors, or with {@code backend} on its device tensors. */
    private static void check(Communicator comm, MemoryScope scope, CudaBackend backend) {
        int world = comm.size();
        int rank = comm.rank();
        int failures = 0;
        Placement on = backend == null ? new Placement(null, null) : new Placement(backend, backend.scope("device"));
        for (int n : SIZES) {
            for (DType dtype : new DType[] {DType.F32, DType.I32, DType.BF16}) {
                // BF16 is gathered only (ZeRO-2's bf16 working copies): no sums, no broadcast.
                boolean gatherOnly = dtype == DType.BF16;
                boolean sums = !gatherOnly && (backend == null || dtype == DType.F32);
                Tensor[] inputs = new Tensor[world];
                for (int r = 0; r < world; r++) {
                    inputs[r] = random(scope, dtype, n, 1000L * n + 10L * r + dtype.ordinal());
                }
                Tensor sum = Tensor.zeros(scope, dtype, n).copyFrom(inputs[0]);
                for (int r = 1; r < world && !gatherOnly; r++) {
                    for (int i = 0; i < n; i++) {
                        if (dtype == DType.F32) {
                            sum.setFloat(i, sum.getFloat(i) + inputs[r].getFloat(i));
                        } else {
                            sum.setInt(i, sum.getInt(i) + inputs[r].getInt(i));
                        }
                    }
                }
                int start = (int) Communicator.shardStart(n, world, rank);
                int count = (int) Communicator.shardSize(n, world, rank);

                if (sums) {
                    Tensor reduced = on.device(inputs[rank]);
                    comm.allReduceSum(reduced);
                    failures += compare("allReduceSum", n, dtype, on.host(reduced, scope), sum);

                    Tensor shard = on.device(random(scope, dtype, count, -3));
                    comm.reduceScatterSum(on.device(inputs[rank]), shard);
                    failures += compare("reduceScatterSum", n, dtype, on.host(shard, scope),
                            slice(scope, sum, start, count));
                }

                Tensor gathered = on.device(random(scope, dtype, n, -1));
                comm.allGather(on.device(slice(scope, inputs[rank], start, count)), gathered);
                Tensor expectedGather = Tensor.zeros(scope, dtype, n);
                for (int r = 0; r < world; r++) {
                    int s = (int) Communicator.shardStart(n, world, r);
                    int c = (int) Communicator.shardSize(n, world, r);
                    expectedGather.rows(s, c).copyFrom(inputs[r].rows(s, c));
                }
                failures += compare("allGather", n, dtype, on.host(gathered, scope), expectedGather);

                // Shards the caller chooses: rank 0's empty, the rest split unevenly; the sum onto a running value.
                long[] starts = new long[world + 1];
                for (int r = 1; r <= world; r++) {
                    starts[r] = r == world ? n : Math.min(n, (long) (r - 1) * n / 3 + (r > 1 ? 1 : 0));
                }
                int customStart = (int) starts[rank];
                int customCount = (int) (starts[rank + 1] - starts[rank]);
                Tensor running = random(scope, dtype, customCount, 77 + rank);
                Tensor expectedRunning = Tensor.zeros(scope, dtype, customCount).copyFrom(running);
                for (int i = 0; i < customCount && !gatherOnly; i++) {
                    for (int r = 0; r < world; r++) {
                        if (dtype == DType.F32) {
                            expectedRunning.setFloat(i, expectedRunning.getFloat(i)
                                    + inputs[r].getFloat(customStart + i));
                        } else {
                            expectedRunning.setInt(i, expectedRunning.getInt(i) + inputs[r].getInt(customStart + i));
                        }
                    }
                }
                if (sums) {
                    Tensor onDevice = on.device(running);
                    comm.reduceScatterSum(on.device(inputs[rank]), starts, onDevice, true);
                    failures += compare("reduceScatterSum onto a running sum", n, dtype, on.host(onDevice, scope),
                            expectedRunning);
                }
                Tensor customGathered = on.device(random(scope, dtype, n, -2));
                comm.allGather(on.device(slice(scope, inputs[rank], customStart, customCount)), starts,
                        customGathered);
                Tensor expectedCustom = Tensor.zeros(scope, dtype, n);
                for (int r = 0; r < world; r++) {
                    int s = (int) starts[r];
                    int c = (int) (starts[r + 1] - starts[r]);
                    expectedCustom.rows(s, c).copyFrom(inputs[r].rows(s, c));
                }
                failures += compare("allGather of chosen shards", n, dtype, on.host(customGathered, scope),
                        expectedCustom);

                if (!gatherOnly) {
                    int root = world - 1;
                    Tensor broadcast = on.device(inputs[rank]);
                    comm.broadcast(broadcast, root);
                    failures += compare("broadcast", n, dtype, on.host(broadcast, scope), inputs[root]);
                }
            }
        }
        on.close();
        comm.barrier();
        System.out.println("rank " + rank + " of " + world + ": " + (failures == 0 ? "all collectives agree"
                : failures + " collectives differ"));
        if (failures > 0) {
            System.exit(2);
        }
    }

    /** Where a check's tensors live: copies of the host values, on the backend's device or on the host. */
    private record Placement(CudaBackend backend, MemoryScope deviceScope) implements AutoCloseable {
        Tensor device(Tensor host) {
            if (backend == null) {
                return Tensor.zeros(host.scope(), host.dtype(), host.shape()).copyFrom(host);
            }
            Tensor t = deviceScope.zeros(host.dtype(), host.shape());
            backend.copy(host, t);
            return t;
        }

        Tensor host(Tensor t, MemoryScope scope) {
            if (backend == null) {
                return t;
            }
            Tensor copy = Tensor.zeros(scope, t.dtype(), t.shape());
            backend.copy(t, copy);
            return copy;
        }

        @Override
        public void close() {
            if (deviceScope != null) {
                deviceScope.close();
            }
        }
    }

    private static void waitToBeKilled(Communicator comm, MemoryScope scope) {
        if (comm.rank() == 1) {
            System.out.println("pid " + ProcessHandle.current().pid());
            System.out.flush();
            try {
                Thread.sleep(120_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        comm.allReduceSum(random(scope, DType.F32, 1 << 20, 7));
        System.out.println("rank " + comm.rank() + " left the all-reduce");
    }

    private static Tensor slice(MemoryScope scope, Tensor t, int start, int count) {
        return Tensor.zeros(scope, t.dtype(), count).copyFrom(t.rows(start, count));
    }

    static Tensor random(MemoryScope scope, DType dtype, int n, long seed) {
        if (dtype == DType.BF16) {
            return random(scope, DType.F32, n, seed).to(DType.BF16, scope);
        }
        SplittableRandom random = new SplittableRandom(seed);
        Tensor t = Tensor.zeros(scope, dtype, n);
        for (int i = 0; i < n; i++) {
            if (dtype == DType.F32) {
                t.setFloat(i, (float) (random.nextGaussian() * Math.exp(random.nextDouble(-8, 8))));
            } else {
                t.setInt(i, random.nextInt());
            }
        }
        return t;
    }

    private static int compare(String call, int n, DType dtype, Tensor actual, Tensor expected) {
        boolean same = dtype != DType.I32
                ? Arrays.equals(bits(actual.toFloatArray()), bits(expected.toFloatArray()))
                : Arrays.equals(actual.toIntArray(), expected.toIntArray());
        if (!same) {
            System.out.println(call + " of " + n + " " + dtype + " differs from the single-process result");
        }
        return same ? 0 : 1;
    }

    static int[] bits(float[] values) {
        int[] bits = new int[values.length];
        for (int i = 0; i < values.length; i++) {
            bits[i] = Float.floatToRawIntBits(values[i]);
        }
        return bits;
    }
}
