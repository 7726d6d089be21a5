package io.microdit.backend.cuda;

import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.Bf16GradientCases;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The _bf16grad kernels and the attention's f32 fallback with BF16 gradients (attention's dOut, dq, dk, dv;
 * LayerNorm's dOut and dx; LayerNorm+modulate's dOut; GELU's dOut and dx; the SwiGLU gate's dOut, da and db; the
 * gated residual's dF; the MoE combine's dH and dispatch's dOut; sumRows' x, _bf16in): bit for bit the kernels' F32
 * results on the upcast, BF16 outputs those results converted; with F32 outputs off the tensor cores, within the F32
 * tolerance of the CPU backend given the same BF16 gradients. Both backends refuse other dtype mixes with the same message.
 */
@Tag("emu")
class CudaBf16GradientTest extends CudaVersusCpu {
    @Test
    void everyBf16GradientGivesTheF32ResultOnItsUpcastConvertedAndAgreesWithTheCpu() {
        try (MemoryScope inputs = new MemoryScope("inputs")) {
            for (Bf16GradientCases.Case c : Bf16GradientCases.cases(inputs, 41)) {
                try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
                    Bf16GradientCases.assertBf16GradientsFollowTheRule(cuda, device, host, c);
                }
                if (c.f32Outputs() && !c.tensorCores()) {
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
            sameRefusal("swigluGateBackward", new Tensor[] {bf16, x, x, output(scope, 2, 3, 4), bf16},
                    a -> cpu.swigluGateBackward(a[0], a[1], a[2], a[3], a[4]),
                    a -> cuda.swigluGateBackward(a[0], a[1], a[2], a[3], a[4]));
            sameRefusal("gatedResidualBackward", new Tensor[] {bf16, gate, x, output(scope, 2, 4), bf16},
                    a -> cpu.gatedResidualBackward(a[0], a[1], a[2], a[3], a[4]),
                    a -> cuda.gatedResidualBackward(a[0], a[1], a[2], a[3], a[4]));
            sameRefusal("sumRows", new Tensor[] {ints, output(scope, 4)}, a -> cpu.sumRows(a[0], a[1], false),
                    a -> cuda.sumRows(a[0], a[1], false));
            sameRefusal("attentionBackward", new Tensor[] {bf16, x, x, x, x, random(scope, random, 2, 2, 3), ints,
                            bf16, bf16},
                    a -> cpu.attentionBackward(a[0], a[1], a[2], a[3], a[4], a[5], 2, a[6], a[7], a[8]),
                    a -> cuda.attentionBackward(a[0], a[1], a[2], a[3], a[4], a[5], 2, a[6], a[7], a[8]));
        }
    }
}
