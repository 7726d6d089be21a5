/**
 * microdit: training and sampling of MicroDiT diffusion transformers, on the CPU (pure Java, Vector API) or on
 * CUDA kernels called through the Foreign Function &amp; Memory API. Every package but the command line's
 * ({@code io.microdit.cli}, whose commands are reached through {@code io.microdit.cli.Main}) is API. The native
 * libraries ride inside the module and are unpacked on first use; run with
 * {@code --enable-native-access=io.microdit} so that the JDK lets it call them without a warning.
 */
module io.microdit {
    requires jdk.incubator.vector;
    // Preemption's SIGTERM/SIGINT handlers (sun.misc.Signal, through method handles) and bench-step's process CPU time.
    requires jdk.unsupported;
    requires java.management;
    requires jdk.management;
    requires info.picocli;
    requires com.github.luben.zstd_jni;

    exports io.microdit.autograd;
    exports io.microdit.backend;
    exports io.microdit.backend.cpu;
    exports io.microdit.backend.cuda;
    exports io.microdit.data;
    exports io.microdit.diffusion;
    exports io.microdit.distributed;
    exports io.microdit.eval;
    exports io.microdit.io;
    exports io.microdit.io.mds;
    exports io.microdit.io.torch;
    exports io.microdit.model;
    exports io.microdit.nn;
    exports io.microdit.random;
    exports io.microdit.tensor;
    exports io.microdit.train;

    // picocli fills the commands' annotated (private) fields and calls their methods by reflection.
    opens io.microdit.cli to info.picocli;
}
