package io.microdit.backend;

import static io.microdit.backend.Checks.argument;
import static io.microdit.backend.Checks.dtype;
import static io.microdit.backend.Checks.floatInput;
import static io.microdit.backend.Checks.notNull;
import static io.microdit.backend.Checks.rank;
import static io.microdit.backend.Checks.shape;

import io.microdit.tensor.DType;
import io.microdit.tensor.Tensor;

/**
 * {@link Checks} for the expert-choice MoE ops of {@link Backend}: the top-k routing, the dispatch to the experts and
 * the weighted combine, and their backwards; both backends call them, so both refuse the same arguments with the same
 * message.
 */
public final class MoeChecks {
    private MoeChecks() {
    }

    /**
     * Sizes of one expert-choice routing: N samples of T tokens, E experts choosing k tokens each, rows of D
     * features (0 for the top-k ops, which have none).
     */
    public record Routing(int samples, int tokens, int experts, int k, int dim) {
    }

    /** F32 probs [N, T, E], 1 ≤ k ≤ T, F32 gates and I32 indices [N, E, k]. */
    public static Routing expertChoiceTopK(Tensor probs, int k, Tensor gates, Tensor indices) {
        String op = "expertChoiceTopK";
        dtype(op, "probs", probs, DType.F32);
        rank(op, "probs", probs, 3);
        int samples = probs.dim(0), tokens = probs.dim(1), experts = probs.dim(2);
        argument(k >= 1 && k <= tokens, op, () -> "k (tokens per expert) must be in [1, " + tokens + "] for probs "
                + probs.describe() + ", got " + k);
        dtype(op, "gates", gates, DType.F32);
        shape(op, "gates", gates, samples, experts, k);
        dtype(op, "indices", indices, DType.I32);
        shape(op, "indices", indices, samples, experts, k);
        return new Routing(samples, tokens, experts, k, 0);
    }

    /** I32 indices and F32 dGates [N, E, k], F32 dProbs [N, T, E]. */
    public static Routing expertChoiceTopKBackward(Tensor dGates, Tensor indices, Tensor dProbs) {
        String op = "expertChoiceTopKBackward";
        routingIndices(op, indices);
        int samples = indices.dim(0), experts = indices.dim(1), k = indices.dim(2);
        dtype(op, "dGates", dGates, DType.F32);
        shape(op, "dGates", dGates, samples, experts, k);
        dtype(op, "dProbs", dProbs, DType.F32);
        shape(op, "dProbs", dProbs, samples, -1, experts);
        return new Routing(samples, dProbs.dim(1), experts, k, 0);
    }

    /** F32 x [N, T, D], I32 indices [N, E, k], out [E, N·k, D] F32 or BF16 (rows rounded to nearest even). */
    public static Routing moeDispatch(Tensor x, Tensor indices, Tensor out) {
        String op = "moeDispatch";
        dtype(op, "x", x, DType.F32);
        rank(op, "x", x, 3);
        routingIndices(op, indices);
        int samples = x.dim(0), tokens = x.dim(1), dim = x.dim(2);
        int experts = indices.dim(1), k = indices.dim(2);
        argument(indices.dim(0) == samples, op, () -> "indices " + indices.describe() + " and x " + x.describe()
                + " differ in the number of samples");
        floatOrBf16(op, "out", out);
        shape(op, "out", out, experts, samples * k, dim);
        return new Routing(samples, tokens, experts, k, dim);
    }

    /** dOut [E, N·k, D] F32 or BF16 (the gradient of bf16 dispatched rows), I32 indices [N, E, k], F32 dx [N, T, D]. */
    public static Routing moeDispatchBackward(Tensor dOut, Tensor indices, Tensor dx) {
        String op = "moeDispatchBackward";
        routingIndices(op, indices);
        int samples = indices.dim(0), experts = indices.dim(1), k = indices.dim(2);
        dtype(op, "dx", dx, DType.F32);
        shape(op, "dx", dx, samples, -1, -1);
        int tokens = dx.dim(1), dim = dx.dim(2);
        floatInput(op, "dOut", dOut);
        shape(op, "dOut", dOut, experts, samples * k, dim);
        return new Routing(samples, tokens, experts, k, dim);
    }

    /** h [E, N·k, D] (F32 or BF16), F32 gates and I32 indices [N, E, k], out [N, T, D] F32 (or BF16 for BF16 h). */
    public static Routing moeCombine(Tensor h, Tensor gates, Tensor indices, Tensor out) {
        String op = "moeCombine";
        routingIndices(op, indices);
        int samples = indices.dim(0), experts = indices.dim(1), k = indices.dim(2);
        int dim = expertOutputs(op, h, experts, samples * k);
        dtype(op, "gates", gates, DType.F32);
        shape(op, "gates", gates, samples, experts, k);
        floatOrBf16(op, "out", out);
        argument(out.dtype() == DType.F32 || h.dtype() == DType.BF16, op, "a BF16 out needs BF16 expert outputs h");
        shape(op, "out", out, samples, -1, dim);
        return new Routing(samples, out.dim(1), experts, k, dim);
    }

    /** The arguments of {@link #moeCombine} with dOut (F32 or BF16) for out, dH F32 or BF16, F32 dGates like gates. */
    public static Routing moeCombineBackward(Tensor dOut, Tensor h, Tensor gates, Tensor indices, Tensor dH,
                                             Tensor dGates) {
        String op = "moeCombineBackward";
        routingIndices(op, indices);
        int samples = indices.dim(0), experts = indices.dim(1), k = indices.dim(2);
        int dim = expertOutputs(op, h, experts, samples * k);
        floatOrBf16(op, "dOut", dOut);
        shape(op, "dOut", dOut, samples, -1, dim);
        dtype(op, "gates", gates, DType.F32);
        shape(op, "gates", gates, samples, experts, k);
        floatInput(op, "dH", dH);
        shape(op, "dH", dH, experts, samples * k, dim);
        dtype(op, "dGates", dGates, DType.F32);
        shape(op, "dGates", dGates, samples, experts, k);
        return new Routing(samples, dOut.dim(1), experts, k, dim);
    }

    /** A tensor stored as F32 or BF16 (a bf16 graph's activation that is read widened exactly). */
    private static void floatOrBf16(String op, String argument, Tensor t) {
        notNull(op, argument, t);
        argument(t.dtype() == DType.F32 || t.dtype() == DType.BF16, op, () -> argument + " " + t.describe()
                + " must be F32 or BF16");
    }

    /** Expert-choice routing indices: I32 [N, E, k]. */
    private static void routingIndices(String op, Tensor indices) {
        dtype(op, "indices", indices, DType.I32);
        rank(op, "indices", indices, 3);
    }

    /** The experts' outputs h [E, N·k, D], F32 or BF16, of a combine: returns D. */
    private static int expertOutputs(String op, Tensor h, int experts, int rows) {
        floatOrBf16(op, "h", h);
        shape(op, "h", h, experts, rows, -1);
        return h.dim(2);
    }
}
