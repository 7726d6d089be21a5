package io.microdit.backend.cuda;

import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.Bf16InputCases;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The _bf16in kernels (LayerNorm's x, the gated residual's f, add's b, GELU's x, the SwiGLU gate's a and b, forward
 * and backward): bit for bit the kernels' results for the inputs' F32 upcast, and within the F32 tolerance of the CPU
 * backend given the same BF16 inputs (bf16 outputs are compared with the CPU's in CudaBf16OutputTest). Both backends
 * refuse other dtype mixes with the same message.
 */
@Tag("emu")
class CudaBf16InputTest extends CudaVersusCpu {
    @Test
    void everyBf16InputGivesTheResultOfItsUpcastAndAgreesWithTheCpu() {
        try (MemoryScope inputs = new MemoryScope("inputs")) {
            for (Bf16InputCases.Case c : Bf16InputCases.cases(inputs, 41)) {
                try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
                    Bf16InputCases.assertBf16InputIsItsUpcast(cuda, device, host, c);
                }
                if (c.f32Outputs()) {
                    compare(c.name() + " vs the CPU", c.bf16(), a -> c.op().apply(cpu, a),
                            a -> c.op().apply(cuda, a));
                }
            }
        }
    }

    @Test
    void bothBackendsRefuseOtherDtypeMixesAlike() {
        try (MemoryScope scope = new MemoryScope("bad")) {
            Random random = new Random(5);
            Tensor x = random(scope, random, 2, 3, 4), bf16 = x.to(DType.BF16, scope);
            Tensor gate = random(scope, random, 2, 4), ints = scope.zeros(DType.I32, 2, 3, 4);
            sameRefusal("swigluGate", new Tensor[] {bf16, x, output(scope, 2, 3, 4)},
                    a -> cpu.swigluGate(a[0], a[1], a[2]), a -> cuda.swigluGate(a[0], a[1], a[2]));
            sameRefusal("gatedResidual", new Tensor[] {bf16, gate, x, output(scope, 2, 3, 4)},
                    a -> cpu.gatedResidual(a[0], a[1], a[2], a[3]), a -> cuda.gatedResidual(a[0], a[1], a[2], a[3]));
            sameRefusal("mul", new Tensor[] {x, bf16, output(scope, 2, 3, 4)},
                    a -> cpu.mul(a[0], a[1], a[2]), a -> cuda.mul(a[0], a[1], a[2]));
            sameRefusal("layerNorm", new Tensor[] {ints, output(scope, 2, 3, 4), output(scope, 6), output(scope, 6)},
                    a -> cpu.layerNorm(a[0], null, 1e-6f, a[1], a[2], a[3]),
                    a -> cuda.layerNorm(a[0], null, 1e-6f, a[1], a[2], a[3]));
            sameRefusal("geluBackward", new Tensor[] {ints, bf16, output(scope, 2, 3, 4)},
                    a -> cpu.geluBackward(a[0], a[1], a[2], false), a -> cuda.geluBackward(a[0], a[1], a[2], false));
        }
    }
}
