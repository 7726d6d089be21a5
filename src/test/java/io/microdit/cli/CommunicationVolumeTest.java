package io.microdit.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The per-GPU bytes of gradient reduction, against the ring formulas written out by hand. */
class CommunicationVolumeTest {
    @Test
    void dataParallelAllReducesAndZero2ReduceScattersThenGathersTheParameters() {
        // 1000 parameters = 4000 bytes over 8 GPUs: a ring reduce-scatter sends 7/8 of them, 3500 bytes.
        CommunicationVolume one = new CommunicationVolume(1000, 8, 1);
        assertEquals(4000, one.gradientBytes());
        assertEquals(3500, one.shardedBytes(), 1e-9);
        assertEquals(7000, one.dataParallelBytes(), 1e-9);
        assertEquals(7000, one.zero2Bytes(), 1e-9);
        // Two rounds: two all-reduces, or two reduce-scatters and still one all-gather.
        CommunicationVolume two = new CommunicationVolume(1000, 8, 2);
        assertEquals(14000, two.dataParallelBytes(), 1e-9);
        assertEquals(10500, two.zero2Bytes(), 1e-9);
        // One GPU sends nothing.
        assertEquals(0, new CommunicationVolume(1000, 1, 3).dataParallelBytes());
        assertEquals(1e-3, CommunicationVolume.seconds(450e6, 450e9), 1e-15);
    }

    @Test
    void randomWorldsFollowTheRingFormulas() {
        SplittableRandom random = new SplittableRandom(13);
        for (int i = 0; i < 100; i++) {
            long parameters = random.nextLong(1, 2_000_000_000L);
            int gpus = random.nextInt(1, 1025);
            int rounds = random.nextInt(1, 9);
            CommunicationVolume v = new CommunicationVolume(parameters, gpus, rounds);
            double bytes = 4.0 * parameters;
            assertEquals(rounds * 2.0 * (gpus - 1) / gpus * bytes, v.dataParallelBytes(), 1e-9 * bytes * rounds);
            assertEquals((rounds + 1.0) * (gpus - 1) / gpus * bytes, v.zero2Bytes(), 1e-9 * bytes * rounds);
        }
        assertThrows(IllegalArgumentException.class, () -> new CommunicationVolume(10, 0, 1));
    }
}
