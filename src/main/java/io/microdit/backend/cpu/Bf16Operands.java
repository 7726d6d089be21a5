package io.microdit.backend.cpu;

import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * BF16 operands of the CPU backend's ops (a bf16 graph stores activations and a BF16 value's gradient in BF16): the
 * op runs its F32 code on the exact F32 upcast of each BF16 input, into F32 scratch for each BF16 output, which is
 * then rounded once into it as convert rounds. So the results are by construction the rule of
 * {@link io.microdit.backend.Backend}: the F32 op on the upcast, converted. The CPU backend is the reference; the
 * memory saving is the GPU kernels', which read and write the bf16 tensors in place.
 */
final class Bf16Operands {
    private final MemoryScope scope;
    /** Pairs of (BF16 output, its F32 scratch). */
    private final List<Tensor[]> outputs = new ArrayList<>();

    private Bf16Operands(MemoryScope scope) {
        this.scope = scope;
    }

    /** Whether any of the (possibly null) operands is BF16. */
    static boolean any(Tensor... operands) {
        for (Tensor t : operands) {
            if (t != null && t.dtype() == DType.BF16) {
                return true;
            }
        }
        return false;
    }

    /** Runs {@code f32Op}, which takes its BF16 operands through {@link #in} and {@link #out}, then rounds. */
    static void run(Consumer<Bf16Operands> f32Op) {
        try (MemoryScope scope = new MemoryScope("bf16-operands")) {
            Bf16Operands operands = new Bf16Operands(scope);
            f32Op.accept(operands);
            for (Tensor[] pair : operands.outputs) {
                pair[0].copyFrom(pair[1].to(DType.BF16, scope));
            }
        }
    }

    /** An input as F32: itself, or the exact upcast of a BF16 one. */
    Tensor in(Tensor input) {
        return input.dtype() == DType.BF16 ? input.to(DType.F32, scope) : input;
    }

    /** An output as F32: itself, or F32 scratch rounded into the BF16 one when the op has run. */
    Tensor out(Tensor output) {
        if (output.dtype() != DType.BF16) {
            return output;
        }
        Tensor wide = scope.zeros(DType.F32, output.shape());
        outputs.add(new Tensor[] {output, wide});
        return wide;
    }
}
