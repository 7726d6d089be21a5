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
     * The experts' exact-GELU MLP on the routed tokens, {@code gelu(dispatch(x)[e] · w1[e]) · w2[e]}: [E, N·k, D] from x
     * [N, T, D], w1 [E, D, H] and w2 [E, H, D]; the values and gradients of
     * {@code MatmulFunctions.geluProducts(g, dispatch(g, x, indices, E, activationType), w1, w2, false, outType)}
     * bit for bit. Under bf16 precision the dispatch is inside the products ({@link Backend#moeExpertsGelu},
     * {@link Backend#moeExpertsWeightGradient}): they read the routed rows from x's bf16 copy (the graph's
     * {@link Graph#matmulOperand}, the one bf16 copy of the MoE input: [N, T, D], half the dispatched rows at capacity
     * 2), so the dispatched [E, N·k, D] rows are never written nor read back; the routed rows' gradient
     * (dPre · w1ᵀ) still goes back to the tokens through the dispatch's backward (the token→slot map, fixed order).
     */
    public static Variable experts(Graph g, Variable x, Tensor indices, Variable w1, Variable w2, DType outType) {
        int experts = indices.dim(1);
        if (g.matmulOperandType() != DType.BF16) {
            Variable routed = dispatch(g, x, indices, experts, g.activationType());
            return MatmulFunctions.geluProducts(g, routed, w1, w2, false, outType);
        }
        Backend be = g.backend();
        if (x.value().rank() != 3 || indices.rank() != 3 || w1.value().rank() != 3 || w1.dim(0) != experts
                || w1.dim(1) != x.dim(2) || !java.util.Arrays.equals(w2.shape(),
                        new int[] {experts, w1.dim(2), x.dim(2)})) {
            throw new IllegalArgumentException("experts: need x [N, T, D], indices [N, E, k], w1 [E, D, H] and w2 "
                    + "[E, H, D], got x " + x.value().describe() + ", indices " + indices.describe() + ", w1 "
                    + w1.value().describe() + " and w2 " + w2.value().describe());
        }
        Tensor xv = g.matmulOperand(x), w1v = g.matmulOperand(w1), w2v = g.matmulOperand(w2);
        int rows = indices.dim(0) * indices.dim(2), dim = x.dim(2), hidden = w1.dim(2);
        // The pre-activation is kept for the backward, as geluProducts keeps it.
        Tensor pre = g.output(g.activationType(), experts, rows, hidden);
        Tensor hiddenRows = g.output(g.matmulOperandType(), experts, rows, hidden);
        be.moeExpertsGelu(xv, indices, w1v, pre, hiddenRows, false);
        Tensor out = g.output(outType, experts, rows, dim);
        be.matmul(hiddenRows, false, w2v, false, null, out, false);
        return g.result(out, dOutGradient -> {
            Tensor dOut = g.matmulGradient(dOutGradient);
            // geluProducts's order: dPre, dW2, the routed rows' gradient (BF16, as the dispatched BF16 rows' would
            // be) and at once its dispatch backward into dx, then dW1.
            Tensor dPre = g.output(pre.dtype(), pre.shape());
            be.matmulGeluBackward(dOut, false, w2v, true, pre, dPre, false);
            if (w2.requiresGrad()) {
                Variable.GradientTarget d = w2.gradientTarget(be);
                be.matmul(hiddenRows, true, dOut, false, null, d.tensor(), d.accumulate());
            }
            if (x.requiresGrad()) {
                Tensor dRouted = g.output(g.activationType(), experts, rows, dim);
                be.matmul(dPre, false, w1v, true, null, dRouted, false);
                be.moeDispatchBackward(dRouted, indices, x.gradBuffer(be));
            }
            if (w1.requiresGrad()) {
                Variable.GradientTarget d = w1.gradientTarget(be);
                be.moeExpertsWeightGradient(xv, indices, dPre, d.tensor(), d.accumulate());
            }
        }, x, w1, w2);
    }

    /**
     * Weighted combine of the experts' outputs h [E, N·k, D] back to tokens: out [N, tokens, D], where
     * {@code out[n, t] = Σ gates[n,e,j] · h[e, n·k+j]} over the slots that chose t, zero for tokens none chose.
     * Backward: dH = gates · dOut[chosen token], dGates = dOut[chosen token] · h. out is stored as {@code outType}:
     * BF16 (BF16 h, a bf16 graph) rounds the F32 sum once at the store, as autocast's one-hot einsum stores it.
     */
    public static Variable combine(Graph g, Variable h, Variable gates, Tensor indices, int tokens, DType outType) {
        Backend be = g.backend();
        if (h.value().rank() != 3 || indices.rank() != 3) {
            throw new IllegalArgumentException("combine: need h [E, N·k, D] and indices [N, E, k], got h "
                    + h.value().describe() + " and indices " + indices.describe());
        }
        int samples = indices.dim(0);
        Tensor out = g.output(outType, samples, tokens, h.dim(2));
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
