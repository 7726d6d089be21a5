package io.microdit.cli;

import io.microdit.backend.cpu.CpuBackend;
import io.microdit.model.ConfigFile;
import io.microdit.model.MicroDiT;
import io.microdit.model.MicroDiTConfig;
import io.microdit.model.Weights;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** Writes freshly initialised weights (the official initialisation, drawn from Philox). */
@Command(name = "export-init", description = "Write freshly initialised weights as safetensors (official names).")
final class ExportInitCommand implements Callable<Integer> {
    @Option(names = "--config", required = true, description = "Built-in config name or JSON file.")
    String config;

    @Option(names = "--seed", defaultValue = "0", description = "Initialisation seed (default ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--out", required = true, description = "Output .safetensors file.")
    Path out;

    @Override
    public Integer call() throws Exception {
        MicroDiTConfig c = ConfigFile.resolve(config);
        try (CpuBackend backend = new CpuBackend()) {
            MicroDiT model = MicroDiT.create(c, seed, backend);
            try {
                Weights.save(model, out, Map.of("microdit.seed", Long.toString(seed)));
            } finally {
                model.parameters().close();
            }
        }
        System.out.println("wrote " + out + " (" + c.name() + ", seed " + seed + ")");
        return 0;
    }
}
