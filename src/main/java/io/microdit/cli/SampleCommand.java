package io.microdit.cli;

import io.microdit.autograd.Precision;
import io.microdit.backend.Backend;
import io.microdit.backend.Backends;
import io.microdit.data.CaptionEncoder;
import io.microdit.diffusion.Edm;
import io.microdit.diffusion.HeunSampler;
import io.microdit.model.ConfigFile;
import io.microdit.model.MicroDiT;
import io.microdit.model.MicroDiTConfig;
import io.microdit.model.Weights;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.train.Checkpoint;
import io.microdit.train.SampleGrid;
import io.microdit.train.TrainingConfig;
import io.microdit.train.TrainingRun;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** Samples a grid of images for one prompt from a checkpoint (EMA weights when the run kept them). */
@Command(name = "sample", description = "Sample images for a prompt from a checkpoint into a PNG grid.")
final class SampleCommand implements Callable<Integer> {
    @Option(names = "--ckpt", required = true, description = "A checkpoint folder, or a run folder (its latest).")
    Path checkpoint;

    @Option(names = "--prompt", required = true, description = "The caption, e.g. \"a photo of a sneaker\".")
    String prompt;

    @Option(names = "--n", defaultValue = "16", description = "Number of images (default ${DEFAULT-VALUE}).")
    int count;

    @Option(names = "--cfg", defaultValue = "4", description = "Classifier-free guidance scale (default ${DEFAULT-VALUE}).")
    double guidance;

    @Option(names = "--steps", defaultValue = "18", description = "Heun steps (default ${DEFAULT-VALUE}).")
    int steps;

    @Option(names = "--seed", defaultValue = "0", description = "Noise seed (default ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--raw", description = "Use the raw weights even when the checkpoint has EMA weights.")
    boolean raw;

    @Option(names = "--out", required = true, description = "Output PNG.")
    Path out;

    @Option(names = "--precision", description = "f32 or bf16 (mixed precision; on the CPU backend bf16 only models "
            + "the rounding). Default: bf16 on cuda, f32 on cpu.")
    String precision;

    @Option(names = "--threads", description = "CPU threads (default: all).")
    Integer threads;

    @Option(names = "--backend", defaultValue = "cpu", description = "cpu or cuda (see --device). "
            + "Default ${DEFAULT-VALUE}.")
    String backendName;

    @Mixin
    DeviceOption device;

    @Mixin
    Tf32Option tf32;

    @Override
    public Integer call() throws Exception {
        if (count < 1) {
            throw new IllegalArgumentException("--n must be at least 1, got " + count);
        }
        tf32.check(backendName);
        Path folder = Files.isRegularFile(checkpoint.resolve(Checkpoint.STATE)) ? checkpoint
                : Checkpoint.latest(checkpoint);
        if (folder == null) {
            throw new IOException(checkpoint + " is neither a checkpoint folder nor a run folder with checkpoints");
        }
        TrainingConfig training = TrainingConfig.fromJson(Checkpoint.readState(folder).trainingConfigJson());
        MicroDiTConfig modelConfig = ConfigFile.resolve(training.model());
        Path weights = !raw && Files.isRegularFile(folder.resolve(Checkpoint.EMA)) ? folder.resolve(Checkpoint.EMA)
                : folder.resolve(Checkpoint.MODEL);
        CaptionEncoder encoder = TrainingRun.captionEncoder(training.captionLength(), modelConfig);
        try (Backend backend = Backends.open(backendName, threads, device.device);
             MemoryScope scope = new MemoryScope("sample")) {
            tf32.apply(backend);
            MicroDiT model = MicroDiT.create(modelConfig, 0, backend);
            try {
                Weights.load(model, weights);
                Tensor captions = scope.zeros(count, encoder.length(), encoder.channels());
                float[] embedding = encoder.encode(prompt);
                for (int i = 0; i < count; i++) {
                    captions.rows(i, 1).copyFrom(embedding);
                }
                float[] images = new HeunSampler(model, backend, new Edm(0.9, training.pMean(), training.pStd()),
                        precision == null ? Backends.defaultPrecision(backendName)
                                : Precision.parse(precision, "--precision")).sample(captions, steps, guidance, seed, 0);
                int columns = (int) Math.ceil(Math.sqrt(count));
                new SampleGrid(modelConfig.inChannels(), modelConfig.inputSize(), modelConfig.inputSize(), columns, 2)
                        .write(out, images);
            } finally {
                model.parameters().close();
            }
        }
        System.out.println("wrote " + out + " (" + count + " × \"" + prompt + "\", " + weights.getFileName() + ", "
                + steps + " Heun steps, cfg " + guidance + ")");
        return 0;
    }
}
