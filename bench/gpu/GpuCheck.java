import static org.junit.platform.engine.discovery.DiscoverySelectors.selectPackage;

import java.io.PrintWriter;
import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.engine.discovery.ClassNameFilter;
import org.junit.platform.launcher.Launcher;
import org.junit.platform.launcher.LauncherDiscoveryRequest;
import org.junit.platform.launcher.TagFilter;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;
import org.junit.platform.launcher.core.LauncherDiscoveryRequestBuilder;
import org.junit.platform.launcher.core.LauncherFactory;
import org.junit.platform.launcher.listeners.SummaryGeneratingListener;

/**
 * Runs the CUDA backend's tests (tags gpu and emu: the emu tests compare every op with the CPU backend and run
 * on whichever library is loaded, the GPU build under -Dmicrodit.device=cuda) without Maven, for check.sh.
 * An optional argument is a regular expression over fully qualified test class names (check.sh runs a subset
 * under compute-sanitizer). Each failure and each finished class is printed as it happens, so a run cut short
 * by a timeout still shows how far it got.
 */
public final class GpuCheck {
    public static void main(String[] arguments) {
        LauncherDiscoveryRequestBuilder builder = LauncherDiscoveryRequestBuilder.request()
                .selectors(selectPackage("io.microdit.backend.cuda"))
                .filters(TagFilter.includeTags("gpu", "emu"));
        if (arguments.length > 0) {
            builder.filters(ClassNameFilter.includeClassNamePatterns(arguments[0]));
        }
        LauncherDiscoveryRequest request = builder.build();
        Launcher launcher = LauncherFactory.create();
        SummaryGeneratingListener listener = new SummaryGeneratingListener();
        launcher.execute(request, listener, new Progress());
        PrintWriter out = new PrintWriter(System.out, true);
        listener.getSummary().printTo(out);
        listener.getSummary().printFailuresTo(out, 30);
        System.exit(listener.getSummary().getTotalFailureCount() == 0
                && listener.getSummary().getTestsSucceededCount() > 0 ? 0 : 1);
    }

    /** Prints failed tests at once and one line per finished test class. */
    private static final class Progress implements TestExecutionListener {
        private final long start = System.nanoTime();

        @Override
        public void executionFinished(TestIdentifier test, TestExecutionResult result) {
            boolean failed = result.getStatus() != TestExecutionResult.Status.SUCCESSFUL;
            if (test.isTest() && failed) {
                boolean aborted = result.getStatus() == TestExecutionResult.Status.ABORTED;
                System.out.printf("%s %s: %s%n", aborted ? "ABORTED (assumption)" : "FAILED", test.getDisplayName(),
                        result.getThrowable().map(Throwable::toString).orElse(result.getStatus().toString()));
            } else if (test.getSource().map(s -> s instanceof org.junit.platform.engine.support.descriptor.ClassSource)
                    .orElse(false)) {
                System.out.printf("%-40s %s (%.1f s into the run)%n", test.getDisplayName(),
                        failed ? "FAILED: " + result.getThrowable().map(Throwable::toString).orElse("") : "done",
                        (System.nanoTime() - start) / 1e9);
            }
            System.out.flush();
        }
    }
}
