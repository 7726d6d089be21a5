package io.microdit.eval;

import io.microdit.eval.MaskingExperiment.Settings;
import io.microdit.eval.MaskingExperiment.Variant;
import io.microdit.io.Json;
import io.microdit.model.ConfigFile;
import io.microdit.model.MaskingMode;
import io.microdit.train.LossCurvePlot;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The masking experiment's report from the evaluated runs: {@code results.md} (the table, mean ± half the range over
 * seeds, and whether the goal holds), {@code results.json} and {@code masking.png} (FD against mask ratio,
 * next to the paper's FID); the table and the goal also go to the log. Variants not yet evaluated are marked as
 * not finished.
 */
final class MaskingReport {
    private final Settings settings;
    private final Path out;
    private final PrintStream log;

    MaskingReport(Settings settings, Path out, PrintStream log) {
        this.settings = settings;
        this.out = out;
        this.log = log;
    }

    /** Writes the report of {@code results} (one map per variant and seed) and returns its summary. */
    Map<String, Object> write(List<Map<String, Object>> results, MaskingPlan plan, double classifierAccuracy,
                              int testCount, double seconds) throws IOException {
        Map<String, double[]> byVariant = new LinkedHashMap<>();
        StringBuilder table = new StringBuilder();
        table.append("| variant | mask | FLOPs per image (training) | wall time (training) | "
                + "FD (Fashion-MNIST classifier features) | prompt accuracy | seeds |\n");
        table.append("| --- | --- | --- | --- | --- | --- | --- |\n");
        Map<String, Object> variants = new LinkedHashMap<>();
        for (Variant v : MaskingExperiment.VARIANTS) {
            List<Map<String, Object>> runs = results.stream().filter(r -> v.name().equals(r.get("variant"))).toList();
            double[] fd = values(runs, "fd"), accuracy = values(runs, "prompt_accuracy");
            double[] flops = values(runs, "training_flops_per_image"), time = values(runs, "training_seconds");
            String mask = v.mode() == MaskingMode.NONE ? (v.patch() == 4 ? "none (patch 4: 75% fewer tokens)"
                    : "none") : String.format(Locale.ROOT, "%s %.0f%%", v.strategy(), 100 * v.maskRatio());
            if (runs.isEmpty()) {
                table.append(String.format(Locale.ROOT, "| %s | %s | not finished | | | | 0 |\n", v.name(), mask));
                continue;
            }
            byVariant.put(v.name(), new double[] {mean(fd), mean(flops)});
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("strategy", v.strategy());
            m.put("mask_ratio", v.maskRatio());
            m.put("patch", (long) v.patch());
            m.put("fd_mean", mean(fd));
            m.put("fd_spread", spread(fd));
            m.put("prompt_accuracy_mean", mean(accuracy));
            m.put("training_flops_per_image", mean(flops));
            m.put("training_seconds_mean", mean(time));
            m.put("seeds", (long) runs.size());
            m.put("runs", runs);
            variants.put(v.name(), m);
            table.append(String.format(Locale.ROOT, "| %s | %s | %.3g GFLOP | %s | %s | %s | %d |\n", v.name(), mask,
                    mean(flops) / 1e9, minutes(time), withSpread(fd, "%.3f"),
                    withSpread(scaled(accuracy, 100), "%.1f%%"), runs.size()));
        }
        boolean judged = byVariant.containsKey("none") && byVariant.containsKey("deferred-75")
                && byVariant.containsKey("naive-75");
        boolean qualityGoal = false, computeGoal = false;
        double flopsRatio = Double.NaN;
        String goal = "goal: not judged yet (none, deferred-75 and naive-75 must all be finished)";
        if (judged) {
            double none = byVariant.get("none")[0];
            double deferredGap = byVariant.get("deferred-75")[0] - none;
            double naiveGap = byVariant.get("naive-75")[0] - none;
            flopsRatio = byVariant.get("deferred-75")[1] / byVariant.get("none")[1];
            qualityGoal = deferredGap <= 0.3 * naiveGap;
            computeGoal = flopsRatio < 0.6;
            goal = String.format(Locale.ROOT, "goal: FD(deferred 75%%) − FD(none) = %.3f %s 0.3 × (FD(naive 75%%) "
                            + "− FD(none)) = %.3f: %s; FLOPs per image of deferred 75%% / none = %.3f %s 0.6: %s",
                    deferredGap, qualityGoal ? "≤" : ">", 0.3 * naiveGap, qualityGoal ? "holds" : "does not hold",
                    flopsRatio, computeGoal ? "<" : "≥", computeGoal ? "holds" : "does not hold");
        }
        Map<String, Object> summary = new LinkedHashMap<>();
        summary.put("settings", settings.label());
        summary.put("model", ConfigFile.toJson(settings.base()));
        summary.put("classifier_test_accuracy", classifierAccuracy);
        summary.put("test_images", (long) testCount);
        summary.put("generated_per_variant", (long) (10 * settings.generatedPerClass()));
        summary.put("sample_steps", (long) settings.sampleSteps());
        summary.put("guidance", settings.guidance());
        summary.put("steps", plan.steps());
        summary.put("finetune_steps", plan.finetuneSteps());
        summary.put("batch_size", (long) settings.batchSize());
        summary.put("variants", variants);
        if (judged) {
            summary.put("quality_goal_holds", qualityGoal);
            summary.put("flops_goal_holds", computeGoal);
            summary.put("deferred_75_flops_ratio", flopsRatio);
        }
        summary.put("seconds_this_invocation", seconds);
        Files.writeString(out.resolve("results.json"), Json.write(summary) + "\n");
        String markdown = String.format(Locale.ROOT, "# Masking experiment (%s)%n%n"
                        + "Fashion-MNIST, %s, %d steps of batch %d per variant (%,d images), the last %d steps (%.0f%%) "
                        + "an unmasked fine-tune. FD (Fashion-MNIST classifier features) of %,d generated images (%d "
                        + "per class, %d Heun steps, CFG %.1f) against %,d test images; the classifier's test accuracy "
                        + "is %.2f%%. Values are mean ± half the range over seeds.%n%n%s%n%s%n%n"
                        + "The paper's FID (its own data, not comparable in scale): %.2f unmasked, %.2f deferred 75%%, "
                        + "%.1f naive 75%%.%n", settings.label(), settings.base().name(), plan.steps(),
                settings.batchSize(), plan.steps() * settings.batchSize(), plan.finetuneSteps(),
                100.0 * plan.finetuneSteps() / plan.steps(), 10 * settings.generatedPerClass(),
                settings.generatedPerClass(), settings.sampleSteps(), settings.guidance(), testCount,
                100 * classifierAccuracy, table, goal, MaskingExperiment.PAPER_NONE,
                MaskingExperiment.PAPER_DEFERRED_75, MaskingExperiment.PAPER_NAIVE_75);
        Files.writeString(out.resolve("results.md"), markdown);
        plot(byVariant);
        log.print(table);
        log.println(goal);
        log.println("report: " + out.resolve("results.md") + ", " + out.resolve("results.json") + ", "
                + out.resolve("masking.png"));
        return summary;
    }

    private void plot(Map<String, double[]> byVariant) throws IOException {
        List<LossCurvePlot.Series> series = new ArrayList<>();
        addSeries(series, "naive (microdit FD)", byVariant, List.of("none", "naive-50", "naive-75"), 0xd62728, 3);
        addSeries(series, "deferred (microdit FD)", byVariant, List.of("none", "deferred-50", "deferred-75"), 0x1f77b4,
                3);
        addSeries(series, "patch 4, no mask (microdit FD)", byVariant, List.of("patch-4"), 0x2ca02c, 4);
        series.add(new LossCurvePlot.Series("paper naive (FID, other data)", new double[] {0, 75},
                new double[] {MaskingExperiment.PAPER_NONE, MaskingExperiment.PAPER_NAIVE_75}, 0xf4a6a6, 1));
        series.add(new LossCurvePlot.Series("paper deferred (FID, other data)", new double[] {0, 75},
                new double[] {MaskingExperiment.PAPER_NONE, MaskingExperiment.PAPER_DEFERRED_75}, 0x9ecae1, 1));
        new LossCurvePlot(900, 560, "FD (Fashion-MNIST classifier features) vs mask ratio", "mask ratio (%)",
                "FD / FID", true).write(out.resolve("masking.png"), series);
    }

    /** A series over the variants that are finished, at their token reduction (mask ratio; 75% for patch 4). */
    private static void addSeries(List<LossCurvePlot.Series> series, String label, Map<String, double[]> byVariant,
                                  List<String> names, int color, int width) {
        List<String> present = names.stream().filter(byVariant::containsKey).toList();
        if (present.isEmpty()) {
            return;
        }
        double[] x = new double[present.size()], y = new double[present.size()];
        for (int i = 0; i < x.length; i++) {
            String name = present.get(i);
            x[i] = name.equals("patch-4") ? 75 : 100 * MaskingExperiment.variant(name).maskRatio();
            y[i] = byVariant.get(name)[0];
        }
        series.add(new LossCurvePlot.Series(label, x, y, color, width));
    }

    private static double[] values(List<Map<String, Object>> runs, String key) {
        return runs.stream().mapToDouble(r -> ((Number) r.get(key)).doubleValue()).toArray();
    }

    private static double[] scaled(double[] values, double factor) {
        double[] out = values.clone();
        for (int i = 0; i < out.length; i++) {
            out[i] *= factor;
        }
        return out;
    }

    private static double mean(double[] values) {
        double sum = 0;
        for (double v : values) {
            sum += v;
        }
        return values.length == 0 ? Double.NaN : sum / values.length;
    }

    /** Half the range (for two seeds: the distance of each from their mean). */
    private static double spread(double[] values) {
        double min = Double.POSITIVE_INFINITY, max = Double.NEGATIVE_INFINITY;
        for (double v : values) {
            min = Math.min(min, v);
            max = Math.max(max, v);
        }
        return values.length < 2 ? 0 : (max - min) / 2;
    }

    private static String withSpread(double[] values, String format) {
        String m = String.format(Locale.ROOT, format, mean(values));
        return values.length < 2 ? m : m + " ± " + String.format(Locale.ROOT, format, spread(values));
    }

    private static String minutes(double[] seconds) {
        return String.format(Locale.ROOT, "%.1f min", mean(seconds) / 60);
    }
}
