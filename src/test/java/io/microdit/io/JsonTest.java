package io.microdit.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.math.BigInteger;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class JsonTest {
    @Test
    void parsesEveryKindOfValue() throws JsonException {
        Object value = Json.parse(" {\"a\": [1, -2, 3.5, -0.25e2, 1E3], \"b\": {\"c\": true, \"d\": false, \"e\": null},"
                + " \"f\": \"x\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\", \"g\": [], \"h\": {}}\r\n\t");
        Map<?, ?> root = (Map<?, ?>) value;
        assertEquals(List.of("a", "b", "f", "g", "h"), new ArrayList<>(root.keySet()));
        assertEquals(List.of(1L, -2L, 3.5, -25.0, 1000.0), root.get("a"));
        Map<?, ?> b = (Map<?, ?>) root.get("b");
        assertEquals(Boolean.TRUE, b.get("c"));
        assertEquals(Boolean.FALSE, b.get("d"));
        assertTrue(b.containsKey("e") && b.get("e") == null);
        assertEquals("x\"\\/\b\f\n\r\t\u00e9\uD83D\uDE00", root.get("f"));
        assertEquals(List.of(), root.get("g"));
        assertEquals(Map.of(), root.get("h"));
    }

    @Test
    void objectsOfAnySizeKeepTheirOrderAndContainersAreUnmodifiable() throws JsonException {
        for (int keys : new int[] {1, 8, 9, 40}) {
            Map<String, Object> expected = new java.util.LinkedHashMap<>();
            for (int i = keys; i > 0; i--) {
                expected.put("k" + i, i % 3 == 0 ? null : List.of((long) i, "v"));
            }
            Map<?, ?> parsed = (Map<?, ?>) Json.parse(Json.write(expected));
            assertEquals(expected, parsed);
            assertEquals(new ArrayList<>(expected.keySet()), new ArrayList<>(parsed.keySet()));
            assertEquals(expected.hashCode(), parsed.hashCode());
            assertFalse(parsed.containsKey("k0"));
            assertThrows(UnsupportedOperationException.class, () -> parsed.remove("k1"));
            assertThrows(UnsupportedOperationException.class, () -> parsed.entrySet().clear());
            List<?> list = (List<?>) parsed.get("k1");
            assertThrows(UnsupportedOperationException.class, () -> list.remove(0));
        }
    }

    @Test
    void integersKeepAllTheirDigits() throws JsonException {
        assertEquals(Long.MAX_VALUE, Json.parse("9223372036854775807"));
        assertEquals(Long.MIN_VALUE, Json.parse("-9223372036854775808"));
        assertEquals(new BigInteger("18446744073709551616"), Json.parse("18446744073709551616"));
        assertEquals(0L, Json.parse("-0"));
        assertEquals("é😀", Json.parse("\"é😀\"")); // raw non-ASCII and a raw surrogate pair
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', quoteCharacter = '`', value = {
        "``                     | unexpected end of input, expected a value at character 0",
        "`[1, 2,]`              | unexpected character ']', expected a value at character 6",
        "`{\"a\": 1,}`          | unexpected character '}', expected a string key at character 8",
        "`{\"a\" 1}`            | unexpected character '1', expected ':' at character 5",
        "`{\"a\": 1 \"b\": 2}`  | expected ',' or '}' at character 8",
        "`[1 2]`                | expected ',' or ']' at character 3",
        "`01`                   | leading zero in a number at character 1",
        "`-`                    | unexpected end of input, expected a digit at character 1",
        "`1.`                   | unexpected end of input, expected a digit at character 2",
        "`1e+`                  | unexpected end of input, expected a digit at character 3",
        "`.5`                   | unexpected character '.', expected a value at character 0",
        "`NaN`                  | unexpected character 'N', expected a value at character 0",
        "`tru`                  | unexpected character 't', expected a value at character 0",
        "`{\"a\": 1} x`         | unexpected character 'x' after the JSON value at character 9",
        "`// c\n1`              | unexpected character '/', expected a value at character 0",
        "`['a']`              | unexpected character ''', expected a value at character 1",
        "`\"abc`                | unterminated string at character 4",
        "`\"a\\x\"`             | invalid escape: backslash followed by 'x' at character 2",
        "`\"\\u12G4\"`          | invalid \\u escape at character 1",
        "`\"\\u12\"`            | truncated \\u escape at character 1",
        "`\"\\ud800\"`          | unpaired surrogate escape \\uD800 at character 1",
        "`\"\\ud800\\u0041\"`   | unpaired surrogate escape \\uD800 at character 1",
        "`\"\\udc00\"`          | unpaired surrogate escape \\uDC00 at character 1",
        "`{\"k\": 1, \"k\": 2}` | duplicate key \"k\" at character 9",
        "`1e999`                | number 1e999 is out of the double range at character 0",
    })
    void rejectsNonStrictJsonWithThePosition(String text, String message) {
        JsonException e = assertThrows(JsonException.class, () -> Json.parse(text));
        assertTrue(e.getMessage().endsWith(message), e.getMessage());
        assertEquals(Integer.parseInt(message.substring(message.lastIndexOf(' ') + 1)), e.position());
    }

    @Test
    void rejectsUnescapedControlCharactersAndLoneSurrogates() {
        JsonException control = assertThrows(JsonException.class, () -> Json.parse("\"a\tb\""));
        assertEquals("unescaped control character U+0009 in a string at character 2", control.getMessage());
        JsonException lone = assertThrows(JsonException.class, () -> Json.parse("\"a\uD800b\""));
        assertEquals("unpaired surrogate U+D800 at character 2", lone.getMessage());
    }

    @Test
    void rejectsHostileNesting() throws JsonException {
        String ok = "[".repeat(Json.MAX_DEPTH) + "]".repeat(Json.MAX_DEPTH);
        assertTrue(Json.parse(ok) instanceof List<?>);
        String deep = "[".repeat(100_000);
        JsonException e = assertThrows(JsonException.class, () -> Json.parse(deep));
        assertTrue(e.getMessage().contains("nesting deeper than " + Json.MAX_DEPTH), e.getMessage());
    }

    @Test
    void writesCompactJsonThatParsesBack() throws JsonException {
        Random random = new Random(11);
        for (int trial = 0; trial < 50; trial++) {
            Object value = randomValue(random, 0);
            String text = Json.write(value);
            assertEquals(value, Json.parse(text), text);
        }
        Map<String, Object> map = new LinkedHashMap<>();
        map.put("dtype", "F32");
        map.put("shape", List.of(2, 3));
        map.put("s", "q\"\\\n\u0001é");
        assertEquals("{\"dtype\":\"F32\",\"shape\":[2,3],\"s\":\"q\\\"\\\\\\n\\u0001é\"}", Json.write(map));
    }

    private static Object randomValue(Random random, int depth) {
        int kind = random.nextInt(depth > 3 ? 5 : 7);
        return switch (kind) {
            case 0 -> random.nextLong();
            case 1 -> random.nextDouble() * 1e6 - 5e5;
            case 2 -> randomString(random);
            case 3 -> random.nextBoolean();
            case 4 -> null;
            case 5 -> {
                List<Object> list = new ArrayList<>();
                for (int i = random.nextInt(4); i > 0; i--) {
                    list.add(randomValue(random, depth + 1));
                }
                yield list;
            }
            default -> {
                Map<String, Object> map = new LinkedHashMap<>();
                for (int i = random.nextInt(4); i > 0; i--) {
                    map.put(randomString(random) + i, randomValue(random, depth + 1));
                }
                yield map;
            }
        };
    }

    private static String randomString(Random random) {
        StringBuilder s = new StringBuilder();
        String alphabet = "ab\"\\/\n\t\u0000\u001fé€";
        for (int i = random.nextInt(6); i > 0; i--) {
            s.append(alphabet.charAt(random.nextInt(alphabet.length())));
        }
        if (random.nextInt(4) == 0) {
            s.append("\uD83D\uDE00");
        }
        return s.toString();
    }

    @Test
    void writerRejectsWhatJsonCannotHold() {
        assertThrows(IllegalArgumentException.class, () -> Json.write(Double.NaN));
        assertThrows(IllegalArgumentException.class, () -> Json.write(Float.POSITIVE_INFINITY));
        assertThrows(IllegalArgumentException.class, () -> Json.write(Map.of(1, 2)));
        assertThrows(IllegalArgumentException.class, () -> Json.write(new Object()));
        IllegalArgumentException lone = assertThrows(IllegalArgumentException.class, () -> Json.write("a\uD800"));
        assertTrue(lone.getMessage().contains("unpaired surrogate U+D800"), lone.getMessage());
    }
}
