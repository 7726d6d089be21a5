package io.microdit.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.autograd.Parameter;
import io.microdit.backend.cpu.CpuBackend;
import io.microdit.io.Json;
import io.microdit.model.MaskingMode;
import io.microdit.model.MicroDiT;
import io.microdit.tensor.Tensor;
import io.microdit.testing.ArrayData;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Steps with a non-finite loss or gradient norm: skipped and counted; too many in a row stop the run. */
class NonFiniteStepsTest {
    private static final CpuBackend BACKEND = new CpuBackend(1);

    @TempDir
    Path temp;

    @AfterAll
    static void close() {
        BACKEND.close();
    }

    private static TrainingConfig config(int steps, int maxBadSteps, double ema) {
        return new TrainingConfig("tiny-test", "arrays", null, 4, 4, 4, List.of(new Stage("s", steps,
                MaskingMode.DEFERRED, 0.5, new LearningRateSchedule.ConstantWithWarmup(1e-3, 0), 1.0)), ema, 0.0,
                -0.6, 1.2, 11, 1, 1, 0, 0, 4, 1.0).withRobustness(3, maxBadSteps);
    }

    private static float[][] values(MicroDiT model) {
        return model.parameters().all().stream().map(p -> p.value().toFloatArray()).toArray(float[][]::new);
    }

    private static float[][] ema(Trainer trainer) {
        return trainer.ema().weights().values().stream().map(Tensor::toFloatArray).toArray(float[][]::new);
    }

    /**
     * One poisoned sample at a random step: that step changes neither weights, moments nor EMA and is counted; the
     * next steps train as usual; and a checkpoint taken after it resumes bit for bit (the AdamW step count, behind
     * the trainer's by the skipped step, is saved).
     */
    @Test
    void aPoisonedSampleSkipsItsStepAndTrainingGoesOn() throws IOException {
        long seed = new Random().nextLong();
        Random random = new Random(seed);
        int poisonedStep = 2 + random.nextInt(3);
        ArrayData clean = ArrayData.random(12, 1, 8, 4, 16, random.nextLong());
        TrainingConfig config = config(7, 2, 0.9);
        float[][] uninterrupted;
        MicroDiT model = MicroDiT.create(TrainerTest.tiny(), 5, BACKEND);
        try (Trainer trainer = new Trainer(config, model, new PoisonedReads(clean, Set.of(poisonedStep),
                random.nextLong()), BACKEND)) {
            for (int step = 1; step <= 7; step++) {
                float[][] before = values(model);
                float[][] emaBefore = ema(trainer);
                Trainer.StepResult r = trainer.trainStep();
                assertEquals(step == poisonedStep, r.skipped(), "step " + step + " (seed " + seed + ")");
                if (step == poisonedStep) {
                    assertFalse(Double.isFinite(r.loss()) && Double.isFinite(r.gradientNorm()), r.toString());
                    assertTrue(Arrays.deepEquals(before, values(model)), "a skipped step changed the weights");
                    assertTrue(Arrays.deepEquals(emaBefore, ema(trainer)), "a skipped step changed the EMA");
                } else {
                    assertTrue(Double.isFinite(r.loss()) && Double.isFinite(r.gradientNorm()), r.toString());
                    assertFalse(Arrays.deepEquals(before, values(model)), "step " + step + " did not train");
                }
                assertEquals(step >= poisonedStep ? 1 : 0, trainer.skippedSteps());
                assertEquals(step == poisonedStep ? 1 : 0, trainer.consecutiveBadSteps());
                if (step == 5) {
                    trainer.checkpoint(temp.resolve("run"));
                }
            }
            uninterrupted = values(model);
        } finally {
            model.parameters().close();
        }
        Path checkpoint = Checkpoint.latest(temp.resolve("run"));
        assertEquals(4, Checkpoint.readState(checkpoint).optimizerStep());
        MicroDiT resumedModel = MicroDiT.create(TrainerTest.tiny(), 99, BACKEND);
        try (Trainer trainer = new Trainer(config, resumedModel, clean, BACKEND)) {
            trainer.restore(checkpoint);
            assertEquals(1, trainer.skippedSteps());
            while (!trainer.finished()) {
                trainer.trainStep();
            }
            float[][] resumed = values(resumedModel);
            for (int i = 0; i < resumed.length; i++) {
                assertArrayEquals(uninterrupted[i], resumed[i], "parameter " + i + " differs after resume");
            }
        } finally {
            resumedModel.parameters().close();
        }
    }

    /**
     * max_bad_steps poisoned steps in a row end the run, naming the first parameter (in model order) whose gradient
     * went non-finite at the first of them, found here independently by reading every gradient back.
     */
    @Test
    void maxBadStepsInARowStopTheTrainerNamingTheParameter() {
        ArrayData clean = ArrayData.random(8, 1, 8, 4, 16, 3);
        TrainingConfig config = config(10, 3, 0);
        MicroDiT model = MicroDiT.create(TrainerTest.tiny(), 6, BACKEND);
        try (Trainer trainer = new Trainer(config, model, new PoisonedReads(clean, Set.of(3, 4, 5), 8), BACKEND)) {
            trainer.trainStep();
            trainer.trainStep();
            assertTrue(trainer.trainStep().skipped());
            String expected = null;
            for (Parameter p : model.parameters().all()) {
                if (p.grad() != null && !allFinite(p.grad().toFloatArray())) {
                    expected = p.name();
                    break;
                }
            }
            assertNotNull(expected, "the poisoned step left every gradient finite");
            assertTrue(trainer.trainStep().skipped());
            Trainer.NonFiniteStepsException e = assertThrows(Trainer.NonFiniteStepsException.class,
                    trainer::trainStep);
            assertEquals(expected, e.parameter());
            assertTrue(e.getMessage().contains("3 steps in a row (3 to 5)") && e.getMessage().contains(expected),
                    e.getMessage());
        } finally {
            model.parameters().close();
        }
    }

    private static boolean allFinite(float[] values) {
        for (float v : values) {
            if (!Float.isFinite(v)) {
                return false;
            }
        }
        return true;
    }

    /**
     * A whole run: one poisoned step is marked in metrics.jsonl and counted; later, max_bad_steps in a row stop the
     * run with an error naming the parameter and the last good checkpoint, which {@code latest} still names.
     */
    @Test
    void aRunStopsAtItsLastGoodCheckpoint() throws IOException {
        Path model = Files.writeString(temp.resolve("tiny.json"), TINY_MODEL);
        TrainingConfig config = TrainingConfig.fromJson("""
                {"model": "%s", "batch_size": 8, "threads": 1, "sample_every": 0, "checkpoint_every": 2,
                 "max_bad_steps": 2, "stages": [{"name": "s", "steps": 12, "lr": {"peak": 1e-3}}]}
                """.formatted(model.toString().replace("\\", "\\\\")));
        Path run = temp.resolve("run");
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        TrainingRun training = new TrainingRun(config, run, new PrintStream(log, true, StandardCharsets.UTF_8))
                .withDataFilter(data -> new PoisonedReads(data, Set.of(2, 5, 6), 4));
        IOException e = assertThrows(IOException.class, () -> training.run(false));
        Path lastGood = run.resolve("checkpoints").resolve("step-0000004");
        assertTrue(e.getMessage().contains("2 steps in a row (5 to 6)") && e.getMessage().contains("first parameter")
                && e.getMessage().contains("last good checkpoint is " + lastGood), e.getMessage());
        assertEquals(lastGood, Checkpoint.latest(run));
        Checkpoint.verify(lastGood);
        List<String> lines = Files.readAllLines(run.resolve("metrics.jsonl"));
        assertEquals(6, lines.size(), String.join("\n", lines));
        long[] skipped = {0, 1, 1, 1, 2, 3};
        for (int i = 0; i < lines.size(); i++) {
            Map<?, ?> line = (Map<?, ?>) Json.parse(lines.get(i));
            boolean bad = i == 1 || i >= 4;
            assertEquals(bad ? Boolean.TRUE : null, line.get("bad_step"), lines.get(i));
            assertEquals(skipped[i], line.get("skipped_steps"), lines.get(i));
            assertEquals(bad, line.get("loss") == null, lines.get(i));
        }
    }

    static final String TINY_MODEL = """
            {"name": "tiny-fashion", "input_size": 32, "patch_size": 8, "in_channels": 1, "dim": 32, "depth": 2,
             "head_dim": 16, "multiple_of": 16, "caption_channels": 16, "qkv_multipliers": {"linspace": [0.5, 1.0]},
             "ffn_multipliers": {"linspace": [0.5, 4.0]}, "use_patch_mixer": true, "patch_mixer_depth": 2,
             "patch_mixer_dim": 32, "patch_mixer_mlp_ratio": 4.0, "use_bias": false, "num_experts": 4,
             "expert_capacity": 2.0}
            """;
}
