package io.microdit.cli;

import io.microdit.autograd.Graph;
import io.microdit.backend.cpu.CpuBackend;
import io.microdit.io.Safetensors;
import io.microdit.model.ConfigFile;
import io.microdit.model.MaskingMode;
import io.microdit.model.MicroDiT;
import io.microdit.model.MicroDiTConfig;
import io.microdit.model.Weights;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * One forward pass of the network F, unmasked, for checking the engine against other implementations: the
 * inputs of the official {@code forward_without_cfg(x, t, y)}, the output {@code sample}.
 */
@Command(name = "forward", description = "Run one forward pass: inputs x [N,C,H,W], t [N] (c_noise), y [N,1,L,Cc];"
        + " writes 'sample' [N,C,H,W].")
final class ForwardCommand implements Callable<Integer> {
    @Option(names = "--config", required = true, description = "Built-in config name or JSON file.")
    String config;

    @Option(names = "--weights", required = true, description = "Weights (.safetensors, official names).")
    Path weights;

    @Option(names = "--inputs", required = true, description = "Inputs x, t, y (.safetensors).")
    Path inputs;

    @Option(names = "--out", required = true, description = "Output .safetensors with 'sample'.")
    Path out;

    @Option(names = "--threads", description = "CPU threads (default: all).")
    Integer threads;

    @Override
    public Integer call() throws Exception {
        MicroDiTConfig c = ConfigFile.resolve(config);
        try (CpuBackend backend = threads == null ? new CpuBackend() : new CpuBackend(threads);
             MemoryScope scope = new MemoryScope("forward")) {
            MicroDiT model = MicroDiT.create(c, 0, backend);
            try {
                Weights.load(model, weights);
                Map<String, Tensor> in = Safetensors.read(inputs, scope).tensors();
                Tensor x = input(in, "x", scope);
                int n = x.dim(0);
                check(x.rank() == 4 && x.dim(1) == c.inChannels() && x.dim(2) == c.inputSize()
                        && x.dim(3) == c.inputSize(), "x", x, "[N, " + c.inChannels() + ", " + c.inputSize() + ", "
                        + c.inputSize() + "]");
                Tensor t = input(in, "t", scope);
                check(t.rank() == 1 && t.dim(0) == n, "t", t, "[" + n + "]");
                Tensor y = input(in, "y", scope);
                check(y.rank() == 4 && y.dim(0) == n && y.dim(1) == 1 && y.dim(3) == c.captionChannels(), "y", y,
                        "[" + n + ", 1, L, " + c.captionChannels() + "]");
                Graph g = new Graph(backend, scope);
                Tensor sample = model.forward(g, g.constant(x), t, g.constant(y.reshape(n, y.dim(2), y.dim(3))), null,
                        MaskingMode.NONE).value();
                Safetensors.write(out, Map.of("sample", sample), Map.of());
            } finally {
                model.parameters().close();
            }
        }
        System.out.println("wrote " + out);
        return 0;
    }

    private Tensor input(Map<String, Tensor> tensors, String name, MemoryScope scope) throws IOException {
        Tensor t = tensors.get(name);
        if (t == null) {
            throw new IOException(inputs + ": missing input tensor '" + name + "' (has " + tensors.keySet() + ")");
        }
        return t.dtype() == DType.F32 ? t : t.to(DType.F32, scope);
    }

    private void check(boolean ok, String name, Tensor t, String expected) throws IOException {
        if (!ok) {
            throw new IOException(inputs + ": input '" + name + "' has shape " + Arrays.toString(t.shape())
                    + ", expected " + expected);
        }
    }
}
