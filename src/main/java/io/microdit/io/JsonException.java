package io.microdit.io;

import java.io.IOException;

/** JSON text that {@link Json} rejects; {@link #position()} is the character index where the problem was found. */
public final class JsonException extends IOException {
    /** The character index of the problem, kept in the serialised form. */
    private final int position;

    /** An error whose message is {@code problem} followed by the position. */
    public JsonException(String problem, int position) {
        super(problem + " at character " + position);
        this.position = position;
    }

    /** The zero-based character index in the text where parsing failed. */
    public int position() {
        return position;
    }
}
