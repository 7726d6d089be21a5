package io.microdit.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.microdit.autograd.ElementwiseFunctions;
import io.microdit.autograd.GradScope;
import io.microdit.autograd.Graph;
import io.microdit.autograd.MatmulFunctions;
import io.microdit.autograd.Parameter;
import io.microdit.autograd.Precision;
import io.microdit.autograd.Variable;
import io.microdit.backend.Backend;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Backward products write their gradient contribution where it belongs ({@link Variable#gradientTarget}): a variable
 * read by two linears, and a parameter's first gradient, get no temporary added by an axpy, and the gradient has the
 * bits of the product-then-axpy sum it replaces (the same addition, old + contribution, on both backends while the
 * CPU's product is one 512-deep block; within float tolerance past that).
 */
@Tag("emu")
class GradientInPlaceTest extends CudaVersusCpu {
    private static final int ROWS = 37, IN = 24, OUT = 40;

    @Test
    void aSecondContributionIsAddedByTheProductOnBothBackends() {
        for (Backend be : new Backend[] {cpu, cuda}) {
            twoLinearsShareAnInput(be, OUT, 0f);
        }
    }

    @Test
    void pastOneCpuBlockTheCpuSumIsWithinTolerance() {
        // K = 700 output features: the CPU adds the old gradient to its first 512-deep block's partial sum.
        twoLinearsShareAnInput(cpu, 700, 1e-5f);
    }

    /**
     * x (BF16, as a bf16 graph's normalised rows) feeds linears A and B whose F32 outputs are added; the backward
     * reaches B first, whose dx is x's first contribution (BF16 rounded), then A, which adds into the promoted F32
     * gradient. Expected: widen(bf16(dyB·W_B)) + dyA·W_A, each product on bf16 operands in F32, added as axpy adds.
     */
    private static void twoLinearsShareAnInput(Backend be, int out, float tolerance) {
        Random random = new Random(out * 7L + (be == cpu ? 1 : 2));
        try (MemoryScope host = new MemoryScope("host"); MemoryScope scope = be.scope("in-place")) {
            Tensor xHost = random(host, random, ROWS, IN).to(DType.BF16, host);
            Tensor wA = random(host, random, out, IN), wB = random(host, random, out, IN);
            Tensor seed = random(host, random, ROWS, out);
            Graph g = new Graph(be, scope, Precision.BF16);
            Variable x = g.leaf(be.upload(xHost, scope));
            Variable a = g.leaf(be.upload(wA, scope)), b = g.leaf(be.upload(wB, scope));
            be.flops().reset();
            try (GradScope ignored = g.recordGradients()) {
                Variable sum = ElementwiseFunctions.add(g, MatmulFunctions.linear(g, x, a, null),
                        MatmulFunctions.linear(g, x, b, null));
                g.backward(sum, be.upload(seed, scope));
            }
            assertEquals(0, be.flops().of("axpy"), be.name() + ": a contribution was added by an axpy");
            assertEquals(DType.F32, x.grad().dtype());

            Tensor dy = be.upload(seed.to(DType.BF16, host), scope);
            Tensor fromB = Tensor.empty(scope, DType.F32, ROWS, IN), fromA = Tensor.empty(scope, DType.F32, ROWS, IN);
            be.matmul(dy, false, be.upload(wB.to(DType.BF16, host), scope), false, null, fromB, false);
            Tensor roundedB = Tensor.empty(scope, DType.BF16, ROWS, IN);
            be.convert(fromB, roundedB);
            be.convert(roundedB, fromB);
            be.matmul(dy, false, be.upload(wA.to(DType.BF16, host), scope), false, null, fromA, false);
            be.axpy(1f, fromA, fromB);
            assertClose(be.read(fromB), be.read(x.grad()), tolerance, be.name() + " dx");
            // The weights' first gradients are written by their products: dW = dyᵀ·x, the same bits as into zeros.
            Tensor dW = Tensor.empty(scope, DType.F32, out, IN);
            be.matmul(dy, true, be.upload(xHost, scope), false, null, dW, false);
            assertClose(be.read(dW), be.read(a.grad()), 0f, be.name() + " dW");
        }
    }

    @Test
    void aParametersFirstGradientIsTheProductItself() {
        for (Backend be : new Backend[] {cpu, cuda}) {
            Random random = new Random(be == cpu ? 3 : 4);
            try (MemoryScope host = new MemoryScope("host"); MemoryScope params = be.scope("params");
                 MemoryScope scope = be.scope("in-place")) {
                int experts = 3, rows = 9, dim = 12, hidden = 20;
                Tensor rowsHost = random(host, random, experts, rows, dim).to(DType.BF16, host);
                Parameter w = new Parameter("w1", be.upload(random(host, random, experts, dim, hidden), params));
                Tensor seed = random(host, random, experts, rows, hidden);
                Graph g = new Graph(be, scope, Precision.BF16);
                Variable routed = g.constant(be.upload(rowsHost, scope));
                be.flops().reset();
                try (GradScope ignored = g.recordGradients()) {
                    g.backward(MatmulFunctions.matmul(g, routed, false, w, false), be.upload(seed, scope));
                }
                assertEquals(0, be.flops().of("axpy"), be.name() + ": the first gradient was added by an axpy");
                Tensor expected = Tensor.empty(scope, DType.F32, experts, dim, hidden);
                be.matmul(be.upload(rowsHost, scope), true, be.upload(seed.to(DType.BF16, host), scope), false, null,
                        expected, false);
                assertClose(be.read(expected), be.read(w.grad()), 0f, be.name() + " dW");
            }
        }
    }

    /** Bit for bit when {@code tolerance} is 0, else within it relative to the largest magnitude. */
    private static void assertClose(float[] expected, float[] actual, float tolerance, String what) {
        if (tolerance == 0f) {
            assertArrayEquals(expected, actual, what);
            return;
        }
        float scale = 0f;
        for (float v : expected) {
            scale = Math.max(scale, Math.abs(v));
        }
        assertArrayEquals(expected, actual, tolerance * scale, what);
    }
}
