package io.microdit.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.autograd.GradScope;
import io.microdit.autograd.Graph;
import io.microdit.autograd.Parameter;
import io.microdit.autograd.Precision;
import io.microdit.autograd.Variable;
import static io.microdit.backend.cuda.FusedOpCheck.on;
import static io.microdit.backend.cuda.FusedOpCheck.poisoned;
import static io.microdit.backend.cuda.FusedOpCheck.results;
import static io.microdit.backend.cuda.FusedOpCheck.sameBits;

import io.microdit.backend.Backend;
import io.microdit.diffusion.Edm;
import io.microdit.diffusion.EdmObjective;
import io.microdit.model.MaskingMode;
import io.microdit.model.MicroDiT;
import io.microdit.model.MicroDiTConfig;
import io.microdit.nn.ParameterStore;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
import java.lang.reflect.InvocationHandler;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The gathered LayerNorm (the deferred mask's kept rows normalised in place) and its backward into x's full-size
 * gradient, on both backends: bit for bit gatherRows + layerNorm forward and layerNormBackward + scatterRows (+ axpy
 * when accumulating) backward on each backend, for F32 and BF16 outputs and incoming gradients, with and without a
 * weight; CUDA against the CPU; and bad ids refused, naming the argument, the same way on both.
 */
@Tag("emu")
class CudaGatherLayerNormTest extends CudaVersusCpu {
    /** The outputs the fused and the separate ops are compared on, in {@link FusedOpCheck#results}'s order. */
    private static final String[] RESULT_NAMES = {"out", "mean", "rstd", "dx", "dWeight"};

    private static final float EPS = 1e-6f;

    /** The inputs of one case, on the host. */
    private record Case(int samples, int tokens, int kept, int width, Tensor x, Tensor ids, Tensor weight,
                        Tensor dOut, Tensor grad, Tensor dWeight, DType outType, boolean accumulate) {
        int[] shape() {
            return new int[] {samples, tokens, width};
        }

        int rows() {
            return samples * kept;
        }
    }

    @ParameterizedTest
    @CsvSource({"3,7,4,37,true,false,false", "3,7,4,37,true,true,false", "3,7,4,37,false,true,true",
        "2,16,4,300,true,true,true", "2,16,4,300,true,false,true", "1,1,1,1,true,false,false",
        "2,9,9,130,false,false,false", "4,5,0,33,true,true,false", "2,64,16,768,true,true,false"})
    void fusedEqualsGatherThenLayerNormOnBothBackendsAndCudaMatchesCpu(int samples, int tokens, int kept, int width,
                                                                        boolean affine, boolean bf16,
                                                                        boolean accumulate) {
        Random random = new Random(samples * 7919L + tokens * 131L + kept * 17L + width + (affine ? 1 : 0)
                + (bf16 ? 2 : 0) + (accumulate ? 4 : 0));
        try (MemoryScope host = new MemoryScope("inputs")) {
            int[] shape = {samples, tokens, width};
            Tensor x = uniform(host, random, 3, shape);
            for (long i = 0; i < x.numel(); i++) {
                x.setFloat(i, x.getFloat(i) + 2); // a mean far from zero
            }
            DType operand = bf16 ? DType.BF16 : DType.F32;
            Case c = new Case(samples, tokens, kept, width, x, keepIds(host, random, samples, kept, tokens),
                    affine ? random(host, random, width) : null,
                    random(host, random, samples, kept, width).to(operand, host), random(host, random, shape),
                    affine ? random(host, random, width) : null, operand, accumulate);
            Map<String, Tensor> cpuFused = fused(cpu, c, host), cudaFused = fused(cuda, c, host);
            sameBits(separate(cpu, c, host), cpuFused, "CPU", "gather + LayerNorm");
            sameBits(separate(cuda, c, host), cudaFused, "CUDA", "gather + LayerNorm");
            for (Map.Entry<String, Tensor> e : cpuFused.entrySet()) {
                float[] expected = e.getValue().toFloatArray(), got = cudaFused.get(e.getKey()).toFloatArray();
                // bf16 results may round the other way where the backends' f32 values differ in the last bits.
                double tolerance = e.getValue().dtype() == DType.BF16 ? 1e-2 : TOLERANCE;
                double error = TestData.maxRelativeError(got, TestData.toDouble(expected));
                assertTrue(error <= tolerance, () -> e.getKey() + ": CUDA differs from the CPU by " + error);
            }
        }
    }

    /** An id outside [0, T) is refused by the forward and the backward, naming the op and ids' entry, alike. */
    @Test
    void anIdOutOfRangeIsRefusedNamingIt() {
        Random random = new Random(5);
        int samples = 2, tokens = 6, kept = 3, width = 20;
        for (int bad : new int[] {6, -1}) {
            try (MemoryScope host = new MemoryScope("inputs")) {
                Tensor ids = keepIds(host, random, samples, kept, tokens);
                ids.setInt(4, bad);
                Tensor[] arguments = {random(host, random, samples, tokens, width), ids, random(host, random, width),
                    output(host, DType.BF16, samples, kept, width), output(host, samples * kept),
                    output(host, samples * kept)};
                String expected = "gatherLayerNorm: ids[1, 1] = " + bad + " is out of range [0, " + tokens + ")";
                sameRefusal("gatherLayerNorm", arguments,
                        a -> cpu.gatherLayerNorm(a[0], a[1], a[2], EPS, a[3], a[4], a[5]),
                        a -> {
                            cuda.gatherLayerNorm(a[0], a[1], a[2], EPS, a[3], a[4], a[5]);
                            cuda.read(a[4]);
                        });
                assertEquals(expected, assertThrows(IllegalArgumentException.class,
                        () -> cpu.gatherLayerNorm(arguments[0], ids, arguments[2], EPS, arguments[3], arguments[4],
                                arguments[5])).getMessage());
                Tensor[] backward = {random(host, random, samples, kept, width), arguments[0], ids, arguments[2],
                    random(host, random, samples * kept), random(host, random, samples * kept),
                    output(host, samples, tokens, width), output(host, width)};
                sameRefusal("gatherLayerNormBackward", backward,
                        a -> cpu.gatherLayerNormBackward(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], false),
                        a -> {
                            cuda.gatherLayerNormBackward(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], false);
                            cuda.read(a[6]);
                        });
            }
        }
    }

    /** Ids of the wrong shape or dtype, more kept rows than tokens, or outputs not of the kept rows' shape. */
    @Test
    void badShapesAreRefusedNamingTheArgument() {
        Random random = new Random(6);
        int samples = 2, tokens = 6, kept = 3, width = 20;
        try (MemoryScope host = new MemoryScope("inputs")) {
            Tensor x = random(host, random, samples, tokens, width);
            Tensor ids = keepIds(host, random, samples, kept, tokens);
            Tensor out = output(host, samples, kept, width);
            Tensor mean = output(host, samples * kept), rstd = output(host, samples * kept);
            Map<String, Tensor[]> cases = new LinkedHashMap<>();
            cases.put("ids must have shape [2, *]", new Tensor[] {x, keepIds(host, random, 1, kept, tokens), out,
                mean, rstd});
            cases.put("ids must be I32", new Tensor[] {x, random(host, random, samples, kept), out, mean, rstd});
            cases.put("ids ", new Tensor[] {x,
                keepIds(host, random, samples, tokens + 1, tokens + 1), output(host, samples, tokens + 1, width),
                output(host, samples * (tokens + 1)), output(host, samples * (tokens + 1))});
            cases.put("out must have shape [2, 3, 20]", new Tensor[] {x, ids, output(host, samples, tokens, width),
                mean, rstd});
            cases.put("mean ", new Tensor[] {x, ids, out, output(host, samples * tokens), rstd});
            for (Map.Entry<String, Tensor[]> e : cases.entrySet()) {
                Tensor[] a = e.getValue();
                for (Backend be : new Backend[] {cpu, cuda}) {
                    try (MemoryScope scope = be.scope("shapes")) {
                        Tensor[] on = new Tensor[a.length];
                        for (int i = 0; i < a.length; i++) {
                            on[i] = on(be, scope, a[i]);
                        }
                        String message = assertThrows(IllegalArgumentException.class,
                                () -> be.gatherLayerNorm(on[0], on[1], null, EPS, on[2], on[3], on[4])).getMessage();
                        assertTrue(message.startsWith("gatherLayerNorm: " + e.getKey()), be.name() + ": " + message);
                    }
                }
            }
            String message = assertThrows(IllegalArgumentException.class, () -> cpu.gatherLayerNormBackward(
                    output(host, samples, tokens, width), x, ids, null, mean, rstd, output(host, samples, tokens,
                            width), null, false)).getMessage();
            assertTrue(message.startsWith("gatherLayerNormBackward: dOut must have shape [2, 3, 20]"), message);
        }
    }

    /**
     * A whole training step of a tiny MicroDiT whose patch-mixer is narrower than the backbone (24 against 32, so
     * patch_mixer_map_xout exists and reads the deferred mask's kept rows through the gathered LayerNorm), F32 and
     * bf16, on each backend: the loss and every parameter's gradient bit for bit those of the same step with the
     * gathered LayerNorm replaced by gatherRows + layerNorm and its backward by layerNormBackward + scatterRows (a
     * proxy of the backend that reroutes the two calls).
     */
    @Test
    void aTrainingStepThroughTheGatheredNormHasTheBitsOfGatherThenNorm() {
        MicroDiTConfig c = CudaTrainingStepTest.tiny();
        assertTrue(c.hasMixerMaps() && c.mixerDim() != c.dim(), "the config has no map out of the mixer");
        for (Backend be : new Backend[] {cpu, cuda}) {
            MicroDiT model = new MicroDiT(c, new ParameterStore(be.scope("parameters")), be);
            try (MemoryScope host = new MemoryScope("host"); MemoryScope data = be.scope("data")) {
                Random random = new Random(3);
                for (Parameter p : model.parameters().all()) {
                    float[] v = new float[(int) p.value().numel()];
                    for (int j = 0; j < v.length; j++) {
                        v[j] = (float) (0.3 * random.nextGaussian()); // every path live, past the zero init
                    }
                    be.write(p.value(), v);
                }
                Tensor latents = be.upload(TestData.uniform(host, random, 3, c.inChannels(), c.inputSize(),
                        c.inputSize()), data);
                Tensor captions = be.upload(TestData.uniform(host, random, 3, 5, c.captionChannels()), data);
                // The first step adopts each gradient as computed, later ones add it into zeroed buffers (which turns
                // a -0 into +0): a first step of its own, so the two compared steps both add.
                step(be, model, latents, captions, Precision.F32);
                for (Precision precision : Precision.values()) {
                    int[] fusedCalls = {0}, separateCalls = {0};
                    List<float[]> fused = step(rerouted(be, false, fusedCalls), model, latents, captions, precision);
                    List<float[]> separate = step(rerouted(be, true, separateCalls), model, latents, captions,
                            precision);
                    assertEquals(2, fusedCalls[0], be.name() + " " + precision + ": the gathered norm's two calls");
                    assertEquals(2, separateCalls[0], be.name() + " " + precision + ": calls rerouted");
                    List<Parameter> parameters = new ArrayList<>(model.parameters().all());
                    assertArrayEquals(separate.get(0), fused.get(0), be.name() + " " + precision + ": loss");
                    for (int i = 1; i < fused.size(); i++) {
                        assertArrayEquals(separate.get(i), fused.get(i), be.name() + " " + precision
                                + ": gradient of " + parameters.get(i - 1).name());
                    }
                }
            } finally {
                model.parameters().close();
            }
        }
    }

    /** The loss of one deferred-mask step, then every parameter's gradient. */
    private static List<float[]> step(Backend be, MicroDiT model, Tensor latents, Tensor captions,
                                      Precision precision) {
        model.parameters().zeroGrad(be);
        List<float[]> results = new ArrayList<>();
        try (MemoryScope scope = be.scope("step")) {
            Graph g = new Graph(be, scope, precision);
            try (GradScope ignored = g.recordGradients()) {
                Variable loss = new EdmObjective(Edm.MICRODIT_256, MaskingMode.DEFERRED, 0.5, 0.0)
                        .loss(g, model, latents, captions, 11, 40);
                results.add(be.read(loss.value()));
                loss.backward();
            }
        }
        for (Parameter p : model.parameters().all()) {
            results.add(p.grad() == null ? new float[(int) p.value().numel()] : be.read(p.grad()));
        }
        return results;
    }

    /**
     * {@code be} with its gatherLayerNorm calls counted and, when {@code separate}, computed by the ops they replace:
     * gatherRows + layerNorm, and layerNormBackward into a kept-row gradient + scatterRows (+ axpy when accumulating).
     */
    private static Backend rerouted(Backend be, boolean separate, int[] calls) {
        InvocationHandler handler = (proxy, method, a) -> {
            String name = method.getName();
            if (name.equals("gatherLayerNorm") || name.equals("gatherLayerNormBackward")) {
                calls[0]++;
                if (separate) {
                    reroute(be, name, a);
                    return null;
                }
            }
            try {
                return method.invoke(be, a);
            } catch (InvocationTargetException e) {
                throw e.getCause();
            }
        };
        return (Backend) Proxy.newProxyInstance(Backend.class.getClassLoader(), new Class<?>[] {Backend.class},
                handler);
    }

    private static void reroute(Backend be, String name, Object[] a) {
        Tensor x = (Tensor) a[name.equals("gatherLayerNorm") ? 0 : 1];
        Tensor ids = (Tensor) a[name.equals("gatherLayerNorm") ? 1 : 2];
        try (MemoryScope scratch = be.scope("rerouted")) {
            Tensor gathered = Tensor.empty(scratch, DType.F32, ids.dim(0), ids.dim(1), x.dim(2));
            be.gatherRows(x, ids, gathered);
            if (name.equals("gatherLayerNorm")) {
                be.layerNorm(gathered, (Tensor) a[2], (float) a[3], (Tensor) a[4], (Tensor) a[5], (Tensor) a[6]);
                return;
            }
            Tensor dx = (Tensor) a[6];
            Tensor keptDx = Tensor.empty(scratch, DType.F32, gathered.shape());
            be.layerNormBackward((Tensor) a[0], gathered, (Tensor) a[3], (Tensor) a[4], (Tensor) a[5], keptDx,
                    (Tensor) a[7]);
            if ((boolean) a[8]) {
                Tensor scattered = Tensor.empty(scratch, DType.F32, dx.shape());
                be.scatterRows(keptDx, ids, scattered);
                be.axpy(1f, scattered, dx);
            } else {
                be.scatterRows(keptDx, ids, dx);
            }
        }
    }

    /** {@link TestData#keepIds} as an I32 [samples, kept] tensor in {@code scope}. */
    private static Tensor keepIds(MemoryScope scope, Random random, int samples, int kept, int tokens) {
        return Tensor.ofInts(scope, TestData.keepIds(random, samples, kept, tokens), samples, kept);
    }

    /** The fused op and its backward on {@code be}; the results downloaded to {@code host}, by name. */
    private static Map<String, Tensor> fused(Backend be, Case c, MemoryScope host) {
        try (MemoryScope scope = be.scope("fused")) {
            Tensor x = on(be, scope, c.x()), ids = on(be, scope, c.ids()), weight = on(be, scope, c.weight());
            Tensor out = poisoned(be, scope, c.outType(), c.samples(), c.kept(), c.width());
            Tensor mean = poisoned(be, scope, DType.F32, c.rows()), rstd = poisoned(be, scope, DType.F32, c.rows());
            be.gatherLayerNorm(x, ids, weight, EPS, out, mean, rstd);
            Tensor dx = c.accumulate() ? on(be, scope, c.grad()) : poisoned(be, scope, DType.F32, c.shape());
            Tensor dWeight = on(be, scope, c.dWeight());
            be.gatherLayerNormBackward(on(be, scope, c.dOut()), x, ids, weight, mean, rstd, dx, dWeight,
                    c.accumulate());
            return results(be, host, RESULT_NAMES, out, mean, rstd, dx, dWeight);
        }
    }

    /** gatherRows, layerNorm, layerNormBackward into the kept rows' gradient, scatterRows (and axpy) on {@code be}. */
    private static Map<String, Tensor> separate(Backend be, Case c, MemoryScope host) {
        try (MemoryScope scope = be.scope("separate")) {
            Tensor x = on(be, scope, c.x()), ids = on(be, scope, c.ids()), weight = on(be, scope, c.weight());
            Tensor gathered = poisoned(be, scope, DType.F32, c.samples(), c.kept(), c.width());
            be.gatherRows(x, ids, gathered);
            Tensor out = poisoned(be, scope, c.outType(), c.samples(), c.kept(), c.width());
            Tensor mean = poisoned(be, scope, DType.F32, c.rows()), rstd = poisoned(be, scope, DType.F32, c.rows());
            be.layerNorm(gathered, weight, EPS, out, mean, rstd);
            Tensor keptDx = poisoned(be, scope, DType.F32, c.samples(), c.kept(), c.width());
            Tensor dWeight = on(be, scope, c.dWeight());
            be.layerNormBackward(on(be, scope, c.dOut()), gathered, weight, mean, rstd, keptDx, dWeight);
            Tensor scattered = poisoned(be, scope, DType.F32, c.shape());
            be.scatterRows(keptDx, ids, scattered);
            Tensor dx = scattered;
            if (c.accumulate()) {
                dx = on(be, scope, c.grad());
                be.axpy(1f, scattered, dx);
            }
            return results(be, host, RESULT_NAMES, out, mean, rstd, dx, dWeight);
        }
    }
}
