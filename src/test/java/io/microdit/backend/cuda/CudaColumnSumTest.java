package io.microdit.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The two-pass column sums over all rows (kernels/column_sum.cuh): sumRows and the LayerNorm weight gradients
 * against the CPU backend at sizes that need one chunk, several chunks and ragged tiles (rows 1, 77, 5000;
 * columns 1, 33, 520), accumulating and not, outputs poisoned with NaN; the same bits on a second run; the
 * workspace the ABI asks for, and a clear refusal when the caller's is too small.
 */
@Tag("emu")
class CudaColumnSumTest extends CudaVersusCpu {
    private static final int[] ROWS = {1, 77, 5000};
    private static final int[] COLUMNS = {1, 33, 520};

    /**
     * Against a double-precision sum rather than the CPU backend: the CPU sums each column serially in float, so
     * on a column whose sum cancels (5000 rows, one column) the two float results differ by more than 1e-5 of the
     * result while both are within float rounding of Σ|x|. The bound is the summation error's scale.
     */
    @Test
    void sumRowsMatchesADoubleSumAtAwkwardSizes() {
        Random random = new Random(11);
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            for (int rows : ROWS) {
                for (int columns : COLUMNS) {
                    Tensor x = random(host, random, rows, columns), start = random(host, random, columns);
                    for (boolean accumulate : new boolean[] {false, true}) {
                        Tensor out = cuda.upload(accumulate ? start : TestData.poisoned(host, columns), device);
                        cuda.sumRows(cuda.upload(x, device), out, accumulate);
                        float[] got = cuda.download(out, host).toFloatArray();
                        for (int c = 0; c < columns; c++) {
                            double sum = accumulate ? start.getFloat(c) : 0, magnitude = Math.abs(sum);
                            for (int r = 0; r < rows; r++) {
                                sum += x.getFloat((long) r * columns + c);
                                magnitude += Math.abs(x.getFloat((long) r * columns + c));
                            }
                            double error = Math.abs(got[c] - sum);
                            String what = "sumRows " + rows + "x" + columns + (accumulate ? " accumulate" : "")
                                    + " column " + c + ": " + got[c] + " vs " + sum;
                            assertTrue(error <= 2e-6 * magnitude, what);
                        }
                    }
                }
            }
            Tensor x = random(host, random, 77, 33); // and the CPU backend, where the sums are well conditioned
            compare("sumRows vs cpu", new Tensor[] {x, random(host, random, 33)},
                    t -> cpu.sumRows(t[0], t[1], true), t -> cuda.sumRows(t[0], t[1], true));
        }
    }

    @Test
    void sumRowsGivesTheSameBitsOnEveryRun() {
        Random random = new Random(12);
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            Tensor x = cuda.upload(random(host, random, 5000, 520), device);
            Tensor first = cuda.upload(TestData.poisoned(host, 520), device);
            Tensor second = cuda.upload(TestData.poisoned(host, 520), device);
            cuda.sumRows(x, first, false);
            cuda.sumRows(cuda.upload(random(host, random, 77, 520), device), second, false); // reuses the workspace
            cuda.sumRows(x, second, false);
            assertArrayEquals(cuda.download(first, host).toFloatArray(), cuda.download(second, host).toFloatArray());
        }
    }

    @Test
    void layerNormWeightGradientsMatchTheCpu() {
        Random random = new Random(13);
        try (MemoryScope scope = new MemoryScope("inputs")) {
            // the row kernel runs a block per row, slow on the emulator: 1100 rows already take 35 chunks
            for (int[] size : new int[][] {{1, 1}, {1, 520}, {77, 33}, {77, 520}, {1100, 1}, {1100, 520}}) {
                int rows = size[0], width = size[1];
                Tensor x = uniform(scope, random, 3, rows, width), weight = random(scope, random, width);
                Tensor dOut = random(scope, random, rows, width);
                try (MemoryScope stats = new MemoryScope("stats")) {
                    Tensor mean = stats.zeros(rows), rstd = stats.zeros(rows);
                    cpu.layerNorm(x, weight, 1e-6f, stats.zeros(rows, width), mean, rstd);
                    Tensor dWeight = random(stats, random, width); // the backward adds into it
                    compare("layerNormBackward " + rows + "x" + width,
                            new Tensor[] {dOut, x, weight, mean, rstd, dWeight}, new int[][] {{rows, width}},
                            t -> cpu.layerNormBackward(t[0], t[1], t[2], t[3], t[4], t[6], t[5]),
                            t -> cuda.layerNormBackward(t[0], t[1], t[2], t[3], t[4], t[6], t[5]));
                }
            }
        }
    }

    @Test
    void layerNormModulateWeightGradientsOverManySamplesMatchTheCpu() {
        Random random = new Random(14);
        try (MemoryScope scope = new MemoryScope("inputs")) {
            // samples is the reduced dimension of dWeight: 300 needs several chunks
            for (int[] shape : new int[][] {{1, 3, 33}, {77, 2, 1}, {300, 2, 33}, {300, 1, 520}}) {
                int samples = shape[0], width = shape[2], rows = samples * shape[1];
                int[] perSample = {samples, width};
                Tensor x = uniform(scope, random, 3, shape), weight = random(scope, random, width);
                Tensor scale = random(scope, random, perSample), shift = random(scope, random, perSample);
                Tensor dOut = random(scope, random, shape);
                try (MemoryScope stats = new MemoryScope("stats")) {
                    Tensor mean = stats.zeros(rows), rstd = stats.zeros(rows);
                    cpu.layerNormModulate(x, weight, shift, scale, 1e-6f, stats.zeros(shape), mean, rstd);
                    Tensor dWeight = random(stats, random, width);
                    compare("layerNormModulateBackward " + samples + "x" + shape[1] + "x" + width,
                            new Tensor[] {dOut, x, weight, scale, mean, rstd, dWeight},
                            new int[][] {shape, perSample, perSample},
                            t -> cpu.layerNormModulateBackward(t[0], t[1], t[2], t[3], t[4], t[5], t[7], t[6], t[8],
                                    t[9]),
                            t -> cuda.layerNormModulateBackward(t[0], t[1], t[2], t[3], t[4], t[5], t[7], t[6], t[8],
                                    t[9]));
                    compare("layerNormModulateBackward frozen weight " + samples + "x" + width,
                            new Tensor[] {dOut, x, weight, scale, mean, rstd},
                            new int[][] {shape, perSample, perSample},
                            t -> cpu.layerNormModulateBackward(t[0], t[1], t[2], t[3], t[4], t[5], t[6], null, t[7],
                                    t[8]),
                            t -> cuda.layerNormModulateBackward(t[0], t[1], t[2], t[3], t[4], t[5], t[6], null, t[7],
                                    t[8]));
                }
            }
        }
    }

    @Test
    void theWorkspaceDependsOnTheShapeAlone() {
        assertEquals(0, workspaceFloats(1, 520), "one chunk needs no partials");
        assertEquals(0, workspaceFloats(0, 33));
        long floats = workspaceFloats(5000, 33);
        assertTrue(floats > 33 && floats % 33 == 0, "5000 rows take several chunks: " + floats);
        // 16384 x 512 (a bias gradient of a 64-sample step): 16 column tiles x 64 chunks of 256 rows
        assertEquals(64L * 512, workspaceFloats(16384, 512));
        // 65536 x 2048: 64 tiles x 64 chunks of 1024 rows (each thread's chain capped at 128 rows)
        assertEquals(64L * 2048, workspaceFloats(65536, 2048));
        assertEquals(CudaRuntime.ERROR_INVALID_ARGUMENT, workspaceStatus(-1, 4));
        String message = CudaRuntime.describe(CudaRuntime.ERROR_INVALID_ARGUMENT);
        assertTrue(message.contains("mdt_gemm_sum_rows_workspace_floats"), message);
    }

    @Test
    void aWorkspaceTooSmallIsAClearErrorAndWritesNothing() {
        int rows = 5000, columns = 33;
        long needed = workspaceFloats(rows, columns);
        MemorySegment none = MemorySegment.NULL;
        try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
            Random random = new Random(15);
            Tensor x = cuda.upload(random(host, random, rows, columns), device);
            Tensor out = cuda.upload(TestData.poisoned(host, columns), device);
            Tensor small = device.zeros((int) needed - 1);
            int status = GemmBindings.mdt_gemm_sum_rows(none, x.segment(), out.segment(), rows, columns, 0,
                    small.segment(), needed - 1);
            assertEquals(CudaRuntime.ERROR_INVALID_ARGUMENT, status);
            String message = CudaRuntime.describe(status);
            assertTrue(message.contains("mdt_gemm_sum_rows") && message.contains("must hold " + needed + " floats"),
                    message);
            assertEquals(CudaRuntime.ERROR_INVALID_ARGUMENT, GemmBindings.mdt_gemm_sum_rows(none, x.segment(),
                    out.segment(), rows, columns, 0, none, needed));
            // the LayerNorm backward refuses before it launches anything: dx keeps its poison
            Tensor stats = cuda.upload(TestData.uniform(host, random, rows), device);
            Tensor dx = cuda.upload(TestData.poisoned(host, rows, columns), device);
            Tensor weight = cuda.upload(TestData.uniform(host, random, columns), device);
            int norm = NormBindings.mdt_norm_layer_norm_bwd(none, x.segment(), x.segment(), weight.segment(),
                    stats.segment(), stats.segment(), dx.segment(), out.segment(), rows, columns, small.segment(),
                    needed - 1);
            assertEquals(CudaRuntime.ERROR_INVALID_ARGUMENT, norm);
            String normMessage = CudaRuntime.describe(norm);
            assertTrue(normMessage.contains("mdt_norm_layer_norm_bwd") && normMessage.contains("" + needed),
                    normMessage);
            CudaRuntime.check(RuntimeBindings.mdt_device_synchronize(), "mdt_device_synchronize");
            for (float v : cuda.download(dx, host).toFloatArray()) {
                assertTrue(Float.isNaN(v), "dx written by a refused call");
            }
            for (float v : cuda.download(out, host).toFloatArray()) {
                assertTrue(Float.isNaN(v), "out written by a refused call");
            }
        }
    }

    private static long workspaceFloats(long rows, long columns) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment result = arena.allocate(ValueLayout.JAVA_LONG);
            CudaRuntime.check(GemmBindings.mdt_gemm_sum_rows_workspace_floats(rows, columns, result), "workspace");
            return result.get(ValueLayout.JAVA_LONG, 0);
        }
    }

    private static int workspaceStatus(long rows, long columns) {
        try (Arena arena = Arena.ofConfined()) {
            return GemmBindings.mdt_gemm_sum_rows_workspace_floats(rows, columns,
                    arena.allocate(ValueLayout.JAVA_LONG));
        }
    }
}
