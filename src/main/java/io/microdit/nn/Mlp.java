package io.microdit.nn;

import io.microdit.autograd.ActivationFunctions;
import io.microdit.autograd.Graph;
import io.microdit.autograd.Variable;

/** timm's {@code Mlp} as the official code uses it: fc1 → GELU(tanh) → LayerNorm → fc2, with biases. */
public final class Mlp {
    final Linear fc1;
    final LayerNorm norm;
    final Linear fc2;

    /** {@code prefix.fc1} (in → hidden), {@code prefix.norm} (hidden), {@code prefix.fc2} (hidden → out). */
    public Mlp(ParameterStore store, String prefix, int in, int hidden, int out, double eps) {
        this.fc1 = new Linear(store, prefix + ".fc1", in, hidden, true);
        this.norm = new LayerNorm(store, prefix + ".norm", hidden, eps);
        this.fc2 = new Linear(store, prefix + ".fc2", hidden, out, true);
    }

    /** The MLP of the last dimension of x, in F32. */
    public Variable forward(Graph g, Variable x) {
        // The GELU output feeds the LayerNorm (F32); the LayerNorm's output only fc2.
        Variable hidden = ActivationFunctions.gelu(g, fc1.forward(g, x), true);
        return fc2.forward(g, norm.forward(g, hidden, g.matmulOperandType()));
    }
}
