package io.microdit.nn;

import io.microdit.autograd.Graph;
import io.microdit.autograd.Variable;

/** A block's FFN: dense SwiGLU or expert-choice MoE, [N, T, D] to [N, T, D]. */
public sealed interface FeedForward permits SwiGlu, ExpertChoiceMoe {
    Variable forward(Graph g, Variable x);
}
