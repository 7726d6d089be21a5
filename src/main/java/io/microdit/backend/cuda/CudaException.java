package io.microdit.backend.cuda;

/** A native call of the microdit C ABI failed: the status, its name and the library's detailed message. */
public final class CudaException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    /** The failing {@code mdt_status} (a {@link CudaRuntime} {@code ERROR_*} value), kept in the serialised form. */
    private final int status;

    CudaException(int status, String message) {
        super(message);
        this.status = status;
    }

    /** The MDT status code (see microdit.h). */
    public int status() {
        return status;
    }
}
