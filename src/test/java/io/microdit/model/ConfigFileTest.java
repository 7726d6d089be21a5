package io.microdit.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ConfigFileTest {
    @TempDir
    Path temp;

    @Test
    void officialFieldsWithLinspaceGiveTheOfficialModel() throws IOException {
        Path file = Files.writeString(temp.resolve("tiny.json"), """
                {"input_size": 32, "patch_size": 2, "in_channels": 4, "dim": 512, "depth": 16, "head_dim": 32,
                 "multiple_of": 256, "caption_channels": 1024, "pos_interp_scale": 1.0, "norm_eps": 1e-6,
                 "depth_init": true, "qkv_multipliers": {"linspace": [0.5, 1.0]},
                 "ffn_multipliers": {"linspace": [0.5, 4.0]}, "use_patch_mixer": true, "patch_mixer_depth": 4,
                 "patch_mixer_dim": 512, "patch_mixer_qkv_ratio": 1.0, "patch_mixer_mlp_ratio": 4.0,
                 "use_bias": false, "num_experts": 8, "expert_capacity": 2.0, "experts_every_n": 2}
                """);
        MicroDiTConfig c = ConfigFile.read(file);
        assertEquals("tiny", c.name());
        assertEquals(200_692_752L, ParameterLayout.of(c).total());
        assertArrayEquals(MicroDiTConfigs.tiny2().qkvMultipliers(), c.qkvMultipliers());
    }

    @Test
    void roundTripAndBaseWithOverrides() throws IOException {
        MicroDiTConfig xl = MicroDiTConfigs.xl2();
        Path file = Files.writeString(temp.resolve("xl.json"), ConfigFile.toJson(xl));
        assertEquals(xl, ConfigFile.read(file));
        Path derived = Files.writeString(temp.resolve("d.json"), "{\"base\": \"microdit-tiny-2\", \"depth\": 8,"
                + " \"name\": \"tiny-8\"}");
        MicroDiTConfig c = ConfigFile.read(derived);
        assertEquals("tiny-8", c.name());
        assertEquals(8, c.depth());
        assertEquals(8, c.qkvMultipliers().length);
        assertEquals(0.5, c.qkvMultipliers()[0]);
        assertEquals(1.0, c.qkvMultipliers()[7]);
        assertEquals(512, c.dim());
    }

    @Test
    void errorsNameTheFileAndTheField() throws IOException {
        assertError("{\"dimm\": 3}", "unknown config field 'dimm'");
        assertError("{\"dim\": \"big\"}", "'dim' must be an integer");
        assertError("{\"dim\": 100, \"head_dim\": 64}", "'dim'");
        assertError("{\"qkv_multipliers\": {\"linspace\": [1]}}", "'qkv_multipliers'");
        assertError("[1, 2]", "JSON object");
        assertError("{\"depth\": 4, \"qkv_multipliers\": [0.5, 0.7, 1.0], \"ffn_multipliers\": [1, 2, 4]}",
                "'qkv_multipliers'");
        assertError("{\"dim\": 512, \"head_dim\": 96}", "'dim' must be a positive multiple of head_dim 96");
        assertError("{\"patch_mixer_dim\": 100, \"head_dim\": 64, \"dim\": 512}", "'patch_mixer_dim'");
        assertError("{\"dim\": 512,}", "at character 12");
        assertError("{\"base\": \"nope\"}", "unknown built-in config 'nope'");
        IOException e = assertThrows(IOException.class, () -> ConfigFile.resolve("no-such-config"));
        assertTrue(e.getMessage().contains("microdit-xl-2"), e.getMessage());
    }

    private void assertError(String json, String fragment) throws IOException {
        Path file = Files.writeString(Files.createTempFile(temp, "bad", ".json"), json);
        IOException e = assertThrows(IOException.class, () -> ConfigFile.read(file));
        assertTrue(e.getMessage().contains(file.toString()) && e.getMessage().contains(fragment), e.getMessage());
    }
}
