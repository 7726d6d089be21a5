package io.microdit.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import io.microdit.autograd.GradScope;
import io.microdit.autograd.Graph;
import io.microdit.autograd.Parameter;
import io.microdit.autograd.Precision;
import io.microdit.backend.Backend;
import io.microdit.backend.cpu.CpuBackend;
import io.microdit.backend.cuda.CudaBackend;
import io.microdit.diffusion.Edm;
import io.microdit.diffusion.EdmObjective;
import io.microdit.model.ConfigFile;
import io.microdit.model.MaskingMode;
import io.microdit.model.MicroDiT;
import io.microdit.model.MicroDiTConfig;
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
 * AdamW's bf16 working copies (written with each update, read by the next forward's products instead of converting
 * every weight) give bf16 training the bits it has without them: losses and weights over several steps, on the CPU
 * backend and on the emulated CUDA backend (whose update kernel writes the copies), for a model with a patch-mixer,
 * deferred masking and MoE blocks. Once the copies exist, the forward converts none of the weights they cover.
 */
class Bf16WorkingCopiesTest {
    @TempDir
    Path temp;

    private static final String MODEL = """
            {"name": "copies", "input_size": 8, "patch_size": 2, "in_channels": 4, "dim": 64, "depth": 4,
             "head_dim": 32, "multiple_of": 16, "caption_channels": 24, "qkv_multipliers": {"linspace": [0.5, 1.0]},
             "ffn_multipliers": {"linspace": [0.5, 4.0]}, "patch_mixer_depth": 2, "patch_mixer_dim": 32,
             "num_experts": 4, "expert_capacity": 2.0}
            """;
    private static final int STEPS = 2;

    /** Losses of {@code STEPS} steps, then every parameter's value; checks the copies' use where {@code copies}. */
    private List<float[]> train(Backend backend, boolean copies) throws Exception {
        MicroDiTConfig config = ConfigFile.read(Files.writeString(temp.resolve("m.json"), MODEL));
        MicroDiT model = MicroDiT.create(config, 3, backend);
        List<float[]> values = new ArrayList<>();
        EdmObjective objective = new EdmObjective(Edm.MICRODIT_256, MaskingMode.DEFERRED, 0.5, 0);
        try (AdamW optimizer = new AdamW(backend, model.parameters(), AdamW.MICRODIT);
             MemoryScope data = backend.scope("batch")) {
            for (int step = 0; step < STEPS; step++) {
                Tensor latents = Tensor.zeros(data, DType.F32, 3, config.inChannels(), config.inputSize(),
                        config.inputSize());
                backend.normal(5, 1, step, latents);
                Tensor captions = Tensor.zeros(data, DType.F32, 3, 6, config.captionChannels());
                backend.normal(5, 2, step, captions);
                EdmObjective.Draw draw = objective.draw(new Graph(backend, data), model, latents.shape(), 5, step);
                model.parameters().zeroGrad(backend);
                try (MemoryScope scope = backend.scope("step")) {
                    Graph graph = new Graph(backend, scope, Precision.BF16);
                    if (copies) {
                        assertEquals(step > 0, !optimizer.bf16Copies().isEmpty(), "copies exist after an update");
                        graph.useBf16Copies(optimizer.bf16Copies());
                    }
                    try (GradScope ignored = graph.recordGradients()) {
                        EdmObjective.Terms terms = objective.terms(graph, model, latents, captions, draw.sigma(),
                                draw.noise(), draw.mask());
                        values.add(backend.read(terms.loss().value()));
                        terms.loss().backward();
                    }
                    List<Parameter> converted = graph.convertedParameters();
                    if (copies) {
                        assertEquals(step == 0, !converted.isEmpty(),
                                "the first forward converts the weights, later ones read the copies: " + converted);
                        optimizer.keepBf16Copies(converted);
                    }
                }
                optimizer.update(1e-3, 1.0);
            }
            for (Parameter p : model.parameters().all()) {
                values.add(backend.read(p.value()));
            }
        } finally {
            model.parameters().close();
        }
        return values;
    }

    private void sameTraining(Backend backend) throws Exception {
        List<float[]> plain = train(backend, false), copied = train(backend, true);
        assertEquals(plain.size(), copied.size());
        for (int i = 0; i < plain.size(); i++) {
            float[] a = plain.get(i), b = copied.get(i);
            assertEquals(a.length, b.length);
            for (int j = 0; j < a.length; j++) {
                assertEquals(Float.floatToRawIntBits(a[j]), Float.floatToRawIntBits(b[j]),
                        (i < STEPS ? "loss of step " + i : "parameter " + (i - STEPS)) + " element " + j + ": " + a[j]
                                + " vs " + b[j]);
            }
        }
        assertFalse(Float.isNaN(plain.get(STEPS - 1)[0]));
    }

    @Test
    void workingCopiesKeepTheBitsOnTheCpu() throws Exception {
        try (CpuBackend cpu = new CpuBackend(2)) {
            sameTraining(cpu);
        }
    }

    @Test
    @Tag("emu")
    void workingCopiesKeepTheBitsOnCuda() throws Exception {
        try (CudaBackend cuda = new CudaBackend()) {
            sameTraining(cuda);
        }
    }
}
