package io.microdit.model;

import io.microdit.autograd.Parameter;
import io.microdit.nn.ParameterStore;
import io.microdit.random.Philox;
import io.microdit.tensor.Tensor;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The official initialisation ({@code DiT.initialize_weights} and the blocks' {@code custom_init}), drawn from
 * Philox: parameter number i (in model order) uses stream i of the seed, so weights are reproducible on any
 * backend. PyTorch's {@code trunc_normal_} with its default bounds ±2 is a plain normal at std ≤ 0.02 (a draw
 * beyond 100 standard deviations never happens), so normals are used as they come.
 */
public final class Initialization {
    private static final Pattern BLOCK = Pattern.compile("(blocks|patch_mixer)\\.(\\d+)\\.(.+)");
    private static final double STD = 0.02;

    private Initialization() {
    }

    public static void initialize(ParameterStore store, MicroDiTConfig config, long seed) {
        int index = 0;
        for (Parameter p : store.all()) {
            initialize(p, config, seed, index++);
        }
    }

    private static void initialize(Parameter p, MicroDiTConfig c, long seed, long stream) {
        String name = p.name();
        Tensor t = p.value();
        if (name.equals("x_embedder.proj.bias")) {
            // A conv bias keeps PyTorch's default init: U(±1/sqrt(fan_in)).
            uniform(t, 1 / Math.sqrt(c.inChannels() * c.patchSize() * c.patchSize()), seed, stream);
        } else if (name.endsWith(".bias")) {
            t.fill(0f);
        } else if (isLayerNormWeight(name)) {
            t.fill(1f);
        } else if (name.equals("final_layer.linear.weight") || name.equals("final_layer.adaLN_modulation.1.weight")
                || name.equals("y_emb_preprocess.attn.proj.weight") || name.equals("y_emb_preprocess.mlp.w3.weight")
                || name.endsWith(".adaLN_modulation.1.weight")) {
            t.fill(0f);
        } else if (name.startsWith("t_embedder.mlp.") || name.startsWith("pooled_y_emb_process.fc")
                || name.startsWith("y_embedder.y_proj.fc") || name.startsWith("y_emb_preprocess.")) {
            normal(t, STD, seed, stream);
        } else {
            Matcher block = BLOCK.matcher(name);
            if (block.matches()) {
                initializeBlockWeight(t, block.group(3), blockStd(c, block.group(1), Integer.parseInt(block.group(2))),
                        seed, stream);
            } else {
                xavierUniform(t, seed, stream);
            }
        }
    }

    private static void initializeBlockWeight(Tensor t, String local, double outputStd, long seed, long stream) {
        switch (local) {
            case "attn.proj.weight", "cross_attn.proj.weight", "mlp.w2", "mlp.w2.weight", "mlp.w3.weight" ->
                    normal(t, outputStd, seed, stream);
            case "attn.qkv.weight", "cross_attn.q_linear.weight", "cross_attn.kv_linear.weight", "mlp.w1",
                 "mlp.w1.weight", "mlp.gate.weight" -> normal(t, STD, seed, stream);
            default -> xavierUniform(t, seed, stream);
        }
    }

    private static double blockStd(MicroDiTConfig c, String stack, int index) {
        return (stack.equals("blocks") ? c.backboneBlocks() : c.mixerBlocks()).get(index).initStd();
    }

    private static boolean isLayerNormWeight(String name) {
        return name.matches(".*\\.(norm|norm1|norm2|norm3|norm_final)\\.weight")
                || name.matches("patch_mixer_map_(xin|xout|y)\\.0\\.weight");
    }

    /** xavier_uniform on the weight read as [fan_out, fan_in]. */
    private static void xavierUniform(Tensor t, long seed, long stream) {
        int fanOut = t.dim(0);
        long fanIn = t.numel() / fanOut;
        uniform(t, Math.sqrt(6.0 / (fanIn + fanOut)), seed, stream);
    }

    private static void uniform(Tensor t, double bound, long seed, long stream) {
        float[] u = new float[Math.toIntExact(t.numel())];
        Philox.fillUniform(seed, stream, 0, u);
        for (int i = 0; i < u.length; i++) {
            u[i] = (float) ((2.0 * u[i] - 1.0) * bound);
        }
        t.copyFrom(u);
    }

    private static void normal(Tensor t, double std, long seed, long stream) {
        float[] z = new float[Math.toIntExact(t.numel())];
        Philox.fillNormal(seed, stream, 0, z);
        for (int i = 0; i < z.length; i++) {
            z[i] = (float) (z[i] * std);
        }
        t.copyFrom(z);
    }
}
