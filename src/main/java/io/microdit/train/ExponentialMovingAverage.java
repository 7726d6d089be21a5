package io.microdit.train;

import io.microdit.autograd.Parameter;
import io.microdit.backend.Backend;
import io.microdit.nn.ParameterStore;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;

/**
 * An exponential moving average of the weights, {@code ema = decay·ema + (1 − decay)·w} after every optimizer
 * step, kept under the parameters' official names (so the averaged weights load as a model), in the backend's
 * memory. Under ZeRO-2 a rank keeps and updates the average of the parameters it owns only (each element's update
 * is the same, so the shards together are the whole average bit for bit); checkpoints and samples gather it
 * ({@link Trainer}).
 */
public final class ExponentialMovingAverage implements AutoCloseable {
    private final Backend backend;
    private final List<Parameter> parameters = new ArrayList<>();
    private final double decay;
    private final MemoryScope scope;
    private final Map<String, Tensor> averages = new LinkedHashMap<>();

    /** The average of every parameter, starting from their current values. */
    public ExponentialMovingAverage(Backend backend, ParameterStore parameters, double decay) {
        this(backend, parameters, decay, p -> true);
    }

    /**
     * The average kept by rank {@code rank} of {@code ranks} under ZeRO-2 sharding ({@link ZeroShards}): the
     * parameters that rank owns only, as the trainer keeps it. For planning one rank's memory (bench-step).
     */
    public static ExponentialMovingAverage shardOf(Backend backend, ParameterStore parameters, double decay, int rank,
                                                   int ranks) {
        Map<Parameter, Integer> owners = ZeroShards.owners(parameters.all(), ranks);
        return new ExponentialMovingAverage(backend, parameters, decay, p -> owners.get(p) == rank);
    }

    /** The average of the parameters {@code keeps} accepts only (one rank's share under ZeRO-2 sharding). */
    ExponentialMovingAverage(Backend backend, ParameterStore parameters, double decay, Predicate<Parameter> keeps) {
        this.backend = backend;
        this.decay = decay;
        this.scope = backend.scope("ema");
        for (Parameter p : parameters.all()) {
            if (keeps.test(p)) {
                Tensor average = scope.zeros(p.value().shape());
                backend.copy(p.value(), average);
                averages.put(p.name(), average);
                this.parameters.add(p);
            }
        }
    }

    /** One step of the average, after an optimizer step: {@code ema = decay·ema + (1 − decay)·w}. */
    public void update() {
        List<Tensor> values = new ArrayList<>();
        for (Parameter p : parameters) {
            values.add(p.value());
        }
        backend.emaUpdate(List.copyOf(averages.values()), values, (float) decay);
    }

    /** The averaged weights this object keeps (all, or a rank's share) by official name: the backend's tensors. */
    public Map<String, Tensor> weights() {
        return averages;
    }

    @Override
    public void close() {
        scope.close();
    }
}
