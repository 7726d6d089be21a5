package io.microdit.io.torch;

import java.io.IOException;
import java.nio.file.Path;

/** A PyTorch {@code .pt} file that cannot be read or written; the message starts with the file's path. */
public final class TorchFileException extends IOException {
    private final transient Path file;
    /** The message without the file's path, kept in the serialised form (the path is not serialisable). */
    private final String problem;

    /** An error about {@code file}; the message is the path, a colon and {@code problem}. */
    public TorchFileException(Path file, String problem) {
        super(file + ": " + problem);
        this.file = file;
        this.problem = problem;
    }

    /** The file at fault; not serialised (null after deserialisation). */
    public Path file() {
        return file;
    }

    /** The message without the file name. */
    public String problem() {
        return problem;
    }
}
