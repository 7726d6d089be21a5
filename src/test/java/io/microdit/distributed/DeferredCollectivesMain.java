package io.microdit.distributed;

import io.microdit.backend.cuda.CudaBackend;
import io.microdit.backend.cuda.CudaRuntime;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Run by {@link DeviceCommunicatorTest} under mpirun, one process per rank, on the emulated CUDA backend with deferred
 * streams (as on a GPU): the deferred collectives of {@link DeviceCommunicator} and the {@link BucketRing} the gradient
 * buckets take turns in. Each rank draws every rank's inputs from the same seeds, so it knows the rank-order sums.
 * Checks, each failure printed:
 * <ul>
 *   <li>before its join a deferred collective has not run: its buffer still holds this rank's input, while work the
 *       compute stream queued after the issue has run (the stream did not wait for the collective); after the join
 *       it holds the rank-order sum, bit for bit that of the collective without deferral;
 *   <li>a ring of 2 slots over {@value #BUCKETS} buckets issued last first as the backward does: the order of issues
 *       and joins (printed as this rank's trace: a bucket's slot is joined only when a later bucket needs it), the
 *       older of two buckets in flight still pending after the younger was packed and issued, and every bucket's
 *       result the serial path's, bit for bit (a slot packed while its collective was pending would reduce the
 *       wrong bucket); the ring's memory is its slots times the largest bucket;
 *   <li>issuing into a slot whose collective is still in flight is refused.
 * </ul>
 * Prints one line per rank and exits 0 only when every check holds.
 *
 * <p>With an argument, the failures of a pending collective, each reported by the join as an exception (printed as
 * {@code rank r: the join failed: <message>}), after which the rank ends the job with {@link Communicator#abort}
 * (exit status 3), as a training run does:
 * <ul>
 *   <li>{@code kill}: every rank issues a deferred all-reduce and a deferred reduce-scatter from the slots of a
 *       {@link BucketRing}, as the gradient buckets are; rank 1 then prints its pid and waits to be killed, the
 *       others join (and must never print that they left the join);
 *   <li>{@code mismatch} (2 ranks): the ring's deferred reduce-scatter with shard bounds that differ across the
 *       ranks: each rank takes one element off its own shard (giving it to the other's), so each is sent one more
 *       element than it expects and MPI fails the exchange on both.
 * </ul>
 */
public final class DeferredCollectivesMain {
    static final int BUCKETS = 5;
    private static final int[] BUCKET_SIZES = {7, 1001, 64, 3, 517};
    private static final int SLOTS = 2;

    private final Communicator host;
    private final DeviceCommunicator device;
    private final CudaBackend backend;
    private final MemoryScope scope;
    private final MemoryScope deviceScope;
    private int failures;

    private DeferredCollectivesMain(Communicator host, DeviceCommunicator device, CudaBackend backend,
                                    MemoryScope scope) {
        this.host = host;
        this.device = device;
        this.backend = backend;
        this.scope = scope;
        this.deviceScope = backend.scope("deferred-collectives");
    }

    public static void main(String[] args) {
        CudaRuntime.select("emu");
        CudaRuntime.streamMode(CudaRuntime.STREAMS_DEFERRED);
        try (Communicator host = Communicator.fromEnvironment(); MemoryScope scope = new MemoryScope("deferred");
             CudaBackend backend = CudaBackend.opaque();
             DeviceCommunicator device = DeviceCommunicator.open(host, backend)) {
            DeferredCollectivesMain checks = new DeferredCollectivesMain(host, device, backend, scope);
            if (args.length > 0) {
                checks.failAtJoin(args[0]);
                return;
            }
            checks.pendingUntilJoined();
            checks.ring();
            checks.deviceScope.close();
            host.barrier();
            System.out.println("rank " + host.rank() + " of " + host.size() + ": " + (checks.failures == 0
                    ? "deferred collectives agree" : checks.failures + " deferred checks failed"));
            if (checks.failures > 0) {
                System.exit(2);
            }
        }
    }

    private void pendingUntilJoined() {
        int n = 1001;
        Tensor[] inputs = inputs(n, 11);
        Tensor sum = rankOrderSum(inputs, 0, n);
        Tensor reduced = toDevice(inputs[host.rank()]);
        Tensor later = toDevice(CollectivesMain.random(scope, DType.F32, n, 99));
        Tensor laterTarget = deviceScope.zeros(n);
        try (DeviceCommunicator.Completion done = device.completion()) {
            device.allReduceSumDeferred(reduced, done);
            // Work queued after the issue runs without the collective: a stream that waited at issue would have
            // run the collective first (reading a device tensor waits for the compute stream, nothing else).
            backend.copy(later, laterTarget);
            expect("work queued after a deferred all-reduce", toHost(laterTarget), toHost(later));
            expect("an all-reduce before its join (the old values)", toHost(reduced), inputs[host.rank()]);
            device.join(done);
            expect("an all-reduce after its join", toHost(reduced), sum);

            long[] starts = Communicator.evenStarts(n, host.size());
            int start = (int) starts[host.rank()];
            int count = (int) (starts[host.rank() + 1] - start);
            Tensor running = CollectivesMain.random(scope, DType.F32, count, 5 + host.rank());
            Tensor expected = Tensor.zeros(scope, DType.F32, count).copyFrom(running);
            for (int i = 0; i < count; i++) {
                float total = expected.getFloat(i);
                for (Tensor input : inputs) {
                    total += input.getFloat(start + i);
                }
                expected.setFloat(i, total);
            }
            Tensor shard = toDevice(running);
            device.reduceScatterSumDeferred(toDevice(inputs[host.rank()]), starts, shard, true, done);
            expect("a reduce-scatter before its join (the old values)", toHost(shard), running);
            device.join(done);
            expect("a reduce-scatter onto a running sum after its join", toHost(shard), expected);

            Tensor serial = toDevice(inputs[host.rank()]);
            device.allReduceSum(serial);
            expect("the all-reduce without deferral", toHost(serial), sum);
        }
    }

    private void failAtJoin(String mode) {
        int n = 1001;
        Tensor data = toDevice(inputs(n, 13)[host.rank()]);
        long[] starts = Communicator.evenStarts(n, host.size());
        if (mode.equals("mismatch")) {
            if (host.rank() == 0) {
                starts[1]--;
            } else {
                starts[1]++;
            }
        } else if (!mode.equals("kill")) {
            throw new IllegalArgumentException("mode " + mode);
        }
        Tensor shard = deviceScope.zeros((int) (starts[host.rank() + 1] - starts[host.rank()]));
        try (BucketRing ring = new BucketRing(device, backend, 2, n)) {
            for (int slot = 0; slot < 2; slot++) {
                backend.copy(data, ring.buffer(slot));
            }
            if (mode.equals("kill")) {
                ring.allReduceSum(0, ring.buffer(0), 0);
            }
            ring.reduceScatterSum(1, ring.buffer(1), starts, shard, false, 1);
            if (mode.equals("kill") && host.rank() == 1) {
                System.out.println("pid " + ProcessHandle.current().pid());
                System.out.flush();
                sleep(120_000);
            }
            // The ring's collectives run in the order they were issued: joining the last one runs them all.
            ring.join(1);
            System.out.println("rank " + host.rank() + " left the join");
        } catch (RuntimeException e) {
            System.out.println("rank " + host.rank() + ": the join failed: " + e.getMessage());
            System.out.flush();
            host.abort(3);
        }
    }

    private static void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private void ring() {
        List<Tensor[]> inputs = new ArrayList<>();
        long largest = 0;
        for (int b = 0; b < BUCKETS; b++) {
            inputs.add(inputs(BUCKET_SIZES[b], 1000 + b));
            largest = Math.max(largest, BUCKET_SIZES[b]);
        }
        List<String> trace = new ArrayList<>();
        Tensor[] results = new Tensor[BUCKETS];
        try (BucketRing ring = new BucketRing(device, backend, SLOTS, largest)) {
            if (ring.bytes() != SLOTS * largest * Float.BYTES) {
                fail("ring: " + ring.bytes() + " bytes, expected " + SLOTS + " buffers of the largest bucket");
            }
            for (int b = BUCKETS - 1; b >= 0; b--) {
                int slot = b % SLOTS;
                int joined = ring.acquire(slot);
                if (joined != BucketRing.NONE) {
                    trace.add("join " + joined);
                    results[joined] = toHost(ring.buffer(slot).rows(0, BUCKET_SIZES[joined]));
                }
                Tensor flat = ring.buffer(slot).rows(0, BUCKET_SIZES[b]);
                backend.copy(toDevice(inputs.get(b)[host.rank()]), flat);
                ring.allReduceSum(slot, flat, b);
                trace.add("issue " + b);
                int older = b + 1;
                if (older < BUCKETS && ring.pending(older % SLOTS) == older) {
                    // Bucket b was packed and issued on the compute stream; bucket b + 1's collective has not run.
                    expect("bucket " + older + " in flight while bucket " + b + " was packed (the old values)",
                            toHost(ring.buffer(older % SLOTS).rows(0, BUCKET_SIZES[older])),
                            inputs.get(older)[host.rank()]);
                }
            }
            if (ring.mostInFlight() != SLOTS || ring.joinsBeforeReuse() != BUCKETS - SLOTS) {
                fail("ring: " + ring.mostInFlight() + " collectives in flight at most and "
                        + ring.joinsBeforeReuse() + " joins before reuse, expected " + SLOTS + " and "
                        + (BUCKETS - SLOTS));
            }
            int pendingSlot = 0;
            try {
                ring.allReduceSum(pendingSlot, ring.buffer(pendingSlot), BUCKETS);
                fail("issuing into slot " + pendingSlot + " while bucket " + ring.pending(pendingSlot)
                        + " is in flight was accepted");
            } catch (IllegalStateException expected) {
                // refused: the slot's collective must be joined first
            }
            for (int b = BUCKETS - 1; b >= 0; b--) {
                int slot = b % SLOTS;
                if (ring.pending(slot) == b) {
                    ring.join(slot);
                    trace.add("join " + b);
                    results[b] = toHost(ring.buffer(slot).rows(0, BUCKET_SIZES[b]));
                }
            }
        }
        System.out.println("rank " + host.rank() + " ring trace: " + String.join(", ", trace));
        for (int b = 0; b < BUCKETS; b++) {
            Tensor[] bucket = inputs.get(b);
            Tensor serial = toDevice(bucket[host.rank()]);
            device.allReduceSum(serial);
            Tensor expected = rankOrderSum(bucket, 0, BUCKET_SIZES[b]);
            expect("bucket " + b + " through the ring", results[b], expected);
            expect("bucket " + b + " without deferral", toHost(serial), expected);
        }
    }

    /** Every rank's input of {@code n} elements (rank r's from seed {@code seed + r}), on the host. */
    private Tensor[] inputs(int n, long seed) {
        Tensor[] inputs = new Tensor[host.size()];
        for (int r = 0; r < inputs.length; r++) {
            inputs[r] = CollectivesMain.random(scope, DType.F32, n, 7919L * seed + r);
        }
        return inputs;
    }

    /** {@code ((x0 + x1) + x2) + …} of elements [start, start + count) of the ranks' inputs. */
    private Tensor rankOrderSum(Tensor[] inputs, int start, int count) {
        Tensor sum = Tensor.zeros(scope, DType.F32, count).copyFrom(inputs[0].rows(start, count));
        for (int r = 1; r < inputs.length; r++) {
            for (int i = 0; i < count; i++) {
                sum.setFloat(i, sum.getFloat(i) + inputs[r].getFloat(start + i));
            }
        }
        return sum;
    }

    private Tensor toDevice(Tensor hostTensor) {
        Tensor t = deviceScope.zeros(hostTensor.dtype(), hostTensor.shape());
        backend.copy(hostTensor, t);
        return t;
    }

    private Tensor toHost(Tensor t) {
        Tensor copy = Tensor.zeros(scope, t.dtype(), t.shape());
        backend.copy(t, copy);
        return copy;
    }

    private void expect(String what, Tensor actual, Tensor expected) {
        if (!Arrays.equals(CollectivesMain.bits(actual.toFloatArray()),
                CollectivesMain.bits(expected.toFloatArray()))) {
            fail(what + " differs from the expected values");
        }
    }

    private void fail(String message) {
        failures++;
        System.out.println("rank " + host.rank() + ": " + message);
    }
}
