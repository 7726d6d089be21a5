package io.microdit.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.autograd.Parameter;
import io.microdit.backend.cpu.CpuBackend;
import io.microdit.model.MicroDiT;
import io.microdit.model.MicroDiTConfigs;
import io.microdit.nn.ParameterStore;
import io.microdit.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** ZeRO-2 ownership: contiguous runs of whole parameters, each rank near an even share of the elements. */
class ZeroShardsTest {
    @Test
    void ranksOwnContiguousRunsOfWholeParametersNearAnEvenShare() {
        try (CpuBackend cpu = new CpuBackend(1)) {
            MicroDiT model = MicroDiT.forPlanning(MicroDiTConfigs.builtin("fashion-small"), cpu);
            try {
                List<Parameter> parameters = new ArrayList<>(model.parameters().all());
                long total = parameters.stream().mapToLong(p -> p.value().numel()).sum();
                long largestParameter = parameters.stream().mapToLong(p -> p.value().numel()).max().orElseThrow();
                for (int ranks : new int[] {1, 2, 3, 8}) {
                    Map<Parameter, Integer> owners = ZeroShards.owners(parameters, ranks);
                    long[] elements = new long[ranks];
                    int previous = 0;
                    for (Parameter p : parameters) {
                        int owner = owners.get(p);
                        assertTrue(owner >= previous && owner < ranks, "owners must not decrease: " + p.name());
                        previous = owner;
                        elements[owner] += p.value().numel();
                    }
                    int largest = ZeroShards.largestShard(parameters, ranks);
                    for (int r = 0; r < ranks; r++) {
                        // A share overshoots the even share by at most the parameter that straddles its end.
                        assertTrue(elements[r] <= Math.ceilDiv(total, ranks) + largestParameter,
                                ranks + " ranks: rank " + r + " owns " + elements[r] + " of " + total);
                        assertTrue(elements[r] <= elements[largest]);
                    }
                    assertEquals(total, java.util.Arrays.stream(elements).sum());
                }
                assertThrows(IllegalArgumentException.class, () -> ZeroShards.owners(parameters, 0));
            } finally {
                model.parameters().close();
            }
        }
    }

    @Test
    void aShardsOptimizerNormsItsOwnGradientsOnly() {
        try (CpuBackend cpu = new CpuBackend(1); ParameterStore store = new ParameterStore("norm-shards")) {
            Random random = new Random(31);
            int[][] shapes = {{7, 5}, {13}, {3, 11}, {29}, {4, 4, 3}, {17}};
            for (int i = 0; i < shapes.length; i++) {
                Parameter p = store.create("p" + i, shapes[i]);
                Tensor g = p.gradBuffer();
                float[] values = new float[(int) g.numel()];
                for (int j = 0; j < values.length; j++) {
                    values[j] = (float) random.nextGaussian();
                }
                cpu.copy(Tensor.of(store.scope(), values, g.shape()), g);
            }
            int ranks = 3;
            Map<Parameter, Integer> owners = ZeroShards.owners(store.all(), ranks);
            double total = 0;
            for (int rank = 0; rank < ranks; rank++) {
                double expected = 0;
                for (Parameter p : store.all()) {
                    if (owners.get(p) == rank) {
                        for (float v : p.grad().toFloatArray()) {
                            expected += (double) v * v;
                        }
                    }
                }
                try (AdamW shard = AdamW.shardOf(cpu, store, AdamW.MICRODIT, rank, ranks)) {
                    double norm = shard.gradientNorm();
                    assertEquals(Math.sqrt(expected), norm, 1e-5 * Math.sqrt(expected), "rank " + rank);
                    total += norm * norm;
                }
                assertTrue(expected > 0, "every rank owns a gradient here: rank " + rank);
            }
            try (AdamW whole = new AdamW(cpu, store, AdamW.MICRODIT)) {
                assertEquals(whole.gradientNorm(), Math.sqrt(total), 1e-5 * Math.sqrt(total));
            }
        }
    }
}
