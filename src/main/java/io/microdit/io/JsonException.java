package io.microdit.io;

import java.io.IOException;

/** JSON text that {@link Json} rejects; {@link #position()} is the character index where the problem was found. */
public final class JsonException extends IOException {
    private final int position;

    public JsonException(String problem, int position) {
        super(problem + " at character " + position);
        this.position = position;
    }

    public int position() {
        return position;
    }
}
