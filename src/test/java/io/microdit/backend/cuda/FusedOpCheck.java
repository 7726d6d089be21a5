package io.microdit.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.backend.Backend;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * What the fused-op tests share: they run a fused op and the separate ops it replaces on the CPU and the CUDA
 * backend, from the same host inputs into NaN-poisoned outputs, and require the same bits of every output.
 */
final class FusedOpCheck {
    private FusedOpCheck() {
    }

    /** A copy of host tensor {@code t} (null stays null) in {@code scope} of {@code be}, never {@code t} itself. */
    static Tensor on(Backend be, MemoryScope scope, Tensor t) {
        if (t == null) {
            return null;
        }
        Tensor copy = Tensor.empty(scope, t.dtype(), t.shape());
        be.copy(t, copy);
        return copy;
    }

    /** An output on {@code be} full of NaN, so that an element an op does not write shows. */
    static Tensor poisoned(Backend be, MemoryScope scope, DType dtype, int... shape) {
        Tensor t = Tensor.empty(scope, dtype, shape);
        be.fill(t, Float.NaN);
        return t;
    }

    /** Host copies of the non-null {@code tensors}, under the name at their position in {@code names}. */
    static Map<String, Tensor> results(Backend be, MemoryScope host, String[] names, Tensor... tensors) {
        assertEquals(names.length, tensors.length);
        Map<String, Tensor> map = new LinkedHashMap<>();
        for (int i = 0; i < names.length; i++) {
            if (tensors[i] != null) {
                Tensor t = tensors[i];
                map.put(names[i], host.zeros(t.dtype(), t.shape()).copyFrom(be.download(t, host)));
            }
        }
        return map;
    }

    /**
     * The fused op's outputs have every element written (no NaN left from the poison) and equal the separate ops'
     * ({@code reference}, named in the message) bit for bit.
     */
    static void sameBits(Map<String, Tensor> separate, Map<String, Tensor> fused, String backend, String reference) {
        assertEquals(separate.keySet(), fused.keySet());
        for (String name : separate.keySet()) {
            float[] expected = separate.get(name).toFloatArray(), got = fused.get(name).toFloatArray();
            for (float v : got) {
                assertTrue(!Float.isNaN(v), backend + ": " + name + " has an element the fused op did not write");
            }
            assertArrayEquals(expected, got, backend + ": " + name + " differs from " + reference);
        }
    }
}
