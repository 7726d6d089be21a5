package io.microdit.io.mds;

import java.io.IOException;

/** An MDS dataset that cannot be read or written as the format says: the message names the file and, where one is
 * at fault, the sample. */
public final class MdsException extends IOException {
    /** An error whose message names the file (and the sample, where one is at fault). */
    public MdsException(String message) {
        super(message);
    }

    /**
     * An error caused by {@code cause} (an I/O, JSON or decompression failure underneath), its message naming the file.
     */
    public MdsException(String message, Throwable cause) {
        super(message, cause);
    }
}
