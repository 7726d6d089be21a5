package io.microdit.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.autograd.GradScope;
import io.microdit.autograd.Graph;
import io.microdit.autograd.Parameter;
import io.microdit.autograd.Precision;
import io.microdit.autograd.Recomputation;
import io.microdit.backend.Backend;
import io.microdit.backend.cpu.CpuBackend;
import io.microdit.backend.cuda.CudaBackend;
import io.microdit.diffusion.Edm;
import io.microdit.diffusion.EdmObjective;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Recomputing each block's attention or each whole block in the backward (Graph.recompute) gives the plain step's
 * loss and every parameter's gradient exactly, with less memory held at the step's peak (whole blocks less than
 * attention alone): on the CPU backend in F32 and on the emulated CUDA backend in bf16, for a model with a
 * patch-mixer, deferred masking and MoE blocks.
 */
class RecomputeTest {
    @TempDir
    Path temp;

    private static final String MODEL = """
            {"name": "recompute", "input_size": 8, "patch_size": 2, "in_channels": 4, "dim": 64, "depth": 4,
             "head_dim": 32, "multiple_of": 16, "caption_channels": 24, "qkv_multipliers": {"linspace": [0.5, 1.0]},
             "ffn_multipliers": {"linspace": [0.5, 4.0]}, "patch_mixer_depth": 2, "patch_mixer_dim": 32,
             "num_experts": 4, "expert_capacity": 2.0}
            """;

    /** Loss, then every parameter's gradient, flattened; and the step's peak live bytes on the backend's device. */
    private record Step(List<float[]> values, long peakBytes) {
    }

    private Step step(Backend backend, MicroDiT model, Precision precision, Recomputation recompute) {
        model.parameters().zeroGrad(backend);
        EdmObjective objective = new EdmObjective(Edm.MICRODIT_256, MaskingMode.DEFERRED, 0.5, 0);
        MicroDiTConfig c = model.config();
        List<float[]> values = new ArrayList<>();
        try (MemoryScope data = backend.scope("batch")) {
            Tensor latents = Tensor.zeros(data, DType.F32, 3, c.inChannels(), c.inputSize(), c.inputSize());
            backend.normal(5, 1, 0, latents);
            Tensor captions = Tensor.zeros(data, DType.F32, 3, 6, c.captionChannels());
            backend.normal(5, 2, 0, captions);
            EdmObjective.Draw draw = objective.draw(new Graph(backend, data), model, latents.shape(), 5, 0);
            backend.synchronize();
            backend.device().resetPeak();
            try (MemoryScope scope = backend.scope("step")) {
                Graph graph = new Graph(backend, scope, precision).recompute(recompute);
                try (GradScope ignored = graph.recordGradients()) {
                    EdmObjective.Terms terms = objective.terms(graph, model, latents, captions, draw.sigma(),
                            draw.noise(), draw.mask());
                    values.add(backend.read(terms.loss().value()));
                    terms.loss().backward();
                }
            }
            backend.synchronize();
        }
        long peak = backend.device().peakBytes();
        for (Parameter p : model.parameters().all()) {
            values.add(p.grad() == null ? new float[0] : backend.read(p.grad()));
        }
        return new Step(values, peak);
    }

    private void sameStepWithLessMemory(Backend backend, Precision precision) throws Exception {
        MicroDiTConfig config = ConfigFile.read(Files.writeString(temp.resolve("m.json"), MODEL));
        MicroDiT model = MicroDiT.create(config, 3, backend);
        try {
            Step plain = step(backend, model, precision, Recomputation.NONE);
            long previousPeak = plain.peakBytes();
            for (Recomputation mode : List.of(Recomputation.ATTENTION, Recomputation.BLOCK)) {
                Step recomputed = step(backend, model, precision, mode);
                assertEquals(plain.values().size(), recomputed.values().size());
                for (int i = 0; i < plain.values().size(); i++) {
                    float[] a = plain.values().get(i), b = recomputed.values().get(i);
                    assertEquals(a.length, b.length);
                    for (int j = 0; j < a.length; j++) {
                        assertTrue(a[j] == b[j] || Float.isNaN(a[j]) && Float.isNaN(b[j]), mode + ": "
                                + (i == 0 ? "loss" : "gradient " + i) + " element " + j + ": " + a[j] + " vs " + b[j]);
                    }
                }
                assertTrue(recomputed.peakBytes() < previousPeak, mode + " must lower the peak further: "
                        + recomputed.peakBytes() + " vs " + previousPeak + " (plain " + plain.peakBytes() + ")");
                previousPeak = recomputed.peakBytes();
            }
        } finally {
            model.parameters().close();
        }
    }

    @Test
    void recomputedBlocksGiveTheSameGradientsOnTheCpu() throws Exception {
        try (CpuBackend cpu = new CpuBackend(2)) {
            sameStepWithLessMemory(cpu, Precision.F32);
        }
    }

    @Test
    @Tag("emu")
    void recomputedBlocksGiveTheSameGradientsOnCudaInBf16() throws Exception {
        try (CudaBackend cuda = new CudaBackend()) {
            sameStepWithLessMemory(cuda, Precision.BF16);
        }
    }
}
