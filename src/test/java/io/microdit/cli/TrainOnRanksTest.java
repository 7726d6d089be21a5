package io.microdit.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.testing.FashionMnistSlice;
import io.microdit.testing.MpiLauncher;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code mpirun -np 2 microdit train}: one run on two ranks (skipped where Open MPI is not installed). */
class TrainOnRanksTest {
    @TempDir
    Path temp;

    private static final String TINY_MODEL = """
            {"name": "tiny-fashion", "input_size": 32, "patch_size": 8, "in_channels": 1, "dim": 32, "depth": 2,
             "head_dim": 16, "multiple_of": 16, "caption_channels": 16, "qkv_multipliers": {"linspace": [0.5, 1.0]},
             "ffn_multipliers": {"linspace": [0.5, 4.0]}, "use_patch_mixer": true, "patch_mixer_depth": 2,
             "patch_mixer_dim": 32, "patch_mixer_mlp_ratio": 4.0, "use_bias": false, "num_experts": 4,
             "expert_capacity": 2.0}
            """;

    private Path trainingConfig(String name, double peak) throws IOException {
        return trainingConfig(name, peak, "none", 16);
    }

    /**
     * Each rank and the single process train on the first images of Fashion-MNIST (a quick start-up each), with
     * micro-batches of half the global {@code batch}: one per rank.
     */
    private Path trainingConfig(String name, double peak, String sharding, int batch) throws IOException {
        Path model = temp.resolve("tiny.json");
        Path data = temp.resolve("fashion-mnist");
        if (!Files.exists(model)) {
            Files.writeString(model, TINY_MODEL);
            FashionMnistSlice.write(data, 256);
        }
        return Files.writeString(temp.resolve(name), """
                {"model": "%s", "data_dir": "%s", "batch_size": %d, "micro_batch_size": %d, "threads": 1,
                 "ema_decay": 0.9,
                 "sharding": "%s",
                 "sample_every": %d, "checkpoint_every": 2, "sample_steps": 2, "stages": [
                   {"name": "masked", "steps": 2, "masking": "deferred", "mask_ratio": 0.5,
                    "lr": {"schedule": "cosine", "peak": %s, "warmup": 1}},
                   {"name": "finetune", "steps": 1, "lr": {"peak": 3e-4}}]}
                """.formatted(model.toString().replace("\\", "\\\\"), data.toString().replace("\\", "\\\\"),
                        batch, batch / 2, sharding, sharding.equals("none") ? 0 : 1, peak));
    }

    @Test
    void twoRanksTrainTheSingleProcessRunAndOnlyRankZeroWrites() throws Exception {
        twoRanksEqualOneProcess("cpu", "none", 16);
    }

    /**
     * ZeRO-2: the ranks step their halves of the parameters and update their halves of the EMA; checkpoints gather
     * the moments and the EMA (at step 2 and 3), and so does rank 0's sample grid after each step.
     */
    @Test
    void twoShardedRanksTrainTheSingleProcessRun() throws Exception {
        twoRanksEqualOneProcess("cpu", "shard_grad_op", 16);
    }

    /**
     * The CUDA backend on the emulator: gradients staged through host buckets for MPI, the same run bit for bit
     * (NCCL and the emulator's mdt_comm_* are not built yet). A batch of 8, where the CPU cases take 16: the emulated
     * steps are most of the test's time (a single process: 19 s CPU at 16, 15 s at 8).
     */
    @Test
    @Tag("emu")
    void twoRanksOnTheEmulatedCudaBackendTrainTheSingleProcessRun() throws Exception {
        twoRanksEqualOneProcess("cuda", "none", 8);
    }

    private void twoRanksEqualOneProcess(String backend, String sharding, int batch) throws Exception {
        Path config = trainingConfig("train.json", 1e-3, sharding, batch);
        List<String> options = new ArrayList<>(List.of("train", "--config", config.toString(), "--final-samples",
                "1", "--backend", backend, "--precision", "f32"));
        if (backend.equals("cuda")) {
            options.addAll(List.of("--device", "emu"));
        }
        Path ranks = temp.resolve("ranks");
        List<String> rankArguments = new ArrayList<>(options);
        rankArguments.addAll(List.of("--out", ranks.toString()));
        MpiLauncher.Result result = MpiLauncher.run(2, 300, line -> { },
                List.of("-Dmicrodit.native.dir=" + System.getProperty("microdit.native.dir")),
                RankArgumentsMain.class, rankArguments.toArray(String[]::new));
        assertEquals(0, result.exitCode(), result.output());
        assertTrue(result.output().contains("ranks: 2 (MPI"), result.output());
        List<String> metrics = Files.readAllLines(ranks.resolve("metrics.jsonl"));
        assertEquals(3, metrics.size(), "one line per step, from rank 0 only:\n" + String.join("\n", metrics));
        assertTrue(metrics.getFirst().contains("\"ranks\":2"), metrics.getFirst());

        Path single = temp.resolve("single");
        List<String> singleArguments = new ArrayList<>(options);
        singleArguments.addAll(List.of("--out", single.toString()));
        PrintStream out = System.out;
        ByteArrayOutputStream captured = new ByteArrayOutputStream();
        int exit;
        try {
            System.setOut(new PrintStream(captured, true, StandardCharsets.UTF_8));
            exit = Main.run(singleArguments.toArray(String[]::new));
        } finally {
            System.setOut(out);
        }
        assertEquals(0, exit, captured.toString(StandardCharsets.UTF_8));
        for (String file : new String[] {"model.safetensors", "optimizer.safetensors", "ema.safetensors",
            "state.json"}) {
            Path checkpoint = Path.of("checkpoints", "step-0000003", file);
            assertArrayEquals(Files.readAllBytes(single.resolve(checkpoint)),
                    Files.readAllBytes(ranks.resolve(checkpoint)), file + ": 2 ranks differ from 1 process on "
                            + backend);
        }
        assertTrue(Files.isRegularFile(ranks.resolve("samples/final.png")));
        if (!sharding.equals("none")) {
            for (String grid : new String[] {"step-0000001.png", "step-0000002.png", "final.png"}) {
                assertArrayEquals(Files.readAllBytes(single.resolve("samples").resolve(grid)),
                        Files.readAllBytes(ranks.resolve("samples").resolve(grid)), grid + ": drawn from the gathered "
                                + "EMA, 2 ranks differ from 1 process");
            }
        }
    }

    @Test
    void ranksWithDifferentConfigsFailNamingTheField() throws Exception {
        trainingConfig("train-0.json", 1e-3);
        trainingConfig("train-1.json", 2e-3);
        MpiLauncher.Result result = MpiLauncher.run(2, 120, line -> { }, RankArgumentsMain.class, "train",
                "--config", temp.resolve("train-{rank}.json").toString(), "--out", temp.resolve("run").toString());
        assertNotEquals(0, result.exitCode(), result.output());
        assertTrue(result.output().contains("rank 1's training_config.stages[0].lr.peak is 0.002, rank 0's is 0.001"),
                result.output());
    }
}
