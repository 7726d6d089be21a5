package io.microdit.nn;

import io.microdit.autograd.ElementwiseFunctions;
import io.microdit.autograd.Graph;
import io.microdit.autograd.NormFunctions;
import io.microdit.autograd.Recompute;
import io.microdit.autograd.Recomputation;
import io.microdit.autograd.Variable;
import io.microdit.tensor.DType;

/**
 * The official {@code DiTBlock}, shared by the patch-mixer and the backbone:
 * <pre>
 * shift₁, scale₁, gate₁, shift₂, scale₂, gate₂ = adaLN_modulation(GELU_tanh(c))
 * x = x + gate₁ · SelfAttn(LN₁(x)·(1+scale₁) + shift₁)
 * x = x + CrossAttn(LN₂(x), y)                 (no modulation, no gate)
 * x = x + gate₂ · FFN(LN₃(x)·(1+scale₂) + shift₂)
 * </pre>
 * The caller passes {@code GELU_tanh(c)} once for all blocks (every block applies the same activation to c).
 * Each residual add and the LayerNorm that reads its result run as one op (NormFunctions.residualLayerNorm), the
 * block's last add fused with the next block's norm1 when the caller chains blocks ({@link #forward(Graph, Input,
 * Variable[], Variable, NextNorm)}).
 */
public final class DiTBlock {
    final LayerNorm norm1;
    final Attention attn;
    final Attention crossAttn;
    final LayerNorm norm2;
    final LayerNorm norm3;
    final FeedForward mlp;
    final Linear adaLN;

    /**
     * @param attentionWidth self-attention width (heads·head_dim; layer-wise scaled), cross-attention is full width
     * @param experts        0 for a dense SwiGLU FFN of {@code ffnHidden}, else the MoE's expert count
     */
    public DiTBlock(ParameterStore store, String prefix, int dim, int headDim, int attentionWidth, int ffnHidden,
                    int experts, double capacity, int pooledDim, boolean bias, double eps) {
        this.norm1 = new LayerNorm(store, prefix + ".norm1", dim, eps);
        this.attn = Attention.self(store, prefix + ".attn", dim, attentionWidth, attentionWidth / headDim, bias, eps);
        this.crossAttn = Attention.cross(store, prefix + ".cross_attn", dim, dim, dim / headDim, bias, eps);
        this.norm2 = new LayerNorm(store, prefix + ".norm2", dim, eps);
        this.norm3 = new LayerNorm(store, prefix + ".norm3", dim, eps);
        this.mlp = experts > 0
                ? new ExpertChoiceMoe(store, prefix + ".mlp", dim, ffnHidden, experts, capacity)
                : new SwiGlu(store, prefix + ".mlp", dim, ffnHidden, bias);
        this.adaLN = new Linear(store, prefix + ".adaLN_modulation.1", pooledDim, 6 * dim, true);
    }

    /**
     * A block's input as it is handed over: the residual stream x and, when the op before computed it (fused into
     * its last residual add), this block's modulated norm1(x), else null.
     */
    public record Input(Variable x, Variable normed) {
    }

    /** The modulated LayerNorm that follows a block's last residual add, fused into that add. */
    public record NextNorm(LayerNorm norm, Variable shift, Variable scale, DType outType) {
    }

    /** The six adaLN chunks shift₁, scale₁, gate₁, shift₂, scale₂, gate₂ of this block. */
    public Variable[] modulation(Graph g, Variable activatedCondition) {
        return ElementwiseFunctions.chunk(g, adaLN.forward(g, activatedCondition), 6);
    }

    /** This block's norm1 with its modulation {@code m}, for the block before it to fuse into its last add. */
    public NextNorm inputNorm(Graph g, Variable[] m) {
        return new NextNorm(norm1, m[0], m[1], g.matmulOperandType());
    }

    /** x [N, T, dim], y [N, L, dim], activatedCondition = GELU_tanh(c) [N, pooledDim]. */
    public Variable forward(Graph g, Variable x, Variable y, Variable activatedCondition) {
        return forward(g, new Input(x, null), modulation(g, activatedCondition), y, null).x();
    }

    /**
     * The block with its modulation {@code m} ({@link #modulation}). Each residual add is fused with the norm that
     * reads its result (gate₁ with norm2, the cross-attention's add with norm3), and the last one with
     * {@code next} when given: then the result carries next's normed rows. The values are those of the ops
     * one by one.
     */
    public Input forward(Graph g, Input in, Variable[] m, Variable y, NextNorm next) {
        Variable x = in.x();
        // The normalised rows go only to linear layers (qkv, q_linear, the FFN's input projections), so a bf16
        // graph gets them as bf16 straight from the norm; an MoE FFN also routes on its input, which stays F32.
        Variable h = in.normed() != null ? in.normed()
                : norm1.forwardModulated(g, x, m[0], m[1], g.matmulOperandType());
        NormFunctions.ResidualNorm r = norm2.forwardResidual(g, x, m[2], selfAttention(g, h), null, null,
                g.matmulOperandType());
        // An FFN that takes F32 rows in a bf16 graph (the MoE: its router) also has its products read them as bf16:
        // the norm stores that copy beside them.
        r = mlp.inputType(g) == DType.F32 && g.matmulOperandType() == DType.BF16
                ? norm3.forwardResidualWithBf16Copy(g, r.residual(), null, crossAttention(g, r.normed(), y), m[3],
                        m[4])
                : norm3.forwardResidual(g, r.residual(), null, crossAttention(g, r.normed(), y), m[3], m[4],
                        mlp.inputType(g));
        Variable f = mlp.forward(g, r.normed());
        if (next == null) {
            return new Input(ElementwiseFunctions.gatedResidual(g, r.residual(), m[5], f), null);
        }
        NormFunctions.ResidualNorm out = next.norm().forwardResidual(g, r.residual(), m[5], f, next.shift(),
                next.scale(), next.outType());
        return new Input(out.residual(), out.normed());
    }

    /** The self-attention of the normalised rows h, recomputed in the backward under Recomputation.ATTENTION. */
    private Variable selfAttention(Graph g, Variable h) {
        if (g.recomputation() != Recomputation.ATTENTION) {
            return attn.forward(g, h);
        }
        return Recompute.apply(g, (graph, in) -> attn.forward(graph, in[0]), h);
    }

    /** The cross-attention of the normalised rows h to the caption y, recomputed as {@link #selfAttention}. */
    private Variable crossAttention(Graph g, Variable h, Variable y) {
        if (g.recomputation() != Recomputation.ATTENTION) {
            return crossAttn.forward(g, h, y);
        }
        return Recompute.apply(g, (graph, in) -> crossAttn.forward(graph, in[0], in[1]), h, y);
    }
}
