package io.microdit.autograd;

import io.microdit.backend.Backend;
import io.microdit.tensor.DType;
import io.microdit.tensor.Tensor;

/** Differentiable fused attention. */
public final class AttentionFunctions {
    private AttentionFunctions() {
    }

    /**
     * Non-causal scaled dot-product attention (scale 1/sqrt(head_dim)) of q [N, Tq, H·Dh] over k and v
     * [N, Tk, H·Dh], heads contiguous within a token; returns [N, Tq, H·Dh]. The forward saves the per-query
     * log-sum-exp [N, H, Tq]; the backward recomputes the probabilities from it and writes fresh dq, dk, dv, so
     * q, k and v may be the same variable. Under a {@link Precision#BF16} graph q, k and v enter the kernels as
     * bf16 (out, lse and the gradients stay F32).
     */
    public static Variable attention(Graph g, Variable q, Variable k, Variable v, int heads) {
        return attention(g, q, k, v, heads, DType.F32);
    }

    /**
     * {@link #attention(Graph, Variable, Variable, Variable, int)} storing out as {@code outType}: BF16 (a bf16 graph)
     * rounds it once at the store, for an output only a bf16 product reads (the output projection); the backward
     * then reads that bf16 out.
     */
    public static Variable attention(Graph g, Variable q, Variable k, Variable v, int heads, DType outType) {
        Backend be = g.backend();
        Tensor qv = g.matmulOperand(q), kv = g.matmulOperand(k), vv = g.matmulOperand(v);
        if (qv.rank() != 3 || heads <= 0 || qv.dim(2) % heads != 0) {
            throw new IllegalArgumentException("attention: q " + qv.describe() + " must be [N, Tq, H·Dh] with "
                    + heads + " heads dividing its width");
        }
        if (outType == DType.BF16 && qv.dtype() != DType.BF16) {
            throw new IllegalArgumentException("attention: a BF16 out needs a bf16 graph");
        }
        Tensor out = g.output(outType, qv.shape());
        Tensor lse = g.output(qv.dim(0), heads, qv.dim(1));
        be.attention(qv, kv, vv, heads, out, lse);
        return g.result(out, dOut -> {
            // q, k and v may be one variable (then only the first may be BF16: the others are added to it).
            Tensor dq = g.output(q.gradientType(), qv.shape());
            Tensor dk = g.output(k == q ? DType.F32 : k.gradientType(), kv.shape());
            Tensor dv = g.output(v == q || v == k ? DType.F32 : v.gradientType(), vv.shape());
            be.attentionBackward(dOut, qv, kv, vv, out, lse, heads, dq, dk, dv);
            q.addGrad(dq, be);
            k.addGrad(dk, be);
            v.addGrad(dv, be);
        }, q, k, v);
    }
}
