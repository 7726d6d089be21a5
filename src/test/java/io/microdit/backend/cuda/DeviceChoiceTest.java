package io.microdit.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.backend.cuda.DeviceChoice.Found;
import io.microdit.backend.cuda.DeviceChoice.Requested;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The device decision on injected statuses and versions (no native library needed): the emulator only when asked
 * for by name, and for the GPU either the CUDA build or an error naming what was found and what is needed; and the
 * versions the loaded library reports, on which the decision rests.
 */
class DeviceChoiceTest {
    private static final Path CUDA = Path.of("/opt/microdit/native/libmicrodit_cuda.so");
    private static final Path EMULATOR = Path.of("/opt/microdit/native/libmicrodit_emu.so");
    private static final String ASKED = "--device cuda";

    private static DeviceChoice gpu(Found found) {
        return DeviceChoice.decide(Requested.CUDA, ASKED, CUDA, found, EMULATOR, true);
    }

    private static String refusal(Found found) {
        return assertThrows(IllegalStateException.class, () -> gpu(found)).getMessage();
    }

    /** Every refusal offers the emulator by name, so the way out is in the message. */
    private static void offersTheEmulator(String message) {
        assertTrue(message.contains("--device emu (slow; for tests and planning)"), message);
        assertTrue(message.startsWith(ASKED + ":") || message.startsWith(ASKED + " needs"), message);
    }

    @Test
    void aUsableDeviceLoadsTheCudaBuildAndSaysWhy() {
        Random random = new Random(11);
        for (int trial = 0; trial < 20; trial++) {
            int devices = 1 + random.nextInt(8), driver = 13000 + 10 * random.nextInt(10);
            DeviceChoice choice = gpu(new Found(true, null, CudaRuntime.SUCCESS, "", devices, driver, 13000));
            assertEquals(CUDA, choice.library());
            assertFalse(choice.emulator());
            assertTrue(choice.reason().startsWith(ASKED + ": " + devices + " CUDA device" + (devices > 1 ? "s" : "")),
                    choice.reason());
            assertTrue(choice.reason().endsWith("driver CUDA " + DeviceChoice.cudaVersion(driver)
                    + ", runtime CUDA 13.0"), choice.reason());
        }
    }

    @Test
    void aDriverTooOldForTheRuntimeIsAnErrorThatNamesBothVersionsAndTheNeededDriver() {
        String detail = "cudaGetDeviceCount: the NVIDIA driver supports CUDA 12.4, the runtime linked in is CUDA "
                + "13.0 (cudaErrorInsufficientDriver)";
        String message = refusal(new Found(true, null, CudaRuntime.ERROR_DRIVER_TOO_OLD, detail, 0, 12040, 13000));
        assertTrue(message.contains("libmicrodit_cuda.so was built with CUDA 13.0 and needs an NVIDIA driver of the "
                + "CUDA 13 generation (580 or newer); this machine's driver supports CUDA 12.4"), message);
        assertTrue(message.contains(detail), message);
        assertTrue(message.contains("Update the driver"), message);
        offersTheEmulator(message);
    }

    @Test
    void noDriverAtAllIsTold() {
        // The CUDA runtime reports a missing driver as cudaErrorInsufficientDriver too; version 0 tells them apart.
        for (int status : new int[] {CudaRuntime.ERROR_NO_DEVICE, CudaRuntime.ERROR_DRIVER_TOO_OLD}) {
            String message = refusal(new Found(true, null, status, "cudaGetDeviceCount: no NVIDIA driver", 0, 0,
                    13000));
            assertTrue(message.contains("needs an NVIDIA GPU with a driver of the CUDA 13 generation (580 or "
                    + "newer); this machine has no NVIDIA driver (cudaGetDeviceCount: no NVIDIA driver)"), message);
            assertFalse(message.contains("Update the driver"), message);
            offersTheEmulator(message);
        }
    }

    @Test
    void aDriverWithoutDevicesIsAnError() {
        String message = refusal(new Found(true, null, CudaRuntime.ERROR_NO_DEVICE,
                "cudaGetDeviceCount: no CUDA-capable device is detected (cudaErrorNoDevice)", 0, 13000, 13000));
        assertTrue(message.contains("the NVIDIA driver (CUDA 13.0) sees no CUDA device (cudaGetDeviceCount: no "
                + "CUDA-capable device is detected (cudaErrorNoDevice))"), message);
        assertTrue(message.contains("CUDA_VISIBLE_DEVICES"), message);
        offersTheEmulator(message);
        // Success with zero devices (an empty CUDA_VISIBLE_DEVICES) is no device either, never the emulator.
        offersTheEmulator(refusal(new Found(true, null, CudaRuntime.SUCCESS, "", 0, 13000, 13000)));
    }

    @Test
    void anotherRuntimeFailureReportsTheStatusAndVersions() {
        String message = refusal(new Found(true, null, CudaRuntime.ERROR_RUNTIME,
                "cudaGetDeviceCount: system not yet initialized (cudaErrorSystemNotReady)", 0, 13000, 13000));
        assertTrue(message.contains("cannot count the CUDA devices (cudaGetDeviceCount: system not yet initialized "
                + "(cudaErrorSystemNotReady)); driver CUDA 13.0, runtime CUDA 13.0"), message);
        offersTheEmulator(message);
    }

    @Test
    void aMissingOrBrokenCudaBuildIsAnErrorEvenWhenTheEmulatorIsThere() {
        String missing = refusal(Found.missing());
        assertTrue(missing.contains(CUDA + " does not exist"), missing);
        assertTrue(missing.contains("make -C native cuda"), missing);
        offersTheEmulator(missing);
        String broken = refusal(Found.unloadable("libcudart.so.13: cannot open shared object file"));
        assertTrue(broken.contains(CUDA + " does not load (libcudart.so.13: cannot open shared object file)"), broken);
        offersTheEmulator(broken);
    }

    @Test
    void theEmulatorRunsOnlyWhenAskedForByName() {
        DeviceChoice choice = DeviceChoice.decide(Requested.EMU, "--device emu", CUDA, null, EMULATOR, true);
        assertEquals(EMULATOR, choice.library());
        assertTrue(choice.emulator());
        assertTrue(choice.reason().startsWith("the host emulator, asked for by name (--device emu)"), choice.reason());
        String missing = assertThrows(IllegalStateException.class,
                () -> DeviceChoice.decide(Requested.EMU, "-Dmicrodit.device=emu", CUDA, null, EMULATOR, false))
                .getMessage();
        assertTrue(missing.startsWith("no microdit native library: " + EMULATOR + " does not exist"), missing);
        // With a usable GPU the emulator is still what was asked for.
        assertTrue(DeviceChoice.decide(Requested.EMU, "--device emu", CUDA,
                new Found(true, null, CudaRuntime.SUCCESS, "", 1, 13000, 13000), EMULATOR, true).emulator());
    }

    @Test
    void onlyCudaAndTheEmulatorsAreDevices() {
        assertEquals(Requested.CUDA, Requested.parse("cuda", "--device"));
        assertEquals(Requested.EMU, Requested.parse("emu", "--device"));
        assertEquals(Requested.EMU_CHECKED, Requested.parse("emu-checked", "--device"));
        assertTrue(Requested.EMU_CHECKED.emulator() && !Requested.CUDA.emulator());
        String auto = assertThrows(IllegalArgumentException.class, () -> Requested.parse("auto",
                "-Dmicrodit.device")).getMessage();
        assertTrue(auto.startsWith("-Dmicrodit.device must be cuda, emu or emu-checked, got 'auto'"), auto);
    }

    /** Through the C ABI: the emulator reports the CUDA generation it follows; the GPU build, what it runs on. */
    @Test
    @Tag("emu")
    void theLoadedLibraryReportsItsDriverAndRuntimeVersions() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment driver = arena.allocate(ValueLayout.JAVA_INT), runtime = arena.allocate(ValueLayout.JAVA_INT);
            CudaRuntime.check(RuntimeBindings.mdt_driver_version(driver), "mdt_driver_version");
            CudaRuntime.check(RuntimeBindings.mdt_runtime_version(runtime), "mdt_runtime_version");
            int d = driver.get(ValueLayout.JAVA_INT, 0), r = runtime.get(ValueLayout.JAVA_INT, 0);
            if (CudaRuntime.isEmulator()) {
                assertEquals(13000, d);
                assertEquals(13000, r);
            } else {
                assertTrue(r >= 13000 && d / 1000 >= r / 1000, "driver " + d + ", runtime " + r);
            }
            assertEquals(CudaRuntime.ERROR_INVALID_ARGUMENT, RuntimeBindings.mdt_driver_version(MemorySegment.NULL));
            assertEquals(CudaRuntime.ERROR_INVALID_ARGUMENT, RuntimeBindings.mdt_runtime_version(MemorySegment.NULL));
        }
    }

    @Test
    void versionsReadAsCudaWritesThem() {
        assertEquals("13.0", DeviceChoice.cudaVersion(13000));
        assertEquals("12.4", DeviceChoice.cudaVersion(12040));
        assertEquals("driver none, runtime CUDA 13.1", new Found(true, null, 0, "", 0, 0, 13010).versions());
    }
}
