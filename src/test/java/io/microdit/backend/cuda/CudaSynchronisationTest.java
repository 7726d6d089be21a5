package io.microdit.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.autograd.GradScope;
import io.microdit.autograd.Graph;
import io.microdit.autograd.Variable;
import io.microdit.backend.Backend;
import io.microdit.diffusion.Edm;
import io.microdit.diffusion.EdmObjective;
import io.microdit.model.MaskingMode;
import io.microdit.model.MicroDiT;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
import io.microdit.train.AdamW;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.function.BiConsumer;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Where the CUDA backend makes the host wait for the device (each wait drains the GPU's pipeline): once for the
 * global gradient norm, never for checking device-resident arguments, whose failures the next wait throws with the
 * CPU backend's message. On the emulator, with memory Java may not touch, as on a GPU.
 */
@Tag("emu")
class CudaSynchronisationTest extends OpaqueCudaVersusCpu {


    @Test
    void sumOfSquaresOfManyTensorsWaitsOnce() {
        Random random = new Random(8);
        // More tensors than the readback buffer first holds (256), so it grows; sizes with tails, one of 1 element,
        // and one over 256 blocks of partials.
        int[] sizes = new int[300];
        for (int i = 0; i < sizes.length; i++) {
            sizes[i] = 1 + random.nextInt(300);
        }
        sizes[0] = 1;
        sizes[1] = 256 * 256 * 3 + 17;
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            List<Tensor> onHost = new ArrayList<>(), onDevice = new ArrayList<>();
            for (int size : sizes) {
                Tensor x = TestData.uniform(host, random, size);
                onHost.add(x);
                onDevice.add(cuda.upload(x, device));
            }
            long before = cuda.synchronizations();
            double sum = cuda.sumOfSquares(onDevice);
            assertEquals(1, cuda.synchronizations() - before, "host waits for one global sum of squares");
            double singles = 0;
            for (Tensor x : onDevice) {
                singles += cuda.sumOfSquares(x);
            }
            assertEquals(singles, sum, 0.0, "the same partials added in the same order");
            double expected = cpu.sumOfSquares(onHost);
            assertEquals(expected, sum, 1e-12 * expected, "against the CPU backend");
            assertEquals(sizes.length, cuda.synchronizations() - before - 1, "one wait per single-tensor call");
            assertEquals(0.0, cuda.sumOfSquares(List.of()));
            IllegalArgumentException bf16 = assertThrows(IllegalArgumentException.class,
                    () -> cuda.sumOfSquares(List.of(onDevice.get(0), device.zeros(DType.BF16, 3))));
            assertTrue(bf16.getMessage().startsWith("sumOfSquares: x must be F32"), bf16.getMessage());
        }
    }

    @Test
    void fillWritesOnTheDeviceWithoutWaiting() {
        try (MemoryScope device = cuda.scope("device")) {
            Tensor x = device.zeros(3, 37);
            long before = cuda.synchronizations();
            cuda.fill(x, -2.5f);
            assertEquals(before, cuda.synchronizations());
            float[] expected = new float[3 * 37];
            java.util.Arrays.fill(expected, -2.5f);
            assertArrayEquals(expected, cuda.read(x));
        }
    }

    /** A bad argument: the CPU backend throws at the op; the CUDA op returns without a wait, the next wait throws. */
    private static void failsAtTheNextWait(Tensor[] hostArguments, BiConsumer<Backend, Tensor[]> op) {
        IllegalArgumentException onCpu = assertThrows(IllegalArgumentException.class,
                () -> op.accept(cpu, hostArguments));
        try (MemoryScope device = cuda.scope("device")) {
            Tensor[] deviceArguments = new Tensor[hostArguments.length];
            for (int i = 0; i < hostArguments.length; i++) {
                deviceArguments[i] = hostArguments[i] == null ? null : cuda.upload(hostArguments[i], device);
            }
            long before = cuda.synchronizations();
            op.accept(cuda, deviceArguments);
            assertEquals(before, cuda.synchronizations(), onCpu.getMessage() + ": the op made the host wait");
            IllegalArgumentException onCuda = assertThrows(IllegalArgumentException.class, cuda::synchronize);
            assertEquals(onCpu.getMessage(), onCuda.getMessage());
            cuda.synchronize(); // reported once: the record is cleared
        }
    }

    @Test
    void badDeviceArgumentsThrowAtTheNextWaitWithTheCpuMessage() {
        Random random = new Random(9);
        try (MemoryScope host = new MemoryScope("host")) {
            int n = 2, tokens = 7, experts = 3, k = 2, dim = 5;
            int[] bad = new int[n * experts * k];
            for (int i = 0; i < bad.length; i++) {
                bad[i] = i % tokens;
            }
            bad[9] = tokens + 4; // [1, 1, 1]
            Tensor indices = Tensor.ofInts(host, bad, n, experts, k);
            Tensor gates = TestData.uniform(host, random, n, experts, k);
            Tensor x = TestData.uniform(host, random, n, tokens, dim);
            Tensor routed = TestData.uniform(host, random, experts, n * k, dim);
            Tensor probs = TestData.uniform(host, random, n, tokens, experts);
            failsAtTheNextWait(new Tensor[] {gates, indices, probs},
                    (b, t) -> b.expertChoiceTopKBackward(t[0], t[1], t[2]));
            failsAtTheNextWait(new Tensor[] {x, indices, routed}, (b, t) -> b.moeDispatch(t[0], t[1], t[2]));
            failsAtTheNextWait(new Tensor[] {routed, indices, x}, (b, t) -> b.moeDispatchBackward(t[0], t[1], t[2]));
            failsAtTheNextWait(new Tensor[] {routed, gates, indices, x},
                    (b, t) -> b.moeCombine(t[0], t[1], t[2], t[3]));
            failsAtTheNextWait(new Tensor[] {x, routed, gates, indices, routed.to(DType.F32, host), gates.to(DType.F32,
                    host)}, (b, t) -> b.moeCombineBackward(t[0], t[1], t[2], t[3], t[4], t[5]));
            bad[9] = 1;
            bad[0] = -1; // [0, 0, 0]: negative
            Tensor negative = Tensor.ofInts(host, bad, n, experts, k);
            failsAtTheNextWait(new Tensor[] {x, negative, routed}, (b, t) -> b.moeDispatch(t[0], t[1], t[2]));

            Tensor ids = Tensor.ofInts(host, new int[] {4, 0, 6, 2, 7, 1}, n, 3); // [1, 1] = 7 of 7 tokens
            Tensor kept = TestData.uniform(host, random, n, 3, dim);
            failsAtTheNextWait(new Tensor[] {x, ids, kept}, (b, t) -> b.gatherRows(t[0], t[1], t[2]));
            failsAtTheNextWait(new Tensor[] {kept, ids, x}, (b, t) -> b.scatterRows(t[0], t[1], t[2]));
            Tensor repeated = Tensor.ofInts(host, new int[] {4, 0, 6, 2, 5, 2}, n, 3);
            failsAtTheNextWait(new Tensor[] {kept, repeated, x}, (b, t) -> b.scatterRows(t[0], t[1], t[2]));

            Tensor image = TestData.uniform(host, random, n, 2, 4, 6), target = TestData.uniform(host, random, n, 2, 4,
                    6), weight = TestData.uniform(host, random, n);
            Tensor mask = Tensor.of(host, new float[] {0, 1, 0, 1, 0, 1, 1, 1, 1, 1, 1, 1}, n, 6); // sample 1: none kept
            failsAtTheNextWait(new Tensor[] {image, target, weight, mask, image.to(DType.F32, host)},
                    (b, t) -> b.edmLossBackward(0.5f, t[0], t[1], t[2], t[3], 2, t[4]));
        }
    }

    @Test
    void theFirstFailureIsReportedAndCloseThrowsAPendingOne() {
        try (MemoryScope host = new MemoryScope("host")) {
            Tensor x = TestData.uniform(host, new Random(2), 1, 4, 3);
            CudaBackend own = CudaBackend.opaque();
            IllegalArgumentException pending;
            try (MemoryScope device = own.scope("device")) {
                Tensor onDevice = own.upload(x, device);
                own.gatherRows(onDevice, own.upload(Tensor.ofInts(host, new int[] {9}, 1, 1), device),
                        device.zeros(1, 1, 3));
                own.moeDispatch(onDevice, own.upload(Tensor.ofInts(host, new int[] {-3}, 1, 1, 1), device),
                        device.zeros(1, 1, 3));
                IllegalArgumentException first = assertThrows(IllegalArgumentException.class,
                        () -> own.read(onDevice));
                assertEquals("gatherRows: ids[0, 0] = 9 is out of range [0, 4)", first.getMessage());
                own.moeDispatch(onDevice, own.upload(Tensor.ofInts(host, new int[] {-3}, 1, 1, 1), device),
                        device.zeros(1, 1, 3));
            } finally {
                pending = assertThrows(IllegalArgumentException.class, own::close);
            }
            assertEquals("moeDispatch: indices[0, 0, 0] = -3 is not a token index in [0, 4)", pending.getMessage());
        }
    }

    /**
     * One training step of the tiny MicroDiT (MoE in both stacks, deferred masking) and the optimizer update, with
     * the batch upload: the host waits only where Java needs a value. The uploads and the writes of EdmObjective's
     * scalings and TokenMask's ids and mask are host→device copies through the staging ring, which do not wait.
     */
    @Test
    void aTrainingStepWaitsOnlyWhereTheHostNeedsAValue() {
        MicroDiT model = MicroDiT.create(CudaTrainingStepTest.tiny(), 5, cuda);
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device");
             AdamW optimizer = new AdamW(cuda, model.parameters(), AdamW.MICRODIT)) {
            Random random = new Random(3);
            for (int step = 0; step < 2; step++) {
                try (MemoryScope stepScope = cuda.scope("step")) {
                    long start = cuda.synchronizations();
                    Tensor latents = cuda.upload(TestData.uniform(host, random, 3, 2, 8, 8), stepScope);
                    Tensor captions = cuda.upload(TestData.uniform(host, random, 3, 5, 12), stepScope);
                    long upload = cuda.synchronizations();
                    Graph g = new Graph(cuda, stepScope);
                    try (GradScope ignored = g.recordGradients()) {
                        Variable loss = new EdmObjective(Edm.MICRODIT_256, MaskingMode.DEFERRED, 0.5, 0.0)
                                .loss(g, model, latents, captions, 11, 40 + 3 * step);
                        long forward = cuda.synchronizations();
                        cuda.read(loss.value());
                        loss.backward();
                        long backward = cuda.synchronizations();
                        optimizer.update(1e-4, 1.0);
                        long update = cuda.synchronizations();
                        System.out.println("host waits: upload " + (upload - start) + ", forward " + (forward - upload)
                                + ", read and backward " + (backward - forward) + ", update " + (update - backward));
                        // Forward: only edmLoss, which returns the loss. Then the caller's read of the loss and the
                        // loss backward's read of its seed; the update's one wait for the global gradient norm.
                        // Before staged copies: 2 upload, 10 forward (EdmObjective read latents and noise back and
                        // wrote 5 scalings, TokenMask wrote 2 tensors), 2 read and backward, 1 update: 15 in all.
                        assertEquals(0, upload - start, "upload");
                        assertEquals(1, forward - upload, "forward");
                        assertEquals(2, backward - forward, "read and backward");
                        assertEquals(1, update - backward, "update");
                    }
                }
            }
            assertEquals(0, cuda.staging().waits(), "the staging ring never ran out");
        } finally {
            model.parameters().close();
        }
    }
}
