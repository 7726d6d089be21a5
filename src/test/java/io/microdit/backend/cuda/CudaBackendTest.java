package io.microdit.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.random.Philox;
import io.microdit.tensor.DType;
import io.microdit.tensor.Device;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Each op with a CUDA kernel, run by the CUDA backend (on the emulator in CI) against the CPU backend on random
 * inputs of awkward sizes, outputs poisoned with NaN before the kernel runs. F32 within 1e-5 relative to the
 * largest magnitude; Philox uniforms bit-identical to Java's; device live bytes back to zero.
 */
@Tag("emu")
class CudaBackendTest extends CudaVersusCpu {
    @Test
    void elementwiseOps() {
        Random random = new Random(1);
        try (MemoryScope scope = new MemoryScope("inputs")) {
            for (int[] shape : new int[][] {{1, 1, 1}, {3, 17, 33}, {2, 77, 5}}) {
                Tensor a = random(scope, random, shape), b = random(scope, random, shape);
                Tensor suffix = random(scope, random, shape[2]);
                Tensor perSample = random(scope, random, shape[0], shape[2]);
                Tensor other = random(scope, random, shape[0], shape[2]);
                compare("add", new Tensor[] {a, b}, new int[][] {shape},
                        t -> cpu.add(t[0], t[1], t[2]), t -> cuda.add(t[0], t[1], t[2]));
                compare("mul broadcast", new Tensor[] {a, suffix}, new int[][] {shape},
                        t -> cpu.mul(t[0], t[1], t[2]), t -> cuda.mul(t[0], t[1], t[2]));
                compare("scale", new Tensor[] {a}, new int[][] {shape},
                        t -> cpu.scale(t[0], -1.7f, t[1]), t -> cuda.scale(t[0], -1.7f, t[1]));
                compare("axpy", new Tensor[] {a, b}, new int[0][],
                        t -> cpu.axpy(0.3f, t[0], t[1]), t -> cuda.axpy(0.3f, t[0], t[1]));
                compare("modulate", new Tensor[] {a, perSample, other}, new int[][] {shape},
                        t -> cpu.modulate(t[0], t[1], t[2], t[3]), t -> cuda.modulate(t[0], t[1], t[2], t[3]));
                int[] ps = {shape[0], shape[2]};
                compare("modulateBackward", new Tensor[] {b, a, other}, new int[][] {shape, ps, ps},
                        t -> cpu.modulateBackward(t[0], t[1], t[2], t[3], t[4], t[5]),
                        t -> cuda.modulateBackward(t[0], t[1], t[2], t[3], t[4], t[5]));
                compare("gatedResidual", new Tensor[] {a, perSample, b}, new int[][] {shape},
                        t -> cpu.gatedResidual(t[0], t[1], t[2], t[3]),
                        t -> cuda.gatedResidual(t[0], t[1], t[2], t[3]));
                compare("gatedResidualBackward", new Tensor[] {b, perSample, a}, new int[][] {ps, shape},
                        t -> cpu.gatedResidualBackward(t[0], t[1], t[2], t[3], t[4]),
                        t -> cuda.gatedResidualBackward(t[0], t[1], t[2], t[3], t[4]));
                Tensor matrix = a.reshape(-1, shape[2]);
                int rows = matrix.dim(0), width = Math.max(1, shape[2] - 2), start = shape[2] - width;
                compare("sliceColumns", new Tensor[] {matrix}, new int[][] {{rows, width}},
                        t -> cpu.sliceColumns(t[0], start, t[1]), t -> cuda.sliceColumns(t[0], start, t[1]));
                Tensor slice = random(scope, random, rows, width);
                compare("sliceColumnsBackward", new Tensor[] {slice, matrix}, new int[0][],
                        t -> cpu.sliceColumnsBackward(t[0], start, t[1]),
                        t -> cuda.sliceColumnsBackward(t[0], start, t[1]));
                compare("meanTokens", new Tensor[] {a}, new int[][] {ps},
                        t -> cpu.meanTokens(t[0], t[1]), t -> cuda.meanTokens(t[0], t[1]));
                compare("meanTokensBackward", new Tensor[] {perSample}, new int[][] {shape},
                        t -> cpu.meanTokensBackward(t[0], t[1]), t -> cuda.meanTokensBackward(t[0], t[1]));
            }
        }
    }

    @Test
    void layerNormForwardAndBackward() {
        Random random = new Random(2);
        try (MemoryScope scope = new MemoryScope("inputs")) {
            for (int[] shape : new int[][] {{1, 1}, {3, 7, 33}, {77, 130}, {2, 300}}) {
                int width = shape[shape.length - 1], rows = 1;
                for (int i = 0; i < shape.length - 1; i++) {
                    rows *= shape[i];
                }
                Tensor x = random(scope, random, shape);
                for (int v = 0; v < x.numel(); v++) {
                    x.setFloat(v, x.getFloat(v) * 3 + 5); // a mean far from zero
                }
                Tensor weight = random(scope, random, width), dOut = random(scope, random, shape);
                int r = rows;
                for (Tensor w : new Tensor[] {weight, null}) {
                    compare("layerNorm", new Tensor[] {x, w}, new int[][] {shape, {r}, {r}},
                            t -> cpu.layerNorm(t[0], t[1], 1e-6f, t[2], t[3], t[4]),
                            t -> cuda.layerNorm(t[0], t[1], 1e-6f, t[2], t[3], t[4]));
                    try (MemoryScope stats = new MemoryScope("stats")) {
                        Tensor mean = stats.zeros(r), rstd = stats.zeros(r), out = stats.zeros(shape);
                        cpu.layerNorm(x, w, 1e-6f, out, mean, rstd);
                        Tensor dWeight = w == null ? null : random(stats, random, width);
                        compare("layerNormBackward", new Tensor[] {dOut, x, w, mean, rstd, dWeight},
                                new int[][] {shape},
                                t -> cpu.layerNormBackward(t[0], t[1], t[2], t[3], t[4], t[6], t[5]),
                                t -> cuda.layerNormBackward(t[0], t[1], t[2], t[3], t[4], t[6], t[5]));
                    }
                }
            }
        }
    }

    @Test
    void layerNormModulateForwardAndBackward() {
        Random random = new Random(4);
        try (MemoryScope scope = new MemoryScope("inputs")) {
            for (int[] shape : new int[][] {{1, 1, 1}, {3, 5, 37}, {2, 70, 130}, {2, 3, 300}}) {
                int samples = shape[0], width = shape[2], rows = samples * shape[1];
                int[] perSample = {samples, width};
                Tensor x = uniform(scope, random, 3, shape);
                for (int v = 0; v < x.numel(); v++) {
                    x.setFloat(v, x.getFloat(v) + 5); // a mean far from zero
                }
                Tensor shift = random(scope, random, perSample), scale = random(scope, random, perSample);
                Tensor weight = random(scope, random, width), dOut = random(scope, random, shape);
                for (Tensor w : new Tensor[] {weight, null}) {
                    compare("layerNormModulate", new Tensor[] {x, w, shift, scale},
                            new int[][] {shape, {rows}, {rows}},
                            t -> cpu.layerNormModulate(t[0], t[1], t[2], t[3], 1e-6f, t[4], t[5], t[6]),
                            t -> cuda.layerNormModulate(t[0], t[1], t[2], t[3], 1e-6f, t[4], t[5], t[6]));
                    try (MemoryScope stats = new MemoryScope("stats")) {
                        Tensor mean = stats.zeros(rows), rstd = stats.zeros(rows);
                        cpu.layerNormModulate(x, w, shift, scale, 1e-6f, stats.zeros(shape), mean, rstd);
                        Tensor dWeight = w == null ? null : random(stats, random, width);
                        compare("layerNormModulateBackward", new Tensor[] {dOut, x, w, scale, mean, rstd, dWeight},
                                new int[][] {shape, perSample, perSample},
                                t -> cpu.layerNormModulateBackward(t[0], t[1], t[2], t[3], t[4], t[5], t[7], t[6],
                                        t[8], t[9]),
                                t -> cuda.layerNormModulateBackward(t[0], t[1], t[2], t[3], t[4], t[5], t[7], t[6],
                                        t[8], t[9]));
                    }
                }
                try (MemoryScope stats = new MemoryScope("stats")) {
                    Tensor mean = stats.zeros(rows), rstd = stats.zeros(rows);
                    cpu.layerNormModulate(x, weight, shift, scale, 1e-6f, stats.zeros(shape), mean, rstd);
                    compare("layerNormModulateBackward frozen weight",
                            new Tensor[] {dOut, x, weight, scale, mean, rstd}, new int[][] {shape, perSample, perSample},
                            t -> cpu.layerNormModulateBackward(t[0], t[1], t[2], t[3], t[4], t[5], t[6], null, t[7],
                                    t[8]),
                            t -> cuda.layerNormModulateBackward(t[0], t[1], t[2], t[3], t[4], t[5], t[6], null, t[7],
                                    t[8]));
                }
            }
            Tensor x = random(scope, random, 2, 3, 5);
            sameRefusal("layerNormModulate", new Tensor[] {x, random(scope, random, 3, 5), random(scope, random, 2, 5),
                    output(scope, 2, 3, 5), output(scope, 6), output(scope, 6)},
                    t -> cpu.layerNormModulate(t[0], null, t[1], t[2], 1e-6f, t[3], t[4], t[5]),
                    t -> cuda.layerNormModulate(t[0], null, t[1], t[2], 1e-6f, t[3], t[4], t[5]));
        }
    }

    @Test
    void gatherAndScatterRowsWithTheZeroMaskToken() {
        Random random = new Random(3);
        try (MemoryScope scope = new MemoryScope("inputs")) {
            int samples = 3, tokens = 17, kept = 5, width = 33;
            int[] ids = new int[samples * kept];
            for (int n = 0; n < samples; n++) {
                int[] order = random.ints(0, tokens).distinct().limit(kept).toArray();
                System.arraycopy(order, 0, ids, n * kept, kept);
            }
            Tensor idTensor = Tensor.ofInts(scope, ids, samples, kept);
            Tensor x = random(scope, random, samples, tokens, width), keptRows = random(scope, random, samples, kept,
                    width);
            compare("gatherRows", new Tensor[] {x, idTensor}, new int[][] {{samples, kept, width}},
                    t -> cpu.gatherRows(t[0], t[1], t[2]), t -> cuda.gatherRows(t[0], t[1], t[2]));
            compare("scatterRows", new Tensor[] {keptRows, idTensor}, new int[][] {{samples, tokens, width}},
                    t -> cpu.scatterRows(t[0], t[1], t[2]), t -> cuda.scatterRows(t[0], t[1], t[2]));
            ids[1] = ids[0];
            Tensor duplicate = Tensor.ofInts(scope, ids, samples, kept);
            try (MemoryScope device = cuda.scope("device")) {
                Tensor dx = cuda.upload(keptRows, device), dIds = cuda.upload(duplicate, device);
                Tensor out = device.zeros(samples, tokens, width);
                cuda.scatterRows(dx, dIds, out); // ids are checked on the device: the next wait throws
                IllegalArgumentException error = assertThrows(IllegalArgumentException.class, cuda::synchronize);
                assertEquals("scatterRows: ids of sample 0 are not distinct: " + ids[0]
                        + " appears at positions 0 and 1", error.getMessage());
            }
        }
    }

    @Test
    void matmulAllTransposesBatchesBiasAndTails() {
        Random random = new Random(4);
        try (MemoryScope scope = new MemoryScope("inputs")) {
            int[][] sizes = {{1, 1, 1}, {33, 17, 45}, {70, 3, 65}, {5, 77, 0}};
            for (int[] size : sizes) {
                int m = size[0], n = size[1], k = size[2];
                for (int variant = 0; variant < 4; variant++) {
                    boolean ta = (variant & 1) != 0, tb = (variant & 2) != 0;
                    int batch = variant == 3 ? 1 : 2;
                    boolean sharedB = variant == 2;
                    Tensor a = random(scope, random, batch, ta ? k : m, ta ? m : k);
                    Tensor b = sharedB ? random(scope, random, tb ? n : k, tb ? k : n)
                            : random(scope, random, batch, tb ? n : k, tb ? k : n);
                    Tensor bias = variant == 1 ? null : random(scope, random, n);
                    Tensor start = random(scope, random, batch, m, n);
                    boolean accumulate = variant == 3;
                    String what = "matmul " + m + "x" + n + "x" + k + " variant " + variant;
                    compare(what, new Tensor[] {a, b, bias, start}, new int[0][],
                            t -> cpu.matmul(t[0], ta, t[1], tb, t[2], t[3], accumulate),
                            t -> cuda.matmul(t[0], ta, t[1], tb, t[2], t[3], accumulate));
                }
            }
            Tensor x = random(scope, random, 77, 33);
            compare("sumRows", new Tensor[] {x}, new int[][] {{33}},
                    t -> cpu.sumRows(t[0], t[1], false), t -> cuda.sumRows(t[0], t[1], false));
        }
    }

    @Test
    void optimizerOps() {
        Random random = new Random(5);
        try (MemoryScope scope = new MemoryScope("inputs")) {
            int n = 1000 + 37;
            Tensor param = random(scope, random, n), grad = random(scope, random, n);
            Tensor m = random(scope, random, n), v = random(scope, random, n);
            for (int i = 0; i < n; i++) {
                v.setFloat(i, Math.abs(v.getFloat(i)));
            }
            compare("adamw", new Tensor[] {param, grad, m, v}, new int[0][],
                    t -> cpu.adamw(t[0], t[1], t[2], t[3], 1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, 7, 0.5f),
                    t -> cuda.adamw(t[0], t[1], t[2], t[3], 1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, 7, 0.5f));
            compare("emaUpdate", new Tensor[] {param, grad}, new int[0][],
                    t -> cpu.emaUpdate(t[0], t[1], 0.99f), t -> cuda.emaUpdate(t[0], t[1], 0.99f));
            try (MemoryScope device = cuda.scope("device")) {
                double expected = cpu.sumOfSquares(grad);
                double actual = cuda.sumOfSquares(cuda.upload(grad, device));
                assertEquals(expected, actual, 1e-12 * expected);
                assertEquals(actual, cuda.sumOfSquares(cuda.upload(grad, device)), "same bits on a second run");
            }
        }
    }

    @Test
    void philoxMatchesJava() {
        long seed = 0x1234_5678_9abcL, stream = 42;
        for (long offset : new long[] {0, 3, (1L << 33) + 1}) {
            int n = 77;
            float[] uniform = new float[n], normal = new float[n];
            Philox.fillUniform(seed, stream, offset, uniform);
            Philox.fillNormal(seed, stream, offset, normal);
            try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
                Tensor out = cuda.upload(TestData.poisoned(host, n), device);
                cuda.uniform(seed, stream, offset, out);
                assertArrayEquals(uniform, cuda.download(out, host).toFloatArray(), "uniforms are bit-identical");
                cuda.normal(seed, stream, offset, out);
                float[] actual = cuda.download(out, host).toFloatArray();
                for (int i = 0; i < n; i++) {
                    assertTrue(Math.abs(actual[i] - normal[i]) <= Math.ulp(normal[i]), "normal " + i + ": "
                            + actual[i] + " vs " + normal[i]);
                }
            }
        }
    }

    @Test
    void convertRoundsToNearestEven() {
        float[] values = {1f, Float.intBitsToFloat(0x3f808000), Float.intBitsToFloat(0x3f818000), -3.14159f, 1e-40f};
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            Tensor source = cuda.upload(Tensor.of(host, values, values.length), device);
            Tensor bf16 = device.zeros(DType.BF16, values.length);
            Tensor back = device.zeros(values.length);
            cuda.convert(source, bf16);
            cuda.convert(bf16, back);
            float[] actual = cuda.download(back, host).toFloatArray();
            for (int i = 0; i < values.length; i++) {
                assertEquals(DType.bf16ToFloat(DType.floatToBf16(values[i])), actual[i], "value " + i);
            }
        }
    }

    @Test
    void badArgumentsSayWhich() {
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            Tensor a = device.zeros(3, 4), hostTensor = host.zeros(3, 4);
            IllegalArgumentException shape = assertThrows(IllegalArgumentException.class,
                    () -> cuda.add(a, device.zeros(5), device.zeros(3, 4)));
            assertTrue(shape.getMessage().startsWith("add:"), shape.getMessage());
            IllegalArgumentException place = assertThrows(IllegalArgumentException.class,
                    () -> cuda.scale(hostTensor, 2f, a));
            assertTrue(place.getMessage().contains("device tensors"), place.getMessage());
        }
    }

    @Test
    void deviceScopesCountLiveBytesAndTheCacheReusesBlocks() {
        long before = Device.CUDA.liveBytes();
        long reserved;
        try (MemoryScope device = cuda.scope("device")) {
            device.zeros(1000);
            assertEquals(before + 4000, Device.CUDA.liveBytes());
            reserved = cuda.memory().reservedBytes();
        }
        assertEquals(before, Device.CUDA.liveBytes());
        try (MemoryScope device = cuda.scope("again"); MemoryScope host = new MemoryScope("host")) {
            Tensor reused = device.zeros(1000);
            assertEquals(reserved, cuda.memory().reservedBytes(), "the freed block is reused");
            assertArrayEquals(new float[1000], cuda.download(reused, host).toFloatArray(), "reused memory is zeroed");
        }
    }
}
