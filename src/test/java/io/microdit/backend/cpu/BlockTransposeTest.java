package io.microdit.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.microdit.testing.TestData;
import java.util.Random;
import org.junit.jupiter.api.Test;

class BlockTransposeTest {
    /** Random blocks at offsets and strides inside larger arrays: every element moved, scaled, nothing else touched. */
    @Test
    void transposesAndScalesOneBlockInPlaceOfTheScatter() {
        assumeTrue(BlockTranspose.AVAILABLE, "needs 16-lane float vectors");
        Random random = new Random(16);
        for (int trial = 0; trial < 20; trial++) {
            int stride = 16 + random.nextInt(40), targetStride = 16 + random.nextInt(40);
            int offset = random.nextInt(30), targetOffset = random.nextInt(30);
            float scale = trial % 2 == 0 ? 1f : 0.17677669f;
            float[] source = TestData.uniform(random, offset + 16 * stride + 16);
            float[] target = TestData.uniform(random, targetOffset + 16 * targetStride + 16);
            float[] before = target.clone();
            BlockTranspose.transpose(source, offset, stride, target, targetOffset, targetStride, scale);
            float[] expected = before.clone();
            for (int r = 0; r < 16; r++) {
                for (int c = 0; c < 16; c++) {
                    expected[targetOffset + c * targetStride + r] = scale * source[offset + r * stride + c];
                }
            }
            for (int i = 0; i < target.length; i++) {
                assertEquals(Float.floatToRawIntBits(expected[i]), Float.floatToRawIntBits(target[i]),
                        "trial " + trial + ", element " + i);
            }
        }
    }
}
