package io.microdit.diffusion;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.autograd.Parameter;
import io.microdit.autograd.Precision;
import io.microdit.backend.cpu.CpuBackend;
import io.microdit.model.MicroDiT;
import io.microdit.model.MicroDiTConfig;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/** The Heun sampler's precision: bf16 network evaluations follow the F32 ones closely, but do round. */
class HeunSamplerTest {
    private static final CpuBackend BACKEND = new CpuBackend(2);

    @AfterAll
    static void close() {
        BACKEND.close();
    }

    @Test
    void bf16SamplingStaysCloseToF32SamplingAndIsReproducible() {
        MicroDiTConfig c = new MicroDiTConfig("tiny-sampler", 8, 2, 2, 32, 2, 16, 16, 12, 1.0, 1e-6, true,
                MicroDiTConfig.linspace(0.5, 1.0, 2), MicroDiTConfig.linspace(0.5, 4.0, 2), true, 1, 32, 1.0, 4.0,
                false, 4, 2.0, 2);
        MicroDiT model = MicroDiT.create(c, 3, BACKEND);
        try (MemoryScope scope = new MemoryScope("sampler-test")) {
            Random random = new Random(5);
            for (Parameter p : model.parameters().all()) { // past the zero init, so F depends on every layer
                Tensor noise = TestData.uniform(scope, random, p.value().shape());
                BACKEND.axpy(0.05f, noise, p.value());
            }
            Tensor captions = TestData.uniform(scope, random, 2, 5, 12);
            Edm edm = new Edm(0.9, -0.6, 1.2);
            float[] f32 = new HeunSampler(model, BACKEND, edm).sample(captions, 3, 2.0, 7, 0);
            float[] bf16 = new HeunSampler(model, BACKEND, edm, Precision.BF16).sample(captions, 3, 2.0, 7, 0);
            assertArrayEquals(bf16, new HeunSampler(model, BACKEND, edm, Precision.BF16).sample(captions, 3, 2.0, 7,
                    0), "bf16 sampling is deterministic");
            double difference = 0, norm = 0;
            for (int i = 0; i < f32.length; i++) {
                difference += (f32[i] - (double) bf16[i]) * (f32[i] - (double) bf16[i]);
                norm += (double) f32[i] * f32[i];
            }
            double relative = Math.sqrt(difference / norm);
            System.out.printf("bf16 vs f32 samples: relative L2 difference %.3e%n", relative);
            assertTrue(relative > 0, "bf16 sampling equals F32 sampling: nothing was rounded");
            assertTrue(relative <= 1e-2, "bf16 samples differ from F32 ones by " + relative + " (relative L2)");
        } finally {
            model.parameters().close();
        }
    }
}
