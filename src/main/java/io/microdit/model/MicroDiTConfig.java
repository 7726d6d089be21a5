package io.microdit.model;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A MicroDiT architecture, with the official {@code DiT} constructor's fields (snake_case names in JSON).
 * Derived shapes (attention widths, FFN widths, which blocks are MoE) follow the official rules exactly; see
 * {@link #backboneBlocks()} and {@link #mixerBlocks()}.
 *
 * @param qkvMultipliers per backbone block, or fewer values each repeated over depth/len blocks (as the code)
 * @param ffnMultipliers the same for the FFN width
 */
public record MicroDiTConfig(
        String name,
        int inputSize,
        int patchSize,
        int inChannels,
        int dim,
        int depth,
        int headDim,
        int multipleOf,
        int captionChannels,
        double posInterpScale,
        double normEps,
        boolean depthInit,
        double[] qkvMultipliers,
        double[] ffnMultipliers,
        boolean usePatchMixer,
        int patchMixerDepth,
        int patchMixerDim,
        double patchMixerQkvRatio,
        double patchMixerMlpRatio,
        boolean useBias,
        int numExperts,
        double expertCapacity,
        int expertsEveryN) {

    /**
     * This config at another latent size and position interpolation (the official 512-px stages rebuild the model
     * for 64×64 latents with pos_interp_scale 2.0; the weights are the same).
     */
    public MicroDiTConfig atResolution(String newName, int newInputSize, double newPosInterpScale) {
        return new MicroDiTConfig(newName, newInputSize, patchSize, inChannels, dim, depth, headDim, multipleOf,
                captionChannels, newPosInterpScale, normEps, depthInit, qkvMultipliers, ffnMultipliers, usePatchMixer,
                patchMixerDepth, patchMixerDim, patchMixerQkvRatio, patchMixerMlpRatio, useBias, numExperts,
                expertCapacity, expertsEveryN);
    }

    /** Size of the sinusoidal timestep embedding fed to the t-embedder MLP (official default). */
    public static final int FREQUENCY_EMBEDDING_SIZE = 512;

    /**
     * Copies the multiplier arrays; throws {@link IllegalArgumentException} naming the JSON field at fault for a size
     * that is not positive, an input size the patch does not divide, widths that are not multiples of the head width,
     * or multipliers that do not divide the depth.
     */
    public MicroDiTConfig {
        require(inputSize > 0 && patchSize > 0 && inputSize % patchSize == 0, "input_size",
                "a positive multiple of patch_size, got input_size " + inputSize + ", patch_size " + patchSize);
        require(inChannels > 0, "in_channels", "positive, got " + inChannels);
        require(headDim > 0 && dim > 0 && dim % headDim == 0, "dim", "a positive multiple of head_dim " + headDim
                + ", got " + dim);
        require(depth > 0, "depth", "positive, got " + depth);
        require(multipleOf > 0, "multiple_of", "positive, got " + multipleOf);
        require(captionChannels > 0, "caption_channels", "positive, got " + captionChannels);
        require(posInterpScale > 0, "pos_interp_scale", "positive, got " + posInterpScale);
        require(normEps > 0, "norm_eps", "positive, got " + normEps);
        require(qkvMultipliers != null && ffnMultipliers != null && qkvMultipliers.length == ffnMultipliers.length
                && qkvMultipliers.length > 0, "qkv_multipliers", "as many values as ffn_multipliers (at least one)");
        require(qkvMultipliers.length == depth || depth % qkvMultipliers.length == 0, "qkv_multipliers",
                "depth (" + depth + ") values or a divisor of depth, got " + qkvMultipliers.length);
        for (double m : qkvMultipliers) {
            require(m > 0, "qkv_multipliers", "positive values, got " + Arrays.toString(qkvMultipliers));
        }
        for (double m : ffnMultipliers) {
            require(m > 0, "ffn_multipliers", "positive values, got " + Arrays.toString(ffnMultipliers));
        }
        if (usePatchMixer) {
            require(patchMixerDepth > 0, "patch_mixer_depth", "positive when use_patch_mixer, got " + patchMixerDepth);
            require(patchMixerDim > 0 && patchMixerDim % headDim == 0, "patch_mixer_dim",
                    "a positive multiple of head_dim " + headDim + ", got " + patchMixerDim);
            require(patchMixerQkvRatio > 0 && patchMixerMlpRatio > 0, "patch_mixer_qkv_ratio",
                    "positive ratios for the patch-mixer");
        }
        require(numExperts > 0, "num_experts", "positive, got " + numExperts);
        require(expertCapacity > 0, "expert_capacity", "positive, got " + expertCapacity);
        require(expertsEveryN > 0, "experts_every_n", "positive, got " + expertsEveryN);
        qkvMultipliers = qkvMultipliers.clone();
        ffnMultipliers = ffnMultipliers.clone();
    }

    private static void require(boolean ok, String field, String expected) {
        if (!ok) {
            throw new IllegalArgumentException("config field '" + field + "' must be " + expected);
        }
    }

    /** A copy of the attention-width multipliers as given (see the record's {@code @param}). */
    @Override
    public double[] qkvMultipliers() {
        return qkvMultipliers.clone();
    }

    /** A copy of the FFN-width multipliers as given. */
    @Override
    public double[] ffnMultipliers() {
        return ffnMultipliers.clone();
    }

    /** Patches per side of the latent. */
    public int gridSize() {
        return inputSize / patchSize;
    }

    /** Tokens per image: (input_size / patch_size)². */
    public int tokens() {
        return gridSize() * gridSize();
    }

    /** Output features of a token: patch_size² · in_channels. */
    public int patchFeatures() {
        return patchSize * patchSize * inChannels;
    }

    /** Width of the mixer blocks (the backbone width when there is no mixer). */
    public int mixerDim() {
        return usePatchMixer ? patchMixerDim : dim;
    }

    /** Whether LN + Linear maps sit between the backbone width and the mixer width. */
    public boolean hasMixerMaps() {
        return usePatchMixer && patchMixerDim != dim;
    }

    /** The backbone's blocks with the layer-wise scaled widths; MoE in blocks i &lt; depth-1 with (i+1) % n == 0. */
    public List<BlockShape> backboneBlocks() {
        double[] qkv = perBlock(qkvMultipliers);
        double[] ffn = perBlock(ffnMultipliers);
        List<BlockShape> blocks = new ArrayList<>(depth);
        for (int i = 0; i < depth; i++) {
            boolean moe = i < depth - 1 && (i + 1) % expertsEveryN == 0;
            double initStd = depthInit ? 0.02 / Math.sqrt(2.0 * (i + 1)) : 0.02 / Math.sqrt(2.0 * depth);
            blocks.add(BlockShape.of(i, dim, headDim, qkv[i], ffn[i], multipleOf, moe, initStd));
        }
        return blocks;
    }

    /** The patch-mixer's blocks: fixed ratios; MoE in blocks i ≥ 1 with (i+1) % n == 0 (the last one included). */
    public List<BlockShape> mixerBlocks() {
        if (!usePatchMixer) {
            return List.of();
        }
        List<BlockShape> blocks = new ArrayList<>(patchMixerDepth);
        for (int i = 0; i < patchMixerDepth; i++) {
            boolean moe = i >= 1 && (i + 1) % expertsEveryN == 0;
            blocks.add(BlockShape.of(i, patchMixerDim, headDim, patchMixerQkvRatio, patchMixerMlpRatio, multipleOf,
                    moe, 0.02 / Math.sqrt(2.0 * depth)));
        }
        return blocks;
    }

    private double[] perBlock(double[] multipliers) {
        if (multipliers.length == depth) {
            return multipliers.clone();
        }
        double[] out = new double[depth];
        int perSplit = depth / multipliers.length;
        for (int i = 0; i < depth; i++) {
            out[i] = multipliers[i / perSplit];
        }
        return out;
    }

    /** numpy.linspace(start, stop, num): {@code i·step + start}, the last value exactly {@code stop}. */
    public static double[] linspace(double start, double stop, int num) {
        double[] out = new double[num];
        if (num == 1) {
            out[0] = start;
            return out;
        }
        double step = (stop - start) / (num - 1);
        for (int i = 0; i < num; i++) {
            out[i] = i * step + start;
        }
        out[num - 1] = stop;
        return out;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof MicroDiTConfig c && toString().equals(c.toString());
    }

    @Override
    public int hashCode() {
        return toString().hashCode();
    }

    @Override
    public String toString() {
        return "MicroDiTConfig[" + name + ", input_size=" + inputSize + ", patch_size=" + patchSize
                + ", in_channels=" + inChannels + ", dim=" + dim + ", depth=" + depth + ", head_dim=" + headDim
                + ", multiple_of=" + multipleOf + ", caption_channels=" + captionChannels
                + ", pos_interp_scale=" + posInterpScale + ", norm_eps=" + normEps + ", depth_init=" + depthInit
                + ", qkv_multipliers=" + Arrays.toString(qkvMultipliers)
                + ", ffn_multipliers=" + Arrays.toString(ffnMultipliers) + ", use_patch_mixer=" + usePatchMixer
                + ", patch_mixer_depth=" + patchMixerDepth + ", patch_mixer_dim=" + patchMixerDim
                + ", patch_mixer_qkv_ratio=" + patchMixerQkvRatio + ", patch_mixer_mlp_ratio=" + patchMixerMlpRatio
                + ", use_bias=" + useBias + ", num_experts=" + numExperts + ", expert_capacity=" + expertCapacity
                + ", experts_every_n=" + expertsEveryN + "]";
    }
}
