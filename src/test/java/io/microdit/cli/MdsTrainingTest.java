package io.microdit.cli;

import static io.microdit.cli.CliRun.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.cli.CliRun.Result;
import io.microdit.io.mds.MdsWriter;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code microdit train} on MDS latents ({@code "data": "mds"}), two streams, a tiny 4-channel model. */
class MdsTrainingTest {
    @TempDir
    Path temp;

    private static final String TINY_MODEL = """
            {"name": "tiny-latents", "input_size": 8, "patch_size": 2, "in_channels": 4, "dim": 32, "depth": 2,
             "head_dim": 16, "multiple_of": 16, "caption_channels": 16, "qkv_multipliers": {"linspace": [0.5, 1.0]},
             "ffn_multipliers": {"linspace": [0.5, 4.0]}, "use_patch_mixer": true, "patch_mixer_depth": 1,
             "patch_mixer_dim": 32, "patch_mixer_mlp_ratio": 4.0, "use_bias": false, "num_experts": 4,
             "expert_capacity": 2.0}
            """;

    private static void stream(Path folder, int samples, Random random) throws IOException {
        try (MdsWriter writer = new MdsWriter(folder, Map.of("caption", "str", "caption_latents", "bytes",
                "latents_64", "bytes"), null, List.of(), 0)) {
            for (int i = 0; i < samples; i++) {
                writer.write(Map.of("caption", "sample " + i, "caption_latents", halves(random, 5 * 16),
                        "latents_64", halves(random, 4 * 8 * 8)));
            }
        }
    }

    private static byte[] halves(Random random, int count) {
        byte[] b = new byte[2 * count];
        for (int i = 0; i < count; i++) {
            short h = Float.floatToFloat16((float) random.nextGaussian());
            b[2 * i] = (byte) h;
            b[2 * i + 1] = (byte) (h >> 8);
        }
        return b;
    }

    @Test
    void trainsOnTwoMdsStreams() throws IOException {
        Random random = new Random(8);
        stream(temp.resolve("s1"), 6, random);
        stream(temp.resolve("s2"), 3, random);
        Path model = Files.writeString(temp.resolve("tiny.json"), TINY_MODEL);
        Path training = Files.writeString(temp.resolve("train.json"), """
                {"model": "%s", "data": "mds", "caption_length": 5, "batch_size": 4, "sample_steps": 2,
                 "mds": {"streams": [{"local": "%s"}, {"local": "%s", "repeat": 2}]},
                 "stages": [{"name": "masked", "steps": 2, "masking": "deferred", "mask_ratio": 0.5,
                             "lr": {"peak": 1e-3}}]}
                """.formatted(model, temp.resolve("s1"), temp.resolve("s2")));
        Path runDirectory = temp.resolve("run");
        Result train = run("train", "--config", training.toString(), "--out", runDirectory.toString(), "--threads", "2");
        assertEquals(0, train.exit(), train.out() + train.err());
        assertTrue(train.out().contains("12 images"), train.out());
        assertTrue(train.out().contains("samples: none drawn: 4-channel latents"), train.out());
        assertEquals(2, Files.readAllLines(runDirectory.resolve("metrics.jsonl")).size());
        assertTrue(Files.readString(runDirectory.resolve("config.json")).contains("\"repeat\":2"),
                Files.readString(runDirectory.resolve("config.json")));
    }
}
