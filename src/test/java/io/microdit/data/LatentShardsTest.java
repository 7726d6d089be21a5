package io.microdit.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.io.Safetensors;
import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.testing.TestData;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class LatentShardsTest {
    @TempDir
    Path temp;

    @Test
    void readsSamplesAcrossShardsAndDtypes() throws IOException {
        Random random = new Random(4);
        try (MemoryScope scope = new MemoryScope("shards")) {
            Tensor l1 = TestData.uniform(scope, random, 3, 4, 2, 2);
            Tensor c1 = TestData.uniform(scope, random, 3, 5, 6);
            Tensor l2 = TestData.uniform(scope, random, 2, 4, 2, 2);
            Tensor c2 = TestData.uniform(scope, random, 2, 5, 6);
            Safetensors.write(temp.resolve("a.safetensors"), Map.of("latents", l1, "caption_embeddings", c1), Map.of());
            Safetensors.write(temp.resolve("b.safetensors"), Map.of("latents", l2.to(DType.BF16, scope),
                    "caption_embeddings", c2), Map.of());
            try (LatentShards shards = new LatentShards(temp)) {
                assertEquals(5, shards.size());
                assertArrayEquals(new int[] {4, 2, 2}, shards.latentShape());
                assertArrayEquals(new int[] {5, 6}, shards.captionShape());
                Tensor latents = scope.zeros(2, 4, 2, 2);
                Tensor captions = scope.zeros(2, 5, 6);
                shards.read(new int[] {4, 1}, latents, captions);
                assertArrayEquals(l2.rows(1, 1).to(DType.BF16, scope).to(DType.F32, scope).toFloatArray(),
                        latents.rows(0, 1).toFloatArray());
                assertArrayEquals(c1.rows(1, 1).toFloatArray(), captions.rows(1, 1).toFloatArray());
            }
        }
    }

    @Test
    void badShardsAreNamed() throws IOException {
        try (MemoryScope scope = new MemoryScope("bad")) {
            Path file = temp.resolve("x.safetensors");
            Safetensors.write(file, Map.of("latents", scope.zeros(2, 1, 2, 2)), Map.of());
            IOException e = assertThrows(IOException.class, () -> new LatentShards(file));
            assertTrue(e.getMessage().contains("x.safetensors") && e.getMessage().contains("caption_embeddings"),
                    e.getMessage());
            Safetensors.write(file, Map.of("latents", scope.zeros(2, 1, 2, 2), "caption_embeddings",
                    scope.zeros(3, 4, 5)), Map.of());
            e = assertThrows(IOException.class, () -> new LatentShards(file));
            assertTrue(e.getMessage().contains("same N"), e.getMessage());
            e = assertThrows(IOException.class, () -> new LatentShards(temp.resolve("empty")));
            assertTrue(e.getMessage().contains("no latent shards"), e.getMessage());
        }
    }
}
