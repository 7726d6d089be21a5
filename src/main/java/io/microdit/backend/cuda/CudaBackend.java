package io.microdit.backend.cuda;

import io.microdit.backend.Backend;
import io.microdit.backend.Checks;
import io.microdit.backend.FlopCounter;
import io.microdit.tensor.DType;
import io.microdit.tensor.Device;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;

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
 *
 * <p>This class keeps the shared state (stream, memory, staging, readback and error record, workspace, launch
 * trace, FLOP counter, host waits) and the copies and waits; the ops themselves live in one package-private class
 * per kernels/*.cu file ({@link CudaOps} and its subclasses: CudaGemm, CudaNorm, ...), as on the CPU backend.
 */
public final class CudaBackend implements Backend, AutoCloseable {
    /** Bytes of the device error record (microdit.h: MDT_ERROR_RECORD_INTS int32). */
    static final long ERROR_RECORD_BYTES = 32;
    /** Doubles the readback buffer first holds after the error record; it grows on demand. */
    private static final int READBACK_VALUES = 256;
    /** The op that reports each MDT_CHECK_* code of microdit.h, indexed by the code. */
    private static final String[] CHECKED_OPS = {null, "expertChoiceTopKBackward", "moeDispatch",
            "moeDispatchBackward", "moeCombine", "moeCombineBackward", "gatherRows", "scatterRows", "scatterRows",
            "edmLoss", "edmLossBackward", "optimizer tensor list", "gatherLayerNorm",
            "gatherLayerNormBackward"};

    private final FlopCounter flops = new FlopCounter();
    private final MemorySegment stream;
    private final DeviceMemory memory;
    private final HostStaging staging;
    /** Holds the sum-of-squares partials of {@link CudaOptimizer}. */
    private final MemoryScope scratchScope;
    /** The op families, one per kernels/*.cu file: every kernel op below is one call of one of them. */
    private final CudaGemm gemm;
    private final CudaElementwise elementwise;
    private final CudaNorm norm;
    private final CudaTokens tokens;
    private final CudaOptimizer optimizer;
    private final CudaRandom random;
    private final CudaActivations activations;
    private final CudaAttention attention;
    private final CudaMoe moe;
    private final CudaEmbed embed;
    private final CudaLoss loss;
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
    /** Whether F32 matrix products may run on TF32 tensor cores ({@link #allowTf32}). */
    private boolean tf32;

    /**
     * A backend on device 0, or under mpirun on the device of this process's local rank ({@link RankDevice}), or on
     * the emulator; on the emulator Java may read its memory directly.
     */
    public CudaBackend() {
        this(false, HostStaging.INITIAL_BYTES, HostStaging.MAX_BYTES);
    }

    private CudaBackend(boolean opaque, long stagingBytes, long stagingLimit) {
        int device = RankDevice.ofThisProcess();
        try (Arena arena = Arena.ofConfined()) {
            // CUDA's current device is per host thread: the thread that builds the backend runs its ops.
            CudaRuntime.check(RuntimeBindings.mdt_set_device(device), "mdt_set_device(" + device + ")");
            MemorySegment created = arena.allocate(ValueLayout.ADDRESS);
            CudaRuntime.check(RuntimeBindings.mdt_stream_create(created), "mdt_stream_create");
            this.stream = created.get(ValueLayout.ADDRESS, 0);
        }
        this.deviceName = CudaRuntime.deviceName(device);
        this.memory = new DeviceMemory(stream, opaque);
        this.staging = new HostStaging(stream, stagingBytes, stagingLimit);
        this.scratchScope = scope("cuda-backend-scratch");
        Tensor sumOfSquaresPartials = scratchScope.zeros(DType.I32, 2 * CudaOptimizer.SUM_OF_SQUARES_PARTIALS);
        this.readbackScope = scope("cuda-backend-readback");
        this.readback = readbackScope.zeros(DType.I32, (int) (ERROR_RECORD_BYTES / 4) + 2 * READBACK_VALUES);
        this.gemm = new CudaGemm(this);
        this.elementwise = new CudaElementwise(this);
        this.norm = new CudaNorm(this);
        this.tokens = new CudaTokens(this);
        this.optimizer = new CudaOptimizer(this, sumOfSquaresPartials);
        this.random = new CudaRandom(this);
        this.activations = new CudaActivations(this);
        this.attention = new CudaAttention(this);
        this.moe = new CudaMoe(this);
        this.embed = new CudaEmbed(this);
        this.loss = new CudaLoss(this);
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

    /**
     * Lets F32 matrix products run on TF32 tensor cores (like PyTorch's {@code allow_tf32}): each operand element is
     * rounded to 10 mantissa bits (nearest, ties away from zero) and the products add up in f32; an H100's dense
     * TF32 peak is 7.4× its FP32 peak. Off by default, when F32 products keep all 23 bits of their operands; BF16
     * products do not depend on it. Takes effect from the next matmul.
     */
    public void allowTf32(boolean allow) {
        this.tf32 = allow;
    }

    /** Whether F32 matrix products run on TF32 tensor cores ({@link #allowTf32}). */
    public boolean tf32Allowed() {
        return tf32;
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
                () -> "host " + host.describe() + " must be a host tensor like " + device.describe());
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
                () -> "source " + source.describe() + " and target " + target.describe()
                        + " need the same dtype and element count");
        boolean fromDevice = source.device() == Device.CUDA, toDevice = target.device() == Device.CUDA;
        long bytes = source.byteSize();
        if (toDevice) {
            moe.overwritten(target);
        }
        if (!fromDevice && !toDevice) {
            target.copyFrom(source);
        } else if (fromDevice && toDevice) {
            CudaRuntime.check(RuntimeBindings.mdt_memcpy_dtod(target.segment(), source.segment(), bytes, stream),
                    "mdt_memcpy_dtod");
        } else if (toDevice) {
            staging.copyToDevice(target.segment(), source.segment().asSlice(0, bytes));
        } else {
            CudaRuntime.check(RuntimeBindings.mdt_memcpy_dtoh(target.segment(), source.segment(), bytes, stream),
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
            return;
        }
        moe.overwritten(target);
        if (value == 0f) {
            CudaRuntime.check(RuntimeBindings.mdt_memset(target.segment(), 0, target.byteSize(), stream),
                    "mdt_memset");
        } else if (target.dtype() == DType.F32) {
            check(ElementwiseBindings.mdt_elementwise_fill(stream, target.segment(), value, target.numel()), op);
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

    /**
     * The stream every op of this backend runs on, in order (public for the device collectives of
     * io.microdit.distributed, which order themselves on it).
     */
    public MemorySegment stream() {
        return stream;
    }

    /** Whether a dry-run launch trace is open (kernels are recorded, not run; uploads are skipped). */
    boolean tracingDryRun() {
        return trace != null && trace.dryRun();
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
        optimizer.close();
        if (workspaceScope != null) {
            workspaceScope.close();
        }
        scratchScope.close();
        memory.close();
        staging.close();
        CudaRuntime.check(RuntimeBindings.mdt_stream_destroy(stream), "mdt_stream_destroy");
        if (failed != null) {
            throw failed;
        }
    }

    // ---------------------------------------------------------------- waiting for the stream

    /** The only place the host waits for the stream (tests count the waits). */
    private void waitForStream() {
        synchronizations++;
        CudaRuntime.check(RuntimeBindings.mdt_stream_synchronize(stream), "mdt_stream_synchronize");
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
    MemorySegment readBack(Arena arena, long values) {
        MemorySegment host = arena.allocate(ERROR_RECORD_BYTES + 8 * values, 8);
        CudaRuntime.check(RuntimeBindings.mdt_memcpy_dtoh(host, readback.segment(), host.byteSize(), stream),
                "mdt_memcpy_dtoh");
        waitForStream(); // the host reads the copy next
        checksPending = false;
        int code = host.get(ValueLayout.JAVA_INT, 0);
        if (code != 0) {
            CudaRuntime.check(RuntimeBindings.mdt_memset(readback.segment(), 0, ERROR_RECORD_BYTES, stream),
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
        } else if (code <= 7 || code == 12 || code == 13) {
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
    MemorySegment errorRecord() {
        checksPending = true;
        return readback.segment().asSlice(0, ERROR_RECORD_BYTES);
    }

    /** Device doubles after the error record, at least {@code values} of them (the buffer grows, keeping the record). */
    MemorySegment readbackValues(long values) {
        long bytes = ERROR_RECORD_BYTES + 8 * values;
        if (readback.byteSize() < bytes) {
            MemoryScope grown = scope("cuda-backend-readback");
            Tensor larger = grown.zeros(DType.I32, (int) (bytes / 4 * 2));
            CudaRuntime.check(RuntimeBindings.mdt_memcpy_dtod(larger.segment(), readback.segment(), ERROR_RECORD_BYTES,
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
    MemorySegment reductionWorkspace(String op, long rows, long columns) {
        long floats;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment result = arena.allocate(ValueLayout.JAVA_LONG);
            check(GemmBindings.mdt_gemm_sum_rows_workspace_floats(rows, columns, result), op);
            floats = result.get(ValueLayout.JAVA_LONG, 0);
        }
        return workspace(floats);
    }

    long reductionCapacity() {
        return workspaceFloats;
    }

    /**
     * Device memory for at least {@code floats} floats of two-pass partials (NULL for none), grown if too small.
     * Reuse is safe: this backend's ops run in order on its one stream, and a replaced block goes back to the
     * caching allocator, which hands it only to later work on this stream.
     */
    MemorySegment workspace(long floats) {
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

    // ---------------------------------------------------------------- matmul (CudaGemm)

    @Override
    public void matmul(Tensor a, boolean transposeA, Tensor b, boolean transposeB, Tensor bias, Tensor out,
                       boolean accumulate) {
        gemm.matmul(a, transposeA, b, transposeB, bias, out, accumulate);
    }

    @Override
    public void sumRows(Tensor x, Tensor out, boolean accumulate) {
        gemm.sumRows(x, out, accumulate);
    }

    // ---------------------------------------------------------------- elementwise (CudaElementwise)

    @Override
    public void add(Tensor a, Tensor b, Tensor out) {
        elementwise.add(a, b, out);
    }

    @Override
    public void mul(Tensor a, Tensor b, Tensor out) {
        elementwise.mul(a, b, out);
    }

    @Override
    public void scale(Tensor x, float alpha, Tensor out) {
        elementwise.scale(x, alpha, out);
    }

    @Override
    public void axpy(float alpha, Tensor x, Tensor y) {
        elementwise.axpy(alpha, x, y);
    }

    @Override
    public void modulate(Tensor x, Tensor shift, Tensor scale, Tensor out) {
        elementwise.modulate(x, shift, scale, out);
    }

    @Override
    public void modulateBackward(Tensor dOut, Tensor x, Tensor scale, Tensor dx, Tensor dShift, Tensor dScale) {
        elementwise.modulateBackward(dOut, x, scale, dx, dShift, dScale);
    }

    @Override
    public void gatedResidual(Tensor x, Tensor gate, Tensor f, Tensor out) {
        elementwise.gatedResidual(x, gate, f, out);
    }

    @Override
    public void gatedResidualBackward(Tensor dOut, Tensor gate, Tensor f, Tensor dGate, Tensor dF) {
        elementwise.gatedResidualBackward(dOut, gate, f, dGate, dF);
    }

    @Override
    public void sliceColumns(Tensor x, int start, Tensor out) {
        elementwise.sliceColumns(x, start, out);
    }

    @Override
    public void sliceColumnsBackward(Tensor dOut, int start, Tensor dx) {
        elementwise.sliceColumnsBackward(dOut, start, dx);
    }

    // ---------------------------------------------------------------- normalisation (CudaNorm)

    @Override
    public void layerNorm(Tensor x, Tensor weight, float eps, Tensor out, Tensor mean, Tensor rstd) {
        norm.layerNorm(x, weight, eps, out, mean, rstd);
    }

    @Override
    public void layerNormModulate(Tensor x, Tensor weight, Tensor shift, Tensor scale, float eps, Tensor out,
                                  Tensor mean, Tensor rstd) {
        norm.layerNormModulate(x, weight, shift, scale, eps, out, mean, rstd);
    }

    @Override
    public void layerNormBackward(Tensor dOut, Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dx,
                                  Tensor dWeight, boolean accumulate) {
        norm.layerNormBackward(dOut, x, weight, mean, rstd, dx, dWeight, accumulate);
    }

    @Override
    public void gatherLayerNorm(Tensor x, Tensor ids, Tensor weight, float eps, Tensor out, Tensor mean,
                                Tensor rstd) {
        norm.gatherLayerNorm(x, ids, weight, eps, out, mean, rstd);
    }

    @Override
    public void gatherLayerNormBackward(Tensor dOut, Tensor x, Tensor ids, Tensor weight, Tensor mean, Tensor rstd,
                                        Tensor dx, Tensor dWeight, boolean accumulate) {
        norm.gatherLayerNormBackward(dOut, x, ids, weight, mean, rstd, dx, dWeight, accumulate);
    }

    @Override
    public void layerNormModulateBackward(Tensor dOut, Tensor x, Tensor weight, Tensor scale, Tensor mean,
                                          Tensor rstd, Tensor dx, Tensor dWeight, Tensor dShift, Tensor dScale,
                                          boolean accumulate) {
        norm.layerNormModulateBackward(dOut, x, weight, scale, mean, rstd, dx, dWeight, dShift, dScale,
                accumulate);
    }

    @Override
    public void residualLayerNorm(Tensor x, Tensor gate, Tensor f, Tensor weight, Tensor shift, Tensor scale,
                                  float eps, Tensor residual, Tensor out, Tensor mean, Tensor rstd) {
        norm.residualLayerNorm(x, gate, f, weight, shift, scale, eps, residual, out, mean, rstd);
    }

    @Override
    public void residualLayerNorm(Tensor x, Tensor gate, Tensor f, Tensor weight, Tensor shift, Tensor scale,
                                  float eps, Tensor residual, Tensor out, Tensor outBf16, Tensor mean, Tensor rstd) {
        norm.residualLayerNorm(x, gate, f, weight, shift, scale, eps, residual, out, outBf16, mean, rstd);
    }

    @Override
    public void residualLayerNormBackward(Tensor dOut, Tensor dResidual, Tensor residual, Tensor gate, Tensor f,
                                          Tensor weight, Tensor scale, Tensor mean, Tensor rstd, Tensor dx,
                                          Tensor dWeight, Tensor dShift, Tensor dScale, Tensor dGate, Tensor dF) {
        norm.residualLayerNormBackward(dOut, dResidual, residual, gate, f, weight, scale, mean, rstd, dx,
                dWeight, dShift, dScale, dGate, dF);
    }

    // ---------------------------------------------------------------- tokens (CudaTokens)

    @Override
    public void gatherRows(Tensor x, Tensor ids, Tensor out) {
        tokens.gatherRows(x, ids, out);
    }

    @Override
    public void scatterRows(Tensor x, Tensor ids, Tensor out) {
        tokens.scatterRows(x, ids, out);
    }

    @Override
    public void meanTokens(Tensor x, Tensor out) {
        tokens.meanTokens(x, out);
    }

    @Override
    public void meanTokensBackward(Tensor dOut, Tensor dx) {
        tokens.meanTokensBackward(dOut, dx);
    }

    // ---------------------------------------------------------------- optimizer (CudaOptimizer)

    @Override
    public double sumOfSquares(Tensor x) {
        return optimizer.sumOfSquares(x);
    }

    @Override
    public double sumOfSquares(List<Tensor> tensors) {
        return optimizer.sumOfSquares(tensors);
    }

    @Override
    public void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, float learningRate, float beta1, float beta2,
                      float epsilon, float weightDecay, long step, float gradScale) {
        optimizer.adamw(param, grad, m, v, learningRate, beta1, beta2, epsilon, weightDecay, step, gradScale);
    }

    @Override
    public void adamw(List<Tensor> params, List<Tensor> grads, List<Tensor> m, List<Tensor> v, float learningRate,
                      float beta1, float beta2, float epsilon, float weightDecay, long step, float gradScale) {
        optimizer.adamw(params, grads, m, v, learningRate, beta1, beta2, epsilon, weightDecay, step, gradScale);
    }

    @Override
    public void adamw(List<Tensor> params, List<Tensor> grads, List<Tensor> m, List<Tensor> v, List<Tensor> copies,
                      float learningRate, float beta1, float beta2, float epsilon, float weightDecay, long step,
                      float gradScale) {
        optimizer.adamw(params, grads, m, v, copies, learningRate, beta1, beta2, epsilon, weightDecay, step,
                gradScale);
    }

    @Override
    public void emaUpdate(Tensor ema, Tensor param, float decay) {
        optimizer.emaUpdate(ema, param, decay);
    }

    @Override
    public void emaUpdate(List<Tensor> emas, List<Tensor> params, float decay) {
        optimizer.emaUpdate(emas, params, decay);
    }

    // ---------------------------------------------------------------- random numbers (CudaRandom)

    @Override
    public void uniform(long seed, long stream, long offset, Tensor out) {
        random.uniform(seed, stream, offset, out);
    }

    @Override
    public void normal(long seed, long stream, long offset, Tensor out) {
        random.normal(seed, stream, offset, out);
    }

    // ---------------------------------------------------------------- conversion (CudaElementwise)

    @Override
    public void convert(Tensor source, Tensor target) {
        elementwise.convert(source, target);
    }

    // ---------------------------------------------------------------- activations (CudaActivations)

    @Override
    public void matmulGelu(Tensor a, boolean transposeA, Tensor b, boolean transposeB, Tensor bias, Tensor pre,
                           Tensor out, boolean tanhApproximation) {
        if (!gemm.matmulGelu(a, transposeA, b, transposeB, bias, pre, out, tanhApproximation)) {
            Backend.super.matmulGelu(a, transposeA, b, transposeB, bias, pre, out, tanhApproximation);
        }
    }

    @Override
    public void matmulGeluBackward(Tensor a, boolean transposeA, Tensor b, boolean transposeB, Tensor pre,
                                   Tensor dPre, boolean tanhApproximation) {
        if (!gemm.matmulGeluBackward(a, transposeA, b, transposeB, pre, dPre, tanhApproximation)) {
            Backend.super.matmulGeluBackward(a, transposeA, b, transposeB, pre, dPre, tanhApproximation);
        }
    }

    @Override
    public void matmulSwiglu(Tensor a, boolean transposeA, Tensor b, boolean transposeB, Tensor bias, Tensor gateA,
                             Tensor gateB, Tensor out) {
        if (!gemm.matmulSwiglu(a, transposeA, b, transposeB, bias, gateA, gateB, out)) {
            Backend.super.matmulSwiglu(a, transposeA, b, transposeB, bias, gateA, gateB, out);
        }
    }

    @Override
    public void matmulSwigluBackward(Tensor a, boolean transposeA, Tensor b, boolean transposeB, Tensor gateA,
                                     Tensor gateB, Tensor dGateA, Tensor dGateB) {
        if (!gemm.matmulSwigluBackward(a, transposeA, b, transposeB, gateA, gateB, dGateA, dGateB)) {
            Backend.super.matmulSwigluBackward(a, transposeA, b, transposeB, gateA, gateB, dGateA, dGateB);
        }
    }

    @Override
    public void gelu(Tensor x, Tensor out, boolean tanhApproximation) {
        activations.gelu(x, out, tanhApproximation);
    }

    @Override
    public void geluBackward(Tensor dOut, Tensor x, Tensor dx, boolean tanhApproximation) {
        activations.geluBackward(dOut, x, dx, tanhApproximation);
    }

    @Override
    public void silu(Tensor x, Tensor out) {
        activations.silu(x, out);
    }

    @Override
    public void siluBackward(Tensor dOut, Tensor x, Tensor dx) {
        activations.siluBackward(dOut, x, dx);
    }

    @Override
    public void swigluGate(Tensor a, Tensor b, Tensor out) {
        activations.swigluGate(a, b, out);
    }

    @Override
    public void swigluGateBackward(Tensor dOut, Tensor a, Tensor b, Tensor da, Tensor db) {
        activations.swigluGateBackward(dOut, a, b, da, db);
    }

    @Override
    public void softmax(Tensor x, Tensor out) {
        activations.softmax(x, out);
    }

    @Override
    public void softmaxBackward(Tensor dOut, Tensor y, Tensor dx) {
        activations.softmaxBackward(dOut, y, dx);
    }

    // ---------------------------------------------------------------- attention (CudaAttention)

    @Override
    public void attention(Tensor q, Tensor k, Tensor v, int heads, Tensor out, Tensor lse) {
        attention.attention(q, k, v, heads, out, lse);
    }

    @Override
    public void attentionBackward(Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, int heads,
                                  Tensor dq, Tensor dk, Tensor dv) {
        attention.attentionBackward(dOut, q, k, v, out, lse, heads, dq, dk, dv);
    }

    @Override
    public void layerNormStatistics(Tensor x, float eps, Tensor mean, Tensor rstd, Tensor center) {
        norm.layerNormStatistics(x, eps, mean, rstd, center);
    }

    @Override
    public void normalizedAttention(Tensor q, Tensor k, Tensor v, int heads, float eps, Tensor qCenter, Tensor qRstd,
                                    Tensor kCenter, Tensor kRstd, Tensor out, Tensor lse) {
        attention.normalizedAttention(q, k, v, heads, eps, qCenter, qRstd, kCenter, kRstd, out, lse);
    }

    @Override
    public void normalizedAttentionBackward(Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse,
                                            int heads, float eps, Tensor qCenter, Tensor qRstd, Tensor kCenter,
                                            Tensor kRstd, Tensor dq, Tensor dk, Tensor dv) {
        attention.normalizedAttentionBackward(dOut, q, k, v, out, lse, heads, eps, qCenter, qRstd, kCenter, kRstd, dq,
                dk, dv);
    }

    @Override
    public void normalizedSelfAttention(Tensor qkv, int heads, float eps, Tensor qMean, Tensor qRstd, Tensor qCenter,
                                        Tensor kMean, Tensor kRstd, Tensor kCenter, Tensor out, Tensor lse) {
        attention.normalizedSelfAttention(qkv, heads, eps, qMean, qRstd, qCenter, kMean, kRstd, kCenter, out, lse);
    }

    @Override
    public void normalizedSelfAttentionBackward(Tensor dOut, Tensor qkv, Tensor out, Tensor lse, int heads, float eps,
                                                Tensor qMean, Tensor qRstd, Tensor qCenter, Tensor kMean, Tensor kRstd,
                                                Tensor kCenter, Tensor dqkv) {
        attention.normalizedSelfAttentionBackward(dOut, qkv, out, lse, heads, eps, qMean, qRstd, qCenter, kMean, kRstd,
                kCenter, dqkv);
    }

    @Override
    public void normalizedCrossAttention(Tensor q, Tensor kv, int heads, float eps, Tensor qMean, Tensor qRstd,
                                         Tensor qCenter, Tensor kMean, Tensor kRstd, Tensor kCenter, Tensor out,
                                         Tensor lse) {
        attention.normalizedCrossAttention(q, kv, heads, eps, qMean, qRstd, qCenter, kMean, kRstd, kCenter, out, lse);
    }

    @Override
    public void normalizedCrossAttentionBackward(Tensor dOut, Tensor q, Tensor kv, Tensor out, Tensor lse, int heads,
                                                 float eps, Tensor qMean, Tensor qRstd, Tensor qCenter, Tensor kMean,
                                                 Tensor kRstd, Tensor kCenter, Tensor dq, Tensor dkv) {
        attention.normalizedCrossAttentionBackward(dOut, q, kv, out, lse, heads, eps, qMean, qRstd, qCenter, kMean,
                kRstd, kCenter, dq, dkv);
    }

    /** The LayerNorm ops, for other op families that normalise (normalizedAttention's other head dimensions). */
    CudaNorm norm() {
        return norm;
    }

    // ---------------------------------------------------------------- expert-choice MoE (CudaMoe)

    @Override
    public void expertChoiceTopK(Tensor probs, int k, Tensor gates, Tensor indices) {
        moe.expertChoiceTopK(probs, k, gates, indices);
    }

    @Override
    public void expertChoiceTopKBackward(Tensor dGates, Tensor indices, Tensor dProbs) {
        moe.expertChoiceTopKBackward(dGates, indices, dProbs);
    }

    @Override
    public void moeExpertsGelu(Tensor x, Tensor indices, Tensor w, Tensor pre, Tensor out, boolean tanhApproximation) {
        if (!gemm.moeExpertsGelu(moe, x, indices, w, pre, out, tanhApproximation)) {
            Backend.super.moeExpertsGelu(x, indices, w, pre, out, tanhApproximation);
        }
    }

    @Override
    public void moeExpertsWeightGradient(Tensor x, Tensor indices, Tensor dy, Tensor dw, boolean accumulate) {
        if (!gemm.moeExpertsWeightGradient(moe, x, indices, dy, dw, accumulate)) {
            Backend.super.moeExpertsWeightGradient(x, indices, dy, dw, accumulate);
        }
    }

    @Override
    public void moeDispatch(Tensor x, Tensor indices, Tensor out) {
        moe.moeDispatch(x, indices, out);
    }

    @Override
    public void moeDispatchBackward(Tensor dOut, Tensor indices, Tensor dx) {
        moe.moeDispatchBackward(dOut, indices, dx);
    }

    @Override
    public void moeCombine(Tensor h, Tensor gates, Tensor indices, Tensor out) {
        moe.moeCombine(h, gates, indices, out);
    }

    @Override
    public void moeCombineBackward(Tensor dOut, Tensor h, Tensor gates, Tensor indices, Tensor dH, Tensor dGates) {
        moe.moeCombineBackward(dOut, h, gates, indices, dH, dGates);
    }

    // ---------------------------------------------------------------- patches and embeddings (CudaEmbed)

    @Override
    public void patchify(Tensor image, int patch, Tensor out) {
        embed.patchify(image, patch, out);
    }

    @Override
    public void patchifyBackward(Tensor dOut, int patch, Tensor dImage) {
        embed.patchifyBackward(dOut, patch, dImage);
    }

    @Override
    public void unpatchify(Tensor tokens, int patch, Tensor out) {
        embed.unpatchify(tokens, patch, out);
    }

    @Override
    public void unpatchifyBackward(Tensor dOut, int patch, Tensor dTokens) {
        embed.unpatchifyBackward(dOut, patch, dTokens);
    }

    @Override
    public void positionEmbedding2d(int gridH, int gridW, float interpolationScale, Tensor out) {
        embed.positionEmbedding2d(gridH, gridW, interpolationScale, out);
    }

    @Override
    public void timestepEmbedding(Tensor t, Tensor out) {
        embed.timestepEmbedding(t, out);
    }

    // ---------------------------------------------------------------- loss (CudaLoss)

    @Override
    public float edmLoss(Tensor denoised, Tensor target, Tensor weight, Tensor mask, int patch, Tensor perSample) {
        return loss.edmLoss(denoised, target, weight, mask, patch, perSample);
    }

    @Override
    public void edmLossBackward(float dLoss, Tensor denoised, Tensor target, Tensor weight, Tensor mask, int patch,
                                Tensor dDenoised) {
        loss.edmLossBackward(dLoss, denoised, target, weight, mask, patch, dDenoised);
    }

    // ---------------------------------------------------------------- plumbing

    static void requireDevice(String op, String argument, Tensor t) {
        Checks.notNull(op, argument, t);
        Checks.argument(t.device() == Device.CUDA, op, () -> argument + " " + t.describe() + " is on " + t.device()
                + "; the CUDA backend needs device tensors (CudaBackend.scope, upload)");
    }

    /** The device pointer of an op's tensor argument (counted as the op's operand while tracing). */
    MemorySegment pointer(String op, String argument, Tensor t) {
        return pointer(op, argument, t, t.byteSize());
    }

    /**
     * {@link #pointer(String, String, Tensor)} for an argument the op touches only {@code touchedBytes} of (a column
     * slice of a wider matrix, whole rows of it being full sectors): those bytes are the operand the trace counts.
     */
    MemorySegment pointer(String op, String argument, Tensor t, long touchedBytes) {
        requireDevice(op, argument, t);
        if (trace != null) {
            trace.operand(touchedBytes);
        }
        return t.segment();
    }

    MemorySegment optionalPointer(String op, String argument, Tensor t) {
        return t == null ? MemorySegment.NULL : pointer(op, argument, t);
    }

    /** Throws for a failed status; while tracing, the op's launches are recorded under {@code op}. */
    void check(int status, String op) {
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
        memory.planning(dryRun);
        return trace;
    }

    void traceEnded(LaunchTrace ended) {
        if (trace == ended) {
            trace = null;
            memory.planning(false);
        }
    }
}
