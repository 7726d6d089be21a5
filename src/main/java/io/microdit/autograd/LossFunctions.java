package io.microdit.autograd;

import io.microdit.backend.Backend;
import io.microdit.tensor.Tensor;

/** Differentiable training losses. */
public final class LossFunctions {
    private LossFunctions() {
    }

    /**
     * The EDM loss over kept patches (spec §3.2), a scalar [1]: the mean over samples of
     * {@code weight[n]·(denoised − target)²} averaged over channels and each p×p patch, then over the patches
     * with mask[n, patch] == 0. denoised and target [N, C, H, W], weight [N], mask F32 [N, (H/p)·(W/p)]
     * (1 = removed) or null for every patch. Only denoised receives a gradient; removed pixels get 0.
     */
    public static Variable edmLoss(Graph g, Variable denoised, Tensor target, Tensor weight, Tensor mask,
                                   int patch) {
        Backend be = g.backend();
        Tensor value = denoised.value();
        if (value.rank() != 4) {
            throw new IllegalArgumentException("edmLoss: denoised must have rank 4 [N, C, H, W], got "
                    + value.describe());
        }
        Tensor perSample = g.output(value.dim(0));
        float loss = be.edmLoss(value, target, weight, mask, patch, perSample);
        Tensor out = g.output(1);
        be.fill(out, loss);
        return g.result(out, dOut -> {
            Tensor dDenoised = g.output(value.shape());
            be.edmLossBackward(be.read(dOut)[0], value, target, weight, mask, patch, dDenoised);
            denoised.addGrad(dDenoised, be);
        }, denoised);
    }
}
