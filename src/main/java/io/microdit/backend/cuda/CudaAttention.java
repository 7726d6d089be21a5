package io.microdit.backend.cuda;

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
        int[] s = Checks.attention(q, k, v, heads, out, lse);
        checkAttentionLimits(op, s[0], heads, s[3]);
        long flopCount = 4L * s[0] * heads * s[1] * s[2] * s[3];
        if (q.dtype() == DType.BF16) {
            if (TENSOR_CORE_HEAD_DIMS.contains(s[3])) {
                MemorySegment pq = pointer(op, "q", q), pk = pointer(op, "k", k), pv = pointer(op, "v", v);
                MemorySegment pout = pointer(op, "out", out), plse = pointer(op, "lse", lse);
                check(out.dtype() == DType.BF16
                        ? MicroditNative.mdt_attention_fwd_bf16_out(stream, pq, pk, pv, pout, plse, s[0], s[1], s[2],
                                heads, s[3])
                        : MicroditNative.mdt_attention_fwd_bf16(stream, pq, pk, pv, pout, plse, s[0], s[1], s[2],
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
        check(MicroditNative.mdt_attention_fwd(stream, pointer(op, "q", q), pointer(op, "k", k), pointer(op, "v", v),
                pointer(op, "out", out), pointer(op, "lse", lse), s[0], s[1], s[2], heads, s[3]), op);
        flops.add(op, flopCount);
    }

    void attentionBackward(Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, int heads,
                           Tensor dq, Tensor dk, Tensor dv) {
        String op = "attentionBackward";
        int[] s = Checks.attentionBackward(dOut, q, k, v, out, lse, heads, dq, dk, dv);
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
                        ? MicroditNative.mdt_attention_bwd_bf16_out_bf16grad(stream, pdOut, pq, pk, pv, pout, plse,
                                delta.segment(), dOutBf16, pdq, pdk, pdv, s[0], s[1], s[2], heads, s[3], grads)
                        : grads != 0 ? MicroditNative.mdt_attention_bwd_bf16_bf16grad(stream, pdOut, pq, pk, pv, pout,
                                plse, delta.segment(), dOutBf16, pdq, pdk, pdv, s[0], s[1], s[2], heads, s[3], grads)
                        : bf16Out ? MicroditNative.mdt_attention_bwd_bf16_out(stream, pdOut, pq, pk, pv, pout, plse,
                                delta.segment(), dOutBf16, pdq, pdk, pdv, s[0], s[1], s[2], heads, s[3])
                        : MicroditNative.mdt_attention_bwd_bf16(stream, pdOut, pq, pk, pv, pout, plse,
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
            check(MicroditNative.mdt_attention_bwd(stream, pointer(op, "dOut", dOut), pointer(op, "q", q),
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
        int[] s = Checks.normalizedAttention(q, k, v, heads, eps, qCenter, qRstd, kCenter, kRstd, out, lse);
        checkAttentionLimits(op, s[0], heads, s[3]);
        if (q.dtype() != DType.BF16 || out.dtype() != DType.BF16 || !TENSOR_CORE_HEAD_DIMS.contains(s[3])) {
            try (MemoryScope scratch = scope(op + "-normalized")) {
                attention(normalized(op, q, eps, scratch), normalized(op, k, eps, scratch), v, heads, out, lse);
            }
            return;
        }
        check(MicroditNative.mdt_attention_fwd_bf16_out_qknorm(stream, pointer(op, "q", q), pointer(op, "k", k),
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
        int[] s = Checks.normalizedAttentionBackward(dOut, q, k, v, out, lse, heads, eps, qCenter, qRstd, kCenter,
                kRstd, dq, dk, dv);
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
            check(MicroditNative.mdt_attention_bwd_bf16_out_bf16grad_qknorm(stream, pointer(op, "dOut", dOut),
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
     * Self-attention over the column blocks of one qkv [N, T, 3·W]: the statistics kernel reads q's and k's rows 3·W
     * apart and the tensor-core kernel reads q, k and v in place; other head dimensions take the blocks copied out.
     */
    void normalizedSelfAttention(Tensor qkv, int heads, float eps, Tensor qMean, Tensor qRstd, Tensor qCenter,
                                 Tensor kMean, Tensor kRstd, Tensor kCenter, Tensor out, Tensor lse) {
        String op = "normalizedSelfAttention";
        int[] s = Checks.normalizedSelfAttention(qkv, heads, eps, qMean, qRstd, qCenter, kMean, kRstd, kCenter, out,
                lse);
        checkAttentionLimits(op, s[0], heads, s[2]);
        if (!TENSOR_CORE_HEAD_DIMS.contains(s[2])) {
            try (MemoryScope scratch = scope(op + "-blocks")) {
                Tensor[] blocks = columnBlocks(qkv, scratch);
                cuda.layerNormStatistics(blocks[0], eps, qMean, qRstd, qCenter);
                cuda.layerNormStatistics(blocks[1], eps, kMean, kRstd, kCenter);
                normalizedAttention(blocks[0], blocks[1], blocks[2], heads, eps, qCenter, qRstd, kCenter, kRstd, out,
                        lse);
            }
            return;
        }
        long rows = qkv.rowCount(), width = (long) heads * s[2];
        Tensor[][] statistics = {{qMean, qRstd, qCenter}, {kMean, kRstd, kCenter}};
        for (int b = 0; b < 2; b++) {
            // Each statistics pass reads its block of every row: those bytes are its operand.
            MemorySegment x = block(pointer(op, "qkv", qkv, qkv.byteSize() / 3), b, width);
            check(MicroditNative.mdt_norm_layer_norm_statistics(stream, x, eps, MemorySegment.NULL,
                    pointer(op, "mean", statistics[b][0]), pointer(op, "rstd", statistics[b][1]),
                    pointer(op, "center", statistics[b][2]), rows, width, 3 * width, 1), op);
        }
        MemorySegment base = pointer(op, "qkv", qkv);
        check(MicroditNative.mdt_attention_fwd_bf16_out_qknorm(stream, base, block(base, 1, width),
                block(base, 2, width), pointer(op, "qCenter", qCenter), pointer(op, "qRstd", qRstd),
                pointer(op, "kCenter", kCenter), pointer(op, "kRstd", kRstd), pointer(op, "out", out),
                pointer(op, "lse", lse), s[0], s[1], s[1], heads, s[2], 3 * width, 3 * width), op);
        // layerNormStatistics' 4 per element of q and k, normalizedAttention's.
        flops.add(op, 4L * s[0] * heads * s[1] * s[1] * s[2] + 7L * 2 * rows * width);
    }

    /**
     * Backward of {@link #normalizedSelfAttention}: the tensor-core backward writes the normalised q's and k's
     * gradients and v's into dqkv's column blocks, then each QK-norm's backward turns its block into q's or k's
     * gradient in place.
     */
    void normalizedSelfAttentionBackward(Tensor dOut, Tensor qkv, Tensor out, Tensor lse, int heads, float eps,
                                         Tensor qMean, Tensor qRstd, Tensor qCenter, Tensor kMean, Tensor kRstd,
                                         Tensor kCenter, Tensor dqkv) {
        String op = "normalizedSelfAttentionBackward";
        int[] s = Checks.normalizedSelfAttentionBackward(dOut, qkv, out, lse, heads, eps, qMean, qRstd, qCenter,
                kMean, kRstd, kCenter, dqkv);
        checkAttentionLimits(op, s[0], heads, s[2]);
        long rows = qkv.rowCount(), width = (long) heads * s[2];
        if (!TENSOR_CORE_BACKWARD_HEAD_DIMS.contains(s[2])) {
            try (MemoryScope scratch = scope(op + "-blocks")) {
                Tensor[] blocks = columnBlocks(qkv, scratch);
                int[] shape = blocks[0].shape();
                Tensor dqNormalized = scratch.zeros(DType.BF16, shape), dkNormalized = scratch.zeros(DType.BF16, shape);
                Tensor dv = scratch.zeros(DType.BF16, shape);
                normalizedAttentionBackward(dOut, blocks[0], blocks[1], blocks[2], out, lse, heads, eps, qCenter,
                        qRstd, kCenter, kRstd, dqNormalized, dkNormalized, dv);
                Tensor dk = scratch.zeros(DType.BF16, shape), dq = scratch.zeros(DType.BF16, shape);
                cuda.layerNormBackward(dkNormalized, blocks[1], null, kMean, kRstd, dk, null);
                cuda.layerNormBackward(dqNormalized, blocks[0], null, qMean, qRstd, dq, null);
                // Into dqkv through F32 (exact both ways): a zeroed F32 qkv-shaped buffer takes each block.
                Tensor wide = scratch.zeros(DType.F32, Math.toIntExact(rows), Math.toIntExact(3 * width));
                Tensor[] gradients = {dq, dk, dv};
                for (int b = 0; b < 3; b++) {
                    Tensor block = scratch.zeros(DType.F32, Math.toIntExact(rows), Math.toIntExact(width));
                    cuda.convert(gradients[b].reshape(Math.toIntExact(rows), Math.toIntExact(width)), block);
                    cuda.sliceColumnsBackward(block, Math.toIntExact(b * width), wide);
                }
                cuda.convert(wide, dqkv.reshape(Math.toIntExact(rows), Math.toIntExact(3 * width)));
            }
            return;
        }
        try (MemoryScope workspace = scope(op + "-workspace")) {
            Tensor delta = workspace.zeros(Math.max(1, s[0] * heads * s[1]));
            MemorySegment dOutBf16 = dOut.dtype() == DType.BF16 ? MemorySegment.NULL
                    : workspace.zeros(DType.BF16, dOut.shape()).segment();
            MemorySegment base = pointer(op, "qkv", qkv), gradient = pointer(op, "dqkv", dqkv);
            check(MicroditNative.mdt_attention_bwd_bf16_out_bf16grad_qknorm(stream, pointer(op, "dOut", dOut), base,
                    block(base, 1, width), block(base, 2, width), pointer(op, "qCenter", qCenter),
                    pointer(op, "qRstd", qRstd), pointer(op, "kCenter", kCenter), pointer(op, "kRstd", kRstd),
                    pointer(op, "out", out), pointer(op, "lse", lse), delta.segment(), dOutBf16, gradient,
                    block(gradient, 1, width), block(gradient, 2, width), s[0], s[1], s[1], heads, s[2], 3 * width,
                    3 * width, bf16Grads(dOut, dqkv, dqkv, dqkv)), op);
        }
        Tensor[][] statistics = {{kMean, kRstd}, {qMean, qRstd}};
        for (int i = 0; i < 2; i++) {
            int b = 1 - i;  // k's block first, as the separate ops' nodes run
            // Each QK-norm backward reads its block of qkv and of dqkv and writes the latter: those bytes are its
            // operands (the gradient block counted as read and written).
            MemorySegment x = block(pointer(op, "qkv", qkv, qkv.byteSize() / 3), b, width);
            MemorySegment d = block(pointer(op, "dqkv", dqkv, dqkv.byteSize() / 3), b, width);
            pointer(op, "dqkv", dqkv, dqkv.byteSize() / 3);
            check(MicroditNative.mdt_norm_layer_norm_bwd_bf16_rows(stream, d, x, pointer(op, "mean", statistics[i][0]),
                    pointer(op, "rstd", statistics[i][1]), d, rows, width, 3 * width), op);
        }
        // Model FLOPs, as attentionBackward and layerNormBackward count them.
        flops.add(op, 10L * s[0] * heads * s[1] * s[1] * s[2] + 12L * 2 * rows * width);
    }

    /** Column block {@code index} (of {@code width} BF16 columns) of a matrix whose rows it splits in blocks. */
    private static MemorySegment block(MemorySegment matrix, int index, long width) {
        return MemorySegment.ofAddress(matrix.address() + index * width * 2);
    }

    /** q, k and v: the column blocks of qkv [N, T, 3·W] copied out as BF16 [N, T, W] (through F32, exact). */
    private Tensor[] columnBlocks(Tensor qkv, MemoryScope scratch) {
        int rows = Math.toIntExact(qkv.rowCount()), width = qkv.dim(2) / 3;
        Tensor wide = scratch.zeros(DType.F32, rows, 3 * width);
        cuda.convert(qkv.reshape(rows, 3 * width), wide);
        Tensor[] blocks = new Tensor[3];
        for (int b = 0; b < 3; b++) {
            Tensor block = scratch.zeros(DType.F32, rows, width);
            cuda.sliceColumns(wide, b * width, block);
            blocks[b] = scratch.zeros(DType.BF16, qkv.dim(0), qkv.dim(1), width);
            cuda.convert(block, blocks[b].reshape(rows, width));
        }
        return blocks;
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
        Checks.argument(headDim <= MAX_HEAD_DIM, op, "head dimension " + headDim + " exceeds the CUDA kernel's "
                + MAX_HEAD_DIM);
        Checks.argument((long) batch * heads <= MAX_GRID_Y, op, batch + " samples × " + heads
                + " heads exceed the grid's " + MAX_GRID_Y + " (sample, head) blocks");
    }
}
