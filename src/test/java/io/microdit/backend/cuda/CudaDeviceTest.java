package io.microdit.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.microdit.random.Philox;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** On a real GPU (skipped without one): the CUDA build is loaded, reports its device and runs kernels. */
@Tag("gpu")
class CudaDeviceTest {

    @Test
    void realDeviceRunsTheKernels() {
        assumeTrue(!CudaRuntime.isEmulator() && CudaRuntime.deviceCount() > 0,
                "no CUDA device: " + CudaRuntime.libraryPath() + " is loaded");
        assertTrue(CudaRuntime.smCount(0) > 0);
        assertTrue(CudaRuntime.memory(0)[1] > 0);
        try (CudaBackend cuda = new CudaBackend()) {
            try (MemoryScope host = new MemoryScope("host"); MemoryScope device = cuda.scope("device")) {
                int n = 1 << 20;
                Tensor out = cuda.upload(TestData.poisoned(host, n), device);
                cuda.uniform(7, 1, 5, out);
                float[] expected = new float[n];
                Philox.fillUniform(7, 1, 5, expected);
                assertArrayEquals(expected, cuda.download(out, host).toFloatArray());
                assertEquals((double) n, cuda.sumOfSquares(cuda.upload(host.zeros(n).fill(1f), device)));
            }
        }
    }
}
