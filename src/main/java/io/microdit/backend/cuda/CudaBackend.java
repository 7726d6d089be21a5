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
import java.util.List;
import java.util.Set;

/**
 * The {@link Backend} on a CUDA device, or on the host emulator when there is none: every op is one call of
 * the C ABI (microdit.h) on the backend's stream, after the same argument checks as the CPU backend. Tensors
 * must live in device scopes made by {@link #scope}; {@link #upload} and {@link #download} move data between
 * host and device.
 *
 * <p>The host waits for the stream only where it needs a value (read, download, the loss, the sum of squares) and in
 * {@link #synchronize()}; host→device copies go through page-locked staging memory ({@link HostStaging}) and return
 * at once, the caller's host tensor free to reuse. So arguments
 * that live on the device (MoE routing indices, token ids, the loss mask) are checked by the kernels: a bad one is
 * recorded in a device error record (microdit.h) and thrown, as the CPU backend throws it, at the next wait.
 */
public final class CudaBackend implements Backend, AutoCloseable {
    /** Most partials of one tensor's sum of squares, and its threads per block (microdit.h). */
    private static final int SUM_OF_SQUARES_PARTIALS = 256;
    private static final int SUM_OF_SQUARES_THREADS = 256;
    /** Longs of one mdt_tensor_list_entry (microdit.h): 4 pointers, n, element and partial offsets. */
    private static final int LIST_ENTRY_LONGS = 7;
    /** Bytes of the device error record (microdit.h: MDT_ERROR_RECORD_INTS int32). */
    private static final long ERROR_RECORD_BYTES = 32;
    /** Doubles the readback buffer first holds after the error record; it grows on demand. */
    private static final int READBACK_VALUES = 256;
    /** The op that reports each MDT_CHECK_* code of microdit.h, indexed by the code. */
    private static final String[] CHECKED_OPS = {null, "expertChoiceTopKBackward", "moeDispatch",
            "moeDispatchBackward", "moeCombine", "moeCombineBackward", "gatherRows", "scatterRows", "scatterRows",
            "edmLoss", "edmLossBackward", "optimizer tensor list"};
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
    private final HostStaging staging;
    private final MemoryScope scratchScope;
    private final Tensor sumOfSquaresPartials;
    /** The device tensor lists of the multi-tensor optimizer ops, one per op. */
    private final DeviceTensorList squaresList = new DeviceTensorList();
    private final DeviceTensorList adamwList = new DeviceTensorList();
    private final DeviceTensorList emaList = new DeviceTensorList();
    /**
     * Float scratch of the two-pass ops: split-K partials of the bf16 GEMM and column-sum partials (sumRows, the
     * LayerNorm weight gradients). Grow-only, null until needed; one block serves every op, since the ops of this
     * backend run in order on its one stream. See {@link #workspace}.
     */
    private MemoryScope workspaceScope;
    private MemorySegment workspace = MemorySegment.NULL;
    private long workspaceFloats;
    /** The device error record, then doubles the host reads back together with it. */
    private MemoryScope readbackScope;
    private Tensor readback;
    /** Whether an op since the last wait may have written the error record. */
    private boolean checksPending;
    private final String deviceName;
    /** Host waits for the stream so far (tests count them: each drains the GPU's pipeline). */
    private long synchronizations;
    private boolean closed;
    /** The open launch trace, or null. */
    private LaunchTrace trace;

    /** A backend on device 0 (or the emulator); on the emulator Java may read its memory directly. */
    public CudaBackend() {
        this(false, HostStaging.INITIAL_BYTES, HostStaging.MAX_BYTES);
    }

    private CudaBackend(boolean opaque, long stagingBytes, long stagingLimit) {
        try (Arena arena = Arena.ofConfined()) {
            CudaRuntime.check(MicroditNative.mdt_set_device(0), "mdt_set_device(0)");
            MemorySegment created = arena.allocate(ValueLayout.ADDRESS);
            CudaRuntime.check(MicroditNative.mdt_stream_create(created), "mdt_stream_create");
            this.stream = created.get(ValueLayout.ADDRESS, 0);
        }
        this.deviceName = CudaRuntime.deviceName(0);
        this.memory = new DeviceMemory(stream, opaque);
        this.staging = new HostStaging(stream, stagingBytes, stagingLimit);
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
        return new CudaBackend(true, HostStaging.INITIAL_BYTES, HostStaging.MAX_BYTES);
    }

    /** An opaque backend whose host→device staging starts at {@code stagingBytes} and grows to {@code stagingLimit}. */
    static CudaBackend opaque(long stagingBytes, long stagingLimit) {
        return new CudaBackend(true, stagingBytes, stagingLimit);
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
     * One copy on the stream in the direction the tensors' devices give; the host tensor may be read, reused or freed
     * as soon as this returns. Device→host waits for the stream (the caller reads the data next); host→device does
     * not: the bytes are staged in page-locked memory first (see {@link HostStaging}).
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
            staging.copyToDevice(target.segment(), source.segment().asSlice(0, bytes));
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
    @Override
    public void synchronize() {
        waitAndCheck(); // asked for
    }

    /** Host waits so far: for the stream, and for a staging region when every one is busy. */
    long synchronizations() {
        return synchronizations + staging.waits();
    }

    /** The page-locked staging of host→device copies. */
    HostStaging staging() {
        return staging;
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
        squaresList.close();
        adamwList.close();
        emaList.close();
        if (workspaceScope != null) {
            workspaceScope.close();
        }
        scratchScope.close();
        memory.close();
        staging.close();
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
        } else if (code == 11) {
            return op + ": entry " + value + " of " + bound + " is malformed (offset " + i + ", expected " + j
                    + ", n " + l + ")";
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

    /**
     * The column-sum workspace for a sum over {@code rows} rows of {@code columns} columns (its floats:
     * {@link #reductionCapacity()}); NULL while the op needs none.
     */
    private MemorySegment reductionWorkspace(String op, long rows, long columns) {
        long floats;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment result = arena.allocate(ValueLayout.JAVA_LONG);
            check(MicroditNative.mdt_gemm_sum_rows_workspace_floats(rows, columns, result), op);
            floats = result.get(ValueLayout.JAVA_LONG, 0);
        }
        return workspace(floats);
    }

    private long reductionCapacity() {
        return workspaceFloats;
    }

    /**
     * Device memory for at least {@code floats} floats of two-pass partials (NULL for none), grown if too small.
     * Reuse is safe: this backend's ops run in order on its one stream, and a replaced block goes back to the
     * caching allocator, which hands it only to later work on this stream.
     */
    private MemorySegment workspace(long floats) {
        if (floats > workspaceFloats) {
            MemoryScope grown = scope("cuda-backend-workspace");
            MemorySegment larger = grown.allocateUninitialized(4 * floats);
            if (workspaceScope != null) {
                workspaceScope.close();
            }
            workspaceScope = grown;
            workspace = larger;
            workspaceFloats = floats;
        }
        return floats == 0 ? MemorySegment.NULL : workspace;
    }

    // ---------------------------------------------------------------- matmul

    @Override
    public void matmul(Tensor a, boolean transposeA, Tensor b, boolean transposeB, Tensor bias, Tensor out,
                       boolean accumulate) {
        String op = "matmul";
        MatmulShape shape = MatmulShape.of(a, transposeA, b, transposeB, bias, out);
        boolean bf16 = a.dtype() == DType.BF16;
        long floats;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment wanted = arena.allocate(ValueLayout.JAVA_LONG);
            check(bf16 ? MicroditNative.mdt_gemm_matmul_bf16_workspace(shape.batch(), shape.m(), shape.n(),
                            shape.k(), wanted)
                    : MicroditNative.mdt_gemm_matmul_workspace(shape.batch(), shape.m(), shape.n(), shape.k(), wanted),
                    op);
            floats = wanted.get(ValueLayout.JAVA_LONG, 0);
        }
        if (bf16) {
            check(MicroditNative.mdt_gemm_matmul_bf16(stream, pointer(op, "a", a), transposeA ? 1 : 0,
                    pointer(op, "b", b), transposeB ? 1 : 0, optionalPointer(op, "bias", bias), pointer(op, "out", out),
                    shape.batch(), shape.m(), shape.n(), shape.k(), shape.strideA(), shape.strideB(),
                    accumulate ? 1 : 0, 0, workspace(floats), floats), op);
            flops.add(op, shape.flops());
            return;
        }
        check(MicroditNative.mdt_gemm_matmul(stream, pointer(op, "a", a), transposeA ? 1 : 0, pointer(op, "b", b),
                transposeB ? 1 : 0, optionalPointer(op, "bias", bias), pointer(op, "out", out), shape.batch(),
                shape.m(), shape.n(), shape.k(), shape.strideA(), shape.strideB(), accumulate ? 1 : 0,
                workspace(floats), floats), op);
        flops.add(op, shape.flops());
    }

    @Override
    public void sumRows(Tensor x, Tensor out, boolean accumulate) {
        String op = "sumRows";
        long columns = Checks.sumRows(x, out);
        long rows = x.numel() / columns;
        MemorySegment workspace = reductionWorkspace(op, rows, columns);
        check(MicroditNative.mdt_gemm_sum_rows(stream, pointer(op, "x", x), pointer(op, "out", out), rows, columns,
                accumulate ? 1 : 0, workspace, reductionCapacity()), op);
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
        MemorySegment xs = pointer(op, "x", x), ws = optionalPointer(op, "weight", weight),
                os = pointer(op, "out", out), ms = pointer(op, "mean", mean), rs = pointer(op, "rstd", rstd);
        check(out.dtype() == DType.BF16
                ? MicroditNative.mdt_norm_layer_norm_fwd_bf16out(stream, xs, ws, eps, os, ms, rs, rows, width)
                : MicroditNative.mdt_norm_layer_norm_fwd(stream, xs, ws, eps, os, ms, rs, rows, width), op);
        flops.add(op, (weight == null ? 7L : 8L) * x.numel());
    }

    @Override
    public void layerNormBackward(Tensor dOut, Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dx,
                                  Tensor dWeight) {
        String op = "layerNormBackward";
        int width = Checks.layerNormBackward(dOut, x, weight, mean, rstd, dx, dWeight);
        long rows = x.rowCount();
        MemorySegment workspace = dWeight == null ? MemorySegment.NULL : reductionWorkspace(op, rows, width);
        check(MicroditNative.mdt_norm_layer_norm_bwd(stream, pointer(op, "dOut", dOut), pointer(op, "x", x),
                optionalPointer(op, "weight", weight), pointer(op, "mean", mean), pointer(op, "rstd", rstd),
                pointer(op, "dx", dx), optionalPointer(op, "dWeight", dWeight), rows, width, workspace,
                reductionCapacity()), op);
        flops.add(op, (weight == null ? 11L : dWeight != null ? 16L : 14L) * x.numel());
    }

    @Override
    public void layerNormModulate(Tensor x, Tensor weight, Tensor shift, Tensor scale, float eps, Tensor out,
                                  Tensor mean, Tensor rstd) {
        String op = "layerNormModulate";
        int[] s = Checks.layerNormModulate(x, weight, shift, scale, eps, out, mean, rstd);
        MemorySegment xs = pointer(op, "x", x), ws = optionalPointer(op, "weight", weight),
                shifts = pointer(op, "shift", shift), scales = pointer(op, "scale", scale),
                os = pointer(op, "out", out), ms = pointer(op, "mean", mean), rs = pointer(op, "rstd", rstd);
        check(out.dtype() == DType.BF16
                ? MicroditNative.mdt_norm_layer_norm_modulate_fwd_bf16out(stream, xs, ws, shifts, scales, eps, os, ms,
                        rs, s[0], s[1], s[2])
                : MicroditNative.mdt_norm_layer_norm_modulate_fwd(stream, xs, ws, shifts, scales, eps, os, ms, rs,
                        s[0], s[1], s[2]), op);
        flops.add(op, (weight == null ? 10L : 11L) * x.numel());
    }

    @Override
    public void layerNormModulateBackward(Tensor dOut, Tensor x, Tensor weight, Tensor scale, Tensor mean,
                                          Tensor rstd, Tensor dx, Tensor dWeight, Tensor dShift, Tensor dScale) {
        String op = "layerNormModulateBackward";
        int[] s = Checks.layerNormModulateBackward(dOut, x, weight, scale, mean, rstd, dx, dWeight, dShift, dScale);
        // dWeight sums over the samples (the tokens were summed per sample into dScale)
        MemorySegment workspace = dWeight == null || s[0] == 0 ? MemorySegment.NULL
                : reductionWorkspace(op, s[0], s[2]);
        check(MicroditNative.mdt_norm_layer_norm_modulate_bwd(stream, pointer(op, "dOut", dOut), pointer(op, "x", x),
                optionalPointer(op, "weight", weight), pointer(op, "scale", scale), pointer(op, "mean", mean),
                pointer(op, "rstd", rstd), pointer(op, "dx", dx), optionalPointer(op, "dWeight", dWeight),
                pointer(op, "dShift", dShift), pointer(op, "dScale", dScale), s[0], s[1], s[2], workspace,
                reductionCapacity()), op);
        flops.add(op, (weight == null ? 14L : 15L) * x.numel());
    }

    // ---------------------------------------------------------------- tokens

    @Override
    public void gatherRows(Tensor x, Tensor ids, Tensor out) {
        String op = "gatherRows";
        int[] s = Checks.gatherRows(x, ids, out);
        int samples = s[0], tokens = s[1], kept = s[2], width = s[3];
        check(MicroditNative.mdt_tokens_gather_rows(stream, pointer(op, "x", x), pointer(op, "ids", ids),
                pointer(op, "out", out), samples, tokens, kept, width, errorRecord()), op);
    }

    @Override
    public void scatterRows(Tensor x, Tensor ids, Tensor out) {
        String op = "scatterRows";
        int[] s = Checks.scatterRows(x, ids, out);
        int samples = s[0], tokens = s[1], kept = s[2], width = s[3];
        check(MicroditNative.mdt_tokens_scatter_rows(stream, pointer(op, "x", x), pointer(op, "ids", ids),
                pointer(op, "out", out), samples, tokens, kept, width, errorRecord()), op);
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
        MemorySegment result = readbackValues(1);
        check(MicroditNative.mdt_optim_sum_of_squares(stream, pointer(op, "x", x), x.numel(),
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
    @Override
    public double sumOfSquares(List<Tensor> tensors) {
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
        check(MicroditNative.mdt_optim_sum_of_squares_multi(stream, entries, tensors.size(), partials, scratch,
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

    /** One launch for the whole list; every element gets the bits of the one-tensor op. */
    @Override
    public void adamw(List<Tensor> params, List<Tensor> grads, List<Tensor> m, List<Tensor> v, float learningRate,
                      float beta1, float beta2, float epsilon, float weightDecay, long step, float gradScale) {
        String op = "adamw";
        Checks.adamwLists(params, grads, m, v, beta1, beta2, epsilon, step);
        MemorySegment entries = adamwList.entries(op, List.of("param", "grad", "m", "v"), List.of(params, grads, m, v));
        check(MicroditNative.mdt_optim_adamw_multi(stream, entries, params.size(), adamwList.total, learningRate,
                beta1, beta2, epsilon, weightDecay, step, gradScale, errorRecord()), op);
        flops.add(op, 13 * adamwList.total);
    }

    @Override
    public void emaUpdate(Tensor ema, Tensor param, float decay) {
        String op = "emaUpdate";
        Checks.emaUpdate(ema, param, decay);
        check(MicroditNative.mdt_optim_ema(stream, pointer(op, "ema", ema), pointer(op, "param", param), ema.numel(),
                decay), op);
        flops.add(op, 3 * ema.numel());
    }

    /** One launch for the whole list; every element gets the bits of the one-tensor op. */
    @Override
    public void emaUpdate(List<Tensor> emas, List<Tensor> params, float decay) {
        String op = "emaUpdate";
        Checks.emaLists(emas, params, decay);
        MemorySegment entries = emaList.entries(op, List.of("ema", "param"), List.of(emas, params));
        check(MicroditNative.mdt_optim_ema_multi(stream, entries, emas.size(), emaList.total, decay, errorRecord()),
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
            boolean dryRun = trace != null && trace.dryRun();
            if (scope == null || uploadedInDryRun != dryRun || !Arrays.equals(entries, host)) {
                // The old block goes back to the caching allocator, which hands it only to later work on the stream.
                MemoryScope replaced = scope("cuda-backend-tensor-list");
                MemorySegment uploaded = MemorySegment.NULL;
                if (count > 0) {
                    uploaded = replaced.allocateUninitialized(8L * entries.length);
                    staging.copyToDevice(uploaded, MemorySegment.ofArray(entries));
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
        Checks.gelu(x, out);
        MemorySegment xs = pointer(op, "x", x), os = pointer(op, "out", out);
        int tanh = tanhApproximation ? 1 : 0;
        check(out.dtype() == DType.BF16
                ? MicroditNative.mdt_activations_gelu_fwd_bf16out(stream, xs, os, x.numel(), tanh)
                : MicroditNative.mdt_activations_gelu_fwd(stream, xs, os, x.numel(), tanh), op);
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
        MemorySegment as = pointer(op, "a", a), bs = pointer(op, "b", b), os = pointer(op, "out", out);
        check(out.dtype() == DType.BF16
                ? MicroditNative.mdt_activations_swiglu_fwd_bf16out(stream, as, bs, os, a.numel())
                : MicroditNative.mdt_activations_swiglu_fwd(stream, as, bs, os, a.numel()), op);
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
        check(MicroditNative.mdt_moe_topk_bwd(stream, pointer(op, "dGates", dGates), pointer(op, "indices", indices),
                pointer(op, "dProbs", dProbs), r.samples(), r.tokens(), r.experts(), r.k(), errorRecord()), op);
        flops.add(op, (long) r.samples() * r.experts() * r.k());
    }

    @Override
    public void moeDispatch(Tensor x, Tensor indices, Tensor out) {
        String op = "moeDispatch";
        Checks.Routing r = Checks.moeDispatch(x, indices, out);
        check(MicroditNative.mdt_moe_dispatch_fwd(stream, pointer(op, "x", x), pointer(op, "indices", indices),
                pointer(op, "out", out), r.samples(), r.tokens(), r.experts(), r.k(), r.dim(), errorRecord()), op);
        flops.add(op, 0);
    }

    @Override
    public void moeDispatchBackward(Tensor dOut, Tensor indices, Tensor dx) {
        String op = "moeDispatchBackward";
        Checks.Routing r = Checks.moeDispatchBackward(dOut, indices, dx);
        checkSlotList(op, r.experts(), r.k());
        check(MicroditNative.mdt_moe_dispatch_bwd(stream, pointer(op, "dOut", dOut), pointer(op, "indices", indices),
                pointer(op, "dx", dx), r.samples(), r.tokens(), r.experts(), r.k(), r.dim(), errorRecord()), op);
        flops.add(op, (long) r.experts() * r.samples() * r.k() * r.dim());
    }

    @Override
    public void moeCombine(Tensor h, Tensor gates, Tensor indices, Tensor out) {
        String op = "moeCombine";
        Checks.Routing r = Checks.moeCombine(h, gates, indices, out);
        checkSlotList(op, r.experts(), r.k());
        check(MicroditNative.mdt_moe_combine_fwd(stream, pointer(op, "h", h), pointer(op, "gates", gates),
                pointer(op, "indices", indices), pointer(op, "out", out), r.samples(), r.tokens(), r.experts(), r.k(),
                r.dim(), errorRecord()), op);
        flops.add(op, 2L * r.experts() * r.samples() * r.k() * r.dim());
    }

    @Override
    public void moeCombineBackward(Tensor dOut, Tensor h, Tensor gates, Tensor indices, Tensor dH, Tensor dGates) {
        String op = "moeCombineBackward";
        Checks.Routing r = Checks.moeCombineBackward(dOut, h, gates, indices, dH, dGates);
        check(MicroditNative.mdt_moe_combine_bwd(stream, pointer(op, "dOut", dOut), pointer(op, "h", h),
                pointer(op, "gates", gates), pointer(op, "indices", indices), pointer(op, "dH", dH),
                pointer(op, "dGates", dGates), r.samples(), r.tokens(), r.experts(), r.k(), r.dim(), errorRecord()), op);
        flops.add(op, 3L * r.experts() * r.samples() * r.k() * r.dim());
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
        int[] dims = Checks.edmLossBackward(denoised, target, weight, mask, patch, dDenoised);
        try (MemoryScope workspace = scope(op + "-workspace")) {
            Tensor keepSums = workspace.zeros(DType.I32, 2 * (dims[0] + 1));
            check(MicroditNative.mdt_loss_edm_bwd(stream, dLoss, pointer(op, "denoised", denoised),
                    pointer(op, "target", target), pointer(op, "weight", weight), optionalPointer(op, "mask", mask),
                    pointer(op, "dDenoised", dDenoised), keepSums.segment(), dims[0], dims[1], dims[2], dims[3],
                    patch, errorRecord()), op);
        }
        flops.add(op, 3L * denoised.numel());
    }

    // ---------------------------------------------------------------- plumbing

    private static void requireDevice(String op, String argument, Tensor t) {
        Checks.notNull(op, argument, t);
        Checks.argument(t.device() == Device.CUDA, op, argument + " " + t.describe() + " is on " + t.device()
                + "; the CUDA backend needs device tensors (CudaBackend.scope, upload)");
    }

    /** The device pointer of an op's tensor argument (counted as the op's operand while tracing). */
    private MemorySegment pointer(String op, String argument, Tensor t) {
        requireDevice(op, argument, t);
        if (trace != null) {
            trace.operand(t.byteSize());
        }
        return t.segment();
    }

    private MemorySegment optionalPointer(String op, String argument, Tensor t) {
        return t == null ? MemorySegment.NULL : pointer(op, argument, t);
    }

    private void check(int status, String op) {
        CudaRuntime.check(status, op);
        if (trace != null) {
            trace.afterCall(op);
        }
    }

    // ---------------------------------------------------------------- launch trace

    /**
     * Records the kernel launches of this backend's ops until the returned trace is closed (one trace per process
     * at a time). {@code dryRun} (emulator only): launches are recorded, not run (see {@link LaunchTrace}).
     */
    public LaunchTrace traceLaunches(boolean dryRun) {
        Checks.argument(trace == null, "traceLaunches", "this backend is already tracing");
        waitAndCheck(); // earlier work is not part of the trace (and a dry run must not skip it)
        trace = new LaunchTrace(this, dryRun);
        return trace;
    }

    void traceEnded(LaunchTrace ended) {
        if (trace == ended) {
            trace = null;
        }
    }
}
