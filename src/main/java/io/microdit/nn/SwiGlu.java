package io.microdit.nn;

import io.microdit.autograd.Graph;
import io.microdit.autograd.MatmulFunctions;
import io.microdit.autograd.Variable;
import io.microdit.tensor.DType;

/** The official dense {@code FeedForward}: {@code w3(silu(w1 x) · w2 x)}. */
public final class SwiGlu implements FeedForward {
    final Linear w1;
    final Linear w2;
    final Linear w3;

    /** {@code prefix.w1}, {@code prefix.w2} (dim → hidden) and {@code prefix.w3} (hidden → dim). */
    public SwiGlu(ParameterStore store, String prefix, int dim, int hidden, boolean bias) {
        this.w1 = new Linear(store, prefix + ".w1", dim, hidden, bias);
        this.w2 = new Linear(store, prefix + ".w2", dim, hidden, bias);
        this.w3 = new Linear(store, prefix + ".w3", hidden, dim, bias);
    }

    @Override
    public Variable forward(Graph g, Variable x) {
        // The gate runs in the products' epilogues; the output goes to the gated residual add, which reads bf16.
        return MatmulFunctions.swigluLinears(g, x, w1.weight, w1.bias, w2.weight, w2.bias, w3.weight, w3.bias,
                g.activationType());
    }

    /** x goes only to w1 and w2. */
    @Override
    public DType inputType(Graph g) {
        return g.matmulOperandType();
    }
}
