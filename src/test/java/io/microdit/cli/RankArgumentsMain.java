package io.microdit.cli;

/**
 * The {@code microdit} command for tests under mpirun, with each argument's {@code {rank}} replaced by this
 * process's rank, so that ranks can be given different files.
 */
public final class RankArgumentsMain {
    public static void main(String[] args) {
        String rank = System.getenv().getOrDefault("OMPI_COMM_WORLD_RANK", "0");
        String[] resolved = new String[args.length];
        for (int i = 0; i < args.length; i++) {
            resolved[i] = args[i].replace("{rank}", rank);
        }
        Main.main(resolved);
    }
}
