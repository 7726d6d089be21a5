package io.microdit.train;

import java.util.Locale;

/** How the ranks of a data-parallel run divide the training state (the config key {@code "sharding"}). */
public enum Sharding {
    /** Every rank holds the whole gradient, the AdamW moments and the EMA (plain data parallel). */
    NONE,
    /**
     * ZeRO-2, FSDP's {@code SHARD_GRAD_OP}: each rank owns a contiguous run of whole parameters; the gradients are
     * reduce-scattered to their owners, AdamW (moments and update) runs on each rank's parameters only, and the
     * updated parameters are all-gathered. AdamW's memory per rank is divided by the number of ranks.
     */
    SHARD_GRAD_OP;

    /** The config's spelling. */
    public String label() {
        return name().toLowerCase(Locale.ROOT);
    }

    static Sharding parse(String text) {
        for (Sharding s : values()) {
            if (s.label().equals(text)) {
                return s;
            }
        }
        throw new IllegalArgumentException("training config key 'sharding' must be \"none\" or \"shard_grad_op\", got '"
                + text + "'");
    }
}
