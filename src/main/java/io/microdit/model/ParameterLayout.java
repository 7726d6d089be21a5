package io.microdit.model;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Every trainable parameter of a MicroDiT with its official state-dict name and shape, computed from the config
 * alone (nothing is allocated). Buffers ({@code pos_embed}, {@code mask_token}) are not parameters.
 */
public final class ParameterLayout {
    /** One parameter: official name, shape, and the top-level module it is counted under. */
    public record Entry(String name, int[] shape, String module) {
        /** The number of elements: the product of the shape. */
        public long count() {
            long n = 1;
            for (int d : shape) {
                n *= d;
            }
            return n;
        }
    }

    private final List<Entry> entries = new ArrayList<>();

    private ParameterLayout() {
    }

    /** The layout of a model of {@code c}, derived from the config alone (nothing is allocated). */
    public static ParameterLayout of(MicroDiTConfig c) {
        ParameterLayout layout = new ParameterLayout();
        int d = c.dim();
        int p = c.patchSize();
        layout.add("x_embedder", "x_embedder.proj.weight", d, c.inChannels(), p, p);
        layout.add("x_embedder", "x_embedder.proj.bias", d);
        layout.linear("t_embedder", "t_embedder.mlp.0", MicroDiTConfig.FREQUENCY_EMBEDDING_SIZE, d, true);
        layout.linear("t_embedder", "t_embedder.mlp.2", d, d, true);
        layout.linear("y_embedder", "y_embedder.y_proj.fc1", c.captionChannels(), d, true);
        layout.add("y_embedder", "y_embedder.y_proj.norm.weight", d);
        layout.linear("y_embedder", "y_embedder.y_proj.fc2", d, d, true);
        layout.captionRefiner(c);
        layout.linear("pooled_y_emb_process", "pooled_y_emb_process.fc1", d, d, true);
        layout.add("pooled_y_emb_process", "pooled_y_emb_process.norm.weight", d);
        layout.linear("pooled_y_emb_process", "pooled_y_emb_process.fc2", d, d, true);
        for (BlockShape block : c.mixerBlocks()) {
            layout.block("patch_mixer", "patch_mixer." + block.index(), block, d, c.numExperts(), c.useBias());
        }
        if (c.hasMixerMaps()) {
            int m = c.mixerDim();
            layout.add("patch_mixer_maps", "patch_mixer_map_xin.0.weight", d);
            layout.linear("patch_mixer_maps", "patch_mixer_map_xin.1", d, m, c.useBias());
            layout.add("patch_mixer_maps", "patch_mixer_map_xout.0.weight", m);
            layout.linear("patch_mixer_maps", "patch_mixer_map_xout.1", m, d, c.useBias());
            layout.add("patch_mixer_maps", "patch_mixer_map_y.0.weight", d);
            layout.linear("patch_mixer_maps", "patch_mixer_map_y.1", d, m, c.useBias());
        }
        for (BlockShape block : c.backboneBlocks()) {
            layout.block("blocks", "blocks." + block.index(), block, d, c.numExperts(), c.useBias());
        }
        layout.linear("final_layer", "final_layer.linear", d, c.patchFeatures(), true);
        layout.linear("final_layer", "final_layer.adaLN_modulation.1", d, 2 * d, true);
        layout.add("final_layer", "final_layer.norm_final.weight", d);
        return layout;
    }

    /** The caption refiner: a pre-LN attention + SwiGLU block at full width, mlp_ratio 4, no adaLN. */
    private void captionRefiner(MicroDiTConfig c) {
        int d = c.dim();
        String module = "y_emb_preprocess";
        add(module, "y_emb_preprocess.norm1.weight", d);
        linear(module, "y_emb_preprocess.attn.qkv", d, 3 * d, c.useBias());
        linear(module, "y_emb_preprocess.attn.proj", d, d, c.useBias());
        add(module, "y_emb_preprocess.norm2.weight", d);
        int hidden = swigluHidden(c.dim(), 4.0, c.multipleOf());
        linear(module, "y_emb_preprocess.mlp.w1", d, hidden, c.useBias());
        linear(module, "y_emb_preprocess.mlp.w2", d, hidden, c.useBias());
        linear(module, "y_emb_preprocess.mlp.w3", hidden, d, c.useBias());
    }

    static int swigluHidden(int dim, double mlpRatio, int multipleOf) {
        int nominal = (int) (2.0 * (int) (dim * mlpRatio) / 3.0);
        return multipleOf * ((nominal + multipleOf - 1) / multipleOf);
    }

    private void block(String module, String prefix, BlockShape b, int pooledDim, int experts, boolean bias) {
        int w = b.dim();
        add(module, prefix + ".norm1.weight", w);
        linear(module, prefix + ".attn.qkv", w, 3 * b.attentionWidth(), bias);
        linear(module, prefix + ".attn.proj", b.attentionWidth(), w, bias);
        linear(module, prefix + ".cross_attn.q_linear", w, w, bias);
        linear(module, prefix + ".cross_attn.kv_linear", w, 2 * w, bias);
        linear(module, prefix + ".cross_attn.proj", w, w, bias);
        add(module, prefix + ".norm2.weight", w);
        add(module, prefix + ".norm3.weight", w);
        if (b.moe()) {
            add(module, prefix + ".mlp.w1", experts, w, b.ffnHidden());
            add(module, prefix + ".mlp.w2", experts, b.ffnHidden(), w);
            add(module, prefix + ".mlp.gate.weight", experts, w);
        } else {
            linear(module, prefix + ".mlp.w1", w, b.ffnHidden(), bias);
            linear(module, prefix + ".mlp.w2", w, b.ffnHidden(), bias);
            linear(module, prefix + ".mlp.w3", b.ffnHidden(), w, bias);
        }
        linear(module, prefix + ".adaLN_modulation.1", pooledDim, 6 * w, true);
    }

    /** nn.Linear(in, out): weight [out, in], bias [out]. */
    private void linear(String module, String prefix, int in, int out, boolean bias) {
        add(module, prefix + ".weight", out, in);
        if (bias) {
            add(module, prefix + ".bias", out);
        }
    }

    private void add(String module, String name, int... shape) {
        entries.add(new Entry(name, shape, module));
    }

    /** Every parameter in model order, unmodifiable. */
    public List<Entry> entries() {
        return Collections.unmodifiableList(entries);
    }

    /** The model's parameter count, buffers excluded. */
    public long total() {
        long sum = 0;
        for (Entry e : entries) {
            sum += e.count();
        }
        return sum;
    }

    /** Parameter counts per top-level module, in model order. */
    public Map<String, Long> byModule() {
        Map<String, Long> out = new LinkedHashMap<>();
        for (Entry e : entries) {
            out.merge(e.module(), e.count(), Long::sum);
        }
        return out;
    }
}
