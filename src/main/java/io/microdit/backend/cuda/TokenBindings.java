package io.microdit.backend.cuda;

import static io.microdit.backend.cuda.Downcalls.handle;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

/**
 * FFM bindings of {@code native/include/microdit.h}'s ops that move tokens: gather, scatter and mean over tokens
 * ({@code kernels/tokens.cu}, the deferred mask's) and expert-choice MoE routing ({@code kernels/moe.cu}: top-k,
 * dispatch, combine, the token→slot map), in the header's order; {@link Downcalls} says how they resolve.
 */
final class TokenBindings {
    private static final MethodHandle MDT_TOKENS_GATHER_ROWS = handle("mdt_tokens_gather_rows");
    private static final MethodHandle MDT_TOKENS_SCATTER_ROWS = handle("mdt_tokens_scatter_rows");
    private static final MethodHandle MDT_TOKENS_MEAN_FWD = handle("mdt_tokens_mean_fwd");
    private static final MethodHandle MDT_TOKENS_MEAN_BWD = handle("mdt_tokens_mean_bwd");
    private static final MethodHandle MDT_MOE_TOPK_FWD = handle("mdt_moe_topk_fwd");
    private static final MethodHandle MDT_MOE_TOPK_BWD = handle("mdt_moe_topk_bwd");
    private static final MethodHandle MDT_MOE_DISPATCH_FWD = handle("mdt_moe_dispatch_fwd");
    private static final MethodHandle MDT_MOE_TOKEN_SLOTS = handle("mdt_moe_token_slots");
    private static final MethodHandle MDT_MOE_ROUTED_ROWS = handle("mdt_moe_routed_rows");
    private static final MethodHandle MDT_MOE_DISPATCH_BWD = handle("mdt_moe_dispatch_bwd");
    private static final MethodHandle MDT_MOE_COMBINE_FWD = handle("mdt_moe_combine_fwd");
    private static final MethodHandle MDT_MOE_COMBINE_BWD = handle("mdt_moe_combine_bwd");
    private static final MethodHandle MDT_MOE_DISPATCH_FWD_BF16OUT = handle("mdt_moe_dispatch_fwd_bf16out");
    private static final MethodHandle MDT_MOE_COMBINE_FWD_BF16IN = handle("mdt_moe_combine_fwd_bf16in");
    private static final MethodHandle MDT_MOE_COMBINE_BWD_BF16IN = handle("mdt_moe_combine_bwd_bf16in");
    private static final MethodHandle MDT_MOE_COMBINE_FWD_BF16IN_BF16OUT = handle("mdt_moe_combine_fwd_bf16in_bf16out");
    private static final MethodHandle MDT_MOE_DISPATCH_BWD_BF16GRAD = handle("mdt_moe_dispatch_bwd_bf16grad");
    private static final MethodHandle MDT_MOE_COMBINE_BWD_BF16GRAD = handle("mdt_moe_combine_bwd_bf16grad");
    private static final MethodHandle MDT_MOE_COMBINE_BWD_BF16IN_BF16GRAD = handle("mdt_moe_combine_bwd_bf16in_bf16grad");

    private TokenBindings() {
    }

    public static int mdt_tokens_gather_rows(MemorySegment stream, MemorySegment x, MemorySegment ids, MemorySegment out, long samples, long tokens, long kept, long width, MemorySegment errorRecord) {
        try {
            return (int) MDT_TOKENS_GATHER_ROWS.invokeExact(stream, x, ids, out, samples, tokens, kept, width, errorRecord);
        } catch (Throwable error) {
            throw new AssertionError("mdt_tokens_gather_rows threw", error);
        }
    }

    public static int mdt_tokens_scatter_rows(MemorySegment stream, MemorySegment x, MemorySegment ids, MemorySegment out, long samples, long tokens, long kept, long width, MemorySegment errorRecord) {
        try {
            return (int) MDT_TOKENS_SCATTER_ROWS.invokeExact(stream, x, ids, out, samples, tokens, kept, width, errorRecord);
        } catch (Throwable error) {
            throw new AssertionError("mdt_tokens_scatter_rows threw", error);
        }
    }

    public static int mdt_tokens_mean_fwd(MemorySegment stream, MemorySegment x, MemorySegment out, long samples, long tokens, long width) {
        try {
            return (int) MDT_TOKENS_MEAN_FWD.invokeExact(stream, x, out, samples, tokens, width);
        } catch (Throwable error) {
            throw new AssertionError("mdt_tokens_mean_fwd threw", error);
        }
    }

    public static int mdt_tokens_mean_bwd(MemorySegment stream, MemorySegment dOut, MemorySegment dx, long samples, long tokens, long width) {
        try {
            return (int) MDT_TOKENS_MEAN_BWD.invokeExact(stream, dOut, dx, samples, tokens, width);
        } catch (Throwable error) {
            throw new AssertionError("mdt_tokens_mean_bwd threw", error);
        }
    }

    public static int mdt_moe_topk_fwd(MemorySegment stream, MemorySegment probs, MemorySegment gates, MemorySegment indices, long samples, long tokens, long experts, long k) {
        try {
            return (int) MDT_MOE_TOPK_FWD.invokeExact(stream, probs, gates, indices, samples, tokens, experts, k);
        } catch (Throwable error) {
            throw new AssertionError("mdt_moe_topk_fwd threw", error);
        }
    }

    public static int mdt_moe_topk_bwd(MemorySegment stream, MemorySegment dGates, MemorySegment indices, MemorySegment dProbs, long samples, long tokens, long experts, long k, MemorySegment errorRecord) {
        try {
            return (int) MDT_MOE_TOPK_BWD.invokeExact(stream, dGates, indices, dProbs, samples, tokens, experts, k, errorRecord);
        } catch (Throwable error) {
            throw new AssertionError("mdt_moe_topk_bwd threw", error);
        }
    }

    public static int mdt_moe_dispatch_fwd(MemorySegment stream, MemorySegment x, MemorySegment indices, MemorySegment out, long samples, long tokens, long experts, long k, long dim, MemorySegment errorRecord) {
        try {
            return (int) MDT_MOE_DISPATCH_FWD.invokeExact(stream, x, indices, out, samples, tokens, experts, k, dim, errorRecord);
        } catch (Throwable error) {
            throw new AssertionError("mdt_moe_dispatch_fwd threw", error);
        }
    }

    public static int mdt_moe_token_slots(MemorySegment stream, MemorySegment indices, MemorySegment offsets, MemorySegment slots, long samples, long tokens, long experts, long k, int check, MemorySegment errorRecord) {
        try {
            return (int) MDT_MOE_TOKEN_SLOTS.invokeExact(stream, indices, offsets, slots, samples, tokens, experts, k, check, errorRecord);
        } catch (Throwable error) {
            throw new AssertionError("mdt_moe_token_slots threw", error);
        }
    }

    public static int mdt_moe_routed_rows(MemorySegment stream, MemorySegment indices, MemorySegment rows, long samples, long tokens, long experts, long k, int check, MemorySegment errorRecord) {
        try {
            return (int) MDT_MOE_ROUTED_ROWS.invokeExact(stream, indices, rows, samples, tokens, experts, k, check, errorRecord);
        } catch (Throwable error) {
            throw new AssertionError("mdt_moe_routed_rows threw", error);
        }
    }

    public static int mdt_moe_dispatch_bwd(MemorySegment stream, MemorySegment dOut, MemorySegment offsets, MemorySegment slots, MemorySegment dx, long samples, long tokens, long experts, long k, long dim) {
        try {
            return (int) MDT_MOE_DISPATCH_BWD.invokeExact(stream, dOut, offsets, slots, dx, samples, tokens, experts, k, dim);
        } catch (Throwable error) {
            throw new AssertionError("mdt_moe_dispatch_bwd threw", error);
        }
    }

    public static int mdt_moe_combine_fwd(MemorySegment stream, MemorySegment h, MemorySegment gates, MemorySegment offsets, MemorySegment slots, MemorySegment out, long samples, long tokens, long experts, long k, long dim) {
        try {
            return (int) MDT_MOE_COMBINE_FWD.invokeExact(stream, h, gates, offsets, slots, out, samples, tokens, experts, k, dim);
        } catch (Throwable error) {
            throw new AssertionError("mdt_moe_combine_fwd threw", error);
        }
    }

    public static int mdt_moe_combine_bwd(MemorySegment stream, MemorySegment dOut, MemorySegment h, MemorySegment gates, MemorySegment indices, MemorySegment dH, MemorySegment dGates, long samples, long tokens, long experts, long k, long dim, MemorySegment errorRecord) {
        try {
            return (int) MDT_MOE_COMBINE_BWD.invokeExact(stream, dOut, h, gates, indices, dH, dGates, samples, tokens, experts, k, dim, errorRecord);
        } catch (Throwable error) {
            throw new AssertionError("mdt_moe_combine_bwd threw", error);
        }
    }

    public static int mdt_moe_dispatch_fwd_bf16out(MemorySegment stream, MemorySegment x, MemorySegment indices, MemorySegment out, long samples, long tokens, long experts, long k, long dim, MemorySegment errorRecord) {
        try {
            return (int) MDT_MOE_DISPATCH_FWD_BF16OUT.invokeExact(stream, x, indices, out, samples, tokens, experts, k, dim, errorRecord);
        } catch (Throwable error) {
            throw new AssertionError("mdt_moe_dispatch_fwd_bf16out threw", error);
        }
    }

    public static int mdt_moe_combine_fwd_bf16in(MemorySegment stream, MemorySegment h, MemorySegment gates, MemorySegment offsets, MemorySegment slots, MemorySegment out, long samples, long tokens, long experts, long k, long dim) {
        try {
            return (int) MDT_MOE_COMBINE_FWD_BF16IN.invokeExact(stream, h, gates, offsets, slots, out, samples, tokens, experts, k, dim);
        } catch (Throwable error) {
            throw new AssertionError("mdt_moe_combine_fwd_bf16in threw", error);
        }
    }

    public static int mdt_moe_combine_bwd_bf16in(MemorySegment stream, MemorySegment dOut, MemorySegment h, MemorySegment gates, MemorySegment indices, MemorySegment dH, MemorySegment dGates, long samples, long tokens, long experts, long k, long dim, MemorySegment errorRecord) {
        try {
            return (int) MDT_MOE_COMBINE_BWD_BF16IN.invokeExact(stream, dOut, h, gates, indices, dH, dGates, samples, tokens, experts, k, dim, errorRecord);
        } catch (Throwable error) {
            throw new AssertionError("mdt_moe_combine_bwd_bf16in threw", error);
        }
    }

    public static int mdt_moe_combine_fwd_bf16in_bf16out(MemorySegment stream, MemorySegment h, MemorySegment gates, MemorySegment offsets, MemorySegment slots, MemorySegment out, long samples, long tokens, long experts, long k, long dim) {
        try {
            return (int) MDT_MOE_COMBINE_FWD_BF16IN_BF16OUT.invokeExact(stream, h, gates, offsets, slots, out, samples, tokens, experts, k, dim);
        } catch (Throwable error) {
            throw new AssertionError("mdt_moe_combine_fwd_bf16in_bf16out threw", error);
        }
    }

    public static int mdt_moe_dispatch_bwd_bf16grad(MemorySegment stream, MemorySegment dOut, MemorySegment offsets, MemorySegment slots, MemorySegment dx, long samples, long tokens, long experts, long k, long dim, int bf16Grads) {
        try {
            return (int) MDT_MOE_DISPATCH_BWD_BF16GRAD.invokeExact(stream, dOut, offsets, slots, dx, samples, tokens, experts, k, dim, bf16Grads);
        } catch (Throwable error) {
            throw new AssertionError("mdt_moe_dispatch_bwd_bf16grad threw", error);
        }
    }

    public static int mdt_moe_combine_bwd_bf16grad(MemorySegment stream, MemorySegment dOut, MemorySegment h, MemorySegment gates, MemorySegment indices, MemorySegment dH, MemorySegment dGates, long samples, long tokens, long experts, long k, long dim, int bf16Grads, MemorySegment errorRecord) {
        try {
            return (int) MDT_MOE_COMBINE_BWD_BF16GRAD.invokeExact(stream, dOut, h, gates, indices, dH, dGates, samples, tokens, experts, k, dim, bf16Grads, errorRecord);
        } catch (Throwable error) {
            throw new AssertionError("mdt_moe_combine_bwd_bf16grad threw", error);
        }
    }

    public static int mdt_moe_combine_bwd_bf16in_bf16grad(MemorySegment stream, MemorySegment dOut, MemorySegment h, MemorySegment gates, MemorySegment indices, MemorySegment dH, MemorySegment dGates, long samples, long tokens, long experts, long k, long dim, int bf16Grads, MemorySegment errorRecord) {
        try {
            return (int) MDT_MOE_COMBINE_BWD_BF16IN_BF16GRAD.invokeExact(stream, dOut, h, gates, indices, dH, dGates, samples, tokens, experts, k, dim, bf16Grads, errorRecord);
        } catch (Throwable error) {
            throw new AssertionError("mdt_moe_combine_bwd_bf16in_bf16grad threw", error);
        }
    }
}
