package io.microdit.train;

import io.microdit.model.MaskingMode;

/**
 * One training stage: the paper trains masked first, then fine-tunes briefly without masking.
 *
 * @param steps        optimizer steps in this stage
 * @param schedule     learning rate as a function of the step within the stage
 * @param gradientClip global gradient-norm limit (≤ 0: no clipping)
 */
public record Stage(String name, long steps, MaskingMode masking, double maskRatio, LearningRateSchedule schedule,
                    double gradientClip) {
    /** Checks the steps (≥ 1), the masking and its ratio. */
    public Stage {
        if (steps < 1) {
            throw new IllegalArgumentException("stage '" + name + "': steps must be at least 1, got " + steps);
        }
        if (masking != MaskingMode.NONE && !(maskRatio > 0 && maskRatio < 1)) {
            throw new IllegalArgumentException("stage '" + name + "': mask_ratio must be in (0, 1) with masking "
                    + masking.name().toLowerCase() + ", got " + maskRatio);
        }
    }

    /** The effective mask ratio (0 when the stage does not mask). */
    public double effectiveMaskRatio() {
        return masking == MaskingMode.NONE ? 0 : maskRatio;
    }
}
