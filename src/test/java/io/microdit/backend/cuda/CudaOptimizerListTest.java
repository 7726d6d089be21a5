package io.microdit.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The multi-tensor optimizer ops (one launch for a list, kernels/optim.cu) against the one-tensor CUDA ops (the same
 * bits) and the CPU backend, on awkward sizes; their device tensor lists are cached without host waits and rebuilt
 * when the tensors change. On the emulator, with memory Java may not touch, as on a GPU.
 */
@Tag("emu")
class CudaOptimizerListTest extends OpaqueCudaVersusCpu {
    /** A mix: one element, tails, more than one chunk and more than 256 partials, an empty tensor. */
    private static final int[] SIZES = {1, 7, 300, 70000, 0, 2049, 5, 256 * 256 + 3, 256};
    private static final float LEARNING_RATE = 3e-3f, BETA1 = 0.9f, BETA2 = 0.999f, EPSILON = 1e-8f, DECAY = 0.1f;



    /** {@code count} random tensors of each size on the host: uniform in [-1, 1), |x| where {@code positive}. */
    private static List<Tensor> random(MemoryScope host, Random random, boolean positive) {
        List<Tensor> out = new ArrayList<>();
        for (int size : SIZES) {
            Tensor t = TestData.uniform(host, random, size);
            if (positive) {
                for (int i = 0; i < size; i++) {
                    t.setFloat(i, Math.abs(t.getFloat(i)) + 1e-3f);
                }
            }
            out.add(t);
        }
        return out;
    }

    private static List<Tensor> upload(List<Tensor> host, MemoryScope device) {
        List<Tensor> out = new ArrayList<>();
        for (Tensor t : host) {
            out.add(cuda.upload(t, device));
        }
        return out;
    }

    private static void assertSameBits(List<Tensor> expected, List<Tensor> actual, String what) {
        for (int i = 0; i < expected.size(); i++) {
            assertArrayEquals(cuda.read(expected.get(i)), cuda.read(actual.get(i)), what + " tensor " + i);
        }
    }

    private static void assertNear(List<Tensor> cpuResult, List<Tensor> cudaResult, String what) {
        for (int i = 0; i < cpuResult.size(); i++) {
            float[] expected = cpuResult.get(i).toFloatArray(), actual = cuda.read(cudaResult.get(i));
            for (int j = 0; j < expected.length; j++) {
                assertEquals(expected[j], actual[j], 1e-6 * Math.max(1, Math.abs(expected[j])),
                        what + " tensor " + i + " element " + j);
            }
        }
    }

    @Test
    void adamwListHasTheBitsOfTheOneTensorKernelsAndMakesNoWait() {
        Random random = new Random(21);
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            List<Tensor> params = random(host, random, false), grads = random(host, random, false);
            List<Tensor> m = random(host, random, false), v = random(host, random, true);
            List<Tensor> singleParams = upload(params, device), singleM = upload(m, device);
            List<Tensor> singleV = upload(v, device), grad = upload(grads, device);
            List<Tensor> listParams = upload(params, device), listM = upload(m, device), listV = upload(v, device);
            long before = cuda.synchronizations();
            for (int step = 1; step <= 3; step++) { // later steps reuse the uploaded list
                float scale = 0.25f * step;
                for (int i = 0; i < SIZES.length; i++) {
                    cuda.adamw(singleParams.get(i), grad.get(i), singleM.get(i), singleV.get(i), LEARNING_RATE,
                            BETA1, BETA2, EPSILON, DECAY, step, scale);
                }
                cuda.adamw(listParams, grad, listM, listV, LEARNING_RATE, BETA1, BETA2, EPSILON, DECAY, step, scale);
                cpu.adamw(params, grads, m, v, LEARNING_RATE, BETA1, BETA2, EPSILON, DECAY, step, scale);
            }
            assertEquals(before, cuda.synchronizations(), "the list op and its upload made the host wait");
            assertSameBits(singleParams, listParams, "param");
            assertSameBits(singleM, listM, "m");
            assertSameBits(singleV, listV, "v");
            assertNear(params, listParams, "param against the CPU");
            assertNear(m, listM, "m against the CPU");
            assertNear(v, listV, "v against the CPU");
        }
    }

    /** Empty BF16 tensors of the shapes of {@code like}, in {@code scope}. */
    private static List<Tensor> bf16Like(List<Tensor> like, MemoryScope scope) {
        List<Tensor> out = new ArrayList<>();
        for (Tensor t : like) {
            out.add(Tensor.zeros(scope, DType.BF16, t.shape()));
        }
        return out;
    }

    @Test
    void adamwWithBf16CopiesUpdatesAsThePlainListAndWritesTheConvertOfEachUpdatedValue() {
        Random random = new Random(24);
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            List<Tensor> params = random(host, random, false), grads = random(host, random, false);
            List<Tensor> m = random(host, random, false), v = random(host, random, true);
            List<Tensor> grad = upload(grads, device);
            List<Tensor> plainParams = upload(params, device), plainM = upload(m, device), plainV = upload(v, device);
            List<Tensor> copiedParams = upload(params, device), copiedM = upload(m, device);
            List<Tensor> copiedV = upload(v, device);
            List<Tensor> copies = bf16Like(params, device), converted = bf16Like(params, device);
            List<Tensor> cpuCopies = bf16Like(params, host);
            for (int step = 1; step <= 3; step++) {
                float scale = 0.3f * step;
                cuda.adamw(plainParams, grad, plainM, plainV, LEARNING_RATE, BETA1, BETA2, EPSILON, DECAY, step, scale);
                cuda.adamw(copiedParams, grad, copiedM, copiedV, copies, LEARNING_RATE, BETA1, BETA2, EPSILON, DECAY,
                        step, scale);
                cpu.adamw(params, grads, m, v, cpuCopies, LEARNING_RATE, BETA1, BETA2, EPSILON, DECAY, step, scale);
            }
            assertSameBits(plainParams, copiedParams, "param");
            assertSameBits(plainM, copiedM, "m");
            assertSameBits(plainV, copiedV, "v");
            for (int i = 0; i < SIZES.length; i++) {
                cuda.convert(copiedParams.get(i), converted.get(i));
            }
            assertSameBits(converted, copies, "bf16 copy against convert(param)");
            for (int i = 0; i < SIZES.length; i++) {
                float[] cpuParam = params.get(i).toFloatArray(), cpuCopy = cpuCopies.get(i).toFloatArray();
                for (int j = 0; j < cpuParam.length; j++) {
                    assertEquals(Float.floatToRawIntBits(cpuParam[j]) + 0x7fff + ((Float.floatToRawIntBits(cpuParam[j])
                            >>> 16) & 1) >>> 16 << 16, Float.floatToRawIntBits(cpuCopy[j]),
                            "CPU copy of tensor " + i + " element " + j + " is its round-to-nearest-even bf16");
                }
            }
            assertNear(params, copiedParams, "param against the CPU");
            List<Tensor> wrongType = upload(params, device);
            assertThrows(IllegalArgumentException.class, () -> cuda.adamw(copiedParams, grad, copiedM, copiedV,
                    wrongType, LEARNING_RATE, BETA1, BETA2, EPSILON, DECAY, 4, 1f));
            assertThrows(IllegalArgumentException.class, () -> cuda.adamw(copiedParams, grad, copiedM, copiedV,
                    copies.subList(1, copies.size()), LEARNING_RATE, BETA1, BETA2, EPSILON, DECAY, 4, 1f));
        }
    }

    @Test
    void emaListHasTheBitsOfTheOneTensorKernel() {
        Random random = new Random(22);
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            List<Tensor> averages = random(host, random, false), params = random(host, random, false);
            List<Tensor> single = upload(averages, device), list = upload(averages, device);
            List<Tensor> onDevice = upload(params, device);
            long before = cuda.synchronizations();
            for (float decay : new float[] {0.99f, 0.5f}) {
                for (int i = 0; i < SIZES.length; i++) {
                    cuda.emaUpdate(single.get(i), onDevice.get(i), decay);
                }
                cuda.emaUpdate(list, onDevice, decay);
                cpu.emaUpdate(averages, params, decay);
            }
            assertEquals(before, cuda.synchronizations());
            assertSameBits(single, list, "ema");
            assertNear(averages, list, "ema against the CPU");
        }
    }

    @Test
    void sumOfSquaresListIsTheListOrderSumOfTheOneTensorSums() {
        Random random = new Random(23);
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            List<Tensor> onHost = random(host, random, false);
            List<Tensor> onDevice = upload(onHost, device);
            double singles = 0;
            for (Tensor x : onDevice) {
                singles += cuda.sumOfSquares(x);
            }
            double sum = cuda.sumOfSquares(onDevice);
            assertEquals(singles, sum, 0.0, "the same partials added in the same order");
            assertEquals(sum, cuda.sumOfSquares(onDevice), 0.0, "the same bits on a second run");
            double expected = cpu.sumOfSquares(onHost);
            assertEquals(expected, sum, 1e-12 * expected, "against the CPU backend");
            // Sub-lists in another order: the cached list is replaced, and the sum follows the new order.
            List<Tensor> reversed = new ArrayList<>(onDevice.reversed());
            double reversedSingles = 0;
            for (Tensor x : reversed) {
                reversedSingles += cuda.sumOfSquares(x);
            }
            assertEquals(reversedSingles, cuda.sumOfSquares(reversed), 0.0);
            assertEquals(cuda.sumOfSquares(onDevice.get(3)), cuda.sumOfSquares(List.of(onDevice.get(3))), 0.0);
            assertEquals(0.0, cuda.sumOfSquares(List.of(onDevice.get(4))), "an empty tensor");
            assertEquals(0.0, cuda.sumOfSquares(List.of()), "an empty list");
        }
    }

    @Test
    void emptyListsAndListsThatChangeBetweenCalls() {
        Random random = new Random(24);
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            cuda.adamw(List.of(), List.of(), List.of(), List.of(), LEARNING_RATE, BETA1, BETA2, EPSILON, DECAY, 1, 1f);
            cuda.emaUpdate(List.of(), List.of(), 0.9f);
            List<Tensor> averages = random(host, random, false), params = random(host, random, false);
            List<Tensor> single = upload(averages, device), list = upload(averages, device);
            List<Tensor> onDevice = upload(params, device);
            // Alternate between the whole list and a sub-list: each call must use its own tensors.
            for (int round = 0; round < 2; round++) {
                cuda.emaUpdate(list, onDevice, 0.9f);
                cuda.emaUpdate(list.subList(2, 5), onDevice.subList(2, 5), 0.8f);
                for (int i = 0; i < SIZES.length; i++) {
                    cuda.emaUpdate(single.get(i), onDevice.get(i), 0.9f);
                }
                for (int i = 2; i < 5; i++) {
                    cuda.emaUpdate(single.get(i), onDevice.get(i), 0.8f);
                }
            }
            assertSameBits(single, list, "ema");
        }
    }

    @Test
    void aDryRunUploadsNothingAndTheNextRealCallUploadsAgain() {
        Random random = new Random(25);
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            List<Tensor> averages = random(host, random, false), params = random(host, random, false);
            List<Tensor> single = upload(averages, device), list = upload(averages, device);
            List<Tensor> onDevice = upload(params, device);
            cuda.emaUpdate(list, onDevice, 0.5f); // uploaded
            try (LaunchTrace trace = cuda.traceLaunches(true)) {
                cuda.emaUpdate(list, onDevice, 0.5f); // planned, not run
                cuda.sumOfSquares(onDevice);
                List<LaunchTrace.OpCall> calls = trace.calls();
                assertEquals(2, calls.size(), calls.toString());
                assertEquals(1, calls.get(0).launches().size(), "emaUpdate of a list: one launch");
                assertEquals(2, calls.get(1).launches().size(), "sumOfSquares of a list: two launches");
            }
            cuda.emaUpdate(list, onDevice, 0.5f);
            for (int i = 0; i < SIZES.length; i++) {
                cuda.emaUpdate(single.get(i), onDevice.get(i), 0.5f);
                cuda.emaUpdate(single.get(i), onDevice.get(i), 0.5f);
            }
            assertSameBits(single, list, "ema after a dry run");
        }
    }

    @Test
    void badListsAreRefusedBeforeAnyUpdate() {
        Random random = new Random(26);
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            List<Tensor> a = upload(random(host, random, false), device);
            List<Tensor> b = upload(random(host, random, false), device);
            List<Tensor> c = upload(random(host, random, false), device);
            List<Tensor> d = upload(random(host, random, true), device);
            float[] before = cuda.read(a.get(2));
            IllegalArgumentException sizes = assertThrows(IllegalArgumentException.class,
                    () -> cuda.adamw(a, b, c, d.subList(0, 3), LEARNING_RATE, BETA1, BETA2, EPSILON, DECAY, 1, 1f));
            assertEquals("adamw: v has 3 tensors, params " + SIZES.length, sizes.getMessage());
            List<Tensor> mismatched = new ArrayList<>(b);
            mismatched.set(5, b.get(6));
            IllegalArgumentException shape = assertThrows(IllegalArgumentException.class,
                    () -> cuda.adamw(a, mismatched, c, d, LEARNING_RATE, BETA1, BETA2, EPSILON, DECAY, 1, 1f));
            assertTrue(shape.getMessage().startsWith("entry 5 of the lists: adamw: "), shape.getMessage());
            List<Tensor> twice = new ArrayList<>(c);
            twice.set(1, a.get(1));
            IllegalArgumentException aliased = assertThrows(IllegalArgumentException.class,
                    () -> cuda.adamw(a, b, twice, d, LEARNING_RATE, BETA1, BETA2, EPSILON, DECAY, 1, 1f));
            assertTrue(aliased.getMessage().startsWith("adamw: param, m and v tensors must be distinct"),
                    aliased.getMessage());
            List<Tensor> onHost = new ArrayList<>(b);
            onHost.set(0, host.zeros(1));
            IllegalArgumentException hostTensor = assertThrows(IllegalArgumentException.class,
                    () -> cuda.emaUpdate(a, onHost, 0.5f));
            assertTrue(hostTensor.getMessage().contains("the CUDA backend needs device tensors"),
                    hostTensor.getMessage());
            IllegalArgumentException decay = assertThrows(IllegalArgumentException.class,
                    () -> cuda.emaUpdate(a, b, 1.5f));
            assertTrue(decay.getMessage().startsWith("entry 0 of the lists: emaUpdate: decay must lie in [0, 1]"),
                    decay.getMessage());
            IllegalArgumentException bf16 = assertThrows(IllegalArgumentException.class,
                    () -> cuda.sumOfSquares(List.of(a.get(0), device.zeros(DType.BF16, 3))));
            assertTrue(bf16.getMessage().startsWith("sumOfSquares: x must be F32"), bf16.getMessage());
            cuda.synchronize();
            assertArrayEquals(before, cuda.read(a.get(2)), "a refused list op updated nothing");
        }
    }

    @Test
    void theAbiChecksItsArgumentsAndTheListOffsets() {
        int n = 300;
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            assertEquals(CudaRuntime.ERROR_INVALID_ARGUMENT, OptimizerBindings.mdt_optim_ema_multi(MemorySegment.NULL,
                    MemorySegment.NULL, -1, 0, 0.5f, MemorySegment.NULL));
            assertTrue(CudaRuntime.describe(CudaRuntime.ERROR_INVALID_ARGUMENT).contains("count and total must be"));
            assertEquals(CudaRuntime.ERROR_INVALID_ARGUMENT, OptimizerBindings.mdt_optim_adamw_multi(MemorySegment.NULL,
                    MemorySegment.NULL, 2, 10, 1e-3f, 0.9f, 0.999f, 1e-8f, 0f, 1, 1f, MemorySegment.NULL));
            assertTrue(CudaRuntime.describe(CudaRuntime.ERROR_INVALID_ARGUMENT).contains("entries is NULL"));
            assertEquals(CudaRuntime.ERROR_INVALID_ARGUMENT, OptimizerBindings.mdt_optim_sum_of_squares_multi(
                    MemorySegment.NULL, MemorySegment.NULL, 1, 257, MemorySegment.NULL, 257, MemorySegment.NULL,
                    MemorySegment.NULL));
            assertTrue(CudaRuntime.describe(CudaRuntime.ERROR_INVALID_ARGUMENT).contains("at most 256 partials"));

            // Two entries whose second offset is wrong (it should be 300): reported, nothing outside a tensor touched.
            Tensor ema = cuda.upload(host.zeros(n).fill(1f), device), param = cuda.upload(host.zeros(n), device);
            Tensor entries = host.zeros(DType.I32, 2 * 7 * 2);
            long[] values = {ema.segment().address(), param.segment().address(), 0, 0, 100, 0, 0,
                    ema.segment().address() + 400, param.segment().address() + 400, 0, 0, 200, 250, 1};
            for (int i = 0; i < values.length; i++) {
                entries.segment().setAtIndex(ValueLayout.JAVA_LONG, i, values[i]);
            }
            Tensor onDevice = cuda.upload(entries, device);
            Tensor record = cuda.upload(host.zeros(DType.I32, 8), device);
            CudaRuntime.check(OptimizerBindings.mdt_optim_ema_multi(cuda.stream(), onDevice.segment(), 2, n, 0.5f,
                    record.segment()), "mdt_optim_ema_multi");
            cuda.synchronize();
            int[] reported = cuda.download(record, host).toIntArray();
            assertEquals(11, reported[0], "MDT_CHECK_OPTIM_LIST");
            assertEquals(1, reported[1], "the bad entry");
            assertEquals(2, reported[2], "of the list's count");
        }
    }
}
