package io.microdit.cli;

import static io.microdit.cli.CliRun.run;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.cli.CliRun.Result;
import io.microdit.io.Safetensors;
import io.microdit.io.torch.PickleBytes;
import io.microdit.model.Weights;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.io.IOException;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code microdit convert} both ways on a tiny config, with Composer checkpoints and mismatched files. */
class ConvertCommandTest {
    private static final String TINY_MODEL = """
            {"name": "tiny-convert", "input_size": 16, "patch_size": 4, "in_channels": 2, "dim": 32, "depth": 2,
             "head_dim": 16, "multiple_of": 16, "caption_channels": 16, "qkv_multipliers": {"linspace": [0.5, 1.0]},
             "ffn_multipliers": {"linspace": [0.5, 4.0]}, "use_patch_mixer": true, "patch_mixer_depth": 2,
             "patch_mixer_dim": 32, "patch_mixer_mlp_ratio": 4.0, "use_bias": false, "num_experts": 4,
             "expert_capacity": 2.0}
            """;

    @TempDir
    Path temp;

    private Path config;
    private Path init;

    @BeforeEach
    void exportRandomWeights() throws IOException {
        config = Files.writeString(temp.resolve("tiny.json"), TINY_MODEL);
        init = temp.resolve("init.safetensors");
        Result export = run("export-init", "--config", config.toString(), "--seed", "5", "--out", init.toString());
        assertEquals(0, export.exit(), export.err());
    }

    private static void assertSameTensors(Map<String, Tensor> expected, Map<String, Tensor> actual) {
        assertEquals(new java.util.TreeSet<>(expected.keySet()), new java.util.TreeSet<>(actual.keySet()));
        for (Map.Entry<String, Tensor> entry : expected.entrySet()) {
            Tensor other = actual.get(entry.getKey());
            assertEquals(entry.getValue().describe(), other.describe(), entry.getKey());
            assertArrayEquals(entry.getValue().segment().toArray(ValueLayout.JAVA_BYTE),
                    other.segment().toArray(ValueLayout.JAVA_BYTE), entry.getKey());
        }
    }

    @Test
    void safetensorsToPtAndBackKeepsEveryTensor() throws IOException {
        Path pt = temp.resolve("init.pt");
        Result there = run("convert", "--from", init.toString(), "--to", pt.toString(), "--config", config.toString());
        assertEquals(0, there.exit(), there.err());
        assertTrue(there.out().contains("checked against tiny"), there.out());
        Path back = temp.resolve("back.safetensors");
        Result again = run("convert", "--from", pt.toString(), "--to", back.toString(), "--config", config.toString());
        assertEquals(0, again.exit(), again.err());
        try (MemoryScope scope = new MemoryScope("test")) {
            assertSameTensors(Safetensors.read(init, scope).tensors(), Safetensors.read(back, scope).tensors());
            assertTrue(Safetensors.readHeader(back).metadata().containsKey(Weights.CONFIG_METADATA));
        }
    }

    /**
     * A Composer checkpoint: the model state under state.model with model.dit. prefixes, beside a VAE tensor, one
     * weight stored as float16 and one as bfloat16.
     */
    @Test
    void composerCheckpointIsUnwrapped() throws IOException {
        try (MemoryScope scope = new MemoryScope("test")) {
            Map<String, Tensor> weights = Safetensors.read(init, scope).tensors();
            List<String> names = List.copyOf(weights.keySet());
            String half = "t_embedder.mlp.0.weight";
            String bf16 = "final_layer.norm_final.weight";
            PickleBytes p = new PickleBytes().proto(2).op('}').mark().string("state").op('}').mark()
                    .string("model").orderedDict().mark();
            Map<String, byte[]> storages = new LinkedHashMap<>();
            for (String name : names) {
                Tensor tensor = weights.get(name);
                long[] shape = java.util.Arrays.stream(tensor.shape()).asLongStream().toArray();
                String key = Integer.toString(storages.size());
                p.string("model.dit." + name);
                if (name.equals(half)) {
                    ByteBuffer halves = ByteBuffer.allocate(2 * (int) tensor.numel()).order(ByteOrder.LITTLE_ENDIAN);
                    for (float v : tensor.toFloatArray()) {
                        halves.putShort(Float.floatToFloat16(v));
                    }
                    storages.put(key, halves.array());
                    p.tensor("HalfStorage", key, shape);
                } else if (name.equals(bf16)) {
                    storages.put(key, tensor.to(DType.BF16, scope).segment().toArray(ValueLayout.JAVA_BYTE));
                    p.tensor("BFloat16Storage", key, shape);
                } else {
                    storages.put(key, tensor.segment().toArray(ValueLayout.JAVA_BYTE));
                    p.tensor("FloatStorage", key, shape);
                }
            }
            p.string("model.vae.decoder.weight").tensor("FloatStorage", "vae", 2);
            storages.put("vae", new byte[8]);
            p.op('u').string("timestamp").op('}').op('u').string("rng").op(']').op('u').stop();
            Path ckpt = PickleBytes.archive(temp.resolve("latest-rank0.pt"), p.bytes(), storages, "little");

            Path out = temp.resolve("converted.safetensors");
            Result result = run("convert", "--from", ckpt.toString(), "--to", out.toString(), "--config",
                    config.toString());
            assertEquals(0, result.exit(), result.err());
            assertTrue(result.out().contains("skipped 1 tensors outside the DiT"), result.out());
            assertTrue(result.out().contains("1 float16 tensors converted to float32"), result.out());
            Map<String, Tensor> converted = Safetensors.read(out, scope).tensors();
            assertEquals(DType.F32, converted.get(half).dtype());
            assertEquals(DType.BF16, converted.get(bf16).dtype());
            float[] expectedHalf = weights.get(half).toFloatArray();
            float[] actualHalf = converted.get(half).toFloatArray();
            for (int i = 0; i < expectedHalf.length; i++) {
                assertEquals(Float.float16ToFloat(Float.floatToFloat16(expectedHalf[i])), actualHalf[i]);
            }
            assertArrayEquals(weights.get(bf16).to(DType.BF16, scope).toFloatArray(),
                    converted.get(bf16).toFloatArray());
            Map<String, Tensor> exact = new LinkedHashMap<>(weights);
            exact.keySet().removeAll(List.of(half, bf16));
            Map<String, Tensor> convertedExact = new LinkedHashMap<>(converted);
            convertedExact.keySet().removeAll(List.of(half, bf16));
            assertSameTensors(exact, convertedExact);
        }
    }

    private static final String FIXTURE_MODEL = """
            {"name": "fixture-official", "input_size": 4, "patch_size": 2, "in_channels": 2, "dim": 8, "depth": 2,
             "head_dim": 4, "multiple_of": 8, "caption_channels": 4, "qkv_multipliers": {"linspace": [0.5, 1.0]},
             "ffn_multipliers": {"linspace": [0.5, 2.0]}, "use_patch_mixer": true, "patch_mixer_depth": 1,
             "patch_mixer_dim": 8, "patch_mixer_mlp_ratio": 2.0, "use_bias": false, "num_experts": 2,
             "expert_capacity": 2.0}
            """;

    /**
     * A file written by {@code torch.save} (Debian's python3-torch 1.13.1, so no byteorder record), with the official
     * names of {@link #FIXTURE_MODEL}: mostly float16, the x_embedder float32, final_layer.norm_final bfloat16,
     * t_embedder.mlp.2.weight a transposed view into a larger storage, t_embedder.mlp.2.bias an offset view, and
     * blocks.0.norm1/norm2 two slices of one storage. Made by
     * {@code microdit export-init --config fixture.json --out init.safetensors} (FIXTURE_MODEL as fixture.json), then
     * {@code python3 make_fixture.py init.safetensors torch-save-1.13.pt} with make_fixture.py:
     * <pre>
     * import json, struct, sys, torch
     * b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
     * shapes = {k: v['shape'] for k, v in json.loads(b[8:8 + n]).items() if k != '__metadata__'}
     * def values(k, shape):  # an LCG per tensor: Java recomputes the same values
     *     s, out = k + 1, []
     *     for _ in range(int(torch.Size(shape).numel())):
     *         s = (s * 1103515245 + 12345) % 2**31
     *         out.append(((s >> 8) % 2001 - 1000) / 1024)
     *     return torch.tensor(out, dtype=torch.float32).reshape(shape)
     * sd = torch.nn.Module().state_dict()  # an OrderedDict carrying _metadata, as a model's state_dict() does
     * for k, name in enumerate(sorted(shapes)):
     *     v = values(k, shapes[name])
     *     sd[name] = v.bfloat16() if name == 'final_layer.norm_final.weight' else v if name.startswith('x_embedder') else v.half()
     * w = sd['t_embedder.mlp.2.weight']; big = torch.zeros(w.shape[1] + 3, w.shape[0] + 2, dtype=w.dtype)
     * big[:w.shape[1], :w.shape[0]] = w.t(); sd['t_embedder.mlp.2.weight'] = big[:w.shape[1], :w.shape[0]].t()
     * bias = sd['t_embedder.mlp.2.bias']; sd['t_embedder.mlp.2.bias'] = torch.cat([torch.ones(5, dtype=bias.dtype), bias])[5:]
     * n1, n2 = sd['blocks.0.norm1.weight'], sd['blocks.0.norm2.weight']; both = torch.cat([n1, n2])
     * sd['blocks.0.norm1.weight'], sd['blocks.0.norm2.weight'] = both[:len(n1)], both[len(n1):]
     * torch.save(sd, sys.argv[2])
     * </pre>
     */
    @Test
    void convertsAFileWrittenByTorchSave() throws IOException {
        Path pt = temp.resolve("torch-save-1.13.pt");
        try (var in = ConvertCommandTest.class.getResourceAsStream("/io/microdit/io/torch/torch-save-1.13.pt")) {
            Files.copy(in, pt);
        }
        Path fixtureConfig = Files.writeString(temp.resolve("fixture.json"), FIXTURE_MODEL);
        Path out = temp.resolve("fixture.safetensors");
        Result result = run("convert", "--from", pt.toString(), "--to", out.toString(), "--config",
                fixtureConfig.toString());
        assertEquals(0, result.exit(), result.err());
        assertTrue(result.out().contains("66 float16 tensors converted"), result.out());
        try (MemoryScope scope = new MemoryScope("test")) {
            Map<String, Tensor> tensors = Safetensors.read(out, scope).tensors();
            assertEquals(69, tensors.size());
            List<String> sorted = tensors.keySet().stream().sorted().toList();
            for (int k = 0; k < sorted.size(); k++) {
                String name = sorted.get(k);
                float[] actual = tensors.get(name).toFloatArray();
                long state = k + 1;
                for (int i = 0; i < actual.length; i++) {
                    state = (state * 1103515245L + 12345) % (1L << 31);
                    float value = ((state >> 8) % 2001 - 1000) / 1024f;
                    float expected = name.equals("final_layer.norm_final.weight")
                            ? DType.bf16ToFloat(DType.floatToBf16(value)) : value;
                    assertEquals(expected, actual[i], name + "[" + i + "]");
                }
            }
            assertEquals(DType.BF16, tensors.get("final_layer.norm_final.weight").dtype());
        }
    }

    @Test
    void mismatchedNamesAndShapesAreListed() throws IOException {
        try (MemoryScope scope = new MemoryScope("test")) {
            Map<String, Tensor> tensors = new LinkedHashMap<>(Safetensors.read(init, scope).tensors());
            tensors.remove("blocks.0.norm2.weight");
            tensors.put("blocks.9.norm1.weight", scope.zeros(32));
            tensors.put("final_layer.linear.bias", scope.zeros(5));
            Path bad = temp.resolve("bad.safetensors");
            Safetensors.write(bad, tensors, Map.of());
            Path pt = temp.resolve("bad.pt");
            Result result = run("convert", "--from", bad.toString(), "--to", pt.toString(), "--config",
                    config.toString());
            assertEquals(1, result.exit());
            assertTrue(result.err().contains("1 missing [blocks.0.norm2.weight]"), result.err());
            assertTrue(result.err().contains("1 unexpected [blocks.9.norm1.weight]"), result.err());
            assertTrue(result.err().contains("final_layer.linear.bias [5] (config: [32])"), result.err());
            assertFalse(Files.exists(pt));
        }
    }

    @Test
    void hostileCheckpointIsRefusedNamingTheGlobalAndFile() throws IOException {
        Path marker = temp.resolve("executed");
        Path evil = PickleBytes.archive(temp.resolve("evil.pt"), new PickleBytes().proto(2).global("os", "system")
                .mark().string("touch " + marker).tuple().reduce().stop().bytes(), Map.of(), "little");
        Result result = run("convert", "--from", evil.toString(), "--to", temp.resolve("x.safetensors").toString());
        assertEquals(1, result.exit());
        assertTrue(result.err().contains(evil.toString()) && result.err().contains("global os.system is not allowed"),
                result.err());
        assertFalse(Files.exists(marker));
    }

    @Test
    void bothFilesOfOneFormatAreRefused() {
        Result result = run("convert", "--from", init.toString(), "--to", temp.resolve("x.safetensors").toString());
        assertEquals(1, result.exit());
        assertTrue(result.err().contains("one of --from and --to must be a .pt/.pth file"), result.err());
    }
}
