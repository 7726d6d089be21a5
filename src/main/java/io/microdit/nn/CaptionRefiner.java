package io.microdit.nn;

import io.microdit.autograd.ElementwiseFunctions;
import io.microdit.autograd.Graph;
import io.microdit.autograd.NormFunctions;
import io.microdit.autograd.Variable;

/**
 * The official {@code AttentionBlockPromptEmbedding} ({@code y_emb_preprocess}): one pre-LN transformer block on
 * the caption tokens, without adaLN or gates: {@code y = y + SelfAttn(LN₁ y); y = y + SwiGLU(LN₂ y)}.
 */
public final class CaptionRefiner {
    final LayerNorm norm1;
    final Attention attn;
    final LayerNorm norm2;
    final SwiGlu mlp;

    /**
     * The block's parameters under {@code prefix} ({@code norm1}, {@code attn}, {@code norm2}, {@code mlp}) for
     * caption tokens of width {@code dim}, heads of {@code headDim}, a SwiGLU of {@code swigluHidden}.
     */
    public CaptionRefiner(ParameterStore store, String prefix, int dim, int headDim, int swigluHidden, boolean bias,
                          double eps) {
        this.norm1 = new LayerNorm(store, prefix + ".norm1", dim, eps);
        this.attn = Attention.self(store, prefix + ".attn", dim, dim, dim / headDim, bias, eps);
        this.norm2 = new LayerNorm(store, prefix + ".norm2", dim, eps);
        this.mlp = new SwiGlu(store, prefix + ".mlp", dim, swigluHidden, bias);
    }

    /** The refined caption tokens, y [N, L, dim] to [N, L, dim]. */
    public Variable forward(Graph g, Variable y) {
        // The first residual add and norm2, which reads its result, run as one op.
        NormFunctions.ResidualNorm r = norm2.forwardResidual(g, y, null,
                attn.forward(g, norm1.forward(g, y, g.matmulOperandType())), null, null, mlp.inputType(g));
        return ElementwiseFunctions.add(g, r.residual(), mlp.forward(g, r.normed()));
    }
}
