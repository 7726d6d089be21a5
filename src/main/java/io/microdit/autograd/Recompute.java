package io.microdit.autograd;

import io.microdit.backend.Backend;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.util.Arrays;
import java.util.List;

/**
 * Activation recomputation (gradient checkpointing, as {@code torch.utils.checkpoint}): a differentiable function
 * whose intermediate activations are not kept for the backward but computed again from its inputs when the backward
 * reaches it. One more forward of the function buys the memory of its activations: in a step only the recomputed
 * function being differentiated holds its activations. The recomputation runs the same ops on the same inputs, so
 * its values and the gradients are bit for bit those of the plain function (every gradient is added in the same
 * order: the function's inputs receive its contributions as one sum, as they would op by op).
 */
public final class Recompute {
    private Recompute() {
    }

    /** A function of variables on a graph (the same graph for all ops it runs). */
    @FunctionalInterface
    public interface Body {
        /** The function's output on {@code g} for {@code inputs}, recorded there when g records. */
        Variable apply(Graph g, Variable[] inputs);
    }

    /**
     * {@code body(inputs)} on {@code g}; when {@code g} records gradients, its activations are dropped after the
     * forward and recomputed in the backward. The body must be deterministic (MicroDiT's blocks are: no dropout, and
     * the MoE's top-k depends only on its input) and read no variable other than {@code inputs} and parameters.
     */
    public static Variable apply(Graph g, Body body, Variable... inputs) {
        if (!g.isRecording()) {
            return body.apply(g, inputs);
        }
        Backend be = g.backend();
        Tensor out;
        Variable[] reads;
        try (MemoryScope scratch = be.scope("recompute-forward")) {
            Graph forward = new Graph(be, scratch, g.precision()); // not recording: nothing kept for a backward
            Variable[] constants = new Variable[inputs.length];
            for (int i = 0; i < inputs.length; i++) {
                constants[i] = forward.constant(inputs[i].value());
            }
            Tensor result = body.apply(forward, constants).value();
            out = g.output(result.dtype(), result.shape());
            be.copy(result, out);
            // The node reads the body's parameters too: their gradients come from its backward, which the graph
            // must know to tell when they are final (Graph.onGradientsFinal).
            List<Parameter> parameters = forward.parametersRead();
            reads = Arrays.copyOf(inputs, inputs.length + parameters.size());
            for (int i = 0; i < parameters.size(); i++) {
                reads[inputs.length + i] = parameters.get(i);
            }
        }
        return g.result(out, dOut -> {
            try (MemoryScope scratch = be.scope("recompute-backward")) {
                Graph again = new Graph(be, scratch, g.precision());
                Variable[] leaves = new Variable[inputs.length];
                for (int i = 0; i < inputs.length; i++) {
                    leaves[i] = inputs[i].requiresGrad() ? again.leaf(inputs[i].value())
                            : again.constant(inputs[i].value());
                }
                try (GradScope ignored = again.recordGradients()) {
                    again.backward(body.apply(again, leaves), dOut);
                }
                for (int i = 0; i < inputs.length; i++) {
                    if (leaves[i].grad() != null) {
                        // A copy when it is the input's first gradient (the same bits), else added as an op adds it.
                        inputs[i].addGradShared(leaves[i].grad(), be);
                    }
                }
            }
        }, reads);
    }
}
