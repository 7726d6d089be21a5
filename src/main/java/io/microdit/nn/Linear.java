package io.microdit.nn;

import io.microdit.autograd.Graph;
import io.microdit.autograd.MatmulFunctions;
import io.microdit.autograd.Parameter;
import io.microdit.autograd.Precision;
import io.microdit.autograd.Variable;
import io.microdit.tensor.DType;

/** {@code nn.Linear}: weight [out, in], optional bias [out]. */
public final class Linear {
    final Parameter weight;
    final Parameter bias;

    /** {@code prefix.weight} [out, in] and, with {@code bias}, {@code prefix.bias} [out], created in the store. */
    public Linear(ParameterStore store, String prefix, int in, int out, boolean bias) {
        this(store.create(prefix + ".weight", out, in), bias ? store.create(prefix + ".bias", out) : null);
    }

    private Linear(Parameter weight, Parameter bias) {
        this.weight = weight;
        this.bias = bias;
    }

    /** A Linear over existing parameters; a weight of rank above 2 is read as [out, in] (a conv as patch Linear). */
    public static Linear of(Parameter weight, Parameter bias) {
        return new Linear(weight, bias);
    }

    /** {@code x·Wᵀ + b} over the last dimension of x, in F32. */
    public Variable forward(Graph g, Variable x) {
        return MatmulFunctions.linear(g, x, weight, bias);
    }

    /** {@code x·Wᵀ + b} stored as {@code outType} (BF16 in a bf16 graph: see {@link Graph#activationType}). */
    public Variable forward(Graph g, Variable x, DType outType) {
        return MatmulFunctions.linear(g, x, weight, bias, outType);
    }

    /** {@link #forward} as {@code parts} equal blocks of output features (see {@link MatmulFunctions#linearParts}). */
    public Variable[] forwardParts(Graph g, Variable x, int parts) {
        return MatmulFunctions.linearParts(g, x, weight, bias, parts);
    }

    /** {@link #forward} in F32 whatever the graph's precision. */
    public Variable forwardF32(Graph g, Variable x) {
        return MatmulFunctions.linear(g, x, weight, bias, Precision.F32);
    }
}
