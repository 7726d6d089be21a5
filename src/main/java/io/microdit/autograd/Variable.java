package io.microdit.autograd;

import io.microdit.backend.Backend;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;

/**
 * A tensor in the autograd graph: its value, whether gradients flow to it, and its gradient once backward has
 * reached it. Intermediate variables hold their gradient in the step's scope; {@link Parameter}s in their own.
 * Gradients are F32 whatever the value's dtype: a bf16 graph may give an op's output to its matrix products as
 * BF16 directly (see {@link Graph#matmulOperandType}), while everything flowing backward stays F32.
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

    public Tensor value() {
        return value;
    }

    public boolean requiresGrad() {
        return requiresGrad;
    }

    /** The accumulated gradient, or null when backward has not reached this variable. */
    public Tensor grad() {
        return grad;
    }

    public int dim(int i) {
        return value.dim(i);
    }

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
     * Adds {@code g} to this variable's gradient. The first gradient is adopted without a copy, so {@code g} must
     * belong to the caller alone (freshly computed); use {@link #addGradShared} for a tensor that is also used
     * elsewhere.
     */
    public void addGrad(Tensor g, Backend backend) {
        if (!requiresGrad) {
            return;
        }
        checkGradShape(g);
        if (grad == null && g.scope() == gradScope()) {
            setGrad(g);
        } else {
            backend.axpy(1f, g, gradBuffer());
        }
    }

    /** Adds {@code g} to this variable's gradient, copying it when it is the first. */
    public void addGradShared(Tensor g, Backend backend) {
        if (!requiresGrad) {
            return;
        }
        checkGradShape(g);
        if (grad == null) {
            setGrad(Tensor.empty(gradScope(), DType.F32, value.shape()));
            backend.copy(g, grad);
        } else {
            backend.axpy(1f, g, grad);
        }
    }

    /** The gradient tensor, created as zeros when absent, for backward kernels that accumulate in place. */
    public Tensor gradBuffer() {
        if (grad == null) {
            setGrad(Tensor.zeros(gradScope(), DType.F32, value.shape()));
        }
        return grad;
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
