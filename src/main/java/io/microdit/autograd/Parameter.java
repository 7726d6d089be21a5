package io.microdit.autograd;

import io.microdit.backend.Backend;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;

/**
 * A trainable tensor with its official dotted name (e.g. {@code blocks.3.attn.qkv.weight}). Its value and
 * gradient live in the parameter scope, for the model's lifetime; gradients accumulate across backward passes
 * until {@link #zeroGrad}.
 */
public final class Parameter extends Variable {
    private final String name;
    private final MemoryScope scope;

    /** A parameter over {@code value} (its gradient will live in the value's scope). */
    public Parameter(String name, Tensor value) {
        super(value, true, null);
        this.name = name;
        this.scope = value.scope();
    }

    /** The official dotted name, as in the safetensors files. */
    public String name() {
        return name;
    }

    @Override
    MemoryScope gradScope() {
        return scope;
    }

    /** Sets the gradient to zero, keeping its buffer (on the backend that holds it). */
    public void zeroGrad(Backend backend) {
        if (grad() != null) {
            backend.fill(grad(), 0f);
        }
    }

    @Override
    public void backward() {
        throw new IllegalStateException("backward() on parameter '" + name + "': call it on the loss");
    }

    @Override
    public String toString() {
        return "Parameter[" + name + ", " + value().describe() + "]";
    }
}
