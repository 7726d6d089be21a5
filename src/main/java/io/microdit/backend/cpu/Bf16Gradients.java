package io.microdit.backend.cpu;

import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * BF16 gradient operands of the CPU backend's backwards (a bf16 graph keeps a BF16 value's gradient in BF16): the
 * op runs its F32 code on the exact F32 upcast of each BF16 incoming gradient, into F32 scratch for each BF16
 * gradient output, which is then rounded once into it as convert rounds. So the results are by construction the
 * rule of {@link io.microdit.backend.Backend}: the F32 op on the upcast, converted. The CPU backend is the
 * reference; the memory saving is the GPU kernels', which read and write the bf16 gradients in place.
 */
final class Bf16Gradients {
    private final MemoryScope scope;
    /** Pairs of (BF16 output, its F32 scratch). */
    private final List<Tensor[]> outputs = new ArrayList<>();

    private Bf16Gradients(MemoryScope scope) {
        this.scope = scope;
    }

    /** Whether any of the (possibly null) gradient operands is BF16. */
    static boolean any(Tensor... gradients) {
        for (Tensor t : gradients) {
            if (t != null && t.dtype() == DType.BF16) {
                return true;
            }
        }
        return false;
    }

    /** Runs {@code f32Op}, which takes its gradient operands through {@link #in} and {@link #out}, then rounds. */
    static void run(Consumer<Bf16Gradients> f32Op) {
        try (MemoryScope scope = new MemoryScope("bf16-gradients")) {
            Bf16Gradients gradients = new Bf16Gradients(scope);
            f32Op.accept(gradients);
            for (Tensor[] pair : gradients.outputs) {
                pair[0].copyFrom(pair[1].to(DType.BF16, scope));
            }
        }
    }

    /** An incoming gradient as F32: itself, or the exact upcast of a BF16 one. */
    Tensor in(Tensor gradient) {
        return gradient.dtype() == DType.BF16 ? gradient.to(DType.F32, scope) : gradient;
    }

    /** A gradient output as F32: itself, or F32 scratch rounded into the BF16 one when the op has run. */
    Tensor out(Tensor gradient) {
        if (gradient.dtype() != DType.BF16) {
            return gradient;
        }
        Tensor wide = scope.zeros(DType.F32, gradient.shape());
        outputs.add(new Tensor[] {gradient, wide});
        return wide;
    }
}
