package io.microdit.model;

/**
 * The widths of one DiT block, by the official rounding rules:
 * attention width {@code = dim} when the qkv ratio is 1, else {@code 2·head_dim · ceil(int(dim·ratio) / (2·head_dim))};
 * SwiGLU hidden {@code = multiple_of · ceil(int(2·int(dim·mlp_ratio)/3) / multiple_of)};
 * MoE expert hidden {@code = multiple_of · ceil(int(dim·mlp_ratio) / multiple_of)}.
 *
 * @param initStd the std of the block's output projections (attention proj, SwiGLU w2/w3, MoE w2)
 */
public record BlockShape(int index, int dim, int headDim, int attentionWidth, boolean moe, int ffnHidden,
                         double initStd) {

    static BlockShape of(int index, int dim, int headDim, double qkvRatio, double mlpRatio, int multipleOf,
                         boolean moe, double initStd) {
        int attentionWidth = qkvRatio == 1.0 ? dim
                : 2 * headDim * ceilDiv((int) (dim * qkvRatio), 2 * headDim);
        int nominal = (int) (dim * mlpRatio);
        int hidden = moe ? multipleOf * ceilDiv(nominal, multipleOf)
                : multipleOf * ceilDiv((int) (2.0 * nominal / 3.0), multipleOf);
        return new BlockShape(index, dim, headDim, attentionWidth, moe, hidden, initStd);
    }

    private static int ceilDiv(int a, int b) {
        return (a + b - 1) / b;
    }

    /** Self-attention heads (attention width / head_dim). */
    public int heads() {
        return attentionWidth / headDim;
    }

    /** Cross-attention heads: always full width. */
    public int crossHeads() {
        return dim / headDim;
    }
}
