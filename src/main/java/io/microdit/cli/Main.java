package io.microdit.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The {@code microdit} command; each job is a subcommand. */
@Command(name = "microdit", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
        description = "Trains and samples MicroDiT diffusion transformers.",
        subcommands = {InfoCommand.class, TrainCommand.class, SampleCommand.class, ParamsCommand.class,
            ExportInitCommand.class, ForwardCommand.class, ExperimentCommand.class, BenchStepCommand.class, RecipePlanCommand.class,
            CostCommand.class, ConvertCommand.class,
            CommandLine.HelpCommand.class})
public final class Main implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    public static void main(String[] args) {
        System.exit(run(args));
    }

    /** Runs the command line and returns its exit code (for tests: no System.exit). */
    public static int run(String... args) {
        CommandLine commandLine = new CommandLine(new Main());
        commandLine.setExecutionExceptionHandler((ex, cl, parsed) -> {
            cl.getErr().println("microdit: " + ex.getMessage());
            return 1;
        });
        return commandLine.execute(args);
    }

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    static String version() {
        String v = Main.class.getPackage().getImplementationVersion();
        return v == null ? "development build" : v;
    }

    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            return new String[] {"microdit " + version()};
        }
    }
}
