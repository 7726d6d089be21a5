package io.microdit.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.autograd.Graph;
import io.microdit.backend.cpu.CpuBackend;
import io.microdit.tensor.MemoryScope;
import io.microdit.testing.TestData;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

class FlopModelTest {
    private static final CpuBackend BACKEND = new CpuBackend(2);

    @AfterAll
    static void close() {
        BACKEND.close();
    }

    private static double gflops(MicroDiTConfig c, double ratio) {
        return FlopModel.forward(c, FlopModel.CLIP_TOKENS, ratio, MaskingMode.DEFERRED).total() / 1e9;
    }

    private static void within1Percent(double expected, double actual, String what) {
        assertEquals(expected, actual, 0.01 * expected, what);
    }

    /** The specification's [calc] forward GFLOPs per image (§5), at 256 px (32² latent) and 512 px (64²). */
    @Test
    void forwardFlopsMatchTheSpecificationsEstimates() {
        MicroDiTConfig xl = MicroDiTConfigs.xl2();
        MicroDiTConfig xl512 = FlopModel.atInputSize(xl, 64);
        assertEquals(2.0, xl512.posInterpScale());
        within1Percent(93.7, gflops(xl, 0.75), "XL 256 px, 75%");
        within1Percent(237.7, gflops(xl, 0), "XL 256 px, 0%");
        within1Percent(356.0, gflops(xl512, 0.75), "XL 512 px, 75%");
        within1Percent(1000.5, gflops(xl512, 0), "XL 512 px, 0%");
        MicroDiTConfig tiny = MicroDiTConfigs.tiny2();
        within1Percent(20.0, gflops(tiny, 0.75), "Tiny 256 px, 75%");
        within1Percent(42.6, gflops(tiny, 0), "Tiny 256 px, 0%");
        within1Percent(80.9, gflops(FlopModel.atInputSize(tiny, 64), 0.75), "Tiny 512 px, 75%");
        within1Percent(190.6, gflops(FlopModel.atInputSize(tiny, 64), 0), "Tiny 512 px, 0%");

        FlopModel.Breakdown masked = FlopModel.forward(xl, 77, 0.75, MaskingMode.DEFERRED);
        within1Percent(35.9, masked.mixer() / 1e9, "XL mixer at 75%");
        within1Percent(55.4, masked.backbone() / 1e9, "XL backbone at 75%");
        within1Percent(842.4, FlopModel.forward(xl512, 77, 0, MaskingMode.NONE).backbone() / 1e9, "XL 512 backbone");
    }

    /** The paper's four stages at batch 2048: ≈ 3.28e20 training FLOPs (spec §5, [calc]). */
    @Test
    void paperRecipeTotalsAbout3Point28e20() {
        MicroDiTConfig xl = MicroDiTConfigs.xl2();
        MicroDiTConfig xl512 = FlopModel.atInputSize(xl, 64);
        double perImage = 250_000 * FlopModel.training(xl, 77, 0.75, MaskingMode.DEFERRED)
                + 30_000 * FlopModel.training(xl, 77, 0, MaskingMode.NONE)
                + 50_000 * FlopModel.training(xl512, 77, 0.75, MaskingMode.DEFERRED)
                + 5_000 * FlopModel.training(xl512, 77, 0, MaskingMode.NONE);
        within1Percent(3.28e20, perImage * 2048, "four stages");
    }

    /**
     * The model counts exactly what the CPU backend counts as matmul and attention in one forward pass, for every
     * masking mode, on a config with mixer width maps, MoE in both stacks and a caption length that is not 77.
     */
    @Test
    void forwardFlopsEqualTheBackendsMatmulAndAttentionCounts() {
        MicroDiTConfig c = new MicroDiTConfig("flops", 16, 2, 3, 48, 3, 16, 16, 20, 1.0, 1e-6, true,
                MicroDiTConfig.linspace(0.5, 1.0, 3), MicroDiTConfig.linspace(0.5, 4.0, 3), true, 2, 32, 1.0, 4.0,
                false, 4, 2.0, 2);
        int n = 3, length = 7;
        MicroDiT model = MicroDiT.create(c, 5, BACKEND);
        try (MemoryScope scope = new MemoryScope("flops")) {
            Random random = new Random(11);
            for (MaskingMode mode : MaskingMode.values()) {
                double ratio = mode == MaskingMode.NONE ? 0 : 0.75;
                TokenMask mask = mode == MaskingMode.NONE ? null
                        : TokenMask.sample(BACKEND, scope, n, c.tokens(), ratio, 3, 3, 0);
                Graph g = new Graph(BACKEND, scope);
                BACKEND.flops().reset();
                model.forward(g, g.constant(TestData.uniform(scope, random, n, 3, 16, 16)),
                        TestData.uniform(scope, random, n), g.constant(TestData.uniform(scope, random, n, length, 20)),
                        mask, mode);
                double counted = BACKEND.flops().of("matmul") + BACKEND.flops().of("attention");
                double modelled = n * FlopModel.forward(c, length, ratio, mode).total();
                assertEquals(counted, modelled, 0.0, mode.name());
            }
            double deferred = FlopModel.forward(c, length, 0.75, MaskingMode.DEFERRED).total();
            double naive = FlopModel.forward(c, length, 0.75, MaskingMode.NAIVE).total();
            double none = FlopModel.forward(c, length, 0, MaskingMode.NONE).total();
            assertTrue(naive < deferred && deferred < none, naive + " < " + deferred + " < " + none);
        } finally {
            model.parameters().close();
        }
    }

    @Test
    void rejectsAnEmptyCaptionAndAMaskThatKeepsNothing() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> FlopModel.forward(MicroDiTConfigs.tiny2(), 0, 0, MaskingMode.NONE));
        assertTrue(e.getMessage().contains("caption length"), e.getMessage());
        assertThrows(IllegalArgumentException.class,
                () -> FlopModel.forward(MicroDiTConfigs.tiny2(), 77, 1.0, MaskingMode.DEFERRED));
    }
}
