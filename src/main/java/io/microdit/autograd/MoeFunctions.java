package io.microdit.autograd;

import io.microdit.backend.Backend;
import io.microdit.tensor.DType;
import io.microdit.tensor.Tensor;

/**
 * Differentiable pieces of expert-choice MoE (the official {@code FeedForwardECMoe}): routing, dispatch to the
 * experts and the gated combine. An expert FFN is {@code combine(experts(dispatch(x)), route(softmax(gate(x))))}.
 * The routing indices are integers chosen by a top-k: they carry no gradient, the gates do.
 */
public final class MoeFunctions {
    private MoeFunctions() {
    }

    /**
     * The routing of one MoE layer: gates [N, E, k] (the chosen tokens' probabilities, differentiable) and
     * indices I32 [N, E, k] (the chosen token of each slot, in the graph's scope).
     */
    public record Routing(Variable gates, Tensor indices) {
    }

    /**
     * k, the number of tokens each expert picks, exactly as the official code computes it:
     * {@code int(capacity * tokens / experts)}, the product first, then the division, in double precision and
     * truncated toward zero like Python's {@code int()}. MicroDiT (capacity 2, 8 experts) gets tokens / 4.
     */
    public static int tokensPerExpert(double capacity, int tokens, int experts) {
        if (!(capacity > 0) || Double.isInfinite(capacity) || tokens < 1 || experts < 1) {
            throw new IllegalArgumentException("tokensPerExpert: need capacity > 0 (finite), tokens ≥ 1 and "
                    + "experts ≥ 1, got capacity " + capacity + ", " + tokens + " tokens, " + experts + " experts");
        }
        double exact = capacity * tokens / experts;
        int k = (int) exact;
        if (k < 1) {
            throw new IllegalArgumentException("tokensPerExpert: capacity " + capacity + " × " + tokens
                    + " tokens / " + experts + " experts = " + exact + " truncates to 0 tokens per expert; "
                    + "use more tokens, fewer experts or a larger capacity");
        }
        if (k > tokens) {
            throw new IllegalArgumentException("tokensPerExpert: capacity " + capacity + " × " + tokens
                    + " tokens / " + experts + " experts = " + k + " tokens per expert, more than the " + tokens
                    + " tokens there are (capacity must not exceed the number of experts)");
        }
        return k;
    }

    /**
     * Expert-choice routing on probs [N, T, E] (softmax over experts): each expert takes its k most probable
     * tokens of each sample, best first, ties to the lower token index. Backward:
     * {@code dProbs[n, indices[n,e,j], e] += dGates[n,e,j]}.
     */
    public static Routing route(Graph g, Variable probs, int k) {
        Backend be = g.backend();
        if (probs.value().rank() != 3) {
            throw new IllegalArgumentException("route: probs must be [N, T, E], got " + probs.value().describe());
        }
        int samples = probs.dim(0), experts = probs.dim(2);
        Tensor gates = g.output(samples, experts, k);
        Tensor indices = g.output(DType.I32, samples, experts, k);
        be.expertChoiceTopK(probs.value(), k, gates, indices);
        Variable gatesVariable = g.result(gates,
                dGates -> be.expertChoiceTopKBackward(dGates, indices, probs.gradBuffer()), probs);
        return new Routing(gatesVariable, indices);
    }

    /**
     * Gathers each expert's tokens: x [N, T, D] to [E, N·k, D], row n·k + j of expert e being token
     * indices[n,e,j] of sample n. Backward scatter-adds the rows back into dx (a token chosen by several
     * experts sums their gradients).
     */
    public static Variable dispatch(Graph g, Variable x, Tensor indices, int experts) {
        return dispatch(g, x, indices, experts, DType.F32);
    }

    /**
     * {@link #dispatch(Graph, Variable, Tensor, int)} storing the rows as {@code outType}: BF16 rounds each once as it
     * is stored, for rows only the experts' bf16 products read (a bf16 graph's copy of them, without the F32 rows).
     */
    public static Variable dispatch(Graph g, Variable x, Tensor indices, int experts, DType outType) {
        Backend be = g.backend();
        if (x.value().rank() != 3 || indices.rank() != 3 || indices.dim(1) != experts) {
            throw new IllegalArgumentException("dispatch: need x [N, T, D] and indices [N, " + experts
                    + ", k], got x " + x.value().describe() + " and indices " + indices.describe());
        }
        int samples = x.dim(0), k = indices.dim(2);
        Tensor out = g.output(outType, experts, samples * k, x.dim(2));
        be.moeDispatch(x.value(), indices, out);
        return g.result(out, dOut -> be.moeDispatchBackward(dOut, indices, x.gradBuffer(be)), x);
    }

    /**
     * Weighted combine of the experts' outputs h [E, N·k, D] back to tokens: out [N, tokens, D], where
     * {@code out[n, t] = Σ gates[n,e,j] · h[e, n·k+j]} over the slots that chose t, zero for tokens none chose.
     * Backward: dH = gates · dOut[chosen token], dGates = dOut[chosen token] · h.
     */
    public static Variable combine(Graph g, Variable h, Variable gates, Tensor indices, int tokens) {
        Backend be = g.backend();
        if (h.value().rank() != 3 || indices.rank() != 3) {
            throw new IllegalArgumentException("combine: need h [E, N·k, D] and indices [N, E, k], got h "
                    + h.value().describe() + " and indices " + indices.describe());
        }
        int samples = indices.dim(0);
        Tensor out = g.output(samples, tokens, h.dim(2));
        be.moeCombine(h.value(), gates.value(), indices, out);
        return g.result(out, dOut -> {
            Tensor dH = g.output(h.gradientType(), h.shape());
            Tensor dGates = g.output(gates.shape());
            be.moeCombineBackward(dOut, h.value(), gates.value(), indices, dH, dGates);
            h.addGrad(dH, be);
            gates.addGrad(dGates, be);
        }, h, gates);
    }
}
