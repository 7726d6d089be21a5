package io.microdit.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The checked emulator (libmicrodit_emu_checked.so) against kernels that are wrong on purpose (kernels/selftest.cu):
 * a read past an allocation's end, a float4 load straddling it, a write into freed memory, a race between blocks
 * and one between a block's threads in shared memory each end the launch with the right status and a message naming
 * the kernel and where; and its performance model counts bank conflicts and sectors exactly for access patterns
 * worked out by hand. The surefire execution "checked-emulator" (pom.xml, on a run without -Dtest) runs this class in a
 * JVM of its own with -Dmicrodit.device=emu-checked (one process loads one library), next to real kernels' tests;
 * by hand: -Dtest=CheckedEmulatorTest -Dmicrodit.device=emu-checked. Elsewhere it is skipped.
 */
@Tag("emu")
class CheckedEmulatorTest {

    /** Immediate streams: a faulty kernel's status is then its launch's (a deferred stream keeps it as a sticky
     *  error for a later call). */
    @BeforeAll
    static void onlyOnTheCheckedEmulator() {
        assumeTrue("emu-checked".equals(System.getProperty("microdit.device")),
                "runs in the checked-emulator surefire execution (-Dmicrodit.device=emu-checked)");
        assertTrue(CudaRuntime.isCheckedEmulator(), CudaRuntime.libraryPath());
        EmulatorStreams.set(CudaRuntime.STREAMS_IMMEDIATE);
    }

    @AfterAll
    static void restoreStreams() {
        EmulatorStreams.restore();
    }

    private static String run(String name, int grid, int block, int shared, int capacity, int expectedStatus) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ValueLayout.JAVA_FLOAT, capacity);
            int status = RuntimeBindings.mdt_selftest_run(arena.allocateFrom(name), grid, block, shared, out,
                    capacity);
            String message = CudaRuntime.describe(status);
            assertEquals(expectedStatus, status, () -> name + ": " + message);
            return message;
        }
    }

    private static void expect(String name, int grid, int block, int capacity, int status, String... fragments) {
        String message = run(name, grid, block, 0, capacity, status);
        assertTrue(message.contains(name + "_kernel"), message);
        for (String fragment : fragments) {
            assertTrue(message.contains(fragment), () -> "'" + fragment + "' in " + message);
        }
    }

    @Test
    void outOfBoundsAccessesFailWithKernelAndOffset() {
        expect("read_past_end", 1, 32, 100, CudaRuntime.ERROR_OUT_OF_BOUNDS, "read of 4 bytes",
                "at offset 400 of the 400-byte allocation", "block (0, 0, 0), thread (0, 0, 0)");
        expect("vector_past_end", 1, 1, 101, CudaRuntime.ERROR_OUT_OF_BOUNDS, "read of 16 bytes",
                "at offset 400 of the 404-byte allocation", "overrunning its end by 12 bytes");
        expect("write_freed", 1, 32, 64, CudaRuntime.ERROR_OUT_OF_BOUNDS, "write of 4 bytes",
                "at offset 0 of a freed 256-byte allocation");
        run("barrier", 1, 64, 256, 128, CudaRuntime.SUCCESS); // the emulator is usable again afterwards
    }

    @Test
    void racesFailWithBothParties() {
        // One emulator thread, so the message is the first race in block order (EmulatorConcurrencyTest: several).
        int threads = CudaRuntime.emulatorThreads(1);
        try {
            expect("block_race", 4, 32, 64, CudaRuntime.ERROR_RACE, "race between blocks: read at offset 0",
                    "which block 0 (linear index) wrote", "block (1, 0, 0)");
        } finally {
            CudaRuntime.emulatorThreads(threads);
        }
        expect("shared_race", 1, 64, 64, CudaRuntime.ERROR_RACE, "shared-memory race: read",
                "which thread 0 (linear index) wrote", "thread (32, 0, 0)");
        run("barrier", 1, 64, 256, 128, CudaRuntime.SUCCESS);
    }

    @Test
    void dynamicSharedMemoryEndsWhereTheLaunchSaysSo() {
        // barrier_kernel uses blockDim.x floats of dynamic shared memory; launched with none, it writes past it.
        expect("barrier", 1, 64, 128, CudaRuntime.ERROR_OUT_OF_BOUNDS, "out-of-bounds write of 4 bytes");
    }

    @Test
    void correctPrimitivesPassTheChecks() {
        run("barrier", 1, 100, 400, 200, CudaRuntime.SUCCESS);
        run("shuffle", 1, 64, 0, 64 * 6, CudaRuntime.SUCCESS);
        run("atomics", 3, 64, 0, 8, CudaRuntime.SUCCESS);
        run("block_sum", 1, 256, 0, 256, CudaRuntime.SUCCESS);
        run("ldmatrix", 1, 32, 0, 32 * 20, CudaRuntime.SUCCESS);
        run("cp_async", 1, 32, 0, 512, CudaRuntime.SUCCESS);
        run("partial_warp", 1, 32, 0, 32, CudaRuntime.SUCCESS);
    }

    private static MemoryAccessModel.KernelCounts counted(String name, int capacity, String kernel) {
        MemoryAccessModel.begin();
        run(name, 1, 32, 0, capacity, CudaRuntime.SUCCESS);
        List<MemoryAccessModel.KernelCounts> counts = MemoryAccessModel.end();
        assertEquals(1, counts.size(), counts::toString);
        assertEquals(kernel, counts.get(0).kernel());
        assertEquals(1, counts.get(0).launches());
        return counts.get(0);
    }

    @Test
    void bankConflictsAreCountedInWavefronts() {
        // One warp: a conflict-free store of words[lane], then a load of words[lane * stride].
        MemoryAccessModel.KernelCounts free = counted("shared_no_conflicts", 64, "shared_stride_kernel");
        assertEquals(2, free.sharedRequests());
        assertEquals(2, free.sharedWavefronts());
        assertEquals(0, free.excessWavefronts());
        MemoryAccessModel.KernelCounts conflicts = counted("shared_conflicts", 64, "shared_stride_kernel");
        assertEquals(2, conflicts.sharedRequests());
        assertEquals(1 + 32, conflicts.sharedWavefronts(), "stride 32: every lane in bank 0");
        assertEquals(31, conflicts.excessWavefronts());
        // The coalesced float store of both: 128 bytes in 4 sectors.
        assertEquals(1, conflicts.globalRequests());
        assertEquals(4, conflicts.globalSectors());
        assertEquals(4, conflicts.globalIdealSectors());
        String table = MemoryAccessModel.format(List.of(conflicts));
        assertTrue(table.lines().skip(1).findFirst().orElseThrow().matches(
                "shared_stride_kernel +1 +2 +16\\.50 +1550\\.0% +1 +4\\.00 +100\\.0%"), table);
    }

    @Test
    void coalescingIsCountedInSectors() {
        MemoryAccessModel.KernelCounts coalesced = counted("global_coalesced", 400, "global_stride_kernel");
        assertEquals(2, coalesced.globalRequests());
        assertEquals(8, coalesced.globalSectors());
        assertEquals(1.0, coalesced.sectorEfficiency());
        MemoryAccessModel.KernelCounts strided = counted("global_strided", 400, "global_stride_kernel");
        assertEquals(2, strided.globalRequests());
        assertEquals(32 + 4, strided.globalSectors(), "a float every 32 bytes: a sector per lane");
        assertEquals(4 + 4, strided.globalIdealSectors());
        assertEquals(8.0 / 36, strided.sectorEfficiency(), 1e-12);
        assertEquals(0, strided.sharedRequests());
    }

    @Test
    void emptyCountsAndBadArgumentsAreHandled() {
        MemoryAccessModel.begin();
        assertEquals(0, MemoryAccessModel.end().size(), "nothing launched");
        assertThrows(IllegalArgumentException.class, () -> CudaRuntime.check(
                RuntimeBindings.mdt_emu_perf_kernel(0, MemorySegment.NULL, 0, MemorySegment.NULL),
                "mdt_emu_perf_kernel"));
    }
}
