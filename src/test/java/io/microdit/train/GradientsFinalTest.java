package io.microdit.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.autograd.GradScope;
import io.microdit.autograd.Graph;
import io.microdit.autograd.Parameter;
import io.microdit.autograd.Precision;
import io.microdit.autograd.Recomputation;
import io.microdit.autograd.Variable;
import io.microdit.backend.cpu.CpuBackend;
import io.microdit.diffusion.Edm;
import io.microdit.diffusion.EdmObjective;
import io.microdit.model.MaskingMode;
import io.microdit.model.MicroDiT;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.ArrayData;
import java.util.IdentityHashMap;
import java.util.Map;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * {@link Graph#onGradientsFinal}, which data-parallel training trusts to send a gradient while the backward goes
 * on: every parameter the loss depends on is reported, once, with the gradient it has at the end of the
 * backward (bit for bit: nothing is added to it afterwards), most of them while ops are still left to run — with
 * the model's blocks or their attention recomputed too, whose parameters get their gradients inside one node's
 * backward.
 */
class GradientsFinalTest {

    @ParameterizedTest
    @CsvSource({"F32, NONE, DEFERRED", "F32, BLOCK, DEFERRED", "F32, ATTENTION, DEFERRED", "BF16, BLOCK, NONE",
            "BF16, ATTENTION, NONE", "BF16, NONE, NONE"})
    void everyParameterIsReportedOnceWithItsFinalGradient(Precision precision, Recomputation recompute,
                                                          MaskingMode masking) {
        try (CpuBackend backend = new CpuBackend(1)) {
            MicroDiT model = MicroDiT.create(TrainerTest.tiny(), 11, backend);
            ArrayData data = ArrayData.random(6, 1, 8, 4, 16, 23);
            try (MemoryScope scope = backend.scope("step")) {
                Tensor latents = scope.zeros(6, 1, 8, 8);
                Tensor captions = scope.zeros(6, 4, 16);
                data.read(new int[] {5, 0, 3, 1, 4, 2}, latents, captions);
                Map<Parameter, float[]> reported = new IdentityHashMap<>();
                Map<Parameter, Integer> nodesLeft = new IdentityHashMap<>();
                Graph graph = new Graph(backend, scope, precision).recompute(recompute)
                        .onGradientsFinal((parameters, left) -> {
                            for (Parameter p : parameters) {
                                assertTrue(!reported.containsKey(p), p + " reported twice");
                                reported.put(p, p.grad() == null ? null : p.grad().toFloatArray());
                                nodesLeft.put(p, left);
                            }
                        });
                try (GradScope ignored = graph.recordGradients()) {
                    Variable loss = new EdmObjective(new Edm(0.9, -0.6, 1.2), masking, 0.5, 0.1)
                            .loss(graph, model, latents, captions, 7, 40);
                    graph.backward(loss);
                }
                int withGradient = 0;
                int early = 0;
                for (Parameter p : model.parameters().all()) {
                    if (p.grad() == null) {
                        assertTrue(reported.get(p) == null, p + " had a gradient when reported, none at the end");
                        continue;
                    }
                    withGradient++;
                    assertTrue(reported.containsKey(p), p + " has a gradient but was never reported final");
                    assertArrayEquals(p.grad().toFloatArray(), reported.get(p), p + " changed after it was reported");
                    early += nodesLeft.get(p) > 0 ? 1 : 0;
                }
                assertTrue(withGradient > 20, "the tiny model's parameters: " + withGradient);
                assertTrue(early > withGradient / 2, early + " of " + withGradient
                        + " parameters were final before the backward's last op");
            } finally {
                model.parameters().close();
            }
        }
    }
}
