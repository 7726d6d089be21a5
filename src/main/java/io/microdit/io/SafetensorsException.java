package io.microdit.io;

import java.io.IOException;
import java.nio.file.Path;

/** A safetensors file that cannot be read or written; the message starts with the file's path. */
public final class SafetensorsException extends IOException {
    private final transient Path file;
    private final String problem;

    public SafetensorsException(Path file, String problem) {
        super(file + ": " + problem);
        this.file = file;
        this.problem = problem;
    }

    public SafetensorsException(Path file, String problem, Throwable cause) {
        super(file + ": " + problem, cause);
        this.file = file;
        this.problem = problem;
    }

    public Path file() {
        return file;
    }

    /** The message without the file name. */
    public String problem() {
        return problem;
    }
}
