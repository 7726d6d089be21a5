package io.microdit.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.io.mds.MdsWriter;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import io.microdit.train.TrainingConfig;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class MdsLatentsTest {
    @TempDir
    Path temp;

    /** Random float16 values, as the bytes MDS stores and the floats they stand for. */
    record Halves(byte[] bytes, float[] values) {
        static Halves random(Random random, int count) {
            byte[] b = new byte[2 * count];
            float[] v = new float[count];
            for (int i = 0; i < count; i++) {
                short h = Float.floatToFloat16((float) random.nextGaussian());
                b[2 * i] = (byte) h;
                b[2 * i + 1] = (byte) (h >> 8);
                v[i] = Float.float16ToFloat(h);
            }
            return new Halves(b, v);
        }
    }

    record Written(List<Halves> latents, List<Halves> captions) {
    }

    /** A folder as the official precompute script writes it: latents at two sizes, caption latents, the caption. */
    static Written write(Path folder, int samples, int latentSize, int captionLength, int captionChannels,
                         String compression, Random random) throws IOException {
        List<Halves> latents = new ArrayList<>();
        List<Halves> captions = new ArrayList<>();
        try (MdsWriter writer = new MdsWriter(folder, Map.of("caption", "str", "caption_latents", "bytes",
                "latents_" + latentSize * 8, "bytes", "latents_" + latentSize * 16, "bytes"), compression,
                List.of("sha1"), 40_000)) {
            for (int i = 0; i < samples; i++) {
                Halves l = Halves.random(random, 4 * latentSize * latentSize);
                Halves c = Halves.random(random, captionLength * captionChannels);
                writer.write(Map.of("caption", "a photo number " + i, "caption_latents", c.bytes(),
                        "latents_" + latentSize * 8, l.bytes(), "latents_" + latentSize * 16,
                        Halves.random(random, 16 * latentSize * latentSize).bytes()));
                latents.add(l);
                captions.add(c);
            }
        }
        return new Written(latents, captions);
    }

    @Test
    void readsTheResolutionsLatentsAndTheCaptionLatentsOfEveryStream() throws IOException {
        Random random = new Random(21);
        Written a = write(temp.resolve("a"), 7, 32, 77, 64, null, random);
        Written b = write(temp.resolve("b"), 4, 32, 77, 64, "zstd", random);
        MdsLatents.Settings settings = MdsLatents.Settings.fromJson(io.microdit.io.Json.parse(
                "{\"streams\": [{\"local\": \"" + temp.resolve("a") + "\"}, {\"local\": \"" + temp.resolve("b")
                        + "\", \"repeat\": 2}], \"image_size\": 256}"));
        try (MdsLatents data = new MdsLatents(settings, 4, 32, 77, 64, 3);
             MemoryScope scope = new MemoryScope("mds")) {
            assertEquals(7 + 8, data.size());
            assertArrayEquals(new int[] {4, 32, 32}, data.latentShape());
            assertArrayEquals(new int[] {77, 64}, data.captionShape());
            int[] indices = {0, 6, 7, 14};
            Tensor latents = scope.zeros(4, 4, 32, 32);
            Tensor captions = scope.zeros(4, 77, 64);
            data.read(indices, latents, captions);
            // stream a's samples, then stream b's twice
            List<Halves> expectedLatents = List.of(a.latents().get(0), a.latents().get(6), b.latents().get(0),
                    b.latents().get(3));
            List<Halves> expectedCaptions = List.of(a.captions().get(0), a.captions().get(6), b.captions().get(0),
                    b.captions().get(3));
            for (int k = 0; k < 4; k++) {
                assertArrayEquals(expectedLatents.get(k).values(), latents.rows(k, 1).toFloatArray(), "sample " + k);
                assertArrayEquals(expectedCaptions.get(k).values(), captions.rows(k, 1).toFloatArray(), "sample " + k);
            }
            assertEquals(List.of(), data.uncheckedHashes());
        } catch (io.microdit.io.JsonException e) {
            throw new AssertionError(e);
        }
    }

    @Test
    void samplesOfTheWrongSizeOrMissingColumnsAreNamed() throws IOException {
        Random random = new Random(2);
        write(temp.resolve("a"), 3, 8, 5, 16, null, random);
        MdsLatents.Settings settings = new MdsLatents.Settings(List.of(new MdsLatents.Stream(
                temp.resolve("a").toString(), null, null, null)), null, null);
        IOException e = assertThrows(IOException.class, () -> new MdsLatents(settings, 4, 8, 6, 16, 0));
        assertTrue(e.getMessage().contains("shard.00000.mds: sample 0") && e.getMessage().contains("caption_latents"),
                e.getMessage());
        e = assertThrows(IOException.class, () -> new MdsLatents(settings, 4, 4, 5, 16, 0));
        assertTrue(e.getMessage().contains("no column 'latents_32'") && e.getMessage().contains("latents_64"),
                e.getMessage());
        e = assertThrows(IOException.class, () -> new MdsLatents(new MdsLatents.Settings(settings.streams(), 512,
                null), 4, 8, 5, 16, 0));
        assertTrue(e.getMessage().contains("image_size 512"), e.getMessage());
    }

    @Test
    void theTrainingConfigCarriesTheMdsBlock() throws IOException {
        TrainingConfig config = TrainingConfig.fromJson("""
                {"data": "mds", "caption_length": 77, "mds": {"streams": [{"local": "/data/cc12m"},
                 {"local": "/data/jdb", "proportion": 2}], "epoch_size": 1000}}""");
        // every stream has a proportion or none has: checked when the streams are opened
        assertEquals(List.of(new MdsLatents.Stream("/data/cc12m", null, null, null),
                new MdsLatents.Stream("/data/jdb", 2.0, null, null)), config.mds().streams());
        assertEquals(1000L, config.mds().epochSize());
        assertEquals(config, TrainingConfig.fromJson(config.toJson()));
        IOException e = assertThrows(IOException.class, () -> TrainingConfig.fromJson("{\"data\": \"mds\"}"));
        assertTrue(e.getMessage().contains("'mds'"), e.getMessage());
        e = assertThrows(IOException.class, () -> TrainingConfig.fromJson(
                "{\"data\": \"mds\", \"mds\": {\"streams\": [{\"local\": \"x\", \"weight\": 1}]}}"));
        assertTrue(e.getMessage().contains("mds.streams[0]") && e.getMessage().contains("weight"), e.getMessage());
        e = assertThrows(IOException.class, () -> TrainingConfig.fromJson(
                "{\"data\": \"mds\", \"mds\": {\"streams\": [{\"local\": \"x\", \"repeat\": 2, \"choose\": 3}]}}"));
        assertTrue(e.getMessage().contains("one of proportion, repeat and choose"), e.getMessage());
        e = assertThrows(IOException.class, () -> TrainingConfig.fromJson(
                "{\"mds\": {\"streams\": [{\"local\": \"x\"}]}}"));
        assertTrue(e.getMessage().contains("only with"), e.getMessage());
    }
}
