package io.microdit.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

class ParameterLayoutTest {

    @Test
    void officialConfigsHaveThePublishedParameterCounts() {
        assertEquals(1_165_442_320L, ParameterLayout.of(MicroDiTConfigs.xl2()).total());
        assertEquals(200_692_752L, ParameterLayout.of(MicroDiTConfigs.tiny2()).total());
    }

    @Test
    void perModuleBreakdownMatchesTheSpecification() {
        Map<String, Long> xl = ParameterLayout.of(MicroDiTConfigs.xl2()).byModule();
        assertEquals(17_408L, xl.get("x_embedder"));
        assertEquals(1_574_912L, xl.get("t_embedder"));
        assertEquals(2_100_224L, xl.get("y_embedder"));
        assertEquals(12_847_104L, xl.get("y_emb_preprocess"));
        assertEquals(2_100_224L, xl.get("pooled_y_emb_process"));
        assertEquals(184_084_992L, xl.get("patch_mixer"));
        assertEquals(2_362_112L, xl.get("patch_mixer_maps"));
        assertEquals(958_238_720L, xl.get("blocks"));
        assertEquals(2_116_624L, xl.get("final_layer"));
        Map<String, Long> tiny = ParameterLayout.of(MicroDiTConfigs.tiny2()).byModule();
        assertEquals(3_408_896L, tiny.get("y_emb_preprocess"));
        assertEquals(52_979_712L, tiny.get("patch_mixer"));
        assertFalse(tiny.containsKey("patch_mixer_maps"), "mixer width = D: the maps are Identity");
        assertEquals(141_922_304L, tiny.get("blocks"));
        assertEquals(534_032L, tiny.get("final_layer"));
    }

    @Test
    void xlBackboneWidthsFollowLayerWiseScaling() {
        List<BlockShape> blocks = MicroDiTConfigs.xl2().backboneBlocks();
        // heads and FFN hidden per block, from the specification's table (§1.4)
        int[] heads = {8, 10, 10, 10, 10, 10, 10, 12, 12, 12, 12, 12, 12, 12, 14, 14, 14, 14, 14, 14, 14, 16, 16, 16,
            16, 16, 16, 16};
        int[] hidden = {512, 768, 768, 1024, 768, 1280, 1024, 1536, 1280, 1792, 1280, 2048, 1536, 2304, 1792, 2560,
            1792, 2816, 2048, 3072, 2304, 3328, 2304, 3584, 2560, 3840, 2816, 2816};
        for (BlockShape b : blocks) {
            assertEquals(heads[b.index()], b.heads(), "heads of block " + b.index());
            assertEquals(hidden[b.index()], b.ffnHidden(), "FFN hidden of block " + b.index());
            assertEquals(b.index() % 2 == 1 && b.index() < 27, b.moe(), "MoE in block " + b.index());
            assertEquals(16, b.crossHeads());
            assertEquals(0.02 / Math.sqrt(2.0 * (b.index() + 1)), b.initStd(), 1e-15);
        }
        List<BlockShape> mixer = MicroDiTConfigs.xl2().mixerBlocks();
        assertEquals(6, mixer.size());
        for (BlockShape b : mixer) {
            assertEquals(12, b.heads());
            assertEquals(b.index() % 2 == 1, b.moe(), "mixer MoE in blocks 1, 3, 5 (the last included)");
            assertEquals(b.moe() ? 3072 : 2048, b.ffnHidden());
        }
    }

    @Test
    void namesAreTheOfficialStateDictNamesAndUnique() {
        ParameterLayout layout = ParameterLayout.of(MicroDiTConfigs.xl2());
        Set<String> names = new HashSet<>();
        for (ParameterLayout.Entry e : layout.entries()) {
            assertTrue(names.add(e.name()), "duplicate " + e.name());
        }
        for (String expected : List.of("x_embedder.proj.weight", "t_embedder.mlp.0.weight", "t_embedder.mlp.2.bias",
                "y_embedder.y_proj.norm.weight", "y_emb_preprocess.attn.qkv.weight", "y_emb_preprocess.mlp.w3.weight",
                "pooled_y_emb_process.norm.weight", "patch_mixer_map_xin.0.weight", "patch_mixer_map_y.1.weight",
                "patch_mixer.5.mlp.gate.weight", "blocks.1.mlp.w1", "blocks.27.mlp.w3.weight",
                "blocks.0.cross_attn.kv_linear.weight", "blocks.0.adaLN_modulation.1.bias",
                "final_layer.norm_final.weight", "final_layer.adaLN_modulation.1.weight")) {
            assertTrue(names.contains(expected), expected);
        }
        assertFalse(names.contains("pos_embed"), "buffers are not parameters");
    }

    @Test
    void badConfigFieldsAreNamed() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new MicroDiTConfig("bad", 32,
                2, 4, 100, 4, 64, 256, 1024, 1.0, 1e-6, true, new double[] {1}, new double[] {4}, false, 0, 0, 1, 4,
                false, 8, 2.0, 2));
        assertTrue(e.getMessage().contains("'dim'"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> MicroDiTConfigs.builtin("nope"));
        assertTrue(e.getMessage().contains("microdit-xl-2"), e.getMessage());
    }
}
