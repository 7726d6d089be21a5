package io.microdit.backend.cuda;

/**
 * The CUDA device of this process: one process per GPU, so under {@code mpirun} the process of local rank r (Open
 * MPI's {@code OMPI_COMM_WORLD_LOCAL_RANK}, its rank among the ranks of its machine) takes device r; a process
 * started without {@code mpirun} takes device 0, and so does a process that a launcher bound to one GPU with
 * {@code CUDA_VISIBLE_DEVICES}. On the emulator every process has its own emulated device 0.
 */
final class RankDevice {
    private RankDevice() {
    }

    /** The device of this process, from its environment. */
    static int ofThisProcess() {
        String localRank = System.getenv("OMPI_COMM_WORLD_LOCAL_RANK");
        return localRank == null || CudaRuntime.isEmulator() ? 0
                : choose(localRank, CudaRuntime.deviceCount(), System.getenv("CUDA_VISIBLE_DEVICES") != null);
    }

    /**
     * Device {@code localRank} of {@code devices}, or 0 when {@code CUDA_VISIBLE_DEVICES} ({@code restricted}) shows
     * this process one device; an error when the machine runs more ranks than it has devices (NCCL refuses two ranks
     * on one GPU).
     */
    static int choose(String localRank, int devices, boolean restricted) {
        if (restricted && devices == 1) {
            return 0;
        }
        int rank;
        try {
            rank = Integer.parseInt(localRank.trim());
        } catch (NumberFormatException e) {
            throw new IllegalStateException("OMPI_COMM_WORLD_LOCAL_RANK is '" + localRank + "', not a rank", e);
        }
        if (rank < 0 || rank >= devices) {
            throw new IllegalStateException("local rank " + rank + " needs CUDA device " + rank + ", but this machine "
                    + "shows " + devices + " CUDA device" + (devices == 1 ? "" : "s") + ": start at most " + devices
                    + " ranks per machine (mpirun -np N with one process per GPU; NCCL runs one rank per GPU)");
        }
        return rank;
    }
}
