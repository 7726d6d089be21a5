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

    /**
     * A shard's optimizer plans the gathered bf16 copies: after an update, its copies cover every converted
     * parameter, its own written by the update and the others' as the gather brings them, each convert(value)'s bits.
     */
    @Test
    void aShardsOptimizerHasTheGatheredBf16CopiesOfTheOtherRanksWeights() {
        try (CpuBackend cpu = new CpuBackend(1); ParameterStore store = new ParameterStore("copy-shards")) {
            Random random = new Random(37);
            int[][] shapes = {{7, 5}, {13, 3}, {3, 11}, {9, 2}, {4, 4, 3}, {17, 2}};
            for (int i = 0; i < shapes.length; i++) {
                Parameter p = store.create("p" + i, shapes[i]);
                for (Tensor t : new Tensor[] {p.value(), p.gradBuffer()}) {
                    float[] values = new float[(int) t.numel()];
                    for (int j = 0; j < values.length; j++) {
                        values[j] = (float) random.nextGaussian();
                    }
                    cpu.copy(Tensor.of(store.scope(), values, t.shape()), t);
                }
            }
            List<Parameter> converted = new ArrayList<>(store.all());
            int ranks = 3;
            Map<Parameter, Integer> owners = ZeroShards.owners(store.all(), ranks);
            try (AdamW shard = AdamW.shardOf(cpu, store, AdamW.MICRODIT, 1, ranks)) {
                shard.keepBf16Copies(converted);
                shard.update(1e-3, 1.0);
                Map<Parameter, Tensor> copies = shard.bf16Copies();
                assertEquals(converted.size(), copies.size(), "a copy of every converted parameter");
                for (Parameter p : converted) {
                    Tensor copy = copies.get(p);
                    assertEquals(io.microdit.tensor.DType.BF16, copy.dtype(), p.name());
                    assertTrue(java.util.Arrays.equals(p.value().to(io.microdit.tensor.DType.BF16, store.scope())
                            .toFloatArray(), copy.toFloatArray()), p.name() + " (rank " + owners.get(p) + ")");
                }
            }
        }
    }
}
