package io.microdit.model;

import io.microdit.autograd.MoeFunctions;

/**
 * The forward FLOPs of one image through MicroDiT, from the config's shapes alone (2 FLOPs per multiply-add):
 * every linear layer (patch embedding, timestep MLP, caption projection and refiner, pooled caption MLP, adaLN
 * modulations, attention projections, SwiGLU, the MoE router and experts, the width maps, the final layer) and
 * the attention products (self-attention 4·T²·width per block, cross-attention 4·T·L·width). The MoE counts at
 * capacity: each of E experts processes k = int(capacity·T/E) tokens, gathered by index (the official one-hot
 * einsum dispatch costs more and is not counted). Elementwise work (norms, activations, softmax, residual adds,
 * modulation) is left out, as in the specification's estimates; it is a few percent and not tensor-core work.
 *
 * <p>These are exactly the operations the CPU backend counts under {@code matmul} and {@code attention} in a
 * forward pass, so {@link #forward} equals those two counters divided by the batch size (tested).
 * Training costs 3× the forward (the backward pass is two products per forward product).
 */
public final class FlopModel {
    /** Length of the caption sequence the paper's text encoder emits (CLIP: 77 tokens). */
    public static final int CLIP_TOKENS = 77;

    private FlopModel() {
    }

    /**
     * Forward FLOPs per image by part.
     *
     * @param embedding the patch embedding, timestep MLP and the final layer
     * @param caption   the caption projection, refiner and pooled caption MLP (independent of the image size)
     * @param mixer     the patch-mixer blocks and the width maps around them
     * @param backbone  the backbone blocks
     */
    public record Breakdown(double embedding, double caption, double mixer, double backbone) {
        /** The forward FLOPs of one image over all four parts. */
        public double total() {
            return embedding + caption + mixer + backbone;
        }
    }

    /** Forward FLOPs per image with {@code captionLength} caption tokens at a mask ratio (0 = unmasked). */
    public static Breakdown forward(MicroDiTConfig c, int captionLength, double maskRatio, MaskingMode mode) {
        if (captionLength < 1) {
            throw new IllegalArgumentException("caption length must be positive, got " + captionLength);
        }
        int tokens = c.tokens();
        boolean masked = mode != MaskingMode.NONE && maskRatio > 0;
        int kept = masked ? TokenMask.keptTokens(tokens, maskRatio) : tokens;
        int d = c.dim();
        int patch = c.patchFeatures();
        long length = captionLength;

        double embedding = linear(tokens, patch, d)
                + linear(1, MicroDiTConfig.FREQUENCY_EMBEDDING_SIZE, d) + linear(1, d, d)
                + linear(1, d, 2 * d) + linear(kept, d, patch);

        int refinerHidden = ParameterLayout.swigluHidden(d, 4.0, c.multipleOf());
        double caption = linear(length, c.captionChannels(), d) + linear(length, d, d)
                + linear(length, d, 3 * d) + 4.0 * length * length * d + linear(length, d, d)
                + 3 * linear(length, d, refinerHidden)
                + 2 * linear(1, d, d);

        int mixerTokens = masked && mode == MaskingMode.NAIVE ? kept : tokens;
        double mixer = 0;
        for (BlockShape b : c.mixerBlocks()) {
            mixer += block(c, b, mixerTokens, length);
        }
        if (c.hasMixerMaps()) {
            int m = c.mixerDim();
            mixer += linear(mixerTokens, d, m) + linear(length, d, m) + linear(kept, m, d);
        }

        double backbone = 0;
        for (BlockShape b : c.backboneBlocks()) {
            backbone += block(c, b, kept, length);
        }
        return new Breakdown(embedding, caption, mixer, backbone);
    }

    /** Training FLOPs per image: forward plus backward, 3× the forward. */
    public static double training(MicroDiTConfig c, int captionLength, double maskRatio, MaskingMode mode) {
        return 3 * forward(c, captionLength, maskRatio, mode).total();
    }

    /** One DiT block over {@code tokens} image tokens and {@code length} caption tokens, per image. */
    static double block(MicroDiTConfig c, BlockShape b, int tokens, long length) {
        int d = b.dim();
        int width = b.attentionWidth();
        double flops = linear(1, c.dim(), 6 * d);                                    // adaLN modulation
        flops += linear(tokens, d, 3 * width) + 4.0 * tokens * tokens * width + linear(tokens, width, d);
        flops += linear(tokens, d, d) + linear(length, d, 2 * d) + 4.0 * tokens * length * d
                + linear(tokens, d, d);                                              // cross-attention
        if (b.moe()) {
            int k = MoeFunctions.tokensPerExpert(c.expertCapacity(), tokens, c.numExperts());
            flops += linear(tokens, d, c.numExperts()) + (double) c.numExperts() * 2 * linear(k, d, b.ffnHidden());
        } else {
            flops += 3 * linear(tokens, d, b.ffnHidden());
        }
        return flops;
    }

    private static double linear(long rows, int in, int out) {
        return 2.0 * rows * in * out;
    }

    /**
     * The config at another latent size, as the paper's 512-px stages: input_size and pos_interp_scale scale
     * together (32 → 64 with scale 2), so positions keep their 256-px spacing.
     */
    public static MicroDiTConfig atInputSize(MicroDiTConfig c, int inputSize) {
        double interpolation = c.posInterpScale() * inputSize / c.inputSize();
        return new MicroDiTConfig(c.name(), inputSize, c.patchSize(), c.inChannels(), c.dim(), c.depth(), c.headDim(),
                c.multipleOf(), c.captionChannels(), interpolation, c.normEps(), c.depthInit(), c.qkvMultipliers(),
                c.ffnMultipliers(), c.usePatchMixer(), c.patchMixerDepth(), c.patchMixerDim(),
                c.patchMixerQkvRatio(), c.patchMixerMlpRatio(), c.useBias(), c.numExperts(), c.expertCapacity(),
                c.expertsEveryN());
    }
}
