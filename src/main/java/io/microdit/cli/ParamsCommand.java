package io.microdit.cli;

import io.microdit.model.BlockShape;
import io.microdit.model.MicroDiTConfig;
import io.microdit.model.ConfigFile;
import io.microdit.model.ParameterLayout;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** Counts a config's parameters from its shapes alone, without allocating any weight. */
@Command(name = "params", description = "Print a config's parameter count with a per-module breakdown.")
final class ParamsCommand implements Callable<Integer> {
    @Option(names = "--config", required = true,
            description = "A built-in config (microdit-xl-2, microdit-tiny-2, fashion-small) or a JSON file.")
    String config;

    @Option(names = "--blocks", description = "Also list every block's widths.")
    boolean blocks;

    @Override
    public Integer call() throws java.io.IOException {
        MicroDiTConfig c = ConfigFile.resolve(config);
        ParameterLayout layout = ParameterLayout.of(c);
        System.out.printf("%s: %d parameters (%.3fB)%n", c.name(), layout.total(), layout.total() / 1e9);
        for (Map.Entry<String, Long> e : layout.byModule().entrySet()) {
            System.out.printf("  %-22s %,15d%n", e.getKey(), e.getValue());
        }
        if (blocks) {
            System.out.println("  block      heads  attn width  FFN          hidden");
            for (BlockShape b : c.mixerBlocks()) {
                printBlock("mixer." + b.index(), b);
            }
            for (BlockShape b : c.backboneBlocks()) {
                printBlock("blocks." + b.index(), b);
            }
        }
        return 0;
    }

    private static void printBlock(String name, BlockShape b) {
        System.out.printf("  %-10s %5d %11d  %-12s %6d%n", name, b.heads(), b.attentionWidth(),
                b.moe() ? "MoE (GELU)" : "SwiGLU", b.ffnHidden());
    }
}
