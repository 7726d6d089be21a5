package io.microdit.diffusion;

import io.microdit.autograd.Graph;
import io.microdit.autograd.Precision;
import io.microdit.backend.Backend;
import io.microdit.model.MaskingMode;
import io.microdit.model.MicroDiT;
import io.microdit.model.MicroDiTConfig;
import io.microdit.random.Philox;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;

/**
 * The official sampler: EDM's deterministic Heun (Algorithm 2, S_churn = 0) on the Karras schedule, with a final
 * Euler step to σ = 0 (so 2·steps − 1 network evaluations), classifier-free guidance on F with the all-zero caption
 * embedding as the unconditional input ({@code F = F_u + w·(F_c − F_u)}), and the state kept in float64 while the
 * network sees float32. The start is {@code x = σ_max·ε} with ε from Philox (seed, stream).
 *
 * <p>The state stays on the host; each network evaluation writes its input to the backend once and reads F back
 * once. The captions are uploaded once per {@link #sample} call.
 */
public final class HeunSampler {
    /** The schedule's last nonzero noise level (EDM's default). */
    public static final double SIGMA_MIN = 0.002;
    /** The schedule's first noise level, where sampling starts from pure noise (EDM's default). */
    public static final double SIGMA_MAX = 80;
    /** The Karras schedule's exponent: larger values spend more steps at low noise (EDM's default). */
    public static final double RHO = 7;

    private final MicroDiT model;
    private final Backend backend;
    private final Edm edm;
    private final Precision precision;

    /** A sampler whose network evaluations run in F32. */
    public HeunSampler(MicroDiT model, Backend backend, Edm edm) {
        this(model, backend, edm, Precision.F32);
    }

    /** A sampler whose network evaluations compute their matmuls and attention in {@code precision}. */
    public HeunSampler(MicroDiT model, Backend backend, Edm edm, Precision precision) {
        this.model = model;
        this.backend = backend;
        this.edm = edm;
        this.precision = precision;
    }

    /**
     * Samples one image per caption embedding.
     *
     * @param captions [N, L, Cc] conditioning, a host tensor or one of the backend's
     * @param guidance the CFG scale w; 1 runs the conditional model alone
     * @return the images [N, C, H, W], row-major
     */
    public float[] sample(Tensor captions, int steps, double guidance, long seed, long stream) {
        try (MemoryScope scope = backend.scope("sampler-captions")) {
            return sampleOnBackend(backend.upload(captions, scope), steps, guidance, seed, stream);
        }
    }

    private float[] sampleOnBackend(Tensor captions, int steps, double guidance, long seed, long stream) {
        MicroDiTConfig c = model.config();
        int n = captions.dim(0);
        int perImage = c.inChannels() * c.inputSize() * c.inputSize();
        float[] noise = new float[n * perImage];
        Philox.fillNormal(seed, stream, 0, noise);
        double[] x = new double[noise.length];
        double[] sigmas = Edm.karrasSigmas(steps, SIGMA_MIN, SIGMA_MAX, RHO);
        for (int i = 0; i < x.length; i++) {
            x[i] = noise[i] * sigmas[0];
        }
        double[] derivative = new double[x.length];
        double[] next = new double[x.length];
        for (int i = 0; i < steps; i++) {
            double sigma = sigmas[i], sigmaNext = sigmas[i + 1];
            double[] denoised = denoise(x, sigma, captions, guidance);
            for (int j = 0; j < x.length; j++) {
                derivative[j] = (x[j] - denoised[j]) / sigma;
                next[j] = x[j] + (sigmaNext - sigma) * derivative[j];
            }
            if (sigmaNext > 0) {
                double[] corrected = denoise(next, sigmaNext, captions, guidance);
                for (int j = 0; j < x.length; j++) {
                    double derivativeNext = (next[j] - corrected[j]) / sigmaNext;
                    next[j] = x[j] + (sigmaNext - sigma) * 0.5 * (derivative[j] + derivativeNext);
                }
            }
            double[] swap = x;
            x = next;
            next = swap;
        }
        float[] out = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            out[i] = (float) x[i];
        }
        return out;
    }

    /** D(x; σ) = c_skip·x + c_out·F, F guided. */
    double[] denoise(double[] x, double sigma, Tensor captions, double guidance) {
        MicroDiTConfig c = model.config();
        int n = captions.dim(0);
        boolean guided = guidance != 1.0;
        int batch = guided ? 2 * n : n;
        int size = c.inputSize();
        double cIn = edm.cIn(sigma);
        try (MemoryScope scope = backend.scope("sampler-step")) {
            Graph g = new Graph(backend, scope, precision);
            Tensor input = g.output(batch, c.inChannels(), size, size);
            float[] values = new float[batch * x.length / n];
            for (int i = 0; i < x.length; i++) {
                values[i] = (float) (cIn * x[i]);
                if (guided) {
                    values[i + x.length] = values[i];
                }
            }
            backend.write(input, values);
            Tensor cNoise = g.output(batch);
            backend.fill(cNoise, (float) edm.cNoise(sigma));
            Tensor conditioning = captions;
            if (guided) { // the second half stays zero: the unconditional input
                conditioning = g.allocate(batch, captions.dim(1), captions.dim(2));
                backend.copy(captions, conditioning.rows(0, n));
            }
            float[] f = backend.read(model.forward(g, g.constant(input), cNoise, g.constant(conditioning), null,
                    MaskingMode.NONE).value());
            double cSkip = edm.cSkip(sigma), cOut = edm.cOut(sigma);
            double[] denoised = new double[x.length];
            for (int i = 0; i < x.length; i++) {
                double network = guided ? f[i + x.length] + guidance * (f[i] - f[i + x.length]) : f[i];
                denoised[i] = cSkip * x[i] + cOut * network;
            }
            return denoised;
        }
    }
}
