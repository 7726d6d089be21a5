package io.microdit.nn;

import io.microdit.autograd.ActivationFunctions;
import io.microdit.autograd.Graph;
import io.microdit.autograd.Variable;
import io.microdit.tensor.DType;

/** The official dense {@code FeedForward}: {@code w3(silu(w1 x) · w2 x)}. */
public final class SwiGlu implements FeedForward {
    final Linear w1;
    final Linear w2;
    final Linear w3;

    public SwiGlu(ParameterStore store, String prefix, int dim, int hidden, boolean bias) {
        this.w1 = new Linear(store, prefix + ".w1", dim, hidden, bias);
        this.w2 = new Linear(store, prefix + ".w2", dim, hidden, bias);
        this.w3 = new Linear(store, prefix + ".w3", hidden, dim, bias);
    }

    @Override
    public Variable forward(Graph g, Variable x) {
        // Every product's output goes to an op that reads bf16 exactly (the gate, the gated residual add).
        DType stored = g.activationType();
        return w3.forward(g, ActivationFunctions.swigluGate(g, w1.forward(g, x, stored), w2.forward(g, x, stored),
                g.matmulOperandType()), stored);
    }

    /** x goes only to w1 and w2. */
    @Override
    public DType inputType(Graph g) {
        return g.matmulOperandType();
    }
}
