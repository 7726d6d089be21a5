package io.microdit.nn;

import io.microdit.autograd.ElementwiseFunctions;
import io.microdit.autograd.Graph;
import io.microdit.autograd.Variable;

/**
 * The official {@code DiTBlock}, shared by the patch-mixer and the backbone:
 * <pre>
 * shift₁, scale₁, gate₁, shift₂, scale₂, gate₂ = adaLN_modulation(GELU_tanh(c))
 * x = x + gate₁ · SelfAttn(LN₁(x)·(1+scale₁) + shift₁)
 * x = x + CrossAttn(LN₂(x), y)                 (no modulation, no gate)
 * x = x + gate₂ · FFN(LN₃(x)·(1+scale₂) + shift₂)
 * </pre>
 * The caller passes {@code GELU_tanh(c)} once for all blocks (every block applies the same activation to c).
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

    /** x [N, T, dim], y [N, L, dim], activatedCondition = GELU_tanh(c) [N, pooledDim]. */
    public Variable forward(Graph g, Variable x, Variable y, Variable activatedCondition) {
        Variable[] m = ElementwiseFunctions.chunk(g, adaLN.forward(g, activatedCondition), 6);
        // The normalised rows go only to linear layers (qkv, q_linear, the FFN's input projections), so a bf16
        // graph gets them as bf16 straight from the norm; an MoE FFN also routes on its input, which stays F32.
        Variable h = norm1.forwardModulated(g, x, m[0], m[1], g.matmulOperandType());
        x = ElementwiseFunctions.gatedResidual(g, x, m[2], attn.forward(g, h));
        x = ElementwiseFunctions.add(g, x, crossAttn.forward(g, norm2.forward(g, x, g.matmulOperandType()), y));
        h = norm3.forwardModulated(g, x, m[3], m[4], mlp.inputType(g));
        return ElementwiseFunctions.gatedResidual(g, x, m[5], mlp.forward(g, h));
    }
}
