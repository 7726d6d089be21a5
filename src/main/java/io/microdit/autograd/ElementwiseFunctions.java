package io.microdit.autograd;

import io.microdit.backend.Backend;
import io.microdit.tensor.Tensor;

/**
 * Differentiable elementwise ops, the adaLN modulation and gated residual, column slices and reshapes.
 *
 * <p>Gradients that are the output gradient itself (dA of an add, dx of a gated residual, a reshape) go through
 * {@link Variable#addGradShared}, since that tensor also belongs to the output and to the other inputs.
 * Column slices accumulate straight into the sliced variable's gradient buffer, so several slices of one
 * variable (the six adaLN chunks, q | k | v) add up without extra buffers.
 */
public final class ElementwiseFunctions {
    private ElementwiseFunctions() {
    }

    /**
     * {@code a + b}, with b of a's shape or a suffix of it (broadcast over a's leading dims, as a bias).
     * Backward: da = dOut; db = dOut summed over the broadcast dims.
     */
    public static Variable add(Graph g, Variable a, Variable b) {
        Backend be = g.backend();
        Tensor out = g.output(a.shape());
        be.add(a.value(), b.value(), out);
        boolean sameShape = a.value().sameShape(b.value());
        return g.result(out, dOut -> {
            a.addGradShared(dOut, be);
            if (b.requiresGrad()) {
                if (sameShape) {
                    b.addGradShared(dOut, be);
                } else {
                    int inner = Math.toIntExact(b.value().numel());
                    be.sumRows(dOut.reshape(-1, inner), b.gradBuffer(be).reshape(inner), true);
                }
            }
        }, a, b);
    }

    /** {@code a * b}, same shapes. Backward: da = dOut·b, db = dOut·a. */
    public static Variable mul(Graph g, Variable a, Variable b) {
        Backend be = g.backend();
        requireSameShape("mul", a, b);
        Tensor out = g.output(a.shape());
        be.mul(a.value(), b.value(), out);
        return g.result(out, dOut -> {
            if (a.requiresGrad()) {
                Tensor da = g.output(a.shape());
                be.mul(dOut, b.value(), da);
                a.addGrad(da, be);
            }
            if (b.requiresGrad()) {
                Tensor db = g.output(b.shape());
                be.mul(dOut, a.value(), db);
                b.addGrad(db, be);
            }
        }, a, b);
    }

    /** {@code alpha * x}. Backward: dx = alpha·dOut. */
    public static Variable scale(Graph g, Variable x, float alpha) {
        Backend be = g.backend();
        Tensor out = g.output(x.shape());
        be.scale(x.value(), alpha, out);
        return g.result(out, dOut -> {
            if (x.requiresGrad()) {
                Tensor dx = g.output(x.shape());
                be.scale(dOut, alpha, dx);
                x.addGrad(dx, be);
            }
        }, x);
    }

    /**
     * adaLN modulation {@code x·(1 + scale) + shift}: x [N, T, D], shift and scale [N, D] (per sample).
     * Backward: dx = dOut·(1 + scale), dShift = Σ_t dOut, dScale = Σ_t dOut·x.
     */
    public static Variable modulate(Graph g, Variable x, Variable shift, Variable scale) {
        Backend be = g.backend();
        Tensor out = g.output(x.shape());
        be.modulate(x.value(), shift.value(), scale.value(), out);
        return g.result(out, dOut -> {
            Tensor dx = g.output(x.shape());
            Tensor dShift = g.output(shift.shape());
            Tensor dScale = g.output(scale.shape());
            be.modulateBackward(dOut, x.value(), scale.value(), dx, dShift, dScale);
            x.addGrad(dx, be);
            shift.addGrad(dShift, be);
            scale.addGrad(dScale, be);
        }, x, shift, scale);
    }

    /**
     * Gated residual {@code x + gate·f}: x and f [N, T, D], gate [N, D] (per sample).
     * Backward: dx = dOut, dGate = Σ_t dOut·f, dF = gate·dOut.
     */
    public static Variable gatedResidual(Graph g, Variable x, Variable gate, Variable f) {
        Backend be = g.backend();
        Tensor out = g.output(x.shape());
        be.gatedResidual(x.value(), gate.value(), f.value(), out);
        return g.result(out, dOut -> {
            x.addGradShared(dOut, be);
            if (gate.requiresGrad() || f.requiresGrad()) {
                Tensor dGate = g.output(gate.shape());
                Tensor dF = g.output(f.gradientType(), f.shape());
                be.gatedResidualBackward(dOut, gate.value(), f.value(), dGate, dF);
                gate.addGrad(dGate, be);
                f.addGrad(dF, be);
            }
        }, x, gate, f);
    }

    /**
     * Columns [start, start + width) of the last dimension: x [..., C] to [..., width]. Backward adds dOut into
     * those columns of x's gradient.
     */
    public static Variable sliceColumns(Graph g, Variable x, int start, int width) {
        Backend be = g.backend();
        int columns = x.dim(-1);
        if (start < 0 || width < 0 || (long) start + width > columns) {
            throw new IllegalArgumentException("sliceColumns: columns [" + start + ", " + ((long) start + width)
                    + ") do not fit in x " + x.value().describe());
        }
        int[] outShape = x.shape();
        outShape[outShape.length - 1] = width;
        Tensor out = g.output(outShape);
        be.sliceColumns(x.value().reshape(-1, columns), start, out.reshape(-1, width));
        return g.result(out, dOut -> {
            if (x.requiresGrad()) {
                be.sliceColumnsBackward(dOut.reshape(-1, width), start, x.gradBuffer(be).reshape(-1, columns));
            }
        }, x);
    }

    /** Splits the last dimension into {@code count} equal slices, as torch's {@code chunk}. */
    public static Variable[] chunk(Graph g, Variable x, int count) {
        int columns = x.dim(-1);
        if (count <= 0 || columns % count != 0) {
            throw new IllegalArgumentException("chunk: the last dimension of x " + x.value().describe()
                    + " does not split into " + count + " equal chunks");
        }
        int width = columns / count;
        Variable[] chunks = new Variable[count];
        for (int i = 0; i < count; i++) {
            chunks[i] = sliceColumns(g, x, i * width, width);
        }
        return chunks;
    }

    /** The same elements under another shape (a view; one -1 is inferred). The gradient is reshaped back. */
    public static Variable reshape(Graph g, Variable x, int... shape) {
        Backend be = g.backend();
        Tensor out = x.value().reshape(shape);
        int[] inputShape = x.shape();
        // dOut is the output's own gradient, consumed here: x may adopt it as a view (no copy).
        return g.result(out, dOut -> x.addGrad(dOut.reshape(inputShape), be), x);
    }

    private static void requireSameShape(String op, Variable a, Variable b) {
        if (!a.value().sameShape(b.value())) {
            throw new IllegalArgumentException(op + ": b " + b.value().describe() + " must have the shape of a "
                    + a.value().describe());
        }
    }
}
