package io.microdit.autograd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.backend.cpu.CpuBackend;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.GradientCheck;
import io.microdit.testing.TestData;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class ClassificationFunctionsTest {
    private static final CpuBackend BACKEND = new CpuBackend();

    @AfterAll
    static void close() {
        BACKEND.close();
    }

    /** The textbook definition: −log(exp(x_y) / Σ exp(x_k)), averaged, without the max shift. */
    private static double reference(double[] logits, int[] labels, int classes) {
        double total = 0;
        for (int n = 0; n < labels.length; n++) {
            double sum = 0;
            for (int k = 0; k < classes; k++) {
                sum += Math.exp(logits[n * classes + k]);
            }
            total -= Math.log(Math.exp(logits[n * classes + labels[n]]) / sum);
        }
        return total / labels.length;
    }

    @ParameterizedTest
    @CsvSource({"1,2", "3,10", "17,3", "5,33"})
    void crossEntropyGradient(int rows, int classes) {
        Random random = new Random(rows * 31L + classes);
        float[] logits = TestData.uniform(random, rows * classes);
        for (int i = 0; i < logits.length; i++) {
            logits[i] *= 3;
        }
        int[] labels = new int[rows];
        for (int i = 0; i < rows; i++) {
            labels[i] = random.nextInt(classes);
        }
        GradientCheck.of(BACKEND, rows + classes)
                .input("logits", logits, rows, classes)
                .check((g, in) -> ClassificationFunctions.crossEntropy(g, in[0], labels),
                        ref -> new double[] {reference(ref[0], labels, classes)});
    }

    @Test
    void largeLogitsStayFinite() {
        try (MemoryScope scope = new MemoryScope("test")) {
            Graph g = new Graph(BACKEND, scope);
            Tensor logits = Tensor.of(scope, new float[] {1000f, -1000f, 0f, 0f, 500f, 500f}, 2, 3);
            float loss = ClassificationFunctions.crossEntropy(g, g.constant(logits), new int[] {0, 2})
                    .value().getFloat(0);
            // Row 1 is certain and right (0); row 2 splits between classes 1 and 2: log 2.
            assertEquals(Math.log(2) / 2, loss, 1e-6);
            assertTrue(Float.isFinite(loss));
        }
    }

    @Test
    void badLabelsAreRejected() {
        try (MemoryScope scope = new MemoryScope("test")) {
            Graph g = new Graph(BACKEND, scope);
            Variable logits = g.constant(Tensor.of(scope, new float[] {1, 2, 3, 4, 5, 6}, 2, 3));
            IllegalArgumentException outOfRange = assertThrows(IllegalArgumentException.class,
                    () -> ClassificationFunctions.crossEntropy(g, logits, new int[] {0, 3}));
            assertTrue(outOfRange.getMessage().contains("labels[1] = 3"), outOfRange.getMessage());
            IllegalArgumentException count = assertThrows(IllegalArgumentException.class,
                    () -> ClassificationFunctions.crossEntropy(g, logits, new int[] {0}));
            assertTrue(count.getMessage().contains("crossEntropy"), count.getMessage());
        }
    }
}
