package io.microdit.backend.cuda;

import io.microdit.backend.cpu.CpuBackend;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

/**
 * The fixture of the tests that compare the CPU backend with a CUDA backend whose memory Java may never touch
 * ({@link CudaBackend#opaque()}: every host read or write of its tensors throws, as on a real GPU), so that code
 * above the backend is shown to move values only through the backend's copies. Both open for the test class.
 */
abstract class OpaqueCudaVersusCpu {
    static CpuBackend cpu;
    static CudaBackend cuda;

    @BeforeAll
    static void openBackends() {
        cpu = new CpuBackend(2);
        cuda = CudaBackend.opaque();
    }

    @AfterAll
    static void closeBackends() {
        cuda.close();
        cpu.close();
    }
}
