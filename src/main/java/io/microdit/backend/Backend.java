package io.microdit.backend;

import io.microdit.tensor.DType;
import io.microdit.tensor.Device;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.util.List;

/**
 * The op set: every op MicroDiT needs, forward and backward, on one device. Callers allocate every output
 * (in the step's scope); the backend only computes. All float tensors are F32 unless a method says otherwise;
 * index tensors are I32. Shapes are checked and a bad one throws {@link IllegalArgumentException} naming the
 * argument. Methods ending in {@code Backward} take the gradient of the forward's output first.
 *
 * <p>Where a backward "accumulates" into a gradient tensor it adds to what is there, so gradients of a value
 * used twice sum up without extra buffers.
 *
 * <p>BF16 gradients: in a bf16 graph the gradient of a BF16 value may be BF16 too. Where a backward's javadoc says
 * a gradient may be BF16, a BF16 incoming gradient gives exactly the results for its F32 upcast (bf16 to f32 is
 * exact), and a BF16 gradient output is the F32 result rounded once to nearest even, the bits {@link #convert}
 * gives the F32 one. Gradients that accumulate (weights, per-sample vectors) stay F32.
 *
 * <p>Memory: a backend's tensors live in scopes made by {@link #scope}. On a GPU that memory is not readable
 * from Java ({@link MemoryScope#hostAccessible()} is false and {@link Tensor}'s element accessors throw), so code
 * above the backend moves values only through the copies below: {@link #upload}/{@link #download} of whole
 * tensors, {@link #write}/{@link #read} of Java arrays, {@link #copy} and {@link #fill}. On the CPU backend they
 * are what the plain {@link Tensor} calls would do, and {@code upload}/{@code download} of a tensor already in
 * place return it without a copy.
 */
public interface Backend extends AutoCloseable {

    /** A short description for logs and reports: the kind of backend and what it runs on (threads, device). */
    String name();

    /** Releases the backend's threads or device resources; its scopes must be closed first. */
    @Override
    void close();

    /** The device this backend's tensors live on, which also counts their live and peak bytes. */
    Device device();

    /** FLOPs performed by this backend's ops so far. */
    FlopCounter flops();

    // ---------------------------------------------------------------- memory and copies

    /** A new scope of this backend's memory (the caller closes it): device memory on a GPU, host memory on the CPU. */
    MemoryScope scope(String name);

    /**
     * {@code host} as a tensor of this backend: {@code host} itself when it already lives on {@link #device()} (on
     * the CPU backend, always: no copy, so the caller keeps it alive as long as the result), else a copy in
     * {@code scope}.
     */
    Tensor upload(Tensor host, MemoryScope scope);

    /** {@code t} as a host tensor: {@code t} itself when Java can read it where it is, else a copy in {@code hostScope}. */
    Tensor download(Tensor t, MemoryScope hostScope);

    /**
     * Copies all elements of {@code source} into {@code target}, same dtype and element count; each is a host tensor
     * or one of this backend's (host to device, device to host and device to device on a GPU).
     */
    void copy(Tensor source, Tensor target);

    /** Sets every element of {@code target} to {@code value} (converted to its dtype). */
    void fill(Tensor target, float value);

    /** Overwrites {@code target}'s elements from a Java array (converted to its dtype), as one copy. */
    void write(Tensor target, float[] values);

    /** Overwrites an I32 {@code target}'s elements from a Java array, as one copy. */
    void write(Tensor target, int[] values);

    /** The elements as floats (converted from BF16 or I32), as one copy: for values Java must see (loss, logs). */
    float[] read(Tensor t);

    /**
     * Waits until every op issued so far has finished: for timing, since a GPU backend's ops return when queued.
     * The CPU backend's ops finish before they return, so there it does nothing.
     */
    default void synchronize() {
    }

    // ---------------------------------------------------------------- matmul

    /**
     * {@code out = op(a) · op(b) + bias (+ out when accumulate)}, batched. {@code a} is [..., M, K] ([..., K, M]
     * when {@code transposeA}), {@code b} is [..., K, N] ([..., N, K] when {@code transposeB}), out [..., M, N].
     * Batch dimensions (all but the last two) of a and b are equal, or one operand is rank 2 and is shared by
     * every batch entry. {@code bias} [N] may be null. {@code a} and {@code b} are both F32 or both BF16 (BF16
     * products accumulate in F32); bias is F32; out is F32, or BF16 for BF16 operands without accumulate: the F32
     * result (bias added) rounded to nearest even once, the bits {@link #convert} gives the F32 out.
     * Accumulating, CUDA forms the whole product (+ bias) and then adds the old out once, the bits of a product
     * into a temporary followed by {@link #axpy}; the CPU does so for K up to its 512-deep blocks and otherwise adds
     * the old out to the first block's partial sum (a different rounding order, within float tolerance).
     */
    void matmul(Tensor a, boolean transposeA, Tensor b, boolean transposeB, Tensor bias, Tensor out,
                boolean accumulate);

    /**
     * A product with GELU in its epilogue: {@code pre = op(a) · op(b) + bias}, stored as {@link #matmul} stores its
     * out (pre F32, or BF16 for BF16 operands), then {@code out = gelu(pre)} from the stored pre as {@link #gelu}
     * computes it (out F32 or BF16): the bits of those two calls, without reading pre back. pre is what the
     * backward ({@link #matmulGeluBackward}) reads. This default is those two calls; a backend with the epilogue
     * overrides it.
     */
    default void matmulGelu(Tensor a, boolean transposeA, Tensor b, boolean transposeB, Tensor bias, Tensor pre,
                            Tensor out, boolean tanhApproximation) {
        matmul(a, transposeA, b, transposeB, bias, pre, false);
        gelu(pre, out, tanhApproximation);
    }

    /**
     * GELU's backward in the epilogue of the product that makes its incoming gradient: {@code dOut = op(a) · op(b)}
     * stored in dPre's dtype (F32, or BF16 for BF16 operands: a bf16 graph's gradient of a BF16 value), then
     * {@code dPre = }{@link #geluBackward}{@code (dOut, pre)}: the bits of {@link #matmul} into such a dOut followed
     * by that call, without writing and reading dOut. This default is those two calls (dOut in a scratch scope).
     */
    default void matmulGeluBackward(Tensor a, boolean transposeA, Tensor b, boolean transposeB, Tensor pre,
                                    Tensor dPre, boolean tanhApproximation) {
        try (MemoryScope scratch = scope("gelu-gradient")) {
            Tensor dOut = Tensor.empty(scratch, dPre.dtype(), dPre.shape());
            matmul(a, transposeA, b, transposeB, null, dOut, false);
            geluBackward(dOut, pre, dPre, tanhApproximation);
        }
    }

    /**
     * A product with the SwiGLU gate in its epilogue: {@code gateB = op(a) · op(b) + bias}, stored as {@link #matmul}
     * stores its out, then {@code out = }{@link #swigluGate}{@code (gateA, gateB)} from the stored gateB (gateA, the
     * other product, of gateB's shape and dtype): the bits of those two calls, without reading gateB back. This
     * default is those two calls; a backend with the epilogue overrides it.
     */
    default void matmulSwiglu(Tensor a, boolean transposeA, Tensor b, boolean transposeB, Tensor bias, Tensor gateA,
                              Tensor gateB, Tensor out) {
        matmul(a, transposeA, b, transposeB, bias, gateB, false);
        swigluGate(gateA, gateB, out);
    }

    /**
     * The SwiGLU gate's backward in the epilogue of the product that makes its incoming gradient: {@code dOut =
     * op(a) · op(b)} stored in dGateA's dtype, then {@link #swigluGateBackward}{@code (dOut, gateA, gateB, dGateA,
     * dGateB)}: the bits of those two calls without writing and reading dOut. This default is those two calls (dOut
     * in a scratch scope).
     */
    default void matmulSwigluBackward(Tensor a, boolean transposeA, Tensor b, boolean transposeB, Tensor gateA,
                                      Tensor gateB, Tensor dGateA, Tensor dGateB) {
        try (MemoryScope scratch = scope("swiglu-gradient")) {
            Tensor dOut = Tensor.empty(scratch, dGateA.dtype(), dGateA.shape());
            matmul(a, transposeA, b, transposeB, null, dOut, false);
            swigluGateBackward(dOut, gateA, gateB, dGateA, dGateB);
        }
    }

    /**
     * {@code out[c] (+)= sum over rows r of x[r, c]}, x read as [rows, C] with out [C]: the bias gradient. x may be
     * BF16 (a bf16 graph's dy), giving exactly the result for its F32 upcast; out is F32.
     */
    void sumRows(Tensor x, Tensor out, boolean accumulate);

    // ---------------------------------------------------------------- elementwise

    /**
     * {@code out = a + b}; b has a's shape or a suffix of it (broadcast over the leading dims). a and out are F32;
     * b is F32 or BF16 (a bf16 linear layer's output added to the residual stream), a BF16 b giving exactly the
     * result for its F32 upcast (bf16 to f32 is exact).
     */
    void add(Tensor a, Tensor b, Tensor out);

    /** {@code out = a * b}; b has a's shape or a suffix of it. */
    void mul(Tensor a, Tensor b, Tensor out);

    /** {@code out = alpha * x}. */
    void scale(Tensor x, float alpha, Tensor out);

    /** {@code y += alpha * x}, same shapes. */
    void axpy(float alpha, Tensor x, Tensor y);

    /** adaLN: {@code out[n,t,:] = x[n,t,:] * (1 + scale[n,:]) + shift[n,:]}; x [N,T,D], shift and scale [N,D]. */
    void modulate(Tensor x, Tensor shift, Tensor scale, Tensor out);

    /** Backward of {@link #modulate}: writes dx, dShift, dScale (none accumulate). */
    void modulateBackward(Tensor dOut, Tensor x, Tensor scale, Tensor dx, Tensor dShift, Tensor dScale);

    /**
     * Gated residual: {@code out[n,t,:] = x[n,t,:] + gate[n,:] * f[n,t,:]}; x and f [N,T,D], gate [N,D]. f may be
     * BF16 (a bf16 linear layer's output), giving exactly the result for its F32 upcast; x, gate and out are F32.
     */
    void gatedResidual(Tensor x, Tensor gate, Tensor f, Tensor out);

    /**
     * Backward of {@link #gatedResidual} for gate and f (dx is dOut itself); writes dGate (F32) and dF (F32, or
     * BF16: a BF16 gradient, see above). f may be BF16 as in the forward; dOut is F32.
     */
    void gatedResidualBackward(Tensor dOut, Tensor gate, Tensor f, Tensor dGate, Tensor dF);

    /** {@code out[r, :] = x[r, start : start + width]}; x [R, C], out [R, width]. */
    void sliceColumns(Tensor x, int start, Tensor out);

    /** Backward of {@link #sliceColumns}: {@code dx[r, start : start + width] += dOut[r, :]}. */
    void sliceColumnsBackward(Tensor dOut, int start, Tensor dx);

    // ---------------------------------------------------------------- normalisation

    /**
     * LayerNorm over the last dimension, without bias: {@code out = (x - mean) * rstd * weight}. {@code weight}
     * [D] may be null (non-affine, as QK-norm). Saves mean and rstd [rows] for the backward. {@code out} may be
     * BF16: computed in F32 and rounded to nearest even once, as {@link #convert} rounds, for an output that only
     * bf16 matrix products read (the backward never reads out). {@code x} may be BF16 (QK-norm of bf16 q and k):
     * the results are exactly those for its F32 upcast (bf16 to f32 is exact); mean and rstd stay F32.
     */
    void layerNorm(Tensor x, Tensor weight, float eps, Tensor out, Tensor mean, Tensor rstd);

    /**
     * Backward of {@link #layerNorm}: writes dx; accumulates dWeight when weight is not null. {@code x} may be BF16
     * as in the forward; dOut and dx may each be BF16 (BF16 gradients, see above); dWeight is F32.
     */
    default void layerNormBackward(Tensor dOut, Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dx,
                                   Tensor dWeight) {
        layerNormBackward(dOut, x, weight, mean, rstd, dx, dWeight, false);
    }

    /**
     * {@link #layerNorm} fused with adaLN {@link #modulate}: {@code out[n,t,:] = LN(x[n,t,:])·(1 + scale[n,:]) +
     * shift[n,:]}, x [N,T,D], weight [D] or null, shift and scale [N,D]. Saves mean and rstd [N·T] as
     * {@link #layerNorm} does; the normalised x is not kept (the backward recomputes it). {@code out} may be BF16
     * as for {@link #layerNorm}.
     */
    void layerNormModulate(Tensor x, Tensor weight, Tensor shift, Tensor scale, float eps, Tensor out, Tensor mean,
                           Tensor rstd);

    /**
     * Backward of {@link #layerNormModulate}: writes dx, dShift and dScale (sums over tokens); accumulates dWeight
     * when weight is not null. dOut may be BF16 (a BF16 gradient, see above); dx and the others are F32.
     */
    default void layerNormModulateBackward(Tensor dOut, Tensor x, Tensor weight, Tensor scale, Tensor mean,
                                           Tensor rstd, Tensor dx, Tensor dWeight, Tensor dShift, Tensor dScale) {
        layerNormModulateBackward(dOut, x, weight, scale, mean, rstd, dx, dWeight, dShift, dScale, false);
    }

    /**
     * {@link #layerNormBackward}, adding into dx when {@code accumulate}: dx (F32) holds x's gradient so far and
     * gets the LayerNorm's dx added in the same pass (bit for bit the result written and then added by
     * {@link #axpy}), so a LayerNorm whose input has other readers needs no separate add.
     */
    void layerNormBackward(Tensor dOut, Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dx,
                           Tensor dWeight, boolean accumulate);

    /**
     * {@link #layerNorm} of the rows the deferred mask keeps, read in place: {@code out[n, r, :] = LN(x[n, ids[n, r],
     * :])·weight} with x F32 [N, T, D], ids I32 [N, K] (as {@link #gatherRows} takes them), out [N, K, D] F32 or
     * BF16, mean and rstd [N·K]. Bit for bit {@link #gatherRows} followed by {@link #layerNorm}, without the gathered
     * copy being written and read back. An id out of [0, T) is an error naming ids.
     */
    void gatherLayerNorm(Tensor x, Tensor ids, Tensor weight, float eps, Tensor out, Tensor mean, Tensor rstd);

    /**
     * Backward of {@link #gatherLayerNorm} into x's full-size gradient dx (F32 [N, T, D]): the kept rows get the
     * LayerNorm's dx (added to what dx holds when {@code accumulate}, as {@link #layerNormBackward} adds), and,
     * when not accumulating, every other row is zero; dOut [N, K, D] F32 or BF16; accumulates dWeight when not
     * null. Bit for bit {@link #layerNormBackward} into a kept-row gradient, {@link #scatterRows} of it (and, when
     * accumulating, {@link #axpy} into dx), without the kept-row gradient. Ids of a sample must be distinct.
     */
    void gatherLayerNormBackward(Tensor dOut, Tensor x, Tensor ids, Tensor weight, Tensor mean, Tensor rstd,
                                 Tensor dx, Tensor dWeight, boolean accumulate);

    /** {@link #layerNormModulateBackward}, adding into dx when {@code accumulate}, as {@link #layerNormBackward}. */
    void layerNormModulateBackward(Tensor dOut, Tensor x, Tensor weight, Tensor scale, Tensor mean, Tensor rstd,
                                   Tensor dx, Tensor dWeight, Tensor dShift, Tensor dScale, boolean accumulate);

    /**
     * Residual + gate + LayerNorm (+ modulate), the seam between two sublayers: {@code residual = x + gate·f}
     * (gate null: {@code x + f}, as {@link #gatedResidual} and {@link #add} compute it), then {@code out =
     * LN(residual)}, modulated as {@link #layerNormModulate} when shift and scale are given (both null: plain
     * {@link #layerNorm}). x, residual [N,T,D] F32, f F32 or BF16, out F32 or BF16; mean and rstd as the LayerNorm
     * saves them. The results are bit for bit those of the separate ops.
     */
    void residualLayerNorm(Tensor x, Tensor gate, Tensor f, Tensor weight, Tensor shift, Tensor scale, float eps,
                           Tensor residual, Tensor out, Tensor mean, Tensor rstd);

    /**
     * {@link #residualLayerNorm} with an F32 {@code out} that also stores it rounded to BF16 in {@code outBf16} (the
     * bits {@link #convert} gives), in the same pass: for a normed output that F32 ops and bf16 matrix products both
     * read (an MoE's input: the router and the experts).
     */
    void residualLayerNorm(Tensor x, Tensor gate, Tensor f, Tensor weight, Tensor shift, Tensor scale, float eps,
                           Tensor residual, Tensor out, Tensor outBf16, Tensor mean, Tensor rstd);

    /**
     * Backward of {@link #residualLayerNorm}, in one pass over the rows and one over the tokens: dx = dResidual +
     * the LayerNorm's backward of dOut (dResidual, the gradient the residual got from its other readers, may be
     * null, and may be dx itself: added in place), which is both the residual's and x's gradient; dF = gate·dx (dx
     * without a gate), dGate = Σ_t dx·f; dShift, dScale with a modulation; adds into dWeight (may be null). dOut and
     * dF F32 or BF16, the others F32. Bit for bit the separate backwards and the axpy that added their dx.
     */
    void residualLayerNormBackward(Tensor dOut, Tensor dResidual, Tensor residual, Tensor gate, Tensor f,
                                   Tensor weight, Tensor scale, Tensor mean, Tensor rstd, Tensor dx, Tensor dWeight,
                                   Tensor dShift, Tensor dScale, Tensor dGate, Tensor dF);

    // ---------------------------------------------------------------- activations

    /**
     * GELU, the tanh approximation when {@code tanhApproximation}, else the exact erf form. {@code out} may be BF16
     * (F32 maths, rounded once as {@link #convert} rounds); the backward reads x, not out. {@code x} may be BF16 (a
     * bf16 linear layer's output), here and in the backward, giving exactly the results for its F32 upcast.
     */
    void gelu(Tensor x, Tensor out, boolean tanhApproximation);

    /** Backward of {@link #gelu}: x F32 or BF16; dOut and dx may each be BF16 (BF16 gradients, see above). */
    void geluBackward(Tensor dOut, Tensor x, Tensor dx, boolean tanhApproximation);

    /** SiLU, x·σ(x), elementwise (F32). */
    void silu(Tensor x, Tensor out);

    /** Backward of {@link #silu}: dx = dOut·σ(x)·(1 + x·(1 − σ(x))). */
    void siluBackward(Tensor dOut, Tensor x, Tensor dx);

    /**
     * The SwiGLU gate: {@code out = silu(a) * b}; {@code out} may be BF16 as for {@link #gelu}. {@code a} and
     * {@code b} are both F32 or both BF16 (halves of a bf16 linear layer's output), BF16 ones giving exactly the
     * results for their F32 upcast, here and in the backward.
     */
    void swigluGate(Tensor a, Tensor b, Tensor out);

    /**
     * Backward of {@link #swigluGate}: a and b as in the forward; dOut may be BF16, da and db may be BF16 (both or
     * neither: the halves of one gradient) (BF16 gradients, see above).
     */
    void swigluGateBackward(Tensor dOut, Tensor a, Tensor b, Tensor da, Tensor db);

    /** Softmax over the last dimension. */
    void softmax(Tensor x, Tensor out);

    /** Backward of {@link #softmax} given its output y: {@code dx = y * (dOut - sum(dOut * y))}. */
    void softmaxBackward(Tensor dOut, Tensor y, Tensor dx);

    // ---------------------------------------------------------------- attention

    /**
     * Non-causal scaled dot-product attention, scale 1/sqrt(headDim), fused: no Tq×Tk matrix is materialised.
     * q [N, Tq, H·Dh], k and v [N, Tk, H·Dh] (heads contiguous within a token), out [N, Tq, H·Dh].
     * Saves the log-sum-exp of the scaled scores, lse [N, H, Tq], for the backward. q, k and v are all F32 or all
     * BF16 (BF16 products accumulate in F32); lse is F32, out F32 (or BF16 for BF16 operands); the backward's
     * gradients are F32 or BF16 as it says.
     */
    void attention(Tensor q, Tensor k, Tensor v, int heads, Tensor out, Tensor lse);

    /**
     * Backward of {@link #attention}, recomputing probabilities from lse; writes dq, dk, dv. dOut, dq, dk and dv
     * may each be BF16 (BF16 gradients, see above).
     */
    void attentionBackward(Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, int heads,
                           Tensor dq, Tensor dk, Tensor dv);

    /**
     * The statistics of a non-affine LayerNorm over the last dimension (QK-norm), without its output: mean and rstd
     * [rows] as {@link #layerNorm} saves them, and center [rows, 2], each row's rough mean and the correction to it,
     * the two offsets layerNorm's output subtracts one after the other, so {@link #normalizedAttention} can normalise
     * x as it reads it, to the same bits. x F32 or BF16.
     */
    void layerNormStatistics(Tensor x, float eps, Tensor mean, Tensor rstd, Tensor center);

    /**
     * QK-norm fused into attention: {@link #attention} of q and k normalised as {@link #layerNorm} (no weight) with
     * a BF16 output normalises them, from their {@link #layerNormStatistics}, without the normalised rows ever being
     * written: out and lse are bit for bit those of the two ops. eps is the statistics' (a backend may renormalise
     * q and k from it where its kernels cannot normalise them as they load).
     */
    void normalizedAttention(Tensor q, Tensor k, Tensor v, int heads, float eps, Tensor qCenter, Tensor qRstd,
                             Tensor kCenter, Tensor kRstd, Tensor out, Tensor lse);

    /**
     * Backward of {@link #normalizedAttention}: {@link #attentionBackward} on the normalised q and k, so dq and dk
     * are their gradients (layerNormBackward of them gives q's and k's), bit for bit the separate ops'.
     */
    void normalizedAttentionBackward(Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, int heads,
                                     float eps, Tensor qCenter, Tensor qRstd, Tensor kCenter, Tensor kRstd,
                                     Tensor dq, Tensor dk, Tensor dv);

    /**
     * Self-attention with QK-norm over q|k|v, the three column blocks of one BF16 qkv [N, T, 3·H·Dh] (one product's
     * output, read in place): q's and k's {@link #layerNormStatistics} (into qMean, qRstd, qCenter and kMean, kRstd,
     * kCenter), then {@link #normalizedAttention} of the blocks into out (BF16 [N, T, H·Dh]) and lse [N, H, T]: bit
     * for bit those ops on the blocks copied out.
     */
    void normalizedSelfAttention(Tensor qkv, int heads, float eps, Tensor qMean, Tensor qRstd, Tensor qCenter,
                                 Tensor kMean, Tensor kRstd, Tensor kCenter, Tensor out, Tensor lse);

    /**
     * Backward of {@link #normalizedSelfAttention} into dqkv (BF16, qkv's shape): {@link #normalizedAttentionBackward}
     * with BF16 dq, dk and dv, then each QK-norm's {@link #layerNormBackward} (no weight, BF16 dx), q's, k's and v's
     * gradients written into dqkv's column blocks: bit for bit those ops on the blocks copied out. dOut F32 or BF16.
     */
    void normalizedSelfAttentionBackward(Tensor dOut, Tensor qkv, Tensor out, Tensor lse, int heads, float eps,
                                         Tensor qMean, Tensor qRstd, Tensor qCenter, Tensor kMean, Tensor kRstd,
                                         Tensor kCenter, Tensor dqkv);

    /**
     * Cross-attention with QK-norm of q (BF16 [N, Tq, W]) over k and v, the two column blocks of one BF16 kv
     * [N, Tk, 2·W] (one product's output, read in place): as {@link #normalizedSelfAttention}, k's statistics over
     * kv's first block.
     */
    void normalizedCrossAttention(Tensor q, Tensor kv, int heads, float eps, Tensor qMean, Tensor qRstd,
                                  Tensor qCenter, Tensor kMean, Tensor kRstd, Tensor kCenter, Tensor out, Tensor lse);

    /**
     * Backward of {@link #normalizedCrossAttention} into dq (BF16, q's shape) and dkv (BF16, kv's shape, k's and v's
     * gradients in its column blocks), as {@link #normalizedSelfAttentionBackward}.
     */
    void normalizedCrossAttentionBackward(Tensor dOut, Tensor q, Tensor kv, Tensor out, Tensor lse, int heads,
                                          float eps, Tensor qMean, Tensor qRstd, Tensor qCenter, Tensor kMean,
                                          Tensor kRstd, Tensor kCenter, Tensor dq, Tensor dkv);

    // ---------------------------------------------------------------- expert-choice MoE

    /**
     * Expert-choice routing: for each sample n and expert e, the top-k tokens t by probs[n, t, e] (ties to the
     * lower token index), in descending order. Writes gates [N, E, k] (the raw probabilities) and indices
     * I32 [N, E, k]. probs [N, T, E] is the per-token softmax over experts.
     */
    void expertChoiceTopK(Tensor probs, int k, Tensor gates, Tensor indices);

    /** Backward of the routing's gate selection: {@code dProbs[n, indices[n,e,j], e] += dGates[n,e,j]}. */
    void expertChoiceTopKBackward(Tensor dGates, Tensor indices, Tensor dProbs);

    /** Gathers routed rows, expert-major: {@code out[e, n·k + j, :] = x[n, indices[n,e,j], :]}; out [E, N·k, D]. */
    void moeDispatch(Tensor x, Tensor indices, Tensor out);

    /**
     * Backward of {@link #moeDispatch}: {@code dx[n, indices[n,e,j], :] += dOut[e, n·k + j, :]}. dOut may be BF16 (a
     * BF16 gradient, see above); dx is F32.
     */
    void moeDispatchBackward(Tensor dOut, Tensor indices, Tensor dx);

    /**
     * Weighted combine: {@code out[n, t, :] = sum over (e, j) with indices[n,e,j] == t of gates[n,e,j] · h[e, n·k+j, :]},
     * zero for tokens no expert chose. The sum runs in a fixed order (e, then j), so results are deterministic. out
     * F32, or BF16 for BF16 h (the F32 sum rounded once at the store, as convert rounds it).
     */
    void moeCombine(Tensor h, Tensor gates, Tensor indices, Tensor out);

    /**
     * Backward of {@link #moeCombine}: writes dH and dGates. dH may be BF16 (a BF16 gradient, see above), dOut too
     * (read widened exactly); dGates is F32.
     */
    void moeCombineBackward(Tensor dOut, Tensor h, Tensor gates, Tensor indices, Tensor dH, Tensor dGates);

    /**
     * The experts' first product reading its rows straight from the tokens: {@link #matmulGelu}{@code (rows, false, w,
     * false, null, pre, out, tanhApproximation)} on the routed rows {@code rows = }{@link #moeDispatch}{@code (x,
     * indices)} [E, N·k, D] held in x's dtype, with w [E, D, H] and pre, out [E, N·k, H]: the bits of those calls
     * without the dispatched copy. x [N, T, D] is F32 or BF16 (a bf16 graph's copy of the MoE input). This default is
     * those calls (the rows in a scratch scope); a backend with a gathered GEMM overrides it.
     */
    default void moeExpertsGelu(Tensor x, Tensor indices, Tensor w, Tensor pre, Tensor out, boolean tanhApproximation) {
        try (MemoryScope scratch = scope("routed-rows")) {
            Tensor rows = routedRows(scratch, x, indices);
            matmulGelu(rows, false, w, false, null, pre, out, tanhApproximation);
        }
    }

    /**
     * The experts' first weight gradient from the tokens: {@link #matmul}{@code (rows, true, dy, false, null, dw,
     * accumulate)} with rows the routed rows as in {@link #moeExpertsGelu}, dy [E, N·k, H] and dw [E, D, H] F32: the
     * bits of those calls without the dispatched copy. This default is those calls (the rows in a scratch scope).
     */
    default void moeExpertsWeightGradient(Tensor x, Tensor indices, Tensor dy, Tensor dw, boolean accumulate) {
        try (MemoryScope scratch = scope("routed-rows")) {
            Tensor rows = routedRows(scratch, x, indices);
            matmul(rows, true, dy, false, null, dw, accumulate);
        }
    }

    /** The routed rows of x in x's dtype, in {@code scratch}: a BF16 x widened exactly, dispatched, rounded back. */
    private Tensor routedRows(MemoryScope scratch, Tensor x, Tensor indices) {
        Tensor wide = x;
        if (x.dtype() != DType.F32) {
            wide = Tensor.empty(scratch, DType.F32, x.shape());
            convert(x, wide);
        }
        Tensor rows = Tensor.empty(scratch, x.dtype(), indices.dim(1), indices.dim(0) * indices.dim(2), x.dim(2));
        moeDispatch(wide, indices, rows);
        return rows;
    }

    // ---------------------------------------------------------------- tokens

    /** {@code out[n, j, :] = x[n, ids[n, j], :]}; x [N, T, D], ids I32 [N, K], out [N, K, D]. */
    void gatherRows(Tensor x, Tensor ids, Tensor out);

    /**
     * {@code out[n, ids[n, j], :] = x[n, j, :]} and every row no id names is zero (the zero mask token);
     * x [N, K, D], out [N, T, D]. Ids of one sample are distinct.
     */
    void scatterRows(Tensor x, Tensor ids, Tensor out);

    /** Mean over tokens: x [N, T, D] to out [N, D]. */
    void meanTokens(Tensor x, Tensor out);

    /** Backward of {@link #meanTokens}: {@code dx[n, t, :] = dOut[n, :] / T}. */
    void meanTokensBackward(Tensor dOut, Tensor dx);

    /**
     * Patchify as the official Conv2d patch embedding reads it: img [N, C, H, W] to out [N, (H/p)·(W/p), C·p·p],
     * tokens row-major over the patch grid, each token's features ordered (c, i, j).
     */
    void patchify(Tensor image, int patch, Tensor out);

    /** Backward of {@link #patchify} (the inverse permutation): dImage from dOut. */
    void patchifyBackward(Tensor dOut, int patch, Tensor dImage);

    /**
     * Unpatchify as the official code: tokens [N, (H/p)·(W/p), p·p·C], features ordered (i, j, c) with channel
     * fastest, to out [N, C, H, W].
     */
    void unpatchify(Tensor tokens, int patch, Tensor out);

    /** Backward of {@link #unpatchify}: dTokens from dOut. */
    void unpatchifyBackward(Tensor dOut, int patch, Tensor dTokens);

    // ---------------------------------------------------------------- embeddings (no gradient)

    /**
     * The fixed 2-D sin-cos position embedding, out [gridH·gridW, D]: the first D/2 channels encode the x (w)
     * coordinate, the last D/2 the y (h) coordinate, each as [sin(pos·ω), cos(pos·ω)] with
     * ω_k = 10000^(-k/(D/4)) and pos = index / interpolationScale.
     */
    void positionEmbedding2d(int gridH, int gridW, float interpolationScale, Tensor out);

    /**
     * Timestep sinusoid: t [N] to out [N, F] with F/2 frequencies {@code exp(-ln(10000)·k/(F/2))},
     * {@code [cos(t·f), sin(t·f)]}, cos first.
     */
    void timestepEmbedding(Tensor t, Tensor out);

    // ---------------------------------------------------------------- loss

    /**
     * The EDM loss over kept patches: per sample n, {@code weight[n] · (denoised - target)²} averaged over
     * channels and the p×p pixels of each patch, then over the patches with mask[n, patch] == 0 (mask F32
     * [N, T], 1 = removed; null keeps every patch). Writes perSample [N]; returns the mean over samples.
     */
    float edmLoss(Tensor denoised, Tensor target, Tensor weight, Tensor mask, int patch, Tensor perSample);

    /** Backward of {@link #edmLoss} scaled by {@code dLoss}: writes dDenoised. */
    void edmLossBackward(float dLoss, Tensor denoised, Tensor target, Tensor weight, Tensor mask, int patch,
                         Tensor dDenoised);

    // ---------------------------------------------------------------- optimizer

    /** Sum of squares of all elements, accumulated in double: for the global gradient norm. */
    double sumOfSquares(Tensor x);

    /**
     * The sum of {@link #sumOfSquares(Tensor)} over the tensors, added in list order: the squared global gradient
     * norm in one call, which a GPU backend answers with one wait for the device instead of one per tensor.
     */
    default double sumOfSquares(List<Tensor> tensors) {
        double sum = 0;
        for (Tensor x : tensors) {
            sum += sumOfSquares(x);
        }
        return sum;
    }

    /**
     * One AdamW step with decoupled weight decay, in place on param, m and v. The gradient is multiplied by
     * {@code gradScale} first (global-norm clipping). {@code step} counts from 1 (bias correction).
     */
    void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, float learningRate, float beta1, float beta2,
               float epsilon, float weightDecay, long step, float gradScale);

    /**
     * {@link #adamw(Tensor, Tensor, Tensor, Tensor, float, float, float, float, float, long, float)} on every entry of
     * the lists (equal lengths; the written tensors param, m and v distinct), each with the bits of the one-tensor op:
     * a GPU backend makes it one launch. Every entry is checked before any is updated.
     */
    default void adamw(List<Tensor> params, List<Tensor> grads, List<Tensor> m, List<Tensor> v, float learningRate,
                       float beta1, float beta2, float epsilon, float weightDecay, long step, float gradScale) {
        Checks.adamwLists(params, grads, m, v, beta1, beta2, epsilon, step);
        for (int i = 0; i < params.size(); i++) {
            adamw(params.get(i), grads.get(i), m.get(i), v.get(i), learningRate, beta1, beta2, epsilon, weightDecay,
                    step, gradScale);
        }
    }

    /**
     * {@link #adamw(List, List, List, List, float, float, float, float, float, long, float)}, then each updated
     * parameter rounded into its bf16 working copy ({@code copies}, BF16 of the parameter's shape) with the bits of
     * {@link #convert}: the copy the next forward's bf16 matrix products read instead of converting the weight again.
     * A GPU backend writes the copies in the update's own pass.
     */
    default void adamw(List<Tensor> params, List<Tensor> grads, List<Tensor> m, List<Tensor> v, List<Tensor> copies,
                       float learningRate, float beta1, float beta2, float epsilon, float weightDecay, long step,
                       float gradScale) {
        Checks.adamwCopyLists(params, grads, m, v, copies, beta1, beta2, epsilon, step);
        adamw(params, grads, m, v, learningRate, beta1, beta2, epsilon, weightDecay, step, gradScale);
        for (int i = 0; i < params.size(); i++) {
            convert(params.get(i), copies.get(i));
        }
    }

    /** {@code ema = decay · ema + (1 - decay) · param}. */
    void emaUpdate(Tensor ema, Tensor param, float decay);

    /**
     * {@link #emaUpdate(Tensor, Tensor, float)} on every entry of the lists (equal lengths, the averages distinct),
     * each with the bits of the one-tensor op: a GPU backend makes it one launch. Every entry is checked first.
     */
    default void emaUpdate(List<Tensor> emas, List<Tensor> params, float decay) {
        Checks.emaLists(emas, params, decay);
        for (int i = 0; i < emas.size(); i++) {
            emaUpdate(emas.get(i), params.get(i), decay);
        }
    }

    // ---------------------------------------------------------------- random numbers

    /** Uniform floats in [0, 1) from Philox4x32-10 keyed by (seed, stream), element i at counter offset + i. */
    void uniform(long seed, long stream, long offset, Tensor out);

    /** Standard normals from Philox4x32-10, element i at counter offset + i (Box-Muller, see Philox). */
    void normal(long seed, long stream, long offset, Tensor out);

    // ---------------------------------------------------------------- conversion

    /** Copies with conversion between F32 and BF16 (round to nearest even). Same shapes. */
    void convert(Tensor source, Tensor target);
}
