package io.microdit.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.autograd.GradScope;
import io.microdit.autograd.Graph;
import io.microdit.autograd.Parameter;
import io.microdit.autograd.Variable;
import io.microdit.backend.cpu.CpuBackend;
import io.microdit.diffusion.Edm;
import io.microdit.diffusion.EdmObjective;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

class MicroDiTTest {
    private static final CpuBackend BACKEND = new CpuBackend();

    @AfterAll
    static void close() {
        BACKEND.close();
    }

    /** A MicroDiT small enough for finite differences: every feature on (mixer with maps, MoE in both stacks). */
    static MicroDiTConfig micro(boolean moe) {
        return new MicroDiTConfig("micro", 8, 2, 2, 32, 3, 8, 16, 12, 1.0, 1e-6, true,
                MicroDiTConfig.linspace(0.5, 1.0, 3), MicroDiTConfig.linspace(0.5, 4.0, 3), true, 2, 24, 1.0, 4.0,
                false, 4, 2.0, moe ? 2 : 100);
    }

    @Test
    void parametersFollowTheLayoutNamesShapesAndOrder() {
        for (MicroDiTConfig c : List.of(micro(true), MicroDiTConfigs.fashionSmall())) {
            MicroDiT model = MicroDiT.create(c, 1, BACKEND);
            try {
                List<ParameterLayout.Entry> layout = ParameterLayout.of(c).entries();
                List<Parameter> params = new ArrayList<>(model.parameters().all());
                assertEquals(layout.size(), params.size());
                for (int i = 0; i < params.size(); i++) {
                    assertEquals(layout.get(i).name(), params.get(i).name());
                    assertArrayEquals(layout.get(i).shape(), params.get(i).value().shape(), layout.get(i).name());
                }
                assertEquals(ParameterLayout.of(c).total(), model.parameters().count());
            } finally {
                model.parameters().close();
            }
        }
    }

    @Test
    void officialInitialisationMakesTheNetworkOutputZero() {
        MicroDiTConfig c = micro(true);
        MicroDiT model = MicroDiT.create(c, 7, BACKEND);
        try (MemoryScope step = new MemoryScope("step")) {
            Graph g = new Graph(BACKEND, step);
            Random random = new Random(3);
            Variable out = model.forward(g, g.constant(TestData.uniform(step, random, 2, 2, 8, 8)),
                    TestData.uniform(step, random, 2), g.constant(TestData.uniform(step, random, 2, 5, 12)), null,
                    MaskingMode.NONE);
            for (float v : out.value().toFloatArray()) {
                assertEquals(0f, v, "final_layer.linear and its adaLN start at zero");
            }
            Parameter qkv = model.parameters().get("blocks.0.attn.qkv.weight");
            double sumSq = BACKEND.sumOfSquares(qkv.value());
            double std = Math.sqrt(sumSq / qkv.value().numel());
            assertEquals(0.02, std, 0.004, "qkv ~ N(0, 0.02)");
            assertEquals(1f, model.parameters().get("blocks.1.norm3.weight").value().getFloat(0));
            assertEquals(0.0, BACKEND.sumOfSquares(model.parameters().get("blocks.2.adaLN_modulation.1.weight")
                    .value()));
        } finally {
            model.parameters().close();
        }
    }

    @Test
    void maskedForwardZeroesRemovedTokensAndKeepsTheRest() {
        MicroDiTConfig c = micro(true);
        MicroDiT model = MicroDiT.create(c, 7, BACKEND);
        try (MemoryScope step = new MemoryScope("step")) {
            perturb(model, 11);
            Graph g = new Graph(BACKEND, step);
            Random random = new Random(5);
            Tensor x = TestData.uniform(step, random, 2, 2, 8, 8);
            Tensor t = TestData.uniform(step, random, 2);
            Tensor y = TestData.uniform(step, random, 2, 5, 12);
            TokenMask mask = TokenMask.sample(BACKEND, step, 2, c.tokens(), 0.5, 9, 3, 0);
            for (MaskingMode mode : new MaskingMode[] {MaskingMode.DEFERRED, MaskingMode.NAIVE}) {
                float[] out = model.forward(g, g.constant(x), t, g.constant(y), mask, mode).value().toFloatArray();
                int p = c.patchSize(), grid = c.gridSize();
                for (int n = 0; n < 2; n++) {
                    for (int token = 0; token < c.tokens(); token++) {
                        boolean removed = mask.removed().getFloat((long) n * c.tokens() + token) == 1f;
                        int row = token / grid, col = token % grid;
                        double energy = 0;
                        for (int ch = 0; ch < c.inChannels(); ch++) {
                            for (int i = 0; i < p; i++) {
                                for (int j = 0; j < p; j++) {
                                    float v = out[((n * c.inChannels() + ch) * 8 + row * p + i) * 8 + col * p + j];
                                    energy += v * v;
                                }
                            }
                        }
                        assertEquals(removed, energy == 0, mode + " sample " + n + " token " + token);
                    }
                }
            }
        } finally {
            model.parameters().close();
        }
    }

    @Test
    void everyMaskingModeGivesFullShapeAndRatioZeroEqualsNoMasking() {
        MicroDiTConfig c = micro(true);
        MicroDiT model = MicroDiT.create(c, 7, BACKEND);
        try (MemoryScope step = new MemoryScope("step")) {
            perturb(model, 12);
            Graph g = new Graph(BACKEND, step);
            Random random = new Random(6);
            Tensor x = TestData.uniform(step, random, 3, 2, 8, 8);
            Tensor t = TestData.uniform(step, random, 3);
            Tensor y = TestData.uniform(step, random, 3, 5, 12);
            float[] plain = model.forward(g, g.constant(x), t, g.constant(y), null, MaskingMode.NONE).value()
                    .toFloatArray();
            TokenMask everything = TokenMask.sample(BACKEND, step, 3, c.tokens(), 0.0, 4, 3, 0);
            assertEquals(c.tokens(), everything.kept());
            TokenMask half = TokenMask.sample(BACKEND, step, 3, c.tokens(), 0.5, 4, 3, 0);
            for (MaskingMode mode : MaskingMode.values()) {
                Variable full = model.forward(g, g.constant(x), t, g.constant(y), everything, mode);
                assertArrayEquals(new int[] {3, 2, 8, 8}, full.shape());
                float[] values = full.value().toFloatArray();
                for (int i = 0; i < plain.length; i++) {
                    // Kept tokens in shuffled order: attention and MoE are permutation-equivariant.
                    assertEquals(plain[i], values[i], 1e-5 * (1 + Math.abs(plain[i])), mode + " ratio 0, element " + i);
                }
                assertArrayEquals(new int[] {3, 2, 8, 8},
                        model.forward(g, g.constant(x), t, g.constant(y), half, mode).shape());
            }
        } finally {
            model.parameters().close();
        }
    }

    @Test
    void gradientsReachEveryParameter() {
        MicroDiTConfig c = micro(true);
        MicroDiT model = MicroDiT.create(c, 8, BACKEND);
        try (MemoryScope data = new MemoryScope("data")) {
            perturb(model, 31); // past the zero initialisation, which blocks paths on purpose
            Random random = new Random(9);
            Tensor latents = TestData.uniform(data, random, 2, 2, 8, 8);
            Tensor captions = TestData.uniform(data, random, 2, 5, 12);
            for (MaskingMode mode : MaskingMode.values()) {
                model.parameters().zeroGrad(BACKEND);
                try (MemoryScope step = new MemoryScope("step")) {
                    Graph g = new Graph(BACKEND, step);
                    try (GradScope ignored = g.recordGradients()) {
                        new EdmObjective(Edm.MICRODIT_256, mode, 0.5, 0.0).loss(g, model, latents, captions, 3, 0)
                                .backward();
                    }
                }
                for (Parameter p : model.parameters().all()) {
                    assertTrue(p.grad() != null && BACKEND.sumOfSquares(p.grad()) > 0,
                            mode + ": no gradient reaches " + p.name());
                }
            }
        } finally {
            model.parameters().close();
        }
    }

    @Test
    void lossGradientMatchesADirectionalFiniteDifference() {
        for (boolean moe : new boolean[] {false, true}) {
            MicroDiTConfig c = micro(moe);
            MicroDiT model = MicroDiT.create(c, 3, BACKEND);
            try (MemoryScope data = new MemoryScope("data")) {
                perturb(model, 21);
                Random random = new Random(8);
                Tensor latents = TestData.uniform(data, random, 2, 2, 8, 8);
                Tensor captions = TestData.uniform(data, random, 2, 5, 12);
                EdmObjective objective = new EdmObjective(Edm.MICRODIT_256, MaskingMode.DEFERRED, 0.5, 0.0);
                double analytic;
                try (MemoryScope step = new MemoryScope("step")) {
                    Graph g = new Graph(BACKEND, step);
                    try (GradScope ignored = g.recordGradients()) {
                        objective.loss(g, model, latents, captions, 5, 0).backward();
                    }
                }
                // Directional derivative along a random direction d over every parameter.
                List<float[]> direction = new ArrayList<>();
                analytic = 0;
                Random dr = new Random(13);
                for (Parameter p : model.parameters().all()) {
                    float[] d = TestData.uniform(dr, (int) p.value().numel());
                    direction.add(d);
                    if (p.grad() != null) {
                        float[] grad = p.grad().toFloatArray();
                        for (int i = 0; i < d.length; i++) {
                            analytic += (double) grad[i] * d[i];
                        }
                    }
                }
                double h = 1e-4; // small enough that no MoE top-k choice flips along the path
                double plus = lossAt(model, objective, latents, captions, direction, h);
                double minus = lossAt(model, objective, latents, captions, direction, -h);
                lossAt(model, objective, latents, captions, direction, 0);
                double numeric = (plus - minus) / (2 * h);
                assertEquals(numeric, analytic, 2e-2 * Math.abs(numeric) + 1e-4,
                        "directional derivative, MoE " + moe);
                assertTrue(Math.abs(numeric) > 1e-3, "the check is not trivially zero");
            } finally {
                model.parameters().close();
            }
        }
    }

    /** Moves the parameters to base + step·direction (base kept in the direction's first call) and returns the loss. */
    private static double lossAt(MicroDiT model, EdmObjective objective, Tensor latents, Tensor captions,
                                 List<float[]> direction, double stepSize) {
        int i = 0;
        for (Parameter p : model.parameters().all()) {
            float[] d = direction.get(i++);
            float[] base = baseValues.computeIfAbsent(p.name(), k -> p.value().toFloatArray());
            float[] moved = new float[base.length];
            for (int j = 0; j < base.length; j++) {
                moved[j] = (float) (base[j] + stepSize * d[j]);
            }
            p.value().copyFrom(moved);
        }
        if (stepSize == 0) {
            baseValues.clear();
        }
        try (MemoryScope step = new MemoryScope("fd")) {
            return objective.loss(new Graph(BACKEND, step), model, latents, captions, 5, 0).value().getFloat(0);
        }
    }

    private static final java.util.Map<String, float[]> baseValues = new java.util.HashMap<>();

    /** Random weights everywhere, so that no gradient path is switched off by the zero initialisation. */
    private static void perturb(MicroDiT model, long seed) {
        Random random = new Random(seed);
        for (Parameter p : model.parameters().all()) {
            float[] v = p.value().toFloatArray();
            for (int i = 0; i < v.length; i++) {
                v[i] += (float) (0.15 * random.nextGaussian());
            }
            p.value().copyFrom(v);
        }
    }
}
