package io.microdit.model;

import io.microdit.autograd.ActivationFunctions;
import io.microdit.autograd.ElementwiseFunctions;
import io.microdit.autograd.Graph;
import io.microdit.autograd.Recompute;
import io.microdit.autograd.Recomputation;
import io.microdit.autograd.TokenFunctions;
import io.microdit.autograd.Variable;
import io.microdit.backend.Backend;
import io.microdit.nn.CaptionRefiner;
import io.microdit.nn.DiTBlock;
import io.microdit.nn.LayerNorm;
import io.microdit.nn.Linear;
import io.microdit.nn.Mlp;
import io.microdit.nn.ParameterStore;
import io.microdit.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;

/**
 * MicroDiT as the official {@code DiT.forward_without_cfg}: patch embedding + 2-D sin-cos positions, timestep
 * embedder, caption projection and refiner, pooled caption MLP, patch-mixer over all tokens, (deferred) masking,
 * the layer-wise scaled backbone with expert-choice MoE, the final layer, zero mask tokens and unpatchify.
 * It returns F, the raw network output; EDM preconditioning is applied around it.
 */
public final class MicroDiT {
    private final MicroDiTConfig config;
    private final ParameterStore parameters;
    private final Backend backend;
    private final Tensor positionEmbedding;
    private final Linear patchEmbedding;
    private final Linear timestep1;
    private final Linear timestep2;
    private final Mlp captionProjection;
    private final CaptionRefiner captionRefiner;
    private final Mlp pooledCaption;
    private final List<DiTBlock> mixer = new ArrayList<>();
    private final WidthMap mapIn;
    private final WidthMap mapOut;
    private final WidthMap mapCaption;
    private final List<DiTBlock> backbone = new ArrayList<>();
    private final LayerNorm finalNorm;
    private final Linear finalModulation;
    private final Linear finalLinear;

    /** LN + Linear between the backbone width and the mixer width (absent when they are equal). */
    private record WidthMap(LayerNorm norm, Linear linear) {
        Variable forward(Graph g, Variable x) {
            return linear.forward(g, norm.forward(g, x, g.matmulOperandType()));
        }

        /** {@link #forward} of the rows of x that ids keep, the norm reading them in place (no gathered copy). */
        Variable forwardGathered(Graph g, Variable x, Tensor ids) {
            return linear.forward(g, norm.forwardGathered(g, x, ids, g.matmulOperandType()));
        }
    }

    /**
     * Builds the modules with zero-filled parameters in {@code parameters}, which must live in {@code backend}'s
     * memory (a scope from {@code backend.scope}); see {@link Initialization}.
     */
    public MicroDiT(MicroDiTConfig config, ParameterStore parameters, Backend backend) {
        this.config = config;
        this.parameters = parameters;
        this.backend = backend;
        MicroDiTConfig c = config;
        int d = c.dim();
        double eps = c.normEps();
        patchEmbedding = linearWithWeightShape(parameters, "x_embedder.proj", d, c.inChannels(), c.patchSize());
        timestep1 = new Linear(parameters, "t_embedder.mlp.0", MicroDiTConfig.FREQUENCY_EMBEDDING_SIZE, d, true);
        timestep2 = new Linear(parameters, "t_embedder.mlp.2", d, d, true);
        captionProjection = new Mlp(parameters, "y_embedder.y_proj", c.captionChannels(), d, d, eps);
        captionRefiner = new CaptionRefiner(parameters, "y_emb_preprocess", d, c.headDim(),
                ParameterLayout.swigluHidden(d, 4.0, c.multipleOf()), c.useBias(), eps);
        pooledCaption = new Mlp(parameters, "pooled_y_emb_process", d, d, d, eps);
        for (BlockShape b : c.mixerBlocks()) {
            mixer.add(block(parameters, "patch_mixer." + b.index(), b, c));
        }
        if (c.hasMixerMaps()) {
            int m = c.mixerDim();
            mapIn = map(parameters, "patch_mixer_map_xin", d, m, c);
            mapOut = map(parameters, "patch_mixer_map_xout", m, d, c);
            mapCaption = map(parameters, "patch_mixer_map_y", d, m, c);
        } else {
            mapIn = mapOut = mapCaption = null;
        }
        for (BlockShape b : c.backboneBlocks()) {
            backbone.add(block(parameters, "blocks." + b.index(), b, c));
        }
        finalLinear = new Linear(parameters, "final_layer.linear", d, c.patchFeatures(), true);
        finalModulation = new Linear(parameters, "final_layer.adaLN_modulation.1", d, 2 * d, true);
        finalNorm = new LayerNorm(parameters, "final_layer.norm_final", d, eps);
        positionEmbedding = parameters.scope().zeros(c.tokens(), d);
        backend.positionEmbedding2d(c.gridSize(), c.gridSize(), (float) c.posInterpScale(), positionEmbedding);
    }

    private static Linear linearWithWeightShape(ParameterStore store, String prefix, int out, int channels, int p) {
        return Linear.of(store.create(prefix + ".weight", out, channels, p, p), store.create(prefix + ".bias", out));
    }

    private static DiTBlock block(ParameterStore store, String prefix, BlockShape b, MicroDiTConfig c) {
        return new DiTBlock(store, prefix, b.dim(), b.headDim(), b.attentionWidth(), b.ffnHidden(),
                b.moe() ? c.numExperts() : 0, c.expertCapacity(), c.dim(), c.useBias(), c.normEps());
    }

    private static WidthMap map(ParameterStore store, String prefix, int in, int out, MicroDiTConfig c) {
        return new WidthMap(new LayerNorm(store, prefix + ".0", in, c.normEps()),
                new Linear(store, prefix + ".1", in, out, c.useBias()));
    }

    /** The architecture this model was built from. */
    public MicroDiTConfig config() {
        return config;
    }

    /**
     * The model's parameters with their official names; the caller that created the model closes this store to free
     * them.
     */
    public ParameterStore parameters() {
        return parameters;
    }

    /** The backend whose memory holds the parameters (for copies to and from the host). */
    public Backend backend() {
        return backend;
    }

    /** The fixed position embedding [T, D] (the {@code pos_embed} buffer). */
    public Tensor positionEmbedding() {
        return positionEmbedding;
    }

    /**
     * F(x, c_noise, y).
     *
     * @param x       the preconditioned noisy latents c_in·(x0 + n) [N, C, H, W]
     * @param cNoise  ln(σ)/4 per sample [N]
     * @param caption caption embeddings [N, L, caption_channels]
     * @param mask    the kept tokens, or null for no masking
     * @param mode    where the mask applies (ignored when mask is null)
     * @return F [N, C, H, W]; removed tokens' outputs are zero
     */
    public Variable forward(Graph g, Variable x, Tensor cNoise, Variable caption, TokenMask mask, MaskingMode mode) {
        MicroDiTConfig c = config;
        int n = x.dim(0);
        boolean masked = mask != null && mode != MaskingMode.NONE;
        Variable tokens = patchEmbedding.forward(g, TokenFunctions.patchify(g, x, c.patchSize()));
        tokens = ElementwiseFunctions.add(g, tokens, g.constant(positionEmbedding));

        Tensor frequencies = g.output(n, MicroDiTConfig.FREQUENCY_EMBEDDING_SIZE);
        g.backend().timestepEmbedding(cNoise, frequencies);
        Variable time = timestep2.forward(g, ActivationFunctions.gelu(g,
                timestep1.forward(g, g.constant(frequencies)), true));

        Variable y = captionRefiner.forward(g, captionProjection.forward(g, caption));
        Variable condition = ElementwiseFunctions.add(g, time,
                pooledCaption.forward(g, TokenFunctions.meanTokens(g, y)));
        Variable activated = ActivationFunctions.gelu(g, condition, true);

        if (masked && mode == MaskingMode.NAIVE) {
            tokens = TokenFunctions.gatherRows(g, tokens, mask.keepIds());
        }
        if (!mixer.isEmpty()) {
            Variable mixerTokens = mapIn == null ? tokens : mapIn.forward(g, tokens);
            Variable mixerCaption = mapCaption == null ? y : mapCaption.forward(g, y);
            tokens = forward(g, mixer, mixerTokens, mixerCaption, activated, null).x();
        }
        // The map out of the mixer's width comes after masking, as in the official code, to save compute; its norm
        // then reads the kept rows in place.
        if (masked && mode == MaskingMode.DEFERRED) {
            tokens = mapOut != null ? mapOut.forwardGathered(g, tokens, mask.keepIds())
                    : TokenFunctions.gatherRows(g, tokens, mask.keepIds());
        } else if (mapOut != null) {
            tokens = mapOut.forward(g, tokens);
        }
        Supplier<DiTBlock.NextNorm> finalInput = () -> {
            Variable[] shiftScale = ElementwiseFunctions.chunk(g, finalModulation.forward(g, activated), 2);
            return new DiTBlock.NextNorm(finalNorm, shiftScale[0], shiftScale[1], g.matmulOperandType());
        };
        DiTBlock.Input last = forward(g, backbone, tokens, y, activated, finalInput);
        Variable normed = last.normed();
        if (normed == null) {
            DiTBlock.NextNorm norm = finalInput.get();
            normed = norm.norm().forwardModulated(g, last.x(), norm.shift(), norm.scale(), norm.outType());
        }
        Variable out = finalLinear.forward(g, normed);
        if (masked) {
            out = TokenFunctions.scatterRows(g, out, mask.keepIds(), c.tokens());
        }
        return TokenFunctions.unpatchify(g, out, c.patchSize(), c.inChannels(), x.dim(2), x.dim(3));
    }

    /**
     * The blocks in order. Recomputed blocks (when the graph asks for it) run one by one. Otherwise each block's
     * last residual add is fused with the next block's norm1, and the last block's with {@code after} (the
     * modulated norm that follows the blocks, made just before the last block: its adaLN then comes after every
     * block's on the tape, as the separate ops had it, so their gradients add into c's in the same order); the
     * result then carries its normed rows.
     */
    private static DiTBlock.Input forward(Graph g, List<DiTBlock> blocks, Variable x, Variable y, Variable activated,
                                          Supplier<DiTBlock.NextNorm> after) {
        if (g.recomputation() == Recomputation.BLOCK) {
            for (DiTBlock block : blocks) {
                x = Recompute.apply(g, (graph, in) -> block.forward(graph, in[0], in[1], in[2]), x, y, activated);
            }
            return new DiTBlock.Input(x, null);
        }
        DiTBlock.Input in = new DiTBlock.Input(x, null);
        Variable[] modulation = blocks.isEmpty() ? null : blocks.get(0).modulation(g, activated);
        for (int i = 0; i < blocks.size(); i++) {
            Variable[] nextModulation = i + 1 < blocks.size() ? blocks.get(i + 1).modulation(g, activated) : null;
            DiTBlock.NextNorm next = nextModulation != null ? blocks.get(i + 1).inputNorm(g, nextModulation)
                    : after != null ? after.get() : null;
            in = blocks.get(i).forward(g, in, modulation, y, next);
            modulation = nextModulation;
        }
        return in;
    }

    /**
     * A model whose parameters are allocated (zero-filled, as any new tensor) but not given initial values: for
     * planning a step's memory and launches, where drawing 1.16 billion initial values on the host would cost more
     * than the plan (bench-step --plan-only, under a dry-run trace that skips even the zero-fill).
     */
    public static MicroDiT forPlanning(MicroDiTConfig config, Backend backend) {
        ParameterStore store = new ParameterStore(backend.scope("parameters:" + config.name()));
        try {
            return new MicroDiT(config, store, backend);
        } catch (RuntimeException e) {
            store.close();
            throw e;
        }
    }

    /** Allocates a model's parameters (in their own scope of the backend) and initialises them as the official code. */
    public static MicroDiT create(MicroDiTConfig config, long seed, Backend backend) {
        ParameterStore store = new ParameterStore(backend.scope("parameters:" + config.name()));
        try {
            MicroDiT model = new MicroDiT(config, store, backend);
            Initialization.initialize(store, config, seed, backend);
            return model;
        } catch (RuntimeException e) {
            store.close();
            throw e;
        }
    }
}
