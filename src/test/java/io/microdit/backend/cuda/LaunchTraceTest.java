package io.microdit.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The launch trace: launches attributed to the op that made them with their exact shapes and the op's operand
 * bytes; a dry run records without running and sizes grid-stride grids as a GPU build does.
 */
@Tag("emu")
class LaunchTraceTest {
    private static CudaBackend cuda;

    @BeforeAll
    static void open() {
        cuda = new CudaBackend();
    }

    @AfterAll
    static void close() {
        cuda.close();
    }

    @Test
    void aColumnSliceCountsTheSlicesBytesOfTheWideMatrix() {
        Random random = new Random(4);
        try (MemoryScope host = new MemoryScope("trace-host"); MemoryScope scope = cuda.scope("trace")) {
            Tensor wide = cuda.upload(TestData.uniform(host, random, 37, 6 * 24), scope);
            Tensor slice = scope.zeros(37, 24), dWide = scope.zeros(37, 6 * 24);
            List<LaunchTrace.OpCall> calls;
            try (LaunchTrace trace = cuda.traceLaunches(false)) {
                cuda.sliceColumns(wide, 2 * 24, slice);
                cuda.sliceColumnsBackward(slice, 2 * 24, dWide);
                calls = trace.calls();
            }
            assertEquals(List.of("sliceColumns", "sliceColumnsBackward"),
                    calls.stream().map(LaunchTrace.OpCall::op).toList());
            // The kernels read (forward) or add into (backward) the slice's 24 of 144 columns only.
            assertEquals(2 * slice.byteSize(), calls.get(0).operandBytes());
            assertEquals(2 * slice.byteSize(), calls.get(1).operandBytes());
        }
    }

    @Test
    void recordsEachLaunchWithItsShapeAndTheOpsOperandBytes() {
        Random random = new Random(3);
        try (MemoryScope host = new MemoryScope("trace-host"); MemoryScope scope = cuda.scope("trace")) {
            Tensor a = cuda.upload(TestData.uniform(host, random, 300, 40), scope);
            Tensor b = cuda.upload(TestData.uniform(host, random, 40, 130), scope);
            Tensor aBf16 = scope.zeros(DType.BF16, 300, 40);
            Tensor bBf16 = scope.zeros(DType.BF16, 40, 130);
            Tensor out = scope.zeros(300, 130);
            List<LaunchTrace.OpCall> calls;
            try (LaunchTrace trace = cuda.traceLaunches(false)) {
                cuda.convert(a, aBf16);
                cuda.convert(b, bBf16);
                cuda.matmul(aBf16, false, bBf16, false, null, out, false);
                calls = trace.calls();
            }
            assertEquals(List.of("convert", "convert", "matmul"), calls.stream().map(LaunchTrace.OpCall::op).toList());
            LaunchTrace.OpCall matmul = calls.get(2);
            assertEquals(aBf16.byteSize() + bBf16.byteSize() + out.byteSize(), matmul.operandBytes());
            assertEquals(1, matmul.launches().size());
            LaunchTrace.Launch gemm = matmul.launches().get(0);
            assertEquals("gemm_bf16", gemm.kernel());
            // 128×128 tiles: ⌈130/128⌉ column tiles on x, ⌈300/128⌉ row tiles on y; 256 threads.
            assertEquals(List.of(2L, 3L, 1L, 256L, 1L, 1L), List.of(gemm.gridX(), gemm.gridY(), gemm.gridZ(),
                    gemm.blockX(), gemm.blockY(), gemm.blockZ()));
            assertEquals(6, gemm.blocks());
            // The trace ran the kernels: the product is there.
            float[] product = cuda.read(out);
            assertTrue(Float.isFinite(product[0]) && product[0] != 0f);
        }
    }

    @Test
    void aDryRunRecordsGpuGridsWithoutRunningAnything() {
        int n = 1 << 20;
        try (MemoryScope scope = cuda.scope("dry")) {
            Tensor x = scope.zeros(n);
            cuda.fill(x, 2f);
            Tensor out = scope.zeros(n);
            LaunchTrace.Launch live;
            try (LaunchTrace trace = cuda.traceLaunches(false)) {
                cuda.scale(x, 3f, out);
                live = trace.launches().get(0);
            }
            assertEquals(6f, cuda.read(out)[n - 1]);
            // The emulator caps grid-stride grids at a few blocks; a GPU build launches one block per 256 elements.
            assertTrue(live.blocks() <= 4, "emulated grid " + live.blocks());
            cuda.fill(out, -1f);
            LaunchTrace.Launch dry;
            float[] hostView;
            try (LaunchTrace trace = cuda.traceLaunches(true)) {
                assertTrue(trace.dryRun());
                cuda.scale(x, 3f, out);
                cuda.copy(x, out); // a device-to-device copy, skipped too
                dry = trace.launches().get(0);
                hostView = cuda.read(x);
            }
            assertEquals("scale_kernel", dry.kernel());
            assertEquals(n / 256, dry.blocks());
            assertEquals(0f, hostView[0], "device reads in a dry run see zeros");
            assertEquals(-1f, cuda.read(out)[0], "the dry run ran no kernel and wrote no device memory");
            assertEquals(2f, cuda.read(x)[0], "after the dry run device memory reads normally again");
        }
    }

    @Test
    void oneTraceAtATime() {
        try (LaunchTrace ignored = cuda.traceLaunches(false)) {
            IllegalArgumentException error = assertThrows(IllegalArgumentException.class,
                    () -> cuda.traceLaunches(false));
            assertTrue(error.getMessage().contains("already tracing"), error.getMessage());
        }
        IllegalArgumentException end = assertThrows(IllegalArgumentException.class,
                () -> CudaRuntime.check(RuntimeBindings.mdt_trace_end(), "mdt_trace_end"));
        assertTrue(end.getMessage().contains("no trace is open"), end.getMessage());
        IllegalArgumentException badFlag = assertThrows(IllegalArgumentException.class,
                () -> CudaRuntime.check(RuntimeBindings.mdt_trace_begin(2), "mdt_trace_begin"));
        assertTrue(badFlag.getMessage().contains("dry_run must be 0 or 1"), badFlag.getMessage());
    }

    @Test
    void planFlagsLargeOpsThatLeaveSmsIdleAndBoundsTimeByTheRoofline() {
        LaunchTrace.Launch narrow = new LaunchTrace.Launch("sum_rows_kernel", 4, 1, 1, 128, 1, 1, 0);
        LaunchTrace.Launch wide = new LaunchTrace.Launch("gemm_bf16", 12, 16, 1, 256, 1, 1, 0);
        long large = LaunchPlan.LARGE_OPERAND_BYTES;
        List<LaunchTrace.OpCall> calls = List.of(
                new LaunchTrace.OpCall("sumRows", large, List.of(narrow)),
                new LaunchTrace.OpCall("sumRows", large - 1, List.of(narrow)),
                new LaunchTrace.OpCall("matmul", 3 * large, List.of(wide)));
        LaunchPlan plan = new LaunchPlan(LaunchPlan.Gpu.H100_SXM, calls, Map.of("matmul", 2_000_000_000_000L,
                "sumRows", 1000L));
        assertEquals(List.of(calls.get(0)), plan.underfilled());
        assertEquals(3, plan.launches());
        LaunchPlan.OpSummary matmul = plan.ops().get(0);
        assertEquals("matmul", matmul.op());
        assertTrue(matmul.tensorCores());
        // Compute-bound: 2 TFLOP at 989.4 TFLOP/s.
        assertEquals(2e12 / 989.4e12, matmul.rooflineSeconds(), 1e-12);
        // Memory-bound: the bytes at 3.35 TB/s.
        assertEquals((2 * large - 1) / 3.35e12, plan.ops().get(1).rooflineSeconds(), 1e-15);
        assertTrue(plan.format().contains("sumRows: 8.0 MiB, widest launch sum_rows_kernel with 4 blocks"),
                plan.format());
    }
}
