package io.microdit.nn;

import io.microdit.autograd.Parameter;
import io.microdit.backend.Backend;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.util.Collection;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A model's parameters by official dotted name, all in one memory scope that lives as long as the model.
 * Layers create their parameters here under their prefix, so names always follow the module tree.
 */
public final class ParameterStore implements AutoCloseable {
    private final MemoryScope scope;
    private final Map<String, Parameter> parameters = new LinkedHashMap<>();

    /** A store in its own host scope. */
    public ParameterStore(String name) {
        this(new MemoryScope(name));
    }

    /** A store in the given scope (e.g. a device scope of the CUDA backend); the store closes it. */
    public ParameterStore(MemoryScope scope) {
        this.scope = scope;
    }

    /** A new zero-filled F32 parameter; names are unique. */
    public Parameter create(String name, int... shape) {
        if (parameters.containsKey(name)) {
            throw new IllegalArgumentException("parameter '" + name + "' is defined twice");
        }
        Parameter p = new Parameter(name, Tensor.zeros(scope, DType.F32, shape));
        parameters.put(name, p);
        return p;
    }

    /** The parameter of that official name; an error naming it when there is none. */
    public Parameter get(String name) {
        Parameter p = parameters.get(name);
        if (p == null) {
            throw new IllegalArgumentException("no parameter named '" + name + "'");
        }
        return p;
    }

    /** Every parameter in creation order (the module tree's order), unmodifiable. */
    public Collection<Parameter> all() {
        return Collections.unmodifiableCollection(parameters.values());
    }

    /** The parameters by official name, in creation order, unmodifiable. */
    public Map<String, Parameter> byName() {
        return Collections.unmodifiableMap(parameters);
    }

    /** Total number of parameter elements. */
    public long count() {
        long n = 0;
        for (Parameter p : parameters.values()) {
            n += p.value().numel();
        }
        return n;
    }

    /** The scope parameter values and gradients live in (for optimizer state of the same lifetime). */
    public MemoryScope scope() {
        return scope;
    }

    /** Zeroes every parameter's gradient in place (the buffers are kept for the next step's backward). */
    public void zeroGrad(Backend backend) {
        for (Parameter p : parameters.values()) {
            p.zeroGrad(backend);
        }
    }

    @Override
    public void close() {
        scope.close();
    }
}
