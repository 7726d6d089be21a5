package io.microdit.nn;

import io.microdit.autograd.Graph;
import io.microdit.autograd.MoeFunctions;
import io.microdit.autograd.Parameter;
import io.microdit.autograd.SoftmaxFunctions;
import io.microdit.autograd.Variable;
import io.microdit.tensor.DType;

/**
 * The official {@code FeedForwardECMoe}: expert-choice routing per sample. The router's softmax runs over experts
 * per token; each expert then takes its top k = int(capacity·T/E) tokens, runs GELU(x·w1[e])·w2[e] (exact GELU,
 * no bias) on them, and the outputs are added back weighted by the raw gate probabilities. Dispatch and combine
 * gather and scatter rows by index, the same maths as the official one-hot einsums without their dense cost.
 */
public final class ExpertChoiceMoe implements FeedForward {
    final Linear gate;
    final Parameter w1;
    final Parameter w2;
    private final int experts;
    private final double capacity;

    /**
     * The router {@code prefix.gate} (dim → experts, no bias) and the experts' stacked weights {@code prefix.w1}
     * [experts, dim, hidden] and {@code prefix.w2} [experts, hidden, dim]; each expert takes capacity·T/E tokens.
     */
    public ExpertChoiceMoe(ParameterStore store, String prefix, int dim, int hidden, int experts, double capacity) {
        this.w1 = store.create(prefix + ".w1", experts, dim, hidden);
        this.w2 = store.create(prefix + ".w2", experts, hidden, dim);
        this.gate = new Linear(store, prefix + ".gate", dim, experts, false);
        this.experts = experts;
        this.capacity = capacity;
    }

    /** x [N, T, D] to [N, T, D]; tokens no expert chose get 0. */
    @Override
    public Variable forward(Graph g, Variable x) {
        int tokens = x.dim(1);
        int k = MoeFunctions.tokensPerExpert(capacity, tokens, experts);
        // The router stays F32 under bf16 precision: rounded logits would change which tokens an expert takes.
        Variable probs = SoftmaxFunctions.softmax(g, gate.forwardF32(g, x));
        MoeFunctions.Routing routing = MoeFunctions.route(g, probs, k);
        // Exact GELU, fused into the experts' products (forward and backward), which read the routed rows from x
        // (a bf16 graph's one bf16 copy of it) themselves; their outputs are read only by the combine: bf16 storage.
        Variable out = MoeFunctions.experts(g, x, routing.indices(), w1, w2, g.activationType()); // [E, N·k, D]
        // Its output goes to the residual add and norm, which widen a bf16 input exactly: bf16 storage.
        return MoeFunctions.combine(g, out, routing.gates(), routing.indices(), tokens, g.activationType());
    }

    /** The F32 router reads x too (rounded logits would change the routing); the experts read its bf16 copy. */
    @Override
    public DType inputType(Graph g) {
        return DType.F32;
    }
}
