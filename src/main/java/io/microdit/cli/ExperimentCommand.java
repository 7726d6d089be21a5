package io.microdit.cli;

import io.microdit.data.FashionMnist;
import io.microdit.eval.MaskingExperiment;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code microdit experiment masking}: the deferred-vs-naive masking comparison of issue 6. */
@Command(name = "experiment", description = "Run an experiment: 'masking' compares no, naive and deferred masking "
        + "and patch 4 on Fashion-MNIST (about 3 hours on 2 cores; --quick: a few minutes).")
final class ExperimentCommand implements Callable<Integer> {
    @Parameters(index = "0", description = "The experiment: masking.")
    String name;

    @Option(names = "--out", description = "Experiment folder (default: runs/experiment-masking, or "
            + "runs/experiment-masking-quick with --quick). Run again with the same folder to continue.")
    Path out;

    @Option(names = "--quick", description = "Tiny settings that exercise the whole path in under 10 minutes.")
    boolean quick;

    @Option(names = "--seeds", defaultValue = "1", description = "Seeds per variant: 1 or 2 (default 1).")
    int seeds;

    @Option(names = "--hours", defaultValue = "2.5", description = "Budget for training and sampling in hours "
            + "(default 2.5); the probe sizes the training to fit it. The classifier and the evaluation come on top.")
    double hours;

    @Option(names = "--images", description = "Training images per variant; overrides the probe's choice "
            + "from --hours (the probe's timing is only as good as the machine is quiet).")
    Long images;

    @Option(names = "--report-now", description = "Train and sample nothing: evaluate the variants that are "
            + "finished and write the report, marking the others (the experiment can keep running meanwhile).")
    boolean reportNow;

    @Option(names = "--classifier-only", description = "Only train (or load) the evaluation classifier and print "
            + "its test accuracy; the experiment reuses it from the same folder.")
    boolean classifierOnly;

    @Option(names = "--threads", description = "CPU threads (default: all).")
    Integer threads;

    @Option(names = "--data", description = "Folder with the Fashion-MNIST IDX files (default: Debian's).")
    Path data;

    @Override
    public Integer call() throws Exception {
        if (!name.equals("masking")) {
            throw new IllegalArgumentException("unknown experiment '" + name + "'; experiments: masking");
        }
        MaskingExperiment.Settings s = quick ? MaskingExperiment.Settings.quick(seeds)
                : MaskingExperiment.Settings.full(seeds, hours);
        if (threads != null || images != null) {
            s = new MaskingExperiment.Settings(s.label(), s.base(), s.classifier(), s.seeds(), s.batchSize(),
                    s.budgetSeconds(), images != null ? images : s.imagesSeen(), s.finetuneFraction(),
                    s.peakLearningRate(), s.generatedPerClass(), s.sampleSteps(), s.guidance(), s.sampleBatch(),
                    s.testImages(), s.probeSteps(), threads != null ? threads : s.threads());
        }
        Path directory = FashionMnist.locate(data);
        Path folder = out != null ? out : Path.of("runs", quick ? "experiment-masking-quick" : "experiment-masking");
        MaskingExperiment experiment = new MaskingExperiment(s, folder, FashionMnist.train(directory),
                FashionMnist.test(directory), System.out);
        if (classifierOnly) {
            experiment.trainClassifier();
        } else {
            experiment.run(reportNow);
        }
        return 0;
    }
}
