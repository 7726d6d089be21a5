package io.microdit.io.mds;

import java.io.IOException;

/** An MDS dataset that cannot be read or written as the format says: the message names the file and, where one is
 * at fault, the sample. */
public final class MdsException extends IOException {
    public MdsException(String message) {
        super(message);
    }

    public MdsException(String message, Throwable cause) {
        super(message, cause);
    }
}
