package io.microdit.nn;

import io.microdit.autograd.Graph;
import io.microdit.autograd.NormFunctions;
import io.microdit.autograd.Parameter;
import io.microdit.autograd.Variable;
import io.microdit.tensor.DType;
import io.microdit.tensor.Tensor;

/** {@code nn.LayerNorm(dim, eps, bias=False)}: a weight, no bias (the official {@code create_norm('layernorm')}). */
public final class LayerNorm {
    final Parameter weight;
    private final float eps;

    /** The norm's weight {@code name.weight} [dim] (ones after the official init) and its epsilon. */
    public LayerNorm(ParameterStore store, String name, int dim, double eps) {
        this.weight = store.create(name + ".weight", dim);
        this.eps = (float) eps;
    }

    /** LN(x)·weight over the last dimension, in F32. */
    public Variable forward(Graph g, Variable x) {
        return forward(g, x, DType.F32);
    }

    /** {@link #forward} with its output in {@code outType} (BF16 only for matrix products, see NormFunctions). */
    public Variable forward(Graph g, Variable x, DType outType) {
        return NormFunctions.layerNorm(g, x, weight, eps, outType);
    }

    /**
     * This norm of the rows of x [N, T, dim] that ids I32 [N, K] keep (the deferred mask's), read in place: out
     * [N, K, dim] in {@code outType}, the values of gathering the rows and then {@link #forward(Graph, Variable,
     * DType)} (see {@link NormFunctions#gatherLayerNorm}).
     */
    public Variable forwardGathered(Graph g, Variable x, Tensor ids, DType outType) {
        return NormFunctions.gatherLayerNorm(g, x, ids, weight, eps, outType);
    }

    /**
     * adaLN after the norm, fused: {@code LN(x)·(1 + scale) + shift}, x [N, T, dim], shift and scale [N, dim]; the
     * output in {@code outType} as for {@link #forward(Graph, Variable, DType)}.
     */
    public Variable forwardModulated(Graph g, Variable x, Variable shift, Variable scale, DType outType) {
        return NormFunctions.layerNormModulate(g, x, weight, shift, scale, eps, outType);
    }
    /**
     * The residual add before this norm, fused with it: {@code x' = x + gate·f} (gate null: {@code x + f}) and
     * this norm of x', modulated when shift and scale are given (both null: not). Returns x' and the normed rows
     * (in {@code outType}), the values of the separate ops (see {@link NormFunctions#residualLayerNorm}).
     */
    public NormFunctions.ResidualNorm forwardResidual(Graph g, Variable x, Variable gate, Variable f, Variable shift,
                                                      Variable scale, DType outType) {
        return NormFunctions.residualLayerNorm(g, x, gate, f, weight, shift, scale, eps, outType);
    }

    /**
     * {@link #forwardResidual} with F32 normed rows and their bf16 copy for the graph's matrix products, stored in the
     * same pass (see {@link NormFunctions#residualLayerNormWithBf16Copy}).
     */
    public NormFunctions.ResidualNorm forwardResidualWithBf16Copy(Graph g, Variable x, Variable gate, Variable f,
                                                                  Variable shift, Variable scale) {
        return NormFunctions.residualLayerNormWithBf16Copy(g, x, gate, f, weight, shift, scale, eps);
    }
}

