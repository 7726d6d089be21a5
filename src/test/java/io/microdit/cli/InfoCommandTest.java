package io.microdit.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

class InfoCommandTest {

    @Test
    void infoPrintsVersionJavaBackendMeasuredGemmAndCuda() {
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
        // The build makes the emulator library; the CUDA one binds only where it sees a device.
        assertTrue(out.contains("cuda     host emulator (") || Pattern.compile("cuda     .*, \\d+ SMs, ").matcher(out)
                .find(), out);
        Matcher gflops = Pattern.compile("gemm +([0-9.]+) GFLOP/s").matcher(out);
        assertTrue(gflops.find(), out);
        assertTrue(Double.parseDouble(gflops.group(1)) > 0, out);
    }

    @Test
    void cudaProbeExplainsAMissingLibraryWithoutThrowing() {
        String why = CudaProbe.unavailable(new ExceptionInInitializerError(new IllegalStateException(
                "no microdit native library: target/native/libmicrodit_emu.so does not exist")));
        assertTrue(why.startsWith("no native library, the CUDA backend is unavailable (no microdit native library: "
                + "target/native/libmicrodit_emu.so does not exist)"), why);
        assertTrue(CudaProbe.unavailable(new NoClassDefFoundError()).contains("(NoClassDefFoundError)"));
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
