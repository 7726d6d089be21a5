package io.microdit.cli;

import static io.microdit.cli.CliRun.run;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.cli.CliRun.Result;
import io.microdit.io.Png;
import io.microdit.io.Safetensors;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The commands end to end on tiny configs (real Fashion-MNIST, a model of 150 K parameters). */
class CliSmokeTest {
    @TempDir
    Path temp;

    private static final String TINY_MODEL = """
            {"name": "tiny-fashion", "input_size": 32, "patch_size": 8, "in_channels": 1, "dim": 32, "depth": 2,
             "head_dim": 16, "multiple_of": 16, "caption_channels": 16, "qkv_multipliers": {"linspace": [0.5, 1.0]},
             "ffn_multipliers": {"linspace": [0.5, 4.0]}, "use_patch_mixer": true, "patch_mixer_depth": 2,
             "patch_mixer_dim": 32, "patch_mixer_mlp_ratio": 4.0, "use_bias": false, "num_experts": 4,
             "expert_capacity": 2.0}
            """;


    @Test
    void trainSampleAndResumeOnATinyConfig() throws IOException {
        Path model = Files.writeString(temp.resolve("tiny.json"), TINY_MODEL);
        Path training = Files.writeString(temp.resolve("train.json"), """
                {"model": "%s", "batch_size": 8, "micro_batch_size": 4, "sample_every": 3, "checkpoint_every": 2,
                 "sample_steps": 3, "stages": [
                   {"name": "masked", "steps": 3, "masking": "deferred", "mask_ratio": 0.5,
                    "lr": {"schedule": "cosine", "peak": 1e-3, "warmup": 1}},
                   {"name": "finetune", "steps": 2, "lr": {"peak": 3e-4}}]}
                """.formatted(model.toString().replace("\\", "\\\\")));
        Path runDirectory = temp.resolve("run");
        Result train = run("train", "--config", training.toString(), "--out", runDirectory.toString(), "--threads", "2");
        assertEquals(0, train.exit(), train.out() + train.err());
        assertEquals(5, Files.readAllLines(runDirectory.resolve("metrics.jsonl")).size());
        for (String file : new String[] {"config.json", "model.json", "loss.png", "samples/final.png",
            "samples/step-0000003.png", "checkpoints/latest", "checkpoints/step-0000005/model.safetensors",
            "checkpoints/step-0000005/optimizer.safetensors", "checkpoints/step-0000005/state.json"}) {
            assertTrue(Files.isRegularFile(runDirectory.resolve(file)), file + "\n" + train.out());
        }
        Png.Image grid = Png.read(runDirectory.resolve("samples/final.png"));
        assertEquals(1, grid.channels());
        assertTrue(grid.height() > grid.width(), "ten rows of four");

        Result again = run("train", "--config", training.toString(), "--out", runDirectory.toString());
        assertEquals(1, again.exit());
        assertTrue(again.err().contains("--resume"), again.err());

        Path png = temp.resolve("bags.png");
        Result sample = run("sample", "--ckpt", runDirectory.toString(), "--prompt", "a photo of a bag", "--n", "3",
                "--steps", "2", "--out", png.toString());
        assertEquals(0, sample.exit(), sample.out() + sample.err());
        assertEquals(2 + 2 * (32 * 2 + 2), Png.read(png).width(), "two columns of 32-px images at scale 2");

        Result resumed = run("train", "--out", runDirectory.toString(), "--resume");
        assertEquals(0, resumed.exit(), resumed.out() + resumed.err());
        assertTrue(resumed.out().contains("resumed from"), resumed.out());
    }

    /**
     * {@code train --backend cuda} (here on the emulator): the same run as on the CPU backend — the same losses
     * step by step, a checkpoint the CPU backend samples from — and {@code sample --backend cuda} from it.
     */
    @Test
    @org.junit.jupiter.api.Tag("emu")
    void trainOnTheCudaBackendFollowsTheCpuRun() throws IOException {
        Path model = Files.writeString(temp.resolve("tiny.json"), TINY_MODEL);
        Path training = Files.writeString(temp.resolve("train.json"), """
                {"model": "%s", "batch_size": 4, "sample_every": 0, "checkpoint_every": 0, "sample_steps": 1,
                 "sample_guidance": 1, "stages": [
                   {"name": "masked", "steps": 3, "masking": "deferred", "mask_ratio": 0.5,
                    "lr": {"schedule": "cosine", "peak": 1e-3, "warmup": 1}}]}
                """.formatted(model.toString().replace("\\", "\\\\")));
        java.util.Map<String, java.util.List<String>> metrics = new java.util.HashMap<>();
        for (String backend : new String[] {"cpu", "cuda"}) {
            Path runDirectory = temp.resolve("run-" + backend);
            // One sample per class and one Heun step: sampling 40 images on the emulator took minutes.
            Result train = run("train", "--config", training.toString(), "--out", runDirectory.toString(),
                    "--backend", backend, "--final-samples", "1");
            assertEquals(0, train.exit(), train.out() + train.err());
            assertTrue(Files.isRegularFile(runDirectory.resolve("samples/final.png")), train.out());
            metrics.put(backend, Files.readAllLines(runDirectory.resolve("metrics.jsonl")));
        }
        assertTrue(metrics.get("cuda").size() == 3, metrics.get("cuda").toString());
        for (int i = 0; i < 3; i++) {
            double cpu = loss(metrics.get("cpu").get(i)), cuda = loss(metrics.get("cuda").get(i));
            assertEquals(cpu, cuda, 1e-4 * cpu, "loss at step " + (i + 1));
        }
        Path png = temp.resolve("cuda.png");
        Result sample = run("sample", "--ckpt", temp.resolve("run-cuda").toString(), "--prompt", "a photo of a bag",
                "--n", "2", "--steps", "1", "--cfg", "2", "--backend", "cuda", "--out", png.toString());
        assertEquals(0, sample.exit(), sample.out() + sample.err());
        Result bad = run("train", "--config", training.toString(), "--out", temp.resolve("bad").toString(),
                "--backend", "tpu");
        assertEquals(1, bad.exit());
        assertTrue(bad.err().contains("--backend must be cpu or cuda"), bad.err());
    }

    private static double loss(String metricsLine) throws io.microdit.io.JsonException {
        @SuppressWarnings("unchecked")
        java.util.Map<String, Object> line = (java.util.Map<String, Object>) io.microdit.io.Json.parse(metricsLine);
        return ((Number) line.get("loss")).doubleValue();
    }

    @Test
    void exportInitThenForwardGivesTheSampleShape() throws IOException {
        Path model = Files.writeString(temp.resolve("tiny.json"), TINY_MODEL);
        Path weights = temp.resolve("w.safetensors");
        assertEquals(0, run("export-init", "--config", model.toString(), "--seed", "4", "--out", weights.toString())
                .exit());
        Path inputs = temp.resolve("in.safetensors");
        Path out = temp.resolve("out.safetensors");
        try (MemoryScope scope = new MemoryScope("cli")) {
            Random random = new Random(2);
            Safetensors.write(inputs, Map.of("x", TestData.uniform(scope, random, 2, 1, 32, 32),
                    "t", TestData.uniform(scope, random, 2), "y", TestData.uniform(scope, random, 2, 1, 5, 16)), Map.of());
            Result forward = run("forward", "--config", model.toString(), "--weights", weights.toString(),
                    "--inputs", inputs.toString(), "--out", out.toString());
            assertEquals(0, forward.exit(), forward.out() + forward.err());
            Tensor sample = Safetensors.readTensor(out, "sample", scope);
            assertArrayEquals(new int[] {2, 1, 32, 32}, sample.shape());
            Safetensors.write(inputs, Map.of("x", scope.zeros(2, 3, 32, 32), "t", scope.zeros(2),
                    "y", scope.zeros(2, 1, 5, 16)), Map.of());
            Result bad = run("forward", "--config", model.toString(), "--weights", weights.toString(),
                    "--inputs", inputs.toString(), "--out", out.toString());
            assertEquals(1, bad.exit());
            assertTrue(bad.err().contains("input 'x'"), bad.err());
        }
        Result params = run("params", "--config", "microdit-xl-2");
        assertTrue(params.out().startsWith("microdit-xl-2: 1165442320 parameters"), params.out());
        Result unknown = run("params", "--config", "no-such-model");
        assertEquals(1, unknown.exit());
        assertTrue(unknown.err().contains("microdit-tiny-2"), unknown.err());
    }
}
