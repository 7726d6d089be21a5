package io.microdit.backend.cpu;

import io.microdit.backend.FlopCounter;
import io.microdit.backend.MoeChecks;
import io.microdit.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Expert-choice MoE routing (the official {@code FeedForwardECMoe}): top-k token selection per expert, and the
 * gather (dispatch) and weighted scatter (combine) that replace the reference code's dense one-hot einsums.
 *
 * <p><b>Top-k order.</b> For each (sample n, expert e) the candidates are the tokens t with key probs[n, t, e].
 * Keys are ordered totally: first by value as {@link Float#compare} orders floats (so NaN ranks above every
 * number and -0.0 below 0.0), then the LOWER token index wins a tie. The k best are written best first. A CUDA
 * kernel reproduces this exactly by comparing the same 64-bit key: the float's order-preserving integer in the
 * high half and the bitwise complement of the token index in the low half (see {@link #routingKey}). The
 * selection keeps a min-heap of the k best keys while streaming over the T tokens, O(T log k) per (n, e), then
 * heap-sorts it; (n, e) pairs run in parallel.
 *
 * <p><b>Dispatch</b> copies the chosen rows expert-major, out[e, n·k + j, :] = x[n, indices[n,e,j], :], so each
 * expert's inputs form one contiguous [N·k, D] matrix for a batched matmul with w1 [E, D, H]. Parallel over
 * output rows; pure data movement (0 FLOPs).
 *
 * <p><b>Combine</b> and the <b>dispatch backward</b> scatter rows back to tokens, where a token may be chosen by
 * several experts. Rather than atomics, both first invert the indices into a per-token list of the routing
 * slots (n, e, j) that chose it, in (e, j) order (a counting sort, O(N·E·k)); every output row is then owned by
 * one task and summed in that fixed order, so the result is race-free and bit-identical for any thread count.
 * In combine the first term is a plain product and later ones fused multiply-adds; tokens no expert chose get
 * zeros (combine) or are left untouched (the backward accumulates).
 *
 * <p><b>Combine backward</b> is parallel over routed rows: dH[e, n·k+j, :] = gates[n,e,j] · dOut[n, t, :] and
 * dGates[n,e,j] = dOut[n, t, :] · h[e, n·k+j, :], fused in one pass over the two rows.
 *
 * <p>Every index is range-checked before any output is written. FLOPs: combine 2·E·N·k·D, combine backward
 * 3·E·N·k·D, dispatch backward E·N·k·D, top-k backward N·E·k; top-k and dispatch report 0 (comparisons and
 * copies only).
 */
final class CpuMoe {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final int LANES = SPECIES.length();
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT;
    private static final ValueLayout.OfInt INT = ValueLayout.JAVA_INT;
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();
    /** Floats per task at least, so that a task is worth handing to another thread. */
    private static final int MIN_ELEMENTS_PER_TASK = 1 << 14;

    /**
     * Routing slots per token, as compressed rows: the slots (flat indices n·E·k + e·k + j into gates and
     * indices) that chose token t of sample n are {@code slots[start[n·T + t] .. start[n·T + t + 1])}, in
     * ascending slot order, which is (e, j) order.
     */
    private record TokenSlots(int[] start, int[] slots) {
    }

    private final Parallel parallel;
    private final FlopCounter flops;

    CpuMoe(Parallel parallel, FlopCounter flops) {
        this.parallel = parallel;
        this.flops = flops;
    }

    void topK(Tensor probs, int k, Tensor gates, Tensor indices) {
        String op = "expertChoiceTopK";
        MoeChecks.Routing r = MoeChecks.expertChoiceTopK(probs, k, gates, indices);
        int samples = r.samples(), tokens = r.tokens(), experts = r.experts();
        MemorySegment ps = probs.segment(), gs = gates.segment(), is = indices.segment();
        parallel.forRange(samples * experts, Math.max(1, MIN_ELEMENTS_PER_TASK / tokens), (start, end) -> {
            long[] heap = new long[k];
            for (int item = start; item < end; item++) {
                int n = item / experts, e = item % experts;
                long column = (long) n * tokens * experts + e;
                selectTopK(ps, column, experts, tokens, heap);
                long out = (long) item * k;
                for (int j = 0; j < k; j++) {
                    int t = tokenOf(heap[j]);
                    is.setAtIndex(INT, out + j, t);
                    gs.setAtIndex(FLOAT, out + j, ps.getAtIndex(FLOAT, column + (long) t * experts));
                }
            }
        });
        flops.add(op, 0);
    }

    void topKBackward(Tensor dGates, Tensor indices, Tensor dProbs) {
        String op = "expertChoiceTopKBackward";
        MoeChecks.Routing r = MoeChecks.expertChoiceTopKBackward(dGates, indices, dProbs);
        int samples = r.samples(), tokens = r.tokens(), experts = r.experts(), k = r.k();
        checkIndexRange(op, indices, tokens);
        MemorySegment gs = dGates.segment(), is = indices.segment(), ps = dProbs.segment();
        parallel.forRange(samples, Math.max(1, MIN_ELEMENTS_PER_TASK / (experts * k + 1)), (start, end) -> {
            for (int n = start; n < end; n++) {
                long sampleBase = (long) n * tokens * experts;
                for (int e = 0; e < experts; e++) {
                    long slot = ((long) n * experts + e) * k;
                    for (int j = 0; j < k; j++) {
                        long at = sampleBase + (long) is.getAtIndex(INT, slot + j) * experts + e;
                        ps.setAtIndex(FLOAT, at, ps.getAtIndex(FLOAT, at) + gs.getAtIndex(FLOAT, slot + j));
                    }
                }
            }
        });
        flops.add(op, (long) samples * experts * k);
    }

    void dispatch(Tensor x, Tensor indices, Tensor out) {
        String op = "moeDispatch";
        MoeChecks.Routing r = MoeChecks.moeDispatch(x, indices, out);
        if (Bf16Operands.any(out)) {
            // BF16 rows: the F32 rows rounded once, as the CUDA kernel rounds each element at its store.
            Bf16Operands.run(g -> dispatch(x, indices, g.out(out)));
            return;
        }
        int samples = r.samples(), tokens = r.tokens(), experts = r.experts(), k = r.k(), dim = r.dim();
        checkIndexRange(op, indices, tokens);
        MemorySegment xs = x.segment(), is = indices.segment(), os = out.segment();
        long rowBytes = (long) dim * Float.BYTES;
        int rowsPerExpert = samples * k;
        parallel.forRange(experts * rowsPerExpert, minRows(dim), (start, end) -> {
            for (int row = start; row < end; row++) {
                int e = row / rowsPerExpert, within = row % rowsPerExpert;
                int n = within / k, j = within % k;
                int t = is.getAtIndex(INT, ((long) n * experts + e) * k + j);
                MemorySegment.copy(xs, ((long) n * tokens + t) * rowBytes, os, row * rowBytes, rowBytes);
            }
        });
        flops.add(op, 0);
    }

    void dispatchBackward(Tensor dOut, Tensor indices, Tensor dx) {
        String op = "moeDispatchBackward";
        MoeChecks.Routing r = MoeChecks.moeDispatchBackward(dOut, indices, dx);
        if (Bf16Operands.any(dOut)) {
            Bf16Operands.run(g -> dispatchBackward(g.in(dOut), indices, dx));
            return;
        }
        int samples = r.samples(), tokens = r.tokens(), experts = r.experts(), k = r.k(), dim = r.dim();
        checkIndexRange(op, indices, tokens);
        TokenSlots routes = tokenSlots(indices, tokens);
        MemorySegment gs = dOut.segment(), ds = dx.segment();
        parallel.forRange(samples * tokens, minRows(dim), (start, end) -> {
            for (int row = start; row < end; row++) {
                int n = row / tokens;
                long target = (long) row * dim;
                for (int s = routes.start()[row]; s < routes.start()[row + 1]; s++) {
                    addRow(gs, routedRow(routes.slots()[s], n, samples, experts, k) * dim, ds, target, dim);
                }
            }
        });
        flops.add(op, (long) experts * samples * k * dim);
    }

    void combine(Tensor h, Tensor gates, Tensor indices, Tensor out) {
        String op = "moeCombine";
        MoeChecks.Routing r = MoeChecks.moeCombine(h, gates, indices, out);
        if (Bf16Operands.any(h, out)) {
            Bf16Operands.run(g -> combine(g.in(h), gates, indices, g.out(out)));
            return;
        }
        int samples = r.samples(), tokens = r.tokens(), experts = r.experts(), k = r.k(), dim = r.dim();
        checkIndexRange(op, indices, tokens);
        TokenSlots routes = tokenSlots(indices, tokens);
        MemorySegment hs = h.segment(), gs = gates.segment(), os = out.segment();
        parallel.forRange(samples * tokens, minRows(dim), (start, end) -> {
            for (int row = start; row < end; row++) {
                int n = row / tokens;
                long target = (long) row * dim;
                int first = routes.start()[row], last = routes.start()[row + 1];
                if (first == last) {
                    os.asSlice(target * Float.BYTES, (long) dim * Float.BYTES).fill((byte) 0);
                    continue;
                }
                for (int s = first; s < last; s++) {
                    int slot = routes.slots()[s];
                    long source = routedRow(slot, n, samples, experts, k) * dim;
                    float gate = gs.getAtIndex(FLOAT, slot);
                    if (s == first) {
                        scaleRow(hs, source, gate, os, target, dim);
                    } else {
                        fmaRow(hs, source, gate, os, target, dim);
                    }
                }
            }
        });
        flops.add(op, 2L * experts * samples * k * dim);
    }

    void combineBackward(Tensor dOut, Tensor h, Tensor gates, Tensor indices, Tensor dH, Tensor dGates) {
        String op = "moeCombineBackward";
        MoeChecks.Routing r = MoeChecks.moeCombineBackward(dOut, h, gates, indices, dH, dGates);
        if (Bf16Operands.any(dOut, h, dH)) {
            Bf16Operands.run(g -> combineBackward(g.in(dOut), g.in(h), gates, indices, g.out(dH), dGates));
            return;
        }
        int samples = r.samples(), tokens = r.tokens(), experts = r.experts(), k = r.k(), dim = r.dim();
        checkIndexRange(op, indices, tokens);
        MemorySegment ds = dOut.segment(), hs = h.segment(), gs = gates.segment(), is = indices.segment();
        MemorySegment dhs = dH.segment(), dgs = dGates.segment();
        int rowsPerExpert = samples * k;
        parallel.forRange(experts * rowsPerExpert, minRows(dim), (start, end) -> {
            for (int row = start; row < end; row++) {
                int e = row / rowsPerExpert, within = row % rowsPerExpert;
                int n = within / k, j = within % k;
                long slot = ((long) n * experts + e) * k + j;
                long source = ((long) n * tokens + is.getAtIndex(INT, slot)) * dim;
                float dot = scaleRowAndDot(ds, source, gs.getAtIndex(FLOAT, slot), dhs, hs, (long) row * dim, dim);
                dgs.setAtIndex(FLOAT, slot, dot);
            }
        });
        flops.add(op, 3L * experts * samples * k * dim);
    }

    // ---------------------------------------------------------------- top-k selection

    /**
     * The total order of candidates as one signed 64-bit integer, larger is better: the float's bits mapped to
     * an int that orders like {@link Float#compare} (NaN canonicalised), then the complemented token index as
     * the unsigned low half, so that of two equal values the lower token index has the larger key.
     */
    private static long routingKey(float value, int token) {
        int bits = Float.floatToIntBits(value);
        int ordered = bits ^ ((bits >> 31) & 0x7fffffff);
        return ((long) ordered << 32) | (~token & 0xffffffffL);
    }

    private static int tokenOf(long key) {
        return ~(int) key;
    }

    /**
     * Leaves in {@code heap} the keys of the k best tokens of one (n, e) column, best first. The column is
     * read with stride {@code experts} starting at element {@code column}.
     */
    private static void selectTopK(MemorySegment probs, long column, int experts, int tokens, long[] heap) {
        int k = heap.length;
        for (int t = 0; t < k; t++) {
            heap[t] = routingKey(probs.getAtIndex(FLOAT, column + (long) t * experts), t);
        }
        for (int i = k / 2 - 1; i >= 0; i--) {
            siftDown(heap, i, k);
        }
        for (int t = k; t < tokens; t++) {
            long key = routingKey(probs.getAtIndex(FLOAT, column + (long) t * experts), t);
            if (key > heap[0]) {
                heap[0] = key;
                siftDown(heap, 0, k);
            }
        }
        // Heap sort on the min-heap: moving the smallest key to the end each time leaves the keys descending.
        for (int size = k - 1; size > 0; size--) {
            long smallest = heap[0];
            heap[0] = heap[size];
            heap[size] = smallest;
            siftDown(heap, 0, size);
        }
    }

    /** Restores the min-heap property below {@code i} in {@code heap[0, size)}. */
    private static void siftDown(long[] heap, int i, int size) {
        long key = heap[i];
        while (true) {
            int child = 2 * i + 1;
            if (child >= size) {
                break;
            }
            if (child + 1 < size && heap[child + 1] < heap[child]) {
                child++;
            }
            if (heap[child] >= key) {
                break;
            }
            heap[i] = heap[child];
            i = child;
        }
        heap[i] = key;
    }

    // ---------------------------------------------------------------- index handling

    /** Throws, before anything is written, when an index is not a token of its sample. */
    private static void checkIndexRange(String op, Tensor indices, int tokens) {
        MemorySegment is = indices.segment();
        int experts = indices.dim(1), k = indices.dim(2);
        for (long i = 0; i < indices.numel(); i++) {
            int t = is.getAtIndex(INT, i);
            if (t < 0 || t >= tokens) {
                long n = i / ((long) experts * k), e = i / k % experts, j = i % k;
                throw new IllegalArgumentException(op + ": indices[" + n + ", " + e + ", " + j + "] = " + t
                        + " is not a token index in [0, " + tokens + ")");
            }
        }
    }

    /** Inverts the (range-checked) indices into per-token slot lists by a counting sort, parallel over samples. */
    private TokenSlots tokenSlots(Tensor indices, int tokens) {
        int samples = indices.dim(0), slotsPerSample = indices.dim(1) * indices.dim(2);
        MemorySegment is = indices.segment();
        int[] start = new int[samples * tokens + 1];
        int[] slots = new int[samples * slotsPerSample];
        parallel.forRange(samples, 1, (first, last) -> {
            int[] cursor = new int[tokens];
            for (int n = first; n < last; n++) {
                Arrays.fill(cursor, 0);
                int base = n * slotsPerSample;
                for (int s = 0; s < slotsPerSample; s++) {
                    cursor[is.getAtIndex(INT, base + s)]++;
                }
                int offset = base;
                for (int t = 0; t < tokens; t++) {
                    int count = cursor[t];
                    cursor[t] = offset;
                    offset += count;
                    start[n * tokens + t + 1] = offset;
                }
                for (int s = 0; s < slotsPerSample; s++) {
                    slots[cursor[is.getAtIndex(INT, base + s)]++] = base + s;
                }
            }
        });
        return new TokenSlots(start, slots);
    }

    /** The row of the expert-major [E, N·k, D] layout that holds routing slot n·E·k + e·k + j. */
    private static long routedRow(int slot, int n, int samples, int experts, int k) {
        int within = slot - n * experts * k;
        int e = within / k, j = within - e * k;
        return ((long) e * samples + n) * k + j;
    }

    private static int minRows(int dim) {
        return Math.max(1, MIN_ELEMENTS_PER_TASK / Math.max(1, dim));
    }

    // ---------------------------------------------------------------- row kernels (element offsets)

    private static FloatVector load(MemorySegment segment, long index) {
        return FloatVector.fromMemorySegment(SPECIES, segment, index * Float.BYTES, ORDER);
    }

    private static void store(FloatVector v, MemorySegment segment, long index) {
        v.intoMemorySegment(segment, index * Float.BYTES, ORDER);
    }

    /** {@code target[0, dim) += source[0, dim)}. */
    private static void addRow(MemorySegment source, long sourceAt, MemorySegment target, long targetAt, int dim) {
        int i = 0;
        for (int bound = SPECIES.loopBound(dim); i < bound; i += LANES) {
            store(load(target, targetAt + i).add(load(source, sourceAt + i)), target, targetAt + i);
        }
        for (; i < dim; i++) {
            target.setAtIndex(FLOAT, targetAt + i,
                    target.getAtIndex(FLOAT, targetAt + i) + source.getAtIndex(FLOAT, sourceAt + i));
        }
    }

    /** {@code target[0, dim) = scale · source[0, dim)}. */
    private static void scaleRow(MemorySegment source, long sourceAt, float scale, MemorySegment target,
                                 long targetAt, int dim) {
        int i = 0;
        for (int bound = SPECIES.loopBound(dim); i < bound; i += LANES) {
            store(load(source, sourceAt + i).mul(scale), target, targetAt + i);
        }
        for (; i < dim; i++) {
            target.setAtIndex(FLOAT, targetAt + i, scale * source.getAtIndex(FLOAT, sourceAt + i));
        }
    }

    /** {@code target[0, dim) = fma(scale, source, target)}, fused in the vector body and the tail alike. */
    private static void fmaRow(MemorySegment source, long sourceAt, float scale, MemorySegment target,
                               long targetAt, int dim) {
        int i = 0;
        FloatVector scaleVector = FloatVector.broadcast(SPECIES, scale);
        for (int bound = SPECIES.loopBound(dim); i < bound; i += LANES) {
            store(load(source, sourceAt + i).fma(scaleVector, load(target, targetAt + i)), target, targetAt + i);
        }
        for (; i < dim; i++) {
            target.setAtIndex(FLOAT, targetAt + i,
                    Math.fma(source.getAtIndex(FLOAT, sourceAt + i), scale, target.getAtIndex(FLOAT, targetAt + i)));
        }
    }

    /**
     * One pass over a dOut row g and a routed row of h: writes {@code dH = scale · g} and returns {@code g · h}.
     * Both routed rows (of dH and h) start at element {@code routedAt}.
     */
    private static float scaleRowAndDot(MemorySegment g, long gAt, float scale, MemorySegment dH, MemorySegment h,
                                        long routedAt, int dim) {
        int i = 0;
        float dot = 0f;
        int bound = SPECIES.loopBound(dim);
        if (bound > 0) {
            FloatVector dotVector = FloatVector.zero(SPECIES);
            for (; i < bound; i += LANES) {
                FloatVector gv = load(g, gAt + i);
                store(gv.mul(scale), dH, routedAt + i);
                dotVector = gv.fma(load(h, routedAt + i), dotVector);
            }
            dot = VectorMath.sumLanes(dotVector);
        }
        for (; i < dim; i++) {
            float gv = g.getAtIndex(FLOAT, gAt + i);
            dH.setAtIndex(FLOAT, routedAt + i, scale * gv);
            dot = Math.fma(gv, h.getAtIndex(FLOAT, routedAt + i), dot);
        }
        return dot;
    }
}
