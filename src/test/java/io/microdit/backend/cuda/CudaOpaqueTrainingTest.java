package io.microdit.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.autograd.Parameter;
import io.microdit.backend.Backend;
import io.microdit.diffusion.Edm;
import io.microdit.diffusion.HeunSampler;
import io.microdit.model.MaskingMode;
import io.microdit.model.MicroDiT;
import io.microdit.model.MicroDiTConfig;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.ArrayData;
import io.microdit.testing.TestData;
import io.microdit.train.LearningRateSchedule;
import io.microdit.train.Stage;
import io.microdit.train.Trainer;
import io.microdit.train.TrainingConfig;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The layers above the backend on device memory Java cannot touch ({@link CudaBackend#opaque()}: the emulator's
 * memory refuses host access as a real GPU's does): Trainer steps (batch upload, masked EDM loss with caption
 * dropout, backward, clipping, AdamW, EMA), checkpoint and restore, and the Heun sampler, each against the CPU
 * backend or an uninterrupted run.
 */
@Tag("emu")
class CudaOpaqueTrainingTest extends OpaqueCudaVersusCpu {
    private static final double LEARNING_RATE = 1e-3;

    @TempDir
    Path temp;


    /** Steps of two samples, deferred masking, caption dropout and EMA (the emulator is slow: keep it small). */
    private static TrainingConfig config(long steps) {
        Stage stage = new Stage("masked", steps, MaskingMode.DEFERRED, 0.5,
                new LearningRateSchedule.ConstantWithWarmup(LEARNING_RATE, 0), 0.5);
        return new TrainingConfig("tiny-cuda", "arrays", null, 5, 2, 2, List.of(stage), 0.9, 0.5, -0.6, 1.2, 21, 1,
                1, 0, 0, 4, 1.0);
    }

    /** A model on {@code backend} with the official init moved off zero, identically on every backend. */
    private static MicroDiT model(Backend backend) {
        MicroDiT model = MicroDiT.create(CudaTrainingStepTest.tiny(), 5, backend);
        Random random = new Random(3);
        for (Parameter p : model.parameters().all()) {
            float[] v = backend.read(p.value());
            for (int j = 0; j < v.length; j++) {
                v[j] += (float) (0.1 * random.nextGaussian()); // past the zero init, so every path is live
            }
            backend.write(p.value(), v);
        }
        return model;
    }

    private static List<float[]> read(Backend backend, Iterable<Tensor> tensors) {
        List<float[]> out = new ArrayList<>();
        for (Tensor t : tensors) {
            out.add(backend.read(t));
        }
        return out;
    }

    private static List<float[]> values(MicroDiT model) {
        return read(model.backend(), model.parameters().all().stream().map(Parameter::value).toList());
    }

    @Test
    void javaCannotTouchOpaqueMemoryButTheBackendCopiesMoveIt() {
        Random random = new Random(8);
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            assertFalse(device.hostAccessible());
            Tensor source = TestData.uniform(host, random, 3, 37);
            Tensor onDevice = cuda.upload(source, device);
            assertSame(onDevice, cuda.upload(onDevice, device));
            IllegalStateException refused = assertThrows(IllegalStateException.class, () -> onDevice.getFloat(0));
            assertTrue(refused.getMessage().contains("cannot read or write"), refused.getMessage());
            assertThrows(IllegalStateException.class, () -> onDevice.copyFrom(new float[111]));
            assertThrows(IllegalStateException.class, () -> onDevice.fill(0f));
            assertArrayEquals(source.toFloatArray(), cuda.read(onDevice));

            Tensor copy = TestData.poisoned(host, 3, 37);
            Tensor deviceCopy = cuda.upload(copy, device);
            cuda.copy(onDevice, deviceCopy);
            assertArrayEquals(source.toFloatArray(), cuda.download(deviceCopy, host).toFloatArray());
            cuda.fill(deviceCopy.rows(1, 1), 2.5f);
            cuda.fill(deviceCopy.rows(2, 1), 0f);
            float[] expected = source.toFloatArray();
            java.util.Arrays.fill(expected, 37, 74, 2.5f);
            java.util.Arrays.fill(expected, 74, 111, 0f);
            assertArrayEquals(expected, cuda.read(deviceCopy));

            int[] ids = {4, -3, 7, 1 << 30, 0};
            Tensor deviceIds = device.zeros(DType.I32, 5);
            cuda.write(deviceIds, ids);
            assertArrayEquals(ids, cuda.download(deviceIds, host).toIntArray());
            assertThrows(IllegalArgumentException.class, () -> cuda.copy(onDevice, deviceIds));
            assertThrows(IllegalArgumentException.class, () -> cuda.write(onDevice, new float[5]));
        }
    }

    @Test
    void trainerStepsMatchTheCpuBackendAndResumeFromACheckpoint() throws IOException {
        MicroDiTConfig c = CudaTrainingStepTest.tiny();
        ArrayData data = ArrayData.random(6, c.inChannels(), c.inputSize(), 5, c.captionChannels(), 4);
        List<Trainer.StepResult> expected = new ArrayList<>();
        List<float[]> expectedValues;
        MicroDiT onCpu = model(cpu);
        try (Trainer trainer = new Trainer(config(2), onCpu, data, cpu)) {
            while (!trainer.finished()) {
                expected.add(trainer.trainStep());
            }
            expectedValues = values(onCpu);
        } finally {
            onCpu.parameters().close();
        }

        List<Trainer.StepResult> actual = new ArrayList<>();
        List<float[]> uninterrupted, uninterruptedEma;
        Path checkpoint;
        MicroDiT onCuda = model(cuda);
        try (Trainer trainer = new Trainer(config(2), onCuda, data, cuda)) {
            actual.add(trainer.trainStep());
            checkpoint = trainer.checkpoint(temp.resolve("run"));
            actual.add(trainer.trainStep());
            uninterrupted = values(onCuda);
            uninterruptedEma = read(cuda, trainer.ema().weights().values());
        } finally {
            onCuda.parameters().close();
        }
        for (int i = 0; i < expected.size(); i++) {
            Trainer.StepResult e = expected.get(i), a = actual.get(i);
            assertEquals(e.loss(), a.loss(), 1e-4 * Math.abs(e.loss()), "loss of step " + (i + 1));
            assertEquals(e.gradientNorm(), a.gradientNorm(), 1e-4 * e.gradientNorm(),
                    "gradient norm of step " + (i + 1));
        }
        // Adam normalises each update to about ±lr, so a gradient that is nearly zero may flip an element's step:
        // bound every element by the steps taken, and the mean difference far below one step.
        double worst = 0, sum = 0;
        long count = 0;
        for (int i = 0; i < expectedValues.size(); i++) {
            float[] e = expectedValues.get(i), a = uninterrupted.get(i);
            for (int j = 0; j < e.length; j++) {
                double d = Math.abs(e[j] - a[j]);
                worst = Math.max(worst, d);
                sum += d;
                count++;
            }
        }
        assertTrue(worst <= 2 * 2 * LEARNING_RATE * 1.01, "largest parameter difference " + worst);
        assertTrue(sum / count <= 0.01 * LEARNING_RATE, "mean parameter difference " + sum / count);

        MicroDiT resumed = MicroDiT.create(CudaTrainingStepTest.tiny(), 999, cuda); // everything from the file
        try (Trainer trainer = new Trainer(config(2), resumed, data, cuda)) {
            trainer.restore(checkpoint);
            assertEquals(1, trainer.step());
            Trainer.StepResult last = trainer.trainStep();
            assertEquals(actual.get(1).loss(), last.loss(), "loss of the resumed step");
            List<float[]> values = values(resumed);
            for (int i = 0; i < values.size(); i++) {
                assertArrayEquals(uninterrupted.get(i), values.get(i), "parameter " + i + " differs after resume");
            }
            List<float[]> ema = read(cuda, trainer.ema().weights().values());
            for (int i = 0; i < ema.size(); i++) {
                assertArrayEquals(uninterruptedEma.get(i), ema.get(i), "EMA " + i + " differs after resume");
            }
        } finally {
            resumed.parameters().close();
        }
    }

    @Test
    void heunSamplerMatchesTheCpuBackend() {
        MicroDiTConfig c = CudaTrainingStepTest.tiny();
        MicroDiT onCpu = model(cpu);
        MicroDiT onCuda = model(cuda);
        try (MemoryScope host = new MemoryScope("captions")) {
            Tensor captions = TestData.uniform(host, new Random(6), 2, 5, c.captionChannels());
            for (double guidance : new double[] {1.0, 2.5}) {
                float[] expected = new HeunSampler(onCpu, cpu, Edm.MICRODIT_256).sample(captions, 2, guidance, 9, 1);
                float[] actual = new HeunSampler(onCuda, cuda, Edm.MICRODIT_256).sample(captions, 2, guidance, 9, 1);
                assertEquals(expected.length, actual.length);
                for (int i = 0; i < expected.length; i++) {
                    assertEquals(expected[i], actual[i], 1e-4 * Math.max(1, Math.abs(expected[i])),
                            "guidance " + guidance + ", pixel " + i);
                }
            }
        } finally {
            onCpu.parameters().close();
            onCuda.parameters().close();
        }
    }
}
