package io.microdit.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * CpuGemm against a direct float64 reference: every transpose combination, odd sizes and sizes around the
 * register tile ({@link GemmKernel#ROWS} × {@link GemmKernel#COLUMNS}) and the cache blocks
 * ({@link CpuGemm#BLOCK_DEPTH}, {@link CpuGemm#BLOCK_COLUMNS}), batches and shared operands, bias, accumulate and
 * K = 0, on one thread and two (which must agree bit for bit).
 */
class CpuGemmTest {
    private static final CpuBackend ONE_THREAD = new CpuBackend(1);
    private static final CpuBackend TWO_THREADS = new CpuBackend(2);

    @AfterAll
    static void close() {
        ONE_THREAD.close();
        TWO_THREADS.close();
    }

    /** The operands and expected result of one product, in float64. */
    private record Case(int batchA, int batchB, int m, int n, int k, boolean transposeA, boolean transposeB,
                        float[] a, float[] b, float[] bias, float[] previous) {
        int batch() {
            return Math.max(batchA, batchB);
        }

        float a(int batchIndex, int i, int p) {
            long base = batchA == 1 ? 0 : (long) batchIndex * m * k;
            return a[(int) (base + (transposeA ? (long) p * m + i : (long) i * k + p))];
        }

        float b(int batchIndex, int p, int j) {
            long base = batchB == 1 ? 0 : (long) batchIndex * k * n;
            return b[(int) (base + (transposeB ? (long) j * k + p : (long) p * n + j))];
        }
    }

    private static Case randomCase(Random random, int batchA, int batchB, int m, int n, int k, boolean transposeA,
                                   boolean transposeB, boolean bias, boolean accumulate) {
        int batch = Math.max(batchA, batchB);
        return new Case(batchA, batchB, m, n, k, transposeA, transposeB, TestData.uniform(random, batchA * m * k),
                TestData.uniform(random, batchB * k * n), bias ? TestData.uniform(random, n) : null,
                accumulate ? TestData.uniform(random, batch * m * n) : null);
    }

    private static int[] shape(int batch, boolean batched, int rows, int columns) {
        return batched ? new int[] {batch, rows, columns} : new int[] {rows, columns};
    }

    /** Runs the case on {@code backend} (output NaN-poisoned unless accumulating) and returns out. */
    private static float[] run(CpuBackend backend, Case c, boolean batchedA, boolean batchedB) {
        try (MemoryScope scope = new MemoryScope("gemm-test")) {
            int batch = c.batch();
            Tensor a = Tensor.of(scope, c.a(), c.transposeA() ? shape(c.batchA(), batchedA, c.k(), c.m())
                    : shape(c.batchA(), batchedA, c.m(), c.k()));
            Tensor b = Tensor.of(scope, c.b(), c.transposeB() ? shape(c.batchB(), batchedB, c.n(), c.k())
                    : shape(c.batchB(), batchedB, c.k(), c.n()));
            Tensor bias = c.bias() == null ? null : Tensor.of(scope, c.bias(), c.n());
            int[] outShape = batchedA || batchedB ? new int[] {batch, c.m(), c.n()} : new int[] {c.m(), c.n()};
            Tensor out = c.previous() == null ? TestData.poisoned(scope, outShape)
                    : Tensor.of(scope, c.previous(), outShape);
            backend.matmul(a, c.transposeA(), b, c.transposeB(), bias, out, c.previous() != null);
            return out.toFloatArray();
        }
    }

    /**
     * Checks every element against the float64 sum. Float accumulation errs by at most a few ulps per term of
     * the sum of magnitudes, so the tolerance is relative to that sum and grows with K; a skipped or misplaced
     * term is off by a whole term, far above it.
     */
    private static void assertMatchesReference(Case c, float[] actual) {
        int m = c.m(), n = c.n(), k = c.k();
        double tolerance = 1e-5 * Math.max(1.0, k / 64.0);
        assertEquals((long) c.batch() * m * n, actual.length);
        for (int batchIndex = 0; batchIndex < c.batch(); batchIndex++) {
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < n; j++) {
                    double sum = 0, magnitude = 0;
                    for (int p = 0; p < k; p++) {
                        double term = (double) c.a(batchIndex, i, p) * c.b(batchIndex, p, j);
                        sum += term;
                        magnitude += Math.abs(term);
                    }
                    int index = (batchIndex * m + i) * n + j;
                    if (c.bias() != null) {
                        sum += c.bias()[j];
                        magnitude += Math.abs(c.bias()[j]);
                    }
                    if (c.previous() != null) {
                        sum += c.previous()[index];
                        magnitude += Math.abs(c.previous()[index]);
                    }
                    double error = Math.abs(actual[index] - sum);
                    if (!(error <= tolerance * magnitude + 1e-30)) {
                        fail("out[" + batchIndex + ", " + i + ", " + j + "] = " + actual[index] + ", expected " + sum
                                + " (error " + error + ", tolerance " + tolerance * magnitude + ") for " + describe(c));
                    }
                }
            }
        }
    }

    private static String describe(Case c) {
        return "batch " + c.batchA() + "/" + c.batchB() + ", M=" + c.m() + " N=" + c.n() + " K=" + c.k()
                + (c.transposeA() ? ", Aᵀ" : "") + (c.transposeB() ? ", Bᵀ" : "") + (c.bias() != null ? ", bias" : "")
                + (c.previous() != null ? ", accumulate" : "");
    }

    /** Runs on one and two threads: both must match the reference and each other exactly. */
    private static void check(Case c, boolean batchedA, boolean batchedB) {
        float[] one = run(ONE_THREAD, c, batchedA, batchedB);
        assertMatchesReference(c, one);
        assertArrayEquals(one, run(TWO_THREADS, c, batchedA, batchedB), () -> "1 vs 2 threads: " + describe(c));
    }

    static Stream<Arguments> sizes() {
        int rows = GemmKernel.ROWS, columns = GemmKernel.COLUMNS;
        int[][] shapes = {
            {1, 1, 1}, {3, 3, 3}, {1, 17, 33}, {17, 1, 65}, {33, 65, 17}, {65, 33, 127}, {127, 17, 3},
            {rows - 1, columns + 1, 7}, {rows + 1, columns - 1, 19}, {2 * rows + 1, 2 * columns + 3, 65},
            {rows, columns, CpuGemm.BLOCK_DEPTH - 1}, {rows + 3, columns + 5, CpuGemm.BLOCK_DEPTH + 1},
            {5, CpuGemm.BLOCK_COLUMNS + 7, 33}, {37, CpuGemm.BLOCK_COLUMNS + columns + 1, 2 * CpuGemm.BLOCK_DEPTH + 3},
            // Depth a multiple of 16: Bᵀ's panels are transposed by 16 × 16 register blocks (the last panel part zero).
            {rows + 2, 3 * columns - 5, 48},
            // A weight gradient's proportions: few rows, deep, so the threads split the 5 column panels 2 and 3.
            {4 * rows + 1, 5 * columns - 3, CpuGemm.BLOCK_DEPTH + 9},
        };
        Stream.Builder<Arguments> out = Stream.builder();
        for (int[] s : shapes) {
            for (boolean transposeA : new boolean[] {false, true}) {
                for (boolean transposeB : new boolean[] {false, true}) {
                    out.add(Arguments.of(s[0], s[1], s[2], transposeA, transposeB));
                }
            }
        }
        return out.build();
    }

    @ParameterizedTest(name = "M={0} N={1} K={2} transposeA={3} transposeB={4}")
    @MethodSource("sizes")
    void everyTransposeCombinationAtOddAndBlockEdgeSizes(int m, int n, int k, boolean transposeA,
                                                        boolean transposeB) {
        Random random = new Random(m * 1_000_003L + n * 1009L + k);
        check(randomCase(random, 1, 1, m, n, k, transposeA, transposeB, false, false), false, false);
    }

    @ParameterizedTest(name = "M={0} N={1} K={2} transposeA={3} transposeB={4}")
    @CsvSource({"1,1,1,false,false", "17,33,65,false,true", "127,65,33,true,false", "13,97,600,true,true",
                "40,40,40,false,false"})
    void biasAndAccumulate(int m, int n, int k, boolean transposeA, boolean transposeB) {
        Random random = new Random(7 + m);
        check(randomCase(random, 1, 1, m, n, k, transposeA, transposeB, true, false), false, false);
        check(randomCase(random, 1, 1, m, n, k, transposeA, transposeB, false, true), false, false);
        check(randomCase(random, 1, 1, m, n, k, transposeA, transposeB, true, true), false, false);
    }

    @ParameterizedTest(name = "transposeA={0} transposeB={1}")
    @CsvSource({"false,false", "false,true", "true,false", "true,true"})
    void batchedAndSharedOperands(boolean transposeA, boolean transposeB) {
        Random random = new Random(transposeA ? 3 : 5);
        int batch = 3;
        // Both batched, at a size that takes the packed path, and a tiny one that takes the direct path.
        check(randomCase(random, batch, batch, 29, 45, 70, transposeA, transposeB, true, false), true, true);
        check(randomCase(random, batch, batch, 2, 3, 5, transposeA, transposeB, false, true), true, true);
        // A batched, B shared (folded into M when A is not transposed), and A shared, B batched.
        check(randomCase(random, batch, 1, 31, 37, 41, transposeA, transposeB, true, false), true, false);
        check(randomCase(random, batch, 1, 31, 37, 41, transposeA, transposeB, false, true), true, false);
        check(randomCase(random, 1, batch, 31, 37, 41, transposeA, transposeB, true, false), false, true);
        check(randomCase(random, 1, batch, 31, 37, 41, transposeA, transposeB, false, true), false, true);
    }

    @Test
    void largeBatchSplitsOverThreadsAndBlocks() {
        Random random = new Random(99);
        check(randomCase(random, 4, 1, 50, 70, 90, false, true, true, false), true, false);
        check(randomCase(random, 5, 5, 26, 34, 530, true, false, false, true), true, true);
    }

    @Test
    void emptyInnerDimensionGivesBiasOrZeroPlusPrevious() {
        Random random = new Random(1);
        for (int m : new int[] {1, 5, 40}) {
            check(randomCase(random, 1, 1, m, 33, 0, false, false, false, false), false, false);
            check(randomCase(random, 1, 1, m, 33, 0, true, true, true, false), false, false);
            check(randomCase(random, 1, 1, m, 33, 0, false, true, true, true), false, false);
        }
    }

    @Test
    void countsTwoFlopsPerMultiplyAdd() {
        try (CpuBackend backend = new CpuBackend(1); MemoryScope scope = new MemoryScope("gemm-flops")) {
            Random random = new Random(2);
            Tensor a = TestData.uniform(scope, random, 3, 5, 7);
            Tensor b = TestData.uniform(scope, random, 7, 11);
            backend.matmul(a, false, b, false, null, scope.zeros(3, 5, 11), false);
            assertEquals(2L * 3 * 5 * 11 * 7, backend.flops().of("matmul"));
        }
    }

    @Test
    void badShapesThrowNamingTheArgument() {
        try (MemoryScope scope = new MemoryScope("gemm-bad")) {
            Tensor a = scope.zeros(4, 5), b = scope.zeros(5, 6), out = scope.zeros(4, 6);
            assertBad("inner dimensions", () -> ONE_THREAD.matmul(a, false, scope.zeros(4, 6), false, null, out,
                    false));
            assertBad("out F32[4, 7]", () -> ONE_THREAD.matmul(a, false, b, false, null, scope.zeros(4, 7), false));
            assertBad("bias must have shape [6]", () -> ONE_THREAD.matmul(a, false, b, false, scope.zeros(5), out, false));
            assertBad("a F32[5] must have rank 2", () -> ONE_THREAD.matmul(scope.zeros(5), false, b, false, null, out, false));
            assertBad("b is null", () -> ONE_THREAD.matmul(a, false, null, false, null, out, false));
            assertBad("batch of a F32[2, 4, 5]", () -> ONE_THREAD.matmul(scope.zeros(2, 4, 5), false, scope.zeros(3, 5, 6), false,
                    null, scope.zeros(3, 4, 6), false));
            assertBad("x F32[4, 5]", () -> ONE_THREAD.sumRows(scope.zeros(4, 5), scope.zeros(3), false));
        }
    }

    private static void assertBad(String argument, Runnable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call::run);
        assertTrue(e.getMessage().startsWith("matmul: ") || e.getMessage().startsWith("sumRows: "), e.getMessage());
        assertTrue(e.getMessage().contains(argument), () -> "'" + e.getMessage() + "' should name " + argument);
    }

    @ParameterizedTest(name = "rows={0} columns={1} accumulate={2}")
    @CsvSource({"1,1,false", "3,17,false", "65,33,true", "127,100,false", "9,1000,true"})
    void sumRowsMatchesReference(int rows, int columns, boolean accumulate) {
        Random random = new Random(rows * 31L + columns);
        float[] x = TestData.uniform(random, rows * columns);
        float[] previous = TestData.uniform(random, columns);
        for (CpuBackend backend : new CpuBackend[] {ONE_THREAD, TWO_THREADS}) {
            try (MemoryScope scope = new MemoryScope("sum-rows")) {
                Tensor out = accumulate ? Tensor.of(scope, previous, columns) : TestData.poisoned(scope, columns);
                backend.sumRows(Tensor.of(scope, x, rows, columns), out, accumulate);
                double[] expected = new double[columns];
                for (int c = 0; c < columns; c++) {
                    expected[c] = accumulate ? previous[c] : 0;
                    for (int r = 0; r < rows; r++) {
                        expected[c] += x[r * columns + c];
                    }
                }
                double error = TestData.maxRelativeError(out.toFloatArray(), expected);
                assertTrue(error < 1e-5 * Math.max(1, rows / 16.0), "sumRows error " + error);
            }
        }
    }

    /**
     * The row-major kernel (A's rows staged as they are) and the packed-panel kernel (a transposed A's layout)
     * must add the same products in the same order: a row-major and a transposed A holding the same matrix give
     * the same bits, at a full depth block and at a short one.
     */
    @ParameterizedTest(name = "depth={0}")
    @CsvSource({"1", "37", "512"})
    void rowMajorAndPackedKernelsAgreeBitForBit(int depth) {
        Random random = new Random(depth * 977L);
        float[] rows = new float[GemmKernel.ROWS * GemmKernel.STAGED_ROW];
        float[] panel = new float[depth * GemmKernel.ROWS];
        for (int r = 0; r < GemmKernel.ROWS; r++) {
            for (int p = 0; p < depth; p++) {
                float value = (float) random.nextGaussian();
                rows[r * GemmKernel.STAGED_ROW + p] = value;
                panel[p * GemmKernel.ROWS + r] = value;
            }
        }
        float[] b = TestData.uniform(random, depth * GemmKernel.COLUMNS);
        float[] fromRows = new float[GemmKernel.ROWS * GemmKernel.COLUMNS];
        float[] fromPanel = new float[GemmKernel.ROWS * GemmKernel.COLUMNS];
        GemmKernel.multiplyRows(rows, b, 0, depth, fromRows, null, 0, 0);
        GemmKernel.multiply(panel, 0, b, 0, depth, fromPanel);
        for (int i = 0; i < fromRows.length; i++) {
            assertEquals(Float.floatToRawIntBits(fromPanel[i]), Float.floatToRawIntBits(fromRows[i]),
                    "tile[" + i + "]");
        }
        // Stored by the kernel into C itself (rows wider than the tile, from an offset): the tile's bits where the
        // tile goes, and nothing written anywhere else.
        int stride = GemmKernel.COLUMNS + 24, firstColumn = 8;
        float[] before = TestData.uniform(random, (GemmKernel.ROWS + 1) * stride);
        float[] after;
        try (MemoryScope scope = new MemoryScope("kernel-store-test")) {
            Tensor c = Tensor.zeros(scope, DType.F32, GemmKernel.ROWS + 1, stride).copyFrom(before);
            GemmKernel.multiplyRows(rows, b, 0, depth, null, c.segment(),
                    ((long) stride + firstColumn) * Float.BYTES, (long) stride * Float.BYTES);
            after = c.toFloatArray();
        }
        for (int i = 0; i < after.length; i++) {
            int row = i / stride - 1, column = i % stride - firstColumn;
            boolean inTile = row >= 0 && row < GemmKernel.ROWS && column >= 0 && column < GemmKernel.COLUMNS;
            float expected = inTile ? fromRows[row * GemmKernel.COLUMNS + column] : before[i];
            assertEquals(Float.floatToRawIntBits(expected), Float.floatToRawIntBits(after[i]), "C[" + i + "]");
        }
    }

    @Test
    void describesTheVectorShapeInUse() {
        String description = CpuGemm.vectorDescription();
        assertTrue(description.contains(GemmKernel.SPECIES.vectorBitSize() + "-bit"), description);
        assertTrue(description.contains("(" + GemmKernel.LANES + " lanes)"), description);
    }
}
