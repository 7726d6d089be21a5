package io.microdit.backend.cuda;

import io.microdit.backend.Checks;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.List;

/**
 * AdamW, EMA and the sum of squares, for one tensor or a whole list in one launch: drives kernels/optim.cu
 * (mdt_optim_*). Holds the device tensor lists of the multi-tensor ops; the sums come back through the backend's
 * readback buffer, with one host wait.
 */
final class CudaOptimizer extends CudaOps {
    /** Most partials of one tensor's sum of squares, and its threads per block (microdit.h). */
    static final int SUM_OF_SQUARES_PARTIALS = 256;
    private static final int SUM_OF_SQUARES_THREADS = 256;
    /** Longs of one mdt_tensor_list_entry (microdit.h): 4 pointers, n, element and partial offsets. */
    private static final int LIST_ENTRY_LONGS = 7;

    private final Tensor sumOfSquaresPartials;
    /** The device tensor lists of the multi-tensor optimizer ops, one per op. */
    private final DeviceTensorList squaresList = new DeviceTensorList();
    private final DeviceTensorList adamwList = new DeviceTensorList();
    /** AdamW's bf16 working copies, entry i's pointers[0] the copy of adamwList's entry i. */
    private final DeviceTensorList copyList = new DeviceTensorList();
    private final DeviceTensorList emaList = new DeviceTensorList();

    CudaOptimizer(CudaBackend cuda, Tensor sumOfSquaresPartials) {
        super(cuda);
        this.sumOfSquaresPartials = sumOfSquaresPartials;
    }

    double sumOfSquares(Tensor x) {
        String op = "sumOfSquares";
        Checks.dtype(op, "x", x, DType.F32);
        MemorySegment result = readbackValues(1);
        check(OptimizerBindings.mdt_optim_sum_of_squares(stream, pointer(op, "x", x), x.numel(),
                sumOfSquaresPartials.segment(), SUM_OF_SQUARES_PARTIALS, result), op);
        flops.add(op, 2 * x.numel());
        try (Arena arena = Arena.ofConfined()) {
            return readBack(arena, 1).get(ValueLayout.JAVA_DOUBLE, ERROR_RECORD_BYTES); // the caller needs it now
        }
    }

    /**
     * One multi-tensor op for the whole list (two launches): each tensor's sum, with the bits of
     * {@link #sumOfSquares(Tensor)}, goes to its own device slot, then one copy brings all of them back with one wait;
     * the host adds them in list order, so the result is deterministic.
     */
    double sumOfSquares(List<Tensor> tensors) {
        String op = "sumOfSquares";
        Checks.argument(tensors != null, op, "tensors is null");
        for (Tensor x : tensors) {
            Checks.dtype(op, "x", x, DType.F32);
            requireDevice(op, "x", x); // all refused before any launches
        }
        MemorySegment entries = squaresList.entries(op, List.of("x"), List.of(tensors));
        long partials = squaresList.totalPartials;
        MemorySegment scratch = workspace(2 * partials); // doubles
        MemorySegment results = readbackValues(tensors.size());
        check(OptimizerBindings.mdt_optim_sum_of_squares_multi(stream, entries, tensors.size(), partials, scratch,
                reductionCapacity() / 2, results, errorRecord()), op);
        flops.add(op, 2 * squaresList.total);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = readBack(arena, tensors.size()); // the caller needs the value now
            double sum = 0;
            for (int i = 0; i < tensors.size(); i++) {
                sum += host.get(ValueLayout.JAVA_DOUBLE, ERROR_RECORD_BYTES + 8L * i);
            }
            return sum;
        }
    }

    void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, float learningRate, float beta1, float beta2,
               float epsilon, float weightDecay, long step, float gradScale) {
        String op = "adamw";
        Checks.adamw(param, grad, m, v, beta1, beta2, epsilon, step);
        check(OptimizerBindings.mdt_optim_adamw(stream, pointer(op, "param", param), pointer(op, "grad", grad),
                pointer(op, "m", m), pointer(op, "v", v), param.numel(), learningRate, beta1, beta2, epsilon,
                weightDecay, step, gradScale), op);
        flops.add(op, 13 * param.numel());
    }

    /** One launch for the whole list; every element gets the bits of the one-tensor op. */
    void adamw(List<Tensor> params, List<Tensor> grads, List<Tensor> m, List<Tensor> v, float learningRate,
               float beta1, float beta2, float epsilon, float weightDecay, long step, float gradScale) {
        String op = "adamw";
        Checks.adamwLists(params, grads, m, v, beta1, beta2, epsilon, step);
        MemorySegment entries = adamwList.entries(op, List.of("param", "grad", "m", "v"), List.of(params, grads, m, v));
        check(OptimizerBindings.mdt_optim_adamw_multi(stream, entries, params.size(), adamwList.total, learningRate,
                beta1, beta2, epsilon, weightDecay, step, gradScale, errorRecord()), op);
        flops.add(op, 13 * adamwList.total);
    }

    /** One launch for the whole list, which also writes each updated parameter's bf16 working copy. */
    void adamw(List<Tensor> params, List<Tensor> grads, List<Tensor> m, List<Tensor> v, List<Tensor> copies,
               float learningRate, float beta1, float beta2, float epsilon, float weightDecay, long step,
               float gradScale) {
        String op = "adamw";
        Checks.adamwCopyLists(params, grads, m, v, copies, beta1, beta2, epsilon, step);
        MemorySegment entries = adamwList.entries(op, List.of("param", "grad", "m", "v"), List.of(params, grads, m, v));
        MemorySegment copyEntries = copyList.entries(op, List.of("copy"), List.of(copies));
        check(OptimizerBindings.mdt_optim_adamw_bf16_copy_multi(stream, entries, copyEntries, params.size(),
                adamwList.total, learningRate, beta1, beta2, epsilon, weightDecay, step, gradScale, errorRecord()), op);
        flops.add(op, 13 * adamwList.total);
    }

    void emaUpdate(Tensor ema, Tensor param, float decay) {
        String op = "emaUpdate";
        Checks.emaUpdate(ema, param, decay);
        check(OptimizerBindings.mdt_optim_ema(stream, pointer(op, "ema", ema), pointer(op, "param", param), ema.numel(),
                decay), op);
        flops.add(op, 3 * ema.numel());
    }

    /** One launch for the whole list; every element gets the bits of the one-tensor op. */
    void emaUpdate(List<Tensor> emas, List<Tensor> params, float decay) {
        String op = "emaUpdate";
        Checks.emaLists(emas, params, decay);
        MemorySegment entries = emaList.entries(op, List.of("ema", "param"), List.of(emas, params));
        check(OptimizerBindings.mdt_optim_ema_multi(stream, entries, emas.size(), emaList.total, decay, errorRecord()),
                op);
        flops.add(op, 3 * emaList.total);
    }

    /**
     * A tensor list in device memory for the multi-tensor ops (microdit.h: mdt_tensor_list_entry). Each op keeps
     * the last list it was given: a trainer passes the same tensors every step, so the entries are uploaded once
     * (staged: no host wait) and again only when a tensor differs, or whether a dry run traces (it skips uploads).
     */
    private final class DeviceTensorList {
        private long[] host = new long[0];
        private boolean uploadedInDryRun;
        private MemoryScope scope;
        private MemorySegment device = MemorySegment.NULL;
        /** Elements of the list, and sum-of-squares partials (microdit.h: P(n) summed over the entries). */
        long total;
        long totalPartials;

        /**
         * The device entries of the list whose k-th tensors are {@code columns.get(k)} (lists of equal length,
         * checked by the caller), uploaded if they differ from the last call's; sets {@link #total} and
         * {@link #totalPartials}.
         */
        MemorySegment entries(String op, List<String> names, List<List<Tensor>> columns) {
            int count = columns.getFirst().size();
            long[] entries = new long[LIST_ENTRY_LONGS * count];
            long elements = 0, partials = 0;
            for (int i = 0; i < count; i++) {
                for (int k = 0; k < columns.size(); k++) {
                    entries[LIST_ENTRY_LONGS * i + k] = pointer(op, names.get(k), columns.get(k).get(i)).address();
                }
                long n = columns.getFirst().get(i).numel();
                entries[LIST_ENTRY_LONGS * i + 4] = n;
                entries[LIST_ENTRY_LONGS * i + 5] = elements;
                entries[LIST_ENTRY_LONGS * i + 6] = partials;
                elements += n;
                partials += Math.min((n + SUM_OF_SQUARES_THREADS - 1) / SUM_OF_SQUARES_THREADS,
                        SUM_OF_SQUARES_PARTIALS);
            }
            total = elements;
            totalPartials = partials;
            boolean dryRun = cuda.tracingDryRun();
            if (scope == null || uploadedInDryRun != dryRun || !Arrays.equals(entries, host)) {
                // The old block goes back to the caching allocator, which hands it only to later work on the stream.
                MemoryScope replaced = scope("cuda-backend-tensor-list");
                MemorySegment uploaded = MemorySegment.NULL;
                if (count > 0) {
                    uploaded = replaced.allocateUninitialized(8L * entries.length);
                    cuda.staging().copyToDevice(uploaded, MemorySegment.ofArray(entries));
                }
                close();
                scope = replaced;
                device = uploaded;
                host = entries;
                uploadedInDryRun = dryRun;
            }
            return device;
        }

        void close() {
            if (scope != null) {
                scope.close();
                scope = null;
            }
        }
    }

    /** Frees the device tensor lists (the backend closes its scratch, which holds the partials, itself). */
    void close() {
        squaresList.close();
        adamwList.close();
        copyList.close();
        emaList.close();
    }
}
