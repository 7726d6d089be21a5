package io.microdit.autograd;

import io.microdit.backend.Backend;
import io.microdit.tensor.Tensor;

/**
 * Differentiable token movement: the deferred-mask gather and scatter, the mean over tokens, and the patch
 * (un)embedding permutations. Each backward is the op's adjoint: gather ↔ scatter, a permutation ↔ its
 * inverse, the mean ↔ a broadcast divided by T.
 */
public final class TokenFunctions {
    private TokenFunctions() {
    }

    /**
     * Kept tokens: {@code out[n, j, :] = x[n, ids[n, j], :]}; x [N, T, D], ids I32 [N, K], out [N, K, D].
     * Backward scatters dOut back to the named rows (zero elsewhere) and adds it to dx; it therefore needs the
     * ids of a sample to be distinct, as the masking's keep ids are (the backend rejects duplicates).
     */
    public static Variable gatherRows(Graph g, Variable x, Tensor ids) {
        Backend be = g.backend();
        checkRank("gatherRows", "x", x.value(), 3);
        checkRank("gatherRows", "ids", ids, 2);
        Tensor out = g.output(x.dim(0), ids.dim(1), x.dim(2));
        be.gatherRows(x.value(), ids, out);
        return g.result(out, dOut -> {
            Tensor dx = g.output(x.shape());
            be.scatterRows(dOut, ids, dx);
            x.addGrad(dx, be);
        }, x);
    }

    /**
     * Back to all tokens with the zero mask token in the removed positions: {@code out[n, ids[n, j], :] =
     * x[n, j, :]}, other rows 0; x [N, K, D], ids I32 [N, K] distinct per sample, out [N, tokens, D].
     * Backward gathers dOut at the ids.
     */
    public static Variable scatterRows(Graph g, Variable x, Tensor ids, int tokens) {
        Backend be = g.backend();
        checkRank("scatterRows", "x", x.value(), 3);
        if (tokens < x.dim(1)) {
            throw new IllegalArgumentException("scatterRows: " + tokens + " tokens cannot hold the " + x.dim(1)
                    + " distinct rows of x " + x.value().describe());
        }
        Tensor out = g.output(x.dim(0), tokens, x.dim(2));
        be.scatterRows(x.value(), ids, out);
        return g.result(out, dOut -> {
            Tensor dx = g.output(x.shape());
            be.gatherRows(dOut, ids, dx);
            x.addGrad(dx, be);
        }, x);
    }

    /** Mean over tokens: x [N, T, D] to [N, D]. Backward: {@code dx[n, t, :] = dOut[n, :] / T}. */
    public static Variable meanTokens(Graph g, Variable x) {
        Backend be = g.backend();
        checkRank("meanTokens", "x", x.value(), 3);
        Tensor out = g.output(x.dim(0), x.dim(2));
        be.meanTokens(x.value(), out);
        return g.result(out, dOut -> {
            Tensor dx = g.output(x.shape());
            be.meanTokensBackward(dOut, dx);
            x.addGrad(dx, be);
        }, x);
    }

    /**
     * Patches as the official Conv2d patch embedding reads them: image [N, C, H, W] to [N, (H/p)·(W/p), C·p·p],
     * features ordered (c, i, j), so a Linear with the conv weight viewed as [D, C·p·p] is the conv.
     */
    public static Variable patchify(Graph g, Variable image, int patch) {
        Backend be = g.backend();
        checkRank("patchify", "image", image.value(), 4);
        if (patch < 1) {
            throw new IllegalArgumentException("patchify: patch must be at least 1, got " + patch);
        }
        int channels = image.dim(1);
        Tensor out = g.output(image.dim(0), (image.dim(2) / patch) * (image.dim(3) / patch),
                channels * patch * patch);
        be.patchify(image.value(), patch, out);
        return g.result(out, dOut -> {
            Tensor dImage = g.output(image.shape());
            be.patchifyBackward(dOut, patch, dImage);
            image.addGrad(dImage, be);
        }, image);
    }

    /**
     * The official unpatchify: tokens [N, (H/p)·(W/p), p·p·C] with features ordered (i, j, c) to an image
     * [N, C, H, W].
     */
    public static Variable unpatchify(Graph g, Variable tokens, int patch, int channels, int height, int width) {
        Backend be = g.backend();
        checkRank("unpatchify", "tokens", tokens.value(), 3);
        Tensor out = g.output(tokens.dim(0), channels, height, width);
        be.unpatchify(tokens.value(), patch, out);
        return g.result(out, dOut -> {
            Tensor dTokens = g.output(tokens.shape());
            be.unpatchifyBackward(dOut, patch, dTokens);
            tokens.addGrad(dTokens, be);
        }, tokens);
    }

    private static void checkRank(String op, String argument, Tensor t, int rank) {
        if (t == null) {
            throw new IllegalArgumentException(op + ": " + argument + " is null");
        }
        if (t.rank() != rank) {
            throw new IllegalArgumentException(op + ": " + argument + " must have rank " + rank + ", got "
                    + t.describe());
        }
    }
}
