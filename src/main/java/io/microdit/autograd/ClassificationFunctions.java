package io.microdit.autograd;

import io.microdit.tensor.Tensor;

/**
 * Differentiable classification losses. The logits are small (N × K with K classes), so the forward and backward
 * run on the CPU through the tensors' values, in double, with the row maximum subtracted before exponentiating
 * (stable for any logit scale). The softmax is kept from the forward for the backward.
 */
public final class ClassificationFunctions {
    private ClassificationFunctions() {
    }

    /**
     * Mean softmax cross-entropy {@code (1/N) Σ_n [logsumexp(logits[n, :]) − logits[n, labels[n]]]} of logits
     * [N, K] against integer labels in [0, K); returns a one-element tensor. Backward:
     * {@code dlogits[n, k] = dOut · (softmax[n, k] − [k = labels[n]]) / N}.
     */
    public static Variable crossEntropy(Graph g, Variable logits, int[] labels) {
        Tensor value = logits.value();
        if (value.rank() != 2) {
            throw new IllegalArgumentException("crossEntropy: logits must be [N, K], got " + value.describe());
        }
        int n = value.dim(0), classes = value.dim(1);
        if (labels.length != n) {
            throw new IllegalArgumentException("crossEntropy: " + labels.length + " labels for " + n
                    + " rows of logits " + value.describe());
        }
        for (int i = 0; i < n; i++) {
            if (labels[i] < 0 || labels[i] >= classes) {
                throw new IllegalArgumentException("crossEntropy: labels[" + i + "] = " + labels[i]
                        + " is not a class in [0, " + classes + ")");
            }
        }
        float[] x = value.toFloatArray();
        double[] probabilities = new double[x.length];
        double total = 0;
        for (int i = 0; i < n; i++) {
            int row = i * classes;
            double max = Double.NEGATIVE_INFINITY;
            for (int k = 0; k < classes; k++) {
                max = Math.max(max, x[row + k]);
            }
            double sum = 0;
            for (int k = 0; k < classes; k++) {
                probabilities[row + k] = Math.exp(x[row + k] - max);
                sum += probabilities[row + k];
            }
            for (int k = 0; k < classes; k++) {
                probabilities[row + k] /= sum;
            }
            total += Math.log(sum) + max - x[row + labels[i]];
        }
        Tensor out = g.allocate(1);
        out.setFloat(0, (float) (total / n));
        int[] savedLabels = labels.clone();
        return g.result(out, dOut -> {
            double scale = dOut.getFloat(0) / (double) n;
            float[] dx = new float[x.length];
            for (int i = 0; i < n; i++) {
                for (int k = 0; k < classes; k++) {
                    int j = i * classes + k;
                    dx[j] = (float) (scale * (probabilities[j] - (k == savedLabels[i] ? 1 : 0)));
                }
            }
            logits.addGrad(g.allocate(value.shape()).copyFrom(dx), g.backend());
        }, logits);
    }
}
