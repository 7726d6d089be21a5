package io.microdit.backend;

import io.microdit.tensor.DType;
import io.microdit.tensor.Tensor;
import java.util.Arrays;

/** Argument checks shared by the backends; every message names the op and the argument. */
public final class Checks {
    private Checks() {
    }

    /** Requires {@code t} to have exactly {@code expected} as its shape; -1 in {@code expected} matches any size. */
    public static void shape(String op, String argument, Tensor t, int... expected) {
        notNull(op, argument, t);
        boolean ok = t.rank() == expected.length;
        for (int i = 0; ok && i < expected.length; i++) {
            ok = expected[i] < 0 || expected[i] == t.dim(i);
        }
        if (!ok) {
            throw new IllegalArgumentException(op + ": " + argument + " must have shape "
                    + Arrays.toString(expected).replace("-1", "*") + ", got " + t.describe());
        }
    }

    public static void dtype(String op, String argument, Tensor t, DType expected) {
        notNull(op, argument, t);
        if (t.dtype() != expected) {
            throw new IllegalArgumentException(op + ": " + argument + " must be " + expected + ", got " + t.describe());
        }
    }

    /** Requires F32 tensors of one shape. */
    public static void sameShapeF32(String op, String nameA, Tensor a, String nameB, Tensor b) {
        dtype(op, nameA, a, DType.F32);
        dtype(op, nameB, b, DType.F32);
        if (!a.sameShape(b)) {
            throw new IllegalArgumentException(op + ": " + nameB + " " + b.describe() + " must have the shape of "
                    + nameA + " " + a.describe());
        }
    }

    public static void rank(String op, String argument, Tensor t, int rank) {
        notNull(op, argument, t);
        if (t.rank() != rank) {
            throw new IllegalArgumentException(op + ": " + argument + " must have rank " + rank + ", got "
                    + t.describe());
        }
    }

    public static void notNull(String op, String argument, Tensor t) {
        if (t == null) {
            throw new IllegalArgumentException(op + ": " + argument + " is null");
        }
    }

    public static void argument(boolean ok, String op, String message) {
        if (!ok) {
            throw new IllegalArgumentException(op + ": " + message);
        }
    }

    /** A token tensor: F32 [N, T, D]. */
    public static void tokens(String op, String argument, Tensor t) {
        dtype(op, argument, t, DType.F32);
        rank(op, argument, t, 3);
    }

    /** A per-sample vector: F32 [samples, width]. */
    public static void perSample(String op, String argument, Tensor t, int samples, int width) {
        dtype(op, argument, t, DType.F32);
        shape(op, argument, t, samples, width);
    }

    /** Columns [start, start + width) lie within [0, columns). */
    public static void columnRange(String op, int start, int width, int columns) {
        argument(start >= 0 && width >= 0 && (long) start + width <= columns, op, "columns [" + start + ", "
                + ((long) start + width) + ") lie outside [0, " + columns + ")");
    }

    /** The input of a LayerNorm: F32 with a non-empty last dimension, which it returns. */
    public static int normInput(String op, Tensor x) {
        dtype(op, "x", x, DType.F32);
        argument(x.rank() >= 1 && x.dim(-1) > 0, op, "x " + x.describe()
                + " needs a non-empty last dimension to normalise over");
        return x.dim(-1);
    }

    /** An optional LayerNorm weight: null, or F32 [width]. */
    public static void normWeight(String op, String argument, Tensor weight, int width) {
        if (weight != null) {
            dtype(op, argument, weight, DType.F32);
            shape(op, argument, weight, width);
        }
    }

    /** A per-row statistic (LayerNorm mean or rstd): F32 with one value per row. */
    public static void rowStatistic(String op, String argument, Tensor t, long rows) {
        dtype(op, argument, t, DType.F32);
        argument(t.numel() == rows, op, argument + " " + t.describe() + " must hold one value per row ("
                + rows + " rows)");
    }

    /** Expert-choice routing indices: I32 [N, E, k]. */
    public static void routingIndices(String op, Tensor indices) {
        dtype(op, "indices", indices, DType.I32);
        rank(op, "indices", indices, 3);
    }

    /** Patch tokens of images {@code dims} = [N, C, H, W]: F32 [N, (H/p)·(W/p), C·p·p]. */
    public static void patchTokens(String op, String argument, Tensor tokens, int[] dims, int patch) {
        dtype(op, argument, tokens, DType.F32);
        shape(op, argument, tokens, dims[0], (dims[2] / patch) * (dims[3] / patch), dims[1] * patch * patch);
    }
}
