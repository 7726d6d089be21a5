package io.microdit.autograd;

import java.util.Locale;

/**
 * The number format of a graph's matrix products. {@link #F32} computes everything in F32. {@link #BF16} is mixed
 * precision as PyTorch's bf16 autocast does it: the operands of linear layers, batched matmuls and attention are
 * rounded to bf16 (tensor-core inputs on a GPU) and their products accumulate in F32; results, gradients,
 * normalisations, softmaxes, the loss, the MoE router and the weights themselves (F32 master copies updated by
 * AdamW) stay F32.
 */
public enum Precision {
    /** Everything in F32. */
    F32,
    /** Matrix-product operands (and activations only products read) in bf16, products accumulated in F32. */
    BF16;

    /** Parses "f32" or "bf16" (any case); the error names {@code what}. */
    public static Precision parse(String text, String what) {
        return switch (text.toLowerCase(Locale.ROOT)) {
            case "f32", "fp32", "float32" -> F32;
            case "bf16", "bfloat16" -> BF16;
            default -> throw new IllegalArgumentException(what + " must be f32 or bf16, got '" + text + "'");
        };
    }

    /** The name used in configs and on the command line. */
    public String label() {
        return name().toLowerCase(Locale.ROOT);
    }
}
