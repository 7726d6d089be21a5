package io.microdit.distributed;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class SingleProcessCommunicatorTest {

    @Test
    void shardsCoverEveryElementOnceWithTheFirstOnesLarger() {
        for (long n : new long[] {0, 1, 2, 3, 7, 64, 1001}) {
            for (int size = 1; size <= 5; size++) {
                long next = 0;
                for (int r = 0; r < size; r++) {
                    assertEquals(next, Communicator.shardStart(n, size, r), "start of shard " + r + " of " + n);
                    long count = Communicator.shardSize(n, size, r);
                    assertEquals(n / size + (r < n % size ? 1 : 0), count);
                    next += count;
                }
                assertEquals(n, next);
            }
        }
    }

    @Test
    void aWorldOfOneKeepsSumsAndCopiesShards() {
        SplittableRandom random = new SplittableRandom(13);
        try (Communicator comm = new SingleProcessCommunicator(); MemoryScope scope = new MemoryScope("single")) {
            assertEquals(0, comm.rank());
            assertEquals(1, comm.size());
            float[] values = new float[37];
            for (int i = 0; i < values.length; i++) {
                values[i] = (float) random.nextGaussian();
            }
            Tensor t = Tensor.of(scope, values, 37);
            comm.allReduceSum(t);
            comm.broadcast(t, 0);
            assertArrayEquals(values, t.toFloatArray());
            Tensor shard = Tensor.zeros(scope, DType.F32, 37);
            comm.reduceScatterSum(t, shard);
            assertArrayEquals(values, shard.toFloatArray());
            Tensor gathered = Tensor.zeros(scope, DType.F32, 37);
            comm.allGather(shard, gathered);
            assertArrayEquals(values, gathered.toFloatArray());
            assertThrows(IllegalArgumentException.class, () -> comm.broadcast(t, 1));
            assertThrows(IllegalArgumentException.class, () -> comm.reduceScatterSum(t, Tensor.zeros(scope,
                    DType.F32, 36)));
            assertThrows(IllegalArgumentException.class, () -> comm.allReduceSum(Tensor.zeros(scope, DType.BF16, 4)));
        }
    }
}
