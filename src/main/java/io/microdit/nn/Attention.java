package io.microdit.nn;

import io.microdit.autograd.AttentionFunctions;
import io.microdit.autograd.Graph;
import io.microdit.autograd.NormFunctions;
import io.microdit.autograd.Variable;
import io.microdit.tensor.DType;

/**
 * The official {@code SelfAttention} and {@code CrossAttention}: q, k, v projections to {@code width} =
 * heads·head_dim, QK-norm (a non-affine LayerNorm over the concatenated heads), fused attention, output
 * projection back to {@code dim}. Self-attention projects q|k|v with one {@code qkv} Linear; cross-attention
 * projects the queries with {@code q_linear} and the caption tokens with {@code kv_linear} (k|v).
 */
public final class Attention {
    private final boolean cross;
    private final int heads;
    private final float eps;
    private final Linear qkv;
    private final Linear query;
    private final Linear keyValue;
    final Linear proj;

    private Attention(ParameterStore store, String prefix, boolean cross, int dim, int width, int heads,
                      boolean bias, double eps) {
        this.cross = cross;
        this.heads = heads;
        this.eps = (float) eps;
        if (cross) {
            this.qkv = null;
            this.query = new Linear(store, prefix + ".q_linear", dim, width, bias);
            this.keyValue = new Linear(store, prefix + ".kv_linear", dim, 2 * width, bias);
        } else {
            this.qkv = new Linear(store, prefix + ".qkv", dim, 3 * width, bias);
            this.query = null;
            this.keyValue = null;
        }
        this.proj = new Linear(store, prefix + ".proj", width, dim, bias);
    }

    /**
     * Self-attention ({@code prefix.qkv}, {@code prefix.proj}) of {@code heads} heads over {@code width} =
     * heads·head_dim, reading and writing rows of {@code dim}; {@code eps} is the QK-norm's.
     */
    public static Attention self(ParameterStore store, String prefix, int dim, int width, int heads, boolean bias,
                                 double eps) {
        return new Attention(store, prefix, false, dim, width, heads, bias, eps);
    }

    /**
     * Cross-attention ({@code prefix.q_linear}, {@code prefix.kv_linear}, {@code prefix.proj}): queries from rows of
     * {@code dim}, keys and values from caption tokens of the same width, as {@link #self}.
     */
    public static Attention cross(ParameterStore store, String prefix, int dim, int width, int heads, boolean bias,
                                  double eps) {
        return new Attention(store, prefix, true, dim, width, heads, bias, eps);
    }

    /** Self-attention over x [N, T, dim]. */
    public Variable forward(Graph g, Variable x) {
        if (cross) {
            throw new IllegalStateException("cross-attention needs the caption tokens: call forward(g, x, context)");
        }
        if (g.matmulOperandType() == DType.BF16) {
            // One product for q|k|v (x read once, forward and for the weight's gradient), which attention reads in
            // place; its backward writes q|k|v's gradient whole, so x's gradient is one product (K = 3·width),
            // stored BF16, instead of three products adding in F32. The sum over the 3·width terms runs in one
            // product's order (blocks of K) instead of q's, then k's, then v's partial products added.
            Variable y = qkv.forward(g, x, DType.BF16);
            return proj.forward(g, AttentionFunctions.normalizedSelfAttention(g, y, heads, eps, g.activationType()),
                    g.activationType());
        }
        Variable[] parts = qkv.forwardParts(g, x, 3);
        return attend(g, parts[0], parts[1], parts[2]);
    }

    /** Cross-attention from x [N, T, dim] to context [N, L, dim]. */
    public Variable forward(Graph g, Variable x, Variable context) {
        if (!cross) {
            throw new IllegalStateException("self-attention takes one input");
        }
        if (g.matmulOperandType() == DType.BF16) {
            // One product for k|v, which attention reads in place; its backward writes k|v's gradient whole, so
            // the caption's gradient gets one product (K = 2·width) per block instead of two adding in F32.
            Variable kv = keyValue.forward(g, context, DType.BF16);
            return proj.forward(g, AttentionFunctions.normalizedCrossAttention(g, query.forward(g, x, DType.BF16), kv,
                    heads, eps, g.activationType()), g.activationType());
        }
        Variable[] kv = keyValue.forwardParts(g, context, 2);
        return attend(g, query.forward(g, x), kv[0], kv[1]);
    }

    /** An F32 graph's QK-norm, attention and output projection. */
    private Variable attend(Graph g, Variable q, Variable k, Variable v) {
        Variable qn = NormFunctions.layerNorm(g, q, null, eps);
        Variable kn = NormFunctions.layerNorm(g, k, null, eps);
        return proj.forward(g, AttentionFunctions.attention(g, qn, kn, v, heads));
    }
}
