package io.microdit.cli;

import static io.microdit.cli.CliRun.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.cli.CliRun.Result;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code --tf32} on train, sample and bench-step: an error naming the option on the CPU backend, which has no TF32
 * path; on the CUDA backend (the emulator here) F32 matrix products go to the TF32 tensor-core kernel, which the
 * bench report and the launch plan show.
 */
class Tf32OptionTest {
    @TempDir
    Path temp;

    private static final String TINY_MODEL = """
            {"name": "tiny-tf32", "input_size": 8, "patch_size": 2, "in_channels": 3, "dim": 32, "depth": 2,
             "head_dim": 8, "multiple_of": 16, "caption_channels": 12, "qkv_multipliers": {"linspace": [0.5, 1.0]},
             "ffn_multipliers": {"linspace": [0.5, 4.0]}, "use_patch_mixer": true, "patch_mixer_depth": 1,
             "patch_mixer_dim": 24, "patch_mixer_mlp_ratio": 4.0, "use_bias": false, "num_experts": 4,
             "expert_capacity": 2.0}
            """;


    private static void assertRefused(Result result) {
        assertEquals(1, result.exit(), result.out() + result.err());
        assertTrue(result.err().contains("--tf32 applies to --backend cuda only: the cpu backend has no TF32 path"),
                result.err());
        assertFalse(result.err().contains("\tat "), result.err());
    }

    @Test
    void theCpuBackendHasNoTf32Path() {
        assertRefused(run("bench-step", "--config", "fashion-small", "--tf32", "--steps", "0"));
        assertRefused(run("train", "--tf32", "--out", temp.resolve("run").toString()));
        assertRefused(run("sample", "--tf32", "--ckpt", temp.resolve("none").toString(), "--prompt", "a shoe",
                "--out", temp.resolve("grid.png").toString()));
        assertFalse(Files.exists(temp.resolve("run")), "refused before the run starts");
    }

    @Test
    @Tag("emu")
    void benchStepOnTheCudaBackendRunsF32ProductsOnTf32TensorCores() throws IOException {
        Path model = Files.writeString(temp.resolve("tiny.json"), TINY_MODEL);
        Path plan = temp.resolve("plan.txt");
        Result result = run("bench-step", "--config", model.toString(), "--backend", "cuda", "--device", "emu",
                "--precision", "f32", "--tf32", "--batch", "2", "--caption-length", "5", "--steps", "1", "--warmup",
                "0", "--launch-plan", plan.toString());
        assertEquals(0, result.exit(), result.out() + result.err());
        assertTrue(result.out().contains("\"tf32\":true") || result.out().contains("\"tf32\": true"),
                result.out());
        String text = Files.readString(plan);
        assertTrue(text.contains("f32 (f32 products on tf32 tensor cores)"), text);
        assertTrue(text.contains("matmul (tc)"), text);
    }
}
