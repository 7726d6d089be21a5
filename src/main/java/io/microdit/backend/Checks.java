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
}
