package io.microdit.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.autograd.GradScope;
import io.microdit.autograd.Graph;
import io.microdit.autograd.Parameter;
import io.microdit.backend.Backend;
import io.microdit.backend.cpu.CpuBackend;
import io.microdit.diffusion.Edm;
import io.microdit.diffusion.EdmObjective;
import io.microdit.model.MaskingMode;
import io.microdit.model.MicroDiT;
import io.microdit.model.MicroDiTConfig;
import io.microdit.nn.ParameterStore;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * One training step of a tiny MicroDiT (patch-mixer with maps, MoE in both stacks, deferred masking) on the
 * CUDA backend — here its kernels on the host emulator, with memory Java may not touch as on a real GPU — against
 * the CPU backend: same weights, same batch, same random draws; the loss and every parameter's gradient must agree.
 */
@Tag("emu")
class CudaTrainingStepTest {
    private static CpuBackend cpu;
    private static CudaBackend cuda;

    @BeforeAll
    static void open() {
        cpu = new CpuBackend(2);
        cuda = CudaBackend.opaque();
    }

    @AfterAll
    static void close() {
        cuda.close();
        cpu.close();
    }

    static MicroDiTConfig tiny() {
        return new MicroDiTConfig("tiny-cuda", 8, 2, 2, 32, 3, 8, 16, 12, 1.0, 1e-6, true,
                MicroDiTConfig.linspace(0.5, 1.0, 3), MicroDiTConfig.linspace(0.5, 4.0, 3), true, 2, 24, 1.0, 4.0,
                false, 4, 2.0, 2);
    }

    private record Step(double loss, List<float[]> gradients, List<String> names) {
    }

    private static Step step(Backend backend, MicroDiT model, Tensor latents, Tensor captions, MemoryScope scope) {
        Graph g = new Graph(backend, scope);
        double loss;
        try (GradScope ignored = g.recordGradients()) {
            var l = new EdmObjective(Edm.MICRODIT_256, MaskingMode.DEFERRED, 0.5, 0.0)
                    .loss(g, model, latents, captions, 11, 40);
            loss = backend.read(l.value())[0];
            l.backward();
        }
        List<float[]> grads = new ArrayList<>();
        List<String> names = new ArrayList<>();
        for (Parameter p : model.parameters().all()) {
            grads.add(p.grad() == null ? new float[(int) p.value().numel()] : backend.read(p.grad()));
            names.add(p.name());
        }
        return new Step(loss, grads, names);
    }

    @Test
    void trainingStepMatchesTheCpuBackend() {
        MicroDiTConfig c = tiny();
        MicroDiT onCpu = MicroDiT.create(c, 5, cpu);
        MicroDiT onCuda = new MicroDiT(c, new ParameterStore(cuda.scope("parameters")), cuda);
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            Random random = new Random(3);
            List<Parameter> cpuParams = new ArrayList<>(onCpu.parameters().all());
            List<Parameter> cudaParams = new ArrayList<>(onCuda.parameters().all());
            for (int i = 0; i < cpuParams.size(); i++) {
                float[] v = cpuParams.get(i).value().toFloatArray();
                for (int j = 0; j < v.length; j++) {
                    v[j] += (float) (0.1 * random.nextGaussian()); // past the zero init, so every path is live
                }
                cpuParams.get(i).value().copyFrom(v);
                cuda.write(cudaParams.get(i).value(), v);
            }
            Tensor latents = TestData.uniform(host, random, 3, 2, 8, 8);
            Tensor captions = TestData.uniform(host, random, 3, 5, 12);
            Step expected = step(cpu, onCpu, latents, captions, host);
            Step actual;
            try (MemoryScope stepScope = cuda.scope("step")) {
                actual = step(cuda, onCuda, cuda.upload(latents, device), cuda.upload(captions, device), stepScope);
            }
            assertEquals(expected.loss(), actual.loss(), 1e-5 * Math.abs(expected.loss()), "loss");
            for (int i = 0; i < expected.gradients().size(); i++) {
                float[] e = expected.gradients().get(i), a = actual.gradients().get(i);
                double scale = 1e-6, worst = 0;
                for (float v : e) {
                    scale = Math.max(scale, Math.abs(v));
                }
                for (int j = 0; j < e.length; j++) {
                    worst = Math.max(worst, Math.abs(e[j] - a[j]));
                }
                assertTrue(worst <= 1e-4 * scale, "gradient of " + expected.names().get(i) + ": max difference "
                        + worst + " at scale " + scale);
            }
        } finally {
            onCpu.parameters().close();
            onCuda.parameters().close();
        }
    }
}
