package io.microdit.backend.cuda;

import static io.microdit.backend.cuda.Downcalls.handle;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

/**
 * FFM bindings of {@code native/include/microdit.h}'s diffusion-specific ops: Philox random numbers
 * ({@code kernels/rng.cu}), patchify and the sin-cos position and timestep embeddings ({@code kernels/embed.cu}) and
 * the EDM loss ({@code kernels/loss.cu}), in the header's order; {@link Downcalls} says how they resolve.
 */
final class DiffusionBindings {
    private static final MethodHandle MDT_RNG_UNIFORM = handle("mdt_rng_uniform");
    private static final MethodHandle MDT_RNG_NORMAL = handle("mdt_rng_normal");
    private static final MethodHandle MDT_EMBED_PATCHIFY_FWD = handle("mdt_embed_patchify_fwd");
    private static final MethodHandle MDT_EMBED_PATCHIFY_BWD = handle("mdt_embed_patchify_bwd");
    private static final MethodHandle MDT_EMBED_UNPATCHIFY_FWD = handle("mdt_embed_unpatchify_fwd");
    private static final MethodHandle MDT_EMBED_UNPATCHIFY_BWD = handle("mdt_embed_unpatchify_bwd");
    private static final MethodHandle MDT_EMBED_POSITION_2D = handle("mdt_embed_position_2d");
    private static final MethodHandle MDT_EMBED_TIMESTEP = handle("mdt_embed_timestep");
    private static final MethodHandle MDT_LOSS_EDM_FWD = handle("mdt_loss_edm_fwd");
    private static final MethodHandle MDT_LOSS_EDM_BWD = handle("mdt_loss_edm_bwd");

    private DiffusionBindings() {
    }

    public static int mdt_rng_uniform(MemorySegment stream, long seed, long philoxStream, long offset, MemorySegment out, long n) {
        try {
            return (int) MDT_RNG_UNIFORM.invokeExact(stream, seed, philoxStream, offset, out, n);
        } catch (Throwable error) {
            throw new AssertionError("mdt_rng_uniform threw", error);
        }
    }

    public static int mdt_rng_normal(MemorySegment stream, long seed, long philoxStream, long offset, MemorySegment out, long n) {
        try {
            return (int) MDT_RNG_NORMAL.invokeExact(stream, seed, philoxStream, offset, out, n);
        } catch (Throwable error) {
            throw new AssertionError("mdt_rng_normal threw", error);
        }
    }

    public static int mdt_embed_patchify_fwd(MemorySegment stream, MemorySegment image, MemorySegment out, long samples, long channels, long height, long width, long patch) {
        try {
            return (int) MDT_EMBED_PATCHIFY_FWD.invokeExact(stream, image, out, samples, channels, height, width, patch);
        } catch (Throwable error) {
            throw new AssertionError("mdt_embed_patchify_fwd threw", error);
        }
    }

    public static int mdt_embed_patchify_bwd(MemorySegment stream, MemorySegment dOut, MemorySegment dImage, long samples, long channels, long height, long width, long patch) {
        try {
            return (int) MDT_EMBED_PATCHIFY_BWD.invokeExact(stream, dOut, dImage, samples, channels, height, width, patch);
        } catch (Throwable error) {
            throw new AssertionError("mdt_embed_patchify_bwd threw", error);
        }
    }

    public static int mdt_embed_unpatchify_fwd(MemorySegment stream, MemorySegment tokens, MemorySegment out, long samples, long channels, long height, long width, long patch) {
        try {
            return (int) MDT_EMBED_UNPATCHIFY_FWD.invokeExact(stream, tokens, out, samples, channels, height, width, patch);
        } catch (Throwable error) {
            throw new AssertionError("mdt_embed_unpatchify_fwd threw", error);
        }
    }

    public static int mdt_embed_unpatchify_bwd(MemorySegment stream, MemorySegment dOut, MemorySegment dTokens, long samples, long channels, long height, long width, long patch) {
        try {
            return (int) MDT_EMBED_UNPATCHIFY_BWD.invokeExact(stream, dOut, dTokens, samples, channels, height, width, patch);
        } catch (Throwable error) {
            throw new AssertionError("mdt_embed_unpatchify_bwd threw", error);
        }
    }

    public static int mdt_embed_position_2d(MemorySegment stream, MemorySegment out, long gridH, long gridW, long dim, float interpolationScale) {
        try {
            return (int) MDT_EMBED_POSITION_2D.invokeExact(stream, out, gridH, gridW, dim, interpolationScale);
        } catch (Throwable error) {
            throw new AssertionError("mdt_embed_position_2d threw", error);
        }
    }

    public static int mdt_embed_timestep(MemorySegment stream, MemorySegment t, MemorySegment out, long samples, long size) {
        try {
            return (int) MDT_EMBED_TIMESTEP.invokeExact(stream, t, out, samples, size);
        } catch (Throwable error) {
            throw new AssertionError("mdt_embed_timestep threw", error);
        }
    }

    public static int mdt_loss_edm_fwd(MemorySegment stream, MemorySegment denoised, MemorySegment target, MemorySegment weight, MemorySegment mask, MemorySegment perSample, MemorySegment workspace, long samples, long channels, long height, long width, long patch, MemorySegment errorRecord) {
        try {
            return (int) MDT_LOSS_EDM_FWD.invokeExact(stream, denoised, target, weight, mask, perSample, workspace, samples, channels, height, width, patch, errorRecord);
        } catch (Throwable error) {
            throw new AssertionError("mdt_loss_edm_fwd threw", error);
        }
    }

    public static int mdt_loss_edm_bwd(MemorySegment stream, float dLoss, MemorySegment denoised, MemorySegment target, MemorySegment weight, MemorySegment mask, MemorySegment dDenoised, MemorySegment workspace, long samples, long channels, long height, long width, long patch, MemorySegment errorRecord) {
        try {
            return (int) MDT_LOSS_EDM_BWD.invokeExact(stream, dLoss, denoised, target, weight, mask, dDenoised, workspace, samples, channels, height, width, patch, errorRecord);
        } catch (Throwable error) {
            throw new AssertionError("mdt_loss_edm_bwd threw", error);
        }
    }
}
