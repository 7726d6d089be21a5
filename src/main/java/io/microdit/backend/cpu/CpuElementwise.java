package io.microdit.backend.cpu;

import io.microdit.backend.FlopCounter;
import io.microdit.tensor.Tensor;

final class CpuElementwise {
    private final Parallel parallel;
    private final FlopCounter flops;

    CpuElementwise(Parallel parallel, FlopCounter flops) {
        this.parallel = parallel;
        this.flops = flops;
    }

    void add(Tensor a, Tensor b, Tensor out) {
        throw new UnsupportedOperationException("CpuElementwise.add");
    }

    void mul(Tensor a, Tensor b, Tensor out) {
        throw new UnsupportedOperationException("CpuElementwise.mul");
    }

    void scale(Tensor x, float alpha, Tensor out) {
        throw new UnsupportedOperationException("CpuElementwise.scale");
    }

    void axpy(float alpha, Tensor x, Tensor y) {
        io.microdit.backend.Checks.sameShapeF32("axpy", "x", x, "y", y);
        java.lang.foreign.MemorySegment xs = x.segment(), ys = y.segment();
        java.lang.foreign.ValueLayout.OfFloat f = java.lang.foreign.ValueLayout.JAVA_FLOAT;
        parallel.forRange((int) x.numel(), 1 << 14, (start, end) -> {
            for (int i = start; i < end; i++) {
                ys.setAtIndex(f, i, ys.getAtIndex(f, i) + alpha * xs.getAtIndex(f, i));
            }
        });
        flops.add("axpy", 2 * x.numel());
    }

    void modulate(Tensor x, Tensor shift, Tensor scale, Tensor out) {
        throw new UnsupportedOperationException("CpuElementwise.modulate");
    }

    void modulateBackward(Tensor dOut, Tensor x, Tensor scale, Tensor dx, Tensor dShift, Tensor dScale) {
        throw new UnsupportedOperationException("CpuElementwise.modulateBackward");
    }

    void gatedResidual(Tensor x, Tensor gate, Tensor f, Tensor out) {
        throw new UnsupportedOperationException("CpuElementwise.gatedResidual");
    }

    void gatedResidualBackward(Tensor dOut, Tensor gate, Tensor f, Tensor dGate, Tensor dF) {
        throw new UnsupportedOperationException("CpuElementwise.gatedResidualBackward");
    }

    void sliceColumns(Tensor x, int start, Tensor out) {
        throw new UnsupportedOperationException("CpuElementwise.sliceColumns");
    }

    void sliceColumnsBackward(Tensor dOut, int start, Tensor dx) {
        throw new UnsupportedOperationException("CpuElementwise.sliceColumnsBackward");
    }

    void convert(Tensor source, Tensor target) {
        throw new UnsupportedOperationException("CpuElementwise.convert");
    }
}
