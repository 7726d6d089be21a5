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
                pointer(op, "lse", lse), s[0], s[1], s[2], heads, s[3]), op);
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
                    pointer(op, "dk", dk), pointer(op, "dv", dv), s[0], s[1], s[2], heads, s[3],
                    bf16Grads(dOut, dq, dk, dv)), op);
        }
        // Model FLOPs, as attentionBackward counts them: the normalisation redone on the tiles is not counted.
        flops.add(op, 10L * s[0] * heads * s[1] * s[2] * s[3]);
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
