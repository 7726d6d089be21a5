package io.microdit.backend.cuda;

import io.microdit.backend.FlopCounter;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * The base of {@link CudaBackend}'s op families (one class per kernels/*.cu file, as the CPU backend has one per
 * family): the backend's stream and FLOP counter, and short forwards to the plumbing it keeps — tensor pointers
 * (counted by the launch trace), the status check (which the trace and {@link FlopCounter} key on by op name), the
 * grow-only workspace, the error record and the readback buffer. The families hold no device state of their own
 * apart from the optimizer's tensor lists; everything runs in order on the backend's one stream.
 */
abstract sealed class CudaOps permits CudaGemm, CudaElementwise, CudaNorm, CudaTokens, CudaOptimizer, CudaRandom,
        CudaActivations, CudaAttention, CudaMoe, CudaEmbed, CudaLoss {
    /** Bytes of the device error record at the head of the readback buffer (microdit.h). */
    static final long ERROR_RECORD_BYTES = CudaBackend.ERROR_RECORD_BYTES;

    final CudaBackend cuda;
    final MemorySegment stream;
    final FlopCounter flops;

    CudaOps(CudaBackend cuda) {
        this.cuda = cuda;
        this.stream = cuda.stream();
        this.flops = cuda.flops();
    }

    static void requireDevice(String op, String argument, Tensor t) {
        CudaBackend.requireDevice(op, argument, t);
    }

    /**
     * The bf16_grads mask of a _bf16grad entry (microdit.h): bit i set when {@code gradients[i]}, the entry's
     * gradient operands in argument order, is BF16; 0 selects the plain entry.
     */
    static int bf16Grads(Tensor... gradients) {
        int mask = 0;
        for (int i = 0; i < gradients.length; i++) {
            if (gradients[i].dtype() == DType.BF16) {
                mask |= 1 << i;
            }
        }
        return mask;
    }

    final MemorySegment pointer(String op, String argument, Tensor t) {
        return cuda.pointer(op, argument, t);
    }

    final MemorySegment pointer(String op, String argument, Tensor t, long touchedBytes) {
        return cuda.pointer(op, argument, t, touchedBytes);
    }

    final MemorySegment optionalPointer(String op, String argument, Tensor t) {
        return cuda.optionalPointer(op, argument, t);
    }

    final void check(int status, String op) {
        cuda.check(status, op);
    }

    final MemoryScope scope(String name) {
        return cuda.scope(name);
    }

    final MemorySegment workspace(long floats) {
        return cuda.workspace(floats);
    }

    final MemorySegment reductionWorkspace(String op, long rows, long columns) {
        return cuda.reductionWorkspace(op, rows, columns);
    }

    final long reductionCapacity() {
        return cuda.reductionCapacity();
    }

    final MemorySegment errorRecord() {
        return cuda.errorRecord();
    }

    final MemorySegment readbackValues(long values) {
        return cuda.readbackValues(values);
    }

    final MemorySegment readBack(Arena arena, long values) {
        return cuda.readBack(arena, values);
    }
}
