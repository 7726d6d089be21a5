package io.microdit.train;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;

/**
 * A request to stop a run early and resumably, as a preemptible machine gets it: SIGTERM (a spot instance's notice,
 * {@code docker stop}, Slurm) or SIGINT (Ctrl-C). The handlers only record the request; the training loop finishes
 * the step in progress, writes a checkpoint and returns, and the {@code train} command exits with
 * {@link #EXIT_STATUS}. Later signals change nothing (the checkpoint being written completes as it would have), so
 * an impatient second Ctrl-C cannot damage it; only SIGKILL ends the process at once, and then the previous
 * checkpoint is still the one {@code checkpoints/latest} names. While installed, the handlers replace the JVM's
 * (which would run shutdown hooks and exit mid-step); {@link #close} puts those back.
 */
public final class Preemption implements AutoCloseable {
    /** The exit status of a run stopped by a signal after writing its checkpoint: EX_TEMPFAIL, "try again". */
    public static final int EXIT_STATUS = 75;

    private static final List<String> SIGNALS = List.of("TERM", "INT");

    private final PrintStream log;
    private final List<String> installed = new ArrayList<>();
    private final List<Object> previous = new ArrayList<>();
    private volatile String signal;

    private Preemption(PrintStream log) {
        this.log = log;
    }

    /** A request that never comes: for runs embedded in other programs, which stop them their own way. */
    public static Preemption never() {
        return new Preemption(null);
    }

    /** Takes over SIGTERM and SIGINT until closed, saying on {@code log} what each signal does. */
    public static Preemption onSignals(PrintStream log) {
        Preemption preemption = new Preemption(log);
        for (String name : SIGNALS) {
            try {
                preemption.previous.add(SignalHandlers.install(name, preemption::received));
                preemption.installed.add(name);
            } catch (IllegalArgumentException e) {
                // The JVM keeps this signal (started with -Xrs, or a debugger's): it then ends the run as before.
                log.println("microdit: note: " + name + " cannot be handled here (" + e.getMessage() + ")");
            }
        }
        return preemption;
    }

    private void received(String signalName) {
        String name = "SIG" + signalName;
        if (signal == null) {
            signal = name;
            log.println("microdit: " + name + ": finishing the step in progress, then writing a checkpoint and exiting"
                    + " with status " + EXIT_STATUS + " (resume with --resume auto)");
        } else {
            log.println("microdit: " + name + " again: still stopping; the checkpoint being written completes (SIGKILL "
                    + "would leave the previous one as the latest)");
        }
        log.flush();
    }

    /** Asks the run to stop as a signal would (for callers that embed a run and tests). */
    public void request(String reason) {
        signal = reason;
    }

    /** Whether a stop was asked for. */
    public boolean requested() {
        return signal != null;
    }

    /** What asked for the stop (the signal's name), or null. */
    public String reason() {
        return signal;
    }

    @Override
    public void close() {
        for (int i = 0; i < installed.size(); i++) {
            SignalHandlers.restore(installed.get(i), previous.get(i));
        }
        installed.clear();
        previous.clear();
    }
}
