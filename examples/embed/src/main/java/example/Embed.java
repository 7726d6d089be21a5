package example;

import io.microdit.autograd.GradScope;
import io.microdit.autograd.Graph;
import io.microdit.autograd.Variable;
import io.microdit.backend.Backend;
import io.microdit.backend.Backends;
import io.microdit.backend.cpu.CpuBackend;
import io.microdit.diffusion.Edm;
import io.microdit.diffusion.EdmObjective;
import io.microdit.diffusion.HeunSampler;
import io.microdit.model.MaskingMode;
import io.microdit.model.MicroDiT;
import io.microdit.model.MicroDiTConfig;
import io.microdit.model.MicroDiTConfigs;
import io.microdit.model.Weights;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.train.AdamW;
import io.microdit.train.SampleGrid;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.Random;

/**
 * microdit embedded in another program, on the CPU: weights saved and loaded, one training step, one forward pass,
 * a grid of samples; then the same grid on the CUDA backend running on the host emulator, whose native library
 * comes out of the microdit jar. Usage: {@code Embed <work folder>}.
 */
public final class Embed {
    private static final int IMAGES = 4, CAPTION_LENGTH = 8, HEUN_STEPS = 3;

    public static void main(String[] args) throws Exception {
        Path work = Files.createDirectories(Path.of(args.length > 0 ? args[0] : "target/embed"));
        MicroDiTConfig config = MicroDiTConfigs.fashionSmall();
        Path weights = work.resolve(config.name() + ".safetensors");
        SampleGrid grid = new SampleGrid(config.inChannels(), config.inputSize(), config.inputSize(), 2, 2);
        Edm edm = Edm.MICRODIT_256;
        Random random = new Random(7);
        try (CpuBackend cpu = new CpuBackend(); MemoryScope data = new MemoryScope("embed-data")) {
            Tensor latents = uniform(data, random, IMAGES, config.inChannels(), config.inputSize(), config.inputSize());
            Tensor captions = uniform(data, random, IMAGES, CAPTION_LENGTH, config.captionChannels());
            Tensor cNoise = uniform(data, random, IMAGES);

            // Weights: a freshly initialised model saved with the official parameter names (as 'microdit
            // export-init' writes them), loaded into a second model.
            MicroDiT initialised = MicroDiT.create(config, 42, cpu);
            Weights.save(initialised, weights, Map.of());
            initialised.parameters().close();
            MicroDiT model = MicroDiT.create(config, 0, cpu);
            Path trained = work.resolve(config.name() + "-trained.safetensors");
            float[] cpuImages;
            try {
                Weights.load(model, weights);
                System.out.println("loaded " + model.parameters().all().size() + " tensors from " + weights);

                // One training step first: the official initialisation zeroes the final layer, so an untrained
                // model's output is all zeros.
                try (AdamW optimizer = new AdamW(cpu, model.parameters(), AdamW.MICRODIT);
                     MemoryScope step = new MemoryScope("train-step")) {
                    model.parameters().zeroGrad(cpu);
                    Graph g = new Graph(cpu, step);
                    double loss;
                    try (GradScope ignored = g.recordGradients()) {
                        Variable objective = new EdmObjective(edm, MaskingMode.DEFERRED, 0.5, 0.1)
                                .loss(g, model, latents, captions, 3, 0);
                        loss = objective.value().toFloatArray()[0];
                        objective.backward();
                    }
                    double norm = optimizer.update(1e-3, 1.0);
                    System.out.printf("training step: loss %.5f, gradient norm %.5f%n", loss, norm);
                }
                Weights.save(model, trained, Map.of());

                try (MemoryScope step = new MemoryScope("forward")) {
                    Graph g = new Graph(cpu, step);
                    Tensor output = model.forward(g, g.constant(latents), cNoise, g.constant(captions), null,
                            MaskingMode.NONE).value();
                    System.out.printf("forward: output %s, mean square %.3e%n", Arrays.toString(output.shape()),
                            meanSquare(output.toFloatArray()));
                }

                cpuImages = new HeunSampler(model, cpu, edm).sample(captions, HEUN_STEPS, 2.0, 1, 0);
                grid.write(work.resolve("grid-cpu.png"), cpuImages);
                System.out.println("sampled " + IMAGES + " images in " + HEUN_STEPS + " Heun steps: "
                        + work.resolve("grid-cpu.png"));
            } finally {
                model.parameters().close();
            }

            // The trained weights and the same grid on the CUDA backend, here on its host emulator ("cuda" on a GPU
            // machine), whose native library the microdit jar carries. Same seed, same noise: the images agree.
            try (Backend emulator = Backends.open("cuda", null, "emu")) {
                System.out.println("backend: " + Backends.describe(emulator));
                MicroDiT onDevice = MicroDiT.create(config, 0, emulator);
                try {
                    Weights.load(onDevice, trained);
                    float[] images = new HeunSampler(onDevice, emulator, edm).sample(captions, HEUN_STEPS, 2.0, 1, 0);
                    grid.write(work.resolve("grid-emu.png"), images);
                    double difference = 0;
                    for (int i = 0; i < images.length; i++) {
                        difference = Math.max(difference, Math.abs(images[i] - cpuImages[i]));
                    }
                    System.out.printf("emulator grid: %s, largest difference from the CPU's %.2e%n",
                            work.resolve("grid-emu.png"), difference);
                    if (!(difference < 1e-2)) {
                        throw new AssertionError("the emulator's samples differ from the CPU's by " + difference);
                    }
                } finally {
                    onDevice.parameters().close();
                }
            }
        }
    }

    private static Tensor uniform(MemoryScope scope, Random random, int... shape) {
        Tensor t = scope.zeros(shape);
        float[] values = new float[Math.toIntExact(t.numel())];
        for (int i = 0; i < values.length; i++) {
            values[i] = random.nextFloat() * 2 - 1;
        }
        return t.copyFrom(values);
    }

    private static double meanSquare(float[] values) {
        double sum = 0;
        for (float v : values) {
            sum += (double) v * v;
        }
        return sum / values.length;
    }
}
