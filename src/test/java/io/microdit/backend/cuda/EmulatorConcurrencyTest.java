package io.microdit.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;
import java.util.function.Consumer;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The emulator runs a launch's blocks at once on several host threads (mdt_emu_threads). Every kernel of microdit is
 * deterministic (no float atomics, fixed reduction orders), so the hot kernels must give the same bits with one thread
 * (blocks one after another) and with four; two blocks must really run at the same time; a failed launch reports the
 * first failing block in claim order (what the serial run reports), whichever thread ran it; and in the checked emulator
 * (-Dmicrodit.device=emu-checked) a race between two blocks running at once on two threads must end the launch with
 * MDT_ERROR_RACE, as a race between blocks run one after another does. Sizes give every launch several blocks.
 */
@Tag("emu")
class EmulatorConcurrencyTest extends CudaVersusCpu {
    private static final int THREADS = 4;

    @BeforeEach
    void onlyOnTheEmulator() {
        assumeTrue(CudaRuntime.isEmulator(), "a GPU runs blocks on its own");
    }

    /** The bits of every argument after {@code cudaOp} on device copies, with {@code threads} emulator threads. */
    private static int[][] runWith(int threads, Tensor[] arguments, Consumer<Tensor[]> cudaOp) {
        int previous = CudaRuntime.emulatorThreads(threads);
        try (MemoryScope host = new MemoryScope("download"); MemoryScope device = cuda.scope("device")) {
            Tensor[] copies = new Tensor[arguments.length];
            for (int i = 0; i < arguments.length; i++) {
                copies[i] = cuda.upload(arguments[i], device);
            }
            cudaOp.accept(copies);
            int[][] bits = new int[arguments.length][];
            for (int i = 0; i < arguments.length; i++) {
                Tensor back = cuda.download(copies[i], host);
                if (back.dtype() == DType.I32) {
                    bits[i] = back.toIntArray();
                } else {
                    float[] values = back.toFloatArray(); // BF16 widens exactly
                    bits[i] = new int[values.length];
                    for (int e = 0; e < values.length; e++) {
                        bits[i][e] = Float.floatToRawIntBits(values[e]);
                    }
                }
            }
            return bits;
        } finally {
            CudaRuntime.emulatorThreads(previous);
        }
    }

    private static void sameBits(String what, Tensor[] arguments, Consumer<Tensor[]> cudaOp) {
        int[][] serial = runWith(1, arguments, cudaOp);
        int[][] concurrent = runWith(THREADS, arguments, cudaOp);
        for (int i = 0; i < arguments.length; i++) {
            int index = i;
            assertArrayEquals(serial[i], concurrent[i], () -> what + ": argument " + index + " has other bits with "
                    + THREADS + " emulator threads than with one");
        }
    }

    private static Tensor bf16(MemoryScope scope, Random random, float amplitude, int... shape) {
        return uniform(scope, random, amplitude, shape).to(DType.BF16, scope);
    }

    @Test
    void hotKernelsGiveTheSameBitsWithOneThreadAndWithFour() {
        assumeFalse(CudaRuntime.isCheckedEmulator(), "the plain emulator's job: the checked one is slower");
        Random random = new Random(121);
        try (MemoryScope scope = new MemoryScope("inputs")) {
            // bf16 GEMM: 128×128 tiles, grid (2, 2, batch 2) with tails; then a small product with long K, split.
            Tensor a = bf16(scope, random, 1, 2, 140, 40), b = bf16(scope, random, 1, 2, 130, 40);
            sameBits("matmul bf16", new Tensor[] {a, b, random(scope, random, 130), output(scope, 2, 140, 130)},
                    t -> cuda.matmul(t[0], false, t[1], true, t[2], t[3], false));
            assertTrue(GemmFixture.workspaceFloats(GemmBindings::mdt_gemm_matmul_bf16_workspace, 1, 24, 20, 2000)
                    > 0, "24×20 with K 2000 splits K");
            sameBits("matmul bf16 split-K", new Tensor[] {bf16(scope, random, 1, 2000, 24),
                    bf16(scope, random, 1, 2000, 20), random(scope, random, 20), output(scope, 24, 20)},
                    t -> cuda.matmul(t[0], true, t[1], false, t[2], t[3], false));

            // bf16 attention: queries 70 and keys 77 give two 64-row tiles each, × N·H = 2.
            int queries = 70, keys = 77, heads = 2, width = heads * 32;
            Tensor q = bf16(scope, random, 4, 1, queries, width);
            Tensor k = bf16(scope, random, 1, 1, keys, width), v = bf16(scope, random, 1, 1, keys, width);
            sameBits("attention bf16", new Tensor[] {q, k, v, output(scope, 1, queries, width),
                    output(scope, 1, heads, queries)},
                    t -> cuda.attention(t[0], t[1], t[2], heads, t[3], t[4]));
            Tensor out = scope.zeros(1, queries, width), lse = scope.zeros(1, heads, queries);
            cpu.attention(q.to(DType.F32, scope), k.to(DType.F32, scope), v.to(DType.F32, scope), heads, out, lse);
            sameBits("attention bf16 backward", new Tensor[] {random(scope, random, 1, queries, width), q, k, v, out,
                    lse, output(scope, 1, queries, width), output(scope, 1, keys, width), output(scope, 1, keys, width)},
                    t -> cuda.attentionBackward(t[0], t[1], t[2], t[3], t[4], t[5], heads, t[6], t[7], t[8]));

            // Expert-choice MoE: top-k, dispatch, combine and their backward.
            int n = 2, tokens = 20, experts = 3, top = 5, dim = 33;
            int[] routed = {n, experts, top}, expertRows = {experts, n * top, dim};
            Tensor probs = scope.zeros(n, tokens, experts);
            cpu.softmax(uniform(scope, random, 3, n, tokens, experts), probs);
            Tensor gates = scope.zeros(routed), indices = scope.zeros(DType.I32, routed);
            cpu.expertChoiceTopK(probs, top, gates, indices);
            Tensor x = random(scope, random, n, tokens, dim), h = random(scope, random, expertRows);
            Tensor dOut = random(scope, random, n, tokens, dim);
            sameBits("moe top-k, dispatch, combine and backward", new Tensor[] {probs, output(scope, routed),
                    output(scope, DType.I32, routed), x, output(scope, expertRows), h, output(scope, n, tokens, dim),
                    dOut, output(scope, expertRows), output(scope, routed), output(scope, n, tokens, dim)}, t -> {
                        cuda.expertChoiceTopK(t[0], top, t[1], t[2]);
                        cuda.moeDispatch(t[3], t[2], t[4]);
                        cuda.moeCombine(t[5], t[1], t[2], t[6]);
                        cuda.moeCombineBackward(t[7], t[5], t[1], t[2], t[8], t[9]);
                        cuda.moeDispatchBackward(t[8], t[2], t[10]);
                    });

            // LayerNorm backward: a block per row (10), the weight gradient over blocks of columns.
            int rows = 10, columns = 300;
            Tensor ln = uniform(scope, random, 3, 2, 5, columns), weight = random(scope, random, columns);
            Tensor mean = scope.zeros(rows), rstd = scope.zeros(rows);
            cpu.layerNorm(ln, weight, 1e-6f, scope.zeros(2, 5, columns), mean, rstd);
            sameBits("layerNormBackward", new Tensor[] {random(scope, random, 2, 5, columns), ln, weight, mean, rstd,
                    random(scope, random, columns), output(scope, 2, 5, columns)},
                    t -> cuda.layerNormBackward(t[0], t[1], t[2], t[3], t[4], t[6], t[5]));

            // Token gather and scatter: a block per kept row (15).
            int samples = 3, all = 17, kept = 5, features = 130;
            int[] ids = new int[samples * kept];
            for (int s = 0; s < samples; s++) {
                System.arraycopy(random.ints(0, all).distinct().limit(kept).toArray(), 0, ids, s * kept, kept);
            }
            Tensor idTensor = Tensor.ofInts(scope, ids, samples, kept);
            sameBits("gatherRows and scatterRows", new Tensor[] {random(scope, random, samples, all, features),
                    idTensor, output(scope, samples, kept, features), output(scope, samples, all, features)}, t -> {
                        cuda.gatherRows(t[0], t[1], t[2]);
                        cuda.scatterRows(t[2], t[1], t[3]);
                    });
        }
    }

    /** Runs self-test {@code name} on immediate streams (a failure is the launch's status); its output or status. */
    private static int selftest(String name, int grid, int block, float[] out) {
        EmulatorStreams.set(CudaRuntime.STREAMS_IMMEDIATE);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment segment = arena.allocate(ValueLayout.JAVA_FLOAT, out.length);
            int status = RuntimeBindings.mdt_selftest_run(arena.allocateFrom(name), grid, block, 0, segment,
                    out.length);
            MemorySegment.copy(segment, ValueLayout.JAVA_FLOAT, 0, out, 0, out.length);
            return status;
        } finally {
            EmulatorStreams.restore();
        }
    }

    /** How many of blocks_meet's two blocks saw the other one arrive, with {@code threads} emulator threads. */
    private static int blocksThatMet(int threads) {
        int previous = CudaRuntime.emulatorThreads(threads);
        try {
            float[] out = new float[2];
            int status = selftest("blocks_meet", 2, 32, out);
            assertEquals(CudaRuntime.SUCCESS, status, () -> CudaRuntime.describe(status));
            assertEquals(2, Float.floatToRawIntBits(out[0]), "both blocks arrived");
            return Float.floatToRawIntBits(out[1]);
        } finally {
            CudaRuntime.emulatorThreads(previous);
        }
    }

    @Test
    void blocksRunAtOnceOnSeveralThreadsAndOneAfterAnotherOnOne() {
        assertEquals(2, blocksThatMet(THREADS), "with several threads both blocks wait for each other and meet");
        assertEquals(1, blocksThatMet(1), "with one, the first block waits in vain for the second");
    }

    @Test
    void theFirstFailingBlockInClaimOrderIsReportedToTheCaller() {
        // Every block of deadlock_kernel deadlocks; the threads run several at once and stop claiming after a failure,
        // but every block claimed before the first failing one runs, so the launch reports the block claimed first.
        int previous = CudaRuntime.emulatorThreads(THREADS);
        try {
            for (int repeat = 0; repeat < 5; repeat++) {
                int status = selftest("deadlock", 8, 32, new float[32]);
                String message = CudaRuntime.describe(status);
                assertEquals(CudaRuntime.ERROR_DEADLOCK, status, message);
                assertTrue(message.contains("deadlock_kernel: block (0, 0, 0) deadlocked"), message);
            }
            // Block 1 fails first in time, on another thread (its message written there); block 0, claimed first,
            // fails later and is the launch's failure.
            int status = selftest("first_failure", 2, 32, new float[2]);
            String message = CudaRuntime.describe(status);
            assertEquals(CudaRuntime.ERROR_RUNTIME, status, message);
            assertTrue(message.contains("first_failure_kernel: block (0, 0, 0), thread (0, 0, 0)")
                    && message.contains("leaves out the calling lane"), message);
            CudaRuntime.blockOrder(CudaRuntime.BLOCK_ORDER_REVERSE, 0);
            status = selftest("deadlock", 8, 32, new float[32]);
            message = CudaRuntime.describe(status);
            assertEquals(CudaRuntime.ERROR_DEADLOCK, status, message);
            assertTrue(message.contains("deadlock_kernel: block (7, 0, 0) deadlocked"), message);
        } finally {
            CudaRuntime.blockOrder(CudaRuntime.BLOCK_ORDER_FORWARD, 0);
            CudaRuntime.emulatorThreads(previous);
        }
        assertEquals(2, blocksThatMet(THREADS), "the threads run blocks again after a failed launch");
    }

    @Test
    void theThreadCountIsCheckedAndRestored() {
        int previous = CudaRuntime.emulatorThreads(3);
        try {
            assertEquals(3, CudaRuntime.emulatorThreads(0), "0 only reads the count");
            assertEquals(3, CudaRuntime.emulatorThreads(0));
            for (int bad : new int[] {-1, 65}) {
                IllegalArgumentException error = assertThrows(IllegalArgumentException.class,
                        () -> CudaRuntime.emulatorThreads(bad));
                assertTrue(error.getMessage().contains("mdt_emu_threads: " + bad + " threads"), error.getMessage());
            }
            assertEquals(3, CudaRuntime.emulatorThreads(0), "a refused count changes nothing");
        } finally {
            CudaRuntime.emulatorThreads(previous);
        }
        assertTrue(previous >= 1 && previous <= 64, "the default: " + previous);
    }

    @Test
    void racesBetweenBlocksRunningAtOnceAreCaught() {
        assumeTrue(CudaRuntime.isCheckedEmulator(), "races are the checked emulator's (-Dmicrodit.device=emu-checked)");
        int previous = CudaRuntime.emulatorThreads(THREADS);
        try {
            // Block 0 writes out[2] while block 1, running at the same time on another thread, reads it: whichever
            // comes first, the other access is the race.
            float[] out = new float[4];
            int status = selftest("concurrent_race", 2, 32, out);
            String message = CudaRuntime.describe(status);
            assertEquals(CudaRuntime.ERROR_RACE, status, message);
            assertTrue(message.contains("concurrent_race_kernel") && message.contains("race between blocks")
                    && message.contains("at offset 8 of the 16-byte allocation"), message);
            assertTrue(message.contains("which block 0 (linear index) wrote")
                    || message.contains("which block 1 (linear index) read"), message);
            // Block b writes out[b] and reads out[b - 1]: caught however the blocks interleave on the threads.
            for (int repeat = 0; repeat < 20; repeat++) {
                int race = selftest("block_race", 8, 32, new float[16]);
                assertEquals(CudaRuntime.ERROR_RACE, race, () -> CudaRuntime.describe(race));
            }
            // Blocks that only share atomics are no race.
            int atomics = selftest("atomics", 8, 64, new float[8]);
            assertEquals(CudaRuntime.SUCCESS, atomics, () -> CudaRuntime.describe(atomics));
        } finally {
            CudaRuntime.emulatorThreads(previous);
        }
    }
}
