package io.microdit.nn;

import io.microdit.autograd.Graph;
import io.microdit.autograd.Variable;
import io.microdit.tensor.DType;

/** A block's FFN: dense SwiGLU or expert-choice MoE, [N, T, D] to [N, T, D]. */
public sealed interface FeedForward permits SwiGlu, ExpertChoiceMoe {
    /** The FFN of x [N, T, D] (in {@link #inputType}), [N, T, D] in F32. */
    Variable forward(Graph g, Variable x);

    /** The dtype {@link #forward} can take x in: BF16 in a bf16 graph when only linear layers read x, else F32. */
    DType inputType(Graph g);
}
