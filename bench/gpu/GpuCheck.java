import static org.junit.platform.engine.discovery.DiscoverySelectors.selectPackage;

import java.io.PrintWriter;
import org.junit.platform.launcher.Launcher;
import org.junit.platform.launcher.LauncherDiscoveryRequest;
import org.junit.platform.launcher.TagFilter;
import org.junit.platform.launcher.core.LauncherDiscoveryRequestBuilder;
import org.junit.platform.launcher.core.LauncherFactory;
import org.junit.platform.launcher.listeners.SummaryGeneratingListener;

/**
 * Runs the CUDA backend's tests (tags gpu and emu: the emu tests compare every op with the CPU backend and run
 * on whichever library is loaded, the GPU build under -Dmicrodit.device=cuda) without Maven, for check.sh.
 */
public final class GpuCheck {
    public static void main(String[] arguments) {
        LauncherDiscoveryRequest request = LauncherDiscoveryRequestBuilder.request()
                .selectors(selectPackage("io.microdit.backend.cuda"))
                .filters(TagFilter.includeTags("gpu", "emu"))
                .build();
        Launcher launcher = LauncherFactory.create();
        SummaryGeneratingListener listener = new SummaryGeneratingListener();
        launcher.execute(request, listener);
        PrintWriter out = new PrintWriter(System.out, true);
        listener.getSummary().printTo(out);
        listener.getSummary().printFailuresTo(out, 30);
        System.exit(listener.getSummary().getTotalFailureCount() == 0
                && listener.getSummary().getTestsSucceededCount() > 0 ? 0 : 1);
    }
}
