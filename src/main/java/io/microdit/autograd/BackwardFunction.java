package io.microdit.autograd;

import io.microdit.tensor.Tensor;

/** The backward of one recorded op: given the gradient of its output, adds gradients into its inputs. */
@FunctionalInterface
public interface BackwardFunction {
    void backward(Tensor gradOutput);
}
