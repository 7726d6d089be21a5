package io.microdit.train;

import io.microdit.distributed.Communicator;
import io.microdit.io.Json;
import io.microdit.io.JsonException;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The start-up check of a run on several ranks: every rank must train the same config with the same code, or the
 * ranks would silently compute different things. Each rank's description (JSON documents, flattened to dotted keys)
 * is compared with rank 0's; a rank that differs names the first differing key, and every rank then fails with
 * every differing rank's message, so whichever rank's error ends the job says what differs where.
 */
final class RunAgreement {
    /** Characters of each rank's message that travel to the others. */
    private static final int MESSAGE_CHARS = 600;

    private RunAgreement() {
    }

    /**
     * Throws {@link IllegalArgumentException} on every rank when some rank's {@code documents} (name → JSON text)
     * differ from rank 0's; a world of one passes without a word.
     */
    static void require(Communicator communicator, Map<String, String> documents) throws JsonException {
        if (communicator.size() == 1) {
            return;
        }
        Map<String, String> mine = new LinkedHashMap<>();
        for (Map.Entry<String, String> document : new TreeMap<>(documents).entrySet()) {
            flatten(document.getKey(), Json.parse(document.getValue()), mine);
        }
        Map<String, String> root = decode(broadcastText(communicator, encode(mine)));
        String message = root.equals(mine) ? "" : difference(communicator.rank(), mine, root);
        int size = communicator.size();
        try (MemoryScope scope = new MemoryScope("run-agreement")) {
            Tensor messages = Tensor.zeros(scope, DType.I32, size * MESSAGE_CHARS);
            int[] codes = message.codePoints().limit(MESSAGE_CHARS).toArray();
            messages.rows(communicator.rank() * MESSAGE_CHARS, codes.length).copyFrom(codes);
            communicator.allReduceSum(messages);
            int[] all = messages.toIntArray();
            List<String> differing = new ArrayList<>();
            for (int r = 0; r < size; r++) {
                int[] chars = Arrays.copyOfRange(all, r * MESSAGE_CHARS, (r + 1) * MESSAGE_CHARS);
                int length = 0;
                while (length < chars.length && chars[length] != 0) {
                    length++;
                }
                if (length > 0) {
                    differing.add(new String(chars, 0, length));
                }
            }
            if (!differing.isEmpty()) {
                throw new IllegalArgumentException("the ranks do not run the same training: "
                        + String.join("; ", differing));
            }
        }
    }

    private static String difference(int rank, Map<String, String> mine, Map<String, String> root) {
        for (Map.Entry<String, String> e : mine.entrySet()) {
            String theirs = root.get(e.getKey());
            if (!e.getValue().equals(theirs)) {
                return "rank " + rank + "'s " + e.getKey() + " is " + e.getValue() + ", rank 0's is "
                        + (theirs == null ? "absent" : theirs);
            }
        }
        for (Map.Entry<String, String> e : root.entrySet()) {
            if (!mine.containsKey(e.getKey())) {
                return "rank " + rank + " has no " + e.getKey() + ", rank 0's is " + e.getValue();
            }
        }
        throw new IllegalStateException("unreachable: the descriptions differ in no key");
    }

    private static void flatten(String prefix, Object value, Map<String, String> out) {
        switch (value) {
            case Map<?, ?> map -> map.forEach((key, v) -> flatten(prefix + "." + key, v, out));
            case List<?> list -> {
                for (int i = 0; i < list.size(); i++) {
                    flatten(prefix + "[" + i + "]", list.get(i), out);
                }
            }
            case null -> out.put(prefix, "null");
            default -> out.put(prefix, Json.write(value));
        }
    }

    /** One "key\tvalue" per line: keys and JSON values hold no tab or newline (JSON escapes them). */
    private static String encode(Map<String, String> fields) {
        StringBuilder text = new StringBuilder();
        fields.forEach((key, value) -> text.append(key).append('\t').append(value).append('\n'));
        return text.toString();
    }

    private static Map<String, String> decode(String text) {
        Map<String, String> fields = new LinkedHashMap<>();
        for (String line : text.split("\n")) {
            int tab = line.indexOf('\t');
            if (tab >= 0) {
                fields.put(line.substring(0, tab), line.substring(tab + 1));
            }
        }
        return fields;
    }

    /** Rank 0's {@code text} on every rank: its length, then its UTF-8 bytes, one per I32 element. */
    private static String broadcastText(Communicator communicator, String text) {
        byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        try (MemoryScope scope = new MemoryScope("run-agreement-text")) {
            Tensor length = Tensor.ofInts(scope, new int[] {bytes.length}, 1);
            communicator.broadcast(length, 0);
            int[] values = new int[length.getInt(0)];
            if (communicator.rank() == 0) {
                for (int i = 0; i < values.length; i++) {
                    values[i] = bytes[i];
                }
            }
            Tensor content = Tensor.ofInts(scope, values, values.length);
            communicator.broadcast(content, 0);
            int[] received = content.toIntArray();
            byte[] rootBytes = new byte[received.length];
            for (int i = 0; i < received.length; i++) {
                rootBytes[i] = (byte) received[i];
            }
            return new String(rootBytes, StandardCharsets.UTF_8);
        }
    }
}
