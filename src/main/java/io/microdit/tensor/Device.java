package io.microdit.tensor;

import java.util.concurrent.atomic.AtomicLong;

/**
 * Where a tensor's bytes live. Each device counts its live bytes so that tests and the trainer can prove that
 * every scope gave back what it took.
 */
public enum Device {
    /** Host memory. */
    CPU,
    /** Memory of the CUDA backend: a GPU's, or host memory that the emulator stands in for it. */
    CUDA;

    private final AtomicLong liveBytes = new AtomicLong();
    private final AtomicLong peakBytes = new AtomicLong();

    /** Bytes allocated on this device and not yet freed. */
    public long liveBytes() {
        return liveBytes.get();
    }

    /** The largest {@link #liveBytes()} seen since start or the last {@link #resetPeak()}. */
    public long peakBytes() {
        return peakBytes.get();
    }

    /** Starts a new {@link #peakBytes()} measurement from the bytes live now, e.g. before the step to be measured. */
    public void resetPeak() {
        peakBytes.set(liveBytes.get());
    }

    void allocated(long bytes) {
        long now = liveBytes.addAndGet(bytes);
        peakBytes.accumulateAndGet(now, Math::max);
    }

    void freed(long bytes) {
        liveBytes.addAndGet(-bytes);
    }
}
