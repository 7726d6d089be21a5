package io.microdit.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import io.microdit.backend.cuda.CudaRuntime;
import io.microdit.backend.cuda.DeviceChoice;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

class InfoCommandTest {

    @Test
    void infoPrintsVersionJavaBackendMeasuredGemmAndTheCudaLibraryAndWhy() {
        PrintStream original = System.out;
        ByteArrayOutputStream captured = new ByteArrayOutputStream();
        int exit;
        try {
            System.setOut(new PrintStream(captured, true, StandardCharsets.UTF_8));
            exit = Main.run("info", "--gemm-size", "64", "--seconds", "0.2");
        } finally {
            System.setOut(original);
        }
        String out = captured.toString(StandardCharsets.UTF_8);
        assertEquals(0, exit, out);
        assertTrue(out.startsWith("microdit "), out);
        assertTrue(out.contains("java     " + Runtime.version()), out);
        assertTrue(out.contains("backend  cpu ("), out);
        // The build asks for the emulator by name (-Dmicrodit.device=emu in the pom; cuda on a GPU machine). The
        // reason is the one the library was loaded for: another test of this JVM may have asked with --device emu.
        assertTrue(out.contains("\ncuda     host emulator\nlibrary  ") && out.contains("libmicrodit_emu.so: the host "
                + "emulator, asked for by name (") || Pattern.compile(
                "cuda     .*, \\d+ SMs, .*\nlibrary  .*libmicrodit_cuda.so: .*: \\d+ CUDA device").matcher(out)
                .find(), out);
        assertTrue(Pattern.compile("\nversions (driver .*, runtime CUDA \\d+\\.\\d+ \\(libmicrodit_cuda.so; |"
                + "libmicrodit_cuda.so not built; )").matcher(out).find(), out);
        Matcher gflops = Pattern.compile("gemm +([0-9.]+) GFLOP/s").matcher(out);
        assertTrue(gflops.find(), out);
        assertTrue(Double.parseDouble(gflops.group(1)) > 0, out);
    }

    @Test
    void cudaProbeExplainsAMissingLibraryWithoutThrowing() {
        String why = CudaProbe.unavailable(new ExceptionInInitializerError(new IllegalStateException(
                "no microdit native library: target/native/libmicrodit_emu.so does not exist")));
        assertEquals("unavailable: no microdit native library: target/native/libmicrodit_emu.so does not exist", why);
        assertEquals("unavailable: NoClassDefFoundError", CudaProbe.unavailable(new NoClassDefFoundError()));
    }

    /** Asked for the GPU where it cannot run, info says why and still exits 0: it reports, it does not train. */
    @Test
    void infoSaysWhyTheGpuCannotRun() {
        DeviceChoice.Found found = CudaRuntime.probeCudaLibrary();
        assumeFalse(found.exists() && found.loadError() == null && found.devices() > 0, "a usable GPU is here");
        PrintStream original = System.out;
        ByteArrayOutputStream captured = new ByteArrayOutputStream();
        int exit;
        try {
            System.setOut(new PrintStream(captured, true, StandardCharsets.UTF_8));
            exit = Main.run("info", "--gemm-size", "16", "--seconds", "0.01", "--device", "cuda");
        } finally {
            System.setOut(original);
        }
        String out = captured.toString(StandardCharsets.UTF_8);
        assertEquals(0, exit, out);
        assertTrue(out.contains("\ncuda     unavailable: --device cuda") && out.contains("--device emu (slow; for tests "
                + "and planning)") && out.contains("\nlibrary  none\nversions "), out);
    }

    @Test
    void unknownSubcommandFailsWithUsage() {
        PrintStream originalErr = System.err;
        try {
            System.setErr(new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8));
            assertEquals(2, Main.run("no-such-command"));
        } finally {
            System.setErr(originalErr);
        }
    }
}
