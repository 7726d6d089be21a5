package io.microdit.eval;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.backend.cpu.CpuBackend;
import io.microdit.data.FashionMnist;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class FashionClassifierTest {
    private static final CpuBackend BACKEND = new CpuBackend(2);

    @TempDir
    Path temp;

    @AfterAll
    static void close() {
        BACKEND.close();
    }

    /**
     * Class k is a bright shape over noise: a 2×10 bar (k < 5) or a 4×4 square (k ≥ 5), in row band k mod 5 (bands
     * 6 pixels apart, so the training shifts of up to 2 pixels keep them apart) at a random column: telling the
     * classes apart needs the spatial layout the stem sees.
     */
    private static FashionMnist.Split shapes(String name, int count, long seed) {
        Random random = new Random(seed);
        int size = FashionMnist.SIZE;
        float[] images = new float[count * size * size];
        int[] labels = new int[count];
        for (int i = 0; i < count; i++) {
            int label = random.nextInt(FashionClassifier.CLASSES);
            labels[i] = label;
            boolean bar = label < 5;
            int height = bar ? 2 : 4, width = bar ? 10 : 4;
            int row = 3 + 6 * (label % 5), column = 2 + random.nextInt(size - 4 - width);
            for (int p = 0; p < size * size; p++) {
                images[i * size * size + p] = -1f + 0.3f * random.nextFloat();
            }
            for (int y = row; y < row + height; y++) {
                for (int x = column; x < column + width; x++) {
                    images[i * size * size + y * size + x] = 1f;
                }
            }
        }
        return new FashionMnist.Split(name, count, images, labels);
    }

    /** A transformer classifier; negative: the convolutional variant (depth 0, hidden layer of 24). */
    private static FashionClassifier.Settings settings(int convChannels) {
        return convChannels >= 0
                ? new FashionClassifier.Settings(convChannels, 8, 16, 1, 2, 2, 0, 8, 32, 5e-3, 2, 0, 3)
                : new FashionClassifier.Settings(-convChannels, 8, 16, 0, 1, 2, 24, 8, 32, 5e-3, 2, 0, 3);
    }

    @Test
    void learnsSpatialClassesWithAndWithoutTheConvolutionAndSurvivesSaveAndLoad() throws IOException {
        FashionMnist.Split train = shapes("train", 1280, 1), test = shapes("test", 200, 2);
        for (int conv : new int[] {0, 4, -4}) {
            Path file = temp.resolve("classifier-" + conv + ".safetensors");
            ByteArrayOutputStream log = new ByteArrayOutputStream();
            try (FashionClassifier.Loaded trained = FashionClassifier.trainOrLoad(file, settings(conv), train, test,
                    BACKEND, new PrintStream(log))) {
                assertTrue(trained.testAccuracy() > 0.8, "conv " + conv + ": accuracy " + trained.testAccuracy()
                        + "\n" + log);
                FashionClassifier.Output before = trained.classifier().evaluate(test.images(), test.count());
                assertEquals(conv >= 0 ? 16 : 24, before.dimension());
                try (FashionClassifier.Loaded loaded = FashionClassifier.load(file, settings(conv), BACKEND)) {
                    assertEquals(trained.testAccuracy(), loaded.testAccuracy());
                    FashionClassifier.Output after = loaded.classifier().evaluate(test.images(), test.count());
                    assertArrayEquals(before.features(), after.features());
                    assertArrayEquals(before.predictions(), after.predictions());
                }
            }
        }
    }

    @Test
    void loadingWithOtherSettingsNamesTheFile() throws IOException {
        FashionMnist.Split train = shapes("train", 64, 3);
        Path file = temp.resolve("small.safetensors");
        FashionClassifier.Settings one = new FashionClassifier.Settings(2, 4, 8, 1, 1, 2, 0, 1, 32, 3e-3, 2, 0, 0);
        try (FashionClassifier.Loaded ignored = FashionClassifier.trainOrLoad(file, one, train, train, BACKEND,
                new PrintStream(new ByteArrayOutputStream()))) {
            FashionClassifier.Settings other = new FashionClassifier.Settings(3, 4, 8, 1, 1, 2, 0, 1, 32, 3e-3, 2, 0, 0);
            IOException e = assertThrows(IOException.class, () -> FashionClassifier.load(file, other, BACKEND));
            assertTrue(e.getMessage().contains(file.toString()) && e.getMessage().contains("conv_channels"),
                    e.getMessage());
        }
    }

    @Test
    void badSettingsAreRejected() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new FashionClassifier.Settings(-1, 8, 16, 1, 2, 2, 0, 1, 32, 3e-3, 2, 0, 0));
        assertTrue(e.getMessage().contains("classifier settings"), e.getMessage());
    }
}
