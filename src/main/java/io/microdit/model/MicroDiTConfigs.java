package io.microdit.model;

import java.util.List;

/** The built-in configs: the official factories and small ones sized for a CPU. */
public final class MicroDiTConfigs {
    private MicroDiTConfigs() {
    }

    /** The names {@link #builtin} knows, as configs and the command line accept them. */
    public static final List<String> NAMES = List.of("microdit-xl-2", "microdit-tiny-2", "fashion-small");

    /** A built-in config by name; the message lists the names when it is unknown. */
    public static MicroDiTConfig builtin(String name) {
        return switch (name) {
            case "microdit-xl-2" -> xl2();
            case "microdit-tiny-2" -> tiny2();
            case "fashion-small" -> fashionSmall();
            default -> throw new IllegalArgumentException("unknown built-in config '" + name + "'; built-in configs: "
                    + String.join(", ", NAMES));
        };
    }

    /** {@code MicroDiT_XL_2}: D 1024, depth 28, head_dim 64, mixer 6 × 768, 8 experts (1,165,442,320 params). */
    public static MicroDiTConfig xl2() {
        int depth = 28;
        return new MicroDiTConfig("microdit-xl-2", 32, 2, 4, 1024, depth, 64, 256, 1024, 1.0, 1e-6, true,
                MicroDiTConfig.linspace(0.5, 1.0, depth), MicroDiTConfig.linspace(0.5, 4.0, depth),
                true, 6, 768, 1.0, 4.0, false, 8, 2.0, 2);
    }

    /** {@code MicroDiT_Tiny_2}: D 512, depth 16, head_dim 32, mixer 4 × 512, 8 experts (200,692,752 params). */
    public static MicroDiTConfig tiny2() {
        int depth = 16;
        return new MicroDiTConfig("microdit-tiny-2", 32, 2, 4, 512, depth, 32, 256, 1024, 1.0, 1e-6, true,
                MicroDiTConfig.linspace(0.5, 1.0, depth), MicroDiTConfig.linspace(0.5, 4.0, depth),
                true, 4, 512, 1.0, 4.0, false, 8, 2.0, 2);
    }

    /**
     * A MicroDiT for Fashion-MNIST on a CPU: 32×32×1 "latents", patch 4 (64 tokens; patch 2 costs 4× more and
     * does not fit the 15-minute main job), D 128, depth 6 with layer-wise scaling, a 2-block patch-mixer,
     * 4 experts, 64-channel caption embeddings.
     */
    public static MicroDiTConfig fashionSmall() {
        int depth = 6;
        return new MicroDiTConfig("fashion-small", 32, 4, 1, 128, depth, 32, 64, 64, 1.0, 1e-6, true,
                MicroDiTConfig.linspace(0.5, 1.0, depth), MicroDiTConfig.linspace(0.5, 4.0, depth),
                true, 2, 128, 1.0, 4.0, false, 4, 2.0, 2);
    }
}
