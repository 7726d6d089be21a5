package io.microdit.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The execution model the kernels rely on, each primitive against a case worked out by hand: block barriers
 * over shared memory, warp shuffles and votes, atomics, bf16 rounding, the block reduction of common.cuh, the
 * tensor-core wrappers (one m16n8k16 MMA, ldmatrix with and without .trans) against the PTX ISA's fragment
 * layouts, cp.async, shuffles in a partly exited warp, launch-shape and shared-memory violations (static + dynamic
 * against 48 KiB, or with the opt-in the architecture's limit), and (emulator only) deadlock detection and the
 * stricter checks: misaligned cp.async and ldmatrix or ones outside shared memory, warp-synchronous misuse, divergent
 * barriers, cp.async data before its wait and shared memory (dynamic and static) read before it is written, the
 * emulated architecture's opt-in limit, and the block order setting (a race between blocks that forward and reverse
 * order decide differently). The emulator runs these with immediate streams: a failing kernel's status is then its
 * launch's, where a deferred stream would keep it as a sticky error.
 */
@Tag("emu")
class EmulatorPrimitivesTest {
    @BeforeAll
    static void immediateStreams() {
        EmulatorStreams.set(CudaRuntime.STREAMS_IMMEDIATE);
    }

    @AfterAll
    static void configuredStreams() {
        EmulatorStreams.restore();
    }

    private static float[] run(String name, int grid, int block, int shared, int capacity, int expectedStatus) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ValueLayout.JAVA_FLOAT, capacity);
            int status = RuntimeBindings.mdt_selftest_run(arena.allocateFrom(name), grid, block, shared, out, capacity);
            assertEquals(expectedStatus, status, () -> name + ": " + CudaRuntime.describe(status));
            return out.toArray(ValueLayout.JAVA_FLOAT);
        }
    }

    private static float[] run(String name, int grid, int block, int shared, int capacity) {
        return run(name, grid, block, shared, capacity, CudaRuntime.SUCCESS);
    }

    @Test
    void barrierOrdersSharedMemoryWritesBeforeReads() {
        int size = 100; // not a multiple of the warp size: a partial last warp
        float[] out = run("barrier", 1, size, size * 4, 2 * size);
        for (int t = 0; t < size; t++) {
            float first = (t + 1) % size + 1;
            int left = (t + size - 1) % size;
            float leftValue = (left + 1) % size + 1;
            assertEquals(first, out[t], "first round, thread " + t);
            assertEquals(first + leftValue, out[size + t], "second round, thread " + t);
        }
    }

    @Test
    void shufflesReadTheRightLanes() {
        float[] out = run("shuffle", 1, 64, 0, 64 * 6);
        for (int t = 0; t < 64; t++) {
            int lane = t % 32;
            float[] expected = {
                30, // lane 3's l·10
                lane ^ 1,
                lane + 4 < 32 ? lane + 4 : lane, // out of range: own value
                lane >= 2 ? lane - 2 : lane,
                (lane & ~7) + 5, // width 8: lane 5 of each group of 8
                496, // 0 + 1 + ... + 31
            };
            float[] actual = new float[6];
            System.arraycopy(out, t * 6, actual, 0, 6);
            assertArrayEquals(expected, actual, "thread " + t);
        }
    }

    @Test
    void votesCombineTheWarp() {
        float[] out = run("vote", 1, 64, 0, 10);
        for (int warp = 0; warp < 2; warp++) {
            // lanes 0, 3, 6, ..., 30 set: 0b01001001...
            int ballot = 0;
            for (int lane = 0; lane < 32; lane += 3) {
                ballot |= 1 << lane;
            }
            assertEquals(ballot, Float.floatToRawIntBits(out[warp * 5]), "ballot");
            assertEquals(1f, out[warp * 5 + 1], "all true");
            assertEquals(0f, out[warp * 5 + 2], "all false (lane 31)");
            assertEquals(1f, out[warp * 5 + 3], "any true (lane 5)");
            assertEquals(0f, out[warp * 5 + 4], "any false");
        }
    }

    @Test
    void atomicsCountEveryThreadOnce() {
        int blocks = 3, threads = 100;
        float[] out = run("atomics", blocks, threads, 0, 8);
        assertEquals(0.5f * blocks * threads, out[0], "float atomicAdd");
        assertEquals(blocks * threads, Float.floatToRawIntBits(out[1]), "int atomicAdd");
        int max = 0;
        for (int b = 0; b < blocks; b++) {
            for (int t = 0; t < threads; t++) {
                max = Math.max(max, ((b * threads + t) * 7 + b) % 101);
            }
        }
        assertEquals(max, Float.floatToRawIntBits(out[2]), "atomicMax");
        assertEquals(1, Float.floatToRawIntBits(out[3]), "exactly one CAS from 0 to 1 succeeds");
        assertEquals(1, Float.floatToRawIntBits(out[4]), "the flag");
    }

    @Test
    void bf16RoundsToNearestEven() {
        float[] out = run("bf16", 1, 32, 0, 20);
        int[] expected = {0x3f80, 0x3f80, 0x3f82, 0x3f81, 0x3f80, 0xbf82, 0x7f80, 0x0001, 0x7fff, 0xff80};
        for (int i = 0; i < expected.length; i++) {
            assertEquals(expected[i], (int) out[i], "bits of case " + i);
        }
        assertEquals(1.0f, out[10]);
        assertEquals(1.015625f, out[12]); // 0x3f82 = 1 + 2^-6
        assertEquals(Float.POSITIVE_INFINITY, out[16]);
        assertTrue(Float.isNaN(out[18]));
    }

    @Test
    void blockSumIsTheSameOnEveryThread() {
        int threads = 1024;
        float[] out = run("block_sum", 1, threads, 0, threads);
        for (int t = 0; t < threads; t++) {
            assertEquals(threads * (threads - 1) / 2f, out[t], "thread " + t);
        }
    }

    /** The MMA self-test's operands (kernels/selftest.cu): small integers, exact in bf16 and in f32 sums. */
    private static float mmaA(int row, int k) {
        return (row * 3 + k * 5) % 7 - 3;
    }

    private static float mmaB(int k, int column) {
        return (k * 2 + column * 3) % 5 - 2;
    }

    private static float mmaC(int row, int column) {
        return row - 2 * column + 0.25f;
    }

    @Test
    void mmaComputesATimesBPlusCOnTheWarpsFragments() {
        float[] out = run("mma", 1, 32, 0, 16 * 8);
        for (int row = 0; row < 16; row++) {
            for (int column = 0; column < 8; column++) {
                float expected = mmaC(row, column);
                for (int k = 0; k < 16; k++) {
                    expected += mmaA(row, k) * mmaB(k, column);
                }
                assertEquals(expected, out[row * 8 + column], "D[" + row + "][" + column + "]");
            }
        }
    }

    @Test
    void ldmatrixDistributesRowsAndTransposes() {
        float[] out = run("ldmatrix", 1, 32, 0, 32 * 20);
        for (int lane = 0; lane < 32; lane++) {
            for (int matrix = 0; matrix < 4; matrix++) {
                // Matrix i is the quarter of S[r][c] = 16r + c at rows 8·(i mod 2), columns 8·(i/2).
                int row0 = 8 * (matrix % 2), column0 = 8 * (matrix / 2);
                for (int half = 0; half < 2; half++) {
                    float plain = 16 * (row0 + lane / 4) + column0 + 2 * (lane % 4) + half;
                    float transposed = 16 * (row0 + 2 * (lane % 4) + half) + column0 + lane / 4;
                    String where = "lane " + lane + " matrix " + matrix + " half " + half;
                    assertEquals(plain, out[lane * 20 + 2 * matrix + half], "x4 " + where);
                    assertEquals(transposed, out[lane * 20 + 8 + 2 * matrix + half], "x4.trans " + where);
                    if (matrix < 2) {
                        assertEquals(plain, out[lane * 20 + 16 + 2 * matrix + half], "x2 " + where);
                    }
                }
            }
        }
    }

    @Test
    void invalidLaunchShapesAndSharedMemoryAreErrors() {
        run("barrier", 1, 2048, 0, 4096, CudaRuntime.ERROR_LAUNCH_SHAPE);
        run("barrier", 0, 32, 128, 64, CudaRuntime.ERROR_LAUNCH_SHAPE);
        run("barrier", 1, 32, 64 * 1024, 64, CudaRuntime.ERROR_SHARED_MEMORY);
        run("no-such-test", 1, 32, 0, 64, CudaRuntime.ERROR_INVALID_ARGUMENT);
        String message = CudaRuntime.describe(CudaRuntime.ERROR_INVALID_ARGUMENT);
        assertTrue(message.contains("no-such-test"), message);
    }

    /** The shared_limit self-test: 16 KiB of static shared memory (kernels/selftest.cu) and {@code dynamic} bytes. */
    private static final int STATIC_BYTES = 16 * 1024;
    private static final int DEFAULT_LIMIT = 48 * 1024;

    private static void sharedLimitRuns(String name, int dynamic) {
        int blocks = 2, threads = 64;
        float[] out = run(name, blocks, threads, dynamic, blocks * threads);
        for (int i = 0; i < blocks * threads; i++) {
            int neighbour = (i % threads + 1) % threads;
            assertEquals(3 * neighbour + 1, out[i], name + " with " + dynamic + " dynamic bytes, element " + i);
        }
    }

    private static void sharedLimitFails(String name, int dynamic, int limit) {
        run(name, 1, 64, dynamic, 64, CudaRuntime.ERROR_SHARED_MEMORY);
        String message = CudaRuntime.describe(CudaRuntime.ERROR_SHARED_MEMORY);
        assertTrue(message.contains("shared_limit_kernel") && message.contains(STATIC_BYTES + " bytes of static")
                && message.contains(dynamic + " of dynamic") && message.contains(limit + "-byte limit"), message);
    }

    @Test
    void staticAndDynamicSharedMemoryShareTheLimit() {
        sharedLimitRuns("shared_limit", DEFAULT_LIMIT - STATIC_BYTES);
        sharedLimitFails("shared_limit", DEFAULT_LIMIT - STATIC_BYTES + 16, DEFAULT_LIMIT);
        sharedLimitRuns("shared_limit_opt_in", DEFAULT_LIMIT - STATIC_BYTES + 16);
        sharedLimitRuns("shared_limit_opt_in", 100 * 1024);
        sharedLimitFails("shared_limit", DEFAULT_LIMIT - STATIC_BYTES + 16, DEFAULT_LIMIT); // the opt-in was the launch's
        run("barrier", 1, 32, DEFAULT_LIMIT + 4, 64, CudaRuntime.ERROR_SHARED_MEMORY);
        run("barrier", 1, 64, 256, 128); // the launch after a refused one runs
    }

    @Test
    void emulatedArchitecturesSetTheOptInLimit() {
        if (!CudaRuntime.isEmulator()) {
            int refused = RuntimeBindings.mdt_emu_architecture(1);
            assertEquals(CudaRuntime.ERROR_INVALID_ARGUMENT, refused, CudaRuntime.describe(refused));
            return;
        }
        int sm90 = 227 * 1024, sm80 = 163 * 1024;
        try {
            assertEquals(CudaRuntime.SUCCESS, RuntimeBindings.mdt_emu_architecture(90));
            sharedLimitRuns("shared_limit_opt_in", sm90 - STATIC_BYTES);
            sharedLimitFails("shared_limit_opt_in", sm90 - STATIC_BYTES + 16, sm90);

            assertEquals(CudaRuntime.SUCCESS, RuntimeBindings.mdt_emu_architecture(80));
            sharedLimitRuns("shared_limit_opt_in", sm80 - STATIC_BYTES);
            sharedLimitFails("shared_limit_opt_in", sm80 - STATIC_BYTES + 16, sm80);
            String message = CudaRuntime.describe(CudaRuntime.ERROR_SHARED_MEMORY);
            assertTrue(message.contains("sm_80"), message);
            run("shared_limit_opt_in", 1, 64, sm90 - STATIC_BYTES, 64, CudaRuntime.ERROR_SHARED_MEMORY);
            message = CudaRuntime.describe(CudaRuntime.ERROR_SHARED_MEMORY);
            assertTrue(message.contains((sm90 - STATIC_BYTES) + " bytes of dynamic") && message.contains(sm80
                    + "-byte limit"), "what sm_90 takes is over sm_80's limit: " + message);

            int invalid = RuntimeBindings.mdt_emu_architecture(70);
            assertEquals(CudaRuntime.ERROR_INVALID_ARGUMENT, invalid);
            assertTrue(CudaRuntime.describe(invalid).contains("sm_70 is not emulated"), CudaRuntime.describe(invalid));

            expectError("static_over_limit", 32, 0, CudaRuntime.ERROR_SHARED_MEMORY, "bytes a kernel may declare");
        } finally {
            assertEquals(CudaRuntime.SUCCESS, RuntimeBindings.mdt_emu_architecture(90));
        }
    }

    @Test
    void cpAsyncCopiesAndZeroFillsChunks() {
        float[] out = run("cp_async", 1, 32, 0, 512);
        for (int i = 0; i < 128; i++) {
            int j = (i + 4) % 128, thread = j / 4, sourceBytes = thread % 3 * 8;
            float expected = (j % 4) * 4 < sourceBytes ? j + 1 : 0f;
            assertEquals(expected, out[i], "element " + i);
        }
    }

    @Test
    void shufflesInAPartlyExitedWarp() {
        float[] out = run("partial_warp", 1, 32, 0, 32);
        for (int t = 0; t < 16; t++) {
            assertEquals(t ^ 1, out[t], "own mask, lane " + t);
            assertEquals((t ^ 1) * 10, out[16 + t], "full mask naming exited lanes, lane " + t);
        }
    }

    @Test
    void emulatorDefersCpAsyncAndPoisonsSharedMemory() {
        assumeTrue(CudaRuntime.isEmulator(), "reads of undefined shared memory only have a defined result here");
        float[] out = run("cp_async_early", 1, 32, 512, 512);
        for (int t = 0; t < 32; t++) {
            assertTrue(Float.isNaN(out[t]), "read before cp_async_wait sees the fill, thread " + t);
            assertEquals(t + 1, out[32 + t], "read after the wait, thread " + t);
        }
        int blocks = 3, threads = 64;
        for (String name : new String[] {"shared_poison", "static_shared_poison"}) {
            out = run(name, blocks, threads, threads * 4, blocks * threads);
            for (int i = 0; i < blocks * threads; i++) {
                assertEquals(0xffffffff, Float.floatToRawIntBits(out[i]), name + ": every block starts with 0xFF, " + i);
            }
        }
    }

    @Test
    void emulatorRejectsWhatTheHardwareFaultsOn() {
        assumeTrue(CudaRuntime.isEmulator(), "these kernels fault or hang on a GPU");
        expectError("cp_async_misaligned", 32, 512, CudaRuntime.ERROR_RUNTIME, "16-byte aligned");
        expectError("ldmatrix_misaligned", 32, 0, CudaRuntime.ERROR_RUNTIME, "not 16-byte aligned");
        expectError("ldmatrix_global", 32, 0, CudaRuntime.ERROR_RUNTIME, "not inside the block's shared memory");
        expectError("ldmatrix_past_shared", 32, 256, CudaRuntime.ERROR_RUNTIME, "not inside the block's shared memory");
        run("ldmatrix_past_shared", 1, 32, 512, 32); // every row inside
        expectError("cp_async_global", 32, 0, CudaRuntime.ERROR_RUNTIME, "not inside the block's shared memory");
        expectError("mma", 16, 0, CudaRuntime.ERROR_RUNTIME, "all 32 lanes");
        expectError("shuffle_own_lane", 32, 0, CudaRuntime.ERROR_RUNTIME, "leaves out the calling lane");
        expectError("shuffle_exited", 32, 0, CudaRuntime.ERROR_RUNTIME, "does not take part");
        expectError("divergent_shuffle", 32, 0, CudaRuntime.ERROR_RUNTIME, "same call with the same mask");
        expectError("divergent_barrier", 64, 0, CudaRuntime.ERROR_DEADLOCK, "divergent barrier");
        run("barrier", 1, 64, 256, 128); // the emulator is usable again afterwards
    }

    private static void expectError(String name, int block, int shared, int status, String fragment) {
        run(name, 1, block, shared, 512, status);
        String message = CudaRuntime.describe(status);
        assertTrue(message.contains(fragment) && message.contains(name + "_kernel"), message);
    }

    /** The block_order race: out[0] = the block that wrote last, then the position at which each block ran. */
    private static int[] positions(float[] out, int blocks) {
        int[] positions = new int[blocks];
        for (int b = 0; b < blocks; b++) {
            positions[b] = (int) out[2 + b];
        }
        return positions;
    }

    @Test
    void blockOrderDecidesWhoWinsARaceBetweenBlocks() {
        assumeTrue(CudaRuntime.isEmulator(), "the block order is the hardware's on a GPU");
        int blocks = 9;
        int[] forward = new int[blocks], reverse = new int[blocks];
        for (int b = 0; b < blocks; b++) {
            forward[b] = b;
            reverse[b] = blocks - 1 - b;
        }
        // One emulator thread: the blocks run one after another in the order they are claimed.
        int threads = CudaRuntime.emulatorThreads(1);
        try {
            CudaRuntime.blockOrder(CudaRuntime.BLOCK_ORDER_FORWARD, 0);
            float[] out = run("block_order", blocks, 32, 0, 2 + blocks);
            assertEquals(blocks - 1, out[0], "forward: the last block writes last");
            assertArrayEquals(forward, positions(out, blocks));

            CudaRuntime.blockOrder(CudaRuntime.BLOCK_ORDER_REVERSE, 0);
            out = run("block_order", blocks, 32, 0, 2 + blocks);
            assertEquals(0f, out[0], "reverse: block 0 writes last");
            assertArrayEquals(reverse, positions(out, blocks));

            CudaRuntime.blockOrder(CudaRuntime.BLOCK_ORDER_SHUFFLED, 42);
            out = run("block_order", blocks, 32, 0, 2 + blocks);
            int[] shuffled = positions(out, blocks);
            int[] sorted = shuffled.clone();
            Arrays.sort(sorted);
            assertArrayEquals(forward, sorted, "shuffled: every block runs once");
            assertTrue(!Arrays.equals(forward, shuffled) && !Arrays.equals(reverse, shuffled),
                    Arrays.toString(shuffled));
            assertEquals(shuffled[(int) out[0]], blocks - 1, "the last writer is the block that ran last");
            assertArrayEquals(shuffled, positions(run("block_order", blocks, 32, 0, 2 + blocks), blocks),
                    "the same seed gives the same order");
            CudaRuntime.blockOrder(CudaRuntime.BLOCK_ORDER_SHUFFLED, 43);
            int[] other = positions(run("block_order", blocks, 32, 0, 2 + blocks), blocks);
            assertTrue(!Arrays.equals(shuffled, other), "another seed, another order");

            IllegalArgumentException bad = assertThrows(
                    IllegalArgumentException.class, () -> CudaRuntime.blockOrder(3, 0));
            assertTrue(bad.getMessage().contains("order 3 is not"), bad.getMessage());
            CudaRuntime.blockOrder(CudaRuntime.BLOCK_ORDER_FORWARD, 0);
            assertEquals(blocks - 1, run("block_order", blocks, 32, 0, 2 + blocks)[0], "forward again");
        } finally {
            CudaRuntime.blockOrder(CudaRuntime.BLOCK_ORDER_FORWARD, 0);
            CudaRuntime.emulatorThreads(threads);
        }
    }

    @Test
    void onlyTheEmulatorTakesAnotherBlockOrder() {
        CudaRuntime.blockOrder(CudaRuntime.BLOCK_ORDER_FORWARD, 0); // both libraries
        if (CudaRuntime.isEmulator()) {
            return; // blockOrderDecidesWhoWinsARaceBetweenBlocks
        }
        IllegalArgumentException refused = assertThrows(IllegalArgumentException.class,
                () -> CudaRuntime.blockOrder(CudaRuntime.BLOCK_ORDER_REVERSE, 0));
        assertTrue(refused.getMessage().contains("property of the hardware"), refused.getMessage());
    }

    @Test
    void emulatorReportsDeadlocks() {
        assumeTrue(CudaRuntime.isEmulator(), "a deadlocking kernel only runs on the emulator");
        run("deadlock", 1, 32, 0, 32, CudaRuntime.ERROR_DEADLOCK);
        assertTrue(CudaRuntime.describe(CudaRuntime.ERROR_DEADLOCK).contains("deadlock"));
        run("barrier", 1, 64, 256, 128); // the emulator is usable again afterwards
    }
}
