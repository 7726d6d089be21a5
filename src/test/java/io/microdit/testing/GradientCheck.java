package io.microdit.testing;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.autograd.GradScope;
import io.microdit.autograd.Graph;
import io.microdit.autograd.Variable;
import io.microdit.backend.Backend;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

/**
 * Checks an autograd op two ways: its forward against a direct float64 reference, and its backward against
 * central finite differences of that float64 reference. The loss is {@code sum(output · R)} for a random R, so
 * every output element's gradient path is exercised.
 *
 * <pre>
 * GradientCheck.of(backend, seed)
 *     .input("x", x, 3, 5)               // differentiable input: values and shape
 *     .constant("w", w, 5)               // input that receives no gradient
 *     .check((g, in) -> MyOps.op(g, in[0], in[1]), ref -> referenceOutput(ref[0], ref[1]));
 * </pre>
 */
public final class GradientCheck {
    /** The op under test, on variables of a recording graph. */
    @FunctionalInterface
    public interface Op {
        Variable apply(Graph graph, Variable[] inputs);
    }

    /** A direct float64 implementation of the op: inputs (flattened) to the output (flattened). */
    @FunctionalInterface
    public interface Reference {
        double[] apply(double[][] inputs);
    }

    private record Input(String name, float[] values, int[] shape, boolean differentiable) {
    }

    private final Backend backend;
    private final Random random;
    private final List<Input> inputs = new ArrayList<>();
    private double forwardTolerance = 1e-4;
    private double gradientTolerance = 2e-3;
    private double step = 1e-4;
    private int maxElementsPerInput = 96;

    private GradientCheck(Backend backend, long seed) {
        this.backend = backend;
        this.random = new Random(seed);
    }

    public static GradientCheck of(Backend backend, long seed) {
        return new GradientCheck(backend, seed);
    }

    public GradientCheck input(String name, float[] values, int... shape) {
        inputs.add(new Input(name, values, shape, true));
        return this;
    }

    public GradientCheck constant(String name, float[] values, int... shape) {
        inputs.add(new Input(name, values, shape, false));
        return this;
    }

    /** Relative tolerance (to the largest reference magnitude) of the forward; default 1e-4. */
    public GradientCheck forwardTolerance(double tolerance) {
        this.forwardTolerance = tolerance;
        return this;
    }

    /** Relative tolerance (to the largest numeric gradient of each input) of the backward; default 2e-3. */
    public GradientCheck gradientTolerance(double tolerance) {
        this.gradientTolerance = tolerance;
        return this;
    }

    /** Finite-difference step in float64; default 1e-4. */
    public GradientCheck step(double h) {
        this.step = h;
        return this;
    }

    /** How many elements of each input are perturbed (chosen at random when the input is larger); default 96. */
    public GradientCheck maxElementsPerInput(int n) {
        this.maxElementsPerInput = n;
        return this;
    }

    public void check(Op op, Reference reference) {
        double[][] referenceInputs = new double[inputs.size()][];
        for (int i = 0; i < inputs.size(); i++) {
            referenceInputs[i] = TestData.toDouble(inputs.get(i).values());
        }
        double[] expected = reference.apply(referenceInputs);
        try (MemoryScope scope = new MemoryScope("gradient-check")) {
            Graph graph = new Graph(backend, scope);
            Variable[] variables = new Variable[inputs.size()];
            float[] actual;
            float[] seed;
            try (GradScope ignored = graph.recordGradients()) {
                for (int i = 0; i < inputs.size(); i++) {
                    Input in = inputs.get(i);
                    Tensor t = Tensor.of(scope, in.values().clone(), in.shape());
                    variables[i] = in.differentiable() ? graph.leaf(t) : graph.constant(t);
                }
                Variable output = op.apply(graph, variables);
                actual = output.value().toFloatArray();
                assertTrue(actual.length == expected.length, "output has " + actual.length
                        + " elements, the reference " + expected.length);
                double forwardError = TestData.maxRelativeError(actual, expected);
                assertTrue(forwardError <= forwardTolerance, "forward differs from the float64 reference: "
                        + "max relative error " + forwardError + " > " + forwardTolerance);
                seed = TestData.uniform(random, actual.length);
                graph.backward(output, Tensor.of(scope, seed, output.shape()));
            }
            for (int i = 0; i < inputs.size(); i++) {
                if (inputs.get(i).differentiable()) {
                    checkInput(i, variables[i], referenceInputs, reference, seed);
                }
            }
        }
    }

    private void checkInput(int index, Variable variable, double[][] referenceInputs, Reference reference,
                            float[] seed) {
        Input in = inputs.get(index);
        int n = in.values().length;
        float[] analytic = variable.grad() == null ? new float[n] : variable.grad().toFloatArray();
        int[] elements = pickElements(n);
        double[] numeric = new double[elements.length];
        double scale = 1e-6;
        for (int e = 0; e < elements.length; e++) {
            double[] x = referenceInputs[index];
            int j = elements[e];
            double saved = x[j];
            x[j] = saved + step;
            double plus = dot(reference.apply(referenceInputs), seed);
            x[j] = saved - step;
            double minus = dot(reference.apply(referenceInputs), seed);
            x[j] = saved;
            numeric[e] = (plus - minus) / (2 * step);
            scale = Math.max(scale, Math.abs(numeric[e]));
        }
        double worst = 0;
        int worstElement = -1;
        for (int e = 0; e < elements.length; e++) {
            double err = Math.abs(analytic[elements[e]] - numeric[e]) / scale;
            if (!(err <= worst)) {
                worst = err;
                worstElement = e;
            }
        }
        final double w = worst;
        final int we = worstElement;
        assertTrue(worst <= gradientTolerance, () -> "gradient of input '" + in.name() + "' "
                + Arrays.toString(in.shape()) + " differs from finite differences: element " + elements[we]
                + " analytic " + analytic[elements[we]] + " numeric " + numeric[we] + ", relative error " + w
                + " > " + gradientTolerance);
    }

    private int[] pickElements(int n) {
        if (n <= maxElementsPerInput) {
            int[] all = new int[n];
            Arrays.setAll(all, i -> i);
            return all;
        }
        return random.ints(0, n).distinct().limit(maxElementsPerInput).toArray();
    }

    private static double dot(double[] a, float[] b) {
        double sum = 0;
        for (int i = 0; i < a.length; i++) {
            sum += a[i] * b[i];
        }
        return sum;
    }
}
