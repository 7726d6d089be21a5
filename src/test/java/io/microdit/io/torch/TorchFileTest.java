package io.microdit.io.torch;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.io.IOException;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TorchFileTest {
    @TempDir
    Path directory;

    private final Random random = new Random(17);

    private static byte[] floats(float... values) {
        ByteBuffer buffer = ByteBuffer.allocate(4 * values.length).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : values) {
            buffer.putFloat(v);
        }
        return buffer.array();
    }

    private float[] randomFloats(int n) {
        float[] values = new float[n];
        for (int i = 0; i < n; i++) {
            values[i] = (float) random.nextGaussian();
        }
        return values;
    }

    private static Map<String, byte[]> storages(Object... keysAndBytes) {
        Map<String, byte[]> out = new LinkedHashMap<>();
        for (int i = 0; i < keysAndBytes.length; i += 2) {
            out.put((String) keysAndBytes[i], (byte[]) keysAndBytes[i + 1]);
        }
        return out;
    }

    /** Opens the file expecting a refusal; the message must name the file. */
    private static String refusal(Path file) {
        TorchFileException e = assertThrows(TorchFileException.class, () -> TorchFile.open(file).close());
        assertEquals(file, e.file());
        assertTrue(e.getMessage().startsWith(file.toString()), e.getMessage());
        return e.problem();
    }

    private static void assertContains(String text, String part) {
        assertTrue(text.contains(part), "expected \"" + part + "\" in: " + text);
    }

    @Test
    void writtenStateDictReadsBackBitForBit() throws IOException {
        Path file = directory.resolve("model.pt");
        try (MemoryScope scope = new MemoryScope("test")) {
            Map<String, Tensor> tensors = new LinkedHashMap<>();
            tensors.put("blocks.0.attn.qkv.weight", Tensor.of(scope, randomFloats(15), 3, 5));
            tensors.put("x_embedder.proj.bias", Tensor.of(scope, randomFloats(7), 7).to(DType.BF16, scope));
            tensors.put("ids", Tensor.ofInts(scope, random.ints(8, -100000, 100000).toArray(), 2, 2, 2));
            tensors.put("scale", Tensor.of(scope, randomFloats(1)));
            tensors.put("empty", Tensor.zeros(scope, DType.F32, 0, 4));
            TorchFile.write(file, tensors);
            try (TorchFile torch = TorchFile.open(file)) {
                Map<?, ?> root = assertInstanceOf(Map.class, torch.root());
                assertEquals(List.copyOf(tensors.keySet()), List.copyOf(root.keySet()));
                for (Map.Entry<String, Tensor> entry : tensors.entrySet()) {
                    Tensor read = torch.load((TorchTensor) root.get(entry.getKey()), scope);
                    assertEquals(entry.getValue().describe(), read.describe(), entry.getKey());
                    assertArrayEquals(entry.getValue().segment().toArray(ValueLayout.JAVA_BYTE),
                            read.segment().toArray(ValueLayout.JAVA_BYTE), entry.getKey());
                }
            }
        }
    }

    @Test
    void writtenStorageEntriesAreAlignedTo64Bytes() throws IOException {
        Path file = directory.resolve("aligned.pt");
        try (MemoryScope scope = new MemoryScope("test")) {
            TorchFile.write(file, Map.of("a", Tensor.of(scope, randomFloats(3), 3)));
        }
        try (ZipArchive zip = ZipArchive.open(file)) {
            for (ZipArchive.Entry entry : zip.entries().values()) {
                assertEquals(0, entry.dataStart() % 64, entry.name());
            }
        }
    }

    /** The shape torch.save gives a state dict: memo, _metadata set by BUILD, half and long storages. */
    @Test
    void handBuiltStateDictWithHalfLongMemoAndMetadata() throws IOException {
        float[] weight = randomFloats(6);
        ByteBuffer halves = ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : weight) {
            halves.putShort(Float.floatToFloat16(v));
        }
        ByteBuffer longs = ByteBuffer.allocate(24).order(ByteOrder.LITTLE_ENDIAN).putLong(-5).putLong(1L << 30)
                .putLong(7);
        PickleBytes p = new PickleBytes().proto(2).orderedDict().op('q', 0).mark()
                .string("w").tensor("HalfStorage", "0", 2, 3)
                .string("steps").tensor("LongStorage", "1", 3)
                .op('u')
                .op('}').string("_metadata").orderedDict().op('q', 1).string("").op('}').string("version")
                .integer(1).op('s').op('s').op('s').op('b')
                .stop();
        Path file = PickleBytes.archive(directory.resolve("hand.pt"), p.bytes(),
                storages("0", halves.array(), "1", longs.array()), "little");
        try (TorchFile torch = TorchFile.open(file); MemoryScope scope = new MemoryScope("test")) {
            Map<?, ?> root = (Map<?, ?>) torch.root();
            Tensor w = torch.load((TorchTensor) root.get("w"), scope);
            assertEquals("F32[2, 3]", w.describe());
            for (int i = 0; i < 6; i++) {
                assertEquals(Float.float16ToFloat(Float.floatToFloat16(weight[i])), w.getFloat(i));
            }
            assertArrayEquals(new int[] {-5, 1 << 30, 7}, torch.load((TorchTensor) root.get("steps"), scope)
                    .toIntArray());
        }
    }

    /** The views of the torch.save fixture (see ConvertCommandTest for the script that made it) decode as written. */
    @Test
    void torchSaveFixtureHasItsViewsAndSharedStorage() throws IOException {
        Path file = directory.resolve("fixture.pt");
        try (var in = TorchFileTest.class.getResourceAsStream("torch-save-1.13.pt")) {
            Files.copy(in, file);
        }
        try (TorchFile torch = TorchFile.open(file)) {
            Map<?, ?> root = (Map<?, ?>) torch.root();
            TorchTensor transposed = (TorchTensor) root.get("t_embedder.mlp.2.weight");
            assertFalse(transposed.contiguous());
            assertEquals(StorageType.HALF, transposed.type());
            assertTrue(transposed.storageNumel() > transposed.numel());
            assertEquals(5, ((TorchTensor) root.get("t_embedder.mlp.2.bias")).offset());
            TorchTensor norm1 = (TorchTensor) root.get("blocks.0.norm1.weight");
            TorchTensor norm2 = (TorchTensor) root.get("blocks.0.norm2.weight");
            assertEquals(norm1.storageKey(), norm2.storageKey());
            assertEquals(norm1.numel(), norm2.offset());
            assertEquals(StorageType.BFLOAT16, ((TorchTensor) root.get("final_layer.norm_final.weight")).type());
            assertEquals(StorageType.FLOAT, ((TorchTensor) root.get("x_embedder.proj.weight")).type());
        }
    }

    @Test
    void int64ValuesOutsideI32AreRefused() throws IOException {
        byte[] longs = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(1L << 40).array();
        Path file = PickleBytes.archive(directory.resolve("long.pt"), new PickleBytes().proto(2).op('}')
                .string("n").tensor("LongStorage", "0", 1).op('s').stop().bytes(), storages("0", longs), "little");
        try (TorchFile torch = TorchFile.open(file); MemoryScope scope = new MemoryScope("test")) {
            TorchTensor n = (TorchTensor) ((Map<?, ?>) torch.root()).get("n");
            TorchFileException e = assertThrows(TorchFileException.class, () -> torch.load(n, scope));
            assertContains(e.getMessage(), String.valueOf(1L << 40));
        }
    }

    /** A transpose and an offset slice of one storage, as torch pickles views without copying them. */
    @Test
    void nonContiguousAndOffsetViewsAreGathered() throws IOException {
        float[] values = randomFloats(12);
        PickleBytes q = new PickleBytes().proto(2).op('}').mark().string("transposed");
        q.rebuildTensorAround(() -> q.storage("FloatStorage", "0", 12).op('q', 7), 0, new long[] {4, 3},
                new long[] {1, 4});
        q.string("slice").rebuildTensorAround(() -> q.op('h', 7), 5, new long[] {2, 2}, new long[] {4, 1});
        q.string("broadcast").rebuildTensorAround(() -> q.op('h', 7), 2, new long[] {3, 2}, new long[] {0, 1});
        q.op('u').stop();
        Path file = PickleBytes.archive(directory.resolve("views.pt"), q.bytes(), storages("0", floats(values)),
                "little");
        try (TorchFile torch = TorchFile.open(file); MemoryScope scope = new MemoryScope("test")) {
            Map<?, ?> root = (Map<?, ?>) torch.root();
            TorchTensor transposed = (TorchTensor) root.get("transposed");
            assertFalse(transposed.contiguous());
            float[] t = torch.load(transposed, scope).toFloatArray();
            for (int i = 0; i < 4; i++) {
                for (int j = 0; j < 3; j++) {
                    assertEquals(values[i + 4 * j], t[3 * i + j]);
                }
            }
            assertArrayEquals(new float[] {values[5], values[6], values[9], values[10]},
                    torch.load((TorchTensor) root.get("slice"), scope).toFloatArray());
            assertArrayEquals(new float[] {values[2], values[3], values[2], values[3], values[2], values[3]},
                    torch.load((TorchTensor) root.get("broadcast"), scope).toFloatArray());
        }
    }

    /** Two tensors on one storage (a second persistent id with the same key, as torch writes it): two copies. */
    @Test
    void sharedStorageGivesEachTensorItsOwnCopy() throws IOException {
        float[] values = randomFloats(8);
        PickleBytes p = new PickleBytes().proto(2).op('}').mark();
        p.string("first").rebuildTensorAround(() -> p.storage("FloatStorage", "0", 8), 0, new long[] {4},
                new long[] {1});
        p.string("second").rebuildTensorAround(() -> p.storage("FloatStorage", "0", 8), 4, new long[] {2, 2},
                new long[] {2, 1});
        p.op('u').stop();
        Path file = PickleBytes.archive(directory.resolve("shared.pt"), p.bytes(), storages("0", floats(values)),
                "little");
        try (TorchFile torch = TorchFile.open(file); MemoryScope scope = new MemoryScope("test")) {
            Map<?, ?> root = (Map<?, ?>) torch.root();
            Tensor first = torch.load((TorchTensor) root.get("first"), scope);
            Tensor second = torch.load((TorchTensor) root.get("second"), scope);
            assertArrayEquals(Arrays.copyOfRange(values, 0, 4), first.toFloatArray());
            assertArrayEquals(Arrays.copyOfRange(values, 4, 8), second.toFloatArray());
            first.setFloat(0, 123f);
            assertEquals(values[0], torch.load((TorchTensor) root.get("first"), scope).getFloat(0));
        }
    }

    @Test
    void osSystemIsRefusedByNameAndNeverRuns() throws IOException {
        Path marker = directory.resolve("executed");
        byte[] pickle = new PickleBytes().proto(2).global("os", "system").mark().string("touch " + marker)
                .tuple().reduce().stop().bytes();
        Path file = PickleBytes.archive(directory.resolve("evil.pt"), pickle, Map.of(), "little");
        String problem = refusal(file);
        assertContains(problem, "global os.system is not allowed");
        assertContains(problem, "nothing in the file was executed");
        assertFalse(Files.exists(marker));
    }

    @Test
    void otherDangerousGlobalsAreRefusedByName() throws IOException {
        Map<String, byte[]> pickles = new LinkedHashMap<>();
        pickles.put("builtins.eval", new PickleBytes().proto(4).op(0x8c, 8).raw("builtins".getBytes())
                .op(0x8c, 4).raw("eval".getBytes()).op(0x93).string("1+1").op(0x85).reduce().stop().bytes());
        pickles.put("subprocess.Popen", new PickleBytes().proto(2).global("subprocess", "Popen")
                .string("id").op(0x85).reduce().stop().bytes());
        pickles.put("torch.storage._load_from_bytes", new PickleBytes().proto(2)
                .global("torch.storage", "_load_from_bytes").op('C', 1, 0).op(0x85).reduce().stop().bytes());
        pickles.put("torch._utils._rebuild_tensor", new PickleBytes().proto(2)
                .global("torch._utils", "_rebuild_tensor").stop().bytes());
        int i = 0;
        for (Map.Entry<String, byte[]> entry : pickles.entrySet()) {
            Path file = PickleBytes.archive(directory.resolve("evil" + i++ + ".pt"), entry.getValue(), Map.of(),
                    "little");
            assertContains(refusal(file), "global " + entry.getKey() + " is not allowed");
        }
    }

    @Test
    void storageTypesCannotBeCalled() throws IOException {
        Path file = PickleBytes.archive(directory.resolve("call.pt"), new PickleBytes().proto(2)
                .global("torch", "FloatStorage").op(')').reduce().stop().bytes(), Map.of(), "little");
        assertContains(refusal(file), "never be called");
    }

    @Test
    void objectCreatingOpcodesAreRefused() throws IOException {
        Path newobj = PickleBytes.archive(directory.resolve("newobj.pt"), new PickleBytes().proto(2)
                .global("collections", "OrderedDict").op(')').op(0x81).stop().bytes(), Map.of(), "little");
        assertContains(refusal(newobj), "NEWOBJ");
        Path inst = PickleBytes.archive(directory.resolve("inst.pt"), new PickleBytes().proto(2).mark()
                .op('i').raw("os\nsystem\n".getBytes()).stop().bytes(), Map.of(), "little");
        assertContains(refusal(inst), "INST");
    }

    @Test
    void deepNestingIsRefused() throws IOException {
        PickleBytes tuples = new PickleBytes().proto(2).op(')');
        for (int i = 0; i < 100_000; i++) {
            tuples.op(0x85);
        }
        Path nested = PickleBytes.archive(directory.resolve("nested.pt"), tuples.stop().bytes(), Map.of(),
                "little");
        assertContains(refusal(nested), "nested more than " + RestrictedUnpickler.MAX_DEPTH);
        PickleBytes marks = new PickleBytes().proto(2);
        for (int i = 0; i < 100_000; i++) {
            marks.mark();
        }
        Path marked = PickleBytes.archive(directory.resolve("marks.pt"), marks.stop().bytes(), Map.of(), "little");
        assertContains(refusal(marked), "more than " + RestrictedUnpickler.MAX_DEPTH + " nested MARKs");
    }

    @Test
    void hugeDeclaredSizesAreRefusedBeforeAllocating() throws IOException {
        Path string = PickleBytes.archive(directory.resolve("string.pt"), new PickleBytes().proto(2).op('X')
                .little(0x7fffffffL, 4).stop().bytes(), Map.of(), "little");
        assertContains(refusal(string), "declares 2147483647 bytes but only 1 remain");
        Path string8 = PickleBytes.archive(directory.resolve("string8.pt"), new PickleBytes().proto(4).op(0x8d)
                .little(1L << 62, 8).stop().bytes(), Map.of(), "little");
        assertContains(refusal(string8), "declares " + (1L << 62) + " bytes");
        Path integer = PickleBytes.archive(directory.resolve("long4.pt"), new PickleBytes().proto(2).op(0x8b)
                .little(1000, 4).stop().bytes(), Map.of(), "little");
        assertContains(refusal(integer), "an integer of 1000 bytes");
        Path storage = PickleBytes.archive(directory.resolve("numel.pt"), new PickleBytes().proto(2).op('}')
                .string("w").tensor("FloatStorage", "0", 1L << 40).op('s').stop().bytes(),
                storages("0", floats(1, 2, 3, 4)), "little");
        assertContains(refusal(storage), "storage 0 declares " + (1L << 40)
                + " elements of FloatStorage but its entry data/0 holds 16 bytes");
        PickleBytes view = new PickleBytes().proto(2).op('}').string("w");
        view.rebuildTensorAround(() -> view.storage("FloatStorage", "0", 4), 0,
                new long[] {Integer.MAX_VALUE, Integer.MAX_VALUE}, new long[] {Integer.MAX_VALUE, 1});
        Path huge = PickleBytes.archive(directory.resolve("view.pt"), view.op('s').stop().bytes(),
                storages("0", floats(1, 2, 3, 4)), "little");
        assertContains(refusal(huge), "more than its storage 0 holds (4)");
        PickleBytes expanded = new PickleBytes().proto(2).op('}').string("w");
        expanded.rebuildTensorAround(() -> expanded.storage("FloatStorage", "0", 4), 0,
                new long[] {Integer.MAX_VALUE, Integer.MAX_VALUE}, new long[] {0, 0});
        Path broadcast = PickleBytes.archive(directory.resolve("expanded.pt"), expanded.op('s').stop().bytes(),
                storages("0", floats(1, 2, 3, 4)), "little");
        assertContains(refusal(broadcast), "has " + (long) Integer.MAX_VALUE * Integer.MAX_VALUE
                + " elements, more than its storage 0 holds (4)");
        byte[] bigPickle = new byte[64];
        Path bigEntry = PickleBytes.archive(directory.resolve("bigentry.pt"), bigPickle, Map.of(), "little");
        // An entry whose central directory claims more bytes than the archive holds.
        byte[] bytes = Files.readAllBytes(bigEntry);
        ByteBuffer zip = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        int central = indexOf(bytes, new byte[] {'P', 'K', 1, 2});
        zip.putInt(central + 20, 0x7fffffff).putInt(central + 24, 0x7fffffff);
        Files.write(bigEntry, bytes);
        assertContains(refusal(bigEntry), "entry archive/data.pkl declares 2147483647 bytes");
    }

    private static int indexOf(byte[] haystack, byte[] needle) {
        outer:
        for (int i = 0; i <= haystack.length - needle.length; i++) {
            for (int j = 0; j < needle.length; j++) {
                if (haystack[i + j] != needle[j]) {
                    continue outer;
                }
            }
            return i;
        }
        throw new AssertionError("not found");
    }

    /** Every prefix of a valid file is refused with a TorchFileException, never another exception. */
    @Test
    void truncatedArchivesAreRefused() throws IOException {
        Path whole = directory.resolve("whole.pt");
        try (MemoryScope scope = new MemoryScope("test")) {
            TorchFile.write(whole, Map.of("w", Tensor.of(scope, randomFloats(40), 8, 5)));
        }
        byte[] bytes = Files.readAllBytes(whole);
        Path cut = directory.resolve("cut.pt");
        for (int length = 0; length < bytes.length; length += 7) {
            Files.write(cut, Arrays.copyOf(bytes, length));
            String problem = refusal(cut);
            assertFalse(problem.isEmpty());
        }
        Files.write(cut, Arrays.copyOf(bytes, bytes.length - 1));
        assertContains(refusal(cut), "no zip end-of-central-directory record");
    }

    @Test
    void corruptStorageBytesFailTheirCrc() throws IOException {
        Path file = directory.resolve("corrupt.pt");
        float[] values = randomFloats(16);
        try (MemoryScope scope = new MemoryScope("test")) {
            TorchFile.write(file, Map.of("w", Tensor.of(scope, values, 16)));
        }
        byte[] bytes = Files.readAllBytes(file);
        int at = indexOf(bytes, floats(values));
        bytes[at + 5] ^= 1;
        Files.write(file, bytes);
        try (TorchFile torch = TorchFile.open(file); MemoryScope scope = new MemoryScope("test")) {
            TorchTensor w = (TorchTensor) ((Map<?, ?>) torch.root()).get("w");
            TorchFileException e = assertThrows(TorchFileException.class, () -> torch.load(w, scope));
            assertContains(e.getMessage(), "archive/data/0 fails its CRC-32 check");
        }
    }

    /**
     * Random byte flips and cuts in a real state-dict pickle (the archive around it kept valid, CRCs included): each
     * file opens and loads, or is refused with a TorchFileException; no other exception escapes.
     */
    @Test
    void corruptedPicklesAreRefusedCleanly() throws IOException {
        PickleBytes p = new PickleBytes().proto(2).orderedDict().op('q', 0).mark();
        p.string("a").rebuildTensorAround(() -> p.storage("FloatStorage", "0", 6).op('q', 1), 0,
                new long[] {2, 3}, new long[] {3, 1});
        p.string("b").rebuildTensorAround(() -> p.op('h', 1), 2, new long[] {2, 2}, new long[] {1, 2});
        p.string("c").tensor("HalfStorage", "1", 3);
        byte[] pickle = p.op('u').stop().bytes();
        Map<String, byte[]> storages = storages("0", floats(randomFloats(6)), "1", new byte[6]);
        Path file = directory.resolve("fuzz.pt");
        int refused = 0;
        for (int round = 0; round < 600; round++) {
            byte[] mutated = pickle.clone();
            if (round % 4 == 3) {
                mutated = Arrays.copyOf(mutated, random.nextInt(mutated.length));
            } else {
                for (int flips = 1 + random.nextInt(3); flips > 0; flips--) {
                    mutated[random.nextInt(mutated.length)] = (byte) random.nextInt(256);
                }
            }
            PickleBytes.archive(file, mutated, storages, "little");
            try (TorchFile torch = TorchFile.open(file); MemoryScope scope = new MemoryScope("fuzz")) {
                if (torch.root() instanceof Map<?, ?> root) {
                    for (Object value : root.values()) {
                        if (value instanceof TorchTensor tensor) {
                            torch.load(tensor, scope);
                        }
                    }
                }
            } catch (TorchFileException e) {
                refused++;
            }
        }
        assertTrue(refused > 300, refused + " of 600 refused");
    }

    @Test
    void storageShorterThanItsTensorIsRefused() throws IOException {
        Path declared = PickleBytes.archive(directory.resolve("declared.pt"), new PickleBytes().proto(2).op('}')
                .string("w").tensor("FloatStorage", "0", 5).op('s').stop().bytes(),
                storages("0", floats(1, 2, 3, 4)), "little");
        assertContains(refusal(declared), "declares 5 elements of FloatStorage but its entry data/0 holds 16 bytes");
        PickleBytes p = new PickleBytes().proto(2).op('}').string("w");
        p.rebuildTensorAround(() -> p.storage("FloatStorage", "0", 4), 2, new long[] {3}, new long[] {1});
        Path view = PickleBytes.archive(directory.resolve("view.pt"), p.op('s').stop().bytes(),
                storages("0", floats(1, 2, 3, 4)), "little");
        assertContains(refusal(view), "reaches element 4 of storage 0, which holds 4 elements");
        Path missing = PickleBytes.archive(directory.resolve("missing.pt"), new PickleBytes().proto(2).op('}')
                .string("w").tensor("FloatStorage", "3", 1).op('s').stop().bytes(), Map.of(), "little");
        assertContains(refusal(missing), "storage 3 has no entry data/3");
    }

    @Test
    void bigEndianFilesAreRefused() throws IOException {
        Path file = PickleBytes.archive(directory.resolve("big.pt"), new PickleBytes().proto(2).op('}').stop()
                .bytes(), Map.of(), "big");
        assertContains(refusal(file), "big-endian");
        Path noRecord = PickleBytes.archive(directory.resolve("old.pt"), new PickleBytes().proto(2).op('}').stop()
                .bytes(), Map.of(), null);
        try (TorchFile torch = TorchFile.open(noRecord)) {
            assertEquals(Map.of(), torch.root());
        }
    }

    @Test
    void legacyAndForeignFilesAreRefused() throws IOException {
        Path legacy = Files.write(directory.resolve("legacy.pt"), new byte[] {(byte) 0x80, 2, (byte) 0x8a, 10});
        assertContains(refusal(legacy), "not a zip-format .pt");
        Path empty = Files.write(directory.resolve("empty.pt"), new byte[0]);
        assertContains(refusal(empty), "not a zip-format .pt");
    }

    @Test
    void memoSharesOneContainer() throws IOException {
        byte[] pickle = new PickleBytes().proto(2).mark().op(']', 'q', 3).op('h', 3).tuple().stop().bytes();
        Path file = PickleBytes.archive(directory.resolve("memo.pt"), pickle, Map.of(), "little");
        try (TorchFile torch = TorchFile.open(file)) {
            List<?> pair = (List<?>) torch.root();
            assertSame(pair.get(0), pair.get(1));
        }
    }

    @Test
    void tensorsCannotBeLoadedAfterClose() throws IOException {
        Path file = directory.resolve("segment.pt");
        try (MemoryScope scope = new MemoryScope("test")) {
            TorchFile.write(file, Map.of("w", Tensor.of(scope, randomFloats(4), 4)));
        }
        TorchFile torch = TorchFile.open(file);
        TorchTensor w = (TorchTensor) ((Map<?, ?>) torch.root()).get("w");
        torch.close();
        try (MemoryScope scope = new MemoryScope("test")) {
            assertThrows(IllegalStateException.class, () -> torch.load(w, scope));
        }
    }
}
