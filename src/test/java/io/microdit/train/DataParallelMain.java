package io.microdit.train;

import io.microdit.backend.Backend;
import io.microdit.backend.Backends;
import io.microdit.distributed.Communicator;
import io.microdit.model.MaskingMode;
import io.microdit.model.MicroDiT;
import io.microdit.testing.ArrayData;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;

/**
 * Run by {@link DataParallelTrainingTest}, alone or under mpirun: trains the tiny model of {@link TrainerTest} for a
 * few steps on this process's rank and, on rank 0, writes a checkpoint into the folder given as the first argument.
 * The second argument is the micro-batch size. A third, {@code resume}, continues from the folder's latest checkpoint
 * (written by any number of ranks); a fourth stops after that many steps; a fifth names the {@link Sharding}
 * ({@code none} by default); a sixth the backend: {@code cpu} (the default, one thread) or {@code cuda} (on the
 * emulator: gradients reduced in device buckets by {@code mdt_comm_*}); a seventh the global batch ({@link #BATCH}
 * by default).
 */
public final class DataParallelMain {
    /** The global batch of issue 13's case: 2 ranks × 32 against 1 rank accumulating 2 × 32. */
    static final int BATCH = 64;
    static final int STEPS = 3;

    public static void main(String[] args) throws IOException {
        try (Communicator comm = Communicator.fromEnvironment()) {
            train(comm, Path.of(args[0]), Integer.parseInt(args[1]), args.length > 2 && args[2].equals("resume"),
                    args.length > 3 ? Long.parseLong(args[3]) : STEPS,
                    args.length > 4 ? Sharding.parse(args[4]) : Sharding.NONE, args.length > 5 ? args[5] : "cpu",
                    args.length > 6 ? Integer.parseInt(args[6]) : BATCH);
        }
    }

    /** The data: random latents and captions, more images than one batch so steps see different samples. */
    static ArrayData data(int batch) {
        return ArrayData.random(2 * batch + 5, 1, 8, 4, 16, 21);
    }

    static TrainingConfig config(int micro, Sharding sharding) {
        return config(BATCH, micro, sharding);
    }

    /** A masked stage then an unmasked one, EMA on, clipping active: every part of the step runs. */
    static TrainingConfig config(int batch, int micro, Sharding sharding) {
        List<Stage> stages = List.of(
                new Stage("masked", 2, MaskingMode.DEFERRED, 0.5,
                        new LearningRateSchedule.CosineWithWarmup(2e-3, 1, 2, 0.3), 0.05),
                new Stage("finetune", STEPS - 2, MaskingMode.NONE, 0,
                        new LearningRateSchedule.ConstantWithWarmup(1e-3, 0), 1.0));
        return new TrainingConfig("tiny-test", "arrays", null, 4, batch, micro, stages, 0.9, 0.1, -0.6, 1.2, 17, 1,
                1, 0, 0, 4, 1.0).withSharding(sharding);
    }

    static void train(Communicator comm, Path out, int micro, Sharding sharding) throws IOException {
        train(comm, out, micro, false, STEPS, sharding, "cpu", BATCH);
    }

    /** Trains until step {@code stopAfter} (from the latest checkpoint in {@code out} when {@code resume}). */
    static void train(Communicator comm, Path out, int micro, boolean resume, long stopAfter, Sharding sharding,
                      String backendName, int batch) throws IOException {
        try (Backend backend = backendName.equals("cpu") ? Backends.open("cpu", 1)
                : Backends.open(backendName, null, "emu")) {
            MicroDiT model = MicroDiT.create(TrainerTest.tiny(), 5, backend);
            try (Trainer trainer = new Trainer(config(batch, micro, sharding), model, data(batch), backend, comm)) {
                if (resume) {
                    trainer.restore(Checkpoint.latest(out));
                }
                while (trainer.step() < stopAfter) {
                    trainer.trainStep();
                }
                trainer.checkpoint(out);
                System.out.println("rank " + comm.rank() + " gradient collectives " + trainer.gradientCollectives());
                System.out.println("rank " + comm.rank() + " optimizer bytes " + trainer.optimizerBytes());
                System.out.println("rank " + comm.rank() + " ema bytes " + trainer.emaBytes());
                long[] buckets = trainer.gradientBuckets();
                System.out.println("rank " + comm.rank() + " gradient buckets " + buckets[0] + ", collectives issued "
                        + buckets[1] + ", during the backward " + buckets[2]);
            } finally {
                model.parameters().close();
            }
        }
    }
}
