package io.microdit.autograd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.backend.cpu.CpuBackend;
import io.microdit.tensor.Device;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

class GraphTest {
    private static final CpuBackend BACKEND = new CpuBackend(1);

    @AfterAll
    static void close() {
        BACKEND.close();
    }

    /**
     * The backward releases each consumed gradient and its scratch at once: a deep MLP's step peaks at its forward
     * activations plus a frontier of a few gradients, not at twice the forward — and the parameter gradients are
     * the ones computed without releasing anything (the released memory is poisoned in tests, so a use after
     * release would show as NaN).
     */
    @Test
    void backwardReleasesConsumedGradientsSoThePeakStaysNearTheForward() {
        int layers = 12, rows = 64, width = 32;
        for (Precision precision : Precision.values()) {
            Random random = new Random(5);
            try (MemoryScope params = new MemoryScope("params")) {
                List<Parameter> weights = new ArrayList<>();
                for (int i = 0; i < layers; i++) {
                    Tensor w = TestData.uniform(params, random, width, width);
                    BACKEND.scale(w, 0.3f, w);
                    weights.add(new Parameter("blocks." + i + ".weight", w));
                }
                Tensor x = TestData.uniform(params, random, rows, width);
                try (MemoryScope step = new MemoryScope("step")) {
                    Graph graph = new Graph(BACKEND, step, precision);
                    try (GradScope ignored = graph.recordGradients()) {
                        Variable h = graph.constant(x);
                        for (Parameter w : weights) {
                            h = ActivationFunctions.gelu(graph, MatmulFunctions.linear(graph, h, w, null), false);
                        }
                        // loss = 1ᵀ · h · 1
                        Variable rowSums = MatmulFunctions.matmul(graph, graph.constant(step.zeros(1, rows)
                                .fill(1f)), false, h, false);
                        Variable loss = MatmulFunctions.matmul(graph, rowSums, false,
                                graph.constant(step.zeros(width, 1).fill(1f)), false);
                        long forward = step.ownedBytes();
                        Device.CPU.resetPeak();
                        long before = Device.CPU.liveBytes();
                        loss.backward();
                        // The parameters' gradients are created during the backward (in their own scope).
                        long parameterGradients = (long) layers * width * width * 4;
                        long backwardPeak = Device.CPU.peakBytes() - before - parameterGradients;
                        long activation = (long) rows * width * 4;
                        // Without releasing, every layer's two gradients (GELU's and the linear's input's) would
                        // stay: 2·12 activations.
                        // In bf16 the CPU backend also upcasts a product's bf16 operands into scratch of its own.
                        long bound = (precision == Precision.BF16 ? 6 : 4) * activation;
                        assertTrue(backwardPeak <= bound, precision + ": the backward added "
                                + backwardPeak + " bytes at its peak to a forward of " + forward + " (one "
                                + "activation is " + activation + ")");
                        assertTrue(step.ownedBytes() <= forward + 2 * activation, precision + ": "
                                + step.ownedBytes() + " bytes left after backward, forward " + forward);
                    }
                }
                for (Parameter w : weights) {
                    for (float v : w.grad().toFloatArray()) {
                        assertTrue(Float.isFinite(v), w.name() + " has a non-finite gradient");
                    }
                }
            }
        }
    }

    @Test
    void nothingIsRecordedOutsideAGradScope() {
        try (MemoryScope params = new MemoryScope("params"); MemoryScope step = new MemoryScope("step")) {
            Parameter w = new Parameter("fc.weight", TestData.uniform(params, new Random(1), 2, 3));
            Graph graph = new Graph(BACKEND, step);
            Variable y = MatmulFunctions.linear(graph, graph.constant(TestData.uniform(step, new Random(2), 4, 3)),
                    w, null);
            assertFalse(graph.isRecording());
            assertFalse(y.requiresGrad());
            assertThrows(IllegalStateException.class, y::backward);
            assertNull(w.grad());
        }
    }

    @Test
    void gradientsAccumulateIntoParametersAcrossBackwardPasses() {
        Random random = new Random(4);
        try (MemoryScope params = new MemoryScope("params")) {
            Parameter w = new Parameter("blocks.0.mlp.w1.weight", TestData.uniform(params, random, 1, 3));
            Tensor x = TestData.uniform(params, random, 5, 3);
            float[] once = null;
            for (int pass = 1; pass <= 2; pass++) {
                long stepBytesBefore = Device.CPU.liveBytes();
                try (MemoryScope step = new MemoryScope("step")) {
                    Graph graph = new Graph(BACKEND, step);
                    try (GradScope ignored = graph.recordGradients()) {
                        Variable y = MatmulFunctions.linear(graph, graph.constant(x), w, null); // [5, 1]
                        Variable sum = MatmulFunctions.matmul(graph, graph.constant(step.zeros(1, 5).fill(1f)),
                                false, y, false);
                        sum.backward();
                    }
                }
                long parameterGradBytes = pass == 1 ? 3 * 4 : 0; // created once, in the parameter scope
                assertEquals(stepBytesBefore + parameterGradBytes, Device.CPU.liveBytes(),
                        "the step scope frees activations and intermediate gradients");
                float[] grad = w.grad().toFloatArray();
                if (pass == 1) {
                    once = grad;
                    // d/dw sum_r x[r]·w = sum_r x[r]
                    float[] xs = x.toFloatArray();
                    for (int c = 0; c < 3; c++) {
                        double expected = 0;
                        for (int r = 0; r < 5; r++) {
                            expected += xs[r * 3 + c];
                        }
                        assertEquals(expected, grad[c], 1e-5);
                    }
                } else {
                    for (int c = 0; c < 3; c++) {
                        assertEquals(2 * once[c], grad[c], 1e-5, "second pass adds to the first");
                    }
                }
            }
            assertEquals("blocks.0.mlp.w1.weight", w.name());
            w.zeroGrad(BACKEND);
            assertArrayEquals(new float[3], w.grad().toFloatArray());
        }
    }

    @Test
    void backwardNeedsAScalarAndARecordingScope() {
        try (MemoryScope params = new MemoryScope("params"); MemoryScope step = new MemoryScope("step")) {
            Parameter w = new Parameter("w", TestData.uniform(params, new Random(9), 2, 2));
            Graph graph = new Graph(BACKEND, step);
            try (GradScope ignored = graph.recordGradients()) {
                Variable y = MatmulFunctions.linear(graph, graph.constant(TestData.uniform(step, new Random(8), 3, 2)),
                        w, null);
                assertTrue(y.requiresGrad());
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, y::backward);
                assertTrue(e.getMessage().contains("scalar"));
                assertThrows(IllegalStateException.class, graph::recordGradients);
            }
        }
    }
}
