package io.microdit.backend.cuda;

import io.microdit.backend.Checks;
import io.microdit.backend.MoeChecks;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.util.IdentityHashMap;
import java.util.Map;

/**
 * Expert-choice MoE routing (top-k, dispatch, combine) and its backwards: drives kernels/moe.cu (mdt_moe_*);
 * routing indices are checked on the device into the backend's error record.
 *
 * <p>Combine and the dispatch backward read a routing's token→slot map (mdt_moe_token_slots), not its indices. The
 * top-k builds the map with the indices it writes, into one I32 tensor in the indices' scope (so it is freed with
 * them), and keeps it by the indices tensor (identity): the forward combine and the backward dispatch of that
 * routing read it, with no further launch. Indices from anywhere else get a map built for the call, in the
 * backend's workspace; so do a routing's indices once this backend copies or fills anything over them
 * ({@link #overwritten}). A write to them that bypasses the backend (Java's own writes into emulated device
 * memory) is not seen: the map would still be the top-k's.
 *
 * <p>The same block holds the routing's routed rows (mdt_moe_routed_rows: the row of x behind each row of the
 * experts' [E, N·k, D] operand), which the experts' gathered products read instead of a dispatched copy.
 */
final class CudaMoe extends CudaOps {
    /** Tokens one block of the top-k kernel sorts in shared memory (kernels/moe.cu). */
    private static final int MAX_ROUTED_TOKENS = 4096;
    /** microdit.h's MDT_CHECK_MOE_DISPATCH_BWD and MDT_CHECK_MOE_COMBINE_FWD: a map built for one of these ops
     *  reports a bad index as that op's. */
    private static final int CHECK_DISPATCH = 2, CHECK_DISPATCH_BACKWARD = 3, CHECK_COMBINE = 4;

    /** The map of each routing whose indices this backend's top-k wrote, by indices tensor (identity). */
    private final Map<Tensor, Tensor> routings = new IdentityHashMap<>();

    CudaMoe(CudaBackend cuda) {
        super(cuda);
    }

    /** A map's two parts, per sample: offsets [N, T+1] and slots [N, E·k] (microdit.h). */
    private record TokenSlots(MemorySegment offsets, MemorySegment slots) {
        static long ints(MoeChecks.Routing r) {
            return (long) r.samples() * (r.tokens() + 1) + (long) r.samples() * r.experts() * r.k();
        }

        /** The map and the routed rows [E·N·k], as the top-k keeps them in one block. */
        static long keptInts(MoeChecks.Routing r) {
            return ints(r) + routedRows(r);
        }

        static long routedRows(MoeChecks.Routing r) {
            return (long) r.experts() * r.samples() * r.k();
        }

        static TokenSlots in(MemorySegment block, MoeChecks.Routing r) {
            long offsetBytes = 4L * r.samples() * (r.tokens() + 1);
            return new TokenSlots(block.asSlice(0, offsetBytes), block.asSlice(offsetBytes, 4 * ints(r) - offsetBytes));
        }
    }

    void expertChoiceTopK(Tensor probs, int k, Tensor gates, Tensor indices) {
        String op = "expertChoiceTopK";
        MoeChecks.Routing r = MoeChecks.expertChoiceTopK(probs, k, gates, indices);
        Checks.argument(r.tokens() <= MAX_ROUTED_TOKENS, op, () -> "probs " + probs.describe() + " has more than "
                + MAX_ROUTED_TOKENS + " tokens, the most one CUDA block sorts");
        Tensor previous = routings.remove(indices);
        MemorySegment written = pointer(op, "indices", indices);
        // Status checked without ending the op: the launch trace records the top-k and its map as one call.
        CudaRuntime.check(TokenBindings.mdt_moe_topk_fwd(stream, pointer(op, "probs", probs),
                pointer(op, "gates", gates), written, r.samples(), r.tokens(), r.experts(), k), op);
        Tensor map = previous;
        if (previous == null || previous.numel() != TokenSlots.keptInts(r)) {
            if (previous != null) {
                indices.scope().release(previous);
            }
            routings.keySet().removeIf(kept -> !kept.scope().isOpen());
            map = Tensor.empty(indices.scope(), DType.I32, Math.toIntExact(TokenSlots.keptInts(r)));
        }
        TokenSlots slots = TokenSlots.in(pointer(op, "map", map.rows(0, Math.toIntExact(TokenSlots.ints(r)))), r);
        // The top-k's indices are in range: nothing to report (NULL record).
        CudaRuntime.check(TokenBindings.mdt_moe_token_slots(stream, written, slots.offsets(), slots.slots(), r.samples(),
                r.tokens(), r.experts(), k, 0, MemorySegment.NULL), op);
        check(TokenBindings.mdt_moe_routed_rows(stream, written, pointer(op, "rows", keptRows(map, r)), r.samples(),
                r.tokens(), r.experts(), k, 0, MemorySegment.NULL), op);
        routings.put(indices, map);
        flops.add(op, 0);
    }

    /** {@code target} is written by something other than the top-k: a routing whose indices it covers loses its map. */
    void overwritten(Tensor target) {
        if (routings.isEmpty()) {
            return;
        }
        long start = target.segment().address(), end = start + target.byteSize();
        routings.keySet().removeIf(indices -> !indices.scope().isOpen()
                || indices.segment().address() < end && start < indices.segment().address() + indices.byteSize());
    }

    /**
     * The map of {@code indices} for an op with routing {@code r}: the top-k's, or one built now into the workspace
     * (bad indices reported under {@code check}, the op's code).
     */
    private TokenSlots tokenSlots(String op, Tensor indices, MoeChecks.Routing r, int check) {
        Tensor kept = routings.get(indices);
        if (kept != null && kept.numel() == TokenSlots.keptInts(r)) {
            // The map alone: the routed rows after it are no operand of this op.
            return TokenSlots.in(pointer(op, "map", kept.rows(0, Math.toIntExact(TokenSlots.ints(r)))), r);
        }
        TokenSlots built = TokenSlots.in(workspace(TokenSlots.ints(r)), r);
        CudaRuntime.check(TokenBindings.mdt_moe_token_slots(stream, pointer(op, "indices", indices), built.offsets(),
                built.slots(), r.samples(), r.tokens(), r.experts(), r.k(), check, errorRecord()), op);
        return built;
    }

    /** The routed rows within a kept block: I32 [E·N·k] after the map. */
    private static Tensor keptRows(Tensor kept, MoeChecks.Routing r) {
        return kept.rows(Math.toIntExact(TokenSlots.ints(r)), Math.toIntExact(TokenSlots.routedRows(r)));
    }

    /**
     * The routed rows of {@code indices} (I32 [E·N·k], rows of x [N·T, D]) for an op with routing {@code r}: the
     * top-k's, or built now into {@code scratch} (bad indices reported as the dispatch's, and read as zero rows).
     */
    Tensor routedRows(String op, Tensor indices, MoeChecks.Routing r, MemoryScope scratch) {
        Tensor kept = routings.get(indices);
        if (kept != null && kept.numel() == TokenSlots.keptInts(r)) {
            return keptRows(kept, r);
        }
        Tensor rows = Tensor.empty(scratch, DType.I32, Math.toIntExact(TokenSlots.routedRows(r)));
        CudaRuntime.check(TokenBindings.mdt_moe_routed_rows(stream, pointer(op, "indices", indices),
                pointer(op, "rows", rows), r.samples(), r.tokens(), r.experts(), r.k(), CHECK_DISPATCH,
                errorRecord()), op);
        return rows;
    }

    void expertChoiceTopKBackward(Tensor dGates, Tensor indices, Tensor dProbs) {
        String op = "expertChoiceTopKBackward";
        MoeChecks.Routing r = MoeChecks.expertChoiceTopKBackward(dGates, indices, dProbs);
        check(TokenBindings.mdt_moe_topk_bwd(stream, pointer(op, "dGates", dGates), pointer(op, "indices", indices),
                pointer(op, "dProbs", dProbs), r.samples(), r.tokens(), r.experts(), r.k(), errorRecord()), op);
        flops.add(op, (long) r.samples() * r.experts() * r.k());
    }

    void moeDispatch(Tensor x, Tensor indices, Tensor out) {
        String op = "moeDispatch";
        MoeChecks.Routing r = MoeChecks.moeDispatch(x, indices, out);
        MemorySegment px = pointer(op, "x", x), pindices = pointer(op, "indices", indices), pout = pointer(op, "out", out);
        check(out.dtype() == DType.BF16
                ? TokenBindings.mdt_moe_dispatch_fwd_bf16out(stream, px, pindices, pout, r.samples(), r.tokens(),
                        r.experts(), r.k(), r.dim(), errorRecord())
                : TokenBindings.mdt_moe_dispatch_fwd(stream, px, pindices, pout, r.samples(), r.tokens(), r.experts(),
                        r.k(), r.dim(), errorRecord()), op);
        flops.add(op, 0);
    }

    void moeDispatchBackward(Tensor dOut, Tensor indices, Tensor dx) {
        String op = "moeDispatchBackward";
        MoeChecks.Routing r = MoeChecks.moeDispatchBackward(dOut, indices, dx);
        TokenSlots map = tokenSlots(op, indices, r, CHECK_DISPATCH_BACKWARD);
        MemorySegment pdOut = pointer(op, "dOut", dOut), pdx = pointer(op, "dx", dx);
        int grads = bf16Grads(dOut);
        check(grads != 0
                ? TokenBindings.mdt_moe_dispatch_bwd_bf16grad(stream, pdOut, map.offsets(), map.slots(), pdx,
                        r.samples(), r.tokens(), r.experts(), r.k(), r.dim(), grads)
                : TokenBindings.mdt_moe_dispatch_bwd(stream, pdOut, map.offsets(), map.slots(), pdx, r.samples(),
                        r.tokens(), r.experts(), r.k(), r.dim()), op);
        flops.add(op, (long) r.experts() * r.samples() * r.k() * r.dim());
    }

    void moeCombine(Tensor h, Tensor gates, Tensor indices, Tensor out) {
        String op = "moeCombine";
        MoeChecks.Routing r = MoeChecks.moeCombine(h, gates, indices, out);
        TokenSlots map = tokenSlots(op, indices, r, CHECK_COMBINE);
        MemorySegment ph = pointer(op, "h", h), pgates = pointer(op, "gates", gates), pout = pointer(op, "out", out);
        check(out.dtype() == DType.BF16
                ? TokenBindings.mdt_moe_combine_fwd_bf16in_bf16out(stream, ph, pgates, map.offsets(), map.slots(),
                        pout, r.samples(), r.tokens(), r.experts(), r.k(), r.dim())
                : h.dtype() == DType.BF16
                ? TokenBindings.mdt_moe_combine_fwd_bf16in(stream, ph, pgates, map.offsets(), map.slots(), pout,
                        r.samples(), r.tokens(), r.experts(), r.k(), r.dim())
                : TokenBindings.mdt_moe_combine_fwd(stream, ph, pgates, map.offsets(), map.slots(), pout, r.samples(),
                        r.tokens(), r.experts(), r.k(), r.dim()), op);
        flops.add(op, 2L * r.experts() * r.samples() * r.k() * r.dim());
    }

    void moeCombineBackward(Tensor dOut, Tensor h, Tensor gates, Tensor indices, Tensor dH, Tensor dGates) {
        String op = "moeCombineBackward";
        MoeChecks.Routing r = MoeChecks.moeCombineBackward(dOut, h, gates, indices, dH, dGates);
        MemorySegment pdOut = pointer(op, "dOut", dOut), ph = pointer(op, "h", h), pgates = pointer(op, "gates", gates);
        MemorySegment pindices = pointer(op, "indices", indices), pdH = pointer(op, "dH", dH);
        MemorySegment pdGates = pointer(op, "dGates", dGates);
        int grads = bf16Grads(dH, dOut);
        boolean bf16In = h.dtype() == DType.BF16;
        check(grads != 0 && bf16In
                ? TokenBindings.mdt_moe_combine_bwd_bf16in_bf16grad(stream, pdOut, ph, pgates, pindices, pdH, pdGates,
                        r.samples(), r.tokens(), r.experts(), r.k(), r.dim(), grads, errorRecord())
                : grads != 0 ? TokenBindings.mdt_moe_combine_bwd_bf16grad(stream, pdOut, ph, pgates, pindices, pdH,
                        pdGates, r.samples(), r.tokens(), r.experts(), r.k(), r.dim(), grads, errorRecord())
                : bf16In ? TokenBindings.mdt_moe_combine_bwd_bf16in(stream, pdOut, ph, pgates, pindices, pdH, pdGates,
                        r.samples(), r.tokens(), r.experts(), r.k(), r.dim(), errorRecord())
                : TokenBindings.mdt_moe_combine_bwd(stream, pdOut, ph, pgates, pindices, pdH, pdGates, r.samples(),
                        r.tokens(), r.experts(), r.k(), r.dim(), errorRecord()), op);
        flops.add(op, 3L * r.experts() * r.samples() * r.k() * r.dim());
    }
}
