package io.microdit.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** Local rank → CUDA device under mpirun: one process per GPU. */
class RankDeviceTest {
    @Test
    void eachLocalRankTakesItsOwnDevice() {
        for (int devices = 1; devices <= 8; devices++) {
            for (int rank = 0; rank < devices; rank++) {
                assertEquals(rank, RankDevice.choose(Integer.toString(rank), devices, false));
            }
        }
    }

    @Test
    void aProcessBoundToOneGpuTakesIt() {
        assertEquals(0, RankDevice.choose("5", 1, true));
        IllegalStateException shared = assertThrows(IllegalStateException.class,
                () -> RankDevice.choose("5", 2, true));
        assertTrue(shared.getMessage().contains("local rank 5 needs CUDA device 5"), shared.getMessage());
    }

    @Test
    void moreRanksThanDevicesIsAnErrorSayingHowManyToStart() {
        IllegalStateException error = assertThrows(IllegalStateException.class,
                () -> RankDevice.choose("2", 2, false));
        assertTrue(error.getMessage().contains("shows 2 CUDA devices: start at most 2 ranks per machine"),
                error.getMessage());
        IllegalStateException garbled = assertThrows(IllegalStateException.class,
                () -> RankDevice.choose("one", 8, false));
        assertTrue(garbled.getMessage().contains("OMPI_COMM_WORLD_LOCAL_RANK is 'one'"), garbled.getMessage());
    }
}
