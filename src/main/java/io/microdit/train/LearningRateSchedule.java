package io.microdit.train;

/**
 * Learning-rate schedules as Composer computes them (the official trainer), as a function of the step.
 */
public sealed interface LearningRateSchedule {

    /** The learning rate at step {@code step} of its stage, counted from 0 at the stage's first step. */
    double at(long step);

    /**
     * Linear warmup over {@code warmupSteps} to {@code peak}, then cosine decay to {@code alphaF·peak} at
     * {@code totalSteps}: {@code peak·(α_f + (1−α_f)·½·(1+cos(π·(t−t_w)/(T−t_w))))}.
     */
    record CosineWithWarmup(double peak, long warmupSteps, long totalSteps, double alphaF)
            implements LearningRateSchedule {
        /** Checks rate ≥ 0, warmup ≥ 0 and {@code totalSteps} past the warmup. */
        public CosineWithWarmup {
            validate(peak, warmupSteps);
            if (totalSteps <= warmupSteps) {
                throw new IllegalArgumentException("cosine schedule: total steps (" + totalSteps
                        + ") must exceed warmup steps (" + warmupSteps + ")");
            }
        }

        @Override
        public double at(long step) {
            if (step < warmupSteps) {
                return peak * step / warmupSteps;
            }
            double progress = Math.min(1.0, (double) (step - warmupSteps) / (totalSteps - warmupSteps));
            return peak * (alphaF + (1 - alphaF) * 0.5 * (1 + Math.cos(Math.PI * progress)));
        }
    }

    /** Linear warmup over {@code warmupSteps} to {@code value}, then constant. */
    record ConstantWithWarmup(double value, long warmupSteps) implements LearningRateSchedule {
        /** Checks rate ≥ 0 and warmup ≥ 0. */
        public ConstantWithWarmup {
            validate(value, warmupSteps);
        }

        @Override
        public double at(long step) {
            return step < warmupSteps ? value * step / warmupSteps : value;
        }
    }

    private static void validate(double rate, long warmupSteps) {
        if (!(rate >= 0) || warmupSteps < 0) {
            throw new IllegalArgumentException("learning rate must be ≥ 0 and warmup ≥ 0, got " + rate + ", "
                    + warmupSteps);
        }
    }
}
