package io.microdit.backend;

import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.LongAdder;

/**
 * FLOPs performed per op, counted by the backend as it runs them (2 FLOPs per multiply-add; elementwise ops
 * count their arithmetic). The trainer divides the total by time and by the device's peak for MFU.
 */
public final class FlopCounter {
    private final Map<String, LongAdder> byOp = new ConcurrentHashMap<>();

    /** A counter with nothing counted yet. */
    public FlopCounter() {
    }

    /** Adds {@code flops} to {@code op}'s count; safe to call from several threads at once. */
    public void add(String op, long flops) {
        byOp.computeIfAbsent(op, k -> new LongAdder()).add(flops);
    }

    /** The sum over all ops; counts added while it sums may or may not be included. */
    public long total() {
        long sum = 0;
        for (LongAdder a : byOp.values()) {
            sum += a.sum();
        }
        return sum;
    }

    /** The count of one op, 0 if it never ran. */
    public long of(String op) {
        LongAdder a = byOp.get(op);
        return a == null ? 0 : a.sum();
    }

    /** A sorted copy of the counts. */
    public Map<String, Long> snapshot() {
        Map<String, Long> out = new TreeMap<>();
        byOp.forEach((k, v) -> out.put(k, v.sum()));
        return out;
    }

    /** Forgets every count, e.g. at the start of a measured step. */
    public void reset() {
        byOp.clear();
    }
}
