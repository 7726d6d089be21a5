package io.microdit.eval;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.data.FashionMnist;
import io.microdit.io.Json;
import io.microdit.io.Png;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class MaskingExperimentTest {
    @TempDir
    Path temp;

    /** Random 32×32 images in [-1, 1] with random labels: enough to run every stage of the experiment. */
    private static FashionMnist.Split split(String name, int count, long seed) {
        Random random = new Random(seed);
        float[] images = new float[count * FashionMnist.SIZE * FashionMnist.SIZE];
        for (int i = 0; i < images.length; i++) {
            images[i] = random.nextFloat() * 2 - 1;
        }
        int[] labels = new int[count];
        for (int i = 0; i < count; i++) {
            labels[i] = random.nextInt(10);
        }
        return new FashionMnist.Split(name, count, images, labels);
    }

    private static MaskingExperiment.Settings tiny() {
        return new MaskingExperiment.Settings("test", MaskingExperiment.tinyModel(),
                new FashionClassifier.Settings(4, 8, 16, 1, 1, 2, 0, 1, 32, 3e-3, 2, 64, 0), 1, 8, 600, 32, 0.1, 2e-3, 2, 1,
                2.0, 4, 40, 1, 2);
    }

    @Test
    void runsEveryVariantWritesTheReportAndResumes() throws Exception {
        FashionMnist.Split train = split("train", 96, 1), test = split("test", 40, 2);
        Path out = temp.resolve("experiment");
        ByteArrayOutputStream first = new ByteArrayOutputStream();
        Map<String, Object> summary = new MaskingExperiment(tiny(), out, train, test,
                new PrintStream(first, true, StandardCharsets.UTF_8)).run();

        Map<?, ?> results = (Map<?, ?>) Json.parse(Files.readString(out.resolve("results.json")));
        Map<?, ?> variants = (Map<?, ?>) results.get("variants");
        assertEquals(MaskingExperiment.VARIANTS.size(), variants.size());
        for (MaskingExperiment.Variant v : MaskingExperiment.VARIANTS) {
            Map<?, ?> m = (Map<?, ?>) variants.get(v.name());
            double fd = ((Number) m.get("fd_mean")).doubleValue();
            assertTrue(Double.isFinite(fd) && fd >= -1e-6, v.name() + ": FD " + fd);
            assertTrue(((Number) m.get("training_flops_per_image")).doubleValue() > 0, v.name());
            Map<?, ?> run = (Map<?, ?>) ((java.util.List<?>) m.get("runs")).get(0);
            assertEquals(32L, run.get("images_seen"), v.name());
            assertEquals(20L, run.get("generated_images"), v.name());
            assertEquals(1L, run.get("finetune_steps"), v.name());
        }
        // Masking removes backbone work: fewer FLOPs per image than no masking, naive fewer than deferred.
        double none = flops(variants, "none");
        assertTrue(flops(variants, "deferred-75") < none);
        assertTrue(flops(variants, "naive-75") < flops(variants, "deferred-75"));
        assertTrue(flops(variants, "naive-75") < flops(variants, "naive-50"));
        assertEquals(summary.get("quality_goal_holds"), results.get("quality_goal_holds"));
        String markdown = Files.readString(out.resolve("results.md"));
        assertTrue(markdown.contains("| deferred-75 | deferred 75% |"), markdown);
        assertTrue(markdown.contains("FD (Fashion-MNIST classifier features)"), markdown);
        assertTrue(!markdown.contains("FID (") || markdown.contains("paper"), markdown);
        Png.Image plot = Png.read(out.resolve("masking.png"));
        assertEquals(900, plot.width());
        String log = first.toString(StandardCharsets.UTF_8);
        assertTrue(log.contains("goal: FD(deferred 75%)"), log);

        // A second run reuses the classifier, the plan and every result.
        Path resultFile = out.resolve("deferred-75").resolve("seed-0").resolve("result.json");
        FileTime before = Files.getLastModifiedTime(resultFile);
        ByteArrayOutputStream second = new ByteArrayOutputStream();
        new MaskingExperiment(tiny(), out, train, test, new PrintStream(second, true, StandardCharsets.UTF_8)).run();
        String again = second.toString(StandardCharsets.UTF_8);
        assertTrue(again.contains("deferred-75 seed 0: done"), again);
        assertTrue(!again.contains("probe:") && !again.contains("classifier: training"), again);
        assertEquals(before, Files.getLastModifiedTime(resultFile));
    }

    /** A variant interrupted after its training continues from its checkpoint and only evaluates. */
    @Test
    void anInterruptedVariantContinuesFromItsCheckpoint() throws Exception {
        FashionMnist.Split train = split("train", 96, 3), test = split("test", 40, 4);
        Path out = temp.resolve("interrupted");
        new MaskingExperiment(tiny(), out, train, test, new PrintStream(new ByteArrayOutputStream())).run();
        Path variant = out.resolve("naive-50").resolve("seed-0");
        Files.delete(variant.resolve("result.json"));
        try (var files = Files.list(variant.resolve("generated"))) {
            for (Path f : files.toList()) {
                Files.delete(f);
            }
        }
        // A report while it is unfinished marks it and trains nothing.
        ByteArrayOutputStream partial = new ByteArrayOutputStream();
        new MaskingExperiment(tiny(), out, train, test, new PrintStream(partial, true, StandardCharsets.UTF_8))
                .run(true);
        String report = Files.readString(out.resolve("results.md"));
        assertTrue(report.contains("| naive-50 | naive 50% | not finished |"), report);
        assertTrue(report.contains("| deferred-75 | deferred 75% | "), report);
        assertTrue(!partial.toString(StandardCharsets.UTF_8).contains("resumed"), partial.toString());
        assertTrue(!Files.exists(variant.resolve("result.json")));

        ByteArrayOutputStream log = new ByteArrayOutputStream();
        new MaskingExperiment(tiny(), out, train, test, new PrintStream(log, true, StandardCharsets.UTF_8)).run();
        String text = log.toString(StandardCharsets.UTF_8);
        assertTrue(text.contains("naive-50 seed 0: resumed at step 4"), text);
        assertTrue(Files.isRegularFile(variant.resolve("result.json")));
    }

    @Test
    void badSettingsAreRejected() {
        IllegalArgumentException seeds = assertThrows(IllegalArgumentException.class,
                () -> MaskingExperiment.Settings.quick(3));
        assertTrue(seeds.getMessage().contains("--seeds"), seeds.getMessage());
    }

    private static double flops(Map<?, ?> variants, String name) {
        return ((Number) ((Map<?, ?>) variants.get(name)).get("training_flops_per_image")).doubleValue();
    }
}
