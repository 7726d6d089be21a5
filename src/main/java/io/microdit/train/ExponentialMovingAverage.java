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

/**
 * An exponential moving average of the weights, {@code ema = decay·ema + (1 − decay)·w} after every optimizer
 * step, kept under the parameters' official names (so the averaged weights load as a model), in the backend's
 * memory.
 */
public final class ExponentialMovingAverage implements AutoCloseable {
    private final Backend backend;
    private final ParameterStore parameters;
    private final double decay;
    private final MemoryScope scope;
    private final Map<String, Tensor> averages = new LinkedHashMap<>();

    public ExponentialMovingAverage(Backend backend, ParameterStore parameters, double decay) {
        this.backend = backend;
        this.parameters = parameters;
        this.decay = decay;
        this.scope = backend.scope("ema");
        for (Parameter p : parameters.all()) {
            Tensor average = scope.zeros(p.value().shape());
            backend.copy(p.value(), average);
            averages.put(p.name(), average);
        }
    }

    public void update() {
        List<Tensor> values = new ArrayList<>();
        for (Parameter p : parameters.all()) {
            values.add(p.value());
        }
        backend.emaUpdate(List.copyOf(averages.values()), values, (float) decay);
    }

    /** The averaged weights by official name: the backend's tensors. */
    public Map<String, Tensor> weights() {
        return averages;
    }

    @Override
    public void close() {
        scope.close();
    }
}
