package io.microdit.backend;

import static io.microdit.backend.Checks.argument;
import static io.microdit.backend.Checks.dtype;
import static io.microdit.backend.Checks.gradientOf;
import static io.microdit.backend.Checks.normInput;
import static io.microdit.backend.Checks.notNull;
import static io.microdit.backend.Checks.rank;
import static io.microdit.backend.Checks.rowStatistic;
import static io.microdit.backend.Checks.shape;

import io.microdit.tensor.DType;
import io.microdit.tensor.Tensor;

/**
 * {@link Checks} for the attention ops of {@link Backend}: plain, with QK-norm inside ({@code normalized*}), self-
 * attention over a packed q|k|v and cross-attention over a packed k|v, and their backwards; both backends call them,
 * so both refuse the same arguments with the same message.
 */
public final class AttentionChecks {
    private AttentionChecks() {
    }

    /**
     * q [N, Tq, D], k and v [N, Tk, D] with Tk > 0, all F32 or all BF16 (as q); out [N, Tq, D], F32 or (for BF16
     * operands) BF16; F32 lse [N, heads, Tq]; heads divides D. Returns {N, Tq, Tk, D / heads}.
     */
    public static int[] attention(Tensor q, Tensor k, Tensor v, int heads, Tensor out, Tensor lse) {
        return attentionInputs("attention", q, k, v, heads, out, lse);
    }

    /**
     * The forward's arguments, dOut and dq like out, dk and dv like k, each gradient F32 or BF16; returns
     * {N, Tq, Tk, D / heads}.
     */
    public static int[] attentionBackward(Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse,
                                          int heads, Tensor dq, Tensor dk, Tensor dv) {
        String op = "attentionBackward";
        int[] s = attentionInputs(op, q, k, v, heads, out, lse);
        gradientOf(op, "dOut", dOut, "out", out);
        gradientOf(op, "dq", dq, "out", out);
        gradientOf(op, "dk", dk, "k", k);
        gradientOf(op, "dv", dv, "k", k);
        return s;
    }

    /** x F32 or BF16; mean and rstd F32 [rows], center F32 [rows, 2]; returns the width normalised over. */
    public static int layerNormStatistics(Tensor x, float eps, Tensor mean, Tensor rstd, Tensor center) {
        String op = "layerNormStatistics";
        int width = normInput(op, x);
        long rows = x.rowCount();
        rowStatistic(op, "mean", mean, rows);
        rowStatistic(op, "rstd", rstd, rows);
        rowCenter(op, "center", center, rows);
        argument(eps >= 0 && Float.isFinite(eps), op, () -> "eps must be finite and non-negative, got " + eps);
        return width;
    }

    /** {@link #attention}'s arguments and q's and k's statistics ({@link #layerNormStatistics}); as it returns. */
    public static int[] normalizedAttention(Tensor q, Tensor k, Tensor v, int heads, float eps, Tensor qCenter,
                                            Tensor qRstd, Tensor kCenter, Tensor kRstd, Tensor out, Tensor lse) {
        String op = "normalizedAttention";
        int[] s = attentionInputs(op, q, k, v, heads, out, lse);
        normStatistics(op, q, k, eps, qCenter, qRstd, kCenter, kRstd);
        return s;
    }

    /** {@link #attentionBackward}'s arguments and q's and k's statistics; as it returns. */
    public static int[] normalizedAttentionBackward(Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor out,
                                                    Tensor lse, int heads, float eps, Tensor qCenter, Tensor qRstd,
                                                    Tensor kCenter, Tensor kRstd, Tensor dq, Tensor dk, Tensor dv) {
        String op = "normalizedAttentionBackward";
        int[] s = attentionBackward(dOut, q, k, v, out, lse, heads, dq, dk, dv);
        normStatistics(op, q, k, eps, qCenter, qRstd, kCenter, kRstd);
        return s;
    }

    /**
     * qkv BF16 [N, T, 3·W] with W divisible by heads; the statistics F32 ([rows], [rows], [rows, 2] for q's, then
     * k's); out BF16 [N, T, W]; lse F32 [N, heads, T]. Returns {N, T, W / heads}.
     */
    public static int[] normalizedSelfAttention(Tensor qkv, int heads, float eps, Tensor qMean, Tensor qRstd,
                                                Tensor qCenter, Tensor kMean, Tensor kRstd, Tensor kCenter, Tensor out,
                                                Tensor lse) {
        return selfAttention("normalizedSelfAttention", qkv, heads, eps, qMean, qRstd, qCenter, kMean, kRstd, kCenter,
                out, lse);
    }

    /** {@link #normalizedSelfAttention}'s arguments, dOut like out (F32 or BF16), dqkv BF16 like qkv; as it returns. */
    public static int[] normalizedSelfAttentionBackward(Tensor dOut, Tensor qkv, Tensor out, Tensor lse, int heads,
                                                        float eps, Tensor qMean, Tensor qRstd, Tensor qCenter,
                                                        Tensor kMean, Tensor kRstd, Tensor kCenter, Tensor dqkv) {
        String op = "normalizedSelfAttentionBackward";
        int[] s = selfAttention(op, qkv, heads, eps, qMean, qRstd, qCenter, kMean, kRstd, kCenter, out, lse);
        gradientOf(op, "dOut", dOut, "out", out);
        dtype(op, "dqkv", dqkv, DType.BF16);
        shape(op, "dqkv", dqkv, qkv.shape());
        return s;
    }

    /**
     * q BF16 [N, Tq, W], kv BF16 [N, Tk, 2·W], W divisible by heads; q's statistics over N·Tq rows, k's over N·Tk;
     * out BF16 like q; lse F32 [N, heads, Tq]. Returns {N, Tq, Tk, W / heads}.
     */
    public static int[] normalizedCrossAttention(Tensor q, Tensor kv, int heads, float eps, Tensor qMean,
                                                 Tensor qRstd, Tensor qCenter, Tensor kMean, Tensor kRstd,
                                                 Tensor kCenter, Tensor out, Tensor lse) {
        String op = "normalizedCrossAttention";
        dtype(op, "q", q, DType.BF16);
        rank(op, "q", q, 3);
        dtype(op, "kv", kv, DType.BF16);
        rank(op, "kv", kv, 3);
        int n = q.dim(0), queries = q.dim(1), keys = kv.dim(1), width = q.dim(2);
        argument(heads > 0 && width % heads == 0 && kv.dim(0) == n && kv.dim(2) == 2 * width, op, () -> "q "
                + q.describe() + " and kv " + kv.describe() + " must be [N, Tq, W] and [N, Tk, 2·W] with " + heads
                + " heads dividing W");
        dtype(op, "out", out, DType.BF16);
        shape(op, "out", out, q.shape());
        dtype(op, "lse", lse, DType.F32);
        argument(lse.numel() == (long) n * heads * queries, op, () -> "lse " + lse.describe()
                + " must hold [N, heads, Tq]"
                + " = [" + n + ", " + heads + ", " + queries + "]");
        blockStatistics(op, q.rowCount(), kv.rowCount(), eps, qMean, qRstd, qCenter, kMean, kRstd, kCenter);
        return new int[] {n, queries, keys, width / heads};
    }

    /** {@link #normalizedCrossAttention}'s arguments, dOut like out, dq BF16 like q, dkv BF16 like kv. */
    public static int[] normalizedCrossAttentionBackward(Tensor dOut, Tensor q, Tensor kv, Tensor out, Tensor lse,
                                                         int heads, float eps, Tensor qMean, Tensor qRstd,
                                                         Tensor qCenter, Tensor kMean, Tensor kRstd, Tensor kCenter,
                                                         Tensor dq, Tensor dkv) {
        String op = "normalizedCrossAttentionBackward";
        int[] s = normalizedCrossAttention(q, kv, heads, eps, qMean, qRstd, qCenter, kMean, kRstd, kCenter, out, lse);
        gradientOf(op, "dOut", dOut, "out", out);
        dtype(op, "dq", dq, DType.BF16);
        shape(op, "dq", dq, q.shape());
        dtype(op, "dkv", dkv, DType.BF16);
        shape(op, "dkv", dkv, kv.shape());
        argument(dq != dkv, op, "dq and dkv must be distinct tensors");
        return s;
    }

    private static void blockStatistics(String op, long qRows, long kRows, float eps, Tensor qMean, Tensor qRstd,
                                        Tensor qCenter, Tensor kMean, Tensor kRstd, Tensor kCenter) {
        rowStatistic(op, "qMean", qMean, qRows);
        rowStatistic(op, "qRstd", qRstd, qRows);
        rowCenter(op, "qCenter", qCenter, qRows);
        rowStatistic(op, "kMean", kMean, kRows);
        rowStatistic(op, "kRstd", kRstd, kRows);
        rowCenter(op, "kCenter", kCenter, kRows);
        argument(eps >= 0 && Float.isFinite(eps), op, () -> "eps must be finite and non-negative, got " + eps);
    }

    private static int[] selfAttention(String op, Tensor qkv, int heads, float eps, Tensor qMean, Tensor qRstd,
                                       Tensor qCenter, Tensor kMean, Tensor kRstd, Tensor kCenter, Tensor out,
                                       Tensor lse) {
        dtype(op, "qkv", qkv, DType.BF16);
        rank(op, "qkv", qkv, 3);
        int n = qkv.dim(0), tokens = qkv.dim(1), width = qkv.dim(2) / 3;
        argument(heads > 0 && qkv.dim(2) % 3 == 0 && width % heads == 0, op, () -> "qkv " + qkv.describe()
                + " must be [N, T, 3·W] with " + heads + " heads dividing W");
        dtype(op, "out", out, DType.BF16);
        shape(op, "out", out, n, tokens, width);
        dtype(op, "lse", lse, DType.F32);
        argument(lse.numel() == (long) n * heads * tokens, op, () -> "lse " + lse.describe()
                + " must hold [N, heads, T] = ["
                + n + ", " + heads + ", " + tokens + "]");
        long rows = (long) n * tokens;
        blockStatistics(op, rows, rows, eps, qMean, qRstd, qCenter, kMean, kRstd, kCenter);
        return new int[] {n, tokens, width / heads};
    }

    private static void normStatistics(String op, Tensor q, Tensor k, float eps, Tensor qCenter, Tensor qRstd,
                                       Tensor kCenter, Tensor kRstd) {
        rowCenter(op, "qCenter", qCenter, q.rowCount());
        rowStatistic(op, "qRstd", qRstd, q.rowCount());
        rowCenter(op, "kCenter", kCenter, k.rowCount());
        rowStatistic(op, "kRstd", kRstd, k.rowCount());
        argument(eps >= 0 && Float.isFinite(eps), op, () -> "eps must be finite and non-negative, got " + eps);
    }

    private static void rowCenter(String op, String argument, Tensor t, long rows) {
        dtype(op, argument, t, DType.F32);
        argument(t.numel() == 2 * rows, op, () -> argument + " " + t.describe() + " must hold two values per row ("
                + rows + " rows)");
    }

    private static int[] attentionInputs(String op, Tensor q, Tensor k, Tensor v, int heads, Tensor out,
                                         Tensor lse) {
        notNull(op, "q", q);
        DType operands = q.dtype() == DType.BF16 ? DType.BF16 : DType.F32;
        String[] names = {"q", "k", "v", "out", "lse"};
        Tensor[] tensors = {q, k, v, out, lse};
        for (int i = 0; i < names.length; i++) {
            boolean bf16Out = i == 3 && operands == DType.BF16 && out != null && out.dtype() == DType.BF16;
            dtype(op, names[i], tensors[i], i < 3 || bf16Out ? operands : DType.F32);
            rank(op, names[i], tensors[i], 3);
        }
        int batch = q.dim(0), queries = q.dim(1), width = q.dim(2), keys = k.dim(1);
        argument(heads > 0 && width % heads == 0, op, () -> "heads " + heads + " must be positive and divide the width "
                + width + " of q " + q.describe());
        argument(width > 0, op, () -> "q " + q.describe() + " must have a positive width");
        shape(op, "k", k, batch, -1, width);
        argument(keys > 0, op, () -> "k " + k.describe() + " must have at least one token");
        shape(op, "v", v, batch, keys, width);
        shape(op, "out", out, batch, queries, width);
        shape(op, "lse", lse, batch, heads, queries);
        return new int[] {batch, queries, keys, width / heads};
    }
}
