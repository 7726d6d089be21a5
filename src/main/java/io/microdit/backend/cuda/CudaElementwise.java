package io.microdit.backend.cuda;

import io.microdit.backend.Checks;
import io.microdit.tensor.DType;
import io.microdit.tensor.Tensor;
import java.lang.foreign.MemorySegment;

/**
 * Broadcast add and mul, scale, axpy, adaLN modulate, gated residual, column slices and the F32/BF16
 * conversion: drives kernels/elementwise.cu (mdt_elementwise_*).
 */
final class CudaElementwise extends CudaOps {
    CudaElementwise(CudaBackend cuda) {
        super(cuda);
    }

    void add(Tensor a, Tensor b, Tensor out) {
        String op = "add";
        Checks.add(a, b, out);
        MemorySegment as = pointer(op, "a", a), bs = pointer(op, "b", b), os = pointer(op, "out", out);
        check(b.dtype() == DType.BF16
                ? ElementwiseBindings.mdt_elementwise_add_bf16in(stream, as, bs, os, a.numel(), b.numel())
                : ElementwiseBindings.mdt_elementwise_add(stream, as, bs, os, a.numel(), b.numel()), op);
        flops.add(op, a.numel());
    }

    void mul(Tensor a, Tensor b, Tensor out) {
        String op = "mul";
        Checks.broadcast(op, a, b, out);
        check(ElementwiseBindings.mdt_elementwise_mul(stream, pointer(op, "a", a), pointer(op, "b", b),
                pointer(op, "out", out), a.numel(), b.numel()), op);
        flops.add(op, a.numel());
    }

    void scale(Tensor x, float alpha, Tensor out) {
        String op = "scale";
        Checks.sameShapeF32(op, "x", x, "out", out);
        check(ElementwiseBindings.mdt_elementwise_scale(stream, pointer(op, "x", x), alpha, pointer(op, "out", out),
                x.numel()), op);
        flops.add(op, x.numel());
    }

    void axpy(float alpha, Tensor x, Tensor y) {
        String op = "axpy";
        Checks.sameShapeF32(op, "x", x, "y", y);
        check(ElementwiseBindings.mdt_elementwise_axpy(stream, alpha, pointer(op, "x", x), pointer(op, "y", y),
                x.numel()), op);
        flops.add(op, 2 * x.numel());
    }

    void modulate(Tensor x, Tensor shift, Tensor scale, Tensor out) {
        String op = "modulate";
        int[] s = Checks.modulate(x, shift, scale, out);
        int samples = s[0], tokens = s[1], width = s[2];
        check(ElementwiseBindings.mdt_elementwise_modulate_fwd(stream, pointer(op, "x", x), pointer(op, "shift", shift),
                pointer(op, "scale", scale), pointer(op, "out", out), samples, tokens, width), op);
        flops.add(op, 3 * x.numel());
    }

    void modulateBackward(Tensor dOut, Tensor x, Tensor scale, Tensor dx, Tensor dShift, Tensor dScale) {
        String op = "modulateBackward";
        int[] s = Checks.modulateBackward(dOut, x, scale, dx, dShift, dScale);
        int samples = s[0], tokens = s[1], width = s[2];
        check(ElementwiseBindings.mdt_elementwise_modulate_bwd(stream, pointer(op, "dOut", dOut), pointer(op, "x", x),
                pointer(op, "scale", scale), pointer(op, "dx", dx), pointer(op, "dShift", dShift),
                pointer(op, "dScale", dScale), samples, tokens, width), op);
        flops.add(op, 5 * x.numel());
    }

    void gatedResidual(Tensor x, Tensor gate, Tensor f, Tensor out) {
        String op = "gatedResidual";
        int[] s = Checks.gatedResidual(x, gate, f, out);
        int samples = s[0], tokens = s[1], width = s[2];
        MemorySegment xs = pointer(op, "x", x), gates = pointer(op, "gate", gate), fs = pointer(op, "f", f),
                os = pointer(op, "out", out);
        check(f.dtype() == DType.BF16
                ? ElementwiseBindings.mdt_elementwise_gated_residual_fwd_bf16in(stream, xs, gates, fs, os, samples,
                        tokens, width)
                : ElementwiseBindings.mdt_elementwise_gated_residual_fwd(stream, xs, gates, fs, os, samples, tokens,
                        width), op);
        flops.add(op, 2 * x.numel());
    }

    void gatedResidualBackward(Tensor dOut, Tensor gate, Tensor f, Tensor dGate, Tensor dF) {
        String op = "gatedResidualBackward";
        int[] s = Checks.gatedResidualBackward(dOut, gate, f, dGate, dF);
        int samples = s[0], tokens = s[1], width = s[2];
        MemorySegment gs = pointer(op, "dOut", dOut), gates = pointer(op, "gate", gate), fs = pointer(op, "f", f),
                dGates = pointer(op, "dGate", dGate), dFs = pointer(op, "dF", dF);
        int grads = bf16Grads(dF);
        boolean bf16In = f.dtype() == DType.BF16;
        check(grads != 0 && bf16In
                ? ElementwiseBindings.mdt_elementwise_gated_residual_bwd_bf16in_bf16grad(stream, gs, gates, fs, dGates,
                        dFs, samples, tokens, width, grads)
                : grads != 0 ? ElementwiseBindings.mdt_elementwise_gated_residual_bwd_bf16grad(stream, gs, gates, fs,
                        dGates, dFs, samples, tokens, width, grads)
                : bf16In ? ElementwiseBindings.mdt_elementwise_gated_residual_bwd_bf16in(stream, gs, gates, fs, dGates,
                        dFs, samples, tokens, width)
                : ElementwiseBindings.mdt_elementwise_gated_residual_bwd(stream, gs, gates, fs, dGates, dFs, samples,
                        tokens, width), op);
        flops.add(op, 3 * f.numel());
    }

    void sliceColumns(Tensor x, int start, Tensor out) {
        String op = "sliceColumns";
        int[] s = Checks.sliceColumns(x, start, out);
        // The kernel reads only the slice's columns of x: the trace counts those, not all of x.
        check(ElementwiseBindings.mdt_elementwise_slice_columns_fwd(stream, pointer(op, "x", x, out.byteSize()), start,
                pointer(op, "out", out), s[0], s[1], s[2]), op);
    }

    void sliceColumnsBackward(Tensor dOut, int start, Tensor dx) {
        String op = "sliceColumnsBackward";
        int[] s = Checks.sliceColumnsBackward(dOut, start, dx);
        // The kernel adds into the slice's columns of dx only: the trace counts those, not all of dx.
        check(ElementwiseBindings.mdt_elementwise_slice_columns_bwd(stream, pointer(op, "dOut", dOut), start,
                pointer(op, "dx", dx, dOut.byteSize()), s[0], s[1], s[2]), op);
        flops.add(op, dOut.numel());
    }

    void convert(Tensor source, Tensor target) {
        String op = "convert";
        Checks.convert(source, target);
        MemorySegment from = pointer(op, "source", source), to = pointer(op, "target", target);
        int status;
        if (source.dtype() == target.dtype()) {
            status = RuntimeBindings.mdt_memcpy_dtod(to, from, source.byteSize(), stream);
        } else if (target.dtype() == DType.BF16) {
            status = ElementwiseBindings.mdt_elementwise_f32_to_bf16(stream, from, to, source.numel());
        } else {
            status = ElementwiseBindings.mdt_elementwise_bf16_to_f32(stream, from, to, source.numel());
        }
        check(status, op);
    }
}
