package io.microdit.cli;

import static io.microdit.cli.CliRun.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import io.microdit.backend.cuda.CudaRuntime;
import io.microdit.backend.cuda.DeviceChoice;
import io.microdit.cli.CliRun.Result;
import io.microdit.io.Safetensors;
import io.microdit.tensor.MemoryScope;
import io.microdit.testing.TestData;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code --backend cuda} on a machine without a usable GPU is an error with the reason, never the emulator unasked;
 * {@code --device emu} asks for the emulator, and a training log's first line says what runs it and why.
 */
class DeviceSelectionTest {
    @TempDir
    Path temp;

    private static final String TINY_MODEL = """
            {"name": "tiny-device", "input_size": 8, "patch_size": 2, "in_channels": 3, "dim": 32, "depth": 2,
             "head_dim": 8, "multiple_of": 16, "caption_channels": 12, "qkv_multipliers": {"linspace": [0.5, 1.0]},
             "ffn_multipliers": {"linspace": [0.5, 4.0]}, "use_patch_mixer": true, "patch_mixer_depth": 1,
             "patch_mixer_dim": 24, "patch_mixer_mlp_ratio": 4.0, "use_bias": false, "num_experts": 4,
             "expert_capacity": 2.0}
            """;


    /** These tests are about a machine where the CUDA build cannot run; on a GPU machine they do not apply. */
    private static void assumeNoUsableGpu() {
        DeviceChoice.Found found = CudaRuntime.probeCudaLibrary();
        assumeFalse(found.exists() && found.loadError() == null && found.countStatus() == CudaRuntime.SUCCESS
                && found.devices() > 0, "this machine has a usable GPU");
    }

    /** The refusal as a user sees it: one "microdit: " line naming the cause and the way to the emulator. */
    private static void assertRefusal(Result result, String askedBy) {
        assertEquals(1, result.exit(), result.out() + result.err());
        assertTrue(result.err().startsWith("microdit: " + askedBy), result.err());
        assertTrue(result.err().contains("--device emu (slow; for tests and planning)"), result.err());
        assertFalse(result.err().contains("Exception") || result.err().contains("\tat "), result.err());
        assertTrue(result.out().isEmpty(), result.out());
    }

    @Test
    void cudaWithoutAUsableGpuExitsNonZeroWithTheReason() throws IOException {
        assumeNoUsableGpu();
        Path model = Files.writeString(temp.resolve("tiny.json"), TINY_MODEL);
        assertRefusal(run("bench-step", "--config", model.toString(), "--backend", "cuda", "--device", "cuda",
                "--steps", "1", "--warmup", "0"), "--device cuda");
    }

    /**
     * In a fresh JVM without {@code -Dmicrodit.device} (this one asks for the emulator through the build), plain
     * {@code --backend cuda} means the GPU: the process exits 1 with the reason, no stack trace.
     */
    @Test
    void unaskedTheCudaBackendIsTheGpuNotTheEmulator() throws IOException, InterruptedException {
        assumeNoUsableGpu();
        Path model = Files.writeString(temp.resolve("tiny.json"), TINY_MODEL);
        List<String> command = new ArrayList<>(List.of(ProcessHandle.current().info().command().orElseThrow(),
                "--enable-native-access=ALL-UNNAMED", "--add-modules", "jdk.incubator.vector",
                "-cp", System.getProperty("java.class.path")));
        if (System.getProperty("microdit.native.dir") != null) {
            command.add("-Dmicrodit.native.dir=" + System.getProperty("microdit.native.dir"));
        }
        command.addAll(List.of(Main.class.getName(), "bench-step", "--config", model.toString(), "--backend", "cuda",
                "--steps", "1", "--warmup", "0"));
        Process process = new ProcessBuilder(command).redirectOutput(temp.resolve("out.txt").toFile())
                .redirectError(temp.resolve("err.txt").toFile()).start();
        assertTrue(process.waitFor(120, TimeUnit.SECONDS), "the JVM did not exit");
        String err = Files.readString(temp.resolve("err.txt")).lines()
                .filter(line -> !line.startsWith("WARNING")).reduce("", (a, b) -> a + b + "\n");
        assertRefusal(new Result(process.exitValue(), Files.readString(temp.resolve("out.txt")), err),
                "--backend cuda (the GPU: neither --device nor -Dmicrodit.device asks for the emulator)");
    }

    @Test
    void deviceAppliesToTheCudaBackendOnly() {
        Result result = run("bench-step", "--config", "fashion-small", "--device", "emu", "--steps", "0");
        assertEquals(1, result.exit());
        assertTrue(result.err().contains("--device applies to --backend cuda only"), result.err());
        Result unknown = run("bench-step", "--config", "fashion-small", "--backend", "cuda", "--device", "auto",
                "--steps", "0");
        assertEquals(1, unknown.exit());
        assertTrue(unknown.err().contains("--device must be cuda, emu or emu-checked, got 'auto'"), unknown.err());
    }

    /** The first line of a training log names the backend, its library and why; on the CPU, the CPU backend. */
    @Test
    @Tag("emu")
    void aTrainingLogOpensWithTheBackendLibraryAndReason() throws IOException {
        Path model = Files.writeString(temp.resolve("tiny.json"), TINY_MODEL);
        Path shards = Files.createDirectories(temp.resolve("shards"));
        try (MemoryScope scope = new MemoryScope("shards")) {
            Random random = new Random(5);
            Safetensors.write(shards.resolve("a.safetensors"), Map.of("latents",
                    TestData.uniform(scope, random, 4, 3, 8, 8), "caption_embeddings",
                    TestData.uniform(scope, random, 4, 5, 12)), Map.of());
        }
        Path training = Files.writeString(temp.resolve("train.json"), """
                {"model": "%s", "data": "latents", "data_dir": "%s", "caption_length": 5, "batch_size": 2,
                 "sample_every": 0, "checkpoint_every": 0, "sample_steps": 1, "sample_guidance": 1,
                 "stages": [{"name": "only", "steps": 1, "lr": {"peak": 1e-3}}]}
                """.formatted(model.toString().replace("\\", "\\\\"), shards.toString().replace("\\", "\\\\")));
        Result emulator = run("train", "--config", training.toString(), "--out", temp.resolve("emu").toString(),
                "--backend", "cuda", "--device", "emu", "--final-samples", "1");
        assertEquals(0, emulator.exit(), emulator.out() + emulator.err());
        // The reason is the one the library was loaded for: in this JVM, maybe -Dmicrodit.device=emu before.
        String first = emulator.out().lines().findFirst().orElseThrow();
        assertTrue(first.startsWith("backend: cuda-emulator (") && first.contains("libmicrodit_emu.so: the host "
                + "emulator, asked for by name ("), first);
        // A config that names no precision trains in bf16 on CUDA, f32 on the CPU.
        assertTrue(emulator.out().contains(", bf16, 4 images, "), emulator.out());
        Result cpu = run("train", "--config", training.toString(), "--out", temp.resolve("cpu").toString(),
                "--threads", "1", "--final-samples", "1");
        assertEquals(0, cpu.exit(), cpu.out() + cpu.err());
        assertTrue(cpu.out().startsWith("backend: cpu (1 threads, "), cpu.out());
        assertTrue(cpu.out().contains(", f32, 4 images, "), cpu.out());
    }
}
