package io.microdit.cli;

import static io.microdit.cli.CliRun.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.cli.CliRun.Result;
import io.microdit.io.Json;
import io.microdit.io.JsonException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code metrics.jsonl} carries the host allocator's statistics and the minor page faults of every step. */
class TrainMetricsTest {
    @TempDir
    Path temp;

    @Test
    void everyStepReportsHostMemoryAndPageFaultsAndReservesNothingAfterWarmUp() throws IOException, JsonException {
        Path model = Files.writeString(temp.resolve("tiny.json"), """
                {"name": "tiny-fashion", "input_size": 32, "patch_size": 8, "in_channels": 1, "dim": 32, "depth": 2,
                 "head_dim": 16, "multiple_of": 16, "caption_channels": 16, "qkv_multipliers": {"linspace": [0.5, 1.0]},
                 "ffn_multipliers": {"linspace": [0.5, 4.0]}, "use_patch_mixer": true, "patch_mixer_depth": 2,
                 "patch_mixer_dim": 32, "patch_mixer_mlp_ratio": 4.0, "use_bias": false, "num_experts": 4,
                 "expert_capacity": 2.0}
                """);
        Path training = Files.writeString(temp.resolve("train.json"), """
                {"model": "%s", "batch_size": 8, "micro_batch_size": 4, "sample_every": 0, "checkpoint_every": 0,
                 "sample_steps": 1, "sample_guidance": 1, "stages": [
                   {"name": "masked", "steps": 6, "masking": "deferred", "mask_ratio": 0.5,
                    "lr": {"schedule": "cosine", "peak": 1e-3, "warmup": 1}}]}
                """.formatted(model.toString().replace("\\", "\\\\")));
        Path runDirectory = temp.resolve("run");
        Result train = run("train", "--config", training.toString(), "--out", runDirectory.toString(), "--threads", "2",
                "--final-samples", "1");
        assertEquals(0, train.exit(), train.out() + train.err());
        List<String> lines = Files.readAllLines(runDirectory.resolve("metrics.jsonl"));
        assertEquals(6, lines.size());
        long reservedAfterWarmUp = -1;
        for (String text : lines) {
            @SuppressWarnings("unchecked")
            Map<String, Object> line = (Map<String, Object>) Json.parse(text);
            long step = number(line, "step");
            assertTrue(number(line, "loss") >= 0 && line.containsKey("live_bytes"), text);
            assertTrue(number(line, "minor_faults") >= 0, text);
            assertTrue(number(line, "host_cache_hits") > 0, "every step reuses blocks, even the first: " + text);
            long reserved = number(line, "host_reserved_bytes");
            assertTrue(reserved >= number(line, "host_live_bytes") && number(line, "host_live_bytes") > 0, text);
            if (step == 2) {
                reservedAfterWarmUp = reserved;
            } else if (step >= 3) {
                assertEquals(0, number(line, "host_fresh_reservations"), text);
                assertEquals(reservedAfterWarmUp, reserved, text);
            }
        }
    }

    private static long number(Map<String, Object> line, String key) {
        assertTrue(line.get(key) instanceof Number, key + " in " + line);
        return ((Number) line.get(key)).longValue();
    }
}
