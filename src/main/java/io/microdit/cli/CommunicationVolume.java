package io.microdit.cli;

/**
 * The bytes each GPU sends per training step to reduce gradients over {@code gpus} data-parallel ranks, as microdit
 * reduces them (F32 gradients of {@code parameters} parameters, one collective per round of micro-batches; see
 * train/GradientReduction), and their time at a bus bandwidth. A ring collective over N ranks sends (N − 1)/N of
 * the buffer per rank for a reduce-scatter or an all-gather and twice that for an all-reduce; NCCL's "bus bandwidth"
 * is defined so that time = those bytes / bus bandwidth for all three.
 *
 * <ul>
 *   <li>Data parallel: an all-reduce of the gradients every round: rounds × 2(N − 1)/N × gradient bytes.</li>
 *   <li>ZeRO-2 ({@code shard_grad_op}): a reduce-scatter of the gradients every round onto their owners, then one
 *       all-gather of the updated parameters: (rounds + 1) × (N − 1)/N × gradient bytes.</li>
 * </ul>
 */
record CommunicationVolume(long parameters, int gpus, int rounds) {
    CommunicationVolume {
        if (parameters <= 0 || gpus <= 0 || rounds <= 0) {
            throw new IllegalArgumentException("parameters, GPUs and rounds must be positive, got " + parameters + ", "
                    + gpus + ", " + rounds);
        }
    }

    /** The F32 gradients (and parameters) of one replica. */
    double gradientBytes() {
        return (double) parameters * Float.BYTES;
    }

    /** One reduce-scatter or all-gather of the gradients, per GPU. */
    double shardedBytes() {
        return (gpus - 1) / (double) gpus * gradientBytes();
    }

    double dataParallelBytes() {
        return rounds * 2 * shardedBytes();
    }

    double zero2Bytes() {
        return (rounds + 1) * shardedBytes();
    }

    /** Seconds to move {@code bytes} per GPU at {@code busBandwidth} bytes per second. */
    static double seconds(double bytes, double busBandwidth) {
        return bytes / busBandwidth;
    }
}
