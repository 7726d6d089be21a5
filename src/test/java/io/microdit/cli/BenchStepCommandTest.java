package io.microdit.cli;

import static io.microdit.cli.CliRun.run;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.autograd.GradScope;
import io.microdit.autograd.Graph;
import io.microdit.autograd.Parameter;
import io.microdit.backend.cpu.CpuBackend;
import io.microdit.cli.CliRun.Result;
import io.microdit.diffusion.Edm;
import io.microdit.diffusion.EdmObjective;
import io.microdit.io.Json;
import io.microdit.io.Safetensors;
import io.microdit.model.ConfigFile;
import io.microdit.model.MaskingMode;
import io.microdit.model.MicroDiT;
import io.microdit.model.MicroDiTConfig;
import io.microdit.model.TokenMask;
import io.microdit.model.Weights;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code bench-step --export} on a tiny config: the files read back into a fresh model and batch reproduce the
 * reference loss, output sum and gradient norms, and the exported mask is the one the ids describe.
 */
class BenchStepCommandTest {
    @TempDir
    Path temp;

    private static final String TINY_MODEL = """
            {"name": "tiny-bench", "input_size": 8, "patch_size": 2, "in_channels": 3, "dim": 32, "depth": 3,
             "head_dim": 8, "multiple_of": 16, "caption_channels": 12, "qkv_multipliers": {"linspace": [0.5, 1.0]},
             "ffn_multipliers": {"linspace": [0.5, 4.0]}, "use_patch_mixer": true, "patch_mixer_depth": 2,
             "patch_mixer_dim": 24, "patch_mixer_mlp_ratio": 4.0, "use_bias": false, "num_experts": 4,
             "expert_capacity": 2.0}
            """;


    @Test
    void exportedFilesReproduceTheReferenceValues() throws Exception {
        Path config = Files.writeString(temp.resolve("tiny.json"), TINY_MODEL);
        for (String masking : new String[] {"deferred", "naive", "none"}) {
            Path dir = temp.resolve(masking);
            Result result = run("bench-step", "--config", config.toString(), "--batch", "3", "--mask", "0.5",
                    "--masking", masking, "--caption-length", "5", "--threads", "2", "--steps", "2", "--warmup", "1",
                    "--seed", "4", "--export", dir.toString());
            assertEquals(0, result.exit(), result.out() + result.err());
            @SuppressWarnings("unchecked")
            Map<String, Object> line = (Map<String, Object>) Json.parse(result.out().strip());
            assertEquals("microdit", line.get("engine"));
            assertTrue(((Number) line.get("ms_per_step")).doubleValue() > 0, result.out());
            assertTrue(((Number) line.get("flops_per_step")).longValue() > 0, result.out());
            @SuppressWarnings("unchecked")
            Map<String, Object> reference = (Map<String, Object>) Json.parse(Files.readString(
                    dir.resolve("reference.json")));
            checkAgainstFiles(ConfigFile.resolve(config.toString()), dir, reference,
                    masking.equals("none") ? MaskingMode.NONE : MaskingMode.valueOf(masking.toUpperCase()));
        }
    }

    /** Recomputes the loss, F and gradients from the exported files alone, in a model built from zeros. */
    private static void checkAgainstFiles(MicroDiTConfig c, Path dir, Map<String, Object> reference, MaskingMode mode)
            throws Exception {
        try (CpuBackend backend = new CpuBackend(2); MemoryScope scope = new MemoryScope("check")) {
            MicroDiT model = new MicroDiT(c, new io.microdit.nn.ParameterStore("check"), backend);
            try {
                Weights.load(model, dir.resolve("weights.safetensors"));
                Map<String, Tensor> batch = Safetensors.read(dir.resolve("batch.safetensors"), scope).tensors();
                Tensor x0 = batch.get("x0");
                assertArrayEquals(new int[] {3, 3, 8, 8}, x0.shape());
                assertArrayEquals(new int[] {3, 1, 5, 12}, batch.get("y").shape());
                assertArrayEquals(new int[] {3}, batch.get("sigma").shape());
                assertArrayEquals(x0.shape(), batch.get("noise").shape());
                TokenMask mask = null;
                if (mode == MaskingMode.NONE) {
                    assertTrue(!batch.containsKey("ids_keep") && !batch.containsKey("mask"), batch.keySet().toString());
                } else {
                    Tensor ids = batch.get("ids_keep");
                    Tensor removed = batch.get("mask");
                    assertEquals(DType.I32, ids.dtype());
                    assertArrayEquals(new int[] {3, 8}, ids.shape(), "keep int(16·0.5) of 16 tokens");
                    for (int n = 0; n < 3; n++) {
                        Set<Integer> kept = new HashSet<>();
                        for (int j = 0; j < 8; j++) {
                            kept.add(ids.getInt(n * 8L + j));
                        }
                        assertEquals(8, kept.size(), "distinct kept ids");
                        for (int t = 0; t < 16; t++) {
                            assertEquals(kept.contains(t) ? 0f : 1f, removed.getFloat(n * 16L + t));
                        }
                    }
                    mask = new TokenMask(ids, removed, 16, 8);
                }
                float[] sigmaFloats = batch.get("sigma").toFloatArray();
                double[] sigma = new double[3];
                for (int i = 0; i < 3; i++) {
                    sigma[i] = sigmaFloats[i];
                    assertTrue(sigma[i] > 0);
                }
                assertNotEquals(sigma[0], sigma[1]);
                EdmObjective objective = new EdmObjective(Edm.MICRODIT_256, mode, 0.5, 0);
                Graph g = new Graph(backend, scope);
                double loss, outputSum = 0;
                try (GradScope ignored = g.recordGradients()) {
                    EdmObjective.Terms terms = objective.terms(g, model, x0, batch.get("y").reshape(3, 5, 12), sigma,
                            batch.get("noise"), mask);
                    loss = terms.loss().value().getFloat(0);
                    for (float v : terms.output().value().toFloatArray()) {
                        outputSum += v;
                    }
                    terms.loss().backward();
                }
                assertEquals(((Number) reference.get("loss")).doubleValue(), loss, 0.0, mode.name());
                assertEquals(((Number) reference.get("output_sum")).doubleValue(), outputSum, 0.0);
                assertNotEquals(0.0, outputSum, "perturbed weights make F non-zero");
                @SuppressWarnings("unchecked")
                Map<String, Object> norms = (Map<String, Object>) reference.get("grad_norms");
                double total = 0;
                for (Parameter p : model.parameters().all()) {
                    double norm = p.grad() == null ? 0 : Math.sqrt(backend.sumOfSquares(p.grad()));
                    total += norm * norm;
                    assertEquals(((Number) norms.get(p.name())).doubleValue(), norm, 0.0, p.name());
                }
                assertEquals(((Number) reference.get("grad_norm")).doubleValue(), Math.sqrt(total), 1e-12);
                assertTrue(((Number) norms.get("final_layer.linear.weight")).doubleValue() > 0);
            } finally {
                model.parameters().close();
            }
        }
    }

    /**
     * The GPU comparison's microdit half, on the emulator: {@code --backend cuda --precision bf16} exports the same
     * batch as the CPU backend (every draw is Philox, whatever the device) and a loss within bf16 rounding of the
     * CPU backend's bf16 loss, and reports the backend, the precision and the device memory it used.
     */
    @Test
    @org.junit.jupiter.api.Tag("emu")
    void cudaBackendInBf16MatchesTheCpuBackendOnTheSameBatch() throws Exception {
        Path config = Files.writeString(temp.resolve("tiny.json"), TINY_MODEL.replace("\"head_dim\": 8",
                "\"head_dim\": 32").replace("\"dim\": 32", "\"dim\": 64").replace("\"patch_mixer_dim\": 24",
                "\"patch_mixer_dim\": 64"));
        Map<String, Map<String, Object>> lines = new java.util.HashMap<>();
        for (String backend : new String[] {"cpu", "cuda"}) {
            Result result = run("bench-step", "--config", config.toString(), "--backend", backend, "--precision",
                    "bf16", "--batch", "2", "--mask", "0.5", "--caption-length", "5", "--steps", "1", "--warmup", "0",
                    "--seed", "4", "--export", temp.resolve(backend).toString());
            assertEquals(0, result.exit(), result.out() + result.err());
            @SuppressWarnings("unchecked")
            Map<String, Object> line = (Map<String, Object>) Json.parse(result.out().strip());
            assertEquals("bf16", line.get("precision"));
            lines.put(backend, line);
        }
        assertTrue(((String) lines.get("cuda").get("backend")).startsWith("cuda"), lines.get("cuda").toString());
        assertTrue(((Number) lines.get("cuda").get("peak_device_bytes")).longValue() > 0);
        try (MemoryScope scope = new MemoryScope("bench-compare")) {
            Map<String, Tensor> cpu = Safetensors.read(temp.resolve("cpu/batch.safetensors"), scope).tensors();
            Map<String, Tensor> cuda = Safetensors.read(temp.resolve("cuda/batch.safetensors"), scope).tensors();
            assertEquals(cpu.keySet(), cuda.keySet());
            for (String name : cpu.keySet()) {
                assertArrayEquals(cpu.get(name).toFloatArray(), cuda.get(name).toFloatArray(), 0f, name);
            }
        }
        @SuppressWarnings("unchecked")
        double cpuLoss = ((Number) ((Map<String, Object>) Json.parse(
                Files.readString(temp.resolve("cpu/reference.json")))).get("loss")).doubleValue();
        @SuppressWarnings("unchecked")
        double cudaLoss = ((Number) ((Map<String, Object>) Json.parse(
                Files.readString(temp.resolve("cuda/reference.json")))).get("loss")).doubleValue();
        assertEquals(cpuLoss, cudaLoss, 5e-3 * cpuLoss, "loss of the exported batch");
    }

    /**
     * A launch plan of a full-size step (microdit-tiny-2 at 256 px latents, batch 256, 75% deferred masking, bf16)
     * is a dry run on the emulator: it takes seconds, and every op call that moves at least 8 MiB launches at least
     * one grid with blocks for 3/4 of an H100's 132 SMs — on a GPU no such op may leave much of the chip idle.
     */
    @Test
    @org.junit.jupiter.api.Tag("emu")
    void launchPlanOfAFullSizeStepFillsTheGpu() throws Exception {
        Path plan = temp.resolve("plan.txt");
        Result result = run("bench-step", "--config", "microdit-tiny-2", "--backend", "cuda", "--precision", "bf16",
                "--batch", "256", "--steps", "0", "--warmup", "0", "--launch-plan", plan.toString(),
                // The set-up is planned, not computed (RecipePlanCommandTest: plans the same step as a real set-up).
                "--plan-only");
        assertEquals(0, result.exit(), result.out() + result.err());
        @SuppressWarnings("unchecked")
        Map<String, Object> line = (Map<String, Object>) Json.parse(result.out().strip());
        long launches = ((Number) line.get("launches_per_step")).longValue();
        String text = Files.readString(plan);
        assertTrue(text.contains("dry run on the emulator"), text);
        assertTrue(text.contains(String.format(java.util.Locale.ROOT, "%,d launches", launches)), text);
        assertTrue(launches > 1000, "launches " + launches);
        assertTrue(text.contains("blocks for < 3/4 of the SMs: 0\n"), text);
        // With the GPU build's ptxas report (CI builds it), every launched kernel gets its occupancy on sm_90.
        String occupancy = text.substring(text.indexOf("theoretical occupancy"));
        System.out.print(occupancy);
        if (occupancy.startsWith("theoretical occupancy on sm_90")) {
            assertTrue(occupancy.contains("gemm_bf16 "), occupancy);
            assertTrue(!occupancy.contains("not in the ptxas report"), occupancy);
        }
    }

    @Test
    void badOptionsFailWithAMessage() {
        Result masking = run("bench-step", "--config", "fashion-small", "--masking", "random", "--steps", "0");
        assertEquals(1, masking.exit());
        assertTrue(masking.err().contains("--masking must be deferred, naive or none"), masking.err());
        Result batch = run("bench-step", "--config", "fashion-small", "--batch", "0");
        assertEquals(1, batch.exit());
        assertTrue(batch.err().contains("--batch"), batch.err());
        Result backend = run("bench-step", "--config", "fashion-small", "--backend", "tpu", "--steps", "0");
        assertEquals(1, backend.exit());
        assertTrue(backend.err().contains("--backend must be cpu or cuda"), backend.err());
        Result precision = run("bench-step", "--config", "fashion-small", "--precision", "fp8", "--steps", "0");
        assertEquals(1, precision.exit());
        assertTrue(precision.err().contains("--precision must be f32 or bf16"), precision.err());
        Result plan = run("bench-step", "--config", "fashion-small", "--steps", "0", "--warmup", "0",
                "--launch-plan", "plan.txt");
        assertEquals(1, plan.exit());
        assertTrue(plan.err().contains("--launch-plan needs --backend cuda"), plan.err());
        Result cost = run("cost", "--config", "microdit-xl-2", "--batch", "2048", "--stages", "1000");
        assertEquals(1, cost.exit());
        assertTrue(cost.err().contains("STEPS:MASK"), cost.err());
    }

    @Test
    void costPrintsThePaperRecipe() {
        Result cost = run("cost", "--config", "microdit-xl-2", "--batch", "2048", "--stages",
                "250000:0.75,30000:0,50000:0.75:512,5000:0:512", "--device", "h100", "--price", "3.75", "--mfu", "0.4",
                "--gpus", "8");
        assertEquals(0, cost.exit(), cost.err());
        assertTrue(cost.out().contains("total  3.28"), cost.out());
        assertTrue(cost.out().contains("GPU-hours"), cost.out());
        // microdit-xl-2's 1,165,442,320 parameters (microdit params) as F32: 4,661,769,280 bytes; per GPU 2 × 7/8 of
        // them, 8,158,096,240 bytes, either way, in 18.13 ms at 450 GB/s.
        assertTrue(cost.out().contains("gradients of 1,165,442,320 parameters (4.66 GB), at 450 GB/s"), cost.out());
        assertTrue(cost.out().contains("data parallel: all-reduce, 8.16 GB, 18.1 ms"), cost.out());
        assertTrue(cost.out().contains("ZeRO-2 (shard_grad_op): reduce-scatter + all-gather of the parameters, 8.16 "
                + "GB, 18.1 ms"), cost.out());
        // Stage 1: 1.445e20 FLOPs / 250,000 steps / 8 GPUs at 395.8 TFLOP/s = 182.6 ms; 18.13 / 182.6 = 9.9 %.
        assertTrue(cost.out().contains("1                182.6                        9.9%"), cost.out());
    }
}
