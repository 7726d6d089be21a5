package io.microdit.distributed;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.testing.MpiLauncher;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The MPI communicator on 2 ranks started by mpirun (skipped where Open MPI is not installed). */
class MpiCommunicatorTest {

    /** 2 ranks as CI runs them, and 3, where the order of a sum shows ((x0 + x1) + x2 ≠ x0 + (x1 + x2)). */
    @ParameterizedTest
    @ValueSource(ints = {2, 3})
    void collectivesOnAwkwardSizesEqualTheSingleProcessResultsBitForBit(int ranks) throws Exception {
        MpiLauncher.Result result = MpiLauncher.run(ranks, 120, line -> { }, CollectivesMain.class, "check");
        assertEquals(0, result.exitCode(), result.output());
        for (int r = 0; r < ranks; r++) {
            assertTrue(result.output().contains("rank " + r + " of " + ranks + ": all collectives agree"),
                    result.output());
        }
    }

    @Test
    void aRankKilledMidCollectiveEndsTheOtherWithAMessageNamingIt() throws Exception {
        AtomicLong killed = new AtomicLong(-1);
        MpiLauncher.Result result = MpiLauncher.run(2, 90, line -> {
            if (line.startsWith("pid ")) {
                long pid = Long.parseLong(line.substring(4).trim());
                // Rank 0 is already in (or about to enter) the all-reduce that rank 1 will never join.
                sleep(2000);
                ProcessHandle.of(pid).ifPresent(ProcessHandle::destroyForcibly);
                killed.set(pid);
            }
        }, CollectivesMain.class, "kill");
        assertTrue(killed.get() > 0, "rank 1 never reported its pid:\n" + result.output());
        assertNotEquals(-1, result.exitCode(), "the job hung after rank 1 was killed:\n" + result.output());
        assertNotEquals(0, result.exitCode(), result.output());
        assertTrue(result.seconds() < 60, "the job took " + result.seconds() + " s to end:\n" + result.output());
        assertTrue(result.output().contains("rank 1"), "mpirun's message does not name rank 1:\n" + result.output());
        assertTrue(!result.output().contains("left the all-reduce"), result.output());
    }

    @Test
    void aMissingMpiLibraryIsAnErrorNamingItAndTheDebianPackages() throws Exception {
        MpiLauncher.Result result = MpiLauncher.run(1, 60, line -> { },
                List.of("-Dmicrodit.mpi.library=libmpi-absent.so.40"), CollectivesMain.class, "check");
        assertNotEquals(0, result.exitCode(), result.output());
        assertTrue(result.output().contains("libmpi-absent.so.40 could not be loaded"), result.output());
        assertTrue(result.output().contains("openmpi-bin and libopenmpi-dev"), result.output());
    }

    private static void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
