package io.microdit.backend.cuda;

import io.microdit.backend.Checks;
import io.microdit.tensor.Tensor;

/**
 * Patchify, unpatchify and the sinusoidal position and timestep embeddings: drives kernels/embed.cu
 * (mdt_embed_*).
 */
final class CudaEmbed extends CudaOps {
    CudaEmbed(CudaBackend cuda) {
        super(cuda);
    }

    void patchify(Tensor image, int patch, Tensor out) {
        String op = "patchify";
        int[] dims = Checks.patchify(image, patch, out);
        check(DiffusionBindings.mdt_embed_patchify_fwd(stream, pointer(op, "image", image), pointer(op, "out", out),
                dims[0], dims[1], dims[2], dims[3], patch), op);
    }

    void patchifyBackward(Tensor dOut, int patch, Tensor dImage) {
        String op = "patchifyBackward";
        int[] dims = Checks.patchifyBackward(dOut, patch, dImage);
        check(DiffusionBindings.mdt_embed_patchify_bwd(stream, pointer(op, "dOut", dOut), pointer(op, "dImage", dImage),
                dims[0], dims[1], dims[2], dims[3], patch), op);
    }

    void unpatchify(Tensor tokens, int patch, Tensor out) {
        String op = "unpatchify";
        int[] dims = Checks.unpatchify(tokens, patch, out);
        check(DiffusionBindings.mdt_embed_unpatchify_fwd(stream, pointer(op, "tokens", tokens), pointer(op, "out", out),
                dims[0], dims[1], dims[2], dims[3], patch), op);
    }

    void unpatchifyBackward(Tensor dOut, int patch, Tensor dTokens) {
        String op = "unpatchifyBackward";
        int[] dims = Checks.unpatchifyBackward(dOut, patch, dTokens);
        check(DiffusionBindings.mdt_embed_unpatchify_bwd(stream, pointer(op, "dOut", dOut),
                pointer(op, "dTokens", dTokens), dims[0], dims[1], dims[2], dims[3], patch), op);
    }

    void positionEmbedding2d(int gridH, int gridW, float interpolationScale, Tensor out) {
        String op = "positionEmbedding2d";
        int dim = Checks.positionEmbedding2d(gridH, gridW, interpolationScale, out);
        check(DiffusionBindings.mdt_embed_position_2d(stream, pointer(op, "out", out), gridH, gridW, dim,
                interpolationScale), op);
        flops.add(op, (long) (gridH + gridW) * dim / 2);
    }

    void timestepEmbedding(Tensor t, Tensor out) {
        String op = "timestepEmbedding";
        int size = Checks.timestepEmbedding(t, out);
        int samples = t.dim(0);
        check(DiffusionBindings.mdt_embed_timestep(stream, pointer(op, "t", t), pointer(op, "out", out), samples, size),
                op);
        flops.add(op, 3L * samples * (size / 2));
    }
}
