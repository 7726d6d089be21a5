package io.microdit.train;

import io.microdit.autograd.GradScope;
import io.microdit.autograd.Graph;
import io.microdit.autograd.Parameter;
import io.microdit.autograd.Variable;
import io.microdit.backend.Backend;
import io.microdit.data.TrainingData;
import io.microdit.diffusion.Edm;
import io.microdit.diffusion.EdmObjective;
import io.microdit.distributed.Communicator;
import io.microdit.distributed.SingleProcessCommunicator;
import io.microdit.model.MicroDiT;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The training loop, one optimizer step at a time: for each micro-batch (gradient accumulation) read the samples
 * the {@link DataOrder} names, compute the EDM loss of the current stage (masked or not) and back-propagate it
 * scaled by 1/accumulation; then clip the global gradient norm, take an AdamW step at the stage's learning rate
 * and update the EMA. A step whose loss or gradient norm is not finite is skipped instead (no update, counted), and
 * {@code max_bad_steps} of them in a row end the run ({@link NonFiniteStepsException}). All randomness is keyed by (seed, global sample index), so a run resumed from a
 * checkpoint continues bit for bit on the CPU backend.
 *
 * <p>Over a {@link Communicator} of N ranks, {@code batch_size} is the global batch: micro-batch j of a step runs on
 * rank j mod N, and the {@link GradientReduction} sums the micro-batches' gradients in their global order, so every
 * rank holds the single-process gradient, clips and steps identically, and N ranks reproduce one process bit for
 * bit on the CPU. With accumulation, each micro-batch back-propagates into zeroed gradients and is added to the
 * running sum (one process and N ranks then round alike). The reduction's collectives start during the backward,
 * as each bucket's gradients become final (system properties {@code microdit.bucket.mb} and
 * {@code microdit.gradient.overlap} set the bucket size and turn the overlap off).
 *
 * <p>Parameters, gradients, moments, EMA and activations live in the backend's memory. Each micro-batch is read
 * into host tensors and uploaded once (no copy on the CPU backend); Java reads back only the loss and the
 * gradient norm.
 */
public final class Trainer implements AutoCloseable {
    /** What one optimizer step did. */
    public record StepResult(long step, int stage, double loss, double learningRate, double gradientNorm,
                             double seconds, long flops, double communicationSeconds, boolean skipped) {
    }

    /**
     * {@code max_bad_steps} steps in a row had a non-finite loss or gradient norm: the weights are those of the last
     * good step (no bad step changed them), and {@link #parameter} names the first parameter, in model order, whose
     * gradient was non-finite at the first bad step of the run of bad steps (null when only the loss was).
     */
    public static final class NonFiniteStepsException extends ArithmeticException {
        private final String parameter;
        private final transient StepResult result;

        NonFiniteStepsException(String message, String parameter, StepResult result) {
            super(message);
            this.parameter = parameter;
            this.result = result;
        }

        /** The official name of the first parameter whose gradient went non-finite, or null. */
        public String parameter() {
            return parameter;
        }

        /** The last bad step, which took no update either. */
        public StepResult result() {
            return result;
        }
    }

    private final TrainingConfig config;
    private final MicroDiT model;
    private final TrainingData data;
    private final Backend backend;
    private final AdamW optimizer;
    private final ExponentialMovingAverage ema;
    private final DataOrder order;
    private final Edm edm;
    private final Communicator communicator;
    private final GradientReduction reduction;
    private long step;
    private long samplesSeen;
    private int consecutiveBadSteps;
    private long firstBadStep;
    private String firstNonFiniteParameter;

    /** A single-process trainer of {@code model} on {@code data} (the model's parameters live on {@code backend}). */
    public Trainer(TrainingConfig config, MicroDiT model, TrainingData data, Backend backend) {
        this(config, model, data, backend, new SingleProcessCommunicator());
    }

    /**
     * A trainer for this rank of {@code communicator}'s world (every rank builds one, from the same config and
     * seed). The accumulation steps ({@code batch_size / micro_batch_size}) must be a multiple of the world size.
     */
    public Trainer(TrainingConfig config, MicroDiT model, TrainingData data, Backend backend,
                   Communicator communicator) {
        if (config.accumulationSteps() % communicator.size() != 0) {
            throw new IllegalArgumentException("batch_size " + config.batchSize() + " / micro_batch_size "
                    + config.microBatchSize() + " = " + config.accumulationSteps() + " micro-batches per step do not "
                    + "split evenly over " + communicator.size() + " ranks: make batch_size a multiple of "
                    + communicator.size() + " × micro_batch_size");
        }
        this.communicator = communicator;
        this.reduction = config.accumulationSteps() > 1
                ? new GradientReduction(backend, communicator, new ArrayList<>(model.parameters().all()),
                        config.accumulationSteps() / communicator.size(), config.sharding()) : null;
        this.config = config;
        this.model = model;
        this.data = data;
        this.backend = backend;
        this.optimizer = reduction != null && reduction.sharded()
                ? new AdamW(backend, model.parameters(), AdamW.MICRODIT, reduction::owns)
                : new AdamW(backend, model.parameters(), AdamW.MICRODIT);
        this.ema = config.emaDecay() <= 0 ? null : reduction != null && reduction.sharded()
                ? new ExponentialMovingAverage(backend, model.parameters(), config.emaDecay(), reduction::owns)
                : new ExponentialMovingAverage(backend, model.parameters(), config.emaDecay());
        this.order = new DataOrder(data.size(), config.seed());
        this.edm = new Edm(0.9, config.pMean(), config.pStd());
    }

    /** Optimizer steps taken so far, skipped non-finite steps included (the next step's 0-based index). */
    public long step() {
        return step;
    }

    /** Training samples read so far, over all ranks (the data order's position). */
    public long samplesSeen() {
        return samplesSeen;
    }

    /** Whether every stage's steps are done. */
    public boolean finished() {
        return step >= config.totalSteps();
    }

    /** The model being trained. */
    public MicroDiT model() {
        return model;
    }

    /** The moving average, or null when EMA is off; under ZeRO-2 this rank's share ({@link #averagedWeights}). */
    public ExponentialMovingAverage ema() {
        return ema;
    }

    /**
     * Every parameter's moving average by name, or null when EMA is off: the EMA's own tensors, or under ZeRO-2 the
     * owners' shares gathered into host tensors of {@code host} — then every rank must call it (a collective).
     */
    public Map<String, Tensor> averagedWeights(MemoryScope host) {
        if (ema == null) {
            return null;
        }
        return reduction != null && reduction.sharded() ? reduction.gatherState(ema.weights(), List.of(""), host)
                : ema.weights();
    }

    /** The EDM preconditioning and noise distribution of the run (P_mean, P_std from the config). */
    public Edm edm() {
        return edm;
    }

    /** One optimizer step over {@code batch_size} samples. */
    public StepResult trainStep() {
        int stageIndex = config.stageIndex(step);
        Stage stage = config.stages().get(stageIndex);
        double learningRate = stage.schedule().at(step - config.stageStart(stageIndex));
        EdmObjective objective = new EdmObjective(edm, stage.masking(), stage.maskRatio(), config.captionDropout());
        int micro = config.microBatchSize();
        int accumulation = config.accumulationSteps();
        int world = communicator.size();
        int rounds = accumulation / world;
        long flopsBefore = backend.flops().total();
        double communicationBefore = reduction == null ? 0 : reduction.communicationSeconds();
        long start = System.nanoTime();
        float[] losses = new float[accumulation];
        int[] latentShape = data.latentShape();
        int[] captionShape = data.captionShape();
        for (int round = 0; round < rounds; round++) {
            int microBatch = round * world + communicator.rank();
            long first = samplesSeen + (long) microBatch * micro;
            model.parameters().zeroGrad(backend);
            try (MemoryScope batch = new MemoryScope("train-batch"); MemoryScope scope = backend.scope("train-step")) {
                Tensor hostLatents = batch.zeros(micro, latentShape[0], latentShape[1], latentShape[2]);
                Tensor hostCaptions = batch.zeros(micro, captionShape[0], captionShape[1]);
                data.read(order.indices(first, micro), hostLatents, hostCaptions);
                Tensor latents = backend.upload(hostLatents, scope);
                Tensor captions = backend.upload(hostCaptions, scope);
                Graph graph = new Graph(backend, scope, config.precision()).recompute(config.recompute())
                        .useBf16Copies(optimizer.bf16Copies());
                if (reduction != null) {
                    graph.useBf16Copies(reduction.bf16Copies());
                    reduction.watch(graph, round);
                }
                try (GradScope ignored = graph.recordGradients()) {
                    Variable loss = objective.loss(graph, model, latents, captions, config.seed(), first);
                    losses[microBatch] = backend.read(loss.value())[0];
                    Tensor seed = scope.zeros(1);
                    backend.fill(seed, 1f / accumulation);
                    graph.backward(loss, seed);
                }
                if (reduction != null && reduction.sharded()) {
                    optimizer.keepBf16Copies(reduction.keepBf16Copies(graph.convertedParameters()));
                } else {
                    optimizer.keepBf16Copies(graph.convertedParameters());
                }
            }
            if (reduction != null) {
                reduction.addRound(round);
            }
        }
        double lossSum = 0;
        for (float loss : globalLosses(losses)) {
            lossSum += loss;
        }
        double loss = lossSum / accumulation;
        boolean sharded = reduction != null && reduction.sharded();
        double norm = sharded ? reduction.gradientNorm() : optimizer.gradientNorm();
        boolean skipped = !Double.isFinite(loss) || !Double.isFinite(norm);
        if (skipped) {
            recordBadStep();
        } else {
            consecutiveBadSteps = 0;
            optimizer.update(learningRate, stage.gradientClip(), norm);
            if (sharded) {
                reduction.gatherParameters();
            }
            if (ema != null) {
                ema.update();
            }
        }
        step++;
        samplesSeen += config.batchSize();
        double seconds = (System.nanoTime() - start) / 1e9;
        StepResult result = new StepResult(step, stageIndex, loss, learningRate, norm, seconds,
                backend.flops().total() - flopsBefore,
                reduction == null ? 0 : reduction.communicationSeconds() - communicationBefore, skipped);
        if (consecutiveBadSteps >= config.maxBadSteps()) {
            throw new NonFiniteStepsException(consecutiveBadSteps + " steps in a row (" + firstBadStep + " to "
                    + step + ") had a non-finite loss or gradient norm (max_bad_steps " + config.maxBadSteps()
                    + "; the last had loss " + loss + ", gradient norm " + norm + "); "
                    + (firstNonFiniteParameter == null ? "every gradient was finite at step " + firstBadStep
                            + ", only the loss was not"
                            : "the first parameter whose gradient went non-finite (step " + firstBadStep + ") is '"
                                    + firstNonFiniteParameter + "'"), firstNonFiniteParameter, result);
        }
        return result;
    }

    /**
     * A step with a non-finite loss or gradient norm took no AdamW and no EMA update (its gradients are zeroed by
     * the next step); after {@code max_bad_steps} in a row the run cannot recover by itself and stops.
     */
    private void recordBadStep() {
        if (consecutiveBadSteps == 0) {
            firstBadStep = step + 1;
            firstNonFiniteParameter = firstNonFiniteGradient();
        }
        consecutiveBadSteps++;
    }

    /**
     * The first parameter, in model order, whose gradient has a non-finite sum of squares (one reduction each: only
     * on a bad step). Under ZeRO-2 a rank holds reduced gradients of the parameters it owns only, so it looks there.
     */
    private String firstNonFiniteGradient() {
        for (Parameter p : model.parameters().all()) {
            if (p.grad() != null && (reduction == null || !reduction.sharded() || reduction.owns(p))
                    && !Double.isFinite(backend.sumOfSquares(p.grad()))) {
                return p.name();
            }
        }
        return null;
    }

    /** Steps in a row, up to the last, whose update was skipped for a non-finite loss or gradient norm. */
    public int consecutiveBadSteps() {
        return consecutiveBadSteps;
    }

    /** Steps skipped over the whole run (resumed runs included): those that took no optimizer update. */
    public long skippedSteps() {
        return step - optimizer.step();
    }

    /**
     * Every micro-batch's loss, in global order, from the ones this rank computed (the others are zero here): a sum
     * over ranks, exact since each element is non-zero on one rank only.
     */
    private float[] globalLosses(float[] local) {
        if (communicator.size() == 1) {
            return local;
        }
        try (MemoryScope scope = new MemoryScope("step-losses")) {
            Tensor all = Tensor.of(scope, local, local.length);
            communicator.allReduceSum(all);
            return all.toFloatArray();
        }
    }

    /**
     * Writes a checkpoint of the current state; returns its folder. Every rank calls it (sharded moments and EMA
     * are gathered from their owners); rank 0 writes, the others return null.
     */
    public Path checkpoint(Path runDirectory) throws IOException {
        try (MemoryScope host = new MemoryScope("checkpoint-gather")) {
            Map<String, Tensor> moments = reduction != null && reduction.sharded()
                    ? reduction.gatherState(optimizer.state(), List.of(".exp_avg", ".exp_avg_sq"), host)
                    : optimizer.state();
            Map<String, Tensor> averaged = averagedWeights(host);
            if (communicator.rank() != 0) {
                return null;
            }
            return Checkpoint.write(runDirectory, new Checkpoint.State(step, samplesSeen, config.toJson(),
                    optimizer.step(), Map.of()), model, moments, averaged, config.keepCheckpoints());
        }
    }

    /** Continues from a checkpoint written by {@link #checkpoint} (verified against its checksums first). */
    public void restore(Path checkpoint) throws IOException {
        Checkpoint.State state = Checkpoint.readState(checkpoint);
        Checkpoint.restore(checkpoint, model, optimizer, ema);
        this.consecutiveBadSteps = 0;
        this.step = state.step();
        this.samplesSeen = state.samplesSeen();
    }

    /** What reduces the gradients between ranks: the host or device collectives ({@link GradientReduction}). */
    String gradientCollectives() {
        return reduction == null || communicator.size() == 1 ? "none (one rank)" : reduction.describe();
    }

    /**
     * The gradient buckets' collectives so far: the buckets per round, those issued, and those issued while a
     * backward still had ops to run (overlapped with it); zeros on one rank.
     */
    long[] gradientBuckets() {
        if (reduction == null || communicator.size() == 1) {
            return new long[3];
        }
        long[] issued = reduction.bucketsIssued();
        return new long[] {reduction.bucketCount(), issued[0], issued[1]};
    }

    /** Bytes of moving average this rank holds: all of it, or its share under ZeRO-2 sharding (0 without EMA). */
    long emaBytes() {
        long bytes = 0;
        if (ema != null) {
            for (Tensor t : ema.weights().values()) {
                bytes += t.byteSize();
            }
        }
        return bytes;
    }

    /** Bytes of AdamW moments this rank holds: all of them, or its share under ZeRO-2 sharding. */
    long optimizerBytes() {
        long bytes = 0;
        for (Tensor t : optimizer.state().values()) {
            bytes += t.byteSize();
        }
        return bytes;
    }

    /** Bytes of memory live on the backend's device now (parameters, moments, EMA, and any open step). */
    public long liveBytes() {
        return backend.device().liveBytes();
    }

    @Override
    public void close() {
        if (reduction != null) {
            reduction.close();
        }
        optimizer.close();
        if (ema != null) {
            ema.close();
        }
    }
}
