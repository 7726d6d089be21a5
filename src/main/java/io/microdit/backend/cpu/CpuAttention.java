package io.microdit.backend.cpu;

import static io.microdit.backend.cpu.AttentionKernels.LANES;
import static io.microdit.backend.cpu.AttentionKernels.QUERY_BLOCK;

import io.microdit.backend.AttentionChecks;
import io.microdit.backend.FlopCounter;
import io.microdit.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * Fused non-causal scaled dot-product attention, FlashAttention-2 style; the Tq×Tk score matrix never exists.
 *
 * <p>Forward: one task per (sample, head, block of {@link AttentionKernels#QUERY_BLOCK} queries). The block's
 * queries, scaled by 1/sqrt(Dh), are gathered transposed into a [Dh, queries] tile so that queries run along
 * vector lanes; then
 * for each block of {@link #KEY_BLOCK} keys: scores [keys, queries] = K·Qᵀ, online softmax per query (running
 * max and sum, rescaling the output accumulator when the max grows), output [queries, Dh] += Pᵀ·V, row-major so
 * that it is stored without a transpose. The
 * softmax statistics stay in lanes, so no horizontal reduction is needed anywhere. Saves lse = max + log(sum).
 *
 * <p>Backward: one task per (sample, head), so dK and dV are accumulated by one thread without races and the
 * result does not depend on the thread count. D = rowsum(dO ∘ O); per (key block, query block) the
 * probabilities are recomputed from Q, K and lse, then dV += Pᵀ·dO, dP = dO·Vᵀ, dS = P ∘ (dP − D),
 * dQ += dS·K, dK += dSᵀ·Q (both scaled at the end).
 *
 * <p>Every product is {@link AttentionKernels#multiply} on thread-local tiles padded to whole vectors (padded
 * queries have zero inputs and lse = +∞, so they contribute nothing). FLOPs: forward 4·N·H·Tq·Tk·Dh, backward
 * 2.5× that (the FlashAttention convention; the actual count is 10·N·H·Tq·Tk·Dh too: five products).
 */
final class CpuAttention {
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT;
    static final int KEY_BLOCK = 64;

    private final Parallel parallel;
    private final FlopCounter flops;

    CpuAttention(Parallel parallel, FlopCounter flops) {
        this.parallel = parallel;
        this.flops = flops;
    }

    /** Sizes of one attention call, checked against every tensor. */
    private record Shape(int batch, int queries, int keys, int heads, int headDim, int width) {
        /** From the checked sizes {N, Tq, Tk, Dh}. */
        static Shape of(int[] sizes, int heads) {
            return new Shape(sizes[0], sizes[1], sizes[2], heads, sizes[3], heads * sizes[3]);
        }

        long flops() {
            return 4L * batch * heads * queries * keys * headDim;
        }

        /** Byte offset of (sample, token, head) in a [N, tokens, H·Dh] tensor. */
        long offset(int sample, int token, int tokens, int head) {
            return (((long) sample * tokens + token) * width + (long) head * headDim) * Float.BYTES;
        }

        /** What a thread's kept tiles are sized by: they serve any call of the same sizes (batch and heads aside). */
        TileSizes tileSizes() {
            return new TileSizes(queries, keys, headDim, width);
        }

        /** Whether a sample's rows split into whole {@link BlockTranspose} blocks, so q and dOut transpose by blocks. */
        boolean wholeBlocks() {
            return BlockTranspose.AVAILABLE && queries % BlockTranspose.SIDE == 0 && width % BlockTranspose.SIDE == 0;
        }
    }

    /** The sizes a thread's kept tiles were made for. */
    private record TileSizes(int queries, int keys, int headDim, int width) {
    }

    /**
     * BF16 q, k and v (all three, as Checks requires) are computed as the exact F32 values of their bf16 numbers; a
     * BF16 out is the F32 result rounded once, as the CUDA kernel rounds at its store; lse stays F32.
     */
    void forward(Tensor q, Tensor k, Tensor v, int heads, Tensor out, Tensor lse) {
        if (Bf16Operands.any(q, out)) {
            AttentionChecks.attention(q, k, v, heads, out, lse);
            Bf16Operands.run(g -> forward(g.in(q), g.in(k), g.in(v), heads, g.out(out), lse));
            return;
        }
        Shape s = Shape.of(AttentionChecks.attention(q, k, v, heads, out, lse), heads);
        MemorySegment qs = q.segment(), ks = k.segment(), vs = v.segment(), os = out.segment(), ls = lse.segment();
        int queryBlocks = Math.ceilDiv(s.queries(), QUERY_BLOCK);
        int tasks = s.batch() * s.heads() * queryBlocks;
        parallel.forRange(tasks, 1, (start, end) -> {
            ForwardTiles tiles = ForwardTiles.forShape(s);
            tiles.gatheredHead = -1; // the tiles outlive the call; what they hold is this call's tensors' only now
            tiles.loadedSample = -1;
            tiles.loadedKeysSample = -1;
            for (int task = start; task < end; task++) {
                int block = task % queryBlocks, head = task / queryBlocks % s.heads();
                int sample = task / queryBlocks / s.heads();
                forwardBlock(s, sample, head, block * QUERY_BLOCK, qs, ks, vs, os, ls, tiles);
            }
        });
        flops.add("attention", s.flops());
    }

    /**
     * Thread-local tiles of the forward; queries along the lanes (row stride {@link AttentionKernels#QUERY_BLOCK}).
     * A thread's tasks are contiguous, so it gathers the keys and values of one (sample, head) once for all its
     * query blocks.
     */
    private static final class ForwardTiles {
        /** Per thread and shape (as {@link BackwardTiles#KEPT}). */
        private static final TilesByShape<TileSizes, ForwardTiles> KEPT = new TilesByShape<>();

        /** A query block's own query-major tile and a head's gathered keys and values: only where the sample tiles
         * below are not used (null there). */
        final float[] queryT, keys, values;
        final float[] output, scores;
        final float[] max = new float[QUERY_BLOCK], sum = new float[QUERY_BLOCK], rescale = new float[QUERY_BLOCK];
        /** head_dim padded to whole vectors: the row stride of keys, values and output (the padding stays zero). */
        final int paddedHeadDim;
        /**
         * With whole 16 × 16 blocks (queries and H·Dh multiples of 16): one sample's q rows [queries, H·Dh], copied
         * in bulk, and transposed and scaled, [H·Dh, queries], so that each query block's query-major tile is a
         * piece of it rather than a scatter of its rows; else null.
         */
        final float[] sampleQuery, sampleQueryT;
        /**
         * One sample's k and v rows [keys, H·Dh], copied in bulk: with head_dim a whole number of vectors the products
         * read each head's keys and values where they are in them, instead of gathering the head's pieces of rows.
         */
        final float[] sampleKeys, sampleValues;
        int gatheredHead = -1;
        int loadedSample = -1;
        int loadedKeysSample = -1;

        static ForwardTiles forShape(Shape s) {
            return KEPT.get(s.tileSizes(), () -> new ForwardTiles(s));
        }

        private ForwardTiles(Shape s) {
            boolean blocks = s.wholeBlocks();
            sampleQuery = blocks ? new float[s.queries() * s.width()] : null;
            sampleQueryT = blocks ? new float[s.width() * s.queries()] : null;
            paddedHeadDim = Math.ceilDiv(s.headDim(), LANES) * LANES;
            boolean inPlace = paddedHeadDim == s.headDim();
            sampleKeys = inPlace ? new float[s.keys() * s.width()] : null;
            sampleValues = inPlace ? new float[s.keys() * s.width()] : null;
            queryT = blocks ? null : new float[s.headDim() * QUERY_BLOCK];
            output = new float[QUERY_BLOCK * paddedHeadDim];
            keys = inPlace ? null : new float[s.keys() * paddedHeadDim];
            values = inPlace ? null : new float[s.keys() * paddedHeadDim];
            scores = new float[KEY_BLOCK * QUERY_BLOCK];
        }
    }

    private static void forwardBlock(Shape s, int sample, int head, int firstQuery, MemorySegment qs,
                                     MemorySegment ks, MemorySegment vs, MemorySegment os, MemorySegment ls,
                                     ForwardTiles t) {
        int dh = s.headDim(), pd = t.paddedHeadDim;
        int count = Math.min(QUERY_BLOCK, s.queries() - firstQuery);
        int vectors = Math.ceilDiv(count, LANES), padded = vectors * LANES;
        float scale = (float) (1 / Math.sqrt(dh));
        float[] keys = t.keys, values = t.values;
        int keyBase = 0, keyStride = pd;
        if (t.sampleKeys != null) {
            if (t.loadedKeysSample != sample) {
                long keyBytes = (long) sample * s.keys() * s.width() * Float.BYTES;
                MemorySegment.copy(ks, F, keyBytes, t.sampleKeys, 0, s.keys() * s.width());
                MemorySegment.copy(vs, F, keyBytes, t.sampleValues, 0, s.keys() * s.width());
                t.loadedKeysSample = sample;
            }
            keys = t.sampleKeys;
            values = t.sampleValues;
            keyBase = head * dh;
            keyStride = s.width();
        } else if (t.gatheredHead != sample * s.heads() + head) {
            gatherHead(s, sample, head, ks, s.keys(), t.keys, pd);
            gatherHead(s, sample, head, vs, s.keys(), t.values, pd);
            t.gatheredHead = sample * s.heads() + head;
        }
        // The block's query-major tile [Dh, queries] (scaled): a piece of the sample's transposed q, or its own.
        float[] queryT = t.queryT;
        int queryTOffset = 0, queryTStride = QUERY_BLOCK;
        if (t.sampleQuery != null) {
            if (t.loadedSample != sample) {
                int tq = s.queries(), width = s.width(), side = BlockTranspose.SIDE;
                MemorySegment.copy(qs, F, (long) sample * tq * width * Float.BYTES, t.sampleQuery, 0, tq * width);
                for (int row = 0; row < tq; row += side) {
                    for (int c = 0; c < width; c += side) {
                        BlockTranspose.transpose(t.sampleQuery, row * width + c, width, t.sampleQueryT, c * tq + row,
                                tq, scale);
                    }
                }
                t.loadedSample = sample;
            }
            queryT = t.sampleQueryT;
            queryTOffset = head * dh * s.queries() + firstQuery;
            queryTStride = s.queries();
        } else {
            for (int i = 0; i < count; i++) {
                AttentionKernels.rowToColumn(qs, s.offset(sample, firstQuery + i, s.queries(), head), dh, scale,
                        t.queryT, i);
            }
            for (int i = count; i < padded; i++) {
                for (int d = 0; d < dh; d++) {
                    t.queryT[d * QUERY_BLOCK + i] = 0f;
                }
            }
        }
        Arrays.fill(t.output, 0, count * pd, 0f);
        Arrays.fill(t.max, Float.NEGATIVE_INFINITY);
        Arrays.fill(t.sum, 0f);
        for (int firstKey = 0; firstKey < s.keys(); firstKey += KEY_BLOCK) {
            int keyCount = Math.min(KEY_BLOCK, s.keys() - firstKey);
            AttentionKernels.multiply(keys, keyBase + firstKey * keyStride, keyStride, 1, queryT, queryTOffset,
                    queryTStride, t.scores, 0, QUERY_BLOCK, keyCount, vectors, dh, false);
            for (int lane = 0; lane < padded; lane += LANES) {
                AttentionKernels.onlineSoftmax(t.scores, QUERY_BLOCK, keyCount, lane, t.max, t.sum, t.rescale);
            }
            AttentionKernels.scaleRows(t.output, pd, count, t.rescale);
            // The output row-major, [query, head_dim]: each element sums the keys in the same order as a
            // query-major tile would, and no transpose is needed to store it.
            AttentionKernels.multiply(t.scores, 0, 1, QUERY_BLOCK, values, keyBase + firstKey * keyStride, keyStride,
                    t.output, 0, pd, count, pd / LANES, keyCount, true);
        }
        for (int i = 0; i < count; i++) {
            AttentionKernels.scaleRow(t.output, i * pd, dh, 1f / t.sum[i], os,
                    s.offset(sample, firstQuery + i, s.queries(), head));
            long lseIndex = ((long) sample * s.heads() + head) * s.queries() + firstQuery + i;
            ls.setAtIndex(F, lseIndex, t.max[i] + (float) Math.log(t.sum[i]));
        }
    }

    /** Copies the rows of one head of a [N, tokens, H·Dh] tensor into {@code tile} [tokens, rowStride]. */
    private static void gatherHead(Shape s, int sample, int head, MemorySegment source, int tokens, float[] tile,
                                   int rowStride) {
        for (int j = 0; j < tokens; j++) {
            AttentionKernels.copyRow(source, s.offset(sample, j, tokens, head), tile, j * rowStride, s.headDim());
        }
    }

    void backward(Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, int heads, Tensor dq,
                  Tensor dk, Tensor dv) {
        if (Bf16Operands.any(dOut, q, out, dq, dk, dv)) {
            AttentionChecks.attentionBackward(dOut, q, k, v, out, lse, heads, dq, dk, dv);
            Bf16Operands.run(g -> backward(g.in(dOut), g.in(q), g.in(k), g.in(v), g.in(out), lse, heads, g.out(dq),
                    g.out(dk), g.out(dv)));
            return;
        }
        Shape s = Shape.of(AttentionChecks.attentionBackward(dOut, q, k, v, out, lse, heads, dq, dk, dv), heads);
        Segments m = new Segments(dOut.segment(), q.segment(), k.segment(), v.segment(), out.segment(),
                lse.segment(), dq.segment(), dk.segment(), dv.segment());
        parallel.forRange(s.batch() * s.heads(), 1, (start, end) -> {
            BackwardTiles tiles = BackwardTiles.forShape(s);
            tiles.loadedSample = -1; // the tiles outlive the call; their sample rows are this call's tensors' only now
            for (int task = start; task < end; task++) {
                backwardHead(s, task / s.heads(), task % s.heads(), m, tiles);
            }
        });
        flops.add("attentionBackward", s.flops() * 5 / 2);
    }

    private record Segments(MemorySegment dOut, MemorySegment q, MemorySegment k, MemorySegment v,
                            MemorySegment out, MemorySegment lse, MemorySegment dq, MemorySegment dk,
                            MemorySegment dv) {
    }

    /**
     * Thread-local tiles for one head: queries along lanes in the transposed tiles ([Dh, paddedQueries]),
     * head_dim along lanes (padded to whole vectors) in the natural ones ([rows, paddedHeadDim]). Padding is
     * zero from allocation and never written, so it stays zero from head to head.
     */
    private static final class BackwardTiles {
        /**
         * Per thread and shape: a block's self- and cross-attention alternate, and allocating the tiles per call was
         * most of the Java heap a step allocated (JFR). Reusing them across calls is reusing them across heads, which
         * the zero padding already allows.
         */
        private static final TilesByShape<TileSizes, BackwardTiles> KEPT = new TilesByShape<>();

        final int paddedQueries, paddedHeadDim;
        final float[] gradQuery, gradKeys, gradValues;
        final float[] lse, delta, probabilities, gradScores;
        /**
         * Whether head_dim is a whole number of vectors, so that the products read a head's q, dOut, out, k and v rows
         * where they are in the sample rows below; else they are copied into the zero-padded tiles query, gradOut,
         * out ([paddedQueries, paddedHeadDim], out for delta = rowsum(dO ∘ O)), keys and values (null here).
         */
        final boolean rowsInPlace;
        final float[] query, gradOut, out, keys, values;
        /**
         * A head's own query-major tiles and the lane map that walks their columns (lane k at k·paddedQueries): only
         * without {@link #blockTransposed} (null with it).
         */
        final float[] queryT, gradOutT;
        final int[] columns;
        /**
         * One sample's rows of q, dOut and out ([queries, H·Dh]) and of k and v ([keys, H·Dh]), copied in bulk when a
         * task of a new sample starts: a head then reads its columns from here rather than Dh-float pieces of rows
         * scattered through the tensors (a quarter of the attention's samples were those copies' cache misses).
         */
        final float[] sampleQuery, sampleGradOut, sampleOut, sampleKeys, sampleValues;
        /**
         * With whole 16 × 16 blocks ({@link #blockTransposed}): the sample's q (scaled) and dOut transposed,
         * [H·Dh, paddedQueries], so that head h's query-major tiles are rows h·Dh onwards, with no transpose per
         * head; else null.
         */
        final float[] sampleQueryT, sampleGradOutT;
        final boolean blockTransposed;
        int loadedSample = -1;

        static BackwardTiles forShape(Shape s) {
            return KEPT.get(s.tileSizes(), () -> new BackwardTiles(s));
        }

        private BackwardTiles(Shape s) {
            paddedQueries = Math.ceilDiv(s.queries(), LANES) * LANES;
            paddedHeadDim = Math.ceilDiv(s.headDim(), LANES) * LANES;
            int dh = s.headDim();
            blockTransposed = s.wholeBlocks();
            rowsInPlace = paddedHeadDim == dh;
            queryT = blockTransposed ? null : new float[dh * paddedQueries];
            gradOutT = blockTransposed ? null : new float[dh * paddedQueries];
            columns = blockTransposed ? null : AttentionKernels.columnMap(paddedQueries);
            gradQuery = new float[paddedQueries * paddedHeadDim];
            query = rowsInPlace ? null : new float[paddedQueries * paddedHeadDim];
            gradOut = rowsInPlace ? null : new float[paddedQueries * paddedHeadDim];
            out = rowsInPlace ? null : new float[paddedQueries * paddedHeadDim];
            keys = rowsInPlace ? null : new float[s.keys() * paddedHeadDim];
            values = rowsInPlace ? null : new float[s.keys() * paddedHeadDim];
            gradKeys = new float[s.keys() * paddedHeadDim];
            gradValues = new float[s.keys() * paddedHeadDim];
            lse = new float[paddedQueries];
            delta = new float[paddedQueries];
            Arrays.fill(lse, s.queries(), paddedQueries, Float.POSITIVE_INFINITY);
            probabilities = new float[KEY_BLOCK * QUERY_BLOCK];
            gradScores = new float[KEY_BLOCK * QUERY_BLOCK];
            sampleQuery = new float[s.queries() * s.width()];
            sampleGradOut = new float[s.queries() * s.width()];
            sampleOut = new float[s.queries() * s.width()];
            sampleKeys = new float[s.keys() * s.width()];
            sampleValues = new float[s.keys() * s.width()];
            sampleQueryT = blockTransposed ? new float[s.width() * paddedQueries] : null;
            sampleGradOutT = blockTransposed ? new float[s.width() * paddedQueries] : null;
        }
    }

    private static void backwardHead(Shape s, int sample, int head, Segments m, BackwardTiles t) {
        int dh = s.headDim(), width = s.width(), pq = t.paddedQueries, pd = t.paddedHeadDim;
        float scale = (float) (1 / Math.sqrt(dh));
        long columnBase = (long) head * dh;
        long lseBase = ((long) sample * s.heads() + head) * s.queries();
        if (t.loadedSample != sample) {
            long queryBytes = (long) sample * s.queries() * width * Float.BYTES;
            long keyBytes = (long) sample * s.keys() * width * Float.BYTES;
            MemorySegment.copy(m.q(), F, queryBytes, t.sampleQuery, 0, s.queries() * width);
            MemorySegment.copy(m.dOut(), F, queryBytes, t.sampleGradOut, 0, s.queries() * width);
            MemorySegment.copy(m.out(), F, queryBytes, t.sampleOut, 0, s.queries() * width);
            MemorySegment.copy(m.k(), F, keyBytes, t.sampleKeys, 0, s.keys() * width);
            MemorySegment.copy(m.v(), F, keyBytes, t.sampleValues, 0, s.keys() * width);
            if (t.blockTransposed) {
                int side = BlockTranspose.SIDE;
                for (int row = 0; row < s.queries(); row += side) {
                    for (int c = 0; c < width; c += side) {
                        BlockTranspose.transpose(t.sampleQuery, row * width + c, width, t.sampleQueryT, c * pq + row,
                                pq, scale);
                        BlockTranspose.transpose(t.sampleGradOut, row * width + c, width, t.sampleGradOutT,
                                c * pq + row, pq, 1f);
                    }
                }
            }
            t.loadedSample = sample;
        }
        int column = head * dh;
        // The head's row-major operands [rows, head_dim]: read where they are in the sample's rows when head_dim is
        // whole vectors (the products read exactly its columns there), else copied into zero-padded tiles.
        float[] query = t.query, gradOut = t.gradOut, out = t.out, keys = t.keys, values = t.values;
        int base = 0, stride = pd;
        if (t.rowsInPlace) {
            query = t.sampleQuery;
            gradOut = t.sampleGradOut;
            out = t.sampleOut;
            keys = t.sampleKeys;
            values = t.sampleValues;
            base = column;
            stride = width;
        } else {
            for (int i = 0; i < s.queries(); i++) {
                System.arraycopy(t.sampleQuery, i * width + column, t.query, i * pd, dh);
                System.arraycopy(t.sampleGradOut, i * width + column, t.gradOut, i * pd, dh);
                System.arraycopy(t.sampleOut, i * width + column, t.out, i * pd, dh);
            }
            for (int j = 0; j < s.keys(); j++) {
                System.arraycopy(t.sampleKeys, j * width + column, t.keys, j * pd, dh);
                System.arraycopy(t.sampleValues, j * width + column, t.values, j * pd, dh);
            }
        }
        if (!t.blockTransposed) {
            for (int i = 0; i < s.queries(); i++) {
                AttentionKernels.rowToColumn(query, base + i * stride, dh, scale, t.queryT, i, pq, t.columns);
                AttentionKernels.rowToColumn(gradOut, base + i * stride, dh, 1f, t.gradOutT, i, pq, t.columns);
            }
        }
        // The query-major tiles: head h's rows of the sample's transposed q and dOut, or this head's own.
        float[] queryT = t.blockTransposed ? t.sampleQueryT : t.queryT;
        float[] gradOutT = t.blockTransposed ? t.sampleGradOutT : t.gradOutT;
        int transposedBase = t.blockTransposed ? column * pq : 0;
        AttentionKernels.rowDots(gradOut, out, base, stride, dh, s.queries(), t.delta);
        MemorySegment.copy(m.lse(), F, lseBase * Float.BYTES, t.lse, 0, s.queries());
        Arrays.fill(t.gradQuery, 0f);
        Arrays.fill(t.gradKeys, 0f);
        Arrays.fill(t.gradValues, 0f);
        int headDimVectors = pd / LANES;
        for (int firstKey = 0; firstKey < s.keys(); firstKey += KEY_BLOCK) {
            int keyCount = Math.min(KEY_BLOCK, s.keys() - firstKey);
            for (int firstQuery = 0; firstQuery < s.queries(); firstQuery += QUERY_BLOCK) {
                int count = Math.min(QUERY_BLOCK, s.queries() - firstQuery);
                int vectors = Math.ceilDiv(count, LANES);
                AttentionKernels.multiply(keys, base + firstKey * stride, stride, 1, queryT,
                        transposedBase + firstQuery, pq, t.probabilities, 0, QUERY_BLOCK, keyCount, vectors, dh, false);
                AttentionKernels.multiply(values, base + firstKey * stride, stride, 1, gradOutT,
                        transposedBase + firstQuery, pq, t.gradScores, 0, QUERY_BLOCK, keyCount, vectors, dh, false);
                for (int lane = 0; lane < vectors * LANES; lane += LANES) {
                    AttentionKernels.softmaxGradient(t.probabilities, t.gradScores, QUERY_BLOCK, keyCount, lane,
                            t.lse, t.delta, firstQuery);
                }
                AttentionKernels.multiply(t.probabilities, 0, QUERY_BLOCK, 1, gradOut, base + firstQuery * stride,
                        stride, t.gradValues, firstKey * pd, pd, keyCount, headDimVectors, count, true);
                AttentionKernels.multiply(t.gradScores, 0, QUERY_BLOCK, 1, query, base + firstQuery * stride, stride,
                        t.gradKeys, firstKey * pd, pd, keyCount, headDimVectors, count, true);
                // dQ row-major, [query, head_dim], summing the keys in the same order as a query-major tile.
                AttentionKernels.multiply(t.gradScores, 0, 1, QUERY_BLOCK, keys, base + firstKey * stride, stride,
                        t.gradQuery, firstQuery * pd, pd, count, headDimVectors, keyCount, true);
            }
        }
        for (int i = 0; i < s.queries(); i++) {
            long rowBytes = (((long) sample * s.queries() + i) * width + columnBase) * Float.BYTES;
            AttentionKernels.scaleRow(t.gradQuery, i * pd, dh, scale, m.dq(), rowBytes);
        }
        for (int j = 0; j < s.keys(); j++) {
            long rowBytes = (((long) sample * s.keys() + j) * width + columnBase) * Float.BYTES;
            AttentionKernels.scaleRow(t.gradKeys, j * pd, dh, scale, m.dk(), rowBytes);
            MemorySegment.copy(t.gradValues, j * pd, m.dv(), F, rowBytes, dh);
        }
    }
}
