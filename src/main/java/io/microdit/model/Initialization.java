package io.microdit.model;

import io.microdit.autograd.Parameter;
import io.microdit.backend.Backend;
import io.microdit.nn.ParameterStore;
import io.microdit.random.Philox;
import io.microdit.tensor.Tensor;
import java.util.Arrays;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The official initialisation ({@code DiT.initialize_weights} and the blocks' {@code custom_init}), drawn from
 * Philox: parameter number i (in model order) uses stream i of the seed, so weights are reproducible on any
 * backend. PyTorch's {@code trunc_normal_} with its default bounds ±2 is a plain normal at std ≤ 0.02 (a draw
 * beyond 100 standard deviations never happens), so normals are used as they come. Values are drawn on the host
 * and written to the backend once per parameter.
 */
public final class Initialization {
    private static final Pattern BLOCK = Pattern.compile("(blocks|patch_mixer)\\.(\\d+)\\.(.+)");
    private static final double STD = 0.02;

    private Initialization() {
    }

    /**
     * Overwrites every parameter of {@code store} (a model of {@code config}, in model order) with its official initial
     * values drawn from {@code seed}, one host-to-backend write per parameter.
     */
    public static void initialize(ParameterStore store, MicroDiTConfig config, long seed, Backend backend) {
        int index = 0;
        for (Parameter p : store.all()) {
            Tensor t = p.value();
            float[] values = new float[Math.toIntExact(t.numel())];
            initialize(p.name(), t, values, config, seed, index++);
            backend.write(t, values);
        }
    }

    /** Fills {@code values} (zeros on entry) with the initial values of the parameter {@code name} shaped as t. */
    private static void initialize(String name, Tensor t, float[] values, MicroDiTConfig c, long seed, long stream) {
        if (name.equals("x_embedder.proj.bias")) {
            // A conv bias keeps PyTorch's default init: U(±1/sqrt(fan_in)).
            uniform(values, 1 / Math.sqrt(c.inChannels() * c.patchSize() * c.patchSize()), seed, stream);
        } else if (name.endsWith(".bias")) {
            return; // zeros
        } else if (isLayerNormWeight(name)) {
            Arrays.fill(values, 1f);
        } else if (name.equals("final_layer.linear.weight") || name.equals("final_layer.adaLN_modulation.1.weight")
                || name.equals("y_emb_preprocess.attn.proj.weight") || name.equals("y_emb_preprocess.mlp.w3.weight")
                || name.endsWith(".adaLN_modulation.1.weight")) {
            return; // zeros
        } else if (name.startsWith("t_embedder.mlp.") || name.startsWith("pooled_y_emb_process.fc")
                || name.startsWith("y_embedder.y_proj.fc") || name.startsWith("y_emb_preprocess.")) {
            normal(values, STD, seed, stream);
        } else {
            Matcher block = BLOCK.matcher(name);
            if (block.matches()) {
                initializeBlockWeight(t, values, block.group(3),
                        blockStd(c, block.group(1), Integer.parseInt(block.group(2))), seed, stream);
            } else {
                xavierUniform(t, values, seed, stream);
            }
        }
    }

    private static void initializeBlockWeight(Tensor t, float[] values, String local, double outputStd, long seed,
                                              long stream) {
        switch (local) {
            case "attn.proj.weight", "cross_attn.proj.weight", "mlp.w2", "mlp.w2.weight", "mlp.w3.weight" ->
                    normal(values, outputStd, seed, stream);
            case "attn.qkv.weight", "cross_attn.q_linear.weight", "cross_attn.kv_linear.weight", "mlp.w1",
                 "mlp.w1.weight", "mlp.gate.weight" -> normal(values, STD, seed, stream);
            default -> xavierUniform(t, values, seed, stream);
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
    private static void xavierUniform(Tensor t, float[] values, long seed, long stream) {
        int fanOut = t.dim(0);
        long fanIn = t.numel() / fanOut;
        uniform(values, Math.sqrt(6.0 / (fanIn + fanOut)), seed, stream);
    }

    private static void uniform(float[] u, double bound, long seed, long stream) {
        Philox.fillUniform(seed, stream, 0, u);
        for (int i = 0; i < u.length; i++) {
            u[i] = (float) ((2.0 * u[i] - 1.0) * bound);
        }
    }

    private static void normal(float[] z, double std, long seed, long stream) {
        Philox.fillNormal(seed, stream, 0, z);
        for (int i = 0; i < z.length; i++) {
            z[i] = (float) (z[i] * std);
        }
    }
}
