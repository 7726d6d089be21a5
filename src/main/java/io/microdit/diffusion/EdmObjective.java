package io.microdit.diffusion;

import io.microdit.autograd.ElementwiseFunctions;
import io.microdit.backend.Backend;
import io.microdit.autograd.Graph;
import io.microdit.autograd.LossFunctions;
import io.microdit.autograd.Variable;
import io.microdit.model.MaskingMode;
import io.microdit.model.MicroDiT;
import io.microdit.model.TokenMask;
import io.microdit.random.Philox;
import io.microdit.tensor.Tensor;

/**
 * The training loss of one batch, as the official {@code LatentDiffusion.edm_loss}: per sample σ = exp(P_mean +
 * P_std·z), noise n = σ·ε, the network sees c_in·(x0 + n) and c_noise; D = c_skip·(x0 + n) + c_out·F; the loss is
 * λ(σ)·(D − x0)², averaged per patch over channels and pixels, then over the kept patches of each sample, then over
 * the batch. Captions are dropped to an all-zero embedding with probability {@code captionDropout} (for CFG).
 *
 * <p>Every random draw comes from Philox keyed by the run's seed, on a stream per purpose, at a counter offset
 * given by the sample's global index (the number of samples drawn before it in the run), so a resumed run and a
 * run on another backend draw the same σ, noise, mask and caption drops.
 *
 * <p>Latents and captions are tensors of the graph's backend, and the preconditioning runs there: the host computes
 * the σ-dependent scalings per sample in float64 and writes them, rounded to float, in one copy per batch; the
 * backend forms x0 + σ·ε and scales it per sample in float32 (one rounding each: σ·ε + x0 fused, then c_in·(·) and
 * c_skip·(·)), as the PyTorch reference does in float32. Nothing is read back, so on a GPU the step never waits here.
 */
public final class EdmObjective {
    /** Philox stream of the per-sample standard normals that become σ. */
    public static final long STREAM_SIGMA = 1;
    /** Philox stream of the noise ε, at offset (global sample index × elements per sample). */
    public static final long STREAM_NOISE = 2;
    /** Philox stream of the kept-patch draws, at offset (global sample index × tokens per sample). */
    public static final long STREAM_MASK = 3;
    /** Philox stream of the per-sample uniforms that decide caption dropout. */
    public static final long STREAM_CAPTION_DROP = 4;
    /** Rows of the per-sample values written to the backend in one copy per batch. */
    private static final int SIGMA = 0, C_IN = 1, C_SKIP = 2, C_OUT = 3, C_NOISE = 4, LOSS_WEIGHT = 5, SCALINGS = 6;

    private final Edm edm;
    private final MaskingMode mode;
    private final double maskRatio;
    private final double captionDropout;

    /**
     * Throws {@link IllegalArgumentException} for a caption dropout outside [0, 1] or, when masking, a ratio outside
     * [0, 1) or one that keeps no token.
     */
    public EdmObjective(Edm edm, MaskingMode mode, double maskRatio, double captionDropout) {
        if (!(captionDropout >= 0 && captionDropout <= 1)) {
            throw new IllegalArgumentException("caption dropout must be in [0, 1], got " + captionDropout);
        }
        if (mode != MaskingMode.NONE) {
            TokenMask.keptTokens(1_000_000, maskRatio); // validates the ratio
        }
        this.edm = edm;
        this.mode = mode;
        this.maskRatio = maskRatio;
        this.captionDropout = captionDropout;
    }

    /** How patches are masked, if at all (deferred behind the patch-mixer, or naive). */
    public MaskingMode mode() {
        return mode;
    }

    /** The fraction of patches dropped; 0 when nothing is masked. */
    public double maskRatio() {
        return mode == MaskingMode.NONE ? 0 : maskRatio;
    }

    /**
     * The scalar loss of a batch.
     *
     * @param latents     x0 [N, C, H, W]
     * @param captions    caption embeddings [N, L, Cc] (not modified; dropped captions are zeroed in a copy)
     * @param firstSample the global index of the batch's first sample (for the random streams)
     */
    public Variable loss(Graph g, MicroDiT model, Tensor latents, Tensor captions, long seed, long firstSample) {
        Draw draw = draw(g, model, latents.shape(), seed, firstSample);
        Tensor conditioning = dropCaptions(g, captions, seed, firstSample);
        return terms(g, model, latents, conditioning, draw.sigma(), draw.noise(), draw.mask()).loss();
    }

    /**
     * The random inputs of a batch's loss as {@link #loss} draws them: σ per sample, unit noise ε [N, C, H, W]
     * (the noise added is σ·ε) and the token mask (null when unmasked).
     */
    public record Draw(double[] sigma, Tensor noise, TokenMask mask) {
    }

    /** The loss and the network output F it was computed from. */
    public record Terms(Variable loss, Variable output) {
    }

    /** Draws σ, ε and the mask for the batch starting at global sample {@code firstSample} (see {@link #loss}). */
    public Draw draw(Graph g, MicroDiT model, int[] latentShape, long seed, long firstSample) {
        int n = latentShape[0];
        Tensor noise = g.output(latentShape);
        long perSample = noise.numel() / n;
        double[] sigma = new double[n];
        for (int i = 0; i < n; i++) {
            sigma[i] = edm.sigmaFromNormal(Philox.normal(seed, STREAM_SIGMA, firstSample + i));
        }
        g.backend().normal(seed, STREAM_NOISE, firstSample * perSample, noise);
        TokenMask mask = mode == MaskingMode.NONE ? null : TokenMask.sample(g.backend(), g.scope(), n,
                model.config().tokens(), maskRatio, seed, STREAM_MASK, firstSample * model.config().tokens());
        return new Draw(sigma, noise, mask);
    }

    /**
     * The loss with explicit random inputs, for comparing engines on one batch: σ [N], unit noise ε (n = σ·ε), the
     * mask (null for none; ignored when this objective does not mask) and the captions as given (no dropout).
     */
    public Terms terms(Graph g, MicroDiT model, Tensor latents, Tensor captions, double[] sigma, Tensor noise,
                       TokenMask mask) {
        int n = latents.dim(0);
        if (sigma.length != n || !noise.sameShape(latents)) {
            throw new IllegalArgumentException("EDM loss: need " + n + " sigmas and noise shaped like the latents "
                    + latents.describe() + ", got " + sigma.length + " sigmas and noise " + noise.describe());
        }
        int perSample = Math.toIntExact(latents.numel() / n);
        Backend be = g.backend();
        float[] perSampleValues = new float[SCALINGS * n];
        for (int i = 0; i < n; i++) {
            double s = sigma[i];
            perSampleValues[SIGMA * n + i] = (float) s;
            perSampleValues[C_IN * n + i] = (float) edm.cIn(s);
            perSampleValues[C_SKIP * n + i] = (float) edm.cSkip(s);
            perSampleValues[C_OUT * n + i] = (float) edm.cOut(s);
            perSampleValues[C_NOISE * n + i] = (float) edm.cNoise(s);
            perSampleValues[LOSS_WEIGHT * n + i] = (float) edm.lossWeight(s);
        }
        Tensor scalings = g.output(SCALINGS, n);
        be.write(scalings, perSampleValues);
        // Per-sample scalings of [N, C·H·W] latents as gated residuals x + gate·f with one column (gate [N, 1]):
        // x0 + σ·ε, c_in·(x0 + σ·ε) and c_skip·(x0 + σ·ε) from zero plus gate·f, c_out spread as 0·(1 + c_out) + c_out.
        Tensor zero = g.allocate(n, perSample, 1);
        Tensor noisy = g.output(n, perSample, 1);
        Tensor input = g.output(latents.shape());
        Tensor skip = g.output(latents.shape());
        Tensor cOut = g.output(latents.shape());
        be.gatedResidual(latents.reshape(n, perSample, 1), column(scalings, SIGMA), noise.reshape(n, perSample, 1),
                noisy);
        be.gatedResidual(zero, column(scalings, C_IN), noisy, input.reshape(n, perSample, 1));
        be.gatedResidual(zero, column(scalings, C_SKIP), noisy, skip.reshape(n, perSample, 1));
        be.modulate(zero, column(scalings, C_OUT), column(scalings, C_OUT), cOut.reshape(n, perSample, 1));
        Tensor cNoise = scalings.rows(C_NOISE, 1).reshape(n);
        Tensor weight = scalings.rows(LOSS_WEIGHT, 1).reshape(n);
        TokenMask used = mode == MaskingMode.NONE ? null : mask;
        Variable f = model.forward(g, g.constant(input), cNoise, g.constant(captions), used, mode);
        Variable denoised = ElementwiseFunctions.add(g, ElementwiseFunctions.mul(g, f, g.constant(cOut)),
                g.constant(skip));
        Variable loss = LossFunctions.edmLoss(g, denoised, latents, weight, used == null ? null : used.removed(),
                model.config().patchSize());
        return new Terms(loss, f);
    }

    /** Row {@code row} of the per-sample scalings [SCALINGS, N] as a gate [N, 1]. */
    private static Tensor column(Tensor scalings, int row) {
        return scalings.rows(row, 1).reshape(scalings.dim(1), 1);
    }

    private Tensor dropCaptions(Graph g, Tensor captions, long seed, long firstSample) {
        if (captionDropout == 0) {
            return captions;
        }
        Tensor copy = g.output(captions.shape());
        g.backend().copy(captions, copy);
        int n = captions.dim(0);
        long perSample = captions.numel() / n;
        for (int i = 0; i < n; i++) {
            if (Philox.uniform(seed, STREAM_CAPTION_DROP, firstSample + i) < captionDropout) {
                g.backend().fill(copy.rows(i, 1), 0f);
            }
        }
        return copy;
    }
}
