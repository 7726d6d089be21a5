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
import java.util.List;
import java.util.Set;

/**
 * The {@link Backend} on a CUDA device, or on the host emulator when there is none: every op is one call of
 * the C ABI (microdit.h) on the backend's stream, after the same argument checks as the CPU backend. Tensors
 * must live in device scopes made by {@link #scope}; {@link #upload} and {@link #download} move data between
 * host and device.
 *
 * <p>The host waits for the stream only where it needs a value (read, download, the loss, the sum of squares), for
 * a host→device copy from host memory that may be freed right after, and in {@link #synchronize()}. So arguments
 * that live on the device (MoE routing indices, token ids, the loss mask) are checked by the kernels: a bad one is
 * recorded in a device error record (microdit.h) and thrown, as the CPU backend throws it, at the next wait.
 */
public final class CudaBackend implements Backend, AutoCloseable {
    /** Doubles of the sum-of-squares kernel's partials. */
    private static final int SUM_OF_SQUARES_PARTIALS = 256;
    /** Bytes of the device error record (microdit.h: MDT_ERROR_RECORD_INTS int32). */
    private static final long ERROR_RECORD_BYTES = 32;
    /** Doubles the readback buffer first holds after the error record; it grows on demand. */
    private static final int READBACK_VALUES = 256;
    /** The op that reports each MDT_CHECK_* code of microdit.h, indexed by the code. */
    private static final String[] CHECKED_OPS = {null, "expertChoiceTopKBackward", "moeDispatch",
            "moeDispatchBackward", "moeCombine", "moeCombineBackward", "gatherRows", "scatterRows", "scatterRows",
            "edmLoss", "edmLossBackward"};
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
    private final Tensor sumOfSquaresPartials;
    /** The device error record, then doubles the host reads back together with it. */
    private MemoryScope readbackScope;
    private Tensor readback;
    /** Whether an op since the last wait may have written the error record. */
    private boolean checksPending;
    private final String deviceName;
    /** Host waits for the stream so far (tests count them: each drains the GPU's pipeline). */
    private long synchronizations;
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
        this.sumOfSquaresPartials = scratchScope.zeros(DType.I32, 2 * SUM_OF_SQUARES_PARTIALS);
        this.readbackScope = scope("cuda-backend-readback");
        this.readback = readbackScope.zeros(DType.I32, (int) (ERROR_RECORD_BYTES / 4) + 2 * READBACK_VALUES);
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
        } else if (toDevice) {
            CudaRuntime.check(MicroditNative.mdt_memcpy_htod(target.segment(), source.segment(), bytes, stream),
                    "mdt_memcpy_htod");
            waitForStream(); // the caller may free or reuse the host source as soon as this returns
        } else {
            CudaRuntime.check(MicroditNative.mdt_memcpy_dtoh(target.segment(), source.segment(), bytes, stream),
                    "mdt_memcpy_dtoh");
            waitAndCheck(); // the caller reads the host target next
        }
    }

    /** Zero is a memset and F32 a kernel, on the stream; other fills are written from a host tensor (rare). */
    @Override
    public void fill(Tensor target, float value) {
        String op = "fill";
        Checks.notNull(op, "target", target);
        if (target.device() == Device.CPU) {
            target.fill(value);
        } else if (value == 0f) {
            CudaRuntime.check(MicroditNative.mdt_memset(target.segment(), 0, target.byteSize(), stream),
                    "mdt_memset");
        } else if (target.dtype() == DType.F32) {
            check(MicroditNative.mdt_elementwise_fill(stream, target.segment(), value, target.numel()), op);
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

    /**
     * Waits until every op issued so far has finished; throws for a device-side argument check (see the class
     * comment) that failed since the last wait.
     */
    public void synchronize() {
        waitAndCheck(); // asked for
    }

    /** Host waits for the stream so far. */
    long synchronizations() {
        return synchronizations;
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        IllegalArgumentException failed = null;
        try {
            waitAndCheck(); // the last ops finish before their memory is freed, and report a failed check
        } catch (IllegalArgumentException error) {
            failed = error;
        }
        readbackScope.close();
        scratchScope.close();
        memory.close();
        CudaRuntime.check(MicroditNative.mdt_stream_destroy(stream), "mdt_stream_destroy");
        if (failed != null) {
            throw failed;
        }
    }

    // ---------------------------------------------------------------- waiting for the stream

    /** The only place the host waits for the stream (tests count the waits). */
    private void waitForStream() {
        synchronizations++;
        CudaRuntime.check(MicroditNative.mdt_stream_synchronize(stream), "mdt_stream_synchronize");
    }

    /** Waits, and reads the error record back with the wait when an op since the last one may have written it. */
    private void waitAndCheck() {
        if (!checksPending) {
            waitForStream();
            return;
        }
        try (Arena arena = Arena.ofConfined()) {
            readBack(arena, 0);
        }
    }

    /**
     * Copies the error record and the first {@code values} doubles after it to the host in one copy, waits, and
     * throws for a device check that failed since the last wait; returns the host copy (the values at byte
     * {@link #ERROR_RECORD_BYTES}).
     */
    private MemorySegment readBack(Arena arena, long values) {
        MemorySegment host = arena.allocate(ERROR_RECORD_BYTES + 8 * values, 8);
        CudaRuntime.check(MicroditNative.mdt_memcpy_dtoh(host, readback.segment(), host.byteSize(), stream),
                "mdt_memcpy_dtoh");
        waitForStream(); // the host reads the copy next
        checksPending = false;
        int code = host.get(ValueLayout.JAVA_INT, 0);
        if (code != 0) {
            CudaRuntime.check(MicroditNative.mdt_memset(readback.segment(), 0, ERROR_RECORD_BYTES, stream),
                    "mdt_memset");
            int[] r = new int[6];
            for (int i = 0; i < r.length; i++) {
                r[i] = host.getAtIndex(ValueLayout.JAVA_INT, i);
            }
            throw new IllegalArgumentException(checkFailure(r[0], r[1], r[2], r[3], r[4], r[5]));
        }
        return host;
    }

    /** The CPU backend's message for a failed device check: code, bad value, its bound and its position. */
    private static String checkFailure(int code, int value, int bound, int i, int j, int l) {
        String op = code < CHECKED_OPS.length ? CHECKED_OPS[code] : "device check " + code;
        if (code <= 5) {
            return op + ": indices[" + i + ", " + j + ", " + l + "] = " + value + " is not a token index in [0, "
                    + bound + ")";
        } else if (code <= 7) {
            return op + ": ids[" + i + ", " + j + "] = " + value + " is out of range [0, " + bound + ")";
        } else if (code == 8) {
            return op + ": ids of sample " + i + " are not distinct: " + value + " appears at positions " + j
                    + " and " + l;
        } else if (code <= 10) {
            return op + ": sample " + i + " keeps no patch (mask removes all " + bound
                    + "), so its loss is undefined";
        }
        return op + " failed (value " + value + ", bound " + bound + ", at " + i + ", " + j + ", " + l + ")";
    }

    /** The error record, for an op that checks device-resident arguments as it runs. */
    private MemorySegment errorRecord() {
        checksPending = true;
        return readback.segment().asSlice(0, ERROR_RECORD_BYTES);
    }

    /** Device doubles after the error record, at least {@code values} of them (the buffer grows, keeping the record). */
    private MemorySegment readbackValues(long values) {
        long bytes = ERROR_RECORD_BYTES + 8 * values;
        if (readback.byteSize() < bytes) {
            MemoryScope grown = scope("cuda-backend-readback");
            Tensor larger = grown.zeros(DType.I32, (int) (bytes / 4 * 2));
            CudaRuntime.check(MicroditNative.mdt_memcpy_dtod(larger.segment(), readback.segment(), ERROR_RECORD_BYTES,
                    stream), "mdt_memcpy_dtod");
            readbackScope.close(); // the old block is reused only by later work on this stream, after the copy
            readbackScope = grown;
            readback = larger;
        }
        return readback.segment().asSlice(ERROR_RECORD_BYTES, 8 * values);
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
        Checks.dtype(op, "x", x, DType.F32);
        Checks.dtype(op, "out", out, DType.F32);
        long columns = out.numel();
        Checks.argument(columns > 0 && x.numel() % columns == 0, op, "x " + x.describe()
                + " is not a whole number of rows of out " + out.describe());
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
        Checks.sameShapeF32(op, "a", a, "out", out);
        Checks.dtype(op, "b", b, DType.F32);
        boolean suffix = b.rank() <= a.rank();
        for (int i = 1; suffix && i <= b.rank(); i++) {
            suffix = b.dim(-i) == a.dim(-i);
        }
        Checks.argument(suffix, op, "b " + b.describe() + " must have the shape of a " + a.describe()
                + " or a suffix of it");
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
        Checks.tokens(op, "x", x);
        int samples = x.dim(0), tokens = x.dim(1), width = x.dim(2);
        Checks.perSample(op, "shift", shift, samples, width);
        Checks.perSample(op, "scale", scale, samples, width);
        Checks.sameShapeF32(op, "x", x, "out", out);
        check(MicroditNative.mdt_elementwise_modulate_fwd(stream, pointer(op, "x", x), pointer(op, "shift", shift),
                pointer(op, "scale", scale), pointer(op, "out", out), samples, tokens, width), op);
        flops.add(op, 3 * x.numel());
    }

    @Override
    public void modulateBackward(Tensor dOut, Tensor x, Tensor scale, Tensor dx, Tensor dShift, Tensor dScale) {
        String op = "modulateBackward";
        Checks.tokens(op, "x", x);
        int samples = x.dim(0), tokens = x.dim(1), width = x.dim(2);
        Checks.sameShapeF32(op, "x", x, "dOut", dOut);
        Checks.sameShapeF32(op, "x", x, "dx", dx);
        Checks.perSample(op, "scale", scale, samples, width);
        Checks.perSample(op, "dShift", dShift, samples, width);
        Checks.perSample(op, "dScale", dScale, samples, width);
        check(MicroditNative.mdt_elementwise_modulate_bwd(stream, pointer(op, "dOut", dOut), pointer(op, "x", x),
                pointer(op, "scale", scale), pointer(op, "dx", dx), pointer(op, "dShift", dShift),
                pointer(op, "dScale", dScale), samples, tokens, width), op);
        flops.add(op, 5 * x.numel());
    }

    @Override
    public void gatedResidual(Tensor x, Tensor gate, Tensor f, Tensor out) {
        String op = "gatedResidual";
        Checks.tokens(op, "x", x);
        int samples = x.dim(0), tokens = x.dim(1), width = x.dim(2);
        Checks.perSample(op, "gate", gate, samples, width);
        Checks.sameShapeF32(op, "x", x, "f", f);
        Checks.sameShapeF32(op, "x", x, "out", out);
        check(MicroditNative.mdt_elementwise_gated_residual_fwd(stream, pointer(op, "x", x), pointer(op, "gate", gate),
                pointer(op, "f", f), pointer(op, "out", out), samples, tokens, width), op);
        flops.add(op, 2 * x.numel());
    }

    @Override
    public void gatedResidualBackward(Tensor dOut, Tensor gate, Tensor f, Tensor dGate, Tensor dF) {
        String op = "gatedResidualBackward";
        Checks.tokens(op, "f", f);
        int samples = f.dim(0), tokens = f.dim(1), width = f.dim(2);
        Checks.sameShapeF32(op, "f", f, "dOut", dOut);
        Checks.sameShapeF32(op, "f", f, "dF", dF);
        Checks.perSample(op, "gate", gate, samples, width);
        Checks.perSample(op, "dGate", dGate, samples, width);
        check(MicroditNative.mdt_elementwise_gated_residual_bwd(stream, pointer(op, "dOut", dOut),
                pointer(op, "gate", gate), pointer(op, "f", f), pointer(op, "dGate", dGate), pointer(op, "dF", dF),
                samples, tokens, width), op);
        flops.add(op, 3 * f.numel());
    }

    @Override
    public void sliceColumns(Tensor x, int start, Tensor out) {
        String op = "sliceColumns";
        Checks.dtype(op, "x", x, DType.F32);
        Checks.rank(op, "x", x, 2);
        Checks.dtype(op, "out", out, DType.F32);
        Checks.shape(op, "out", out, x.dim(0), -1);
        Checks.columnRange(op, start, out.dim(1), x.dim(1));
        check(MicroditNative.mdt_elementwise_slice_columns_fwd(stream, pointer(op, "x", x), start,
                pointer(op, "out", out), x.dim(0), x.dim(1), out.dim(1)), op);
    }

    @Override
    public void sliceColumnsBackward(Tensor dOut, int start, Tensor dx) {
        String op = "sliceColumnsBackward";
        Checks.dtype(op, "dx", dx, DType.F32);
        Checks.rank(op, "dx", dx, 2);
        Checks.dtype(op, "dOut", dOut, DType.F32);
        Checks.shape(op, "dOut", dOut, dx.dim(0), -1);
        Checks.columnRange(op, start, dOut.dim(1), dx.dim(1));
        check(MicroditNative.mdt_elementwise_slice_columns_bwd(stream, pointer(op, "dOut", dOut), start,
                pointer(op, "dx", dx), dx.dim(0), dx.dim(1), dOut.dim(1)), op);
        flops.add(op, dOut.numel());
    }

    // ---------------------------------------------------------------- normalisation

    @Override
    public void layerNorm(Tensor x, Tensor weight, float eps, Tensor out, Tensor mean, Tensor rstd) {
        String op = "layerNorm";
        int width = Checks.normInput(op, x);
        long rows = x.rowCount();
        Checks.normWeight(op, "weight", weight, width);
        Checks.sameShapeF32(op, "x", x, "out", out);
        Checks.rowStatistic(op, "mean", mean, rows);
        Checks.rowStatistic(op, "rstd", rstd, rows);
        Checks.argument(eps >= 0 && Float.isFinite(eps), op, "eps must be finite and non-negative, got " + eps);
        check(MicroditNative.mdt_norm_layer_norm_fwd(stream, pointer(op, "x", x), optionalPointer(op, "weight", weight),
                eps, pointer(op, "out", out), pointer(op, "mean", mean), pointer(op, "rstd", rstd), rows, width), op);
        flops.add(op, (weight == null ? 7L : 8L) * x.numel());
    }

    @Override
    public void layerNormBackward(Tensor dOut, Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dx,
                                  Tensor dWeight) {
        String op = "layerNormBackward";
        int width = Checks.normInput(op, x);
        long rows = x.rowCount();
        Checks.sameShapeF32(op, "x", x, "dOut", dOut);
        Checks.sameShapeF32(op, "x", x, "dx", dx);
        Checks.normWeight(op, "weight", weight, width);
        Checks.argument(weight != null || dWeight == null, op, "dWeight " + dWeight
                + " given for a LayerNorm without weight");
        Checks.normWeight(op, "dWeight", dWeight, width);
        Checks.rowStatistic(op, "mean", mean, rows);
        Checks.rowStatistic(op, "rstd", rstd, rows);
        check(MicroditNative.mdt_norm_layer_norm_bwd(stream, pointer(op, "dOut", dOut), pointer(op, "x", x),
                optionalPointer(op, "weight", weight), pointer(op, "mean", mean), pointer(op, "rstd", rstd),
                pointer(op, "dx", dx), optionalPointer(op, "dWeight", dWeight), rows, width), op);
        flops.add(op, (weight == null ? 11L : dWeight != null ? 16L : 14L) * x.numel());
    }

    // ---------------------------------------------------------------- tokens

    @Override
    public void gatherRows(Tensor x, Tensor ids, Tensor out) {
        String op = "gatherRows";
        Checks.dtype(op, "x", x, DType.F32);
        Checks.rank(op, "x", x, 3);
        int samples = x.dim(0), tokens = x.dim(1), width = x.dim(2);
        Checks.dtype(op, "ids", ids, DType.I32);
        Checks.shape(op, "ids", ids, samples, -1);
        int kept = ids.dim(1);
        Checks.dtype(op, "out", out, DType.F32);
        Checks.shape(op, "out", out, samples, kept, width);
        check(MicroditNative.mdt_tokens_gather_rows(stream, pointer(op, "x", x), pointer(op, "ids", ids),
                pointer(op, "out", out), samples, tokens, kept, width, errorRecord()), op);
    }

    @Override
    public void scatterRows(Tensor x, Tensor ids, Tensor out) {
        String op = "scatterRows";
        Checks.dtype(op, "x", x, DType.F32);
        Checks.rank(op, "x", x, 3);
        int samples = x.dim(0), kept = x.dim(1), width = x.dim(2);
        Checks.dtype(op, "ids", ids, DType.I32);
        Checks.shape(op, "ids", ids, samples, kept);
        Checks.dtype(op, "out", out, DType.F32);
        Checks.shape(op, "out", out, samples, -1, width);
        int tokens = out.dim(1);
        Checks.argument(kept <= tokens, op, kept + " kept rows do not fit in " + tokens + " tokens");
        check(MicroditNative.mdt_tokens_scatter_rows(stream, pointer(op, "x", x), pointer(op, "ids", ids),
                pointer(op, "out", out), samples, tokens, kept, width, errorRecord()), op);
    }

    @Override
    public void meanTokens(Tensor x, Tensor out) {
        String op = "meanTokens";
        Checks.dtype(op, "x", x, DType.F32);
        Checks.rank(op, "x", x, 3);
        int samples = x.dim(0), tokens = x.dim(1), width = x.dim(2);
        Checks.argument(tokens > 0, op, "x " + x.describe() + " has no tokens to average");
        Checks.dtype(op, "out", out, DType.F32);
        Checks.shape(op, "out", out, samples, width);
        check(MicroditNative.mdt_tokens_mean_fwd(stream, pointer(op, "x", x), pointer(op, "out", out), samples, tokens,
                width), op);
        flops.add(op, x.numel());
    }

    @Override
    public void meanTokensBackward(Tensor dOut, Tensor dx) {
        String op = "meanTokensBackward";
        Checks.dtype(op, "dx", dx, DType.F32);
        Checks.rank(op, "dx", dx, 3);
        int samples = dx.dim(0), tokens = dx.dim(1), width = dx.dim(2);
        Checks.dtype(op, "dOut", dOut, DType.F32);
        Checks.shape(op, "dOut", dOut, samples, width);
        check(MicroditNative.mdt_tokens_mean_bwd(stream, pointer(op, "dOut", dOut), pointer(op, "dx", dx), samples,
                tokens, width), op);
        flops.add(op, (long) samples * width);
    }

    // ---------------------------------------------------------------- optimizer

    @Override
    public double sumOfSquares(Tensor x) {
        return sumOfSquares(List.of(x));
    }

    /**
     * Each tensor's sum goes to its own device slot (the partials scratch is reused in stream order), then one copy
     * brings all of them back with one wait; the host adds them in list order, so the result is deterministic.
     */
    @Override
    public double sumOfSquares(List<Tensor> tensors) {
        String op = "sumOfSquares";
        Checks.argument(tensors != null, op, "tensors is null");
        for (Tensor x : tensors) {
            Checks.dtype(op, "x", x, DType.F32);
            pointer(op, "x", x);
        }
        MemorySegment results = readbackValues(tensors.size());
        for (int i = 0; i < tensors.size(); i++) {
            Tensor x = tensors.get(i);
            check(MicroditNative.mdt_optim_sum_of_squares(stream, x.segment(), x.numel(),
                    sumOfSquaresPartials.segment(), SUM_OF_SQUARES_PARTIALS, results.asSlice(8L * i, 8)), op);
            flops.add(op, 2 * x.numel());
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = readBack(arena, tensors.size()); // the caller needs the value now
            double sum = 0;
            for (int i = 0; i < tensors.size(); i++) {
                sum += host.get(ValueLayout.JAVA_DOUBLE, ERROR_RECORD_BYTES + 8L * i);
            }
            return sum;
        }
    }

    @Override
    public void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, float learningRate, float beta1, float beta2,
                      float epsilon, float weightDecay, long step, float gradScale) {
        String op = "adamw";
        Checks.sameShapeF32(op, "param", param, "grad", grad);
        Checks.sameShapeF32(op, "param", param, "m", m);
        Checks.sameShapeF32(op, "param", param, "v", v);
        Checks.argument(step >= 1, op, "step counts from 1, got " + step);
        Checks.argument(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, op,
                "betas must lie in [0, 1), got " + beta1 + " and " + beta2);
        Checks.argument(epsilon > 0, op, "epsilon must be positive, got " + epsilon);
        check(MicroditNative.mdt_optim_adamw(stream, pointer(op, "param", param), pointer(op, "grad", grad),
                pointer(op, "m", m), pointer(op, "v", v), param.numel(), learningRate, beta1, beta2, epsilon,
                weightDecay, step, gradScale), op);
        flops.add(op, 13 * param.numel());
    }

    @Override
    public void emaUpdate(Tensor ema, Tensor param, float decay) {
        String op = "emaUpdate";
        Checks.sameShapeF32(op, "ema", ema, "param", param);
        Checks.argument(decay >= 0 && decay <= 1, op, "decay must lie in [0, 1], got " + decay);
        check(MicroditNative.mdt_optim_ema(stream, pointer(op, "ema", ema), pointer(op, "param", param), ema.numel(),
                decay), op);
        flops.add(op, 3 * ema.numel());
    }

    // ---------------------------------------------------------------- random numbers

    @Override
    public void uniform(long seed, long stream, long offset, Tensor out) {
        String op = "uniform";
        checkRandom(op, offset, out);
        check(MicroditNative.mdt_rng_uniform(this.stream, seed, stream, offset, pointer(op, "out", out), out.numel()),
                op);
        flops.add(op, out.numel());
    }

    @Override
    public void normal(long seed, long stream, long offset, Tensor out) {
        String op = "normal";
        checkRandom(op, offset, out);
        check(MicroditNative.mdt_rng_normal(this.stream, seed, stream, offset, pointer(op, "out", out), out.numel()),
                op);
        flops.add(op, 5 * out.numel());
    }

    private static void checkRandom(String op, long offset, Tensor out) {
        Checks.dtype(op, "out", out, DType.F32);
        Checks.argument(offset >= 0, op, "offset must be non-negative, got " + offset);
        Checks.argument(offset <= Long.MAX_VALUE - out.numel(), op, out.numel() + " elements from offset " + offset
                + " run past the last counter index 2^63 - 1");
    }

    // ---------------------------------------------------------------- conversion

    @Override
    public void convert(Tensor source, Tensor target) {
        String op = "convert";
        Checks.notNull(op, "source", source);
        Checks.notNull(op, "target", target);
        Checks.argument(source.dtype() != DType.I32 && target.dtype() != DType.I32, op,
                "only F32 and BF16 convert, got source " + source.describe() + " and target " + target.describe());
        Checks.argument(source.sameShape(target), op, "target " + target.describe()
                + " must have the shape of source " + source.describe());
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
        Checks.sameShapeF32(op, "x", x, "dOut", dOut);
        Checks.sameShapeF32(op, "x", x, "dx", dx);
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
        Checks.sameShapeF32(op, "x", x, "dOut", dOut);
        Checks.sameShapeF32(op, "x", x, "dx", dx);
        check(MicroditNative.mdt_activations_silu_bwd(stream, pointer(op, "dOut", dOut), pointer(op, "x", x),
                pointer(op, "dx", dx), x.numel()), op);
        flops.add(op, 8 * x.numel());
    }

    @Override
    public void swigluGate(Tensor a, Tensor b, Tensor out) {
        String op = "swigluGate";
        Checks.sameShapeF32(op, "a", a, "b", b);
        Checks.sameShapeF32(op, "a", a, "out", out);
        check(MicroditNative.mdt_activations_swiglu_fwd(stream, pointer(op, "a", a), pointer(op, "b", b),
                pointer(op, "out", out), a.numel()), op);
        flops.add(op, 5 * a.numel());
    }

    @Override
    public void swigluGateBackward(Tensor dOut, Tensor a, Tensor b, Tensor da, Tensor db) {
        String op = "swigluGateBackward";
        Checks.sameShapeF32(op, "a", a, "b", b);
        Checks.sameShapeF32(op, "a", a, "dOut", dOut);
        Checks.sameShapeF32(op, "a", a, "da", da);
        Checks.sameShapeF32(op, "a", a, "db", db);
        check(MicroditNative.mdt_activations_swiglu_bwd(stream, pointer(op, "dOut", dOut), pointer(op, "a", a),
                pointer(op, "b", b), pointer(op, "da", da), pointer(op, "db", db), a.numel()), op);
        flops.add(op, 10 * a.numel());
    }

    @Override
    public void softmax(Tensor x, Tensor out) {
        String op = "softmax";
        Checks.sameShapeF32(op, "x", x, "out", out);
        Checks.argument(x.rank() >= 1, op, "x must have rank 1 or more, got " + x.describe());
        check(MicroditNative.mdt_activations_softmax_fwd(stream, pointer(op, "x", x), pointer(op, "out", out),
                x.rowCount(), x.dim(-1)), op);
        flops.add(op, 5L * x.numel());
    }

    @Override
    public void softmaxBackward(Tensor dOut, Tensor y, Tensor dx) {
        String op = "softmaxBackward";
        Checks.sameShapeF32(op, "y", y, "dOut", dOut);
        Checks.sameShapeF32(op, "y", y, "dx", dx);
        Checks.argument(y.rank() >= 1, op, "y must have rank 1 or more, got " + y.describe());
        check(MicroditNative.mdt_activations_softmax_bwd(stream, pointer(op, "dOut", dOut), pointer(op, "y", y),
                pointer(op, "dx", dx), y.rowCount(), y.dim(-1)), op);
        flops.add(op, 4L * y.numel());
    }

    // ---------------------------------------------------------------- attention

    @Override
    public void attention(Tensor q, Tensor k, Tensor v, int heads, Tensor out, Tensor lse) {
        String op = "attention";
        int[] s = checkAttention(op, q, k, v, heads, out, lse);
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
        int[] s = checkAttention(op, q, k, v, heads, out, lse);
        Checks.sameShapeF32(op, "out", out, "dOut", dOut);
        Checks.sameShapeF32(op, "out", out, "dq", dq);
        for (Object[] named : new Object[][] {{"dk", dk}, {"dv", dv}}) {
            Tensor gradient = (Tensor) named[1];
            Checks.dtype(op, (String) named[0], gradient, DType.F32);
            Checks.argument(gradient.sameShape(k), op, named[0] + " " + gradient.describe()
                    + " must have the shape of k " + k.describe());
        }
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

    /** The CPU backend's checks plus the kernel's limits; returns {N, Tq, Tk, Dh}. */
    private static int[] checkAttention(String op, Tensor q, Tensor k, Tensor v, int heads, Tensor out, Tensor lse) {
        Checks.notNull(op, "q", q);
        DType operands = q.dtype() == DType.BF16 ? DType.BF16 : DType.F32;
        for (Object[] named : new Object[][] {{"q", q}, {"k", k}, {"v", v}, {"out", out}, {"lse", lse}}) {
            Tensor t = (Tensor) named[1];
            String name = (String) named[0];
            Checks.dtype(op, name, t, name.equals("out") || name.equals("lse") ? DType.F32 : operands);
            Checks.rank(op, name, t, 3);
        }
        int batch = q.dim(0), queries = q.dim(1), width = q.dim(2), keys = k.dim(1);
        Checks.argument(heads > 0 && width % heads == 0, op, "heads " + heads + " must be positive and divide "
                + "the width " + width + " of q " + q.describe());
        Checks.argument(width > 0, op, "q " + q.describe() + " must have a positive width");
        Checks.shape(op, "k", k, batch, -1, width);
        Checks.argument(keys > 0, op, "k " + k.describe() + " must have at least one token");
        Checks.shape(op, "v", v, batch, keys, width);
        Checks.shape(op, "out", out, batch, queries, width);
        Checks.shape(op, "lse", lse, batch, heads, queries);
        int headDim = width / heads;
        Checks.argument(headDim <= MAX_HEAD_DIM, op, "head dimension " + headDim + " exceeds the CUDA kernel's "
                + MAX_HEAD_DIM);
        Checks.argument((long) batch * heads <= MAX_GRID_Y, op, batch + " samples × " + heads
                + " heads exceed the grid's " + MAX_GRID_Y + " (sample, head) blocks");
        return new int[] {batch, queries, keys, headDim};
    }

    // ---------------------------------------------------------------- expert-choice MoE

    @Override
    public void expertChoiceTopK(Tensor probs, int k, Tensor gates, Tensor indices) {
        String op = "expertChoiceTopK";
        Checks.dtype(op, "probs", probs, DType.F32);
        Checks.rank(op, "probs", probs, 3);
        int samples = probs.dim(0), tokens = probs.dim(1), experts = probs.dim(2);
        Checks.argument(k >= 1 && k <= tokens, op, "k (tokens per expert) must be in [1, " + tokens
                + "] for probs " + probs.describe() + ", got " + k);
        Checks.argument(tokens <= MAX_ROUTED_TOKENS, op, "probs " + probs.describe() + " has more than "
                + MAX_ROUTED_TOKENS + " tokens, the most one CUDA block sorts");
        Checks.dtype(op, "gates", gates, DType.F32);
        Checks.shape(op, "gates", gates, samples, experts, k);
        Checks.dtype(op, "indices", indices, DType.I32);
        Checks.shape(op, "indices", indices, samples, experts, k);
        check(MicroditNative.mdt_moe_topk_fwd(stream, pointer(op, "probs", probs), pointer(op, "gates", gates),
                pointer(op, "indices", indices), samples, tokens, experts, k), op);
        flops.add(op, 0);
    }

    @Override
    public void expertChoiceTopKBackward(Tensor dGates, Tensor indices, Tensor dProbs) {
        String op = "expertChoiceTopKBackward";
        Checks.routingIndices(op, indices);
        int samples = indices.dim(0), experts = indices.dim(1), k = indices.dim(2);
        Checks.dtype(op, "dGates", dGates, DType.F32);
        Checks.shape(op, "dGates", dGates, samples, experts, k);
        Checks.dtype(op, "dProbs", dProbs, DType.F32);
        Checks.shape(op, "dProbs", dProbs, samples, -1, experts);
        int tokens = dProbs.dim(1);
        check(MicroditNative.mdt_moe_topk_bwd(stream, pointer(op, "dGates", dGates), pointer(op, "indices", indices),
                pointer(op, "dProbs", dProbs), samples, tokens, experts, k, errorRecord()), op);
        flops.add(op, (long) samples * experts * k);
    }

    @Override
    public void moeDispatch(Tensor x, Tensor indices, Tensor out) {
        String op = "moeDispatch";
        Checks.dtype(op, "x", x, DType.F32);
        Checks.rank(op, "x", x, 3);
        Checks.routingIndices(op, indices);
        int samples = x.dim(0), tokens = x.dim(1), dim = x.dim(2);
        int experts = indices.dim(1), k = indices.dim(2);
        Checks.argument(indices.dim(0) == samples, op, "indices " + indices.describe() + " and x " + x.describe()
                + " differ in the number of samples");
        Checks.dtype(op, "out", out, DType.F32);
        Checks.shape(op, "out", out, experts, samples * k, dim);
        check(MicroditNative.mdt_moe_dispatch_fwd(stream, pointer(op, "x", x), pointer(op, "indices", indices),
                pointer(op, "out", out), samples, tokens, experts, k, dim, errorRecord()), op);
        flops.add(op, 0);
    }

    @Override
    public void moeDispatchBackward(Tensor dOut, Tensor indices, Tensor dx) {
        String op = "moeDispatchBackward";
        Checks.routingIndices(op, indices);
        int samples = indices.dim(0), experts = indices.dim(1), k = indices.dim(2);
        Checks.dtype(op, "dx", dx, DType.F32);
        Checks.shape(op, "dx", dx, samples, -1, -1);
        int tokens = dx.dim(1), dim = dx.dim(2);
        Checks.dtype(op, "dOut", dOut, DType.F32);
        Checks.shape(op, "dOut", dOut, experts, samples * k, dim);
        checkSlotList(op, experts, k);
        check(MicroditNative.mdt_moe_dispatch_bwd(stream, pointer(op, "dOut", dOut), pointer(op, "indices", indices),
                pointer(op, "dx", dx), samples, tokens, experts, k, dim, errorRecord()), op);
        flops.add(op, (long) experts * samples * k * dim);
    }

    @Override
    public void moeCombine(Tensor h, Tensor gates, Tensor indices, Tensor out) {
        String op = "moeCombine";
        Checks.routingIndices(op, indices);
        int samples = indices.dim(0), experts = indices.dim(1), k = indices.dim(2);
        Checks.dtype(op, "h", h, DType.F32);
        Checks.shape(op, "h", h, experts, samples * k, -1);
        int dim = h.dim(2);
        Checks.dtype(op, "gates", gates, DType.F32);
        Checks.shape(op, "gates", gates, samples, experts, k);
        Checks.dtype(op, "out", out, DType.F32);
        Checks.shape(op, "out", out, samples, -1, dim);
        int tokens = out.dim(1);
        checkSlotList(op, experts, k);
        check(MicroditNative.mdt_moe_combine_fwd(stream, pointer(op, "h", h), pointer(op, "gates", gates),
                pointer(op, "indices", indices), pointer(op, "out", out), samples, tokens, experts, k, dim,
                errorRecord()), op);
        flops.add(op, 2L * experts * samples * k * dim);
    }

    @Override
    public void moeCombineBackward(Tensor dOut, Tensor h, Tensor gates, Tensor indices, Tensor dH, Tensor dGates) {
        String op = "moeCombineBackward";
        Checks.routingIndices(op, indices);
        int samples = indices.dim(0), experts = indices.dim(1), k = indices.dim(2);
        Checks.dtype(op, "h", h, DType.F32);
        Checks.shape(op, "h", h, experts, samples * k, -1);
        int dim = h.dim(2);
        Checks.dtype(op, "dOut", dOut, DType.F32);
        Checks.shape(op, "dOut", dOut, samples, -1, dim);
        int tokens = dOut.dim(1);
        Checks.dtype(op, "gates", gates, DType.F32);
        Checks.shape(op, "gates", gates, samples, experts, k);
        Checks.dtype(op, "dH", dH, DType.F32);
        Checks.shape(op, "dH", dH, experts, samples * k, dim);
        Checks.dtype(op, "dGates", dGates, DType.F32);
        Checks.shape(op, "dGates", dGates, samples, experts, k);
        check(MicroditNative.mdt_moe_combine_bwd(stream, pointer(op, "dOut", dOut), pointer(op, "h", h),
                pointer(op, "gates", gates), pointer(op, "indices", indices), pointer(op, "dH", dH),
                pointer(op, "dGates", dGates), samples, tokens, experts, k, dim, errorRecord()), op);
        flops.add(op, 3L * experts * samples * k * dim);
    }

    /** The per-token slot list of combine and the dispatch backward sits in one block's shared memory. */
    private static void checkSlotList(String op, int experts, int k) {
        Checks.argument((long) experts * k <= MAX_SLOTS_PER_SAMPLE, op, experts + " experts × " + k
                + " tokens exceed the " + MAX_SLOTS_PER_SAMPLE + " routing slots per sample the CUDA kernel holds");
    }

    // ---------------------------------------------------------------- patches and embeddings

    @Override
    public void patchify(Tensor image, int patch, Tensor out) {
        String op = "patchify";
        int[] dims = imageDims(op, "image", image, patch);
        Checks.patchTokens(op, "out", out, dims, patch);
        check(MicroditNative.mdt_embed_patchify_fwd(stream, pointer(op, "image", image), pointer(op, "out", out),
                dims[0], dims[1], dims[2], dims[3], patch), op);
    }

    @Override
    public void patchifyBackward(Tensor dOut, int patch, Tensor dImage) {
        String op = "patchifyBackward";
        int[] dims = imageDims(op, "dImage", dImage, patch);
        Checks.patchTokens(op, "dOut", dOut, dims, patch);
        check(MicroditNative.mdt_embed_patchify_bwd(stream, pointer(op, "dOut", dOut), pointer(op, "dImage", dImage),
                dims[0], dims[1], dims[2], dims[3], patch), op);
    }

    @Override
    public void unpatchify(Tensor tokens, int patch, Tensor out) {
        String op = "unpatchify";
        int[] dims = imageDims(op, "out", out, patch);
        Checks.patchTokens(op, "tokens", tokens, dims, patch);
        check(MicroditNative.mdt_embed_unpatchify_fwd(stream, pointer(op, "tokens", tokens), pointer(op, "out", out),
                dims[0], dims[1], dims[2], dims[3], patch), op);
    }

    @Override
    public void unpatchifyBackward(Tensor dOut, int patch, Tensor dTokens) {
        String op = "unpatchifyBackward";
        int[] dims = imageDims(op, "dOut", dOut, patch);
        Checks.patchTokens(op, "dTokens", dTokens, dims, patch);
        check(MicroditNative.mdt_embed_unpatchify_bwd(stream, pointer(op, "dOut", dOut),
                pointer(op, "dTokens", dTokens), dims[0], dims[1], dims[2], dims[3], patch), op);
    }

    /** Checks an F32 [N, C, H, W] image whose H and W the patch divides; returns {N, C, H, W}. */
    private static int[] imageDims(String op, String argument, Tensor image, int patch) {
        Checks.dtype(op, argument, image, DType.F32);
        Checks.rank(op, argument, image, 4);
        Checks.argument(patch >= 1, op, "patch must be at least 1, got " + patch);
        int height = image.dim(2), width = image.dim(3);
        Checks.argument(height % patch == 0 && width % patch == 0, op, argument + " " + image.describe()
                + ": height " + height + " and width " + width + " must be divisible by the patch size " + patch);
        return new int[] {image.dim(0), image.dim(1), height, width};
    }

    @Override
    public void positionEmbedding2d(int gridH, int gridW, float interpolationScale, Tensor out) {
        String op = "positionEmbedding2d";
        Checks.argument(gridH >= 1 && gridW >= 1, op, "grid must be at least 1×1, got " + gridH + "×" + gridW);
        Checks.argument(interpolationScale > 0 && Float.isFinite(interpolationScale), op,
                "interpolationScale must be positive and finite, got " + interpolationScale);
        Checks.dtype(op, "out", out, DType.F32);
        Checks.shape(op, "out", out, gridH * gridW, -1);
        int dim = out.dim(1);
        Checks.argument(dim > 0 && dim % 4 == 0, op, "embedding size " + dim + " must be a positive multiple of 4");
        check(MicroditNative.mdt_embed_position_2d(stream, pointer(op, "out", out), gridH, gridW, dim,
                interpolationScale), op);
        flops.add(op, (long) (gridH + gridW) * dim / 2);
    }

    @Override
    public void timestepEmbedding(Tensor t, Tensor out) {
        String op = "timestepEmbedding";
        Checks.dtype(op, "t", t, DType.F32);
        Checks.rank(op, "t", t, 1);
        int samples = t.dim(0);
        Checks.dtype(op, "out", out, DType.F32);
        Checks.shape(op, "out", out, samples, -1);
        int size = out.dim(1);
        Checks.argument(size >= 1, op, "embedding size must be at least 1, got " + size);
        check(MicroditNative.mdt_embed_timestep(stream, pointer(op, "t", t), pointer(op, "out", out), samples, size),
                op);
        flops.add(op, 3L * samples * (size / 2));
    }

    // ---------------------------------------------------------------- loss

    @Override
    public float edmLoss(Tensor denoised, Tensor target, Tensor weight, Tensor mask, int patch, Tensor perSample) {
        String op = "edmLoss";
        int[] dims = checkLoss(op, denoised, target, weight, mask, patch);
        Checks.dtype(op, "perSample", perSample, DType.F32);
        Checks.shape(op, "perSample", perSample, dims[0]);
        // The per-sample losses and their mean land after the error record, so one copy brings back both.
        MemorySegment losses = readbackValues(dims[0] + 1L);
        check(MicroditNative.mdt_loss_edm_fwd(stream, pointer(op, "denoised", denoised), pointer(op, "target", target),
                pointer(op, "weight", weight), optionalPointer(op, "mask", mask), pointer(op, "perSample", perSample),
                losses, dims[0], dims[1], dims[2], dims[3], patch, errorRecord()), op);
        flops.add(op, 3L * denoised.numel());
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = readBack(arena, dims[0] + 1L); // the caller needs the loss now
            return (float) host.get(ValueLayout.JAVA_DOUBLE, ERROR_RECORD_BYTES + 8L * dims[0]);
        }
    }

    @Override
    public void edmLossBackward(float dLoss, Tensor denoised, Tensor target, Tensor weight, Tensor mask, int patch,
                                Tensor dDenoised) {
        String op = "edmLossBackward";
        int[] dims = checkLoss(op, denoised, target, weight, mask, patch);
        Checks.dtype(op, "dDenoised", dDenoised, DType.F32);
        Checks.shape(op, "dDenoised", dDenoised, dims[0], dims[1], dims[2], dims[3]);
        try (MemoryScope workspace = scope(op + "-workspace")) {
            Tensor keepSums = workspace.zeros(DType.I32, 2 * (dims[0] + 1));
            check(MicroditNative.mdt_loss_edm_bwd(stream, dLoss, pointer(op, "denoised", denoised),
                    pointer(op, "target", target), pointer(op, "weight", weight), optionalPointer(op, "mask", mask),
                    pointer(op, "dDenoised", dDenoised), keepSums.segment(), dims[0], dims[1], dims[2], dims[3],
                    patch, errorRecord()), op);
        }
        flops.add(op, 3L * denoised.numel());
    }

    /** The CPU backend's checks, except that a sample keeping no patch is found on the device (errorRecord). */
    private static int[] checkLoss(String op, Tensor denoised, Tensor target, Tensor weight, Tensor mask, int patch) {
        Checks.dtype(op, "denoised", denoised, DType.F32);
        Checks.rank(op, "denoised", denoised, 4);
        Checks.sameShapeF32(op, "denoised", denoised, "target", target);
        int samples = denoised.dim(0), height = denoised.dim(2), width = denoised.dim(3);
        Checks.argument(samples > 0, op, "denoised " + denoised.describe() + " has no samples");
        Checks.argument(patch >= 1, op, "patch must be at least 1, got " + patch);
        Checks.argument(height % patch == 0 && width % patch == 0, op, "denoised " + denoised.describe()
                + ": height " + height + " and width " + width + " must be divisible by the patch size " + patch);
        Checks.dtype(op, "weight", weight, DType.F32);
        Checks.shape(op, "weight", weight, samples);
        if (mask != null) {
            int patches = (height / patch) * (width / patch);
            Checks.dtype(op, "mask", mask, DType.F32);
            Checks.shape(op, "mask", mask, samples, patches);
        }
        return new int[] {samples, denoised.dim(1), height, width};
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
