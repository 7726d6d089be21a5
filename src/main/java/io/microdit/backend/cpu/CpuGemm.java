package io.microdit.backend.cpu;

import io.microdit.backend.Checks;
import io.microdit.backend.FlopCounter;
import io.microdit.tensor.DType;
import io.microdit.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/** Batched matrix multiply (placeholder scalar kernel: correct on every shape, replaced by the blocked kernel). */
final class CpuGemm {
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT;
    private final Parallel parallel;
    private final FlopCounter flops;

    CpuGemm(Parallel parallel, FlopCounter flops) {
        this.parallel = parallel;
        this.flops = flops;
    }

    void matmul(Tensor a, boolean transposeA, Tensor b, boolean transposeB, Tensor bias, Tensor out,
                boolean accumulate) {
        String op = "matmul";
        Checks.dtype(op, "a", a, DType.F32);
        Checks.dtype(op, "b", b, DType.F32);
        Checks.dtype(op, "out", out, DType.F32);
        Checks.argument(a.rank() >= 2 && b.rank() >= 2, op, "a " + a.describe() + " and b " + b.describe()
                + " must have rank 2 or more");
        int m = transposeA ? a.dim(-1) : a.dim(-2);
        int k = transposeA ? a.dim(-2) : a.dim(-1);
        int kb = transposeB ? b.dim(-1) : b.dim(-2);
        int n = transposeB ? b.dim(-2) : b.dim(-1);
        Checks.argument(k == kb, op, "inner dimensions differ: a " + a.describe() + (transposeA ? "ᵀ" : "")
                + " · b " + b.describe() + (transposeB ? "ᵀ" : ""));
        long batchA = a.numel() / ((long) m * k);
        long batchB = b.numel() / ((long) k * n);
        long batch = Math.max(batchA, batchB);
        Checks.argument(batchA == batch || a.rank() == 2, op, "batch of a " + a.describe() + " and b "
                + b.describe() + " differ");
        Checks.argument(batchB == batch || b.rank() == 2, op, "batch of a " + a.describe() + " and b "
                + b.describe() + " differ");
        Checks.argument(out.numel() == batch * m * n && out.dim(-1) == n, op, "out " + out.describe()
                + " must hold [" + batch + " × " + m + " × " + n + "]");
        if (bias != null) {
            Checks.shape(op, "bias", bias, n);
        }
        MemorySegment as = a.segment(), bs = b.segment(), cs = out.segment();
        MemorySegment biasSeg = bias == null ? null : bias.segment();
        long strideA = batchA == 1 ? 0 : (long) m * k, strideB = batchB == 1 ? 0 : (long) k * n;
        parallel.forRange((int) (batch * m), 1, (start, end) -> {
            for (int row = start; row < end; row++) {
                long bi = row / m;
                int i = row % m;
                long aBase = bi * strideA, bBase = bi * strideB, cBase = (bi * m + i) * n;
                for (int j = 0; j < n; j++) {
                    float sum = 0f;
                    for (int p = 0; p < k; p++) {
                        float av = as.getAtIndex(F, aBase + (transposeA ? (long) p * m + i : (long) i * k + p));
                        float bv = bs.getAtIndex(F, bBase + (transposeB ? (long) j * k + p : (long) p * n + j));
                        sum += av * bv;
                    }
                    if (biasSeg != null) {
                        sum += biasSeg.getAtIndex(F, j);
                    }
                    if (accumulate) {
                        sum += cs.getAtIndex(F, cBase + j);
                    }
                    cs.setAtIndex(F, cBase + j, sum);
                }
            }
        });
        flops.add(op, 2L * batch * m * n * k);
    }

    void sumRows(Tensor x, Tensor out, boolean accumulate) {
        Checks.dtype("sumRows", "x", x, DType.F32);
        Checks.dtype("sumRows", "out", out, DType.F32);
        int cols = Math.toIntExact(out.numel());
        Checks.argument(cols > 0 && x.numel() % cols == 0, "sumRows", "x " + x.describe()
                + " is not a whole number of rows of out " + out.describe());
        long rows = x.numel() / cols;
        MemorySegment xs = x.segment(), os = out.segment();
        parallel.forRange(cols, 64, (start, end) -> {
            for (int c = start; c < end; c++) {
                float sum = accumulate ? os.getAtIndex(F, c) : 0f;
                for (long r = 0; r < rows; r++) {
                    sum += xs.getAtIndex(F, r * cols + c);
                }
                os.setAtIndex(F, c, sum);
            }
        });
        flops.add("sumRows", x.numel());
    }

    static String vectorDescription() {
        return "scalar";
    }
}
