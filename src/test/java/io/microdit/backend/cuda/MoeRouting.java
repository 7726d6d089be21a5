package io.microdit.backend.cuda;

import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;

/** Routings [N, E, k] for the MoE kernel tests: indices as a top-k makes them, drawn from the test's random. */
final class MoeRouting {
    private MoeRouting() {
    }

    /** Each (sample, expert) picks k distinct tokens at random, as a top-k does. */
    static int[] distinctPicks(Random random, int samples, int tokens, int experts, int k) {
        int[] indices = new int[samples * experts * k];
        List<Integer> order = new ArrayList<>();
        for (int t = 0; t < tokens; t++) {
            order.add(t);
        }
        for (int item = 0; item < samples * experts; item++) {
            Collections.shuffle(order, random);
            for (int j = 0; j < k; j++) {
                indices[item * k + j] = order.get(j);
            }
        }
        return indices;
    }

    /** {@link #distinctPicks} as an I32 tensor [N, E, k] in {@code scope}. */
    static Tensor distinctPickIndices(MemoryScope scope, Random random, int samples, int tokens, int experts, int k) {
        return Tensor.ofInts(scope, distinctPicks(random, samples, tokens, experts, k), samples, experts, k);
    }

    /**
     * The indices of the device's top-k over uniform random probabilities [N, T, E] (so the routing keeps its
     * routed rows, as a training step's does); the gates are dropped.
     */
    static Tensor topKIndices(CudaBackend cuda, MemoryScope host, MemoryScope device, Random random, int samples,
                              int tokens, int experts, int k) {
        Tensor indices = device.zeros(DType.I32, samples, experts, k);
        cuda.expertChoiceTopK(cuda.upload(TestData.uniform(host, random, samples, tokens, experts), device), k,
                device.zeros(DType.F32, samples, experts, k), indices);
        return indices;
    }
}
