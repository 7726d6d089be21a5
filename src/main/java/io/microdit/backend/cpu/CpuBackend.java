package io.microdit.backend.cpu;

import io.microdit.backend.AttentionChecks;
import io.microdit.backend.Backend;
import io.microdit.backend.Checks;
import io.microdit.backend.FlopCounter;
import io.microdit.backend.NormChecks;
import io.microdit.tensor.DType;
import io.microdit.tensor.Device;
import io.microdit.tensor.HostAllocator;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.lang.foreign.MemorySegment;

/**
 * The pure-Java backend: every op of {@link Backend}, multithreaded over a fixed pool, vectorised with the
 * Vector API where it pays. Each op family lives in its own class; this class only routes.
 */
public final class CpuBackend implements Backend, AutoCloseable {
    private final FlopCounter flops = new FlopCounter();
    /** This backend's arena: its scopes reuse each other's freed blocks across steps. */
    private final HostAllocator memory = new HostAllocator("cpu backend");
    private final Parallel parallel;
    private final CpuGemm gemm;
    private final CpuElementwise elementwise;
    private final CpuNorm norm;
    private final CpuResidualNorm residualNorm;
    private final CpuActivations activations;
    private final CpuAttention attention;
    private final CpuSoftmax softmax;
    private final CpuMoe moe;
    private final CpuTokens tokens;
    private final CpuEmbeddings embeddings;
    private final CpuLoss loss;
    private final CpuOptimizer optimizer;
    private final CpuRandom random;

    /** A backend on all available processors. */
    public CpuBackend() {
        this(Runtime.getRuntime().availableProcessors());
    }

    /** A backend on {@code threads} threads (the caller's and threads − 1 workers); results do not depend on it. */
    public CpuBackend(int threads) {
        this.parallel = new Parallel(threads);
        this.gemm = new CpuGemm(parallel, flops);
        this.elementwise = new CpuElementwise(parallel, flops);
        this.norm = new CpuNorm(parallel, flops);
        this.residualNorm = new CpuResidualNorm(elementwise, norm);
        this.activations = new CpuActivations(parallel, flops);
        this.attention = new CpuAttention(parallel, flops);
        this.softmax = new CpuSoftmax(parallel, flops);
        this.moe = new CpuMoe(parallel, flops);
        this.tokens = new CpuTokens(parallel, flops);
        this.embeddings = new CpuEmbeddings(parallel, flops);
        this.loss = new CpuLoss(parallel, flops);
        this.optimizer = new CpuOptimizer(parallel, flops);
        this.random = new CpuRandom(parallel, flops);
    }

    /** The threads ops run on. */
    public int threads() {
        return parallel.threads();
    }

    @Override
    public String name() {
        return "cpu (" + parallel.threads() + " threads, " + CpuGemm.vectorDescription() + ")";
    }

    @Override
    public Device device() {
        return Device.CPU;
    }

    @Override
    public FlopCounter flops() {
        return flops;
    }

    /** The allocator behind {@link #scope}: what it holds and how often it reserved fresh memory. */
    public HostAllocator memory() {
        return memory;
    }

    /** Stops the workers and gives the arena's cached blocks back; scopes still open free theirs when they close. */
    @Override
    public void close() {
        parallel.close();
        memory.close();
    }

    // Host memory: the memory operations are the plain tensor calls, and nothing is copied to move "in place".

    @Override
    public MemoryScope scope(String name) {
        return new MemoryScope(name, memory);
    }

    @Override
    public Tensor upload(Tensor host, MemoryScope scope) {
        return requireHost("upload", host);
    }

    @Override
    public Tensor download(Tensor t, MemoryScope hostScope) {
        return requireHost("download", t);
    }

    @Override
    public void copy(Tensor source, Tensor target) {
        target.copyFrom(source);
    }

    @Override
    public void fill(Tensor target, float value) {
        target.fill(value);
    }

    @Override
    public void write(Tensor target, float[] values) {
        target.copyFrom(values);
    }

    @Override
    public void write(Tensor target, int[] values) {
        target.copyFrom(values);
    }

    @Override
    public float[] read(Tensor t) {
        return t.toFloatArray();
    }

    private static Tensor requireHost(String op, Tensor t) {
        if (t.device() != Device.CPU) {
            throw new IllegalArgumentException(op + ": " + t.describe() + " is on " + t.device()
                    + "; the CPU backend holds host tensors only");
        }
        return t;
    }

    @Override
    public void matmul(Tensor a, boolean transposeA, Tensor b, boolean transposeB, Tensor bias, Tensor out,
                       boolean accumulate) {
        gemm.matmul(a, transposeA, b, transposeB, bias, out, accumulate);
    }

    /*
     * The activations in the GEMM's epilogue (F32 operands): each row panel's activation runs on the thread that
     * finished it, while it is in that thread's cache, instead of a separate pass over the whole output from memory;
     * the backwards write the product into the gradient they return and finish it in place, so the incoming gradient
     * is never a tensor of its own. The elementwise kernels are the separate ops' own, so the bits are theirs.
     * BF16 operands take the interface's two calls.
     */

    @Override
    public void matmulGelu(Tensor a, boolean transposeA, Tensor b, boolean transposeB, Tensor bias, Tensor pre,
                           Tensor out, boolean tanhApproximation) {
        if (Bf16Operands.any(a, b, pre, out)) {
            Backend.super.matmulGelu(a, transposeA, b, transposeB, bias, pre, out, tanhApproximation);
            return;
        }
        Checks.gelu(pre, out);
        MemorySegment preSegment = pre.segment(), outSegment = out.segment();
        gemm.matmul(a, transposeA, b, transposeB, bias, pre, false, tanhApproximation
                ? (start, end) -> CpuActivations.geluTanhRange(preSegment, false, outSegment, false, start, end)
                : (start, end) -> CpuActivations.geluExactRange(preSegment, false, outSegment, false, start, end));
        activations.countGelu(pre.numel(), tanhApproximation);
    }

    @Override
    public void matmulGeluBackward(Tensor a, boolean transposeA, Tensor b, boolean transposeB, Tensor pre,
                                   Tensor dPre, boolean tanhApproximation) {
        if (Bf16Operands.any(a, b, pre, dPre)) {
            Backend.super.matmulGeluBackward(a, transposeA, b, transposeB, pre, dPre, tanhApproximation);
            return;
        }
        Checks.geluBackward(dPre, pre, dPre);
        MemorySegment preSegment = pre.segment(), gradient = dPre.segment();
        gemm.matmul(a, transposeA, b, transposeB, null, dPre, false, tanhApproximation
                ? (start, end) -> CpuActivations.geluTanhBackwardRange(gradient, preSegment, false, gradient, start, end)
                : (start, end) -> CpuActivations.geluExactBackwardRange(gradient, preSegment, false, gradient, start,
                        end));
        activations.countGeluBackward(pre.numel(), tanhApproximation);
    }

    @Override
    public void matmulSwiglu(Tensor a, boolean transposeA, Tensor b, boolean transposeB, Tensor bias, Tensor gateA,
                             Tensor gateB, Tensor out) {
        if (Bf16Operands.any(a, b, gateA, gateB, out)) {
            Backend.super.matmulSwiglu(a, transposeA, b, transposeB, bias, gateA, gateB, out);
            return;
        }
        Checks.swigluGate(gateA, gateB, out);
        MemorySegment as = gateA.segment(), bs = gateB.segment(), os = out.segment();
        gemm.matmul(a, transposeA, b, transposeB, bias, gateB, false,
                (start, end) -> CpuActivations.swigluGateRange(as, bs, false, os, false, start, end));
        activations.countSwigluGate(gateA.numel());
    }

    @Override
    public void matmulSwigluBackward(Tensor a, boolean transposeA, Tensor b, boolean transposeB, Tensor gateA,
                                     Tensor gateB, Tensor dGateA, Tensor dGateB) {
        if (Bf16Operands.any(a, b, gateA, gateB, dGateA, dGateB)) {
            Backend.super.matmulSwigluBackward(a, transposeA, b, transposeB, gateA, gateB, dGateA, dGateB);
            return;
        }
        Checks.swigluGateBackward(dGateB, gateA, gateB, dGateA, dGateB);
        MemorySegment as = gateA.segment(), bs = gateB.segment(), das = dGateA.segment(), dbs = dGateB.segment();
        // The incoming gradient goes into dGateB, which the gate's backward then overwrites element by element.
        gemm.matmul(a, transposeA, b, transposeB, null, dGateB, false,
                (start, end) -> CpuActivations.swigluGateBackwardRange(dbs, as, bs, false, das, dbs, start, end));
        activations.countSwigluGateBackward(gateA.numel());
    }

    @Override
    public void sumRows(Tensor x, Tensor out, boolean accumulate) {
        gemm.sumRows(x, out, accumulate);
    }

    @Override
    public void add(Tensor a, Tensor b, Tensor out) {
        elementwise.add(a, b, out);
    }

    @Override
    public void mul(Tensor a, Tensor b, Tensor out) {
        elementwise.mul(a, b, out);
    }

    @Override
    public void scale(Tensor x, float alpha, Tensor out) {
        elementwise.scale(x, alpha, out);
    }

    @Override
    public void axpy(float alpha, Tensor x, Tensor y) {
        elementwise.axpy(alpha, x, y);
    }

    @Override
    public void modulate(Tensor x, Tensor shift, Tensor scale, Tensor out) {
        elementwise.modulate(x, shift, scale, out);
    }

    @Override
    public void modulateBackward(Tensor dOut, Tensor x, Tensor scale, Tensor dx, Tensor dShift, Tensor dScale) {
        elementwise.modulateBackward(dOut, x, scale, dx, dShift, dScale);
    }

    @Override
    public void gatedResidual(Tensor x, Tensor gate, Tensor f, Tensor out) {
        elementwise.gatedResidual(x, gate, f, out);
    }

    @Override
    public void gatedResidualBackward(Tensor dOut, Tensor gate, Tensor f, Tensor dGate, Tensor dF) {
        elementwise.gatedResidualBackward(dOut, gate, f, dGate, dF);
    }

    @Override
    public void sliceColumns(Tensor x, int start, Tensor out) {
        elementwise.sliceColumns(x, start, out);
    }

    @Override
    public void sliceColumnsBackward(Tensor dOut, int start, Tensor dx) {
        elementwise.sliceColumnsBackward(dOut, start, dx);
    }

    @Override
    public void layerNorm(Tensor x, Tensor weight, float eps, Tensor out, Tensor mean, Tensor rstd) {
        norm.layerNorm(x, weight, eps, out, mean, rstd);
    }

    @Override
    public void layerNormModulate(Tensor x, Tensor weight, Tensor shift, Tensor scale, float eps, Tensor out,
                                  Tensor mean, Tensor rstd) {
        norm.layerNormModulate(x, weight, shift, scale, eps, out, mean, rstd);
    }

    @Override
    public void layerNormBackward(Tensor dOut, Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dx,
                                  Tensor dWeight, boolean accumulate) {
        residualNorm.layerNormBackward(dOut, x, weight, mean, rstd, dx, dWeight, accumulate);
    }

    @Override
    public void gatherLayerNorm(Tensor x, Tensor ids, Tensor weight, float eps, Tensor out, Tensor mean,
                                Tensor rstd) {
        norm.gatherLayerNorm(x, ids, weight, eps, out, mean, rstd);
    }

    @Override
    public void gatherLayerNormBackward(Tensor dOut, Tensor x, Tensor ids, Tensor weight, Tensor mean, Tensor rstd,
                                        Tensor dx, Tensor dWeight, boolean accumulate) {
        norm.gatherLayerNormBackward(dOut, x, ids, weight, mean, rstd, dx, dWeight, accumulate);
    }

    @Override
    public void layerNormModulateBackward(Tensor dOut, Tensor x, Tensor weight, Tensor scale, Tensor mean,
                                          Tensor rstd, Tensor dx, Tensor dWeight, Tensor dShift, Tensor dScale,
                                          boolean accumulate) {
        residualNorm.layerNormModulateBackward(dOut, x, weight, scale, mean, rstd, dx, dWeight, dShift, dScale,
                accumulate);
    }

    @Override
    public void residualLayerNorm(Tensor x, Tensor gate, Tensor f, Tensor weight, Tensor shift, Tensor scale,
                                  float eps, Tensor residual, Tensor out, Tensor mean, Tensor rstd) {
        residualNorm.residualLayerNorm(x, gate, f, weight, shift, scale, eps, residual, out, mean, rstd);
    }

    @Override
    public void residualLayerNorm(Tensor x, Tensor gate, Tensor f, Tensor weight, Tensor shift, Tensor scale,
                                  float eps, Tensor residual, Tensor out, Tensor outBf16, Tensor mean, Tensor rstd) {
        NormChecks.residualLayerNormWithCopy(x, gate, f, weight, shift, scale, eps, residual, out, outBf16, mean, rstd);
        residualNorm.residualLayerNorm(x, gate, f, weight, shift, scale, eps, residual, out, mean, rstd);
        convert(out, outBf16);
    }

    @Override
    public void residualLayerNormBackward(Tensor dOut, Tensor dResidual, Tensor residual, Tensor gate, Tensor f,
                                          Tensor weight, Tensor scale, Tensor mean, Tensor rstd, Tensor dx,
                                          Tensor dWeight, Tensor dShift, Tensor dScale, Tensor dGate, Tensor dF) {
        residualNorm.residualLayerNormBackward(dOut, dResidual, residual, gate, f, weight, scale, mean, rstd, dx,
                dWeight, dShift, dScale, dGate, dF);
    }

    @Override
    public void gelu(Tensor x, Tensor out, boolean tanhApproximation) {
        activations.gelu(x, out, tanhApproximation);
    }

    @Override
    public void geluBackward(Tensor dOut, Tensor x, Tensor dx, boolean tanhApproximation) {
        activations.geluBackward(dOut, x, dx, tanhApproximation);
    }

    @Override
    public void silu(Tensor x, Tensor out) {
        activations.silu(x, out);
    }

    @Override
    public void siluBackward(Tensor dOut, Tensor x, Tensor dx) {
        activations.siluBackward(dOut, x, dx);
    }

    @Override
    public void swigluGate(Tensor a, Tensor b, Tensor out) {
        activations.swigluGate(a, b, out);
    }

    @Override
    public void swigluGateBackward(Tensor dOut, Tensor a, Tensor b, Tensor da, Tensor db) {
        activations.swigluGateBackward(dOut, a, b, da, db);
    }

    @Override
    public void softmax(Tensor x, Tensor out) {
        softmax.softmax(x, out);
    }

    @Override
    public void softmaxBackward(Tensor dOut, Tensor y, Tensor dx) {
        softmax.softmaxBackward(dOut, y, dx);
    }

    @Override
    public void attention(Tensor q, Tensor k, Tensor v, int heads, Tensor out, Tensor lse) {
        attention.forward(q, k, v, heads, out, lse);
    }

    @Override
    public void attentionBackward(Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, int heads,
                                  Tensor dq, Tensor dk, Tensor dv) {
        attention.backward(dOut, q, k, v, out, lse, heads, dq, dk, dv);
    }

    @Override
    public void layerNormStatistics(Tensor x, float eps, Tensor mean, Tensor rstd, Tensor center) {
        norm.layerNormStatistics(x, eps, mean, rstd, center);
    }

    /** The normalised q and k are formed in scratch here (from the statistics, as layerNorm's output rounds). */
    @Override
    public void normalizedAttention(Tensor q, Tensor k, Tensor v, int heads, float eps, Tensor qCenter, Tensor qRstd,
                                    Tensor kCenter, Tensor kRstd, Tensor out, Tensor lse) {
        AttentionChecks.normalizedAttention(q, k, v, heads, eps, qCenter, qRstd, kCenter, kRstd, out, lse);
        try (MemoryScope scratch = new MemoryScope("normalized-attention")) {
            attention.forward(normalized(q, qCenter, qRstd, scratch, "normalizedAttention"),
                    normalized(k, kCenter, kRstd, scratch, "normalizedAttention"), v, heads, out, lse);
        }
    }

    @Override
    public void normalizedAttentionBackward(Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse,
                                            int heads, float eps, Tensor qCenter, Tensor qRstd, Tensor kCenter,
                                            Tensor kRstd, Tensor dq, Tensor dk, Tensor dv) {
        AttentionChecks.normalizedAttentionBackward(dOut, q, k, v, out, lse, heads, eps, qCenter, qRstd, kCenter, kRstd,
                dq, dk, dv);
        try (MemoryScope scratch = new MemoryScope("normalized-attention")) {
            attention.backward(dOut, normalized(q, qCenter, qRstd, scratch, null),
                    normalized(k, kCenter, kRstd, scratch, null), v, out, lse, heads, dq, dk, dv);
        }
    }

    /** The blocks are copied out of qkv (and the gradients into dqkv): the same arithmetic as the separate ops. */
    @Override
    public void normalizedSelfAttention(Tensor qkv, int heads, float eps, Tensor qMean, Tensor qRstd, Tensor qCenter,
                                        Tensor kMean, Tensor kRstd, Tensor kCenter, Tensor out, Tensor lse) {
        AttentionChecks.normalizedSelfAttention(qkv, heads, eps, qMean, qRstd, qCenter, kMean, kRstd, kCenter, out,
                lse);
        try (MemoryScope scratch = new MemoryScope("self-attention")) {
            Tensor[] blocks = columnBlocks(qkv, qkv.dim(2) / 3, scratch);
            attentionOfBlocks(blocks[0], blocks[1], blocks[2], heads, eps, qMean, qRstd, qCenter, kMean, kRstd,
                    kCenter, out, lse);
        }
    }

    @Override
    public void normalizedCrossAttention(Tensor q, Tensor kv, int heads, float eps, Tensor qMean, Tensor qRstd,
                                         Tensor qCenter, Tensor kMean, Tensor kRstd, Tensor kCenter, Tensor out,
                                         Tensor lse) {
        AttentionChecks.normalizedCrossAttention(q, kv, heads, eps, qMean, qRstd, qCenter, kMean, kRstd, kCenter, out,
                lse);
        try (MemoryScope scratch = new MemoryScope("cross-attention")) {
            Tensor[] blocks = columnBlocks(kv, q.dim(2), scratch);
            attentionOfBlocks(q, blocks[0], blocks[1], heads, eps, qMean, qRstd, qCenter, kMean, kRstd, kCenter, out,
                    lse);
        }
    }

    @Override
    public void normalizedSelfAttentionBackward(Tensor dOut, Tensor qkv, Tensor out, Tensor lse, int heads, float eps,
                                                Tensor qMean, Tensor qRstd, Tensor qCenter, Tensor kMean, Tensor kRstd,
                                                Tensor kCenter, Tensor dqkv) {
        AttentionChecks.normalizedSelfAttentionBackward(dOut, qkv, out, lse, heads, eps, qMean, qRstd, qCenter, kMean,
                kRstd, kCenter, dqkv);
        try (MemoryScope scratch = new MemoryScope("self-attention")) {
            Tensor[] blocks = columnBlocks(qkv, qkv.dim(2) / 3, scratch);
            Tensor[] gradients = attentionOfBlocksBackward(dOut, blocks[0], blocks[1], blocks[2], out, lse, heads, eps,
                    qMean, qRstd, qCenter, kMean, kRstd, kCenter, scratch);
            intoColumnBlocks(gradients, dqkv);
        }
    }

    @Override
    public void normalizedCrossAttentionBackward(Tensor dOut, Tensor q, Tensor kv, Tensor out, Tensor lse, int heads,
                                                 float eps, Tensor qMean, Tensor qRstd, Tensor qCenter, Tensor kMean,
                                                 Tensor kRstd, Tensor kCenter, Tensor dq, Tensor dkv) {
        AttentionChecks.normalizedCrossAttentionBackward(dOut, q, kv, out, lse, heads, eps, qMean, qRstd, qCenter,
                kMean, kRstd, kCenter, dq, dkv);
        try (MemoryScope scratch = new MemoryScope("cross-attention")) {
            Tensor[] blocks = columnBlocks(kv, q.dim(2), scratch);
            Tensor[] gradients = attentionOfBlocksBackward(dOut, q, blocks[0], blocks[1], out, lse, heads, eps, qMean,
                    qRstd, qCenter, kMean, kRstd, kCenter, scratch);
            intoColumnBlocks(new Tensor[] {gradients[0]}, dq);
            intoColumnBlocks(new Tensor[] {gradients[1], gradients[2]}, dkv);
        }
    }

    /** q's and k's statistics, then normalizedAttention. */
    private void attentionOfBlocks(Tensor q, Tensor k, Tensor v, int heads, float eps, Tensor qMean, Tensor qRstd,
                                   Tensor qCenter, Tensor kMean, Tensor kRstd, Tensor kCenter, Tensor out,
                                   Tensor lse) {
        layerNormStatistics(q, eps, qMean, qRstd, qCenter);
        layerNormStatistics(k, eps, kMean, kRstd, kCenter);
        normalizedAttention(q, k, v, heads, eps, qCenter, qRstd, kCenter, kRstd, out, lse);
    }

    /** normalizedAttentionBackward with BF16 gradients, then k's and q's QK-norm backward: q's, k's, v's gradients. */
    private Tensor[] attentionOfBlocksBackward(Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse,
                                               int heads, float eps, Tensor qMean, Tensor qRstd, Tensor qCenter,
                                               Tensor kMean, Tensor kRstd, Tensor kCenter, MemoryScope scratch) {
        Tensor dqNormalized = Tensor.empty(scratch, DType.BF16, q.shape());
        Tensor dkNormalized = Tensor.empty(scratch, DType.BF16, k.shape());
        Tensor dv = Tensor.empty(scratch, DType.BF16, v.shape());
        normalizedAttentionBackward(dOut, q, k, v, out, lse, heads, eps, qCenter, qRstd, kCenter, kRstd, dqNormalized,
                dkNormalized, dv);
        Tensor dk = Tensor.empty(scratch, DType.BF16, k.shape()), dq = Tensor.empty(scratch, DType.BF16, q.shape());
        layerNormBackward(dkNormalized, k, null, kMean, kRstd, dk, null);
        layerNormBackward(dqNormalized, q, null, qMean, qRstd, dq, null);
        return new Tensor[] {dq, dk, dv};
    }

    /** The column blocks {@code width} wide of a BF16 matrix [N, T, C], copied into BF16 [N, T, width] each. */
    private static Tensor[] columnBlocks(Tensor matrix, int width, MemoryScope scratch) {
        int count = matrix.dim(2) / width;
        long rows = matrix.rowCount(), bytes = width * 2L;
        MemorySegment source = matrix.segment();
        Tensor[] blocks = new Tensor[count];
        for (int b = 0; b < count; b++) {
            blocks[b] = Tensor.empty(scratch, DType.BF16, matrix.dim(0), matrix.dim(1), width);
            MemorySegment target = blocks[b].segment();
            for (long r = 0; r < rows; r++) {
                MemorySegment.copy(source, (r * count + b) * bytes, target, r * bytes, bytes);
            }
        }
        return blocks;
    }

    /** BF16 blocks [N, T, W] copied into the column blocks of a BF16 matrix [N, T, blocks·W]. */
    private static void intoColumnBlocks(Tensor[] blocks, Tensor matrix) {
        int count = blocks.length;
        long rows = matrix.rowCount(), bytes = blocks[0].dim(2) * 2L;
        MemorySegment target = matrix.segment();
        for (int b = 0; b < count; b++) {
            MemorySegment source = blocks[b].segment();
            for (long r = 0; r < rows; r++) {
                MemorySegment.copy(source, r * bytes, target, (r * count + b) * bytes, bytes);
            }
        }
    }

    private Tensor normalized(Tensor x, Tensor center, Tensor rstd, MemoryScope scratch, String op) {
        Tensor out = Tensor.empty(scratch, x.dtype(), x.shape());
        norm.normalize(x, center, rstd, out, op);
        return out;
    }

    @Override
    public void expertChoiceTopK(Tensor probs, int k, Tensor gates, Tensor indices) {
        moe.topK(probs, k, gates, indices);
    }

    @Override
    public void expertChoiceTopKBackward(Tensor dGates, Tensor indices, Tensor dProbs) {
        moe.topKBackward(dGates, indices, dProbs);
    }

    @Override
    public void moeDispatch(Tensor x, Tensor indices, Tensor out) {
        moe.dispatch(x, indices, out);
    }

    @Override
    public void moeDispatchBackward(Tensor dOut, Tensor indices, Tensor dx) {
        moe.dispatchBackward(dOut, indices, dx);
    }

    @Override
    public void moeCombine(Tensor h, Tensor gates, Tensor indices, Tensor out) {
        moe.combine(h, gates, indices, out);
    }

    @Override
    public void moeCombineBackward(Tensor dOut, Tensor h, Tensor gates, Tensor indices, Tensor dH, Tensor dGates) {
        moe.combineBackward(dOut, h, gates, indices, dH, dGates);
    }

    @Override
    public void gatherRows(Tensor x, Tensor ids, Tensor out) {
        tokens.gatherRows(x, ids, out);
    }

    @Override
    public void scatterRows(Tensor x, Tensor ids, Tensor out) {
        tokens.scatterRows(x, ids, out);
    }

    @Override
    public void meanTokens(Tensor x, Tensor out) {
        tokens.meanTokens(x, out);
    }

    @Override
    public void meanTokensBackward(Tensor dOut, Tensor dx) {
        tokens.meanTokensBackward(dOut, dx);
    }

    @Override
    public void patchify(Tensor image, int patch, Tensor out) {
        tokens.patchify(image, patch, out);
    }

    @Override
    public void patchifyBackward(Tensor dOut, int patch, Tensor dImage) {
        tokens.patchifyBackward(dOut, patch, dImage);
    }

    @Override
    public void unpatchify(Tensor tokensIn, int patch, Tensor out) {
        tokens.unpatchify(tokensIn, patch, out);
    }

    @Override
    public void unpatchifyBackward(Tensor dOut, int patch, Tensor dTokens) {
        tokens.unpatchifyBackward(dOut, patch, dTokens);
    }

    @Override
    public void positionEmbedding2d(int gridH, int gridW, float interpolationScale, Tensor out) {
        embeddings.positionEmbedding2d(gridH, gridW, interpolationScale, out);
    }

    @Override
    public void timestepEmbedding(Tensor t, Tensor out) {
        embeddings.timestepEmbedding(t, out);
    }

    @Override
    public float edmLoss(Tensor denoised, Tensor target, Tensor weight, Tensor mask, int patch, Tensor perSample) {
        return loss.edmLoss(denoised, target, weight, mask, patch, perSample);
    }

    @Override
    public void edmLossBackward(float dLoss, Tensor denoised, Tensor target, Tensor weight, Tensor mask, int patch,
                                Tensor dDenoised) {
        loss.edmLossBackward(dLoss, denoised, target, weight, mask, patch, dDenoised);
    }

    @Override
    public double sumOfSquares(Tensor x) {
        return optimizer.sumOfSquares(x);
    }

    @Override
    public void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, float learningRate, float beta1, float beta2,
                      float epsilon, float weightDecay, long step, float gradScale) {
        optimizer.adamw(param, grad, m, v, learningRate, beta1, beta2, epsilon, weightDecay, step, gradScale);
    }

    @Override
    public void emaUpdate(Tensor ema, Tensor param, float decay) {
        optimizer.emaUpdate(ema, param, decay);
    }

    @Override
    public void uniform(long seed, long stream, long offset, Tensor out) {
        random.uniform(seed, stream, offset, out);
    }

    @Override
    public void normal(long seed, long stream, long offset, Tensor out) {
        random.normal(seed, stream, offset, out);
    }

    @Override
    public void convert(Tensor source, Tensor target) {
        elementwise.convert(source, target);
    }
}
