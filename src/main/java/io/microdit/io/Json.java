package io.microdit.io;

import java.io.IOException;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.AbstractList;
import java.util.AbstractMap;
import java.util.AbstractSet;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.RandomAccess;
import java.util.Set;

/**
 * A small strict JSON (RFC 8259) reader and writer for file headers and configs, so that nothing of the project
 * depends on a JSON library. Values map to Java as: object → {@code Map<String, Object>} (insertion-ordered,
 * unmodifiable), array → {@code List<Object>} (unmodifiable), string → {@code String}, integer without fraction or
 * exponent → {@code Long} (or {@code BigInteger} beyond 64 bits), other numbers → {@code Double}, {@code true} /
 * {@code false} → {@code Boolean}, {@code null} → {@code null}.
 *
 * <p>Strict means: exactly one value surrounded by optional whitespace (space, tab, LF, CR); no comments, trailing
 * commas, single quotes, leading zeros, NaN or Infinity; control characters in strings must be escaped; surrogate
 * escapes must pair up; duplicate keys in an object are an error; nesting deeper than {@value #MAX_DEPTH} is an
 * error (so hostile input cannot overflow the stack); empty containers share one instance, arrays and
 * small objects are held in one array each (so a text of many tiny containers costs at most about a dozen bytes of heap per
 * byte of input); a number longer than {@value #MAX_NUMBER_CHARS} characters
 * is an error (so hostile input cannot make {@link BigInteger} parsing, which is superlinear, hang). Every error is
 * a {@link JsonException} with its position.
 */
public final class Json {
    /** The deepest nesting of arrays and objects parsed; deeper input is an error rather than a stack overflow. */
    public static final int MAX_DEPTH = 256;
    /**
     * The longest number literal parsed; longer ones are an error, so that {@link java.math.BigInteger}'s superlinear
     * parsing stays cheap.
     */
    public static final int MAX_NUMBER_CHARS = 400;
    /** Largest JSON file {@link #readFile} accepts: configs and checkpoint states are kilobytes. */
    public static final long MAX_FILE_BYTES = 1L << 20;

    private final String text;
    private int position;

    private Json(String text) {
        this.text = text;
    }

    /** Parses one JSON value. */
    public static Object parse(String text) throws JsonException {
        Json parser = new Json(text);
        parser.skipWhitespace();
        Object value = parser.value(0);
        parser.skipWhitespace();
        if (parser.position < text.length()) {
            throw parser.error("unexpected " + parser.describeNext() + " after the JSON value");
        }
        return value;
    }

    /**
     * Reads and parses a JSON file of at most {@value #MAX_FILE_BYTES} bytes (checked before reading, so a hostile
     * file cannot make it allocate more), strict UTF-8. Every problem is an {@link IOException} whose message
     * starts with the file's path.
     */
    public static Object readFile(Path file) throws IOException {
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = channel.size();
            if (size > MAX_FILE_BYTES) {
                throw new IOException(file + ": " + size + " bytes, more than the " + MAX_FILE_BYTES
                        + " a JSON file may have");
            }
            ByteBuffer bytes = ByteBuffer.allocate((int) size);
            while (bytes.hasRemaining()) {
                if (channel.read(bytes) < 0) {
                    throw new IOException(file + ": file ended at byte " + bytes.position()
                            + " while reading (was it truncated while being read?)");
                }
            }
            String text;
            try {
                text = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT).decode(bytes.flip()).toString();
            } catch (CharacterCodingException e) {
                throw new IOException(file + ": not valid UTF-8 (" + e.getMessage() + ")", e);
            }
            return parse(text);
        } catch (JsonException e) {
            throw new IOException(file + ": " + e.getMessage(), e);
        }
    }

    private Object value(int depth) throws JsonException {
        if (position >= text.length()) {
            throw error("unexpected end of input, expected a value");
        }
        char c = text.charAt(position);
        return switch (c) {
            case '{' -> object(depth + 1);
            case '[' -> array(depth + 1);
            case '"' -> string();
            case 't' -> literal("true", Boolean.TRUE);
            case 'f' -> literal("false", Boolean.FALSE);
            case 'n' -> literal("null", null);
            default -> {
                if (c == '-' || (c >= '0' && c <= '9')) {
                    yield number();
                }
                throw error("unexpected " + describeNext() + ", expected a value");
            }
        };
    }

    private Map<String, Object> object(int depth) throws JsonException {
        checkDepth(depth);
        position++; // '{'
        skipWhitespace();
        if (peek() == '}') {
            position++;
            return Map.of();
        }
        Map<String, Object> map = new LinkedHashMap<>();
        while (true) {
            skipWhitespace();
            if (peek() != '"') {
                throw error("unexpected " + describeNext() + ", expected a string key");
            }
            int keyPosition = position;
            String key = string();
            skipWhitespace();
            expect(':');
            skipWhitespace();
            Object value = value(depth);
            if (map.containsKey(key)) {
                throw new JsonException("duplicate key " + quote(key), keyPosition);
            }
            map.put(key, value);
            skipWhitespace();
            char c = peek();
            if (c == ',') {
                position++;
            } else if (c == '}') {
                position++;
                return map.size() <= SmallObject.MAX_KEYS ? new SmallObject(map) : Collections.unmodifiableMap(map);
            } else {
                throw error("unexpected " + describeNext() + ", expected ',' or '}'");
            }
        }
    }

    /**
     * An object of a few keys, unmodifiable, in insertion order, as one array of alternating keys and values: a
     * text of many small objects then costs a few tens of bytes each, where a LinkedHashMap costs a table and a
     * node per key. Lookups are linear, which for this few keys is as fast as hashing.
     */
    private static final class SmallObject extends AbstractMap<String, Object> {
        static final int MAX_KEYS = 8;
        private final Object[] keysAndValues;

        SmallObject(Map<String, Object> map) {
            keysAndValues = new Object[2 * map.size()];
            int i = 0;
            for (Map.Entry<String, Object> entry : map.entrySet()) {
                keysAndValues[i++] = entry.getKey();
                keysAndValues[i++] = entry.getValue();
            }
        }

        @Override
        public int size() {
            return keysAndValues.length / 2;
        }

        @Override
        public boolean containsKey(Object key) {
            return indexOf(key) >= 0;
        }

        @Override
        public Object get(Object key) {
            int i = indexOf(key);
            return i >= 0 ? keysAndValues[i + 1] : null;
        }

        private int indexOf(Object key) {
            for (int i = 0; i < keysAndValues.length; i += 2) {
                if (keysAndValues[i].equals(key)) {
                    return i;
                }
            }
            return -1;
        }

        @Override
        public Set<Map.Entry<String, Object>> entrySet() {
            return new AbstractSet<>() {
                @Override
                public int size() {
                    return SmallObject.this.size();
                }

                @Override
                public Iterator<Map.Entry<String, Object>> iterator() {
                    return new Iterator<>() {
                        private int next;

                        @Override
                        public boolean hasNext() {
                            return next < keysAndValues.length;
                        }

                        @Override
                        public Map.Entry<String, Object> next() {
                            if (!hasNext()) {
                                throw new NoSuchElementException();
                            }
                            next += 2;
                            return new SimpleImmutableEntry<>((String) keysAndValues[next - 2], keysAndValues[next - 1]);
                        }
                    };
                }
            };
        }
    }

    /** An unmodifiable array held in exactly one Object[], for the same reason as {@link SmallObject}. */
    private static final class Array extends AbstractList<Object> implements RandomAccess {
        private final Object[] elements;

        Array(Object[] elements) {
            this.elements = elements;
        }

        @Override
        public Object get(int index) {
            return elements[index];
        }

        @Override
        public int size() {
            return elements.length;
        }
    }

    private List<Object> array(int depth) throws JsonException {
        checkDepth(depth);
        position++; // '['
        skipWhitespace();
        if (peek() == ']') {
            position++;
            return List.of();
        }
        List<Object> list = new ArrayList<>(4);
        while (true) {
            skipWhitespace();
            list.add(value(depth));
            skipWhitespace();
            char c = peek();
            if (c == ',') {
                position++;
            } else if (c == ']') {
                position++;
                return new Array(list.toArray());
            } else {
                throw error("unexpected " + describeNext() + ", expected ',' or ']'");
            }
        }
    }

    private void checkDepth(int depth) throws JsonException {
        if (depth > MAX_DEPTH) {
            throw error("nesting deeper than " + MAX_DEPTH + " levels");
        }
    }

    private String string() throws JsonException {
        position++; // opening quote
        StringBuilder out = new StringBuilder();
        while (true) {
            if (position >= text.length()) {
                throw error("unterminated string");
            }
            char c = text.charAt(position);
            if (c == '"') {
                position++;
                return out.toString();
            }
            if (c < 0x20) {
                throw error("unescaped control character U+" + hex4(c) + " in a string");
            }
            if (c == '\\') {
                out.append(escape());
            } else {
                if (Character.isSurrogate(c)) {
                    // Only reachable through a String built from broken UTF-16; decoded UTF-8 never has these.
                    checkSurrogatePair(c, position + 1 < text.length() ? text.charAt(position + 1) : 0);
                    out.append(c).append(text.charAt(position + 1));
                    position += 2;
                    continue;
                }
                out.append(c);
                position++;
            }
        }
    }

    private String escape() throws JsonException {
        int start = position;
        position++; // backslash
        if (position >= text.length()) {
            throw error("unterminated escape");
        }
        char c = text.charAt(position++);
        return switch (c) {
            case '"' -> "\"";
            case '\\' -> "\\";
            case '/' -> "/";
            case 'b' -> "\b";
            case 'f' -> "\f";
            case 'n' -> "\n";
            case 'r' -> "\r";
            case 't' -> "\t";
            case 'u' -> {
                char unit = hexEscape(start);
                if (Character.isHighSurrogate(unit)) {
                    if (!text.startsWith("\\u", position)) {
                        throw new JsonException("unpaired surrogate escape \\u" + hex4(unit), start);
                    }
                    int lowStart = position;
                    position += 2;
                    char low = hexEscape(lowStart);
                    if (!Character.isLowSurrogate(low)) {
                        throw new JsonException("unpaired surrogate escape \\u" + hex4(unit), start);
                    }
                    yield new String(new char[] {unit, low});
                }
                if (Character.isLowSurrogate(unit)) {
                    throw new JsonException("unpaired surrogate escape \\u" + hex4(unit), start);
                }
                yield String.valueOf(unit);
            }
            default -> throw new JsonException("invalid escape: backslash followed by " + printable(c), start);
        };
    }

    /** Reads the 4 hex digits of a u-escape at the current position; {@code start} is the escape's backslash. */
    private char hexEscape(int start) throws JsonException {
        if (position + 4 > text.length()) {
            throw new JsonException("truncated \\u escape", start);
        }
        int value = 0;
        for (int i = 0; i < 4; i++) {
            int digit = hexDigit(text.charAt(position + i));
            if (digit < 0) {
                throw new JsonException("invalid \\u escape", start);
            }
            value = value * 16 + digit;
        }
        position += 4;
        return (char) value;
    }

    private static int hexDigit(char c) {
        if (c >= '0' && c <= '9') {
            return c - '0';
        }
        if (c >= 'a' && c <= 'f') {
            return c - 'a' + 10;
        }
        if (c >= 'A' && c <= 'F') {
            return c - 'A' + 10;
        }
        return -1;
    }

    private void checkSurrogatePair(char high, char low) throws JsonException {
        if (!Character.isHighSurrogate(high) || !Character.isLowSurrogate(low)) {
            throw error("unpaired surrogate U+" + hex4(high));
        }
    }

    private Object number() throws JsonException {
        int start = position;
        if (peek() == '-') {
            position++;
        }
        if (peek() == '0') {
            position++;
            if (isDigit(peek())) {
                throw error("leading zero in a number");
            }
        } else if (isDigit(peek())) {
            while (isDigit(peek())) {
                position++;
            }
        } else {
            throw error("unexpected " + describeNext() + ", expected a digit");
        }
        boolean integral = true;
        if (peek() == '.') {
            integral = false;
            position++;
            requireDigits();
        }
        if (peek() == 'e' || peek() == 'E') {
            integral = false;
            position++;
            if (peek() == '+' || peek() == '-') {
                position++;
            }
            requireDigits();
        }
        if (position - start > MAX_NUMBER_CHARS) {
            throw new JsonException("number of " + (position - start) + " characters, more than "
                    + MAX_NUMBER_CHARS, start);
        }
        String literal = text.substring(start, position);
        if (integral) {
            BigInteger value = new BigInteger(literal);
            return value.bitLength() < 64 ? (Object) value.longValue() : value;
        }
        double value = Double.parseDouble(literal);
        if (Double.isInfinite(value)) {
            throw new JsonException("number " + literal + " is out of the double range", start);
        }
        return value;
    }

    private void requireDigits() throws JsonException {
        if (!isDigit(peek())) {
            throw error("unexpected " + describeNext() + ", expected a digit");
        }
        while (isDigit(peek())) {
            position++;
        }
    }

    private Object literal(String word, Object value) throws JsonException {
        if (!text.startsWith(word, position)) {
            throw error("unexpected " + describeNext() + ", expected a value");
        }
        position += word.length();
        return value;
    }

    private void expect(char c) throws JsonException {
        if (peek() != c) {
            throw error("unexpected " + describeNext() + ", expected '" + c + "'");
        }
        position++;
    }

    private char peek() {
        return position < text.length() ? text.charAt(position) : 0;
    }

    private static boolean isDigit(char c) {
        return c >= '0' && c <= '9';
    }

    private void skipWhitespace() {
        while (position < text.length()) {
            char c = text.charAt(position);
            if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
                return;
            }
            position++;
        }
    }

    private String describeNext() {
        return position >= text.length() ? "end of input" : "character " + printable(text.charAt(position));
    }

    private static String printable(char c) {
        return c >= 0x20 && c < 0x7f ? "'" + c + "'" : "U+" + hex4(c);
    }

    private static String hex4(char c) {
        return String.format("%04X", (int) c);
    }

    private JsonException error(String problem) {
        return new JsonException(problem, position);
    }

    // ---------------------------------------------------------------- writing

    /**
     * Writes a value as compact JSON (no spaces). Accepts maps with String keys, lists, strings, booleans, null,
     * integral numbers (Integer, Long, Short, Byte, BigInteger) and finite Float/Double.
     */
    public static String write(Object value) {
        StringBuilder out = new StringBuilder();
        write(value, out);
        return out.toString();
    }

    private static void write(Object value, StringBuilder out) {
        switch (value) {
            case null -> out.append("null");
            case String s -> out.append(quote(s));
            case Boolean b -> out.append(b);
            case Integer i -> out.append(i);
            case Long l -> out.append(l);
            case Short s -> out.append(s);
            case Byte b -> out.append(b);
            case BigInteger b -> out.append(b);
            case Double d -> out.append(finite(d));
            case Float f -> out.append(finite(f.doubleValue()));
            case Map<?, ?> map -> {
                out.append('{');
                boolean first = true;
                for (Map.Entry<?, ?> entry : map.entrySet()) {
                    if (!(entry.getKey() instanceof String key)) {
                        throw new IllegalArgumentException("JSON object keys must be strings, got " + entry.getKey());
                    }
                    if (!first) {
                        out.append(',');
                    }
                    first = false;
                    out.append(quote(key)).append(':');
                    write(entry.getValue(), out);
                }
                out.append('}');
            }
            case List<?> list -> {
                out.append('[');
                for (int i = 0; i < list.size(); i++) {
                    if (i > 0) {
                        out.append(',');
                    }
                    write(list.get(i), out);
                }
                out.append(']');
            }
            default -> throw new IllegalArgumentException("cannot write " + value.getClass().getName() + " as JSON");
        }
    }

    private static String finite(double d) {
        if (!Double.isFinite(d)) {
            throw new IllegalArgumentException("JSON has no representation for " + d);
        }
        return Double.toString(d);
    }

    /**
     * The string as a JSON string literal: quotes, backslashes and control characters escaped, everything else
     * as is. A string with an unpaired surrogate is rejected, since it has no UTF-8 encoding.
     */
    public static String quote(String s) {
        StringBuilder out = new StringBuilder(s.length() + 2).append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                case '\b' -> out.append("\\b");
                case '\f' -> out.append("\\f");
                default -> {
                    if (Character.isSurrogate(c) && !pairedAt(s, i)) {
                        throw new IllegalArgumentException("string has an unpaired surrogate U+" + hex4(c)
                                + " at index " + i + ", which UTF-8 cannot encode");
                    }
                    if (c < 0x20) {
                        out.append("\\u").append(hex4(c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        return out.append('"').toString();
    }

    private static boolean pairedAt(String s, int i) {
        char c = s.charAt(i);
        if (Character.isHighSurrogate(c)) {
            return i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1));
        }
        return i > 0 && Character.isHighSurrogate(s.charAt(i - 1));
    }
}
