package io.microdit.train;

import io.microdit.autograd.Parameter;
import io.microdit.autograd.Precision;
import io.microdit.backend.Backend;
import io.microdit.backend.Backends;
import io.microdit.distributed.Communicator;
import io.microdit.model.MicroDiT;
import io.microdit.tensor.DType;
import io.microdit.tensor.Tensor;
import java.io.IOException;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.nio.file.Path;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Run by {@link ZeroBf16CopiesTest}, alone or under mpirun: trains the tiny model of {@link TrainerTest} in bf16 for
 * {@link DataParallelMain#STEPS} steps (micro-batches of the first argument's size, the sharding the second names) on
 * the CPU backend and, on rank 0, writes a checkpoint into the folder given as the third. The trainer's backend counts
 * the converts of a parameter's value to BF16 after the first update (the weights a forward would convert when it
 * has no working copy of them); each rank prints its count.
 */
public final class ZeroBf16CopiesMain {
    public static void main(String[] args) throws IOException {
        try (Communicator comm = Communicator.fromEnvironment()) {
            System.out.println("rank " + comm.rank() + " weight converts after the first update "
                    + train(comm, Integer.parseInt(args[0]), Sharding.parse(args[1]), Path.of(args[2])));
        }
    }

    /** Trains and checkpoints into {@code out}; returns the parameter converts counted after the first update. */
    static long train(Communicator comm, int micro, Sharding sharding, Path out) throws IOException {
        try (Backend backend = Backends.open("cpu", 1)) {
            MicroDiT model = MicroDiT.create(TrainerTest.tiny(), 5, backend);
            Set<Tensor> values = Collections.newSetFromMap(new IdentityHashMap<>());
            for (Parameter p : model.parameters().all()) {
                values.add(p.value());
            }
            AtomicLong converts = new AtomicLong();
            boolean[] counting = {false};
            Backend counted = (Backend) Proxy.newProxyInstance(Backend.class.getClassLoader(),
                    new Class<?>[] {Backend.class}, (proxy, method, arguments) -> {
                        if (counting[0] && method.getName().equals("convert") && arguments.length == 2
                                && values.contains((Tensor) arguments[0])
                                && ((Tensor) arguments[1]).dtype() == DType.BF16) {
                            converts.incrementAndGet();
                        }
                        try {
                            return method.invoke(backend, arguments);
                        } catch (InvocationTargetException e) {
                            throw e.getCause();
                        }
                    });
            TrainingConfig config = DataParallelMain.config(micro, sharding).withPrecision(Precision.BF16);
            try (Trainer trainer = new Trainer(config, model, DataParallelMain.data(DataParallelMain.BATCH), counted, comm)) {
                while (trainer.step() < DataParallelMain.STEPS) {
                    trainer.trainStep();
                    counting[0] = true;
                }
                trainer.checkpoint(out);
            } finally {
                model.parameters().close();
            }
            return converts.get();
        }
    }
}
