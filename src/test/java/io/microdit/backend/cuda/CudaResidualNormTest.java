package io.microdit.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import static io.microdit.backend.cuda.FusedOpCheck.on;
import static io.microdit.backend.cuda.FusedOpCheck.poisoned;
import static io.microdit.backend.cuda.FusedOpCheck.results;
import static io.microdit.backend.cuda.FusedOpCheck.sameBits;

import io.microdit.backend.Backend;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Residual + gate + LayerNorm (+ modulate), forward and backward, on both backends: bit for bit the separate ops it
 * replaces (gated residual or add, LayerNorm or LayerNorm + modulate, their backwards and the axpy that added the
 * LayerNorm's dx to the residual's other gradient) on each backend, for every mix of gate, modulation, weight, bf16
 * operands and incoming residual gradient (none, separate, in place); and the CUDA kernels against the CPU. The
 * same for the LayerNorm backwards that add into x's gradient (accumulate) instead of writing dx for an axpy.
 */
@Tag("emu")
class CudaResidualNormTest extends CudaVersusCpu {
    /** The outputs the fused and the separate ops are compared on, in {@link FusedOpCheck#results}'s order. */
    private static final String[] RESULT_NAMES = {"residual", "out", "mean", "rstd", "dx", "dWeight", "dShift",
        "dScale", "dGate", "dF"};

    private static final float EPS = 1e-6f;

    /** The inputs of one case, on the host. */
    private record Case(int samples, int tokens, int width, Tensor x, Tensor gate, Tensor f, Tensor weight,
                        Tensor shift, Tensor scale, Tensor dOut, Tensor dResidual, Tensor dWeight, DType outType,
                        DType dFType, boolean inPlace) {
        int[] shape() {
            return new int[] {samples, tokens, width};
        }
    }

    @ParameterizedTest
    @CsvSource({
        "3,5,37,true,true,true,false,separate", "3,5,37,true,true,true,true,separate",
        "3,5,37,true,false,true,true,separate", "3,5,37,false,true,true,true,inplace",
        "3,5,37,false,false,false,false,none", "3,5,37,true,true,false,true,inplace",
        "3,5,37,false,true,false,false,separate", "3,5,37,true,false,false,false,inplace",
        "1,1,1,true,true,true,true,separate", "2,9,300,true,true,true,true,inplace",
        "2,70,130,false,false,true,true,separate", "2,70,130,true,true,true,false,none"})
    void fusedEqualsTheSeparateOpsOnBothBackendsAndCudaMatchesCpu(int samples, int tokens, int width, boolean gated,
                                                                   boolean modulated, boolean affine, boolean bf16,
                                                                   String incoming) {
        Random random = new Random(samples * 7919L + tokens * 131L + width + (gated ? 1 : 0) + (modulated ? 2 : 0)
                + (affine ? 4 : 0) + (bf16 ? 8 : 0) + incoming.hashCode());
        try (MemoryScope host = new MemoryScope("inputs")) {
            int[] shape = {samples, tokens, width};
            Tensor x = uniform(host, random, 3, shape);
            for (long i = 0; i < x.numel(); i++) {
                x.setFloat(i, x.getFloat(i) + 2); // a mean far from zero
            }
            DType operand = bf16 ? DType.BF16 : DType.F32;
            Case c = new Case(samples, tokens, width, x, gated ? random(host, random, samples, width) : null,
                    random(host, random, shape).to(operand, host), affine ? random(host, random, width) : null,
                    modulated ? random(host, random, samples, width) : null,
                    modulated ? random(host, random, samples, width) : null,
                    random(host, random, shape).to(operand, host),
                    incoming.equals("none") ? null : random(host, random, shape),
                    affine ? random(host, random, width) : null, operand, operand, incoming.equals("inplace"));
            Map<String, Tensor> cpuFused = fused(cpu, c, host), cudaFused = fused(cuda, c, host);
            sameBits(separate(cpu, c, host), cpuFused, "CPU", "the separate ops");
            sameBits(separate(cuda, c, host), cudaFused, "CUDA", "the separate ops");
            for (Map.Entry<String, Tensor> e : cpuFused.entrySet()) {
                float[] expected = e.getValue().toFloatArray(), got = cudaFused.get(e.getKey()).toFloatArray();
                // bf16 results may round the other way where the backends' f32 values differ in the last bits.
                double tolerance = e.getValue().dtype() == DType.BF16 ? 1e-2 : TOLERANCE;
                double error = TestData.maxRelativeError(got, TestData.toDouble(expected));
                assertTrue(error <= tolerance, () -> e.getKey() + ": CUDA differs from the CPU by " + error);
            }
        }
    }

    /**
     * The forward that also stores its F32 output's bf16 copy (the MoE's input): the same residual, output, mean and
     * rstd bits as the plain forward, and a copy with convert's bits of the output, on both backends; CUDA's copy is
     * the bf16 rounding of CUDA's output, so it matches the CPU's as closely as the outputs do.
     */
    @ParameterizedTest
    @CsvSource({"3,5,37,true,true,true,true", "3,5,37,false,false,false,false", "2,9,300,true,true,false,true",
        "1,1,1,false,true,true,false", "2,70,130,true,false,true,true"})
    void theForwardWithABf16CopyStoresConvertsBitsOfItsOutput(int samples, int tokens, int width, boolean gated,
                                                               boolean modulated, boolean affine, boolean bf16) {
        Random random = new Random(samples * 31L + tokens * 7L + width + (gated ? 1 : 0) + (modulated ? 2 : 0)
                + (affine ? 4 : 0) + (bf16 ? 8 : 0));
        int[] shape = {samples, tokens, width};
        try (MemoryScope host = new MemoryScope("inputs")) {
            Tensor x = uniform(host, random, 3, shape), f = random(host, random, shape)
                    .to(bf16 ? DType.BF16 : DType.F32, host);
            Tensor gate = gated ? random(host, random, samples, width) : null;
            Tensor weight = affine ? random(host, random, width) : null;
            Tensor shift = modulated ? random(host, random, samples, width) : null;
            Tensor scale = modulated ? random(host, random, samples, width) : null;
            Map<String, float[]> copies = new LinkedHashMap<>();
            for (Backend be : new Backend[] {cpu, cuda}) {
                try (MemoryScope scope = be.scope("copy")) {
                    int rows = samples * tokens;
                    Tensor[] plain = {poisoned(be, scope, DType.F32, shape), poisoned(be, scope, DType.F32, shape),
                        poisoned(be, scope, DType.F32, rows), poisoned(be, scope, DType.F32, rows)};
                    Tensor[] withCopy = {poisoned(be, scope, DType.F32, shape), poisoned(be, scope, DType.F32, shape),
                        poisoned(be, scope, DType.F32, rows), poisoned(be, scope, DType.F32, rows)};
                    Tensor copy = poisoned(be, scope, DType.BF16, shape);
                    Tensor xs = on(be, scope, x), gs = on(be, scope, gate), fs = on(be, scope, f),
                            ws = on(be, scope, weight), shifts = on(be, scope, shift), scales = on(be, scope, scale);
                    be.residualLayerNorm(xs, gs, fs, ws, shifts, scales, EPS, plain[0], plain[1], plain[2], plain[3]);
                    be.residualLayerNorm(xs, gs, fs, ws, shifts, scales, EPS, withCopy[0], withCopy[1], copy,
                            withCopy[2], withCopy[3]);
                    for (int i = 0; i < plain.length; i++) {
                        assertArrayEquals(be.read(plain[i]), be.read(withCopy[i]), be.name() + " output " + i);
                    }
                    Tensor converted = poisoned(be, scope, DType.BF16, shape);
                    be.convert(withCopy[1], converted);
                    float[] copyValues = be.read(copy);
                    assertArrayEquals(be.read(converted), copyValues, be.name() + ": the copy is convert(out)");
                    copies.put(be == cpu ? "cpu" : "cuda", copyValues);
                }
            }
            // bf16 copies may round the other way where the backends' f32 outputs differ in the last bits.
            double error = TestData.maxRelativeError(copies.get("cuda"), TestData.toDouble(copies.get("cpu")));
            assertTrue(error <= 1e-2, "CUDA's copy differs from the CPU's by " + error);
        }
    }

    /**
     * The LayerNorm backwards with accumulate (x's gradient so far in dx, the LayerNorm's dx added in the same pass)
     * against writing dx and adding it by axpy, bit for bit on each backend; CUDA against the CPU.
     */
    @ParameterizedTest
    @CsvSource({"3,5,37,false,false,false", "3,5,37,true,true,false", "2,9,300,false,true,true",
        "2,9,300,true,false,true", "1,1,1,true,true,true"})
    void accumulatingLayerNormBackwardsEqualWriteThenAxpy(int samples, int tokens, int width, boolean modulated,
                                                           boolean bf16Grad, boolean bf16X) {
        Random random = new Random(samples * 31L + tokens * 7L + width + (modulated ? 100 : 0) + (bf16Grad ? 200 : 0)
                + (bf16X ? 400 : 0));
        try (MemoryScope host = new MemoryScope("inputs")) {
            int[] shape = {samples, tokens, width};
            int rows = samples * tokens;
            // The modulated LayerNorm reads an f32 x (the residual stream); QK-norm's x may be bf16.
            DType xType = bf16X && !modulated ? DType.BF16 : DType.F32, gradType = bf16Grad ? DType.BF16 : DType.F32;
            Tensor x = uniform(host, random, 3, shape).to(xType, host), weight = random(host, random, width);
            Tensor shift = random(host, random, samples, width), scale = random(host, random, samples, width);
            Tensor dOut = random(host, random, shape).to(gradType, host), grad = random(host, random, shape);
            Tensor dWeight = random(host, random, width);
            Map<String, Tensor> cpuResults = null;
            for (Backend be : new Backend[] {cpu, cuda}) {
                Map<String, Map<String, Tensor>> byWay = new LinkedHashMap<>();
                for (boolean accumulate : new boolean[] {false, true}) {
                    try (MemoryScope scope = be.scope("accumulate")) {
                        Tensor xs = on(be, scope, x), ws = on(be, scope, weight), shs = on(be, scope, shift);
                        Tensor scs = on(be, scope, scale);
                        Tensor mean = poisoned(be, scope, DType.F32, rows), rstd = poisoned(be, scope, DType.F32, rows);
                        Tensor out = poisoned(be, scope, DType.F32, shape);
                        Tensor dx = on(be, scope, grad), dws = on(be, scope, dWeight), gs = on(be, scope, dOut);
                        Tensor normDx = accumulate ? dx : poisoned(be, scope, DType.F32, shape);
                        Tensor dShift = modulated ? poisoned(be, scope, DType.F32, samples, width) : null;
                        Tensor dScale = modulated ? poisoned(be, scope, DType.F32, samples, width) : null;
                        if (modulated) {
                            be.layerNormModulate(xs, ws, shs, scs, EPS, out, mean, rstd);
                            be.layerNormModulateBackward(gs, xs, ws, scs, mean, rstd, normDx, dws, dShift, dScale,
                                    accumulate);
                        } else {
                            be.layerNorm(xs, ws, EPS, out, mean, rstd);
                            be.layerNormBackward(gs, xs, ws, mean, rstd, normDx, dws, accumulate);
                        }
                        if (!accumulate) {
                            be.axpy(1f, normDx, dx);
                        }
                        byWay.put(accumulate ? "accumulate" : "axpy",
                                results(be, host, RESULT_NAMES, null, null, mean, rstd, dx, dws, dShift, dScale, null,
                                        null));
                    }
                }
                sameBits(byWay.get("axpy"), byWay.get("accumulate"), be == cpu ? "CPU" : "CUDA", "the separate ops");
                if (be == cpu) {
                    cpuResults = byWay.get("accumulate");
                } else {
                    for (Map.Entry<String, Tensor> e : cpuResults.entrySet()) {
                        double error = TestData.maxRelativeError(byWay.get("accumulate").get(e.getKey()).toFloatArray(),
                                TestData.toDouble(e.getValue().toFloatArray()));
                        assertTrue(error <= TOLERANCE, () -> e.getKey() + ": CUDA differs from the CPU by " + error);
                    }
                }
            }
        }
    }

    /** The fused op and its backward on {@code be}; the results downloaded to {@code host}, by name. */
    private static Map<String, Tensor> fused(Backend be, Case c, MemoryScope host) {
        try (MemoryScope scope = be.scope("fused")) {
            int rows = c.samples() * c.tokens();
            Tensor residual = poisoned(be, scope, DType.F32, c.shape()), out = poisoned(be, scope, c.outType(),
                    c.shape());
            Tensor mean = poisoned(be, scope, DType.F32, rows), rstd = poisoned(be, scope, DType.F32, rows);
            Tensor gate = on(be, scope, c.gate()), f = on(be, scope, c.f()), weight = on(be, scope, c.weight());
            Tensor shift = on(be, scope, c.shift()), scale = on(be, scope, c.scale());
            be.residualLayerNorm(on(be, scope, c.x()), gate, f, weight, shift, scale, EPS, residual, out, mean, rstd);
            Tensor dResidual = on(be, scope, c.dResidual());
            Tensor dx = c.inPlace() ? dResidual : poisoned(be, scope, DType.F32, c.shape());
            Tensor dWeight = on(be, scope, c.dWeight());
            Tensor dShift = c.scale() == null ? null : poisoned(be, scope, DType.F32, c.samples(), c.width());
            Tensor dScale = c.scale() == null ? null : poisoned(be, scope, DType.F32, c.samples(), c.width());
            Tensor dGate = c.gate() == null ? null : poisoned(be, scope, DType.F32, c.samples(), c.width());
            Tensor dF = poisoned(be, scope, c.dFType(), c.shape());
            be.residualLayerNormBackward(on(be, scope, c.dOut()), dResidual, residual, gate, f, weight, scale, mean,
                    rstd, dx, dWeight, dShift, dScale, dGate, dF);
            return results(be, host, RESULT_NAMES, residual, out, mean, rstd, dx, dWeight, dShift, dScale, dGate, dF);
        }
    }

    /** The separate ops, as the autograd graph ran them before the fusion. */
    private static Map<String, Tensor> separate(Backend be, Case c, MemoryScope host) {
        try (MemoryScope scope = be.scope("separate")) {
            int rows = c.samples() * c.tokens();
            Tensor x = on(be, scope, c.x()), gate = on(be, scope, c.gate()), f = on(be, scope, c.f());
            Tensor weight = on(be, scope, c.weight()), shift = on(be, scope, c.shift()), scale = on(be, scope, c.scale());
            Tensor residual = poisoned(be, scope, DType.F32, c.shape()), out = poisoned(be, scope, c.outType(),
                    c.shape());
            Tensor mean = poisoned(be, scope, DType.F32, rows), rstd = poisoned(be, scope, DType.F32, rows);
            if (gate == null) {
                be.add(x, f, residual);
            } else {
                be.gatedResidual(x, gate, f, residual);
            }
            Tensor normDx = poisoned(be, scope, DType.F32, c.shape()), dWeight = on(be, scope, c.dWeight());
            Tensor dShift = null, dScale = null;
            Tensor dOut = on(be, scope, c.dOut());
            if (shift == null) {
                be.layerNorm(residual, weight, EPS, out, mean, rstd);
                be.layerNormBackward(dOut, residual, weight, mean, rstd, normDx, dWeight);
            } else {
                be.layerNormModulate(residual, weight, shift, scale, EPS, out, mean, rstd);
                dShift = poisoned(be, scope, DType.F32, c.samples(), c.width());
                dScale = poisoned(be, scope, DType.F32, c.samples(), c.width());
                be.layerNormModulateBackward(dOut, residual, weight, scale, mean, rstd, normDx, dWeight, dShift,
                        dScale);
            }
            // Variable.addGrad: the residual's gradient from its other reader first, the LayerNorm's added by axpy.
            Tensor dx = normDx;
            if (c.dResidual() != null) {
                dx = on(be, scope, c.dResidual());
                be.axpy(1f, normDx, dx);
            }
            Tensor dGate = null, dF = poisoned(be, scope, c.dFType(), c.shape());
            if (gate == null) {
                be.convert(dx, dF);
            } else {
                dGate = poisoned(be, scope, DType.F32, c.samples(), c.width());
                be.gatedResidualBackward(dx, gate, f, dGate, dF);
            }
            return results(be, host, RESULT_NAMES, residual, out, mean, rstd, dx, dWeight, dShift, dScale, dGate, dF);
        }
    }
}
