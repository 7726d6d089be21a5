package io.microdit.backend.cuda;

import io.microdit.backend.AttentionChecks;
import io.microdit.backend.Checks;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.util.Set;

/**
 * Fused scaled dot-product attention, forward and backward: drives kernels/attention.cu (mdt_attention_*),
 * the tensor-core kernels for BF16 operands of their head dimensions and the f32 kernels otherwise. The
 * tensor-core backward reads a BF16 dOut and writes BF16 dq, dk, dv in place (_bf16grad); the f32 kernels take
 * BF16 gradients through exact upcasts and F32 results rounded once by convert.
 */
final class CudaAttention extends CudaOps {
    /** Largest head dimension of the attention kernels (kernels/attention.cu). */
    private static final int MAX_HEAD_DIM = 128;
    /** Head dimensions of the tensor-core attention kernel (BF16 q, k, v); others take the f32 kernel. */
    private static final Set<Integer> TENSOR_CORE_HEAD_DIMS = Set.of(32, 64, 128);
    /** Head dimensions of the tensor-core attention backward; others take the f32 kernels. */
    private static final Set<Integer> TENSOR_CORE_BACKWARD_HEAD_DIMS = Set.of(32, 64);
    /** CUDA's grid y limit: attention runs one block row per (sample, head). */
    private static final int MAX_GRID_Y = 65535;

    CudaAttention(CudaBackend cuda) {
        super(cuda);
    }

    void attention(Tensor q, Tensor k, Tensor v, int heads, Tensor out, Tensor lse) {
        String op = "attention";
        int[] s = AttentionChecks.attention(q, k, v, heads, out, lse);
        checkAttentionLimits(op, s[0], heads, s[3]);
        long flopCount = 4L * s[0] * heads * s[1] * s[2] * s[3];
        if (q.dtype() == DType.BF16) {
            if (TENSOR_CORE_HEAD_DIMS.contains(s[3])) {
                MemorySegment pq = pointer(op, "q", q), pk = pointer(op, "k", k), pv = pointer(op, "v", v);
                MemorySegment pout = pointer(op, "out", out), plse = pointer(op, "lse", lse);
                check(out.dtype() == DType.BF16
                        ? AttentionBindings.mdt_attention_fwd_bf16_out(stream, pq, pk, pv, pout, plse, s[0], s[1], s[2],
                                heads, s[3])
                        : AttentionBindings.mdt_attention_fwd_bf16(stream, pq, pk, pv, pout, plse, s[0], s[1], s[2],
                                heads, s[3]), op);
                flops.add(op, flopCount);
                return;
            }
            // No tensor-core kernel for this head dimension: the f32 kernel on the exact f32 values (and an f32
            // out rounded once into a bf16 one).
            try (MemoryScope upcast = scope(op + "-bf16-operands")) {
                Tensor wide = out.dtype() == DType.BF16 ? upcast.zeros(DType.F32, out.shape()) : out;
                attention(toF32(q, upcast), toF32(k, upcast), toF32(v, upcast), heads, wide, lse);
                if (wide != out) {
                    cuda.convert(wide, out);
                }
            }
            return;
        }
        check(AttentionBindings.mdt_attention_fwd(stream, pointer(op, "q", q), pointer(op, "k", k), pointer(op, "v", v),
                pointer(op, "out", out), pointer(op, "lse", lse), s[0], s[1], s[2], heads, s[3]), op);
        flops.add(op, flopCount);
    }

    void attentionBackward(Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, int heads,
                           Tensor dq, Tensor dk, Tensor dv) {
        String op = "attentionBackward";
        int[] s = AttentionChecks.attentionBackward(dOut, q, k, v, out, lse, heads, dq, dk, dv);
        checkAttentionLimits(op, s[0], heads, s[3]);
        int grads = bf16Grads(dOut, dq, dk, dv);
        if (q.dtype() == DType.BF16 && TENSOR_CORE_BACKWARD_HEAD_DIMS.contains(s[3])) {
            try (MemoryScope workspace = scope(op + "-workspace")) {
                Tensor delta = workspace.zeros(Math.max(1, s[0] * heads * s[1]));
                // A BF16 dOut is the tensor cores' operand itself: no rounded copy is needed.
                MemorySegment dOutBf16 = dOut.dtype() == DType.BF16 ? MemorySegment.NULL
                        : workspace.zeros(DType.BF16, dOut.shape()).segment();
                MemorySegment pdOut = pointer(op, "dOut", dOut), pq = pointer(op, "q", q), pk = pointer(op, "k", k);
                MemorySegment pv = pointer(op, "v", v), pout = pointer(op, "out", out), plse = pointer(op, "lse", lse);
                MemorySegment pdq = pointer(op, "dq", dq), pdk = pointer(op, "dk", dk), pdv = pointer(op, "dv", dv);
                boolean bf16Out = out.dtype() == DType.BF16;
                check(grads != 0 && bf16Out
                        ? AttentionBindings.mdt_attention_bwd_bf16_out_bf16grad(stream, pdOut, pq, pk, pv, pout, plse,
                                delta.segment(), dOutBf16, pdq, pdk, pdv, s[0], s[1], s[2], heads, s[3], grads)
                        : grads != 0 ? AttentionBindings.mdt_attention_bwd_bf16_bf16grad(stream, pdOut, pq, pk, pv,
                                pout, plse, delta.segment(), dOutBf16, pdq, pdk, pdv, s[0], s[1], s[2], heads, s[3],
                                grads)
                        : bf16Out ? AttentionBindings.mdt_attention_bwd_bf16_out(stream, pdOut, pq, pk, pv, pout, plse,
                                delta.segment(), dOutBf16, pdq, pdk, pdv, s[0], s[1], s[2], heads, s[3])
                        : AttentionBindings.mdt_attention_bwd_bf16(stream, pdOut, pq, pk, pv, pout, plse,
                                delta.segment(), dOutBf16, pdq, pdk, pdv, s[0], s[1], s[2], heads, s[3]), op);
            }
            flops.add(op, 10L * s[0] * heads * s[1] * s[2] * s[3]);
            return;
        }
        if (grads != 0) {
            // The f32 kernels take F32 gradients: dOut upcast exactly, each BF16 gradient rounded once from its F32
            // result, as the tensor-core backward rounds at its store.
            try (MemoryScope wide = scope(op + "-bf16-gradients")) {
                Tensor dq32 = f32Output(dq, wide), dk32 = f32Output(dk, wide), dv32 = f32Output(dv, wide);
                attentionBackward(dOut.dtype() == DType.BF16 ? toF32(dOut, wide) : dOut, q, k, v, out, lse, heads,
                        dq32, dk32, dv32);
                for (Tensor[] pair : new Tensor[][] {{dq32, dq}, {dk32, dk}, {dv32, dv}}) {
                    if (pair[0] != pair[1]) {
                        cuda.convert(pair[0], pair[1]);
                    }
                }
            }
            return;
        }
        if (q.dtype() == DType.BF16) {
            // No tensor-core backward for this head dimension: the f32 kernels on the exact f32 values.
            try (MemoryScope upcast = scope(op + "-bf16-operands")) {
                attentionBackward(dOut, toF32(q, upcast), toF32(k, upcast), toF32(v, upcast),
                        out.dtype() == DType.BF16 ? toF32(out, upcast) : out, lse, heads, dq, dk, dv);
            }
            return;
        }
        try (MemoryScope workspace = scope(op + "-workspace")) {
            Tensor delta = workspace.zeros(Math.max(1, s[0] * heads * s[1]));
            check(AttentionBindings.mdt_attention_bwd(stream, pointer(op, "dOut", dOut), pointer(op, "q", q),
                    pointer(op, "k", k), pointer(op, "v", v), pointer(op, "out", out), pointer(op, "lse", lse),
                    delta.segment(), pointer(op, "dq", dq), pointer(op, "dk", dk), pointer(op, "dv", dv), s[0], s[1],
                    s[2], heads, s[3]), op);
        }
        flops.add(op, 10L * s[0] * heads * s[1] * s[2] * s[3]);
    }

    /**
     * QK-norm fused into attention: the tensor-core kernel normalises the q and k tiles as they arrive (BF16
     * operands and out, its head dimensions); otherwise q and k are normalised into scratch by the LayerNorm kernel
     * (the same bits) for {@link #attention}.
     */
    void normalizedAttention(Tensor q, Tensor k, Tensor v, int heads, float eps, Tensor qCenter, Tensor qRstd,
                             Tensor kCenter, Tensor kRstd, Tensor out, Tensor lse) {
        String op = "normalizedAttention";
        int[] s = AttentionChecks.normalizedAttention(q, k, v, heads, eps, qCenter, qRstd, kCenter, kRstd, out, lse);
        checkAttentionLimits(op, s[0], heads, s[3]);
        if (q.dtype() != DType.BF16 || out.dtype() != DType.BF16 || !TENSOR_CORE_HEAD_DIMS.contains(s[3])) {
            try (MemoryScope scratch = scope(op + "-normalized")) {
                attention(normalized(op, q, eps, scratch), normalized(op, k, eps, scratch), v, heads, out, lse);
            }
            return;
        }
        check(AttentionBindings.mdt_attention_fwd_bf16_out_qknorm(stream, pointer(op, "q", q), pointer(op, "k", k),
                pointer(op, "v", v), pointer(op, "qCenter", qCenter), pointer(op, "qRstd", qRstd),
                pointer(op, "kCenter", kCenter), pointer(op, "kRstd", kRstd), pointer(op, "out", out),
                pointer(op, "lse", lse), s[0], s[1], s[2], heads, s[3], 0, 0), op);
        flops.add(op, 4L * s[0] * heads * s[1] * s[2] * s[3] + 3L * (q.numel() + k.numel()));
    }

    /** Backward of {@link #normalizedAttention}, normalising q and k as its forward does. */
    void normalizedAttentionBackward(Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, int heads,
                                     float eps, Tensor qCenter, Tensor qRstd, Tensor kCenter, Tensor kRstd,
                                     Tensor dq, Tensor dk, Tensor dv) {
        String op = "normalizedAttentionBackward";
        int[] s = AttentionChecks.normalizedAttentionBackward(dOut, q, k, v, out, lse, heads, eps, qCenter, qRstd,
                kCenter, kRstd, dq, dk, dv);
        checkAttentionLimits(op, s[0], heads, s[3]);
        if (q.dtype() != DType.BF16 || out.dtype() != DType.BF16 || !TENSOR_CORE_BACKWARD_HEAD_DIMS.contains(s[3])) {
            try (MemoryScope scratch = scope(op + "-normalized")) {
                attentionBackward(dOut, normalized(op, q, eps, scratch), normalized(op, k, eps, scratch), v, out, lse,
                        heads, dq, dk, dv);
            }
            return;
        }
        try (MemoryScope workspace = scope(op + "-workspace")) {
            Tensor delta = workspace.zeros(Math.max(1, s[0] * heads * s[1]));
            MemorySegment dOutBf16 = dOut.dtype() == DType.BF16 ? MemorySegment.NULL
                    : workspace.zeros(DType.BF16, dOut.shape()).segment();
            check(AttentionBindings.mdt_attention_bwd_bf16_out_bf16grad_qknorm(stream, pointer(op, "dOut", dOut),
                    pointer(op, "q", q), pointer(op, "k", k), pointer(op, "v", v), pointer(op, "qCenter", qCenter),
                    pointer(op, "qRstd", qRstd), pointer(op, "kCenter", kCenter), pointer(op, "kRstd", kRstd),
                    pointer(op, "out", out), pointer(op, "lse", lse), delta.segment(), dOutBf16, pointer(op, "dq", dq),
                    pointer(op, "dk", dk), pointer(op, "dv", dv), s[0], s[1], s[2], heads, s[3], 0, 0,
                    bf16Grads(dOut, dq, dk, dv)), op);
        }
        // Model FLOPs, as attentionBackward counts them: the normalisation redone on the tiles is not counted.
        flops.add(op, 10L * s[0] * heads * s[1] * s[2] * s[3]);
    }

    /**
     * Self-attention over the column blocks of one qkv [N, T, 3·W]: see {@link #attentionOfBlocks}.
     */
    void normalizedSelfAttention(Tensor qkv, int heads, float eps, Tensor qMean, Tensor qRstd, Tensor qCenter,
                                 Tensor kMean, Tensor kRstd, Tensor kCenter, Tensor out, Tensor lse) {
        String op = "normalizedSelfAttention";
        int[] s = AttentionChecks.normalizedSelfAttention(qkv, heads, eps, qMean, qRstd, qCenter, kMean, kRstd, kCenter,
                out, lse);
        attentionOfBlocks(op, qkv, 0, qkv, 1, heads, s[0], s[1], s[1], s[2], eps,
                new Tensor[] {qMean, qRstd, qCenter, kMean, kRstd, kCenter}, out, lse);
    }

    /** Cross-attention of q [N, Tq, W] over the column blocks of one kv [N, Tk, 2·W]: see {@link #attentionOfBlocks}. */
    void normalizedCrossAttention(Tensor q, Tensor kv, int heads, float eps, Tensor qMean, Tensor qRstd,
                                  Tensor qCenter, Tensor kMean, Tensor kRstd, Tensor kCenter, Tensor out, Tensor lse) {
        String op = "normalizedCrossAttention";
        int[] s = AttentionChecks.normalizedCrossAttention(q, kv, heads, eps, qMean, qRstd, qCenter, kMean, kRstd,
                kCenter, out, lse);
        attentionOfBlocks(op, q, 0, kv, 0, heads, s[0], s[1], s[2], s[3], eps,
                new Tensor[] {qMean, qRstd, qCenter, kMean, kRstd, kCenter}, out, lse);
    }

    /** Backward of {@link #normalizedSelfAttention}: see {@link #attentionOfBlocksBackward}. */
    void normalizedSelfAttentionBackward(Tensor dOut, Tensor qkv, Tensor out, Tensor lse, int heads, float eps,
                                         Tensor qMean, Tensor qRstd, Tensor qCenter, Tensor kMean, Tensor kRstd,
                                         Tensor kCenter, Tensor dqkv) {
        String op = "normalizedSelfAttentionBackward";
        int[] s = AttentionChecks.normalizedSelfAttentionBackward(dOut, qkv, out, lse, heads, eps, qMean, qRstd,
                qCenter, kMean, kRstd, kCenter, dqkv);
        attentionOfBlocksBackward(op, dOut, qkv, 0, qkv, 1, out, lse, heads, s[0], s[1], s[1], s[2], eps,
                new Tensor[] {qMean, qRstd, qCenter, kMean, kRstd, kCenter}, dqkv, dqkv);
    }

    /** Backward of {@link #normalizedCrossAttention}: see {@link #attentionOfBlocksBackward}. */
    void normalizedCrossAttentionBackward(Tensor dOut, Tensor q, Tensor kv, Tensor out, Tensor lse, int heads,
                                          float eps, Tensor qMean, Tensor qRstd, Tensor qCenter, Tensor kMean,
                                          Tensor kRstd, Tensor kCenter, Tensor dq, Tensor dkv) {
        String op = "normalizedCrossAttentionBackward";
        int[] s = AttentionChecks.normalizedCrossAttentionBackward(dOut, q, kv, out, lse, heads, eps, qMean, qRstd,
                qCenter, kMean, kRstd, kCenter, dq, dkv);
        attentionOfBlocksBackward(op, dOut, q, 0, kv, 0, out, lse, heads, s[0], s[1], s[2], s[3], eps,
                new Tensor[] {qMean, qRstd, qCenter, kMean, kRstd, kCenter}, dq, dkv);
    }

    /**
     * QK-norm and attention of q, column block {@code qBlock} (W = heads·headDim wide) of qSource, over k and v,
     * column blocks {@code kBlock} and {@code kBlock + 1} of kvSource: the statistics kernel reads the q and k rows
     * in place (rows their source's width apart) and so does the tensor-core kernel; other head dimensions take the
     * blocks copied out. statistics: q's mean, rstd, center, then k's.
     */
    private void attentionOfBlocks(String op, Tensor qSource, int qBlock, Tensor kvSource, int kBlock, int heads,
                                   int samples, int queries, int keys, int headDim, float eps, Tensor[] statistics,
                                   Tensor out, Tensor lse) {
        checkAttentionLimits(op, samples, heads, headDim);
        long width = (long) heads * headDim;
        if (!TENSOR_CORE_HEAD_DIMS.contains(headDim)) {
            try (MemoryScope scratch = scope(op + "-blocks")) {
                Tensor[] qBlocks = columnBlocks(qSource, width, scratch);
                Tensor[] kv = kvSource == qSource ? qBlocks : columnBlocks(kvSource, width, scratch);
                Tensor q = qBlocks[qBlock];
                cuda.layerNormStatistics(q, eps, statistics[0], statistics[1], statistics[2]);
                cuda.layerNormStatistics(kv[kBlock], eps, statistics[3], statistics[4], statistics[5]);
                normalizedAttention(q, kv[kBlock], kv[kBlock + 1], heads, eps, statistics[2], statistics[1],
                        statistics[5], statistics[4], out, lse);
            }
            return;
        }
        Tensor[] sources = {qSource, kvSource};
        int[] blocks = {qBlock, kBlock};
        for (int i = 0; i < 2; i++) {
            // Each statistics pass reads its block of every row: those bytes are its operand.
            Tensor source = sources[i];
            MemorySegment x = block(pointer(op, "x", source, blockBytes(source, width)), blocks[i], width);
            check(NormBindings.mdt_norm_layer_norm_statistics(stream, x, eps, MemorySegment.NULL,
                    pointer(op, "mean", statistics[3 * i]), pointer(op, "rstd", statistics[3 * i + 1]),
                    pointer(op, "center", statistics[3 * i + 2]), source.rowCount(), width, source.dim(2), 1), op);
        }
        MemorySegment qBase = pointer(op, "q", qSource);
        MemorySegment kvBase = qSource == kvSource ? qBase : pointer(op, "kv", kvSource);
        check(AttentionBindings.mdt_attention_fwd_bf16_out_qknorm(stream, block(qBase, qBlock, width),
                block(kvBase, kBlock, width), block(kvBase, kBlock + 1, width), pointer(op, "qCenter", statistics[2]),
                pointer(op, "qRstd", statistics[1]), pointer(op, "kCenter", statistics[5]),
                pointer(op, "kRstd", statistics[4]), pointer(op, "out", out), pointer(op, "lse", lse), samples,
                queries, keys, heads, headDim, qSource.dim(2), kvSource.dim(2)), op);
        // layerNormStatistics' 4 per element of q and k, normalizedAttention's 4·N·H·Tq·Tk·Dh and 3 per element.
        flops.add(op, 4L * samples * heads * queries * keys * headDim
                + 7L * width * (qSource.rowCount() + kvSource.rowCount()));
    }

    /**
     * Backward of {@link #attentionOfBlocks}: the tensor-core backward writes the normalised q's gradient into dq's
     * block qBlock and the normalised k's and v's into dkv's blocks kBlock and kBlock + 1 (dq and dkv may be one
     * tensor, as qSource and kvSource), then each QK-norm's backward (k's first, as the separate ops' nodes run)
     * turns its block into q's or k's gradient in place. dq and dkv are BF16, written whole.
     */
    private void attentionOfBlocksBackward(String op, Tensor dOut, Tensor qSource, int qBlock, Tensor kvSource,
                                           int kBlock, Tensor out, Tensor lse, int heads, int samples, int queries,
                                           int keys, int headDim, float eps, Tensor[] statistics, Tensor dq,
                                           Tensor dkv) {
        checkAttentionLimits(op, samples, heads, headDim);
        long width = (long) heads * headDim;
        if (!TENSOR_CORE_BACKWARD_HEAD_DIMS.contains(headDim)) {
            try (MemoryScope scratch = scope(op + "-blocks")) {
                Tensor[] qBlocks = columnBlocks(qSource, width, scratch);
                Tensor[] kv = kvSource == qSource ? qBlocks : columnBlocks(kvSource, width, scratch);
                Tensor q = qBlocks[qBlock], k = kv[kBlock];
                Tensor dqNormalized = scratch.zeros(DType.BF16, q.shape());
                Tensor dkNormalized = scratch.zeros(DType.BF16, k.shape()), dv = scratch.zeros(DType.BF16, k.shape());
                normalizedAttentionBackward(dOut, q, k, kv[kBlock + 1], out, lse, heads, eps, statistics[2],
                        statistics[1], statistics[5], statistics[4], dqNormalized, dkNormalized, dv);
                Tensor dqBlock = scratch.zeros(DType.BF16, q.shape()), dkBlock = scratch.zeros(DType.BF16, k.shape());
                cuda.layerNormBackward(dkNormalized, k, null, statistics[3], statistics[4], dkBlock, null);
                cuda.layerNormBackward(dqNormalized, q, null, statistics[0], statistics[1], dqBlock, null);
                if (dq == dkv) {
                    intoColumnBlocks(new Tensor[] {dqBlock, dkBlock, dv}, dq, width, scratch);
                } else {
                    intoColumnBlocks(new Tensor[] {dqBlock}, dq, width, scratch);
                    intoColumnBlocks(new Tensor[] {dkBlock, dv}, dkv, width, scratch);
                }
            }
            return;
        }
        try (MemoryScope workspace = scope(op + "-workspace")) {
            Tensor delta = workspace.zeros(Math.max(1, samples * heads * queries));
            MemorySegment dOutBf16 = dOut.dtype() == DType.BF16 ? MemorySegment.NULL
                    : workspace.zeros(DType.BF16, dOut.shape()).segment();
            MemorySegment qBase = pointer(op, "q", qSource);
            MemorySegment kvBase = kvSource == qSource ? qBase : pointer(op, "kv", kvSource);
            MemorySegment dqBase = pointer(op, "dq", dq);
            MemorySegment dkvBase = dkv == dq ? dqBase : pointer(op, "dkv", dkv);
            check(AttentionBindings.mdt_attention_bwd_bf16_out_bf16grad_qknorm(stream, pointer(op, "dOut", dOut),
                    block(qBase, qBlock, width), block(kvBase, kBlock, width), block(kvBase, kBlock + 1, width),
                    pointer(op, "qCenter", statistics[2]), pointer(op, "qRstd", statistics[1]),
                    pointer(op, "kCenter", statistics[5]), pointer(op, "kRstd", statistics[4]),
                    pointer(op, "out", out), pointer(op, "lse", lse), delta.segment(), dOutBf16,
                    block(dqBase, qBlock, width), block(dkvBase, kBlock, width), block(dkvBase, kBlock + 1, width),
                    samples, queries, keys, heads, headDim, qSource.dim(2), kvSource.dim(2),
                    bf16Grads(dOut, dq, dkv, dkv)), op);
        }
        Tensor[] sources = {kvSource, qSource}, gradients = {dkv, dq};
        int[] blocks = {kBlock, qBlock};
        for (int i = 0; i < 2; i++) {
            // k's block first, as the separate ops' nodes run. Each QK-norm backward reads its block of the source
            // and of the gradient and writes the latter: those bytes are its operands (the gradient's twice).
            Tensor source = sources[i], gradient = gradients[i];
            MemorySegment x = block(pointer(op, "x", source, blockBytes(source, width)), blocks[i], width);
            MemorySegment d = block(pointer(op, "dx", gradient, blockBytes(gradient, width)), blocks[i], width);
            pointer(op, "dx", gradient, blockBytes(gradient, width));
            int statistic = i == 0 ? 3 : 0;
            check(NormBindings.mdt_norm_layer_norm_bwd_bf16_rows(stream, d, x, pointer(op, "mean",
                    statistics[statistic]), pointer(op, "rstd", statistics[statistic + 1]), d, source.rowCount(),
                    width, source.dim(2)), op);
        }
        // Model FLOPs, as attentionBackward and layerNormBackward count them.
        flops.add(op, 10L * samples * heads * queries * keys * headDim
                + 11L * width * (qSource.rowCount() + kvSource.rowCount()));
    }

    /** The bytes of one column block W wide of a BF16 matrix: what a pass over that block of every row touches. */
    private static long blockBytes(Tensor matrix, long width) {
        return matrix.rowCount() * width * 2;
    }

    /** Column block {@code index} (of {@code width} BF16 columns) of a matrix whose rows it splits in blocks. */
    private static MemorySegment block(MemorySegment matrix, int index, long width) {
        return MemorySegment.ofAddress(matrix.address() + index * width * 2);
    }

    /** The column blocks W wide of a BF16 matrix [N, T, C] copied out as BF16 [N, T, W] (through F32, exact). */
    private Tensor[] columnBlocks(Tensor matrix, long width, MemoryScope scratch) {
        int rows = Math.toIntExact(matrix.rowCount()), columns = matrix.dim(2), w = Math.toIntExact(width);
        Tensor wide = scratch.zeros(DType.F32, rows, columns);
        cuda.convert(matrix.reshape(rows, columns), wide);
        Tensor[] blocks = new Tensor[columns / w];
        for (int b = 0; b < blocks.length; b++) {
            Tensor block = scratch.zeros(DType.F32, rows, w);
            cuda.sliceColumns(wide, b * w, block);
            blocks[b] = scratch.zeros(DType.BF16, matrix.dim(0), matrix.dim(1), w);
            cuda.convert(block, blocks[b].reshape(rows, w));
        }
        return blocks;
    }

    /** BF16 blocks [N, T, W] into the column blocks of a BF16 matrix [N, T, blocks·W] (through F32, exact). */
    private void intoColumnBlocks(Tensor[] blocks, Tensor matrix, long width, MemoryScope scratch) {
        int rows = Math.toIntExact(matrix.rowCount()), columns = matrix.dim(2), w = Math.toIntExact(width);
        Tensor wide = scratch.zeros(DType.F32, rows, columns);
        for (int b = 0; b < blocks.length; b++) {
            Tensor block = scratch.zeros(DType.F32, rows, w);
            cuda.convert(blocks[b].reshape(rows, w), block);
            cuda.sliceColumnsBackward(block, b * w, wide);
        }
        cuda.convert(wide, matrix.reshape(rows, columns));
    }

    /** x's non-affine LayerNorm in x's dtype, in scratch (its statistics discarded). */
    private Tensor normalized(String op, Tensor x, float eps, MemoryScope scratch) {
        Tensor out = scratch.zeros(x.dtype(), x.shape());
        int rows = Math.toIntExact(x.rowCount());
        cuda.norm().normalizeWithStatistics(op, x, eps, out, scratch.zeros(Math.max(1, rows)),
                scratch.zeros(Math.max(1, rows)), scratch.zeros(Math.max(1, 2 * rows)));
        return out;
    }

    /** {@code gradient} itself when F32, else device F32 scratch of its shape for the result to be rounded from. */
    private static Tensor f32Output(Tensor gradient, MemoryScope scope) {
        return gradient.dtype() == DType.BF16 ? scope.zeros(DType.F32, gradient.shape()) : gradient;
    }

    /** A device F32 copy of a BF16 tensor (exact). */
    private Tensor toF32(Tensor bf16, MemoryScope scope) {
        Tensor f32 = scope.zeros(DType.F32, bf16.shape());
        cuda.convert(bf16, f32);
        return f32;
    }

    /** The attention kernels' limits, past the arguments both backends check. */
    private static void checkAttentionLimits(String op, int batch, int heads, int headDim) {
        Checks.argument(headDim <= MAX_HEAD_DIM, op, () -> "head dimension " + headDim + " exceeds the CUDA kernel's "
                + MAX_HEAD_DIM);
        Checks.argument((long) batch * heads <= MAX_GRID_Y, op, () -> batch + " samples × " + heads
                + " heads exceed the grid's " + MAX_GRID_Y + " (sample, head) blocks");
    }
}
