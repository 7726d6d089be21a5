package io.microdit.autograd;

import io.microdit.backend.Backend;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;

/**
 * A tensor in the autograd graph: its value, whether gradients flow to it, and its gradient once backward has
 * reached it. Intermediate variables hold their gradient in the step's scope; {@link Parameter}s in their own.
 * Gradients are F32, except that in a bf16 graph a BF16 value's gradient is BF16 while it has one contribution
 * (as PyTorch's autocast keeps a bf16 activation's gradient in bf16): the op that computes it rounds it once as it
 * stores it ({@link #gradientType}), and the backward GEMMs read it without a conversion. A second contribution
 * promotes the gradient to F32 and adds there, so sums of several contributions round once per term, not per add.
 */
public class Variable {
    private final Tensor value;
    private final boolean requiresGrad;
    private final Graph graph;
    private Tensor grad;

    Variable(Tensor value, boolean requiresGrad, Graph graph) {
        this.value = value;
        this.requiresGrad = requiresGrad;
        this.graph = graph;
    }

    /** The forward value (owned by the graph's scope, or the parameter's). */
    public Tensor value() {
        return value;
    }

    /** Whether a backward computes a gradient for this variable (false for constants). */
    public boolean requiresGrad() {
        return requiresGrad;
    }

    /** The accumulated gradient, or null when backward has not reached this variable. */
    public Tensor grad() {
        return grad;
    }

    /** The value's size along dimension {@code i}. */
    public int dim(int i) {
        return value.dim(i);
    }

    /** The value's shape (a copy). */
    public int[] shape() {
        return value.shape();
    }

    /** Back-propagates from this scalar (one element) through the graph that recorded it. */
    public void backward() {
        if (graph == null) {
            throw new IllegalStateException("backward() on a variable no grad scope recorded");
        }
        graph.backward(this);
    }

    /** The scope a lazily created gradient buffer goes to. */
    MemoryScope gradScope() {
        return graph.scope();
    }

    /**
     * The dtype an op should store this variable's next gradient contribution in: BF16 for a BF16 value of a bf16
     * graph that has no gradient yet (the contribution will be adopted as it is), else F32.
     */
    public DType gradientType() {
        boolean bf16 = graph != null && graph.precision() == Precision.BF16 && value.dtype() == DType.BF16
                && grad == null;
        return bf16 ? DType.BF16 : DType.F32;
    }

    /**
     * Adds {@code g} (F32, or BF16 as {@link #gradientType} allows) to this variable's gradient. The first gradient
     * is adopted without a copy, so {@code g} must belong to the caller alone (freshly computed); use
     * {@link #addGradShared} for a tensor that is also used elsewhere.
     */
    public void addGrad(Tensor g, Backend backend) {
        if (!requiresGrad) {
            return;
        }
        checkGradShape(g);
        if (grad == null && g.scope() == gradScope() && g.dtype() == gradientType()) {
            setGrad(g);
        } else {
            accumulate(g, backend);
        }
    }

    /** Adds {@code g} to this variable's gradient, copying it (in {@link #gradientType}) when it is the first. */
    public void addGradShared(Tensor g, Backend backend) {
        if (!requiresGrad) {
            return;
        }
        checkGradShape(g);
        if (grad == null) {
            DType type = gradientType();
            setGrad(Tensor.empty(gradScope(), type, value.shape()));
            if (g.dtype() == type) {
                backend.copy(g, grad);
            } else {
                backend.convert(g, grad);
            }
        } else {
            accumulate(g, backend);
        }
    }

    /** grad += g in F32: the gradient promoted to F32 first if it is BF16, a BF16 g widened (exactly) first. */
    private void accumulate(Tensor g, Backend backend) {
        Tensor sum = gradBuffer(backend);
        if (g.dtype() == DType.F32) {
            backend.axpy(1f, g, sum);
            return;
        }
        try (MemoryScope wide = backend.scope("gradient-widen")) {
            Tensor f32 = Tensor.empty(wide, DType.F32, g.shape());
            backend.convert(g, f32);
            backend.axpy(1f, f32, sum);
        }
    }

    /**
     * Where an op's contribution to this variable's gradient goes when the op can add to its output (the GEMMs'
     * {@code accumulate}, {@code sumRows}): {@code tensor} is written in full when {@code accumulate} is false, added
     * to when true.
     */
    public record GradientTarget(Tensor tensor, boolean accumulate) {
    }

    /**
     * The target of the next gradient contribution, for an op that writes it in place instead of handing a fresh
     * tensor to {@link #addGrad} (which would add a second contribution with a separate pass over memory): the first
     * contribution gets a new tensor of {@link #gradientType}, already adopted as the gradient, that the op
     * overwrites; a later one the F32 gradient ({@link #gradBuffer(Backend)}: a BF16 single contribution promoted
     * exactly first) that the op adds to. An op that adds {@code d} to it computes {@code old + d} as
     * {@link #addGrad}'s {@code axpy} does ({@code d + old}: the same bits, IEEE addition being commutative) when
     * it forms d before adding; see {@link Backend#matmul} for how a GEMM adds.
     */
    public GradientTarget gradientTarget(Backend backend) {
        if (grad == null) {
            setGrad(Tensor.empty(gradScope(), gradientType(), value.shape()));
            return new GradientTarget(grad, false);
        }
        return new GradientTarget(gradBuffer(backend), true);
    }

    /**
     * {@link #gradientTarget} for an op that adds more than one contribution to this variable in one backward: the
     * first gets a new F32 gradient (not zeroed: the op overwrites it) instead of one of {@link #gradientType}, so a
     * BF16 value's first contribution is not rounded to BF16 and widened back before the next is added.
     */
    public GradientTarget f32GradientTarget(Backend backend) {
        if (grad == null) {
            setGrad(Tensor.empty(gradScope(), DType.F32, value.shape()));
            return new GradientTarget(grad, false);
        }
        return new GradientTarget(gradBuffer(backend), true);
    }

    /** The gradient tensor, created as zeros when absent, for backward kernels that accumulate in place. */
    public Tensor gradBuffer() {
        if (grad == null) {
            setGrad(Tensor.zeros(gradScope(), DType.F32, value.shape()));
        } else if (grad.dtype() != DType.F32) {
            throw new IllegalStateException("gradBuffer(): " + this + " holds a " + grad.dtype() + " gradient; "
                    + "accumulating into it needs gradBuffer(backend), which promotes it to F32");
        }
        return grad;
    }

    /** {@link #gradBuffer()}, promoting a BF16 gradient (one contribution) to F32 first, exactly. */
    public Tensor gradBuffer(Backend backend) {
        if (grad != null && grad.dtype() == DType.BF16) {
            Tensor single = grad;
            Tensor promoted = Tensor.empty(gradScope(), DType.F32, value.shape());
            backend.convert(single, promoted);
            // The BF16 tensor stays in the step's scope until it closes (rare: a second contribution to a BF16
            // value); releasing it here could free a block that a later allocation reuses under the same address.
            clearGrad();
            setGrad(promoted);
        }
        return gradBuffer();
    }

    private void setGrad(Tensor g) {
        grad = g;
        if (graph != null) {
            graph.gradientSet(this);
        }
    }

    void clearGrad() {
        grad = null;
        if (graph != null) {
            graph.gradientCleared(this);
        }
    }

    private void checkGradShape(Tensor g) {
        if (g.numel() != value.numel()) {
            throw new IllegalArgumentException("gradient " + g.describe() + " does not match variable "
                    + value.describe());
        }
    }

    @Override
    public String toString() {
        return "Variable" + value.describe();
    }
}
