package io.microdit.backend.cuda;

import io.microdit.backend.Checks;
import io.microdit.tensor.Tensor;

/**
 * Expert-choice MoE routing (top-k, dispatch, combine) and its backwards: drives kernels/moe.cu (mdt_moe_*);
 * routing indices are checked on the device into the backend's error record.
 */
final class CudaMoe extends CudaOps {
    /** Tokens one block of the top-k kernel sorts in shared memory (kernels/moe.cu). */
    private static final int MAX_ROUTED_TOKENS = 4096;
    /** Routing slots E·k of a sample that one combine block lists in 48 KiB of shared memory. */
    private static final int MAX_SLOTS_PER_SAMPLE = 12 * 1024;

    CudaMoe(CudaBackend cuda) {
        super(cuda);
    }

    void expertChoiceTopK(Tensor probs, int k, Tensor gates, Tensor indices) {
        String op = "expertChoiceTopK";
        Checks.Routing r = Checks.expertChoiceTopK(probs, k, gates, indices);
        Checks.argument(r.tokens() <= MAX_ROUTED_TOKENS, op, "probs " + probs.describe() + " has more than "
                + MAX_ROUTED_TOKENS + " tokens, the most one CUDA block sorts");
        check(MicroditNative.mdt_moe_topk_fwd(stream, pointer(op, "probs", probs), pointer(op, "gates", gates),
                pointer(op, "indices", indices), r.samples(), r.tokens(), r.experts(), k), op);
        flops.add(op, 0);
    }

    void expertChoiceTopKBackward(Tensor dGates, Tensor indices, Tensor dProbs) {
        String op = "expertChoiceTopKBackward";
        Checks.Routing r = Checks.expertChoiceTopKBackward(dGates, indices, dProbs);
        check(MicroditNative.mdt_moe_topk_bwd(stream, pointer(op, "dGates", dGates), pointer(op, "indices", indices),
                pointer(op, "dProbs", dProbs), r.samples(), r.tokens(), r.experts(), r.k(), errorRecord()), op);
        flops.add(op, (long) r.samples() * r.experts() * r.k());
    }

    void moeDispatch(Tensor x, Tensor indices, Tensor out) {
        String op = "moeDispatch";
        Checks.Routing r = Checks.moeDispatch(x, indices, out);
        check(MicroditNative.mdt_moe_dispatch_fwd(stream, pointer(op, "x", x), pointer(op, "indices", indices),
                pointer(op, "out", out), r.samples(), r.tokens(), r.experts(), r.k(), r.dim(), errorRecord()), op);
        flops.add(op, 0);
    }

    void moeDispatchBackward(Tensor dOut, Tensor indices, Tensor dx) {
        String op = "moeDispatchBackward";
        Checks.Routing r = Checks.moeDispatchBackward(dOut, indices, dx);
        checkSlotList(op, r.experts(), r.k());
        check(MicroditNative.mdt_moe_dispatch_bwd(stream, pointer(op, "dOut", dOut), pointer(op, "indices", indices),
                pointer(op, "dx", dx), r.samples(), r.tokens(), r.experts(), r.k(), r.dim(), errorRecord()), op);
        flops.add(op, (long) r.experts() * r.samples() * r.k() * r.dim());
    }

    void moeCombine(Tensor h, Tensor gates, Tensor indices, Tensor out) {
        String op = "moeCombine";
        Checks.Routing r = Checks.moeCombine(h, gates, indices, out);
        checkSlotList(op, r.experts(), r.k());
        check(MicroditNative.mdt_moe_combine_fwd(stream, pointer(op, "h", h), pointer(op, "gates", gates),
                pointer(op, "indices", indices), pointer(op, "out", out), r.samples(), r.tokens(), r.experts(), r.k(),
                r.dim(), errorRecord()), op);
        flops.add(op, 2L * r.experts() * r.samples() * r.k() * r.dim());
    }

    void moeCombineBackward(Tensor dOut, Tensor h, Tensor gates, Tensor indices, Tensor dH, Tensor dGates) {
        String op = "moeCombineBackward";
        Checks.Routing r = Checks.moeCombineBackward(dOut, h, gates, indices, dH, dGates);
        check(MicroditNative.mdt_moe_combine_bwd(stream, pointer(op, "dOut", dOut), pointer(op, "h", h),
                pointer(op, "gates", gates), pointer(op, "indices", indices), pointer(op, "dH", dH),
                pointer(op, "dGates", dGates), r.samples(), r.tokens(), r.experts(), r.k(), r.dim(), errorRecord()), op);
        flops.add(op, 3L * r.experts() * r.samples() * r.k() * r.dim());
    }

    /** The per-token slot list of combine and the dispatch backward sits in one block's shared memory. */
    private static void checkSlotList(String op, int experts, int k) {
        Checks.argument((long) experts * k <= MAX_SLOTS_PER_SAMPLE, op, experts + " experts × " + k
                + " tokens exceed the " + MAX_SLOTS_PER_SAMPLE + " routing slots per sample the CUDA kernel holds");
    }
}
