package io.microdit.backend;

import io.microdit.tensor.DType;
import io.microdit.tensor.Tensor;

/**
 * The sizes of a {@link Backend#matmul} call, checked once for every backend: {@code batch} products of
 * [m × k]·[k × n]; an operand shared by every batch entry (rank 2) has batch stride 0.
 */
public record MatmulShape(long batch, int m, int n, int k, long batchA, long batchB, long strideA, long strideB) {

    /**
     * Checks a {@link Backend#matmul} call: a and b both F32 or both BF16; out F32, or BF16 for BF16 operands when
     * the call does not accumulate (a bf16 output is a fresh result, rounded once).
     */
    public static MatmulShape of(Tensor a, boolean transposeA, Tensor b, boolean transposeB, Tensor bias,
                                 Tensor out, boolean accumulate) {
        String op = "matmul";
        Checks.notNull(op, "a", a);
        Checks.argument(a.dtype() == DType.F32 || a.dtype() == DType.BF16, op, () -> "a " + a.describe()
                + " must be F32 or BF16");
        Checks.dtype(op, "b", b, a.dtype());
        Checks.notNull(op, "out", out);
        if (out.dtype() == DType.BF16) {
            Checks.argument(a.dtype() == DType.BF16, op, () -> "a BF16 out " + out.describe() + " needs BF16 operands, "
                    + "got a " + a.describe());
            Checks.argument(!accumulate, op, () -> "a BF16 out " + out.describe()
                    + " cannot accumulate (only F32 outputs do)");
        } else {
            Checks.dtype(op, "out", out, DType.F32);
        }
        Checks.argument(a.rank() >= 2, op, () -> "a " + a.describe() + " must have rank 2 or more");
        Checks.argument(b.rank() >= 2, op, () -> "b " + b.describe() + " must have rank 2 or more");
        int m = transposeA ? a.dim(-1) : a.dim(-2);
        int k = transposeA ? a.dim(-2) : a.dim(-1);
        int kb = transposeB ? b.dim(-1) : b.dim(-2);
        int n = transposeB ? b.dim(-2) : b.dim(-1);
        Checks.argument(k == kb, op, () -> "inner dimensions differ: a " + a.describe() + (transposeA ? "ᵀ" : "")
                + " · b " + b.describe() + (transposeB ? "ᵀ" : ""));
        long batchA = batchSize(a), batchB = batchSize(b);
        long batch = Math.max(batchA, batchB);
        Checks.argument(batchA == batch || a.rank() == 2, op, () -> "batch of a " + a.describe() + " and b "
                + b.describe() + " differ");
        Checks.argument(batchB == batch || b.rank() == 2, op, () -> "batch of a " + a.describe() + " and b "
                + b.describe() + " differ");
        Checks.argument(out.numel() == batch * m * n && out.dim(-1) == n, op, () -> "out " + out.describe()
                + " must hold [" + batch + " × " + m + " × " + n + "]");
        if (bias != null) {
            Checks.dtype(op, "bias", bias, DType.F32);
            Checks.shape(op, "bias", bias, n);
        }
        return new MatmulShape(batch, m, n, k, batchA, batchB, batchA == 1 ? 0 : (long) m * k,
                batchB == 1 ? 0 : (long) k * n);
    }

    /** FLOPs of the call: 2 per multiply-add. */
    public long flops() {
        return 2L * batch * m * n * k;
    }

    private static long batchSize(Tensor t) {
        long size = 1;
        for (int i = 0; i < t.rank() - 2; i++) {
            size *= t.dim(i);
        }
        return size;
    }
}
