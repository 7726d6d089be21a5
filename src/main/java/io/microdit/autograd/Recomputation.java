package io.microdit.autograd;

import java.util.Locale;

/**
 * What a model recomputes in the backward instead of keeping it from the forward ({@link Recompute}), per
 * transformer block: the training config's {@code "recompute"} key. Each step down the list keeps less and
 * recomputes more; the gradients are the same bits in every mode (RecomputeTest).
 */
public enum Recomputation {
    /** Every activation kept: the least compute, the most memory. */
    NONE,
    /**
     * Each block's self- and cross-attention (their q/k/v projections, QK-norms, attention and output projection)
     * recomputed from their inputs: the attention's activations, the largest share of a block's, are not kept,
     * for about a third of a block's forward FLOPs again.
     */
    ATTENTION,
    /** Whole blocks recomputed from their inputs (a block's input is all that is kept): one more forward of each. */
    BLOCK;

    /** The config's spelling: "none", "attention" or "block". */
    public String configName() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** The mode a config spells {@code name}; an error that names {@code what} and the choices otherwise. */
    public static Recomputation parse(String name, String what) {
        for (Recomputation mode : values()) {
            if (mode.configName().equals(name)) {
                return mode;
            }
        }
        throw new IllegalArgumentException(what + " must be \"none\", \"attention\" (each block's attention "
                + "recomputed in the backward) or \"block\" (each whole block recomputed), got \"" + name + "\"");
    }
}
