package io.microdit.backend.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/** Status handling and device queries over {@link RuntimeBindings}. */
public final class CudaRuntime {
    /**
     * The statuses of microdit.h's {@code mdt_status}, which every {@code mdt_*} function returns; {@link #check} turns
     * a failure into an exception. This one: the call did what it was asked.
     */
    public static final int SUCCESS = 0;
    /**
     * A bad argument (pointer, size, shape, an emulator-only setting on the CUDA build); {@link #check} throws
     * {@link IllegalArgumentException} for it.
     */
    public static final int ERROR_INVALID_ARGUMENT = 1;
    /** No usable CUDA device (or no driver) for the CUDA library. */
    public static final int ERROR_NO_DEVICE = 2;
    /** Device memory (the emulator's: host memory) ran out; {@link DeviceMemory} then drops its cache and retries. */
    public static final int ERROR_OUT_OF_MEMORY = 3;
    /** A launch's grid or block shape is outside the device's limits. */
    public static final int ERROR_LAUNCH_SHAPE = 4;
    /** A launch asked for more shared memory per block than the architecture allows. */
    public static final int ERROR_SHARED_MEMORY = 5;
    /**
     * The emulator found a block whose threads wait at a barrier or warp operation that the others never reach (a
     * GPU would hang).
     */
    public static final int ERROR_DEADLOCK = 6;
    /** Any other failure of the CUDA runtime or driver; {@link #describe} gives the native detail. */
    public static final int ERROR_RUNTIME = 7;
    /** An NVIDIA driver is installed but older than the CUDA runtime the library was linked against. */
    public static final int ERROR_DRIVER_TOO_OLD = 8;
    /** The checked emulator's findings (libmicrodit_emu_checked.so, -Dmicrodit.device=emu-checked). */
    public static final int ERROR_OUT_OF_BOUNDS = 9;
    /** The checked emulator found a data race between blocks, or between threads of a block. */
    public static final int ERROR_RACE = 10;
    /** A collective between ranks failed, or its library (NCCL, MPI) is missing (microdit.h, mdt_comm_*). */
    public static final int ERROR_COMMUNICATION = 11;
    /** What {@code mdt_library_kind} answers for the CUDA build (nvcc, a real GPU). */
    public static final int KIND_CUDA = 0;
    /** What {@code mdt_library_kind} answers for the host emulator build (g++). */
    public static final int KIND_EMULATOR = 1;
    /** Block orders of {@link #blockOrder} (microdit.h, mdt_emu_block_order). */
    public static final int BLOCK_ORDER_FORWARD = 0;
    /** The emulator runs a launch's blocks last first: {@link #BLOCK_ORDER_FORWARD}'s order backwards. */
    public static final int BLOCK_ORDER_REVERSE = 1;
    /**
     * The emulator runs a launch's blocks in a permutation drawn from the seed (the same for the same seed and grid).
     */
    public static final int BLOCK_ORDER_SHUFFLED = 2;
    /** Stream modes of {@link #streamMode} (microdit.h, mdt_emu_stream_mode). */
    public static final int STREAMS_IMMEDIATE = 0;
    /**
     * Work queues on its stream and runs at a later synchronisation, as on a GPU; a failing kernel leaves its stream a
     * sticky error.
     */
    public static final int STREAMS_DEFERRED = 1;

    private CudaRuntime() {
    }

    /** Throws for a failing status: IllegalArgumentException for bad arguments, else {@link CudaException}. */
    public static void check(int status, String call) {
        if (status == SUCCESS) {
            return;
        }
        String message = call + " failed: " + describe(status);
        if (status == ERROR_INVALID_ARGUMENT) {
            throw new IllegalArgumentException(message);
        }
        throw new CudaException(status, message);
    }

    /** The status's name and the calling thread's last detailed native message. */
    public static String describe(int status) {
        String name = RuntimeBindings.mdt_error_string(status).reinterpret(256).getString(0);
        String detail = RuntimeBindings.mdt_last_error_message().reinterpret(1024).getString(0);
        return name + " (status " + status + ")" + (detail.isEmpty() ? "" : ": " + detail);
    }

    /** Whether the loaded library is the host emulator rather than the CUDA build. */
    public static boolean isEmulator() {
        return RuntimeBindings.mdt_library_kind() == KIND_EMULATOR;
    }

    /** Whether the loaded library is the checked host emulator (-Dmicrodit.device=emu-checked). */
    public static boolean isCheckedEmulator() {
        return NativeLibrary.isCheckedEmulator();
    }

    /**
     * Sets the order in which the emulator runs the blocks of every later launch, process-wide (a test that
     * changes it restores {@link #BLOCK_ORDER_FORWARD} when done); {@code seed} draws the shuffled permutation.
     * The CUDA library accepts only forward.
     */
    public static void blockOrder(int order, long seed) {
        check(RuntimeBindings.mdt_emu_block_order(order, seed), "mdt_emu_block_order");
    }

    /**
     * Sets when the emulator's streams run their work, process-wide: {@link #STREAMS_DEFERRED} as on a GPU (at a later
     * synchronisation or event query) or {@link #STREAMS_IMMEDIATE} (before each call returns). Pending work runs
     * first. The CUDA library accepts only deferred.
     */
    public static void streamMode(int mode) {
        check(RuntimeBindings.mdt_emu_stream_mode(mode), "mdt_emu_stream_mode");
    }

    /**
     * Sets how many host threads run the blocks of every later emulated launch at once, process-wide (1: one after
     * another on the calling thread), and returns the count that was in effect before; {@code 0} only reads it. A
     * test that changes it restores the previous count when done. The CUDA library refuses it.
     */
    public static int emulatorThreads(int count) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment inEffect = arena.allocate(ValueLayout.JAVA_INT);
            check(RuntimeBindings.mdt_emu_threads(0, inEffect), "mdt_emu_threads");
            int previous = inEffect.get(ValueLayout.JAVA_INT, 0);
            check(RuntimeBindings.mdt_emu_threads(count, MemorySegment.NULL), "mdt_emu_threads");
            return previous;
        }
    }

    /** The loaded library's file. */
    public static String libraryPath() {
        return NativeLibrary.path().toString();
    }

    /**
     * Chooses and loads the library for {@code device} ({@code cuda}, {@code emu}, or null for
     * {@code -Dmicrodit.device}, else the GPU) before anything binds it, and says which and why; throws
     * IllegalStateException with what was found and what is needed when it cannot (no GPU, a driver too old,
     * no library, or the other library already loaded in this process).
     */
    public static DeviceChoice select(String device) {
        return NativeLibrary.select(device);
    }

    /** The library this process runs on and why (chosen from {@code -Dmicrodit.device} if nothing chose yet). */
    public static DeviceChoice choice() {
        return NativeLibrary.choice();
    }

    /** What the CUDA build finds on this machine (driver and runtime versions, devices), whichever library runs. */
    public static DeviceChoice.Found probeCudaLibrary() {
        return NativeLibrary.probeCuda();
    }

    /** Devices visible to the loaded library (the emulator has one); 0 without a driver or device. */
    public static int deviceCount() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment count = arena.allocate(ValueLayout.JAVA_INT);
            int status = RuntimeBindings.mdt_device_count(count);
            return status == SUCCESS ? count.get(ValueLayout.JAVA_INT, 0) : 0;
        }
    }

    /**
     * The device's name as the loaded library reports it (the GPU's marketing name, or the emulator's); throws {@link
     * CudaException} for a device that does not exist.
     */
    public static String deviceName(int device) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buffer = arena.allocate(256);
            check(RuntimeBindings.mdt_device_name(device, buffer, buffer.byteSize()), "mdt_device_name");
            return buffer.getString(0);
        }
    }

    /**
     * The device's streaming multiprocessor count, which sizes grid-stride grids; throws {@link CudaException} for a
     * device that does not exist.
     */
    public static int smCount(int device) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment count = arena.allocate(ValueLayout.JAVA_INT);
            check(RuntimeBindings.mdt_device_sm_count(device, count), "mdt_device_sm_count");
            return count.get(ValueLayout.JAVA_INT, 0);
        }
    }

    /** {free, total} bytes of device memory. */
    public static long[] memory(int device) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment free = arena.allocate(ValueLayout.JAVA_LONG), total = arena.allocate(ValueLayout.JAVA_LONG);
            check(RuntimeBindings.mdt_device_memory(device, free, total), "mdt_device_memory");
            return new long[] {free.get(ValueLayout.JAVA_LONG, 0), total.get(ValueLayout.JAVA_LONG, 0)};
        }
    }
}
