package io.microdit.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.backend.cpu.CpuBackend;
import io.microdit.model.MaskingMode;
import io.microdit.model.MicroDiT;
import io.microdit.tensor.HostAllocator;
import io.microdit.testing.ArrayData;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Steps of a run reuse the memory of the steps before them: after warm-up nothing new comes from the C heap. */
class HostMemoryTrainingTest {

    @Test
    void fromTheThirdStepOnATrainingStepReservesNoFreshMemory() {
        ArrayData data = ArrayData.random(16, 1, 8, 4, 16, 21);
        // Deferred masking, gradient accumulation over two micro-batches and EMA: every allocation path of a step.
        TrainingConfig config = new TrainingConfig("tiny-test", "arrays", null, 4, 8, 4, List.of(new Stage("masked",
                7, MaskingMode.DEFERRED, 0.5, new LearningRateSchedule.ConstantWithWarmup(1e-3, 2), 1.0)), 0.99,
                0.0, -0.6, 1.2, 17, 1, 1, 0, 0, 4, 1.0);
        try (CpuBackend backend = new CpuBackend(2)) {
            MicroDiT model = MicroDiT.create(TrainerTest.tiny(), 4, backend);
            try (Trainer trainer = new Trainer(config, model, data, backend)) {
                HostAllocator.Stats[] arena = new HostAllocator.Stats[(int) config.totalSteps() + 1];
                HostAllocator.Stats[] shared = new HostAllocator.Stats[arena.length];
                arena[0] = backend.memory().stats();
                shared[0] = HostAllocator.shared().stats();
                for (int step = 1; step < arena.length; step++) {
                    trainer.trainStep();
                    arena[step] = backend.memory().stats();
                    shared[step] = HostAllocator.shared().stats();
                }
                assertTrue(arena[2].reservedBytes() > 0 && arena[2].freshReservations() > 0,
                        "the step's activations come from the backend's arena: " + arena[2]);
                for (int step = 3; step < arena.length; step++) {
                    String where = "step " + step + ": " + arena[step] + " after " + arena[step - 1] + "; shared "
                            + shared[step] + " after " + shared[step - 1];
                    assertEquals(arena[2].freshReservations(), arena[step].freshReservations(), where);
                    assertEquals(arena[2].reservedBytes(), arena[step].reservedBytes(), where);
                    assertEquals(shared[2].freshReservations(), shared[step].freshReservations(), where);
                    assertTrue(arena[step].cacheHits() > arena[step - 1].cacheHits(), where);
                }
            } finally {
                model.parameters().close();
            }
        }
    }

    @Test
    void minorFaultsAreTheTenthFieldOfProcSelfStat() {
        assertEquals(41_234, MinorPageFaults.parse(
                "4242 (java (main) x) S 1 4242 4242 0 -1 4194560 41234 0 12 0 150 30 0 0 20 0 21 0 100 1 2\n"));
        long count = MinorPageFaults.count();
        assertTrue(count > 0, "a JVM has faulted pages in by now: " + count);
    }
}
