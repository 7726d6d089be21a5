package io.microdit.backend.cpu;

import java.util.HashMap;
import java.util.Map;
import java.util.function.Supplier;

/**
 * Per thread, scratch tiles kept by the sizes they were made for. A step's kernels alternate between a few shapes
 * (attention: a block's self-attention, then its cross-attention over the caption, in the patch-mixer and in the
 * backbone), so keeping only the latest shape's tiles made every call allocate and zero fresh ones: about 7 MB of
 * Java heap a fashion-small step (JFR), and the young collections that came with it. A handful of shapes are
 * kept; a thread that meets more forgets all of them and starts again, so memory stays bounded by
 * {@link #KEPT} shapes' tiles.
 *
 * @param <K> the sizes (a record: equal sizes, the same tiles)
 * @param <T> the tiles
 */
final class TilesByShape<K, T> {
    /** Shapes kept per thread: a step of the official models has four attention shapes per direction. */
    static final int KEPT = 8;

    private final ThreadLocal<Map<K, T>> perThread = ThreadLocal.withInitial(HashMap::new);

    /** This thread's tiles for {@code sizes}, made by {@code make} the first time (or after a reset). */
    T get(K sizes, Supplier<T> make) {
        Map<K, T> kept = perThread.get();
        T tiles = kept.get(sizes);
        if (tiles == null) {
            if (kept.size() >= KEPT) {
                kept.clear();
            }
            tiles = make.get();
            kept.put(sizes, tiles);
        }
        return tiles;
    }
}
