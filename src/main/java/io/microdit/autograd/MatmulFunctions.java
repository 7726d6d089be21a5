package io.microdit.autograd;

import io.microdit.backend.Backend;
import io.microdit.tensor.DType;
import io.microdit.tensor.Tensor;

/**
 * Differentiable matrix products. Weights use PyTorch's Linear layout [out, in]. Under a {@link Precision#BF16}
 * graph both operands of every product, forward and backward, are bf16 (the graph's cached copies of x and the
 * weight, a fresh copy of the incoming gradient) and the results accumulate in F32; the bias gradient sums the
 * F32 gradient.
 */
public final class MatmulFunctions {
    private MatmulFunctions() {
    }

    /**
     * {@code y = x · weightᵀ + bias}: x [..., in], weight [out, in] (or [out, ...] read as [out, in], e.g. the
     * patch embedding's conv weight [D, C, p, p]), bias [out] or null, y [..., out].
     * Backward: dx = dy · W, dW += dyᵀ · x (over all rows), db += sum of dy's rows.
     */
    public static Variable linear(Graph g, Variable x, Variable weight, Variable bias) {
        return linear(g, x, weight, bias, g.precision());
    }

    /**
     * {@link #linear(Graph, Variable, Variable, Variable)} in the given precision; {@link Precision#F32} keeps a
     * layer in F32 inside a bf16 graph (the MoE router, whose top-k must not flip on rounding).
     */
    public static Variable linear(Graph g, Variable x, Variable weight, Variable bias, Precision precision) {
        return linear(g, x, weight, bias, precision, DType.F32);
    }

    /**
     * {@link #linear(Graph, Variable, Variable, Variable)} storing y as {@code outType}: BF16 (bf16 graphs only) rounds
     * the F32 result once as the product stores it — for an activation whose readers all take BF16 (PyTorch autocast
     * keeps a linear's output in bf16 the same way) — halving what is kept for the backward and moved to the next op.
     */
    public static Variable linear(Graph g, Variable x, Variable weight, Variable bias, DType outType) {
        return linear(g, x, weight, bias, g.precision(), outType);
    }

    private static Variable linear(Graph g, Variable x, Variable weight, Variable bias, Precision precision,
                                   DType outType) {
        Backend be = g.backend();
        boolean bf16 = precision == Precision.BF16;
        requireOutputType("linear", bf16, outType);
        int outFeatures = weight.dim(0);
        int in = (int) (weight.value().numel() / outFeatures);
        if (x.dim(-1) != in) {
            throw new IllegalArgumentException("linear: x " + x.value().describe() + " does not end in the weight's "
                    + "input size " + in + " (weight " + weight.value().describe() + ")");
        }
        int[] outShape = x.shape();
        outShape[outShape.length - 1] = outFeatures;
        Tensor x2 = (bf16 ? g.matmulOperand(x) : x.value()).reshape(-1, in);
        Tensor w2 = (bf16 ? g.matmulOperand(weight) : weight.value()).reshape(outFeatures, in);
        Tensor y = g.output(outType, outShape);
        be.matmul(x2, false, w2, true, bias == null ? null : bias.value(), y.reshape(-1, outFeatures), false);
        return g.result(y, dy -> {
            Tensor dy2 = (bf16 ? g.matmulGradient(dy) : dy).reshape(-1, outFeatures);
            // Each product writes its gradient contribution in place (a first one) or adds to the gradient (a later
            // one): no temporary and no separate add.
            if (x.requiresGrad()) {
                Variable.GradientTarget dx = x.gradientTarget(be);
                be.matmul(dy2, false, w2, false, null, dx.tensor().reshape(-1, in), dx.accumulate());
            }
            if (weight.requiresGrad()) {
                Variable.GradientTarget dw = weight.gradientTarget(be);
                be.matmul(dy2, true, x2, false, null, dw.tensor().reshape(outFeatures, in), dw.accumulate());
            }
            if (bias != null && bias.requiresGrad()) {
                Variable.GradientTarget db = bias.gradientTarget(be);
                be.sumRows(dy.reshape(-1, outFeatures), db.tensor(), db.accumulate());
            }
        }, x, weight, bias);
    }

    /**
     * {@link #linear} split into {@code parts} equal blocks of output features, each its own variable — q|k|v of a
     * fused qkv projection — computed as one product per part with the weight's row block (a contiguous view of
     * the same parameter, so names and checkpoints are unchanged). Same FLOPs as {@code chunk(linear(...))}, but
     * no part is copied out of a wide output and no wide gradient is assembled in the backward: at MicroDiT sizes
     * those copies moved as many bytes as the projection itself.
     */
    public static Variable[] linearParts(Graph g, Variable x, Variable weight, Variable bias, int parts) {
        DType[] types = new DType[parts];
        java.util.Arrays.fill(types, DType.F32);
        return linearParts(g, x, weight, bias, types);
    }

    /**
     * {@link #linearParts(Graph, Variable, Variable, Variable, int)} with one stored type per part (see
     * {@link #linear(Graph, Variable, Variable, Variable, DType)}); {@code outTypes.length} is the number of parts.
     */
    public static Variable[] linearParts(Graph g, Variable x, Variable weight, Variable bias, DType... outTypes) {
        Backend be = g.backend();
        boolean bf16 = g.precision() == Precision.BF16;
        int parts = outTypes.length;
        for (DType type : outTypes) {
            requireOutputType("linearParts", bf16, type);
        }
        int outFeatures = weight.dim(0);
        int in = (int) (weight.value().numel() / outFeatures);
        if (parts < 1 || outFeatures % parts != 0) {
            throw new IllegalArgumentException("linearParts: " + outFeatures + " output features do not split into "
                    + parts + " equal parts");
        }
        if (x.dim(-1) != in) {
            throw new IllegalArgumentException("linearParts: x " + x.value().describe() + " does not end in the "
                    + "weight's input size " + in + " (weight " + weight.value().describe() + ")");
        }
        int width = outFeatures / parts;
        int[] outShape = x.shape();
        outShape[outShape.length - 1] = width;
        Tensor x2 = (bf16 ? g.matmulOperand(x) : x.value()).reshape(-1, in);
        Tensor w2 = (bf16 ? g.matmulOperand(weight) : weight.value()).reshape(outFeatures, in);
        Variable[] out = new Variable[parts];
        for (int p = 0; p < parts; p++) {
            int first = p * width;
            Tensor wp = w2.rows(first, width);
            Tensor y = g.output(outTypes[p], outShape);
            be.matmul(x2, false, wp, true, bias == null ? null : bias.value().rows(first, width),
                    y.reshape(-1, width), false);
            out[p] = g.result(y, dy -> {
                Tensor dy2 = (bf16 ? g.matmulGradient(dy) : dy).reshape(-1, width);
                if (x.requiresGrad()) {
                    be.matmul(dy2, false, wp, false, null, x.gradBuffer(be).reshape(-1, in), true);
                }
                if (weight.requiresGrad()) {
                    be.matmul(dy2, true, x2, false, null,
                            weight.gradBuffer().reshape(outFeatures, in).rows(first, width), true);
                }
                if (bias != null && bias.requiresGrad()) {
                    be.sumRows(dy.reshape(-1, width), bias.gradBuffer().rows(first, width), true);
                }
            }, x, weight, bias);
        }
        return out;
    }

    /**
     * The two-layer GELU feed-forward {@code gelu(x · w1) · w2} of batched matrices, as {@link #matmul} takes them
     * (the MoE's experts: x [E, R, D], w1 [E, D, H], w2 [E, H, D]), with the GELU in the products' epilogues
     * ({@link Backend#matmulGelu}, {@link Backend#matmulGeluBackward}): the values and gradients of
     * {@code matmul(gelu(matmul(x, w1, activationType), tanh, matmulOperandType), w2, outType)} bit for bit, without
     * the separate GELU passes reading the pre-activation and writing and reading its gradient.
     */
    public static Variable geluProducts(Graph g, Variable x, Variable w1, Variable w2, boolean tanhApproximation,
                                        DType outType) {
        Backend be = g.backend();
        Tensor xv = g.matmulOperand(x), w1v = g.matmulOperand(w1), w2v = g.matmulOperand(w2);
        requireOutputType("geluProducts", xv.dtype() == DType.BF16, outType);
        int[] hiddenShape = productShape("geluProducts", xv, w1v);
        // The pre-activation is kept for the backward, as the separate matmul's output would be.
        Tensor pre = g.output(g.activationType(), hiddenShape);
        Tensor hidden = g.output(g.matmulOperandType(), hiddenShape);
        be.matmulGelu(xv, false, w1v, false, null, pre, hidden, tanhApproximation);
        Tensor out = g.output(outType, productShape("geluProducts", hidden, w2v));
        be.matmul(hidden, false, w2v, false, null, out, false);
        return g.result(out, dOutGradient -> {
            Tensor dOut = g.matmulGradient(dOutGradient);
            // The separate ops' order: dHidden (now dPre, GELU's backward fused), dW2, dX, dW1. dPre has the type the
            // pre-activation's gradient had there: BF16 for a bf16 graph's BF16 value with one reader.
            Tensor dPre = g.output(pre.dtype(), hiddenShape);
            be.matmulGeluBackward(dOut, false, w2v, true, pre, dPre, tanhApproximation);
            if (w2.requiresGrad()) {
                Variable.GradientTarget d = w2.gradientTarget(be);
                be.matmul(hidden, true, dOut, false, null, d.tensor(), d.accumulate());
            }
            if (x.requiresGrad()) {
                Variable.GradientTarget d = x.gradientTarget(be);
                be.matmul(dPre, false, w1v, true, null, d.tensor(), d.accumulate());
            }
            if (w1.requiresGrad()) {
                Variable.GradientTarget d = w1.gradientTarget(be);
                be.matmul(xv, true, dPre, false, null, d.tensor(), d.accumulate());
            }
        }, x, w1, w2);
    }

    /**
     * The SwiGLU feed-forward {@code w3(silu(w1 x) · w2 x)} of three linears (weights [out, in] as {@link #linear},
     * biases optional) with the gate in the products' epilogues ({@link Backend#matmulSwiglu},
     * {@link Backend#matmulSwigluBackward}): the values and gradients of
     * {@code linear(swigluGate(linear(x, w1, b1, t), linear(x, w2, b2, t), matmulOperandType), w3, b3, outType)}
     * (t the graph's activation type) bit for bit, without the gate's passes reading w2's product and writing and
     * reading the gate's gradient; x's gradient is that of the separate linears given x as F32 (both contributions
     * summed in F32: separate linears on a BF16 x round the first to BF16).
     */
    public static Variable swigluLinears(Graph g, Variable x, Variable w1, Variable b1, Variable w2, Variable b2,
                                         Variable w3, Variable b3, DType outType) {
        Backend be = g.backend();
        boolean bf16 = g.precision() == Precision.BF16;
        requireOutputType("swigluLinears", bf16, outType);
        int hidden = w1.dim(0), in = x.dim(-1), out = w3.dim(0);
        if (w1.value().numel() != (long) hidden * in || !java.util.Arrays.equals(w2.shape(), w1.shape())
                || w3.value().numel() != (long) out * hidden) {
            throw new IllegalArgumentException("swigluLinears: x " + x.value().describe() + " needs w1 and w2 [hidden, "
                    + in + "] and w3 [out, hidden], got " + w1.value().describe() + ", " + w2.value().describe()
                    + ", " + w3.value().describe());
        }
        Tensor x2 = (bf16 ? g.matmulOperand(x) : x.value()).reshape(-1, in);
        Tensor w1v = (bf16 ? g.matmulOperand(w1) : w1.value()).reshape(hidden, in);
        Tensor w2v = (bf16 ? g.matmulOperand(w2) : w2.value()).reshape(hidden, in);
        Tensor w3v = (bf16 ? g.matmulOperand(w3) : w3.value()).reshape(out, hidden);
        int rows = x2.dim(0);
        // a = w1 x and b = w2 x are kept for the backward, as the separate linears' outputs would be.
        Tensor a = g.output(g.activationType(), rows, hidden), b = g.output(g.activationType(), rows, hidden);
        Tensor gate = g.output(g.matmulOperandType(), rows, hidden);
        be.matmul(x2, false, w1v, true, b1 == null ? null : b1.value(), a, false);
        be.matmulSwiglu(x2, false, w2v, true, b2 == null ? null : b2.value(), a, b, gate);
        int[] outShape = x.shape();
        outShape[outShape.length - 1] = out;
        Tensor y = g.output(outType, outShape);
        be.matmul(gate, false, w3v, true, b3 == null ? null : b3.value(), y.reshape(-1, out), false);
        return g.result(y, dy -> {
            Tensor dy2 = (bf16 ? g.matmulGradient(dy) : dy).reshape(-1, out);
            // The separate ops' order: w3's linear (the gate's gradient, now fused with the gate's backward into da
            // and db, of the type a and b's gradients had there), then w2's linear, then w1's.
            Tensor da = g.output(a.dtype(), rows, hidden), db = g.output(b.dtype(), rows, hidden);
            be.matmulSwigluBackward(dy2, false, w3v, false, a, b, da, db);
            linearWeightGradients(be, dy2, dy.reshape(-1, out), gate, w3, b3);
            // x gets two contributions here, w2's then w1's: the first goes to an F32 gradient, so it is neither
            // rounded to BF16 (as a BF16 value's single contribution would be) nor widened back by a convert before
            // the second is added (6 bytes per element of x less than a BF16 store, a convert and the F32 sum).
            linearInputGradients(be, db, x2, w2v, x.requiresGrad() ? x.f32GradientTarget(be) : null, w2, b2);
            linearInputGradients(be, da, x2, w1v, x.requiresGrad() ? x.gradientTarget(be) : null, w1, b1);
        }, x, w1, b1, w2, b2, w3, b3);
    }

    /** A linear's backward given its dy (BF16 in a bf16 graph): dx into {@code dx} (null: none), then dW and db. */
    private static void linearInputGradients(Backend be, Tensor dy, Tensor x2, Tensor w, Variable.GradientTarget dx,
                                             Variable weight, Variable bias) {
        if (dx != null) {
            be.matmul(dy, false, w, false, null, dx.tensor().reshape(-1, x2.dim(1)), dx.accumulate());
        }
        linearWeightGradients(be, dy, dy, x2, weight, bias);
    }

    /** dW += dyᵀ · x (dy as the product reads it) and db += the rows of dy (as the linear got it). */
    private static void linearWeightGradients(Backend be, Tensor productDy, Tensor dy, Tensor x2, Variable weight,
                                              Variable bias) {
        if (weight.requiresGrad()) {
            Variable.GradientTarget dw = weight.gradientTarget(be);
            be.matmul(productDy, true, x2, false, null, dw.tensor().reshape(productDy.dim(1), x2.dim(1)),
                    dw.accumulate());
        }
        if (bias != null && bias.requiresGrad()) {
            Variable.GradientTarget db = bias.gradientTarget(be);
            be.sumRows(dy, db.tensor(), db.accumulate());
        }
    }

    /** The shape of a · b (no transposes, same rank, as {@link #matmul} takes them). */
    private static int[] productShape(String op, Tensor a, Tensor b) {
        if (a.rank() != b.rank() || a.rank() < 2) {
            throw new IllegalArgumentException(op + ": a " + a.describe() + " and b " + b.describe()
                    + " must have the same rank, at least 2");
        }
        int[] shape = a.shape();
        shape[shape.length - 1] = b.dim(-1);
        return shape;
    }

    /** A linear's output is F32, or BF16 in a bf16 graph (whose products have bf16 operands). */
    private static void requireOutputType(String op, boolean bf16, DType outType) {
        if (outType != DType.F32 && !(bf16 && outType == DType.BF16)) {
            throw new IllegalArgumentException(op + ": output type " + outType + " needs "
                    + (outType == DType.BF16 ? "a bf16 graph" : "F32 or BF16"));
        }
    }

    /**
     * Batched {@code out = op(a) · op(b)}: a and b have the same batch dimensions (or are both rank 2).
     */
    public static Variable matmul(Graph g, Variable a, boolean transposeA, Variable b, boolean transposeB) {
        return matmul(g, a, transposeA, b, transposeB, DType.F32);
    }

    /**
     * {@link #matmul(Graph, Variable, boolean, Variable, boolean)} storing out as {@code outType}: BF16 needs a bf16
     * graph (see {@link #linear(Graph, Variable, Variable, Variable, DType)}).
     */
    public static Variable matmul(Graph g, Variable a, boolean transposeA, Variable b, boolean transposeB,
                                  DType outType) {
        Backend be = g.backend();
        Tensor av = g.matmulOperand(a), bv = g.matmulOperand(b);
        if (av.rank() != bv.rank()) {
            throw new IllegalArgumentException("matmul: a " + av.describe() + " and b " + bv.describe()
                    + " must have the same rank (use linear for a shared weight)");
        }
        int m = transposeA ? av.dim(-1) : av.dim(-2);
        int n = transposeB ? bv.dim(-2) : bv.dim(-1);
        int[] outShape = (av.rank() >= bv.rank() ? av : bv).shape();
        outShape[outShape.length - 2] = m;
        outShape[outShape.length - 1] = n;
        requireOutputType("matmul", av.dtype() == DType.BF16, outType);
        Tensor out = g.output(outType, outShape);
        be.matmul(av, transposeA, bv, transposeB, null, out, false);
        return g.result(out, dOutF32 -> {
            Tensor dOut = g.matmulGradient(dOutF32);
            if (a.requiresGrad()) {
                // dA = dOut · op(b)ᵀ, or its transpose when a was transposed, written into (or added to) a's gradient.
                Variable.GradientTarget da = a.gradientTarget(be);
                if (transposeA) {
                    be.matmul(bv, transposeB, dOut, true, null, da.tensor(), da.accumulate());
                } else {
                    be.matmul(dOut, false, bv, !transposeB, null, da.tensor(), da.accumulate());
                }
            }
            if (b.requiresGrad()) {
                Variable.GradientTarget db = b.gradientTarget(be);
                if (transposeB) {
                    be.matmul(dOut, true, av, transposeA, null, db.tensor(), db.accumulate());
                } else {
                    be.matmul(av, !transposeA, dOut, false, null, db.tensor(), db.accumulate());
                }
            }
        }, a, b);
    }
}
