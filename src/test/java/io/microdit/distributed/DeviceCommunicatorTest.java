package io.microdit.distributed;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.microdit.testing.MpiLauncher;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The device collectives ({@code mdt_comm_*}) of the emulator between ranks started by mpirun, on device memory, and
 * the error a missing collectives library gives in either native build.
 */
class DeviceCommunicatorTest {
    private static final int COMMUNICATION_ERROR = 11;

    /** Awkward sizes (empty, one element, not a multiple of the world, empty shards), bit for bit, 2 and 3 ranks. */
    @ParameterizedTest
    @ValueSource(ints = {2, 3})
    void deviceCollectivesOnAwkwardSizesEqualTheSingleProcessResultsBitForBit(int ranks) throws Exception {
        MpiLauncher.Result result = MpiLauncher.run(ranks, 180, line -> { }, List.of(nativeDir()),
                CollectivesMain.class, "device");
        assertEquals(0, result.exitCode(), result.output());
        for (int r = 0; r < ranks; r++) {
            assertTrue(result.output().contains("rank " + r + " of " + ranks + ": all collectives agree"),
                    result.output());
        }
    }

    /**
     * The deferred join on 2 and 3 emulated ranks with deferred streams ({@link DeferredCollectivesMain}): a deferred
     * collective has not run before its join (its buffer holds the old values while later compute-stream work has
     * run), its result after the join is the serial path's bit for bit, and a ring of 2 bucket buffers over 5 buckets
     * joins a slot's collective only when a later bucket needs the slot, in this order.
     */
    @ParameterizedTest
    @ValueSource(ints = {2, 3})
    void deferredCollectivesRunOnlyWhenJoinedAndTheRingReusesASlotOnlyAfterItsJoin(int ranks) throws Exception {
        MpiLauncher.Result result = MpiLauncher.run(ranks, 180, line -> { }, List.of(nativeDir()),
                DeferredCollectivesMain.class);
        assertEquals(0, result.exitCode(), result.output());
        for (int r = 0; r < ranks; r++) {
            assertTrue(result.output().contains("rank " + r + " of " + ranks + ": deferred collectives agree"),
                    result.output());
            assertTrue(result.output().contains("rank " + r + " ring trace: issue 4, issue 3, join 4, issue 2, join 3, "
                    + "issue 1, join 2, issue 0, join 1, join 0\n"), result.output());
        }
    }

    /**
     * Rank 1 killed while a deferred all-reduce and reduce-scatter are pending ({@link DeferredCollectivesMain}
     * {@code kill}): the job ends within 60 s with a message naming rank 1, and rank 0 never leaves its join. mpirun
     * ends the job itself when a rank dies; with {@code --enable-recovery} it leaves the survivors running (as other
     * launchers may), so there rank 0's join must find the dead rank itself and fail with a status naming it and the
     * collective (mpirun then exits 0 whatever its ranks did, so only the default launch is checked for it).
     */
    @ParameterizedTest
    @ValueSource(booleans = {true, false})
    void aRankKilledWhileADeferredCollectiveIsPendingEndsTheJobWithAMessageNamingIt(boolean launcherEndsTheJob)
            throws Exception {
        AtomicLong killed = new AtomicLong(-1);
        MpiLauncher.Result result = MpiLauncher.run(2, 90, line -> {
            if (line.startsWith("pid ")) {
                long pid = Long.parseLong(line.substring(4).trim());
                // Rank 0 is in (or about to enter) the join of collectives that rank 1 will never run.
                sleep(2000);
                ProcessHandle.of(pid).ifPresent(ProcessHandle::destroyForcibly);
                killed.set(pid);
            }
        }, launcherEndsTheJob ? List.of() : List.of("--enable-recovery"), List.of(nativeDir()),
                DeferredCollectivesMain.class, "kill");
        assertTrue(killed.get() > 0, "rank 1 never reported its pid:\n" + result.output());
        assertNotEquals(-1, result.exitCode(), "the job hung after rank 1 was killed:\n" + result.output());
        assertTrue(result.seconds() < 60, "the job took " + result.seconds() + " s to end:\n" + result.output());
        assertFalse(result.output().contains("left the join"), result.output());
        if (launcherEndsTheJob) {
            assertNotEquals(0, result.exitCode(), result.output());
            assertTrue(result.output().contains("rank 1"), "no message names rank 1:\n" + result.output());
        } else {
            assertTrue(result.output().contains("rank 0: the join failed: mdt_comm_join failed: collective "
                    + "communication failed (status " + COMMUNICATION_ERROR + "): mdt_comm_join: "
                    + "mdt_comm_all_reduce_sum_deferred: rank 1 of 2 (process " + killed.get() + " on this host) "
                    + "died"), result.output());
        }
    }

    /**
     * A deferred reduce-scatter whose shard bounds differ across the 2 ranks ({@link DeferredCollectivesMain}
     * {@code mismatch}): MPI's error inside the pending collective is the join's exception on each rank, naming the
     * collective and MPI's error; the ranks then end the job.
     */
    @Test
    void anMpiErrorInsideADeferredCollectiveIsAnExceptionAtTheJoinNamingTheCollective() throws Exception {
        MpiLauncher.Result result = MpiLauncher.run(2, 90, line -> { }, List.of(nativeDir()),
                DeferredCollectivesMain.class, "mismatch");
        assertNotEquals(0, result.exitCode(), result.output());
        assertNotEquals(-1, result.exitCode(), "the job hung:\n" + result.output());
        assertFalse(result.output().contains("left the join"), result.output());
        assertTrue(result.output().matches("(?s).*rank [01]: the join failed: mdt_comm_join failed: collective "
                + "communication failed \\(status " + COMMUNICATION_ERROR + "\\): mdt_comm_join: "
                + "mdt_comm_reduce_scatter_sum_deferred failed with MPI error \\d+: MPI_ERR_TRUNCATE.*"),
                result.output());
    }

    /**
     * The CUDA build without NCCL (and the emulator without MPI) reports MDT_ERROR_COMMUNICATION naming the library
     * and where it is looked for, instead of aborting; the CUDA build needs no GPU to get there.
     */
    @ParameterizedTest
    @CsvSource({"libmicrodit_cuda.so, MICRODIT_NCCL_LIBRARY, libnccl-absent.so.2, LD_LIBRARY_PATH",
            "libmicrodit_emu.so, MICRODIT_MPI_LIBRARY, libmpi-absent.so.40, openmpi-bin and libopenmpi-dev"})
    void aMissingCollectivesLibraryIsAnErrorNamingIt(String library, String variable, String absent, String advice)
            throws Exception {
        Path path = Path.of(System.getProperty("microdit.native.dir", "target/native"), library);
        assumeTrue(Files.exists(path), path + " is not built here (make -C native cuda needs nvcc)");
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java")
                .toString()));
        command.addAll(Arrays.asList(System.getProperty("microdit.jvm.flags").trim().split("\\s+")));
        command.addAll(List.of("-cp", System.getProperty("java.class.path"), CommLibraryMain.class.getName(),
                path.toAbsolutePath().toString()));
        ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true);
        builder.environment().put(variable, absent);
        Process process = builder.start();
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(process.waitFor(60, TimeUnit.SECONDS), output);
        assertEquals(0, process.exitValue(), output);
        assertTrue(output.contains("status " + COMMUNICATION_ERROR + ": mdt_comm_unique_id: "), output);
        assertTrue(output.contains(absent), output);
        assertTrue(output.contains(advice), output);
    }

    private static void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static String nativeDir() throws IOException {
        return "-Dmicrodit.native.dir=" + Path.of(System.getProperty("microdit.native.dir", "target/native"))
                .toRealPath();
    }
}
