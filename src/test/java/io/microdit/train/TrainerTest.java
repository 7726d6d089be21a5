package io.microdit.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.autograd.Graph;
import io.microdit.autograd.Parameter;
import io.microdit.autograd.Recomputation;
import io.microdit.backend.cpu.CpuBackend;
import io.microdit.diffusion.EdmObjective;
import io.microdit.model.MaskingMode;
import io.microdit.model.MicroDiT;
import io.microdit.model.MicroDiTConfig;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.ArrayData;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TrainerTest {
    private static final CpuBackend BACKEND = new CpuBackend();

    @TempDir
    Path temp;

    @AfterAll
    static void close() {
        BACKEND.close();
    }

    static MicroDiTConfig tiny() {
        return new MicroDiTConfig("tiny-test", 8, 2, 1, 32, 2, 16, 16, 16, 1.0, 1e-6, true,
                MicroDiTConfig.linspace(0.5, 1.0, 2), MicroDiTConfig.linspace(0.5, 4.0, 2), true, 2, 32, 1.0, 4.0,
                false, 4, 2.0, 2);
    }

    private static TrainingConfig config(int batch, int micro, List<Stage> stages, double ema) {
        return new TrainingConfig("tiny-test", "arrays", null, 4, batch, micro, stages, ema, 0.0, -0.6, 1.2, 17, 1,
                1, 0, 0, 4, 1.0);
    }

    private static double fixedLoss(MicroDiT model, ArrayData data) {
        try (MemoryScope scope = new MemoryScope("eval")) {
            Tensor latents = scope.zeros(data.count(), 1, 8, 8);
            Tensor captions = scope.zeros(data.count(), 4, 16);
            int[] all = new int[data.count()];
            for (int i = 0; i < all.length; i++) {
                all[i] = i;
            }
            data.read(all, latents, captions);
            double sum = 0;
            // Four fixed draws of σ and noise per image, the same before and after training.
            for (int draw = 0; draw < 4; draw++) {
                EdmObjective objective = new EdmObjective(new io.microdit.diffusion.Edm(0.9, -0.6, 1.2),
                        MaskingMode.NONE, 0, 0);
                sum += objective.loss(new Graph(BACKEND, scope), model, latents, captions, 99, draw * 1000L)
                        .value().getFloat(0);
            }
            return sum / 4;
        }
    }

    /**
     * Mixed precision: the same run in bf16 follows the F32 run closely (bf16 keeps 8 bits of mantissa; the
     * weights, AdamW and the loss stay F32) but not exactly — the bf16 graph really rounds.
     */
    @Test
    void bf16TrainingTracksF32Training() {
        ArrayData data = ArrayData.random(8, 1, 8, 4, 16, 7);
        TrainingConfig f32 = config(4, 4, List.of(new Stage("masked", 30, MaskingMode.DEFERRED, 0.5,
                new LearningRateSchedule.ConstantWithWarmup(2e-3, 5), 1.0)), 0);
        TrainingConfig bf16 = f32.withPrecision(io.microdit.autograd.Precision.BF16);
        double[] lossF32 = losses(f32, data), lossBf16 = losses(bf16, data);
        double worst = 0, total = 0;
        for (int i = 0; i < lossF32.length; i++) {
            double relative = Math.abs(lossBf16[i] - lossF32[i]) / lossF32[i];
            worst = Math.max(worst, relative);
            total += relative;
        }
        System.out.printf("bf16 vs f32 over %d steps: loss %.4f vs %.4f at the end, worst step %.2e, mean %.2e%n",
                lossF32.length, lossBf16[lossF32.length - 1], lossF32[lossF32.length - 1], worst,
                total / lossF32.length);
        // The zero-initialised output layer makes the first loss independent of precision; later ones are not.
        assertTrue(worst <= 1e-2, "a bf16 step's loss differs from the F32 one by " + worst + " (relative)");
        assertTrue(worst > 0, "the bf16 run computed exactly the F32 losses: nothing was rounded");
    }

    private static double[] losses(TrainingConfig config, ArrayData data) {
        MicroDiT model = MicroDiT.create(tiny(), 3, BACKEND);
        try (Trainer trainer = new Trainer(config, model, data, BACKEND)) {
            double[] losses = new double[(int) config.totalSteps()];
            for (int i = 0; i < losses.length; i++) {
                losses[i] = trainer.trainStep().loss();
            }
            return losses;
        } finally {
            model.parameters().close();
        }
    }

    @Test
    void precisionIsAConfigKeyThatRoundTripsAndIsChecked() throws IOException {
        TrainingConfig bf16 = TrainingConfig.fromJson("{\"precision\": \"bf16\"}");
        assertEquals(io.microdit.autograd.Precision.BF16, bf16.precision());
        assertEquals(bf16, TrainingConfig.fromJson(bf16.toJson()));
        assertEquals(io.microdit.autograd.Precision.F32, TrainingConfig.defaults().precision());
        IOException e = assertThrows(IOException.class, () -> TrainingConfig.fromJson("{\"precision\": \"fp8\"}"));
        assertTrue(e.getMessage().contains("precision") && e.getMessage().contains("fp8"), e.getMessage());
    }

    /**
     * "recompute": "attention" and "block" train the same run bit for bit (the recomputed attention and blocks give
     * the same gradients).
     */
    @Test
    void recomputedBlocksTrainTheSameRunAndTheKeyRoundTrips() throws IOException {
        ArrayData data = ArrayData.random(8, 1, 8, 4, 16, 9);
        TrainingConfig plain = config(4, 2, List.of(new Stage("masked", 4, MaskingMode.DEFERRED, 0.5,
                new LearningRateSchedule.ConstantWithWarmup(2e-3, 1), 1.0)), 0.9);
        double[] expected = losses(plain, data);
        for (Recomputation mode : List.of(Recomputation.ATTENTION, Recomputation.BLOCK)) {
            assertArrayEquals(expected, losses(plain.withRecompute(mode), data), mode.configName());
            TrainingConfig parsed = TrainingConfig.fromJson("{\"recompute\": \"" + mode.configName() + "\"}");
            assertEquals(mode, parsed.recompute());
            assertEquals(parsed, TrainingConfig.fromJson(parsed.toJson()));
        }
        IOException e = assertThrows(IOException.class, () -> TrainingConfig.fromJson("{\"recompute\": \"all\"}"));
        assertTrue(e.getMessage().contains("recompute") && e.getMessage().contains("all"), e.getMessage());
    }

    @Test
    void aTinyModelMemorisesEightImages() {
        ArrayData data = ArrayData.random(8, 1, 8, 4, 16, 5);
        TrainingConfig config = config(8, 8, List.of(new Stage("overfit", 800, MaskingMode.NONE, 0,
                new LearningRateSchedule.CosineWithWarmup(6e-3, 20, 800, 0.05), 1.0)), 0);
        MicroDiT model = MicroDiT.create(tiny(), 1, BACKEND);
        try (Trainer trainer = new Trainer(config, model, data, BACKEND)) {
            double before = fixedLoss(model, data);
            while (!trainer.finished()) {
                trainer.trainStep();
            }
            double after = fixedLoss(model, data);
            System.out.printf("overfit: fixed-draw loss %.4f -> %.4f (%.1fx)%n", before, after, before / after);
            assertTrue(after * 10 <= before, "loss on fixed draws fell from " + before + " to " + after
                    + " (needs 10×)");
        } finally {
            model.parameters().close();
        }
    }

    @Test
    void resumedRunEqualsUninterruptedRunBitForBit() throws IOException {
        ArrayData data = ArrayData.random(12, 1, 8, 4, 16, 6);
        List<Stage> stages = List.of(
                new Stage("masked", 3, MaskingMode.DEFERRED, 0.5,
                        new LearningRateSchedule.CosineWithWarmup(1e-3, 1, 3, 0.33), 0.5),
                new Stage("finetune", 3, MaskingMode.NONE, 0, new LearningRateSchedule.ConstantWithWarmup(5e-4, 0),
                        0.5));
        TrainingConfig config = config(6, 3, stages, 0.9);
        float[][] uninterrupted;
        float[][] uninterruptedEma;
        MicroDiT a = MicroDiT.create(tiny(), 2, BACKEND);
        try (Trainer trainer = new Trainer(config, a, data, BACKEND)) {
            while (!trainer.finished()) {
                trainer.trainStep();
            }
            uninterrupted = values(a);
            uninterruptedEma = trainer.ema().weights().values().stream().map(Tensor::toFloatArray)
                    .toArray(float[][]::new);
        } finally {
            a.parameters().close();
        }
        Path run = temp.resolve("run");
        MicroDiT b = MicroDiT.create(tiny(), 2, BACKEND);
        try (Trainer trainer = new Trainer(config, b, data, BACKEND)) {
            for (int i = 0; i < 4; i++) {
                trainer.trainStep(); // crosses into the second stage after 3
            }
            trainer.checkpoint(run);
        } finally {
            b.parameters().close();
        }
        Path latest = Checkpoint.latest(run);
        assertNotNull(latest);
        assertEquals(4, Checkpoint.readState(latest).step());
        MicroDiT c = MicroDiT.create(tiny(), 999, BACKEND); // different init: everything must come from the file
        try (Trainer trainer = new Trainer(config, c, data, BACKEND)) {
            trainer.restore(latest);
            assertEquals(4, trainer.step());
            while (!trainer.finished()) {
                trainer.trainStep();
            }
            float[][] resumed = values(c);
            for (int i = 0; i < resumed.length; i++) {
                assertArrayEquals(uninterrupted[i], resumed[i], "parameter " + i + " differs after resume");
            }
            int i = 0;
            for (Tensor t : trainer.ema().weights().values()) {
                assertArrayEquals(uninterruptedEma[i++], t.toFloatArray(), "EMA differs after resume");
            }
        } finally {
            c.parameters().close();
        }
    }

    @Test
    void checkpointRoundTripGivesIdenticalOutputsAndLeavesNoTemporaries() throws IOException {
        ArrayData data = ArrayData.random(4, 1, 8, 4, 16, 7);
        TrainingConfig config = config(4, 4, List.of(new Stage("s", 2, MaskingMode.NONE, 0,
                new LearningRateSchedule.ConstantWithWarmup(1e-3, 0), 1.0)), 0);
        Path run = temp.resolve("run2");
        MicroDiT a = MicroDiT.create(tiny(), 3, BACKEND);
        MicroDiT b = MicroDiT.create(tiny(), 4, BACKEND);
        try (Trainer trainer = new Trainer(config, a, data, BACKEND);
             Trainer other = new Trainer(config, b, data, BACKEND)) {
            trainer.trainStep();
            trainer.trainStep();
            Path saved = trainer.checkpoint(run);
            trainer.checkpoint(run); // rewriting the same step replaces it
            other.restore(saved);
            assertArrayEquals(flatten(values(a)), flatten(values(b)));
            assertEquals(fixedLoss(a, data), fixedLoss(b, data));
            try (var files = Files.list(run.resolve("checkpoints"))) {
                assertTrue(files.noneMatch(p -> p.getFileName().toString().contains(".tmp")));
            }
            Files.delete(saved.resolve(Checkpoint.OPTIMIZER));
            assertThrows(IOException.class, () -> other.restore(saved));
        } finally {
            a.parameters().close();
            b.parameters().close();
        }
    }

    private static float[][] values(MicroDiT model) {
        return model.parameters().all().stream().map(Parameter::value).map(Tensor::toFloatArray)
                .toArray(float[][]::new);
    }

    private static float[] flatten(float[][] arrays) {
        int n = 0;
        for (float[] a : arrays) {
            n += a.length;
        }
        float[] out = new float[n];
        int at = 0;
        for (float[] a : arrays) {
            System.arraycopy(a, 0, out, at, a.length);
            at += a.length;
        }
        return out;
    }
}
