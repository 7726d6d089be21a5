package io.microdit.backend.cuda;

import io.microdit.backend.Checks;
import io.microdit.tensor.Tensor;

/**
 * The deferred mask's row gather and scatter and the mean over tokens: drives kernels/tokens.cu
 * (mdt_tokens_*); token ids are checked on the device into the backend's error record.
 */
final class CudaTokens extends CudaOps {
    CudaTokens(CudaBackend cuda) {
        super(cuda);
    }

    void gatherRows(Tensor x, Tensor ids, Tensor out) {
        String op = "gatherRows";
        int[] s = Checks.gatherRows(x, ids, out);
        int samples = s[0], tokens = s[1], kept = s[2], width = s[3];
        check(TokenBindings.mdt_tokens_gather_rows(stream, pointer(op, "x", x), pointer(op, "ids", ids),
                pointer(op, "out", out), samples, tokens, kept, width, errorRecord()), op);
    }

    void scatterRows(Tensor x, Tensor ids, Tensor out) {
        String op = "scatterRows";
        int[] s = Checks.scatterRows(x, ids, out);
        int samples = s[0], tokens = s[1], kept = s[2], width = s[3];
        check(TokenBindings.mdt_tokens_scatter_rows(stream, pointer(op, "x", x), pointer(op, "ids", ids),
                pointer(op, "out", out), samples, tokens, kept, width, errorRecord()), op);
    }

    void meanTokens(Tensor x, Tensor out) {
        String op = "meanTokens";
        int[] s = Checks.meanTokens(x, out);
        int samples = s[0], tokens = s[1], width = s[2];
        check(TokenBindings.mdt_tokens_mean_fwd(stream, pointer(op, "x", x), pointer(op, "out", out), samples, tokens,
                width), op);
        flops.add(op, x.numel());
    }

    void meanTokensBackward(Tensor dOut, Tensor dx) {
        String op = "meanTokensBackward";
        int[] s = Checks.meanTokensBackward(dOut, dx);
        int samples = s[0], tokens = s[1], width = s[2];
        check(TokenBindings.mdt_tokens_mean_bwd(stream, pointer(op, "dOut", dOut), pointer(op, "dx", dx), samples,
                tokens, width), op);
        flops.add(op, (long) samples * width);
    }
}
