package io.microdit.backend;

import io.microdit.tensor.DType;
import io.microdit.tensor.Tensor;
import java.util.Arrays;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Set;
import java.util.function.Supplier;

/**
 * Argument checks shared by the backends; every message names the op and the argument. The primitives come first,
 * then one method per op of {@link Backend} that both backends call, so that both refuse the same arguments with
 * the same message. Checks that read tensor contents (index ranges) stay in the backends, which read memory
 * differently; a backend's own limits (a kernel's shared memory) are checked after these. The attention ops' checks
 * are in {@link AttentionChecks}, the LayerNorms' in {@link NormChecks} and the expert-choice MoE's in
 * {@link MoeChecks}, built on the primitives here.
 */
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

    /** Requires {@code t} to be non-null and of {@code expected} dtype. */
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

    /**
     * Requires F32 {@code input} and an {@code out} of its shape, F32 or BF16: the ops whose output may go straight
     * to bf16 matrix products (LayerNorm, GELU, the SwiGLU gate) compute in F32 and round once at the store.
     */
    public static void sameShapeOutput(String op, String inputName, Tensor input, String outName, Tensor out) {
        dtype(op, inputName, input, DType.F32);
        outputOfShape(op, inputName, input, outName, out);
    }

    /**
     * Requires {@code t} to be F32 or BF16: an input that an op reads as the exact F32 values of its elements
     * (bf16 to f32 loses nothing), so its results are those of the op on the F32 upcast of {@code t}.
     */
    public static void floatInput(String op, String argument, Tensor t) {
        notNull(op, argument, t);
        if (t.dtype() != DType.F32 && t.dtype() != DType.BF16) {
            throw new IllegalArgumentException(op + ": " + argument + " must be F32 or BF16, got " + t.describe());
        }
    }

    /** An {@code out} of {@code input}'s shape, F32 or BF16, whatever the input's dtype. */
    static void outputOfShape(String op, String inputName, Tensor input, String outName, Tensor out) {
        notNull(op, outName, out);
        if (out.dtype() != DType.F32 && out.dtype() != DType.BF16) {
            throw new IllegalArgumentException(op + ": " + outName + " must be F32 or BF16, got " + out.describe());
        }
        if (!input.sameShape(out)) {
            throw new IllegalArgumentException(op + ": " + outName + " " + out.describe() + " must have the shape of "
                    + inputName + " " + input.describe());
        }
    }

    /** Requires {@code t} to be non-null with exactly {@code rank} dimensions. */
    public static void rank(String op, String argument, Tensor t, int rank) {
        notNull(op, argument, t);
        if (t.rank() != rank) {
            throw new IllegalArgumentException(op + ": " + argument + " must have rank " + rank + ", got "
                    + t.describe());
        }
    }

    /** Requires the tensor argument to be present; the message names the op and the argument. */
    public static void notNull(String op, String argument, Tensor t) {
        if (t == null) {
            throw new IllegalArgumentException(op + ": " + argument + " is null");
        }
    }

    /**
     * Throws {@link IllegalArgumentException} with {@code op: message} unless {@code ok}; for conditions the other
     * checks do not cover.
     */
    public static void argument(boolean ok, String op, String message) {
        if (!ok) {
            throw new IllegalArgumentException(op + ": " + message);
        }
    }

    /**
     * {@link #argument(boolean, String, () -> String)} with the message built only when the check fails: describing
     * tensors costs more than the check itself, and every op runs its checks (a matmul's took ~380 ns, building
     * messages nobody read).
     */
    public static void argument(boolean ok, String op, Supplier<String> message) {
        if (!ok) {
            throw new IllegalArgumentException(op + ": " + message.get());
        }
    }

    /**
     * Requires gradient {@code t}, F32 or BF16, to have the shape of {@code reference}: in a bf16 graph a value's
     * gradient is BF16 where the value is; a BF16 incoming gradient is read as its exact floats, a BF16 gradient
     * output is the F32 result rounded once (as convert rounds).
     */
    static void gradientOf(String op, String argument, Tensor t, String referenceName, Tensor reference) {
        floatInput(op, argument, t);
        argument(t.sameShape(reference), op, () -> argument + " " + t.describe() + " must have the shape of "
                + referenceName + " " + reference.describe());
    }

    /** Requires F32 {@code t} to have the shape of {@code reference}, whatever the reference's dtype. */
    private static void shapeOf(String op, String argument, Tensor t, String referenceName, Tensor reference) {
        dtype(op, argument, t, DType.F32);
        argument(t.sameShape(reference), op, () -> argument + " " + t.describe() + " must have the shape of "
                + referenceName + " " + reference.describe());
    }

    /** A token tensor: F32 [N, T, D]; returns {N, T, D}. */
    static int[] tokens(String op, String argument, Tensor t) {
        dtype(op, argument, t, DType.F32);
        rank(op, argument, t, 3);
        return new int[] {t.dim(0), t.dim(1), t.dim(2)};
    }

    /** A per-sample vector: F32 [samples, width]. */
    static void perSample(String op, String argument, Tensor t, int samples, int width) {
        dtype(op, argument, t, DType.F32);
        shape(op, argument, t, samples, width);
    }

    // ---------------------------------------------------------------- matmul and elementwise

    /**
     * sumRows: x (F32, or BF16: a bf16 graph's dy for its bias gradient) a whole number of rows of F32 out; returns
     * the number of columns.
     */
    public static long sumRows(Tensor x, Tensor out) {
        String op = "sumRows";
        floatInput(op, "x", x);
        dtype(op, "out", out, DType.F32);
        long columns = out.numel();
        argument(columns > 0 && x.numel() % columns == 0, op, () -> "x " + x.describe()
                + " is not a whole number of rows of out " + out.describe());
        return columns;
    }

    /** mul: F32 a and out of one shape, F32 b of a's shape or a suffix of it. */
    public static void broadcast(String op, Tensor a, Tensor b, Tensor out) {
        dtype(op, "b", b, DType.F32);
        broadcastShapes(op, a, b, out);
    }

    /** add: as {@link #broadcast}, b F32 or BF16 (a bf16 linear layer's output added to the F32 residual). */
    public static void add(Tensor a, Tensor b, Tensor out) {
        String op = "add";
        floatInput(op, "b", b);
        broadcastShapes(op, a, b, out);
    }

    private static void broadcastShapes(String op, Tensor a, Tensor b, Tensor out) {
        sameShapeF32(op, "a", a, "out", out);
        boolean suffix = b.rank() <= a.rank();
        for (int i = 1; suffix && i <= b.rank(); i++) {
            suffix = b.dim(-i) == a.dim(-i);
        }
        argument(suffix, op, () -> "b " + b.describe() + " must have the shape of a " + a.describe()
                + " or a suffix of it");
    }

    /** Returns {N, T, D} of x. */
    public static int[] modulate(Tensor x, Tensor shift, Tensor scale, Tensor out) {
        String op = "modulate";
        int[] s = tokens(op, "x", x);
        perSample(op, "shift", shift, s[0], s[2]);
        perSample(op, "scale", scale, s[0], s[2]);
        sameShapeOutput(op, "x", x, "out", out);
        return s;
    }

    /** Returns {N, T, D} of x. */
    public static int[] modulateBackward(Tensor dOut, Tensor x, Tensor scale, Tensor dx, Tensor dShift,
                                         Tensor dScale) {
        String op = "modulateBackward";
        int[] s = tokens(op, "x", x);
        sameShapeF32(op, "x", x, "dOut", dOut);
        sameShapeF32(op, "x", x, "dx", dx);
        perSample(op, "scale", scale, s[0], s[2]);
        perSample(op, "dShift", dShift, s[0], s[2]);
        perSample(op, "dScale", dScale, s[0], s[2]);
        return s;
    }

    /** F32 x, gate and out, f F32 or BF16; returns {N, T, D} of x. */
    public static int[] gatedResidual(Tensor x, Tensor gate, Tensor f, Tensor out) {
        String op = "gatedResidual";
        int[] s = tokens(op, "x", x);
        perSample(op, "gate", gate, s[0], s[2]);
        floatInput(op, "f", f);
        argument(f.sameShape(x), op, () -> "f " + f.describe() + " must have the shape of x " + x.describe());
        sameShapeF32(op, "x", x, "out", out);
        return s;
    }

    /** f and dF F32 or BF16, everything else F32; returns {N, T, D} of f. */
    public static int[] gatedResidualBackward(Tensor dOut, Tensor gate, Tensor f, Tensor dGate, Tensor dF) {
        String op = "gatedResidualBackward";
        floatInput(op, "f", f);
        rank(op, "f", f, 3);
        int[] s = {f.dim(0), f.dim(1), f.dim(2)};
        shapeOf(op, "dOut", dOut, "f", f);
        gradientOf(op, "dF", dF, "f", f);
        perSample(op, "gate", gate, s[0], s[2]);
        perSample(op, "dGate", dGate, s[0], s[2]);
        return s;
    }

    /** F32 x [rows, columns], out [rows, width] with [start, start + width) inside; returns {rows, columns, width}. */
    public static int[] sliceColumns(Tensor x, int start, Tensor out) {
        return slice("sliceColumns", "x", x, "out", out, start);
    }

    /** As {@link #sliceColumns} with dx for x and dOut for out; returns {rows, columns, width}. */
    public static int[] sliceColumnsBackward(Tensor dOut, int start, Tensor dx) {
        return slice("sliceColumnsBackward", "dx", dx, "dOut", dOut, start);
    }

    private static int[] slice(String op, String wideName, Tensor wide, String narrowName, Tensor narrow, int start) {
        dtype(op, wideName, wide, DType.F32);
        rank(op, wideName, wide, 2);
        int rows = wide.dim(0), columns = wide.dim(1);
        dtype(op, narrowName, narrow, DType.F32);
        shape(op, narrowName, narrow, rows, -1);
        int width = narrow.dim(1);
        argument(start >= 0 && width >= 0 && (long) start + width <= columns, op, () -> "columns [" + start + ", "
                + ((long) start + width) + ") lie outside [0, " + columns + ")");
        return new int[] {rows, columns, width};
    }

    /** F32 and BF16 tensors of one shape. */
    public static void convert(Tensor source, Tensor target) {
        String op = "convert";
        notNull(op, "source", source);
        notNull(op, "target", target);
        argument(source.dtype() != DType.I32 && target.dtype() != DType.I32, op,
                () -> "only F32 and BF16 convert, got source " + source.describe() + " and target "
                + target.describe());
        argument(source.sameShape(target), op, () -> "target " + target.describe() + " must have the shape of source "
                + source.describe());
    }

    // ---------------------------------------------------------------- activations and softmax

    /** siluBackward: F32 dOut, x and dx of one shape. */
    public static void pointwiseBackward(String op, Tensor dOut, Tensor x, Tensor dx) {
        sameShapeF32(op, "x", x, "dOut", dOut);
        sameShapeF32(op, "x", x, "dx", dx);
    }

    /** x F32 or BF16, out of its shape in F32 or BF16. */
    public static void gelu(Tensor x, Tensor out) {
        String op = "gelu";
        floatInput(op, "x", x);
        outputOfShape(op, "x", x, "out", out);
    }

    /** x, dOut and dx of one shape, each F32 or BF16. */
    public static void geluBackward(Tensor dOut, Tensor x, Tensor dx) {
        String op = "geluBackward";
        floatInput(op, "x", x);
        gradientOf(op, "dOut", dOut, "x", x);
        gradientOf(op, "dx", dx, "x", x);
    }

    /** a and b of one shape, both F32 or both BF16; out of their shape in F32 or BF16. */
    public static void swigluGate(Tensor a, Tensor b, Tensor out) {
        String op = "swigluGate";
        gateInputs(op, a, b);
        outputOfShape(op, "a", a, "out", out);
    }

    /**
     * a and b as for {@link #swigluGate}; dOut, da and db of their shape, dOut F32 or BF16, da and db both F32 or
     * both BF16 (the gradient of one linear layer's output, in halves).
     */
    public static void swigluGateBackward(Tensor dOut, Tensor a, Tensor b, Tensor da, Tensor db) {
        String op = "swigluGateBackward";
        gateInputs(op, a, b);
        gradientOf(op, "dOut", dOut, "a", a);
        gradientOf(op, "da", da, "a", a);
        gradientOf(op, "db", db, "a", a);
        argument(da.dtype() == db.dtype(), op, () -> "da and db must be both F32 or both BF16, got da " + da.describe()
                + " and db " + db.describe());
    }

    /** The SwiGLU gate's inputs: one shape, both F32 or both BF16 (the halves of one linear layer's output). */
    private static void gateInputs(String op, Tensor a, Tensor b) {
        floatInput(op, "a", a);
        floatInput(op, "b", b);
        argument(a.dtype() == b.dtype(), op, () -> "a and b must be both F32 or both BF16, got a " + a.describe()
                + " and b " + b.describe());
        argument(a.sameShape(b), op, () -> "b " + b.describe() + " must have the shape of a " + a.describe());
    }

    /** F32 x and out of one shape, rank 1 or more (softmax runs over the last dimension). */
    public static void softmax(Tensor x, Tensor out) {
        String op = "softmax";
        sameShapeF32(op, "x", x, "out", out);
        argument(x.rank() >= 1, op, () -> "x must have rank 1 or more, got " + x.describe());
    }

    /** F32 y (the forward output), dOut and dx of one shape, rank 1 or more. */
    public static void softmaxBackward(Tensor dOut, Tensor y, Tensor dx) {
        String op = "softmaxBackward";
        sameShapeF32(op, "y", y, "dOut", dOut);
        sameShapeF32(op, "y", y, "dx", dx);
        argument(y.rank() >= 1, op, () -> "y must have rank 1 or more, got " + y.describe());
    }

    // ---------------------------------------------------------------- normalisation

    /** The input of a LayerNorm: F32 or BF16 with a non-empty last dimension, which it returns. */
    static int normInput(String op, Tensor x) {
        floatInput(op, "x", x);
        argument(x.rank() >= 1 && x.dim(-1) > 0, op, () -> "x " + x.describe()
                + " needs a non-empty last dimension to normalise over");
        return x.dim(-1);
    }

    /** A per-row statistic (LayerNorm mean or rstd): F32 with one value per row. */
    static void rowStatistic(String op, String argument, Tensor t, long rows) {
        dtype(op, argument, t, DType.F32);
        argument(t.numel() == rows, op, () -> argument + " " + t.describe() + " must hold one value per row ("
                + rows + " rows)");
    }

    // ---------------------------------------------------------------- tokens

    /** F32 x [N, T, D], I32 ids [N, K], F32 out [N, K, D]; returns {N, T, K, D}. Ids are range-checked apart. */
    public static int[] gatherRows(Tensor x, Tensor ids, Tensor out) {
        String op = "gatherRows";
        int[] s = tokens(op, "x", x);
        dtype(op, "ids", ids, DType.I32);
        shape(op, "ids", ids, s[0], -1);
        int kept = ids.dim(1);
        dtype(op, "out", out, DType.F32);
        shape(op, "out", out, s[0], kept, s[2]);
        return new int[] {s[0], s[1], kept, s[2]};
    }

    /** F32 x [N, K, D], I32 ids [N, K], F32 out [N, T, D] with K ≤ T; returns {N, T, K, D}. */
    public static int[] scatterRows(Tensor x, Tensor ids, Tensor out) {
        String op = "scatterRows";
        int[] s = tokens(op, "x", x);
        int samples = s[0], kept = s[1], width = s[2];
        dtype(op, "ids", ids, DType.I32);
        shape(op, "ids", ids, samples, kept);
        dtype(op, "out", out, DType.F32);
        shape(op, "out", out, samples, -1, width);
        int tokens = out.dim(1);
        argument(kept <= tokens, op, () -> kept + " kept rows do not fit in " + tokens + " tokens");
        return new int[] {samples, tokens, kept, width};
    }

    /** F32 x [N, T, D] with T > 0, out [N, D]; returns {N, T, D}. */
    public static int[] meanTokens(Tensor x, Tensor out) {
        String op = "meanTokens";
        int[] s = tokens(op, "x", x);
        argument(s[1] > 0, op, () -> "x " + x.describe() + " has no tokens to average");
        dtype(op, "out", out, DType.F32);
        shape(op, "out", out, s[0], s[2]);
        return s;
    }

    /** F32 dOut [N, D], dx [N, T, D]; returns {N, T, D}. */
    public static int[] meanTokensBackward(Tensor dOut, Tensor dx) {
        String op = "meanTokensBackward";
        int[] s = tokens(op, "dx", dx);
        dtype(op, "dOut", dOut, DType.F32);
        shape(op, "dOut", dOut, s[0], s[2]);
        return s;
    }

    // ---------------------------------------------------------------- patches and embeddings

    /** Returns {N, C, H, W} of the image. */
    public static int[] patchify(Tensor image, int patch, Tensor out) {
        return patches("patchify", "image", image, "out", out, patch);
    }

    /**
     * F32 dImage [N, C, H, W] with H and W divisible by the patch, dOut its tokens' gradient [N, (H/p)·(W/p), C·p·p];
     * returns {N, C, H, W}.
     */
    public static int[] patchifyBackward(Tensor dOut, int patch, Tensor dImage) {
        return patches("patchifyBackward", "dImage", dImage, "dOut", dOut, patch);
    }

    /**
     * F32 tokens [N, (H/p)·(W/p), C·p·p] and the image out [N, C, H, W] they fill, H and W divisible by the patch;
     * returns {N, C, H, W}.
     */
    public static int[] unpatchify(Tensor tokens, int patch, Tensor out) {
        return patches("unpatchify", "out", out, "tokens", tokens, patch);
    }

    /**
     * F32 dOut [N, C, H, W] with H and W divisible by the patch, dTokens [N, (H/p)·(W/p), C·p·p]; returns {N, C, H, W}.
     */
    public static int[] unpatchifyBackward(Tensor dOut, int patch, Tensor dTokens) {
        return patches("unpatchifyBackward", "dOut", dOut, "dTokens", dTokens, patch);
    }

    /**
     * An F32 image [N, C, H, W] whose H and W the patch divides, and its F32 patch tokens [N, (H/p)·(W/p), C·p·p];
     * returns {N, C, H, W}.
     */
    private static int[] patches(String op, String imageName, Tensor image, String tokensName, Tensor tokens,
                                 int patch) {
        int[] dims = image(op, imageName, image, patch);
        dtype(op, tokensName, tokens, DType.F32);
        shape(op, tokensName, tokens, dims[0], (dims[2] / patch) * (dims[3] / patch), dims[1] * patch * patch);
        return dims;
    }

    /** An F32 image [N, C, H, W] whose H and W the patch divides; returns {N, C, H, W}. */
    private static int[] image(String op, String argument, Tensor image, int patch) {
        dtype(op, argument, image, DType.F32);
        rank(op, argument, image, 4);
        argument(patch >= 1, op, () -> "patch must be at least 1, got " + patch);
        int height = image.dim(2), width = image.dim(3);
        argument(height % patch == 0 && width % patch == 0, op, () -> argument + " " + image.describe()
                + ": height " + height + " and width " + width + " must be divisible by the patch size " + patch);
        return new int[] {image.dim(0), image.dim(1), height, width};
    }

    /** F32 out [gridH·gridW, D] with D a positive multiple of 4; returns D. */
    public static int positionEmbedding2d(int gridH, int gridW, float interpolationScale, Tensor out) {
        String op = "positionEmbedding2d";
        argument(gridH >= 1 && gridW >= 1, op, () -> "grid must be at least 1×1, got " + gridH + "×" + gridW);
        argument(interpolationScale > 0 && Float.isFinite(interpolationScale), op,
                () -> "interpolationScale must be positive and finite, got " + interpolationScale);
        dtype(op, "out", out, DType.F32);
        shape(op, "out", out, gridH * gridW, -1);
        int dim = out.dim(1);
        argument(dim > 0 && dim % 4 == 0, op, () -> "embedding size " + dim + " must be a positive multiple of 4");
        return dim;
    }

    /** F32 t [N], out [N, size] with size ≥ 1; returns size. */
    public static int timestepEmbedding(Tensor t, Tensor out) {
        String op = "timestepEmbedding";
        dtype(op, "t", t, DType.F32);
        rank(op, "t", t, 1);
        dtype(op, "out", out, DType.F32);
        shape(op, "out", out, t.dim(0), -1);
        int size = out.dim(1);
        argument(size >= 1, op, () -> "embedding size must be at least 1, got " + size);
        return size;
    }

    // ---------------------------------------------------------------- loss

    /** Returns {N, C, H, W}; the mask's contents are checked apart by {@link #keptPatches}. */
    public static int[] edmLoss(Tensor denoised, Tensor target, Tensor weight, Tensor mask, int patch,
                                Tensor perSample) {
        String op = "edmLoss";
        int[] dims = lossInputs(op, denoised, target, weight, mask, patch);
        dtype(op, "perSample", perSample, DType.F32);
        shape(op, "perSample", perSample, dims[0]);
        return dims;
    }

    /** Returns {N, C, H, W}; the mask's contents are checked apart by {@link #keptPatches}. */
    public static int[] edmLossBackward(Tensor denoised, Tensor target, Tensor weight, Tensor mask, int patch,
                                        Tensor dDenoised) {
        String op = "edmLossBackward";
        int[] dims = lossInputs(op, denoised, target, weight, mask, patch);
        dtype(op, "dDenoised", dDenoised, DType.F32);
        shape(op, "dDenoised", dDenoised, dims[0], dims[1], dims[2], dims[3]);
        return dims;
    }

    private static int[] lossInputs(String op, Tensor denoised, Tensor target, Tensor weight, Tensor mask,
                                    int patch) {
        dtype(op, "denoised", denoised, DType.F32);
        rank(op, "denoised", denoised, 4);
        sameShapeF32(op, "denoised", denoised, "target", target);
        int samples = denoised.dim(0), height = denoised.dim(2), width = denoised.dim(3);
        argument(samples > 0, op, () -> "denoised " + denoised.describe() + " has no samples");
        argument(patch >= 1, op, () -> "patch must be at least 1, got " + patch);
        argument(height % patch == 0 && width % patch == 0, op, () -> "denoised " + denoised.describe()
                + ": height " + height + " and width " + width + " must be divisible by the patch size " + patch);
        dtype(op, "weight", weight, DType.F32);
        shape(op, "weight", weight, samples);
        if (mask != null) {
            dtype(op, "mask", mask, DType.F32);
            shape(op, "mask", mask, samples, (height / patch) * (width / patch));
        }
        return new int[] {samples, denoised.dim(1), height, width};
    }

    /**
     * Per sample, the number (sum of 1 − mask) of kept patches of a mask Java can read (a device mask is
     * downloaded first), or {@code patches} without a mask; a sample that keeps none is refused, as its loss
     * would be 0/0.
     */
    public static double[] keptPatches(String op, Tensor mask, int samples, int patches) {
        double[] sums = new double[samples];
        for (int n = 0; n < samples; n++) {
            if (mask == null) {
                sums[n] = patches;
                continue;
            }
            double sum = 0;
            for (int p = 0; p < patches; p++) {
                sum += 1 - (double) mask.getFloat((long) n * patches + p);
            }
            int sample = n;
            argument(sum > 0, op, () -> "sample " + sample + " keeps no patch (mask removes all " + patches
                    + "), so its loss is undefined");
            sums[n] = sum;
        }
        return sums;
    }

    // ---------------------------------------------------------------- optimizer and random numbers

    /**
     * F32 param, grad and moments m, v of one shape; betas in [0, 1), a positive epsilon, and a step counted from 1
     * (bias correction divides by 1 − βᵗ).
     */
    public static void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, float beta1, float beta2, float epsilon,
                             long step) {
        String op = "adamw";
        sameShapeF32(op, "param", param, "grad", grad);
        sameShapeF32(op, "param", param, "m", m);
        sameShapeF32(op, "param", param, "v", v);
        argument(step >= 1, op, () -> "step counts from 1, got " + step);
        argument(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, op,
                () -> "betas must lie in [0, 1), got " + beta1 + " and " + beta2);
        argument(epsilon > 0, op, () -> "epsilon must be positive, got " + epsilon);
    }

    /** F32 ema and param of one shape and a decay in [0, 1]. */
    public static void emaUpdate(Tensor ema, Tensor param, float decay) {
        String op = "emaUpdate";
        sameShapeF32(op, "ema", ema, "param", param);
        argument(decay >= 0 && decay <= 1, op, () -> "decay must lie in [0, 1], got " + decay);
    }

    /** The list form of {@link #adamw}: equal lengths, every entry valid, param, m and v tensors all distinct. */
    public static void adamwLists(List<Tensor> params, List<Tensor> grads, List<Tensor> m, List<Tensor> v, float beta1,
                                  float beta2, float epsilon, long step) {
        String op = "adamw";
        sameSizes(op, List.of("params", "grads", "m", "v"), params, grads, m, v);
        for (int i = 0; i < params.size(); i++) {
            try {
                adamw(params.get(i), grads.get(i), m.get(i), v.get(i), beta1, beta2, epsilon, step);
            } catch (IllegalArgumentException error) {
                throw new IllegalArgumentException("entry " + i + " of the lists: " + error.getMessage(), error);
            }
        }
        distinct(op, "param, m and v", params, m, v);
    }

    /**
     * {@link #adamwLists} with bf16 working copies: one BF16 copy per parameter, of its shape, distinct from every
     * other written tensor.
     */
    public static void adamwCopyLists(List<Tensor> params, List<Tensor> grads, List<Tensor> m, List<Tensor> v,
                                      List<Tensor> copies, float beta1, float beta2, float epsilon, long step) {
        String op = "adamw";
        sameSizes(op, List.of("params", "copies"), params, copies);
        adamwLists(params, grads, m, v, beta1, beta2, epsilon, step);
        for (int i = 0; i < params.size(); i++) {
            try {
                dtype(op, "copy", copies.get(i), DType.BF16);
                sameShapeOutput(op, "param", params.get(i), "copy", copies.get(i));
            } catch (IllegalArgumentException error) {
                throw new IllegalArgumentException("entry " + i + " of the lists: " + error.getMessage(), error);
            }
        }
        distinct(op, "param, m, v and copy", params, m, v, copies);
    }

    /** The list form of {@link #emaUpdate}: equal lengths, every entry valid, the averages distinct. */
    public static void emaLists(List<Tensor> emas, List<Tensor> params, float decay) {
        String op = "emaUpdate";
        sameSizes(op, List.of("emas", "params"), emas, params);
        for (int i = 0; i < emas.size(); i++) {
            try {
                emaUpdate(emas.get(i), params.get(i), decay);
            } catch (IllegalArgumentException error) {
                throw new IllegalArgumentException("entry " + i + " of the lists: " + error.getMessage(), error);
            }
        }
        distinct(op, "ema", emas);
    }

    @SafeVarargs
    private static void sameSizes(String op, List<String> names, List<Tensor>... lists) {
        for (int i = 0; i < lists.length; i++) {
            String name = names.get(i);
            List<Tensor> list = lists[i];
            argument(list != null, op, () -> name + " is null");
            argument(list.size() == lists[0].size(), op, () -> name + " has " + list.size()
                    + " tensors, " + names.get(0) + " " + lists[0].size());
        }
    }

    /** A tensor written twice in one list op would race on a GPU (the entries run concurrently). */
    @SafeVarargs
    private static void distinct(String op, String what, List<Tensor>... written) {
        Set<Tensor> seen = Collections.newSetFromMap(new IdentityHashMap<>());
        for (List<Tensor> list : written) {
            for (Tensor t : list) {
                argument(seen.add(t), op, () -> what + " tensors must be distinct; " + t.describe() + " appears twice");
            }
        }
    }

    /** uniform and normal: F32 out whose counters offset, offset + 1, … stay below 2^63. */
    public static void random(String op, long offset, Tensor out) {
        dtype(op, "out", out, DType.F32);
        argument(offset >= 0, op, () -> "offset must be non-negative, got " + offset);
        argument(offset <= Long.MAX_VALUE - out.numel(), op, () -> out.numel() + " elements from offset " + offset
                + " run past the last counter index 2^63 - 1");
    }
}
