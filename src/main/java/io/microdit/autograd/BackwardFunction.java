package io.microdit.autograd;

import io.microdit.tensor.Tensor;

/** The backward of one recorded op: given the gradient of its output, adds gradients into its inputs. */
@FunctionalInterface
public interface BackwardFunction {
    /** Adds the inputs' gradients for {@code gradOutput}, the gradient of the op's output (owned by the graph). */
    void backward(Tensor gradOutput);
}
