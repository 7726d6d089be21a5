package io.microdit.testing;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * Starts a main class of the test classpath on N ranks with Open MPI's {@code mpirun}, with this JVM's java binary,
 * classpath and the project's JVM flags. Tests using it are skipped (not failed) where mpirun is not installed.
 */
public final class MpiLauncher {
    private MpiLauncher() {
    }

    /** What an mpirun job printed (stdout and stderr together) and how it ended. */
    public record Result(int exitCode, String output, double seconds) {
    }

    /** Skips the calling test when {@code mpirun} is not on the PATH. */
    public static Path requireMpirun() {
        for (String dir : System.getenv().getOrDefault("PATH", "").split(":")) {
            Path candidate = Path.of(dir.isEmpty() ? "." : dir, "mpirun");
            if (Files.isExecutable(candidate)) {
                return candidate;
            }
        }
        assumeTrue(false, "mpirun is not installed (Debian: apt-get install openmpi-bin libopenmpi-dev): "
                + "the multi-process tests need it");
        throw new AssertionError("unreachable");
    }

    /**
     * Runs {@code mainClass} with {@code args} on {@code ranks} ranks, calling {@code onLine} for each output line as
     * it arrives; the job is killed after {@code timeoutSeconds} (its result then has exit code −1).
     */
    public static Result run(int ranks, long timeoutSeconds, Consumer<String> onLine, Class<?> mainClass,
                             String... args) throws IOException, InterruptedException {
        return run(ranks, timeoutSeconds, onLine, List.of(), mainClass, args);
    }

    /** {@link #run(int, long, Consumer, Class, String...)} with more JVM options (system properties). */
    public static Result run(int ranks, long timeoutSeconds, Consumer<String> onLine, List<String> jvmOptions,
                             Class<?> mainClass, String... args) throws IOException, InterruptedException {
        return run(ranks, timeoutSeconds, onLine, List.of(), jvmOptions, mainClass, args);
    }

    /** {@link #run(int, long, Consumer, List, Class, String...)} with more mpirun options. */
    public static Result run(int ranks, long timeoutSeconds, Consumer<String> onLine, List<String> mpirunOptions,
                             List<String> jvmOptions, Class<?> mainClass, String... args)
            throws IOException, InterruptedException {
        Path mpirun = requireMpirun();
        List<String> command = new ArrayList<>(List.of(mpirun.toString(), "--allow-run-as-root", "--oversubscribe"));
        command.addAll(mpirunOptions);
        command.addAll(List.of("-np", Integer.toString(ranks),
                Path.of(System.getProperty("java.home"), "bin", "java").toString()));
        String flags = System.getProperty("microdit.jvm.flags");
        if (flags == null) {
            throw new IllegalStateException("system property microdit.jvm.flags is not set: run the test through "
                    + "Maven (pom.xml passes the project's JVM flags)");
        }
        command.addAll(Arrays.asList(flags.trim().split("\\s+")));
        command.addAll(jvmOptions);
        command.addAll(List.of("-cp", System.getProperty("java.class.path"), mainClass.getName()));
        command.addAll(Arrays.asList(args));
        ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true);
        long start = System.nanoTime();
        Process process = builder.start();
        StringBuilder output = new StringBuilder();
        Thread reader = Thread.ofVirtual().start(() -> {
            try (BufferedReader lines = new BufferedReader(new InputStreamReader(process.getInputStream(),
                    StandardCharsets.UTF_8))) {
                for (String line = lines.readLine(); line != null; line = lines.readLine()) {
                    synchronized (output) {
                        output.append(line).append('\n');
                    }
                    onLine.accept(line);
                }
            } catch (IOException e) {
                synchronized (output) {
                    output.append("(reading mpirun's output: ").append(e).append(")\n");
                }
            }
        });
        boolean ended = process.waitFor(timeoutSeconds, TimeUnit.SECONDS);
        if (!ended) {
            process.descendants().forEach(ProcessHandle::destroyForcibly);
            process.destroyForcibly();
            process.waitFor();
        }
        reader.join(TimeUnit.SECONDS.toMillis(10));
        double seconds = (System.nanoTime() - start) / 1e9;
        synchronized (output) {
            return new Result(ended ? process.exitValue() : -1, output.toString(), seconds);
        }
    }
}
