package io.microdit.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

class LearningRateScheduleTest {

    @Test
    void cosineWithWarmupAsTheOfficialStageOne() {
        var s = new LearningRateSchedule.CosineWithWarmup(2.4e-4, 2500, 250_000, 0.33);
        assertEquals(0, s.at(0), 0);
        assertEquals(1.2e-4, s.at(1250), 1e-15);
        assertEquals(2.4e-4, s.at(2500), 1e-15);
        assertEquals(2.4e-4 * (0.33 + 0.67 * 0.5), s.at(2500 + 247_500 / 2), 1e-15);
        assertEquals(7.92e-5, s.at(250_000), 1e-12, "ends at α_f·peak ≈ 8e-5");
        assertEquals(7.92e-5, s.at(300_000), 1e-12, "stays there after T");
    }

    @Test
    void constantWithWarmup() {
        var s = new LearningRateSchedule.ConstantWithWarmup(8e-5, 500);
        assertEquals(4e-5, s.at(250), 1e-18);
        assertEquals(8e-5, s.at(500), 0);
        assertEquals(8e-5, s.at(10_000), 0);
        assertEquals(8e-5, new LearningRateSchedule.ConstantWithWarmup(8e-5, 0).at(0), 0);
        assertThrows(IllegalArgumentException.class, () -> new LearningRateSchedule.CosineWithWarmup(1, 10, 5, 0));
    }
}
