package io.microdit.backend.cuda;

import io.microdit.backend.Backend;
import io.microdit.backend.Checks;
import io.microdit.backend.FlopCounter;
import io.microdit.backend.MatmulShape;
import io.microdit.tensor.DType;
import io.microdit.tensor.Device;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.Set;

/**
 * The {@link Backend} on a CUDA device, or on the host emulator when there is none: every op is one call of
 * the C ABI (microdit.h) on the backend's stream, after the same argument checks as the CPU backend. Tensors
 * must live in device scopes made by {@link #scope}; {@link #upload} and {@link #download} move data between
 * host and device.
 */
public final class CudaBackend implements Backend, AutoCloseable {
    /** Doubles of the sum-of-squares scratch: the kernel's partials, then the result. */
    private static final int SUM_OF_SQUARES_PARTIALS = 256;
    /** Largest head dimension of the attention kernels (kernels/attention.cu). */
    private static final int MAX_HEAD_DIM = 128;
    /** Head dimensions of the tensor-core attention kernel (BF16 q, k, v); others take the f32 kernel. */
    private static final Set<Integer> TENSOR_CORE_HEAD_DIMS = Set.of(32, 64, 128);
    /** Head dimensions of the tensor-core attention backward; others take the f32 kernels. */
    private static final Set<Integer> TENSOR_CORE_BACKWARD_HEAD_DIMS = Set.of(32, 64);
    /** CUDA's grid y limit: attention runs one block row per (sample, head). */
    private static final int MAX_GRID_Y = 65535;
    /** Tokens one block of the top-k kernel sorts in shared memory (kernels/moe.cu). */
    private static final int MAX_ROUTED_TOKENS = 4096;
    /** Routing slots E·k of a sample that one combine block lists in 48 KiB of shared memory. */
    private static final int MAX_SLOTS_PER_SAMPLE = 12 * 1024;

    private final FlopCounter flops = new FlopCounter();
    private final MemorySegment stream;
    private final DeviceMemory memory;
    private final MemoryScope scratchScope;
    private final Tensor sumOfSquaresScratch;
    private final String deviceName;
    private boolean closed;

    /** A backend on device 0 (or the emulator); on the emulator Java may read its memory directly. */
    public CudaBackend() {
        this(false);
    }

    private CudaBackend(boolean opaque) {
        try (Arena arena = Arena.ofConfined()) {
            CudaRuntime.check(MicroditNative.mdt_set_device(0), "mdt_set_device(0)");
            MemorySegment created = arena.allocate(ValueLayout.ADDRESS);
            CudaRuntime.check(MicroditNative.mdt_stream_create(created), "mdt_stream_create");
            this.stream = created.get(ValueLayout.ADDRESS, 0);
        }
        this.deviceName = CudaRuntime.deviceName(0);
        this.memory = new DeviceMemory(stream, opaque);
        this.scratchScope = scope("cuda-backend-scratch");
        this.sumOfSquaresScratch = scratchScope.zeros(DType.I32, 2 * (SUM_OF_SQUARES_PARTIALS + 1));
    }

    /**
     * A backend whose memory Java may never touch directly, even on the emulator: every host read or write of its
     * tensors throws, exactly as on a real GPU. For tests that code above the backend only moves values through
     * its copies; on a GPU it is the same as {@link #CudaBackend()}.
     */
    public static CudaBackend opaque() {
        return new CudaBackend(true);
    }

    @Override
    public String name() {
        return (CudaRuntime.isEmulator() ? "cuda-emulator" : "cuda") + " (" + deviceName + ")";
    }

    @Override
    public Device device() {
        return Device.CUDA;
    }

    @Override
    public FlopCounter flops() {
        return flops;
    }

    /** The caching allocator behind this backend's scopes. */
    public DeviceMemory memory() {
        return memory;
    }

    // ---------------------------------------------------------------- memory and copies

    /** A scope of device memory from this backend's caching allocator. */
    @Override
    public MemoryScope scope(String name) {
        return new MemoryScope(name, Device.CUDA, memory);
    }

    /** A device copy of a host tensor, in {@code deviceScope}; a device tensor is returned as it is. */
    @Override
    public Tensor upload(Tensor host, MemoryScope deviceScope) {
        Checks.notNull("upload", "host", host);
        if (host.device() == Device.CUDA) {
            return host;
        }
        Tensor device = Tensor.zeros(deviceScope, host.dtype(), host.shape());
        copy(host, device);
        return device;
    }

    /** A host copy of a device tensor, in {@code hostScope}; a host tensor is returned as it is. */
    @Override
    public Tensor download(Tensor device, MemoryScope hostScope) {
        Checks.notNull("download", "device", device);
        if (device.device() == Device.CPU) {
            return device;
        }
        Tensor host = Tensor.zeros(hostScope, device.dtype(), device.shape());
        copyToHost(device, host);
        return host;
    }

    /** Copies a device tensor into a host tensor of the same dtype and shape, waiting for the stream. */
    public void copyToHost(Tensor device, Tensor host) {
        String op = "copyToHost";
        pointer(op, "device", device);
        Checks.argument(host.device() == Device.CPU && host.dtype() == device.dtype() && host.sameShape(device), op,
                "host " + host.describe() + " must be a host tensor like " + device.describe());
        copy(device, host);
    }

    /**
     * One memcpy on the stream in the direction the tensors' devices give. Copies that touch host memory wait for
     * the stream, so the host tensor may be read, reused or freed as soon as this returns.
     */
    @Override
    public void copy(Tensor source, Tensor target) {
        String op = "copy";
        Checks.notNull(op, "source", source);
        Checks.notNull(op, "target", target);
        Checks.argument(source.dtype() == target.dtype() && source.numel() == target.numel(), op,
                "source " + source.describe() + " and target " + target.describe()
                        + " need the same dtype and element count");
        boolean fromDevice = source.device() == Device.CUDA, toDevice = target.device() == Device.CUDA;
        long bytes = source.byteSize();
        if (!fromDevice && !toDevice) {
            target.copyFrom(source);
        } else if (fromDevice && toDevice) {
            CudaRuntime.check(MicroditNative.mdt_memcpy_dtod(target.segment(), source.segment(), bytes, stream),
                    "mdt_memcpy_dtod");
        } else {
            CudaRuntime.check(toDevice
                    ? MicroditNative.mdt_memcpy_htod(target.segment(), source.segment(), bytes, stream)
                    : MicroditNative.mdt_memcpy_dtoh(target.segment(), source.segment(), bytes, stream),
                    toDevice ? "mdt_memcpy_htod" : "mdt_memcpy_dtoh");
            synchronize();
        }
    }

    /** Zero is a memset on the stream; other values are written from a host tensor (fills are small here). */
    @Override
    public void fill(Tensor target, float value) {
        String op = "fill";
        Checks.notNull(op, "target", target);
        if (target.device() == Device.CPU) {
            target.fill(value);
        } else if (value == 0f) {
            CudaRuntime.check(MicroditNative.mdt_memset(target.segment(), 0, target.byteSize(), stream),
                    "mdt_memset");
        } else {
            try (MemoryScope host = new MemoryScope(op + "-host")) {
                copy(Tensor.zeros(host, target.dtype(), target.shape()).fill(value), target);
            }
        }
    }

    @Override
    public void write(Tensor target, float[] values) {
        Checks.notNull("write", "target", target);
        try (MemoryScope host = new MemoryScope("write-host")) {
            copy(Tensor.zeros(host, target.dtype(), target.shape()).copyFrom(values), target);
        }
    }

    @Override
    public void write(Tensor target, int[] values) {
        Checks.notNull("write", "target", target);
        try (MemoryScope host = new MemoryScope("write-host")) {
            copy(Tensor.zeros(host, target.dtype(), target.shape()).copyFrom(values), target);
        }
    }

    @Override
    public float[] read(Tensor t) {
        try (MemoryScope host = new MemoryScope("read-host")) {
            return download(t, host).toFloatArray();
        }
    }

    /** Waits until every op issued so far has finished. */
    @Override
    public void synchronize() {
        CudaRuntime.check(MicroditNative.mdt_stream_synchronize(stream), "mdt_stream_synchronize");
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        synchronize();
        scratchScope.close();
        memory.close();
        CudaRuntime.check(MicroditNative.mdt_stream_destroy(stream), "mdt_stream_destroy");
    }

    // ---------------------------------------------------------------- matmul

    @Override
    public void matmul(Tensor a, boolean transposeA, Tensor b, boolean transposeB, Tensor bias, Tensor out,
                       boolean accumulate) {
        String op = "matmul";
        MatmulShape shape = MatmulShape.of(a, transposeA, b, transposeB, bias, out);
        if (a.dtype() == DType.BF16) {
            check(MicroditNative.mdt_gemm_matmul_bf16(stream, pointer(op, "a", a), transposeA ? 1 : 0,
                    pointer(op, "b", b), transposeB ? 1 : 0, optionalPointer(op, "bias", bias), pointer(op, "out", out),
                    shape.batch(), shape.m(), shape.n(), shape.k(), shape.strideA(), shape.strideB(),
                    accumulate ? 1 : 0, 0), op);
            flops.add(op, shape.flops());
            return;
        }
        check(MicroditNative.mdt_gemm_matmul(stream, pointer(op, "a", a), transposeA ? 1 : 0, pointer(op, "b", b),
                transposeB ? 1 : 0, optionalPointer(op, "bias", bias), pointer(op, "out", out), shape.batch(),
                shape.m(), shape.n(), shape.k(), shape.strideA(), shape.strideB(), accumulate ? 1 : 0), op);
        flops.add(op, shape.flops());
    }

    @Override
    public void sumRows(Tensor x, Tensor out, boolean accumulate) {
        String op = "sumRows";
        long columns = Checks.sumRows(x, out);
        check(MicroditNative.mdt_gemm_sum_rows(stream, pointer(op, "x", x), pointer(op, "out", out),
                x.numel() / columns, columns, accumulate ? 1 : 0), op);
        flops.add(op, x.numel());
    }

    // ---------------------------------------------------------------- elementwise

    @Override
    public void add(Tensor a, Tensor b, Tensor out) {
        broadcast("add", a, b, out);
    }

    @Override
    public void mul(Tensor a, Tensor b, Tensor out) {
        broadcast("mul", a, b, out);
    }

    private void broadcast(String op, Tensor a, Tensor b, Tensor out) {
        Checks.broadcast(op, a, b, out);
        MemorySegment as = pointer(op, "a", a), bs = pointer(op, "b", b), os = pointer(op, "out", out);
        int status = op.equals("add")
                ? MicroditNative.mdt_elementwise_add(stream, as, bs, os, a.numel(), b.numel())
                : MicroditNative.mdt_elementwise_mul(stream, as, bs, os, a.numel(), b.numel());
        check(status, op);
        flops.add(op, a.numel());
    }

    @Override
    public void scale(Tensor x, float alpha, Tensor out) {
        String op = "scale";
        Checks.sameShapeF32(op, "x", x, "out", out);
        check(MicroditNative.mdt_elementwise_scale(stream, pointer(op, "x", x), alpha, pointer(op, "out", out),
                x.numel()), op);
        flops.add(op, x.numel());
    }

    @Override
    public void axpy(float alpha, Tensor x, Tensor y) {
        String op = "axpy";
        Checks.sameShapeF32(op, "x", x, "y", y);
        check(MicroditNative.mdt_elementwise_axpy(stream, alpha, pointer(op, "x", x), pointer(op, "y", y),
                x.numel()), op);
        flops.add(op, 2 * x.numel());
    }

    @Override
    public void modulate(Tensor x, Tensor shift, Tensor scale, Tensor out) {
        String op = "modulate";
        int[] s = Checks.modulate(x, shift, scale, out);
        int samples = s[0], tokens = s[1], width = s[2];
        check(MicroditNative.mdt_elementwise_modulate_fwd(stream, pointer(op, "x", x), pointer(op, "shift", shift),
                pointer(op, "scale", scale), pointer(op, "out", out), samples, tokens, width), op);
        flops.add(op, 3 * x.numel());
    }

    @Override
    public void modulateBackward(Tensor dOut, Tensor x, Tensor scale, Tensor dx, Tensor dShift, Tensor dScale) {
        String op = "modulateBackward";
        int[] s = Checks.modulateBackward(dOut, x, scale, dx, dShift, dScale);
        int samples = s[0], tokens = s[1], width = s[2];
        check(MicroditNative.mdt_elementwise_modulate_bwd(stream, pointer(op, "dOut", dOut), pointer(op, "x", x),
                pointer(op, "scale", scale), pointer(op, "dx", dx), pointer(op, "dShift", dShift),
                pointer(op, "dScale", dScale), samples, tokens, width), op);
        flops.add(op, 5 * x.numel());
    }

    @Override
    public void gatedResidual(Tensor x, Tensor gate, Tensor f, Tensor out) {
        String op = "gatedResidual";
        int[] s = Checks.gatedResidual(x, gate, f, out);
        int samples = s[0], tokens = s[1], width = s[2];
        check(MicroditNative.mdt_elementwise_gated_residual_fwd(stream, pointer(op, "x", x), pointer(op, "gate", gate),
                pointer(op, "f", f), pointer(op, "out", out), samples, tokens, width), op);
        flops.add(op, 2 * x.numel());
    }

    @Override
    public void gatedResidualBackward(Tensor dOut, Tensor gate, Tensor f, Tensor dGate, Tensor dF) {
        String op = "gatedResidualBackward";
        int[] s = Checks.gatedResidualBackward(dOut, gate, f, dGate, dF);
        int samples = s[0], tokens = s[1], width = s[2];
        check(MicroditNative.mdt_elementwise_gated_residual_bwd(stream, pointer(op, "dOut", dOut),
                pointer(op, "gate", gate), pointer(op, "f", f), pointer(op, "dGate", dGate), pointer(op, "dF", dF),
                samples, tokens, width), op);
        flops.add(op, 3 * f.numel());
    }

    @Override
    public void sliceColumns(Tensor x, int start, Tensor out) {
        String op = "sliceColumns";
        int[] s = Checks.sliceColumns(x, start, out);
        check(MicroditNative.mdt_elementwise_slice_columns_fwd(stream, pointer(op, "x", x), start,
                pointer(op, "out", out), s[0], s[1], s[2]), op);
    }

    @Override
    public void sliceColumnsBackward(Tensor dOut, int start, Tensor dx) {
        String op = "sliceColumnsBackward";
        int[] s = Checks.sliceColumnsBackward(dOut, start, dx);
        check(MicroditNative.mdt_elementwise_slice_columns_bwd(stream, pointer(op, "dOut", dOut), start,
                pointer(op, "dx", dx), s[0], s[1], s[2]), op);
        flops.add(op, dOut.numel());
    }

    // ---------------------------------------------------------------- normalisation

    @Override
    public void layerNorm(Tensor x, Tensor weight, float eps, Tensor out, Tensor mean, Tensor rstd) {
        String op = "layerNorm";
        int width = Checks.layerNorm(x, weight, eps, out, mean, rstd);
        long rows = x.rowCount();
        check(MicroditNative.mdt_norm_layer_norm_fwd(stream, pointer(op, "x", x), optionalPointer(op, "weight", weight),
                eps, pointer(op, "out", out), pointer(op, "mean", mean), pointer(op, "rstd", rstd), rows, width), op);
        flops.add(op, (weight == null ? 7L : 8L) * x.numel());
    }

    @Override
    public void layerNormBackward(Tensor dOut, Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dx,
                                  Tensor dWeight) {
        String op = "layerNormBackward";
        int width = Checks.layerNormBackward(dOut, x, weight, mean, rstd, dx, dWeight);
        long rows = x.rowCount();
        check(MicroditNative.mdt_norm_layer_norm_bwd(stream, pointer(op, "dOut", dOut), pointer(op, "x", x),
                optionalPointer(op, "weight", weight), pointer(op, "mean", mean), pointer(op, "rstd", rstd),
                pointer(op, "dx", dx), optionalPointer(op, "dWeight", dWeight), rows, width), op);
        flops.add(op, (weight == null ? 11L : dWeight != null ? 16L : 14L) * x.numel());
    }

    // ---------------------------------------------------------------- tokens

    @Override
    public void gatherRows(Tensor x, Tensor ids, Tensor out) {
        String op = "gatherRows";
        int[] s = Checks.gatherRows(x, ids, out);
        int samples = s[0], tokens = s[1], kept = s[2], width = s[3];
        checkIds(op, ids, samples, kept, tokens, false);
        check(MicroditNative.mdt_tokens_gather_rows(stream, pointer(op, "x", x), pointer(op, "ids", ids),
                pointer(op, "out", out), samples, tokens, kept, width), op);
    }

    @Override
    public void scatterRows(Tensor x, Tensor ids, Tensor out) {
        String op = "scatterRows";
        int[] s = Checks.scatterRows(x, ids, out);
        int samples = s[0], tokens = s[1], kept = s[2], width = s[3];
        checkIds(op, ids, samples, kept, tokens, true);
        check(MicroditNative.mdt_tokens_scatter_rows(stream, pointer(op, "x", x), pointer(op, "ids", ids),
                pointer(op, "out", out), samples, tokens, kept, width), op);
    }

    /**
     * Ids live on the device; they are copied back and checked as the CPU backend checks them (range, and
     * distinct per sample for the scatter), so a bad id fails the same way on both backends.
     */
    private void checkIds(String op, Tensor ids, int samples, int kept, int tokens, boolean distinct) {
        pointer(op, "ids", ids);
        int[] index;
        try (MemoryScope host = new MemoryScope(op + "-ids")) {
            index = download(ids, host).toIntArray();
        }
        int[] seen = distinct ? new int[tokens] : null;
        for (int sample = 0; sample < samples; sample++) {
            if (distinct) {
                Arrays.fill(seen, -1);
            }
            for (int j = 0; j < kept; j++) {
                int id = index[sample * kept + j];
                Checks.argument(id >= 0 && id < tokens, op, "ids[" + sample + ", " + j + "] = " + id
                        + " is outside [0, " + tokens + ")");
                if (distinct) {
                    Checks.argument(seen[id] < 0, op, "ids of sample " + sample + " are not distinct: " + id
                            + " appears at positions " + seen[id] + " and " + j);
                    seen[id] = j;
                }
            }
        }
    }

    @Override
    public void meanTokens(Tensor x, Tensor out) {
        String op = "meanTokens";
        int[] s = Checks.meanTokens(x, out);
        int samples = s[0], tokens = s[1], width = s[2];
        check(MicroditNative.mdt_tokens_mean_fwd(stream, pointer(op, "x", x), pointer(op, "out", out), samples, tokens,
                width), op);
        flops.add(op, x.numel());
    }

    @Override
    public void meanTokensBackward(Tensor dOut, Tensor dx) {
        String op = "meanTokensBackward";
        int[] s = Checks.meanTokensBackward(dOut, dx);
        int samples = s[0], tokens = s[1], width = s[2];
        check(MicroditNative.mdt_tokens_mean_bwd(stream, pointer(op, "dOut", dOut), pointer(op, "dx", dx), samples,
                tokens, width), op);
        flops.add(op, (long) samples * width);
    }

    // ---------------------------------------------------------------- optimizer

    @Override
    public double sumOfSquares(Tensor x) {
        String op = "sumOfSquares";
        Checks.dtype(op, "x", x, DType.F32);
        MemorySegment scratch = sumOfSquaresScratch.segment();
        MemorySegment result = scratch.asSlice(SUM_OF_SQUARES_PARTIALS * 8L, 8);
        check(MicroditNative.mdt_optim_sum_of_squares(stream, pointer(op, "x", x), x.numel(), scratch,
                SUM_OF_SQUARES_PARTIALS, result), op);
        flops.add(op, 2 * x.numel());
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(ValueLayout.JAVA_DOUBLE);
            CudaRuntime.check(MicroditNative.mdt_memcpy_dtoh(host, result, 8, stream), "mdt_memcpy_dtoh");
            synchronize();
            return host.get(ValueLayout.JAVA_DOUBLE, 0);
        }
    }

    @Override
    public void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, float learningRate, float beta1, float beta2,
                      float epsilon, float weightDecay, long step, float gradScale) {
        String op = "adamw";
        Checks.adamw(param, grad, m, v, beta1, beta2, epsilon, step);
        check(MicroditNative.mdt_optim_adamw(stream, pointer(op, "param", param), pointer(op, "grad", grad),
                pointer(op, "m", m), pointer(op, "v", v), param.numel(), learningRate, beta1, beta2, epsilon,
                weightDecay, step, gradScale), op);
        flops.add(op, 13 * param.numel());
    }

    @Override
    public void emaUpdate(Tensor ema, Tensor param, float decay) {
        String op = "emaUpdate";
        Checks.emaUpdate(ema, param, decay);
        check(MicroditNative.mdt_optim_ema(stream, pointer(op, "ema", ema), pointer(op, "param", param), ema.numel(),
                decay), op);
        flops.add(op, 3 * ema.numel());
    }

    // ---------------------------------------------------------------- random numbers

    @Override
    public void uniform(long seed, long stream, long offset, Tensor out) {
        String op = "uniform";
        Checks.random(op, offset, out);
        check(MicroditNative.mdt_rng_uniform(this.stream, seed, stream, offset, pointer(op, "out", out), out.numel()),
                op);
        flops.add(op, out.numel());
    }

    @Override
    public void normal(long seed, long stream, long offset, Tensor out) {
        String op = "normal";
        Checks.random(op, offset, out);
        check(MicroditNative.mdt_rng_normal(this.stream, seed, stream, offset, pointer(op, "out", out), out.numel()),
                op);
        flops.add(op, 5 * out.numel());
    }

    // ---------------------------------------------------------------- conversion

    @Override
    public void convert(Tensor source, Tensor target) {
        String op = "convert";
        Checks.convert(source, target);
        MemorySegment from = pointer(op, "source", source), to = pointer(op, "target", target);
        int status;
        if (source.dtype() == target.dtype()) {
            status = MicroditNative.mdt_memcpy_dtod(to, from, source.byteSize(), stream);
        } else if (target.dtype() == DType.BF16) {
            status = MicroditNative.mdt_elementwise_f32_to_bf16(stream, from, to, source.numel());
        } else {
            status = MicroditNative.mdt_elementwise_bf16_to_f32(stream, from, to, source.numel());
        }
        check(status, op);
    }

    // ---------------------------------------------------------------- activations

    @Override
    public void gelu(Tensor x, Tensor out, boolean tanhApproximation) {
        String op = "gelu";
        Checks.sameShapeF32(op, "x", x, "out", out);
        check(MicroditNative.mdt_activations_gelu_fwd(stream, pointer(op, "x", x), pointer(op, "out", out), x.numel(),
                tanhApproximation ? 1 : 0), op);
        flops.add(op, (tanhApproximation ? 10L : 30L) * x.numel());
    }

    @Override
    public void geluBackward(Tensor dOut, Tensor x, Tensor dx, boolean tanhApproximation) {
        String op = "geluBackward";
        Checks.pointwiseBackward(op, dOut, x, dx);
        check(MicroditNative.mdt_activations_gelu_bwd(stream, pointer(op, "dOut", dOut), pointer(op, "x", x),
                pointer(op, "dx", dx), x.numel(), tanhApproximation ? 1 : 0), op);
        flops.add(op, (tanhApproximation ? 16L : 36L) * x.numel());
    }

    @Override
    public void silu(Tensor x, Tensor out) {
        String op = "silu";
        Checks.sameShapeF32(op, "x", x, "out", out);
        check(MicroditNative.mdt_activations_silu_fwd(stream, pointer(op, "x", x), pointer(op, "out", out), x.numel()),
                op);
        flops.add(op, 4 * x.numel());
    }

    @Override
    public void siluBackward(Tensor dOut, Tensor x, Tensor dx) {
        String op = "siluBackward";
        Checks.pointwiseBackward(op, dOut, x, dx);
        check(MicroditNative.mdt_activations_silu_bwd(stream, pointer(op, "dOut", dOut), pointer(op, "x", x),
                pointer(op, "dx", dx), x.numel()), op);
        flops.add(op, 8 * x.numel());
    }

    @Override
    public void swigluGate(Tensor a, Tensor b, Tensor out) {
        String op = "swigluGate";
        Checks.swigluGate(a, b, out);
        check(MicroditNative.mdt_activations_swiglu_fwd(stream, pointer(op, "a", a), pointer(op, "b", b),
                pointer(op, "out", out), a.numel()), op);
        flops.add(op, 5 * a.numel());
    }

    @Override
    public void swigluGateBackward(Tensor dOut, Tensor a, Tensor b, Tensor da, Tensor db) {
        String op = "swigluGateBackward";
        Checks.swigluGateBackward(dOut, a, b, da, db);
        check(MicroditNative.mdt_activations_swiglu_bwd(stream, pointer(op, "dOut", dOut), pointer(op, "a", a),
                pointer(op, "b", b), pointer(op, "da", da), pointer(op, "db", db), a.numel()), op);
        flops.add(op, 10 * a.numel());
    }

    @Override
    public void softmax(Tensor x, Tensor out) {
        String op = "softmax";
        Checks.softmax(x, out);
        check(MicroditNative.mdt_activations_softmax_fwd(stream, pointer(op, "x", x), pointer(op, "out", out),
                x.rowCount(), x.dim(-1)), op);
        flops.add(op, 5L * x.numel());
    }

    @Override
    public void softmaxBackward(Tensor dOut, Tensor y, Tensor dx) {
        String op = "softmaxBackward";
        Checks.softmaxBackward(dOut, y, dx);
        check(MicroditNative.mdt_activations_softmax_bwd(stream, pointer(op, "dOut", dOut), pointer(op, "y", y),
                pointer(op, "dx", dx), y.rowCount(), y.dim(-1)), op);
        flops.add(op, 4L * y.numel());
    }

    // ---------------------------------------------------------------- attention

    @Override
    public void attention(Tensor q, Tensor k, Tensor v, int heads, Tensor out, Tensor lse) {
        String op = "attention";
        int[] s = Checks.attention(q, k, v, heads, out, lse);
        checkAttentionLimits(op, s[0], heads, s[3]);
        long flopCount = 4L * s[0] * heads * s[1] * s[2] * s[3];
        if (q.dtype() == DType.BF16) {
            if (TENSOR_CORE_HEAD_DIMS.contains(s[3])) {
                check(MicroditNative.mdt_attention_fwd_bf16(stream, pointer(op, "q", q), pointer(op, "k", k),
                        pointer(op, "v", v), pointer(op, "out", out), pointer(op, "lse", lse), s[0], s[1], s[2],
                        heads, s[3]), op);
                flops.add(op, flopCount);
                return;
            }
            // No tensor-core kernel for this head dimension: the f32 kernel on the exact f32 values.
            try (MemoryScope upcast = scope(op + "-bf16-operands")) {
                attention(toF32(q, upcast), toF32(k, upcast), toF32(v, upcast), heads, out, lse);
            }
            return;
        }
        check(MicroditNative.mdt_attention_fwd(stream, pointer(op, "q", q), pointer(op, "k", k), pointer(op, "v", v),
                pointer(op, "out", out), pointer(op, "lse", lse), s[0], s[1], s[2], heads, s[3]), op);
        flops.add(op, flopCount);
    }

    @Override
    public void attentionBackward(Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, int heads,
                                  Tensor dq, Tensor dk, Tensor dv) {
        String op = "attentionBackward";
        int[] s = Checks.attentionBackward(dOut, q, k, v, out, lse, heads, dq, dk, dv);
        checkAttentionLimits(op, s[0], heads, s[3]);
        if (q.dtype() == DType.BF16 && TENSOR_CORE_BACKWARD_HEAD_DIMS.contains(s[3])) {
            try (MemoryScope workspace = scope(op + "-workspace")) {
                Tensor delta = workspace.zeros(Math.max(1, s[0] * heads * s[1]));
                Tensor dOutBf16 = workspace.zeros(DType.BF16, dOut.shape());
                check(MicroditNative.mdt_attention_bwd_bf16(stream, pointer(op, "dOut", dOut), pointer(op, "q", q),
                        pointer(op, "k", k), pointer(op, "v", v), pointer(op, "out", out), pointer(op, "lse", lse),
                        delta.segment(), dOutBf16.segment(), pointer(op, "dq", dq), pointer(op, "dk", dk),
                        pointer(op, "dv", dv), s[0], s[1], s[2], heads, s[3]), op);
            }
            flops.add(op, 10L * s[0] * heads * s[1] * s[2] * s[3]);
            return;
        }
        if (q.dtype() == DType.BF16) {
            // No tensor-core backward for this head dimension: the f32 kernels on the exact f32 values.
            try (MemoryScope upcast = scope(op + "-bf16-operands")) {
                attentionBackward(dOut, toF32(q, upcast), toF32(k, upcast), toF32(v, upcast), out, lse, heads, dq, dk,
                        dv);
            }
            return;
        }
        try (MemoryScope workspace = scope(op + "-workspace")) {
            Tensor delta = workspace.zeros(Math.max(1, s[0] * heads * s[1]));
            check(MicroditNative.mdt_attention_bwd(stream, pointer(op, "dOut", dOut), pointer(op, "q", q),
                    pointer(op, "k", k), pointer(op, "v", v), pointer(op, "out", out), pointer(op, "lse", lse),
                    delta.segment(), pointer(op, "dq", dq), pointer(op, "dk", dk), pointer(op, "dv", dv), s[0], s[1],
                    s[2], heads, s[3]), op);
        }
        flops.add(op, 10L * s[0] * heads * s[1] * s[2] * s[3]);
    }

    /** A device F32 copy of a BF16 tensor (exact). */
    private Tensor toF32(Tensor bf16, MemoryScope scope) {
        Tensor f32 = scope.zeros(DType.F32, bf16.shape());
        convert(bf16, f32);
        return f32;
    }

    /** The attention kernels' limits, past the arguments both backends check. */
    private static void checkAttentionLimits(String op, int batch, int heads, int headDim) {
        Checks.argument(headDim <= MAX_HEAD_DIM, op, "head dimension " + headDim + " exceeds the CUDA kernel's "
                + MAX_HEAD_DIM);
        Checks.argument((long) batch * heads <= MAX_GRID_Y, op, batch + " samples × " + heads
                + " heads exceed the grid's " + MAX_GRID_Y + " (sample, head) blocks");
    }

    // ---------------------------------------------------------------- expert-choice MoE

    @Override
    public void expertChoiceTopK(Tensor probs, int k, Tensor gates, Tensor indices) {
        String op = "expertChoiceTopK";
        Checks.Routing r = Checks.expertChoiceTopK(probs, k, gates, indices);
        Checks.argument(r.tokens() <= MAX_ROUTED_TOKENS, op, "probs " + probs.describe() + " has more than "
                + MAX_ROUTED_TOKENS + " tokens, the most one CUDA block sorts");
        check(MicroditNative.mdt_moe_topk_fwd(stream, pointer(op, "probs", probs), pointer(op, "gates", gates),
                pointer(op, "indices", indices), r.samples(), r.tokens(), r.experts(), k), op);
        flops.add(op, 0);
    }

    @Override
    public void expertChoiceTopKBackward(Tensor dGates, Tensor indices, Tensor dProbs) {
        String op = "expertChoiceTopKBackward";
        Checks.Routing r = Checks.expertChoiceTopKBackward(dGates, indices, dProbs);
        checkIndexRange(op, indices, r.tokens());
        check(MicroditNative.mdt_moe_topk_bwd(stream, pointer(op, "dGates", dGates), pointer(op, "indices", indices),
                pointer(op, "dProbs", dProbs), r.samples(), r.tokens(), r.experts(), r.k()), op);
        flops.add(op, (long) r.samples() * r.experts() * r.k());
    }

    @Override
    public void moeDispatch(Tensor x, Tensor indices, Tensor out) {
        String op = "moeDispatch";
        Checks.Routing r = Checks.moeDispatch(x, indices, out);
        checkIndexRange(op, indices, r.tokens());
        check(MicroditNative.mdt_moe_dispatch_fwd(stream, pointer(op, "x", x), pointer(op, "indices", indices),
                pointer(op, "out", out), r.samples(), r.tokens(), r.experts(), r.k(), r.dim()), op);
        flops.add(op, 0);
    }

    @Override
    public void moeDispatchBackward(Tensor dOut, Tensor indices, Tensor dx) {
        String op = "moeDispatchBackward";
        Checks.Routing r = Checks.moeDispatchBackward(dOut, indices, dx);
        checkIndexRange(op, indices, r.tokens());
        checkSlotList(op, r.experts(), r.k());
        check(MicroditNative.mdt_moe_dispatch_bwd(stream, pointer(op, "dOut", dOut), pointer(op, "indices", indices),
                pointer(op, "dx", dx), r.samples(), r.tokens(), r.experts(), r.k(), r.dim()), op);
        flops.add(op, (long) r.experts() * r.samples() * r.k() * r.dim());
    }

    @Override
    public void moeCombine(Tensor h, Tensor gates, Tensor indices, Tensor out) {
        String op = "moeCombine";
        Checks.Routing r = Checks.moeCombine(h, gates, indices, out);
        checkIndexRange(op, indices, r.tokens());
        checkSlotList(op, r.experts(), r.k());
        check(MicroditNative.mdt_moe_combine_fwd(stream, pointer(op, "h", h), pointer(op, "gates", gates),
                pointer(op, "indices", indices), pointer(op, "out", out), r.samples(), r.tokens(), r.experts(), r.k(),
                r.dim()), op);
        flops.add(op, 2L * r.experts() * r.samples() * r.k() * r.dim());
    }

    @Override
    public void moeCombineBackward(Tensor dOut, Tensor h, Tensor gates, Tensor indices, Tensor dH, Tensor dGates) {
        String op = "moeCombineBackward";
        Checks.Routing r = Checks.moeCombineBackward(dOut, h, gates, indices, dH, dGates);
        checkIndexRange(op, indices, r.tokens());
        check(MicroditNative.mdt_moe_combine_bwd(stream, pointer(op, "dOut", dOut), pointer(op, "h", h),
                pointer(op, "gates", gates), pointer(op, "indices", indices), pointer(op, "dH", dH),
                pointer(op, "dGates", dGates), r.samples(), r.tokens(), r.experts(), r.k(), r.dim()), op);
        flops.add(op, 3L * r.experts() * r.samples() * r.k() * r.dim());
    }

    /** The per-token slot list of combine and the dispatch backward sits in one block's shared memory. */
    private static void checkSlotList(String op, int experts, int k) {
        Checks.argument((long) experts * k <= MAX_SLOTS_PER_SAMPLE, op, experts + " experts × " + k
                + " tokens exceed the " + MAX_SLOTS_PER_SAMPLE + " routing slots per sample the CUDA kernel holds");
    }

    /**
     * Indices live on the device; they are copied back and range-checked as the CPU backend checks them, before
     * any output is written, so a bad index fails the same way on both backends.
     */
    private void checkIndexRange(String op, Tensor indices, int tokens) {
        pointer(op, "indices", indices);
        int experts = indices.dim(1), k = indices.dim(2);
        int[] index;
        try (MemoryScope host = new MemoryScope(op + "-indices")) {
            index = download(indices, host).toIntArray();
        }
        for (int i = 0; i < index.length; i++) {
            int t = index[i];
            if (t < 0 || t >= tokens) {
                long n = i / ((long) experts * k), e = i / k % experts, j = i % k;
                throw new IllegalArgumentException(op + ": indices[" + n + ", " + e + ", " + j + "] = " + t
                        + " is not a token index in [0, " + tokens + ")");
            }
        }
    }

    // ---------------------------------------------------------------- patches and embeddings

    @Override
    public void patchify(Tensor image, int patch, Tensor out) {
        String op = "patchify";
        int[] dims = Checks.patchify(image, patch, out);
        check(MicroditNative.mdt_embed_patchify_fwd(stream, pointer(op, "image", image), pointer(op, "out", out),
                dims[0], dims[1], dims[2], dims[3], patch), op);
    }

    @Override
    public void patchifyBackward(Tensor dOut, int patch, Tensor dImage) {
        String op = "patchifyBackward";
        int[] dims = Checks.patchifyBackward(dOut, patch, dImage);
        check(MicroditNative.mdt_embed_patchify_bwd(stream, pointer(op, "dOut", dOut), pointer(op, "dImage", dImage),
                dims[0], dims[1], dims[2], dims[3], patch), op);
    }

    @Override
    public void unpatchify(Tensor tokens, int patch, Tensor out) {
        String op = "unpatchify";
        int[] dims = Checks.unpatchify(tokens, patch, out);
        check(MicroditNative.mdt_embed_unpatchify_fwd(stream, pointer(op, "tokens", tokens), pointer(op, "out", out),
                dims[0], dims[1], dims[2], dims[3], patch), op);
    }

    @Override
    public void unpatchifyBackward(Tensor dOut, int patch, Tensor dTokens) {
        String op = "unpatchifyBackward";
        int[] dims = Checks.unpatchifyBackward(dOut, patch, dTokens);
        check(MicroditNative.mdt_embed_unpatchify_bwd(stream, pointer(op, "dOut", dOut),
                pointer(op, "dTokens", dTokens), dims[0], dims[1], dims[2], dims[3], patch), op);
    }

    @Override
    public void positionEmbedding2d(int gridH, int gridW, float interpolationScale, Tensor out) {
        String op = "positionEmbedding2d";
        int dim = Checks.positionEmbedding2d(gridH, gridW, interpolationScale, out);
        check(MicroditNative.mdt_embed_position_2d(stream, pointer(op, "out", out), gridH, gridW, dim,
                interpolationScale), op);
        flops.add(op, (long) (gridH + gridW) * dim / 2);
    }

    @Override
    public void timestepEmbedding(Tensor t, Tensor out) {
        String op = "timestepEmbedding";
        int size = Checks.timestepEmbedding(t, out);
        int samples = t.dim(0);
        check(MicroditNative.mdt_embed_timestep(stream, pointer(op, "t", t), pointer(op, "out", out), samples, size),
                op);
        flops.add(op, 3L * samples * (size / 2));
    }

    // ---------------------------------------------------------------- loss

    @Override
    public float edmLoss(Tensor denoised, Tensor target, Tensor weight, Tensor mask, int patch, Tensor perSample) {
        String op = "edmLoss";
        int[] dims = Checks.edmLoss(denoised, target, weight, mask, patch, perSample);
        checkKeptPatches(op, mask, dims, patch);
        try (MemoryScope workspace = scope(op + "-workspace"); Arena arena = Arena.ofConfined()) {
            Tensor losses = workspace.zeros(DType.I32, 2 * (dims[0] + 1));
            check(MicroditNative.mdt_loss_edm_fwd(stream, pointer(op, "denoised", denoised),
                    pointer(op, "target", target), pointer(op, "weight", weight), optionalPointer(op, "mask", mask),
                    pointer(op, "perSample", perSample), losses.segment(), dims[0], dims[1], dims[2], dims[3], patch),
                    op);
            flops.add(op, 3L * denoised.numel());
            MemorySegment host = arena.allocate(ValueLayout.JAVA_DOUBLE);
            CudaRuntime.check(MicroditNative.mdt_memcpy_dtoh(host, losses.segment().asSlice(dims[0] * 8L, 8), 8,
                    stream), "mdt_memcpy_dtoh");
            synchronize();
            return (float) host.get(ValueLayout.JAVA_DOUBLE, 0);
        }
    }

    @Override
    public void edmLossBackward(float dLoss, Tensor denoised, Tensor target, Tensor weight, Tensor mask, int patch,
                                Tensor dDenoised) {
        String op = "edmLossBackward";
        int[] dims = Checks.edmLossBackward(denoised, target, weight, mask, patch, dDenoised);
        checkKeptPatches(op, mask, dims, patch);
        try (MemoryScope workspace = scope(op + "-workspace")) {
            Tensor keepSums = workspace.zeros(DType.I32, 2 * (dims[0] + 1));
            check(MicroditNative.mdt_loss_edm_bwd(stream, dLoss, pointer(op, "denoised", denoised),
                    pointer(op, "target", target), pointer(op, "weight", weight), optionalPointer(op, "mask", mask),
                    pointer(op, "dDenoised", dDenoised), keepSums.segment(), dims[0], dims[1], dims[2], dims[3],
                    patch), op);
        }
        flops.add(op, 3L * denoised.numel());
    }

    /** The mask is copied back to the host to refuse, as the CPU does, a sample that keeps no patch (0/0). */
    private void checkKeptPatches(String op, Tensor mask, int[] dims, int patch) {
        if (mask != null) {
            try (MemoryScope host = new MemoryScope(op + "-mask")) {
                Checks.keptPatches(op, download(mask, host), dims[0], (dims[2] / patch) * (dims[3] / patch));
            }
        }
    }

    // ---------------------------------------------------------------- plumbing

    private static MemorySegment pointer(String op, String argument, Tensor t) {
        Checks.notNull(op, argument, t);
        Checks.argument(t.device() == Device.CUDA, op, argument + " " + t.describe() + " is on " + t.device()
                + "; the CUDA backend needs device tensors (CudaBackend.scope, upload)");
        return t.segment();
    }

    private static MemorySegment optionalPointer(String op, String argument, Tensor t) {
        return t == null ? MemorySegment.NULL : pointer(op, argument, t);
    }

    private static void check(int status, String op) {
        CudaRuntime.check(status, op);
    }
}
