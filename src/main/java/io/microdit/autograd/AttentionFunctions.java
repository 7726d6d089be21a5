package io.microdit.autograd;

import io.microdit.backend.Backend;
import io.microdit.tensor.DType;
import io.microdit.tensor.Tensor;

/** Differentiable fused attention. */
public final class AttentionFunctions {
    private AttentionFunctions() {
    }

    /**
     * Non-causal scaled dot-product attention (scale 1/sqrt(head_dim)) of q [N, Tq, H·Dh] over k and v
     * [N, Tk, H·Dh], heads contiguous within a token; returns [N, Tq, H·Dh]. The forward saves the per-query
     * log-sum-exp [N, H, Tq]; the backward recomputes the probabilities from it and writes fresh dq, dk, dv, so
     * q, k and v may be the same variable. Under a {@link Precision#BF16} graph q, k and v enter the kernels as
     * bf16 (out, lse and the gradients stay F32).
     */
    public static Variable attention(Graph g, Variable q, Variable k, Variable v, int heads) {
        return attention(g, q, k, v, heads, DType.F32);
    }

    /**
     * {@link #attention(Graph, Variable, Variable, Variable, int)} storing out as {@code outType}: BF16 (a bf16 graph)
     * rounds it once at the store, for an output only a bf16 product reads (the output projection); the backward
     * then reads that bf16 out.
     */
    public static Variable attention(Graph g, Variable q, Variable k, Variable v, int heads, DType outType) {
        Backend be = g.backend();
        Tensor qv = g.matmulOperand(q), kv = g.matmulOperand(k), vv = g.matmulOperand(v);
        if (qv.rank() != 3 || heads <= 0 || qv.dim(2) % heads != 0) {
            throw new IllegalArgumentException("attention: q " + qv.describe() + " must be [N, Tq, H·Dh] with "
                    + heads + " heads dividing its width");
        }
        if (outType == DType.BF16 && qv.dtype() != DType.BF16) {
            throw new IllegalArgumentException("attention: a BF16 out needs a bf16 graph");
        }
        Tensor out = g.output(outType, qv.shape());
        Tensor lse = g.output(qv.dim(0), heads, qv.dim(1));
        be.attention(qv, kv, vv, heads, out, lse);
        return g.result(out, dOut -> {
            // q, k and v may be one variable (then only the first may be BF16: the others are added to it).
            Tensor dq = g.output(q.gradientType(), qv.shape());
            Tensor dk = g.output(k == q ? DType.F32 : k.gradientType(), kv.shape());
            Tensor dv = g.output(v == q || v == k ? DType.F32 : v.gradientType(), vv.shape());
            be.attentionBackward(dOut, qv, kv, vv, out, lse, heads, dq, dk, dv);
            q.addGrad(dq, be);
            k.addGrad(dk, be);
            v.addGrad(dv, be);
        }, q, k, v);
    }

    /**
     * QK-norm and attention in one node, for a {@link Precision#BF16} graph: {@link #attention} (out in
     * {@code outType}) of q and k each normalised by a non-affine {@link NormFunctions#layerNorm} (eps) with a BF16
     * output, bit for bit those two ops, forward and backward. Only q's and k's statistics are computed and kept,
     * not their normalised rows: the attention kernel normalises q and k as it reads them (forward and backward),
     * so the rows are never written, read back or held until the backward. Backward: attention's, giving the
     * normalised q's and k's gradients (BF16, as the separate normalised outputs' would be), then each LayerNorm's
     * backward, k's first, in the order the separate ops' nodes run. q, k and v are distinct variables.
     */
    public static Variable normalizedAttention(Graph g, Variable q, Variable k, Variable v, int heads, float eps,
                                               DType outType) {
        Backend be = g.backend();
        if (q == k || q == v || k == v) {
            throw new IllegalArgumentException("normalizedAttention: q, k and v must be distinct variables");
        }
        Tensor qv = q.value(), kv = k.value(), vv = g.matmulOperand(v);
        if (qv.rank() != 3 || heads <= 0 || qv.dim(2) % heads != 0) {
            throw new IllegalArgumentException("normalizedAttention: q " + qv.describe() + " must be [N, Tq, H·Dh] "
                    + "with " + heads + " heads dividing its width");
        }
        Tensor[] qStatistics = statistics(g, qv, eps), kStatistics = statistics(g, kv, eps);
        Tensor out = g.output(outType, qv.shape());
        Tensor lse = g.output(qv.dim(0), heads, qv.dim(1));
        be.normalizedAttention(qv, kv, vv, heads, eps, qStatistics[2], qStatistics[1], kStatistics[2], kStatistics[1],
                out, lse);
        return g.result(out, dOut -> {
            // The normalised q and k are BF16 values of one reader each: their gradients are BF16 (gradientType).
            Tensor dq = g.output(g.matmulOperandType(), qv.shape());
            Tensor dk = g.output(g.matmulOperandType(), kv.shape());
            Tensor dv = g.output(v.gradientType(), vv.shape());
            be.normalizedAttentionBackward(dOut, qv, kv, vv, out, lse, heads, eps, qStatistics[2], qStatistics[1],
                    kStatistics[2], kStatistics[1], dq, dk, dv);
            v.addGrad(dv, be);
            NormFunctions.layerNormBackward(g, k, null, dk, kStatistics[0], kStatistics[1]);
            NormFunctions.layerNormBackward(g, q, null, dq, qStatistics[0], qStatistics[1]);
        }, q, k, v);
    }

    /**
     * {@link #normalizedAttention} of self-attention's q, k and v, the three column blocks of one BF16 qkv
     * [N, T, 3·H·Dh] (one product's output, as the official {@code qkv} Linear makes it), read in place: the values
     * and gradients of those blocks' {@code normalizedAttention} bit for bit. Backward: qkv's gradient, BF16 with the
     * attention's q, k and v gradients in its column blocks, written in one op ({@link Backend#normalizedSelfAttention
     * Backward}), so the qkv product's backward is one product for x's gradient (K = 3·H·Dh) and one for its weight's
     * instead of three each, x's gradient written once in BF16 instead of summed over three products in F32.
     */
    public static Variable normalizedSelfAttention(Graph g, Variable qkv, int heads, float eps, DType outType) {
        Backend be = g.backend();
        Tensor value = qkv.value();
        if (value.rank() != 3 || heads <= 0 || value.dim(2) % (3 * heads) != 0) {
            throw new IllegalArgumentException("normalizedSelfAttention: qkv " + value.describe() + " must be "
                    + "[N, T, 3·H·Dh] with " + heads + " heads");
        }
        int n = value.dim(0), tokens = value.dim(1), rows = n * tokens;
        Tensor qMean = g.output(rows), qRstd = g.output(rows), qCenter = g.output(rows, 2);
        Tensor kMean = g.output(rows), kRstd = g.output(rows), kCenter = g.output(rows, 2);
        Tensor out = g.output(outType, n, tokens, value.dim(2) / 3);
        Tensor lse = g.output(n, heads, tokens);
        be.normalizedSelfAttention(value, heads, eps, qMean, qRstd, qCenter, kMean, kRstd, kCenter, out, lse);
        return g.result(out, dOut -> be.normalizedSelfAttentionBackward(dOut, value, out, lse, heads, eps, qMean,
                qRstd, qCenter, kMean, kRstd, kCenter, freshBf16Gradient("normalizedSelfAttention", qkv, be)), qkv);
    }

    /**
     * {@link #normalizedAttention} of cross-attention's q over k and v, the two column blocks of one BF16 kv
     * [N, Tk, 2·H·Dh] (one product's output, as the official {@code kv_linear} makes it), read in place: the values and
     * gradients of {@code normalizedAttention(q, k, v)} on those blocks bit for bit. Backward: q's gradient and kv's,
     * BF16 with k's and v's gradients in its column blocks, in one op ({@link Backend#normalizedCrossAttentionBackward}),
     * so the kv product's backward is one product for the caption's gradient (K = 2·H·Dh) instead of two adding to it.
     */
    public static Variable normalizedCrossAttention(Graph g, Variable q, Variable kv, int heads, float eps,
                                                    DType outType) {
        Backend be = g.backend();
        Tensor qv = q.value(), kvv = kv.value();
        if (q == kv || qv.rank() != 3 || kvv.rank() != 3 || heads <= 0 || qv.dim(2) % heads != 0
                || kvv.dim(2) != 2 * qv.dim(2)) {
            throw new IllegalArgumentException("normalizedCrossAttention: q " + qv.describe() + " and kv "
                    + kvv.describe() + " must be distinct [N, Tq, H·Dh] and [N, Tk, 2·H·Dh] with " + heads + " heads");
        }
        int n = qv.dim(0), queries = qv.dim(1);
        int qRows = Math.toIntExact(qv.rowCount()), kRows = Math.toIntExact(kvv.rowCount());
        Tensor qMean = g.output(qRows), qRstd = g.output(qRows), qCenter = g.output(qRows, 2);
        Tensor kMean = g.output(kRows), kRstd = g.output(kRows), kCenter = g.output(kRows, 2);
        Tensor out = g.output(outType, qv.shape());
        Tensor lse = g.output(n, heads, queries);
        be.normalizedCrossAttention(qv, kvv, heads, eps, qMean, qRstd, qCenter, kMean, kRstd, kCenter, out, lse);
        return g.result(out, dOut -> {
            Tensor dq = freshBf16Gradient("normalizedCrossAttention", q, be);
            Tensor dkv = freshBf16Gradient("normalizedCrossAttention", kv, be);
            be.normalizedCrossAttentionBackward(dOut, qv, kvv, out, lse, heads, eps, qMean, qRstd, qCenter, kMean,
                    kRstd, kCenter, dq, dkv);
        }, q, kv);
    }

    /** x's gradient as a new BF16 tensor the op writes whole: x must be a BF16 value with no other reader. */
    private static Tensor freshBf16Gradient(String op, Variable x, Backend be) {
        Variable.GradientTarget target = x.gradientTarget(be);
        if (target.accumulate() || target.tensor().dtype() != DType.BF16) {
            throw new IllegalStateException(op + ": " + x + " must be a BF16 value with no other reader (its "
                    + "gradient is written whole, in BF16)");
        }
        return target.tensor();
    }

    /** mean, rstd and center of x's rows (Backend#layerNormStatistics). */
    private static Tensor[] statistics(Graph g, Tensor x, float eps) {
        int rows = Math.toIntExact(x.rowCount());
        Tensor[] statistics = {g.output(rows), g.output(rows), g.output(rows, 2)};
        g.backend().layerNormStatistics(x, eps, statistics[0], statistics[1], statistics[2]);
        return statistics;
    }
}
