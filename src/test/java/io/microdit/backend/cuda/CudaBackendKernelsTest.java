package io.microdit.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The activation, softmax, patch, embedding and loss kernels run by the CUDA backend (on the emulator in CI)
 * against the CPU backend on random inputs of awkward sizes: outputs poisoned with NaN (F32) or -7 (I32) before
 * the kernels run; F32 within 1e-5 relative to the largest magnitude, I32 bit-identical.
 */
@Tag("emu")
class CudaBackendKernelsTest extends CudaVersusCpu {
    @Test
    void activationsForwardAndBackward() {
        Random random = new Random(11);
        try (MemoryScope scope = new MemoryScope("inputs")) {
            for (int[] shape : new int[][] {{1}, {3, 17, 33}, {77, 5}}) {
                Tensor x = uniform(scope, random, 6, shape), b = uniform(scope, random, 2, shape);
                Tensor dOut = uniform(scope, random, 1, shape);
                x.setFloat(0, -95f); // far in the tail, where the exponential overflows
                for (boolean tanh : new boolean[] {true, false}) {
                    compare("gelu tanh=" + tanh, new Tensor[] {x, output(scope, shape)},
                            t -> cpu.gelu(t[0], t[1], tanh), t -> cuda.gelu(t[0], t[1], tanh));
                    compare("geluBackward tanh=" + tanh, new Tensor[] {dOut, x, output(scope, shape)},
                            t -> cpu.geluBackward(t[0], t[1], t[2], tanh),
                            t -> cuda.geluBackward(t[0], t[1], t[2], tanh));
                }
                compare("silu", new Tensor[] {x, output(scope, shape)},
                        t -> cpu.silu(t[0], t[1]), t -> cuda.silu(t[0], t[1]));
                compare("siluBackward", new Tensor[] {dOut, x, output(scope, shape)},
                        t -> cpu.siluBackward(t[0], t[1], t[2]), t -> cuda.siluBackward(t[0], t[1], t[2]));
                compare("swigluGate", new Tensor[] {x, b, output(scope, shape)},
                        t -> cpu.swigluGate(t[0], t[1], t[2]), t -> cuda.swigluGate(t[0], t[1], t[2]));
                compare("swigluGateBackward", new Tensor[] {dOut, x, b, output(scope, shape), output(scope, shape)},
                        t -> cpu.swigluGateBackward(t[0], t[1], t[2], t[3], t[4]),
                        t -> cuda.swigluGateBackward(t[0], t[1], t[2], t[3], t[4]));
            }
        }
    }

    @Test
    void softmaxOverTheLastDimensionIsDeterministic() {
        Random random = new Random(12);
        try (MemoryScope scope = new MemoryScope("inputs")) {
            for (int[] shape : new int[][] {{1, 1}, {5, 4}, {3, 7, 77}, {2, 300}}) {
                Tensor x = uniform(scope, random, 8, shape), dOut = uniform(scope, random, 1, shape);
                compare("softmax " + java.util.Arrays.toString(shape), new Tensor[] {x, output(scope, shape)},
                        t -> cpu.softmax(t[0], t[1]), t -> cuda.softmax(t[0], t[1]));
                Tensor y = scope.zeros(shape);
                cpu.softmax(x, y);
                compare("softmaxBackward", new Tensor[] {dOut, y, output(scope, shape)},
                        t -> cpu.softmaxBackward(t[0], t[1], t[2]), t -> cuda.softmaxBackward(t[0], t[1], t[2]));
            }
            int[] shape = {9, 33};
            Tensor x = uniform(scope, random, 8, shape);
            try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
                Tensor input = cuda.upload(x, device), first = device.zeros(shape), second = device.zeros(shape);
                cuda.softmax(input, first);
                cuda.softmax(input, second);
                assertArrayEquals(cuda.download(first, host).toFloatArray(), cuda.download(second, host).toFloatArray(),
                        "two runs give the same bits");
            }
        }
    }

    @Test
    void patchPermutationsMatchTheCpuOrder() {
        Random random = new Random(13);
        try (MemoryScope scope = new MemoryScope("inputs")) {
            for (int[] size : new int[][] {{1, 1, 2, 2, 1}, {2, 3, 8, 12, 4}, {3, 4, 6, 10, 2}}) {
                int n = size[0], c = size[1], h = size[2], w = size[3], p = size[4];
                int[] image = {n, c, h, w}, tokens = {n, (h / p) * (w / p), c * p * p};
                Tensor img = uniform(scope, random, 1, image), tok = uniform(scope, random, 1, tokens);
                compare("patchify", new Tensor[] {img, output(scope, tokens)},
                        t -> cpu.patchify(t[0], p, t[1]), t -> cuda.patchify(t[0], p, t[1]));
                compare("patchifyBackward", new Tensor[] {tok, output(scope, image)},
                        t -> cpu.patchifyBackward(t[0], p, t[1]), t -> cuda.patchifyBackward(t[0], p, t[1]));
                compare("unpatchify", new Tensor[] {tok, output(scope, image)},
                        t -> cpu.unpatchify(t[0], p, t[1]), t -> cuda.unpatchify(t[0], p, t[1]));
                compare("unpatchifyBackward", new Tensor[] {img, output(scope, tokens)},
                        t -> cpu.unpatchifyBackward(t[0], p, t[1]), t -> cuda.unpatchifyBackward(t[0], p, t[1]));
            }
        }
    }

    @Test
    void sinusoidalEmbeddings() {
        Random random = new Random(14);
        try (MemoryScope scope = new MemoryScope("inputs")) {
            for (int[] grid : new int[][] {{1, 1, 4}, {3, 5, 12}, {8, 8, 64}}) {
                compare("positionEmbedding2d", new Tensor[] {output(scope, grid[0] * grid[1], grid[2])},
                        t -> cpu.positionEmbedding2d(grid[0], grid[1], 0.5f, t[0]),
                        t -> cuda.positionEmbedding2d(grid[0], grid[1], 0.5f, t[0]));
            }
            Tensor times = uniform(scope, random, 3, 5);
            times.setFloat(0, 0f);
            times.setFloat(1, 2.5f);
            for (int size : new int[] {1, 7, 256}) {
                compare("timestepEmbedding " + size, new Tensor[] {times, output(scope, 5, size)},
                        t -> cpu.timestepEmbedding(t[0], t[1]), t -> cuda.timestepEmbedding(t[0], t[1]));
            }
        }
    }

    @Test
    void maskedEdmLossAndBackward() {
        Random random = new Random(15);
        try (MemoryScope scope = new MemoryScope("inputs")) {
            int n = 3, c = 3, h = 8, w = 12, p = 4, patches = (h / p) * (w / p);
            Tensor denoised = uniform(scope, random, 2, n, c, h, w), target = uniform(scope, random, 2, n, c, h, w);
            Tensor weight = uniform(scope, random, 1, n);
            Tensor mask = scope.zeros(n, patches);
            for (int i = 0; i < n * patches; i++) {
                mask.setFloat(i, random.nextInt(3) == 0 ? 1f : 0f);
            }
            Tensor finite = scope.zeros(n, c, h, w).copyFrom(denoised);
            denoised.setFloat(0, Float.NaN);
            mask.setFloat(0, 1f); // the patch holding the NaN is removed
            mask.setFloat(1, 0f);
            for (Tensor m : new Tensor[] {mask, null}) {
                Tensor d = m == null ? finite : denoised;
                float[] losses = new float[2];
                compare("edmLoss mask=" + (m != null), new Tensor[] {d, target, weight, m, output(scope, n)},
                        t -> losses[0] = cpu.edmLoss(t[0], t[1], t[2], t[3], p, t[4]),
                        t -> losses[1] = cuda.edmLoss(t[0], t[1], t[2], t[3], p, t[4]));
                assertEquals(losses[0], losses[1], 1e-6 * Math.abs(losses[0]), "mean loss");
                compare("edmLossBackward mask=" + (m != null),
                        new Tensor[] {d, target, weight, m, output(scope, n, c, h, w)},
                        t -> cpu.edmLossBackward(0.7f, t[0], t[1], t[2], t[3], p, t[4]),
                        t -> cuda.edmLossBackward(0.7f, t[0], t[1], t[2], t[3], p, t[4]));
            }
        }
    }

    @Test
    void expertChoiceRoutingMatchesTheCpuBitForBit() {
        Random random = new Random(16);
        try (MemoryScope scope = new MemoryScope("inputs")) {
            for (int[] size : new int[][] {{2, 77, 3, 13, 33}, {1, 5, 4, 5, 7}, {3, 64, 8, 16, 16}}) {
                int n = size[0], tokens = size[1], experts = size[2], k = size[3], dim = size[4];
                Tensor probs = scope.zeros(n, tokens, experts);
                for (int i = 0; i < probs.numel(); i++) {
                    probs.setFloat(i, random.nextInt(9) / 8f); // few distinct values: many ties
                }
                probs.setFloat(1, Float.NaN);
                probs.setFloat(2, -0f);
                probs.setFloat(experts + 2, 0f);
                int[] routed = {n, experts, k};
                compare("expertChoiceTopK " + java.util.Arrays.toString(size), new Tensor[] {probs,
                        output(scope, routed), output(scope, DType.I32, routed)},
                        t -> cpu.expertChoiceTopK(t[0], k, t[1], t[2]),
                        t -> cuda.expertChoiceTopK(t[0], k, t[1], t[2]));
                Tensor gates = scope.zeros(routed), indices = scope.zeros(DType.I32, routed);
                Tensor softmaxProbs = scope.zeros(n, tokens, experts);
                cpu.softmax(uniform(scope, random, 3, n, tokens, experts), softmaxProbs);
                cpu.expertChoiceTopK(softmaxProbs, k, gates, indices);
                Tensor dGates = uniform(scope, random, 1, routed);
                Tensor dProbs = uniform(scope, random, 1, n, tokens, experts);
                compare("expertChoiceTopKBackward", new Tensor[] {dGates, indices, dProbs},
                        t -> cpu.expertChoiceTopKBackward(t[0], t[1], t[2]),
                        t -> cuda.expertChoiceTopKBackward(t[0], t[1], t[2]));
                Tensor x = uniform(scope, random, 1, n, tokens, dim);
                int[] expertRows = {experts, n * k, dim};
                compare("moeDispatch", new Tensor[] {x, indices, output(scope, expertRows)},
                        t -> cpu.moeDispatch(t[0], t[1], t[2]), t -> cuda.moeDispatch(t[0], t[1], t[2]));
                Tensor h = uniform(scope, random, 1, expertRows), dx = uniform(scope, random, 1, n, tokens, dim);
                compare("moeDispatchBackward", new Tensor[] {h, indices, dx},
                        t -> cpu.moeDispatchBackward(t[0], t[1], t[2]),
                        t -> cuda.moeDispatchBackward(t[0], t[1], t[2]));
                compare("moeCombine", new Tensor[] {h, gates, indices, output(scope, n, tokens, dim)},
                        t -> cpu.moeCombine(t[0], t[1], t[2], t[3]), t -> cuda.moeCombine(t[0], t[1], t[2], t[3]));
                compare("moeCombineBackward", new Tensor[] {dx, h, gates, indices, output(scope, expertRows),
                        output(scope, routed)},
                        t -> cpu.moeCombineBackward(t[0], t[1], t[2], t[3], t[4], t[5]),
                        t -> cuda.moeCombineBackward(t[0], t[1], t[2], t[3], t[4], t[5]));
            }
            try (MemoryScope device = cuda.scope("device")) {
                Tensor bad = cuda.upload(Tensor.ofInts(scope, new int[] {0, 9}, 1, 1, 2), device);
                // Indices are checked on the device: the op returns, the next wait throws.
                cuda.moeCombine(device.zeros(1, 2, 3), device.zeros(1, 1, 2), bad, device.zeros(1, 5, 3));
                IllegalArgumentException error = assertThrows(IllegalArgumentException.class, cuda::synchronize);
                assertEquals("moeCombine: indices[0, 0, 1] = 9 is not a token index in [0, 5)", error.getMessage());
                cuda.synchronize(); // reported once: the record is reset
            }
        }
    }

    @Test
    void fusedAttentionSelfAndCrossForwardAndBackward() {
        Random random = new Random(17);
        try (MemoryScope scope = new MemoryScope("inputs")) {
            // {samples, queries, keys, heads, head dim}: tails of both tiles, 77 caption keys, head dims 7/32/64/128.
            for (int[] size : new int[][] {{2, 19, 19, 3, 7}, {1, 33, 77, 2, 32}, {2, 17, 40, 1, 64}, {1, 5, 3, 1, 128}}) {
                int n = size[0], queries = size[1], keys = size[2], heads = size[3], width = heads * size[4];
                Tensor q = uniform(scope, random, 2, n, queries, width), k = uniform(scope, random, 2, n, keys, width);
                Tensor v = uniform(scope, random, 1, n, keys, width);
                Tensor dOut = uniform(scope, random, 1, n, queries, width);
                String what = "attention " + java.util.Arrays.toString(size);
                compare(what, new Tensor[] {q, k, v, output(scope, n, queries, width), output(scope, n, heads, queries)},
                        t -> cpu.attention(t[0], t[1], t[2], heads, t[3], t[4]),
                        t -> cuda.attention(t[0], t[1], t[2], heads, t[3], t[4]));
                Tensor out = scope.zeros(n, queries, width), lse = scope.zeros(n, heads, queries);
                cpu.attention(q, k, v, heads, out, lse);
                compare(what + " backward", new Tensor[] {dOut, q, k, v, out, lse, output(scope, n, queries, width),
                        output(scope, n, keys, width), output(scope, n, keys, width)},
                        t -> cpu.attentionBackward(t[0], t[1], t[2], t[3], t[4], t[5], heads, t[6], t[7], t[8]),
                        t -> cuda.attentionBackward(t[0], t[1], t[2], t[3], t[4], t[5], heads, t[6], t[7], t[8]));
            }
            try (MemoryScope device = cuda.scope("device")) {
                Tensor wide = device.zeros(1, 2, 258);
                IllegalArgumentException error = assertThrows(IllegalArgumentException.class,
                        () -> cuda.attention(wide, wide, wide, 2, device.zeros(1, 2, 258), device.zeros(1, 2, 2)));
                assertTrue(error.getMessage().startsWith("attention:") && error.getMessage().contains("129"),
                        error.getMessage());
            }
        }
    }

    @Test
    void badArgumentsNameTheOp() {
        try (MemoryScope device = cuda.scope("device")) {
            Tensor image = device.zeros(1, 2, 6, 6);
            IllegalArgumentException patch = assertThrows(IllegalArgumentException.class,
                    () -> cuda.patchify(image, 4, device.zeros(1, 1, 32)));
            assertTrue(patch.getMessage().startsWith("patchify:"), patch.getMessage());
            IllegalArgumentException shape = assertThrows(IllegalArgumentException.class,
                    () -> cuda.gelu(device.zeros(3), device.zeros(4), true));
            assertTrue(shape.getMessage().startsWith("gelu:"), shape.getMessage());
            Tensor allRemoved = device.zeros(1, 4);
            try (MemoryScope host = new MemoryScope("host")) {
                allRemoved = cuda.upload(host.zeros(1, 4).fill(1f), device);
            }
            Tensor mask = allRemoved;
            IllegalArgumentException loss = assertThrows(IllegalArgumentException.class,
                    () -> cuda.edmLoss(device.zeros(1, 1, 4, 4), device.zeros(1, 1, 4, 4), device.zeros(1), mask, 2,
                            device.zeros(1)));
            assertTrue(loss.getMessage().startsWith("edmLoss:") && loss.getMessage().contains("keeps no patch"),
                    loss.getMessage());
        }
    }

    @Test
    void bothBackendsRefuseBadArgumentsWithOneMessage() {
        Random random = new Random(18);
        try (MemoryScope scope = new MemoryScope("inputs")) {
            Tensor indices = Tensor.ofInts(scope, new int[] {0, 4, 2, 1}, 1, 2, 2);
            sameRefusal("moeCombineBackward", new Tensor[] {uniform(scope, random, 1, 1, 5, 3),
                    uniform(scope, random, 1, 2, 2, 3), uniform(scope, random, 1, 1, 2, 2), indices,
                    output(scope, 2, 2, 4), output(scope, 1, 2, 2)},
                    t -> cpu.moeCombineBackward(t[0], t[1], t[2], t[3], t[4], t[5]),
                    t -> cuda.moeCombineBackward(t[0], t[1], t[2], t[3], t[4], t[5]));
            sameRefusal("expertChoiceTopK", new Tensor[] {uniform(scope, random, 1, 1, 3, 2), output(scope, 1, 2, 4),
                    output(scope, DType.I32, 1, 2, 4)},
                    t -> cpu.expertChoiceTopK(t[0], 4, t[1], t[2]), t -> cuda.expertChoiceTopK(t[0], 4, t[1], t[2]));
            Tensor q = uniform(scope, random, 1, 1, 4, 8), k = uniform(scope, random, 1, 1, 5, 8);
            Tensor out = uniform(scope, random, 1, 1, 4, 8), lse = uniform(scope, random, 1, 1, 2, 4);
            sameRefusal("attentionBackward", new Tensor[] {out, q, k, k, out, lse, output(scope, 1, 4, 8),
                    output(scope, 1, 4, 8), output(scope, 1, 5, 8)},
                    t -> cpu.attentionBackward(t[0], t[1], t[2], t[3], t[4], t[5], 2, t[6], t[7], t[8]),
                    t -> cuda.attentionBackward(t[0], t[1], t[2], t[3], t[4], t[5], 2, t[6], t[7], t[8]));
            sameRefusal("attention", new Tensor[] {q.to(DType.BF16, scope), k, k, output(scope, 1, 4, 8),
                    output(scope, 1, 2, 4)},
                    t -> cpu.attention(t[0], t[1], t[2], 2, t[3], t[4]),
                    t -> cuda.attention(t[0], t[1], t[2], 2, t[3], t[4]));
            sameRefusal("scatterRows", new Tensor[] {uniform(scope, random, 1, 1, 3, 2),
                    Tensor.ofInts(scope, new int[] {0, 1, 2}, 1, 3), output(scope, 1, 2, 2)},
                    t -> cpu.scatterRows(t[0], t[1], t[2]), t -> cuda.scatterRows(t[0], t[1], t[2]));
            Tensor denoised = uniform(scope, random, 1, 1, 1, 4, 4), target = uniform(scope, random, 1, 1, 1, 4, 4);
            Tensor mask = scope.zeros(1, 4).fill(1f);
            sameRefusal("edmLoss", new Tensor[] {denoised, target, uniform(scope, random, 1, 1), mask,
                    output(scope, 1)},
                    t -> cpu.edmLoss(t[0], t[1], t[2], t[3], 2, t[4]),
                    t -> cuda.edmLoss(t[0], t[1], t[2], t[3], 2, t[4]));
            sameRefusal("positionEmbedding2d", new Tensor[] {output(scope, 6, 6)},
                    t -> cpu.positionEmbedding2d(2, 3, 1f, t[0]), t -> cuda.positionEmbedding2d(2, 3, 1f, t[0]));
            Tensor x = uniform(scope, random, 1, 3, 5);
            sameRefusal("layerNormBackward", new Tensor[] {x, x, uniform(scope, random, 1, 3),
                    uniform(scope, random, 1, 3), output(scope, 3, 5), output(scope, 5)},
                    t -> cpu.layerNormBackward(t[0], t[1], null, t[2], t[3], t[4], t[5]),
                    t -> cuda.layerNormBackward(t[0], t[1], null, t[2], t[3], t[4], t[5]));
        }
    }
}
