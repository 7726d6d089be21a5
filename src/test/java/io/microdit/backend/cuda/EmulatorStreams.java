package io.microdit.backend.cuda;

/**
 * The emulator's stream mode for tests that need a particular one: they set it, and {@link #restore} returns to the
 * mode the test JVM started with (MDT_EMU_STREAMS, which pom.xml sets to deferred), so later test classes run as
 * configured. Both do nothing on the CUDA library, whose streams are always deferred.
 */
final class EmulatorStreams {
    private EmulatorStreams() {
    }

    static void set(int mode) {
        if (CudaRuntime.isEmulator()) {
            CudaRuntime.streamMode(mode);
        }
    }

    static void restore() {
        set("deferred".equals(System.getenv("MDT_EMU_STREAMS")) ? CudaRuntime.STREAMS_DEFERRED
                : CudaRuntime.STREAMS_IMMEDIATE);
    }
}
