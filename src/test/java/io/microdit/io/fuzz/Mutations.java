package io.microdit.io.fuzz;

import io.microdit.io.Json;
import io.microdit.io.JsonException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * Seeded mutations of a valid file: byte-level damage (bit flips, overwrites, truncation, extension, length fields
 * made longer or shorter) and structural JSON edits (deleted or duplicated keys, changed types, extreme numbers,
 * deep nesting, non-JSON literals). Each mutant carries a description for failure messages.
 */
final class Mutations {
    private static final String PLACEHOLDER = "@@fuzz@@";
    private static final byte[] INTERESTING_BYTES = {0, -1, 0x7f, (byte) 0x80, '"', '{', '}', '[', ']', ',', ':', '-',
            '9', '\\', (byte) 0xc3, (byte) 0xed};
    private static final String[] EXTREME_NUMBERS = {"0", "-1", "1.5", "-0.0", "1e308", "-1e308", "1e-320", "2147483648",
            "-2147483649", "9223372036854775807", "-9223372036854775808", "18446744073709551616",
            "99999999999999999999999999999999", "1099511627776", "1" + "0".repeat(390)};

    /** A little-endian or big-endian unsigned length field of {@code width} bytes at {@code offset}. */
    record LengthField(int offset, int width, ByteOrder order) {
    }

    record Mutant(byte[] bytes, String description) {
    }

    private Mutations() {
    }

    /** Byte-level damage; {@code fields} are the format's length fields, made longer, shorter, zero or huge. */
    static Mutant binary(byte[] seed, List<LengthField> fields, Random random) {
        int kinds = fields.isEmpty() ? 4 : 5;
        return switch (random.nextInt(kinds)) {
            case 0 -> {
                byte[] out = seed.clone();
                int flips = 1 + random.nextInt(8);
                StringBuilder where = new StringBuilder();
                for (int i = 0; i < flips; i++) {
                    int bit = random.nextInt(out.length * 8);
                    out[bit / 8] ^= (byte) (1 << (bit % 8));
                    where.append(' ').append(bit);
                }
                yield new Mutant(out, "bit flips at bits" + where);
            }
            case 1 -> {
                byte[] out = seed.clone();
                int at = random.nextInt(out.length);
                int count = 1 + random.nextInt(Math.min(16, out.length - at));
                for (int i = 0; i < count; i++) {
                    out[at + i] = random.nextBoolean() ? INTERESTING_BYTES[random.nextInt(INTERESTING_BYTES.length)]
                            : (byte) random.nextInt(256);
                }
                yield new Mutant(out, count + " bytes overwritten at " + at);
            }
            case 2 -> {
                int length = random.nextInt(seed.length);
                yield new Mutant(Arrays.copyOf(seed, length), "truncated to " + length + " bytes");
            }
            case 3 -> {
                int extra = 1 + random.nextInt(random.nextBoolean() ? 8 : 4096);
                byte[] out = Arrays.copyOf(seed, seed.length + extra);
                for (int i = seed.length; i < out.length; i++) {
                    out[i] = (byte) random.nextInt(256);
                }
                yield new Mutant(out, extra + " random bytes appended");
            }
            default -> {
                LengthField field = fields.get(random.nextInt(fields.size()));
                ByteBuffer buffer = ByteBuffer.wrap(seed.clone()).order(field.order());
                long old = field.width() == 8 ? buffer.getLong(field.offset())
                        : Integer.toUnsignedLong(buffer.getInt(field.offset()));
                long value = switch (random.nextInt(6)) {
                    case 0 -> old + 1 + random.nextInt(64);
                    case 1 -> old - 1 - random.nextInt(64);
                    case 2 -> old * 2;
                    case 3 -> old / 2;
                    case 4 -> 0;
                    default -> field.width() == 8 ? random.nextLong() : random.nextInt();
                };
                if (field.width() == 8) {
                    buffer.putLong(field.offset(), value);
                } else {
                    buffer.putInt(field.offset(), (int) value);
                }
                yield new Mutant(buffer.array(), "length field at " + field.offset() + " changed from " + old
                        + " to " + value);
            }
        };
    }

    /** A structural edit of JSON text that {@link Json} parses. */
    static Mutant json(String text, Random random) throws JsonException {
        Object root = mutableCopy(Json.parse(text));
        List<Slot> slots = new ArrayList<>();
        collect(root, slots);
        List<Slot> keyed = slots.stream().filter(s -> s.container() instanceof Map).toList();
        Slot slot = slots.get(random.nextInt(slots.size()));
        String raw = null;
        String description;
        switch (random.nextInt(8)) {
            case 0 -> {
                Slot k = keyed.get(random.nextInt(keyed.size()));
                ((Map<?, ?>) k.container()).remove(k.key());
                description = "deleted key " + k.key();
            }
            case 1 -> {
                Slot k = keyed.get(random.nextInt(keyed.size()));
                @SuppressWarnings("unchecked")
                Map<String, Object> map = (Map<String, Object>) k.container();
                map.put(PLACEHOLDER + "key", randomValue(random));
                String out = Json.write(root).replace(Json.quote(PLACEHOLDER + "key"), Json.quote((String) k.key()));
                return new Mutant(out.getBytes(StandardCharsets.UTF_8), "duplicated key " + k.key());
            }
            case 2 -> {
                Object value = randomValue(random);
                slot.set(value);
                description = "value at " + slot.key() + " replaced by " + Json.write(value);
            }
            case 3 -> {
                raw = EXTREME_NUMBERS[random.nextInt(EXTREME_NUMBERS.length)];
                description = "value at " + slot.key() + " replaced by " + abbreviate(raw);
            }
            case 4 -> {
                int depth = random.nextBoolean() ? Json.MAX_DEPTH + random.nextInt(4) : 1000 + random.nextInt(100_000);
                raw = "[".repeat(depth) + "]".repeat(depth);
                description = "value at " + slot.key() + " replaced by arrays nested " + depth + " deep";
            }
            case 5 -> {
                raw = List.of("NaN", "Infinity", "-Infinity", "nul", "'x'", "0x10", "01", "1.", "\"\\ud800\"")
                        .get(random.nextInt(9));
                description = "value at " + slot.key() + " replaced by " + raw;
            }
            case 6 -> {
                List<Slot> numbers = slots.stream().filter(s -> s.get() instanceof Number).toList();
                Slot n = numbers.isEmpty() ? slot : numbers.get(random.nextInt(numbers.size()));
                long delta = List.of(-8L, -4L, -1L, 1L, 2L, 4L, 8L, 1L << 32).get(random.nextInt(8));
                Object old = n.get();
                Object value = old instanceof Long l ? (Object) (l + delta)
                        : old instanceof Double d ? (Object) (d * delta) : (Object) delta;
                n.set(value);
                description = "number at " + n.key() + " changed from " + old + " to " + value;
            }
            default -> {
                Object value = slot.get();
                Object wrapped = random.nextBoolean() ? List.of(value == null ? "null" : value)
                        : Map.of("value", value == null ? "null" : value);
                slot.set(wrapped);
                description = "value at " + slot.key() + " wrapped in " + (wrapped instanceof List ? "an array"
                        : "an object");
            }
        }
        if (raw != null) {
            slot.set(PLACEHOLDER);
        }
        String out = Json.write(root);
        if (raw != null) {
            out = out.replace(Json.quote(PLACEHOLDER), raw);
        }
        return new Mutant(out.getBytes(StandardCharsets.UTF_8), description);
    }

    private static String abbreviate(String text) {
        return text.length() <= 40 ? text : text.substring(0, 20) + "…(" + text.length() + " chars)";
    }

    private static Object randomValue(Random random) {
        return switch (random.nextInt(8)) {
            case 0 -> "fuzz";
            case 1 -> (long) random.nextInt();
            case 2 -> random.nextGaussian() * 1e3;
            case 3 -> random.nextBoolean();
            case 4 -> null;
            case 5 -> List.of();
            case 6 -> Map.of();
            default -> List.of((long) random.nextInt(100), "x");
        };
    }

    /** A place that holds a value: a key of an object or an index of an array; the root is index 0 of a holder. */
    private record Slot(Object container, Object key) {
        Object get() {
            return container instanceof Map<?, ?> map ? map.get(key) : ((List<?>) container).get((Integer) key);
        }

        @SuppressWarnings("unchecked")
        void set(Object value) {
            if (container instanceof Map<?, ?> map) {
                ((Map<Object, Object>) map).put(key, value);
            } else {
                ((List<Object>) container).set((Integer) key, value);
            }
        }
    }

    private static void collect(Object node, List<Slot> out) {
        if (node instanceof Map<?, ?> map) {
            for (Object key : map.keySet()) {
                out.add(new Slot(map, key));
                collect(map.get(key), out);
            }
        } else if (node instanceof List<?> list) {
            for (int i = 0; i < list.size(); i++) {
                out.add(new Slot(list, i));
                collect(list.get(i), out);
            }
        }
    }

    private static Object mutableCopy(Object value) {
        if (value instanceof Map<?, ?> map) {
            Map<Object, Object> copy = new LinkedHashMap<>();
            map.forEach((k, v) -> copy.put(k, mutableCopy(v)));
            return copy;
        }
        if (value instanceof List<?> list) {
            List<Object> copy = new ArrayList<>();
            list.forEach(v -> copy.add(mutableCopy(v)));
            return copy;
        }
        return value;
    }
}
