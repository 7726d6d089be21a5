package io.microdit.cli;

import picocli.CommandLine.Option;

/** {@code --device}: which native library {@code --backend cuda} runs on, shared by the commands that take it. */
final class DeviceOption {
    @Option(names = "--device", description = "With --backend cuda: cuda (the GPU build; without a usable GPU an "
            + "error), emu (the host emulator: slow, for tests and planning) or emu-checked (the emulator with bounds, "
            + "race and bank-conflict/coalescing checks: slower still). Default: -Dmicrodit.device, else cuda.")
    String device;
}
