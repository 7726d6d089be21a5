package io.microdit.cli;

import io.microdit.model.ConfigFile;
import io.microdit.model.FlopModel;
import io.microdit.model.MaskingMode;
import io.microdit.model.MicroDiTConfig;
import io.microdit.model.ParameterLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * The training cost of a run from the analytic {@link FlopModel}: forward FLOPs per image × 3 × batch × steps, per
 * stage and in total, and, for a GPU with a price per hour, the GPU-hours, wall-clock days and dollars at a stated
 * model FLOP utilisation (MFU) of the device's dense BF16 peak; over several GPUs, the bytes each sends per step to
 * reduce gradients ({@link CommunicationVolume}: data parallel and ZeRO-2) and their time at a bus bandwidth, next
 * to each stage's compute time per step. The paper's recipe:
 * {@code --config microdit-xl-2 --batch 2048 --stages 250000:0.75,30000:0,50000:0.75:512,5000:0:512}.
 */
@Command(name = "cost", description = "Training FLOPs of a run (per stage) and its GPU-hours and dollars at an MFU.")
final class CostCommand implements Callable<Integer> {
    /** Dense BF16 tensor-core peaks in FLOP/s (H100 SXM, A100 SXM/PCIe). */
    enum Device {
        h100(989.4e12), a100(312e12);

        final double peak;

        Device(double peak) {
            this.peak = peak;
        }
    }

    @Option(names = "--config", required = true, description = "Built-in config name or JSON file.")
    String config;

    @Option(names = "--batch", required = true, description = "Global batch size (images per step).")
    int batch;

    @Option(names = "--steps", description = "Steps of a single stage (instead of --stages).")
    Long steps;

    @Option(names = "--mask", defaultValue = "0", description = "Mask ratio of a single stage (default 0).")
    double mask;

    @Option(names = "--stages", split = ",", description = "Stages as STEPS:MASK[:RESOLUTION_PX], e.g. "
            + "250000:0.75,30000:0,50000:0.75:512,5000:0:512 (the resolution in pixels of an f8 VAE latent).")
    List<String> stages;

    @Option(names = "--resolution", description = "Image resolution in pixels (latent input_size = px / 8, "
            + "pos_interp_scale scaled with it); default: the config's input_size.")
    Integer resolution;

    @Option(names = "--input-size", description = "Latent input_size (instead of --resolution).")
    Integer inputSize;

    @Option(names = "--masking", defaultValue = "deferred", description = "deferred, naive or none (default "
            + "${DEFAULT-VALUE}); a stage with mask 0 is unmasked.")
    String masking;

    @Option(names = "--caption-length", defaultValue = "77", description = "Caption tokens (default ${DEFAULT-VALUE}).")
    int captionLength;

    @Option(names = "--device", description = "h100 (989.4 TFLOP/s BF16 dense) or a100 (312).")
    Device device;

    @Option(names = "--price", defaultValue = "0", description = "Dollars per GPU-hour.")
    double price;

    @Option(names = "--mfu", defaultValue = "0.4", description = "Model FLOP utilisation (default ${DEFAULT-VALUE}).")
    double mfu;

    @Option(names = "--gpus", defaultValue = "8", description = "GPUs in parallel, for wall time (default "
            + "${DEFAULT-VALUE}).")
    int gpus;

    @Option(names = "--micro-batch", description = "Images per GPU per forward/backward (default: batch / GPUs, "
            + "one round per step); the gradients are reduced once per round.")
    Integer microBatch;

    @Option(names = "--bus-bandwidth", defaultValue = "450", description = "Collective bus bandwidth per GPU in GB/s "
            + "(default ${DEFAULT-VALUE}: NCCL on 8 H100 SXM over NVLink).")
    double busBandwidth;

    private record StageCost(long steps, double mask, int inputSize, double forwardPerImage, double flops) {
    }

    @Override
    public Integer call() throws Exception {
        MicroDiTConfig base = ConfigFile.resolve(config);
        require(batch > 0, "--batch must be positive, got " + batch);
        require((steps == null) != (stages == null), "give either --steps (with --mask) or --stages");
        require(!(resolution != null && inputSize != null), "give --resolution or --input-size, not both");
        require(mfu > 0 && mfu <= 1, "--mfu must be in (0, 1], got " + mfu);
        require(gpus > 0 && price >= 0, "--gpus must be positive and --price not negative");
        require(busBandwidth > 0, "--bus-bandwidth must be positive, got " + busBandwidth);
        int micro = microBatch != null ? microBatch : batch / gpus;
        require(micro > 0 && batch % ((long) gpus * micro) == 0, "--batch " + batch + " must split into rounds of "
                + gpus + " GPUs × --micro-batch " + micro);
        MaskingMode mode = switch (masking) {
            case "deferred" -> MaskingMode.DEFERRED;
            case "naive" -> MaskingMode.NAIVE;
            case "none" -> MaskingMode.NONE;
            default -> throw new IllegalArgumentException("--masking must be deferred, naive or none, got " + masking);
        };
        int defaultSize = inputSize != null ? inputSize : resolution != null ? latentSize(resolution)
                : base.inputSize();
        List<StageCost> costs = new ArrayList<>();
        if (steps != null) {
            costs.add(stage(base, steps, mask, defaultSize, mode));
        } else {
            for (String s : stages) {
                String[] parts = s.split(":");
                require(parts.length == 2 || parts.length == 3, "a stage is STEPS:MASK[:RESOLUTION_PX], got '" + s
                        + "'");
                int size = parts.length == 3 ? latentSize(Integer.parseInt(parts[2].trim())) : defaultSize;
                costs.add(stage(base, Long.parseLong(parts[0].trim()), Double.parseDouble(parts[1].trim()), size,
                        mode));
            }
        }
        System.out.printf(Locale.ROOT, "%s, batch %d, caption length %d, %s masking; training = 3 x forward%n",
                base.name(), batch, captionLength, masking);
        System.out.println("stage  steps      mask  latent  tokens  fwd GFLOP/img  train FLOPs");
        double total = 0;
        for (int i = 0; i < costs.size(); i++) {
            StageCost c = costs.get(i);
            System.out.printf(Locale.ROOT, "%-5d  %-9d  %.2f  %3dx%-3d %6d  %13.1f  %.3e%n", i + 1, c.steps(),
                    c.mask(), c.inputSize(), c.inputSize(), tokens(base, c.inputSize()), c.forwardPerImage() / 1e9,
                    c.flops());
            total += c.flops();
        }
        System.out.printf(Locale.ROOT, "total  %.3e FLOPs%n", total);
        if (device != null) {
            double gpuHours = total / (device.peak * mfu) / 3600;
            System.out.printf(Locale.ROOT, "%s at %.1f%% MFU (%.1f TFLOP/s each): %.1f GPU-hours, %.2f days on %d "
                    + "GPUs, $%,.0f at $%.2f/GPU-hour%n", device, 100 * mfu, device.peak * mfu / 1e12, gpuHours,
                    gpuHours / gpus / 24, gpus, gpuHours * price, price);
            if (gpus > 1) {
                printCommunication(base, costs, batch / (gpus * micro), device.peak * mfu);
            }
        }
        return 0;
    }

    /** Each GPU's bytes and seconds of gradient communication per step, against each stage's compute per step. */
    private void printCommunication(MicroDiTConfig base, List<StageCost> costs, int rounds, double flopsPerGpu) {
        CommunicationVolume volume = new CommunicationVolume(ParameterLayout.of(base).total(), gpus, rounds);
        double bandwidth = busBandwidth * 1e9;
        double dataParallel = CommunicationVolume.seconds(volume.dataParallelBytes(), bandwidth);
        double zero2 = CommunicationVolume.seconds(volume.zero2Bytes(), bandwidth);
        System.out.printf(Locale.ROOT, "communication per step and GPU, %d GPUs, %d round%s of micro-batch %d, F32 "
                        + "gradients of %,d parameters (%.2f GB), at %.0f GB/s bus bandwidth:%n", gpus, rounds,
                rounds == 1 ? "" : "s", batch / (gpus * rounds), volume.parameters(), volume.gradientBytes() / 1e9,
                busBandwidth);
        System.out.printf(Locale.ROOT, "  data parallel: all-reduce, %.2f GB, %.1f ms%n",
                volume.dataParallelBytes() / 1e9, 1e3 * dataParallel);
        System.out.printf(Locale.ROOT, "  ZeRO-2 (shard_grad_op): reduce-scatter + all-gather of the parameters, %.2f "
                + "GB, %.1f ms%n", volume.zero2Bytes() / 1e9, 1e3 * zero2);
        System.out.println("stage  compute ms/step  data parallel comm/compute  ZeRO-2 comm/compute");
        for (int i = 0; i < costs.size(); i++) {
            StageCost c = costs.get(i);
            double compute = c.flops() / c.steps() / gpus / flopsPerGpu;
            System.out.printf(Locale.ROOT, "%-5d  %15.1f  %25.1f%%  %18.1f%%%n", i + 1, 1e3 * compute,
                    100 * dataParallel / compute, 100 * zero2 / compute);
        }
    }

    private StageCost stage(MicroDiTConfig base, long stageSteps, double ratio, int size, MaskingMode mode) {
        require(stageSteps > 0, "steps must be positive, got " + stageSteps);
        MicroDiTConfig c = size == base.inputSize() ? base : FlopModel.atInputSize(base, size);
        MaskingMode stageMode = ratio == 0 ? MaskingMode.NONE : mode;
        double forward = FlopModel.forward(c, captionLength, ratio, stageMode).total();
        return new StageCost(stageSteps, ratio, size, forward, 3 * forward * batch * stageSteps);
    }

    private static int tokens(MicroDiTConfig base, int size) {
        return (size / base.patchSize()) * (size / base.patchSize());
    }

    private static int latentSize(int pixels) {
        require(pixels > 0 && pixels % 8 == 0, "a resolution must be a positive multiple of 8 px, got " + pixels);
        return pixels / 8;
    }

    private static void require(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException(message);
        }
    }
}
