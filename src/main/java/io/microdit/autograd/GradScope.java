package io.microdit.autograd;

/** The span in which a {@link Graph} records ops for backward; closing it drops the tape. */
public final class GradScope implements AutoCloseable {
    private final Graph graph;

    GradScope(Graph graph) {
        this.graph = graph;
    }

    @Override
    public void close() {
        graph.stopRecording();
    }
}
