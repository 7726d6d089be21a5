package io.microdit.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The token→slot map of a routing (mdt_moe_token_slots) against a Java reference, and the ops that read it —
 * combine and the dispatch backward — against the CPU backend bit for bit at many tokens, with the map the top-k
 * built once for its routing and with one built for indices from elsewhere.
 */
@Tag("emu")
class CudaMoeTokenSlotsTest extends CudaVersusCpu {
    /** microdit.h's MDT_CHECK_MOE_COMBINE_FWD. */
    private static final int CHECK_COMBINE = 4;

    /** Per sample: offsets [T+1], then the slots s = e·k + j of each token ascending (bad indices left out). */
    private static int[][] referenceMap(int[] indices, int samples, int tokens, int slots) {
        int[] offsets = new int[samples * (tokens + 1)], list = new int[samples * slots];
        for (int n = 0; n < samples; n++) {
            int base = n * (tokens + 1);
            for (int s = 0; s < slots; s++) {
                int token = indices[n * slots + s];
                if (token >= 0 && token < tokens) {
                    offsets[base + token + 1]++;
                }
            }
            for (int t = 0; t < tokens; t++) {
                offsets[base + t + 1] += offsets[base + t];
            }
            int[] cursor = Arrays.copyOfRange(offsets, base, base + tokens);
            for (int s = 0; s < slots; s++) {
                int token = indices[n * slots + s];
                if (token >= 0 && token < tokens) {
                    list[n * slots + cursor[token]++] = s;
                }
            }
        }
        return new int[][] {offsets, list};
    }

    /**
     * The map of {@code indices} from the kernel, bad indices reported as combine's into {@code errorRecord}: the
     * next wait throws {@code report} (null: nothing). Returns {offsets, slots}.
     */
    private static int[][] deviceMap(int[] indices, int samples, int tokens, int experts, int k,
                                     MemorySegment errorRecord, String report) {
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            Tensor onDevice = cuda.upload(Tensor.ofInts(host, indices, samples, experts, k), device);
            Tensor offsets = cuda.upload(output(host, DType.I32, samples, tokens + 1), device);
            Tensor slots = cuda.upload(output(host, DType.I32, samples, experts * k), device);
            CudaRuntime.check(TokenBindings.mdt_moe_token_slots(cuda.stream(), onDevice.segment(), offsets.segment(),
                    slots.segment(), samples, tokens, experts, k, CHECK_COMBINE, errorRecord), "mdt_moe_token_slots");
            if (report == null) {
                cuda.synchronize();
            } else {
                assertEquals(report, assertThrows(IllegalArgumentException.class, cuda::synchronize).getMessage());
            }
            return new int[][] {cuda.download(offsets, host).toIntArray(), cuda.download(slots, host).toIntArray()};
        }
    }

    /**
     * The kernel's map (see {@link #deviceMap}) against the reference: offsets all, slots up to each sample's count
     * of valid indices.
     */
    private static void assertMap(String what, int[] indices, int samples, int tokens, int experts, int k,
                                  MemorySegment errorRecord, String report) {
        int slots = experts * k;
        int[][] expected = referenceMap(indices, samples, tokens, slots);
        int[][] actual = deviceMap(indices, samples, tokens, experts, k, errorRecord, report);
        assertArrayEquals(expected[0], actual[0], what + ": offsets");
        for (int n = 0; n < samples; n++) {
            int listed = expected[0][n * (tokens + 1) + tokens];
            assertArrayEquals(Arrays.copyOfRange(expected[1], n * slots, n * slots + listed),
                    Arrays.copyOfRange(actual[1], n * slots, n * slots + listed), what + ": slots of sample " + n);
        }
    }

    @Test
    void theMapListsEachTokensSlotsInSlotOrder() {
        Random random = new Random(31);
        // {N, T, E, k}: MicroDiT at 512 px (1024 tokens, k = T/4: 2,048 slots, 8 per thread of a 256-thread block),
        // odd sizes, every expert taking every token, and more slots than the old shared-memory list held (12,288).
        for (int[] size : new int[][] {{3, 1024, 8, 256}, {2, 77, 3, 13}, {1, 5, 4, 5}, {2, 40, 3, 40},
                {1, 4096, 4, 4096}}) {
            int n = size[0], tokens = size[1], experts = size[2], k = size[3];
            String what = Arrays.toString(size);
            assertMap(what + " distinct picks", MoeRouting.distinctPicks(random, n, tokens, experts, k), n, tokens,
                    experts, k, cuda.errorRecord(), null);
            // Any in-range indices: a token may fill one expert's slots several times, so lists run past E entries.
            int[] repeated = new int[n * experts * k];
            for (int i = 0; i < repeated.length; i++) {
                repeated[i] = random.nextInt(Math.min(tokens, 3 + tokens / 64));
            }
            assertMap(what + " repeated tokens", repeated, n, tokens, experts, k, cuda.errorRecord(), null);
        }
    }

    @Test
    void aBadIndexIsLeftOutOfTheMapAndReportedAsTheOpsOwn() {
        Random random = new Random(32);
        int n = 2, tokens = 50, experts = 4, k = 12;
        int[] indices = MoeRouting.distinctPicks(random, n, tokens, experts, k);
        indices[(experts + 2) * k + 5] = tokens + 3; // [1, 2, 5]
        assertMap("one bad index", indices, n, tokens, experts, k, cuda.errorRecord(),
                "moeCombine: indices[1, 2, 5] = 53 is not a token index in [0, 50)");
        indices[3] = -1;
        // A NULL record: the bad indices are still left out, nothing is reported.
        assertMap("unreported", indices, n, tokens, experts, k, MemorySegment.NULL, null);
    }

    /** Probabilities with few distinct values (ties), one token every expert wants and one none does. */
    private static Tensor tiedProbs(MemoryScope scope, Random random, int n, int tokens, int experts) {
        Tensor probs = scope.zeros(n, tokens, experts);
        for (int i = 0; i < probs.numel(); i++) {
            probs.setFloat(i, 0.125f + random.nextInt(7) / 8f);
        }
        for (int e = 0; e < experts; e++) {
            probs.setFloat((long) (tokens / 2) * experts + e, 1f);
            probs.setFloat((long) (tokens - 1) * experts + e, 0f);
        }
        return probs;
    }

    @Test
    void routingAtManyTokensMatchesTheCpuBitForBit() {
        Random random = new Random(33);
        // {N, T, E, k, D}: MicroDiT's 512 px patch-mixer routing (T 1024, k T/4), XL's masked backbone (T 64),
        // k = T (every expert takes every token: lists of E slots), and more slots per sample (16,384) than the
        // shared-memory slot list the map replaced could hold (12,288).
        for (int[] size : new int[][] {{2, 1024, 8, 256, 5}, {3, 64, 8, 16, 33}, {2, 48, 3, 48, 7},
                {1, 4096, 4, 4096, 2}}) {
            int n = size[0], tokens = size[1], experts = size[2], k = size[3], dim = size[4];
            try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
                Tensor probs = tiedProbs(host, random, n, tokens, experts);
                Tensor h = random(host, random, experts, n * k, dim), dOut = random(host, random, experts, n * k, dim);
                Tensor dx = random(host, random, n, tokens, dim);
                Tensor gates = host.zeros(n, experts, k), indices = host.zeros(DType.I32, n, experts, k);
                Tensor out = host.zeros(n, tokens, dim), dxCpu = host.zeros(n, tokens, dim).copyFrom(dx);
                cpu.expertChoiceTopK(probs, k, gates, indices);
                cpu.moeCombine(h, gates, indices, out);
                cpu.moeDispatchBackward(dOut, indices, dxCpu);

                Tensor deviceGates = cuda.upload(output(host, n, experts, k), device);
                Tensor deviceIndices = cuda.upload(output(host, DType.I32, n, experts, k), device);
                Tensor deviceOut = cuda.upload(output(host, n, tokens, dim), device);
                Tensor deviceDx = cuda.upload(dx, device);
                cuda.expertChoiceTopK(cuda.upload(probs, device), k, deviceGates, deviceIndices);
                cuda.moeCombine(cuda.upload(h, device), deviceGates, deviceIndices, deviceOut);
                cuda.moeDispatchBackward(cuda.upload(dOut, device), deviceIndices, deviceDx);
                String what = Arrays.toString(size);
                assertArrayEquals(indices.toIntArray(), cuda.download(deviceIndices, host).toIntArray(), what);
                assertArrayEquals(gates.toFloatArray(), cuda.download(deviceGates, host).toFloatArray(), what);
                assertArrayEquals(out.toFloatArray(), cuda.download(deviceOut, host).toFloatArray(), what + " combine");
                assertArrayEquals(dxCpu.toFloatArray(), cuda.download(deviceDx, host).toFloatArray(),
                        what + " dispatch backward");
            }
        }
    }

    private static List<String> kernels(LaunchTrace.OpCall call) {
        return call.launches().stream().map(LaunchTrace.Launch::kernel).toList();
    }

    @Test
    void theTopKBuildsTheMapOnceForItsRoutingUntilItsIndicesAreOverwritten() {
        Random random = new Random(34);
        int n = 2, tokens = 40, experts = 4, k = 10, dim = 6;
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            Tensor probs = tiedProbs(host, random, n, tokens, experts);
            Tensor h = random(host, random, experts, n * k, dim), dOut = random(host, random, experts, n * k, dim);
            Tensor deviceProbs = cuda.upload(probs, device), deviceH = cuda.upload(h, device);
            Tensor deviceDOut = cuda.upload(dOut, device);
            Tensor gates = device.zeros(n, experts, k), indices = device.zeros(DType.I32, n, experts, k);
            Tensor out = device.zeros(n, tokens, dim), dx = device.zeros(n, tokens, dim);
            long before = device.ownedBytes();
            List<LaunchTrace.OpCall> calls;
            try (LaunchTrace trace = cuda.traceLaunches(false)) {
                long waits = cuda.synchronizations(); // counted after the wait that opens the trace
                cuda.expertChoiceTopK(deviceProbs, k, gates, indices);
                cuda.moeCombine(deviceH, gates, indices, out);
                cuda.moeDispatchBackward(deviceDOut, indices, dx);
                assertEquals(waits, cuda.synchronizations(), "the routing made the host wait");
                calls = trace.calls();
            }
            assertEquals(List.of("expertChoiceTopK", "moeCombine", "moeDispatchBackward"),
                    calls.stream().map(LaunchTrace.OpCall::op).toList());
            assertEquals(List.of("topk_kernel", "token_slots_kernel", "routed_rows_kernel"), kernels(calls.get(0)));
            assertEquals(List.of("token_rows_kernel"), kernels(calls.get(1)), "combine reads the top-k's map");
            assertEquals(List.of("token_rows_kernel"), kernels(calls.get(2)), "so does the dispatch backward");
            long mapBytes = 4L * (n * (tokens + 1) + n * experts * k + experts * n * k); // map and routed rows
            assertEquals(before + mapBytes, device.ownedBytes(), "the map lives in the indices' scope");
            cuda.expertChoiceTopK(deviceProbs, k, gates, indices);
            assertEquals(before + mapBytes, device.ownedBytes(), "routing again into the same indices reuses it");

            // New indices written over the routing's: combine must follow them, not the top-k's map.
            int[] other = MoeRouting.distinctPicks(random, n, tokens, experts, k);
            cuda.write(indices, other);
            Tensor hostIndices = Tensor.ofInts(host, other, n, experts, k), hostGates = cuda.download(gates, host);
            Tensor expected = host.zeros(n, tokens, dim);
            cpu.moeCombine(h, hostGates, hostIndices, expected);
            try (LaunchTrace trace = cuda.traceLaunches(false)) {
                cuda.moeCombine(deviceH, gates, indices, out);
                calls = trace.calls();
            }
            assertEquals(List.of("token_slots_kernel", "token_rows_kernel"), kernels(calls.get(0)));
            assertArrayEquals(expected.toFloatArray(), cuda.download(out, host).toFloatArray(), "after a write");

            // Combine over more tokens than the top-k routed: the map is built for that count.
            cuda.expertChoiceTopK(deviceProbs, k, gates, indices);
            Tensor routed = cuda.download(indices, host);
            Tensor wider = cuda.upload(output(host, n, tokens + 3, dim), device);
            Tensor expectedWider = host.zeros(n, tokens + 3, dim);
            cpu.moeCombine(h, hostGates, routed, expectedWider);
            try (LaunchTrace trace = cuda.traceLaunches(false)) {
                cuda.moeCombine(deviceH, gates, indices, wider);
                calls = trace.calls();
            }
            assertEquals(List.of("token_slots_kernel", "token_rows_kernel"), kernels(calls.get(0)));
            assertArrayEquals(expectedWider.toFloatArray(), cuda.download(wider, host).toFloatArray(), "wider");
        }
    }
}
