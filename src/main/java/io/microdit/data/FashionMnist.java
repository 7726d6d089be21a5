package io.microdit.data;

import io.microdit.io.IdxFile;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

/**
 * Fashion-MNIST from its IDX files: 28×28 grey images, padded with background to 32×32 and scaled to [-1, 1]
 * (the background is -1), used as a one-channel "latent"; labels 0..9 with their class names.
 */
public final class FashionMnist {
    /** Where Debian's {@code dataset-fashion-mnist} package installs the files. */
    public static final Path DEBIAN_DIRECTORY = Path.of("/usr/share/datasets/fashion-mnist");
    /** The names of labels 0..9, in label order, as the captions use them. */
    public static final List<String> CLASS_NAMES = List.of("t-shirt", "trouser", "pullover", "dress", "coat",
            "sandal", "shirt", "sneaker", "bag", "ankle boot");
    /** Height and width of the padded images (the 28-pixel originals centred on background). */
    public static final int SIZE = 32;
    private static final int SOURCE_SIZE = 28;

    /** One split: images [count, 1, 32, 32] in [-1, 1] and labels. */
    public record Split(String name, int count, float[] images, int[] labels) {
        /** The pixels of image i (1×32×32, row-major). */
        public float[] image(int i) {
            return Arrays.copyOfRange(images, i * SIZE * SIZE, (i + 1) * SIZE * SIZE);
        }
    }

    private FashionMnist() {
    }

    /** The training split (60,000 images) from {@code directory}. */
    public static Split train(Path directory) throws IOException {
        return load(directory, "train", "train-images-idx3-ubyte", "train-labels-idx1-ubyte");
    }

    /** The test split (10,000 images) from {@code directory}. */
    public static Split test(Path directory) throws IOException {
        return load(directory, "test", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte");
    }

    /** The directory to read: the given one, or Debian's, with a message saying how to get the data. */
    public static Path locate(Path requested) throws IOException {
        Path directory = requested != null ? requested : DEBIAN_DIRECTORY;
        if (findFile(directory, "train-images-idx3-ubyte") == null) {
            throw new IOException("Fashion-MNIST not found in " + directory + " (looked for "
                    + "train-images-idx3-ubyte[.gz]). Install Debian's package with "
                    + "'apt-get install dataset-fashion-mnist' (it installs into " + DEBIAN_DIRECTORY
                    + "), or pass --data DIR with the four IDX files.");
        }
        return directory;
    }

    private static Split load(Path directory, String split, String imagesName, String labelsName) throws IOException {
        Path imagesFile = require(directory, imagesName);
        Path labelsFile = require(directory, labelsName);
        IdxFile images = IdxFile.read(imagesFile);
        IdxFile labels = IdxFile.read(labelsFile);
        int[] s = images.shape();
        if (s.length != 3 || s[1] != SOURCE_SIZE || s[2] != SOURCE_SIZE) {
            throw new IOException(imagesFile + ": expected images of shape [count, 28, 28], got "
                    + Arrays.toString(s));
        }
        if (labels.shape().length != 1 || labels.shape()[0] != s[0]) {
            throw new IOException(labelsFile + ": expected " + s[0] + " labels (one per image in " + imagesFile
                    + "), got shape " + Arrays.toString(labels.shape()));
        }
        int count = s[0];
        float[] pixels = new float[count * SIZE * SIZE];
        Arrays.fill(pixels, -1f);
        int pad = (SIZE - SOURCE_SIZE) / 2;
        for (int n = 0; n < count; n++) {
            for (int y = 0; y < SOURCE_SIZE; y++) {
                for (int x = 0; x < SOURCE_SIZE; x++) {
                    int value = images.unsigned((n * SOURCE_SIZE + y) * SOURCE_SIZE + x);
                    pixels[(n * SIZE + y + pad) * SIZE + x + pad] = value / 127.5f - 1f;
                }
            }
        }
        int[] classes = new int[count];
        for (int n = 0; n < count; n++) {
            classes[n] = labels.unsigned(n);
            if (classes[n] >= CLASS_NAMES.size()) {
                throw new IOException(labelsFile + ": offset " + (8 + n) + ": label " + classes[n]
                        + " is not a Fashion-MNIST class (0..9)");
            }
        }
        return new Split(split, count, pixels, classes);
    }

    private static Path require(Path directory, String name) throws IOException {
        Path file = findFile(directory, name);
        if (file == null) {
            throw new IOException("Fashion-MNIST file " + name + "[.gz] not found in " + directory
                    + "; install 'dataset-fashion-mnist' or pass --data DIR");
        }
        return file;
    }

    private static Path findFile(Path directory, String name) {
        for (String candidate : new String[] {name + ".gz", name}) {
            Path file = directory.resolve(candidate);
            if (Files.isRegularFile(file)) {
                return file;
            }
        }
        return null;
    }
}
