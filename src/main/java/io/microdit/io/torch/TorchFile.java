package io.microdit.io.torch;

import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;

/**
 * A PyTorch checkpoint in the zip format {@code torch.save} writes since 1.6: {@code <name>/data.pkl} (the pickled
 * object), {@code <name>/data/<key>} (one entry per storage, raw little-endian elements), {@code <name>/byteorder}
 * and {@code <name>/version}.
 *
 * <h2>Reading</h2>
 * The file is untrusted and nothing in it is executed: {@link #open} maps the archive, checks its directory and
 * decodes {@code data.pkl} with a restricted unpickler that knows only what a tensor state dict needs (see
 * {@link RestrictedUnpickler}); any other global, e.g. {@code os.system}, is refused with an error naming it and the
 * file. Each storage's declared size must equal its entry's size and each tensor view (size, stride, offset) must lie
 * inside its storage before any tensor memory is allocated. {@link #root} is the decoded object, tensors as
 * {@link TorchTensor}s; {@link #load} copies one into a {@link MemoryScope}: float32 as F32, bfloat16 as BF16,
 * float16 as F32 (exactly), int32 as I32 and int64 as I32 when every value fits. Views with any stride and offset
 * are gathered; tensors sharing a storage each get their own copy. Big-endian files are refused.
 *
 * <h2>Writing</h2>
 * {@link #write} stores a state dict ({@code OrderedDict} of F32, BF16 or I32 tensors, one storage each) that
 * {@code torch.load} reads, atomically (temporary file, fsync, rename).
 */
public final class TorchFile implements AutoCloseable {
    /** Largest {@code data.pkl} accepted: a state dict's pickle is kilobytes, its tensors live in storages. */
    public static final long MAX_PICKLE_BYTES = 256L << 20;
    private static final String ARCHIVE_NAME = "archive";
    private static final String FORMAT_VERSION = "3\n";

    private final Path file;
    private final ZipArchive zip;
    private final Map<String, ZipArchive.Entry> storages;
    private final Object root;

    private TorchFile(Path file, ZipArchive zip, Map<String, ZipArchive.Entry> storages, Object root) {
        this.file = file;
        this.zip = zip;
        this.storages = storages;
        this.root = root;
    }

    /** Opens and decodes {@code file}; the tensors' bytes stay in the file until {@link #load}ed. */
    public static TorchFile open(Path file) throws IOException {
        ZipArchive zip = ZipArchive.open(file);
        try {
            String prefix = archivePrefix(file, zip);
            checkByteOrder(file, zip, prefix);
            checkVersion(file, zip, prefix);
            Map<String, ZipArchive.Entry> storages = new LinkedHashMap<>();
            Map<String, Long> storageBytes = new LinkedHashMap<>();
            String storagePrefix = prefix + "data/";
            for (ZipArchive.Entry entry : zip.entries().values()) {
                if (entry.name().startsWith(storagePrefix)) {
                    String key = entry.name().substring(storagePrefix.length());
                    storages.put(key, entry);
                    storageBytes.put(key, entry.size());
                }
            }
            ZipArchive.Entry pickle = zip.entries().get(prefix + "data.pkl");
            if (pickle.size() > MAX_PICKLE_BYTES) {
                throw new TorchFileException(file, pickle.name() + " is " + pickle.size() + " bytes, over the limit of "
                        + MAX_PICKLE_BYTES + " (a state dict's pickle is kilobytes)");
            }
            byte[] bytes = zip.bytes(pickle).toArray(ValueLayout.JAVA_BYTE);
            Object root = RestrictedUnpickler.load(file, pickle.name(), bytes, storageBytes);
            return new TorchFile(file, zip, storages, root);
        } catch (IOException | RuntimeException e) {
            zip.close();
            throw e;
        }
    }

    /** The {@code .pt} file this was read from, as error messages name it. */
    public Path file() {
        return file;
    }

    /**
     * The decoded object: {@code null}, {@link Boolean}, {@link Long}, {@link Double}, {@link String},
     * {@code byte[]}, {@link List} (tuples unmodifiable), {@link Map} (dicts and OrderedDicts, in order) and
     * {@link TorchTensor}. The same container may appear at several places, even inside itself (the pickle's memo),
     * so walk it with a bound rather than printing or hashing it whole.
     */
    public Object root() {
        return root;
    }

    /** Copies {@code tensor}'s elements into a new tensor in {@code scope} (dtypes as in the class comment). */
    public Tensor load(TorchTensor tensor, MemoryScope scope) throws IOException {
        ZipArchive.Entry entry = storages.get(tensor.storageKey());
        if (entry == null || entry.size() != tensor.storageNumel() * tensor.type().elementSize()) {
            throw new TorchFileException(file, "tensor " + tensor.describe() + " is not a tensor of this file");
        }
        MemorySegment storage = zip.bytes(entry);
        DType dtype = switch (tensor.type()) {
            case FLOAT, HALF -> DType.F32;
            case BFLOAT16 -> DType.BF16;
            case INT, LONG -> DType.I32;
        };
        Tensor out = Tensor.zeros(scope, dtype, tensor.shape());
        MemorySegment target = out.segment();
        int size = tensor.type().elementSize();
        if (tensor.contiguous() && tensor.type().elementSize() == dtype.byteSize()
                && ByteOrder.nativeOrder() == ByteOrder.LITTLE_ENDIAN) {
            MemorySegment.copy(storage, tensor.offset() * size, target, 0, target.byteSize());
            return out;
        }
        int[] shape = tensor.shape();
        long[] stride = tensor.stride();
        int[] counter = new int[shape.length];
        long index = tensor.offset();
        for (long i = 0; i < tensor.numel(); i++) {
            long at = index * size;
            switch (tensor.type()) {
                case FLOAT -> target.setAtIndex(ValueLayout.JAVA_FLOAT, i, storage.get(LittleEndian.FLOAT, at));
                case HALF -> target.setAtIndex(ValueLayout.JAVA_FLOAT, i,
                        Float.float16ToFloat(storage.get(LittleEndian.SHORT, at)));
                case BFLOAT16 -> target.setAtIndex(ValueLayout.JAVA_SHORT, i, storage.get(LittleEndian.SHORT, at));
                case INT -> target.setAtIndex(ValueLayout.JAVA_INT, i, storage.get(LittleEndian.INT, at));
                case LONG -> {
                    long value = storage.get(LittleEndian.LONG, at);
                    if (value != (int) value) {
                        throw new TorchFileException(file, "int64 tensor " + tensor.describe() + " holds " + value
                                + ", which does not fit the I32 microdit loads int64 tensors into");
                    }
                    target.setAtIndex(ValueLayout.JAVA_INT, i, (int) value);
                }
            }
            for (int d = shape.length - 1; d >= 0; d--) {
                index += stride[d];
                if (++counter[d] < shape[d]) {
                    break;
                }
                index -= stride[d] * shape[d];
                counter[d] = 0;
            }
        }
        return out;
    }

    @Override
    public void close() {
        zip.close();
    }

    /** Little-endian element layouts for storages, which need not be aligned inside the archive. */
    private static final class LittleEndian {
        static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        static final ValueLayout.OfInt INT = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        static final ValueLayout.OfLong LONG = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    }

    /** The archive's top folder ({@code torch.save} names it after the file): the one holding {@code data.pkl}. */
    private static String archivePrefix(Path file, ZipArchive zip) throws TorchFileException {
        List<String> pickles = new ArrayList<>();
        for (String name : zip.entries().keySet()) {
            int slash = name.indexOf('/');
            if (slash > 0 && name.substring(slash + 1).equals("data.pkl")) {
                pickles.add(name);
            }
        }
        if (pickles.size() != 1) {
            throw new TorchFileException(file, pickles.isEmpty()
                    ? "no <name>/data.pkl entry: not a torch.save checkpoint (a TorchScript archive?)"
                    : "several data.pkl entries: " + pickles);
        }
        return pickles.getFirst().substring(0, pickles.getFirst().length() - "data.pkl".length());
    }

    private static void checkByteOrder(Path file, ZipArchive zip, String prefix) throws TorchFileException {
        ZipArchive.Entry entry = zip.entries().get(prefix + "byteorder");
        if (entry == null) {
            return; // torch before 1.13 wrote no byteorder record; its files are little-endian in practice
        }
        String order = text(zip, entry, 16);
        if (order.equals("big")) {
            throw new TorchFileException(file, "the checkpoint was saved on a big-endian machine (byteorder \"big\");"
                    + " re-save it on a little-endian one");
        }
        if (!order.equals("little")) {
            throw new TorchFileException(file, "byteorder record is \"" + order + "\", not \"little\"");
        }
    }

    private static void checkVersion(Path file, ZipArchive zip, String prefix) throws TorchFileException {
        ZipArchive.Entry entry = zip.entries().get(prefix + "version");
        if (entry != null && !text(zip, entry, 32).strip().matches("[0-9]{1,9}")) {
            throw new TorchFileException(file, "version record \"" + text(zip, entry, 32) + "\" is not a number");
        }
    }

    private static String text(ZipArchive zip, ZipArchive.Entry entry, int limit) throws TorchFileException {
        MemorySegment bytes = zip.bytes(entry);
        return new String(bytes.asSlice(0, Math.min(limit, bytes.byteSize())).toArray(ValueLayout.JAVA_BYTE),
                StandardCharsets.US_ASCII);
    }

    // ---------------------------------------------------------------- writing

    /** Writes {@code tensors} (F32, BF16 or I32, host memory) as a state dict {@code torch.load} reads, atomically. */
    public static void write(Path file, Map<String, Tensor> tensors) throws IOException {
        List<StateDictPickle.Item> items = new ArrayList<>();
        for (Map.Entry<String, Tensor> entry : tensors.entrySet()) {
            Tensor tensor = entry.getValue();
            StorageType type = switch (tensor.dtype()) {
                case F32 -> StorageType.FLOAT;
                case BF16 -> StorageType.BFLOAT16;
                case I32 -> StorageType.INT;
            };
            items.add(new StateDictPickle.Item(entry.getKey(), type, Integer.toString(items.size()), tensor.shape()));
        }
        Path target = file.toAbsolutePath();
        Path directory = target.getParent();
        Path temporary = directory.resolve("." + target.getFileName() + "."
                + HexFormat.of().toHexDigits(ThreadLocalRandom.current().nextLong()) + ".tmp");
        try {
            try (FileChannel channel = FileChannel.open(temporary, StandardOpenOption.CREATE_NEW,
                    StandardOpenOption.WRITE)) {
                ZipWriter zip = new ZipWriter(channel);
                String prefix = ARCHIVE_NAME + "/";
                zip.add(prefix + "data.pkl", MemorySegment.ofArray(StateDictPickle.of(items)));
                zip.add(prefix + "byteorder", MemorySegment.ofArray("little".getBytes(StandardCharsets.US_ASCII)));
                int key = 0;
                for (Tensor tensor : tensors.values()) {
                    zip.add(prefix + "data/" + key++, littleEndianBytes(tensor));
                }
                zip.add(prefix + "version", MemorySegment.ofArray(FORMAT_VERSION.getBytes(StandardCharsets.US_ASCII)));
                zip.finish();
                channel.force(true);
            }
            Files.move(temporary, target, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException | RuntimeException e) {
            Files.deleteIfExists(temporary);
            throw e;
        }
    }

    private static MemorySegment littleEndianBytes(Tensor tensor) {
        MemorySegment segment = tensor.segment();
        if (ByteOrder.nativeOrder() == ByteOrder.LITTLE_ENDIAN) {
            return segment;
        }
        MemorySegment copy = MemorySegment.ofArray(new byte[Math.toIntExact(segment.byteSize())]);
        for (long i = 0; i < tensor.numel(); i++) {
            if (tensor.dtype().byteSize() == 4) {
                copy.setAtIndex(LittleEndian.INT, i, segment.getAtIndex(ValueLayout.JAVA_INT, i));
            } else {
                copy.setAtIndex(LittleEndian.SHORT, i, segment.getAtIndex(ValueLayout.JAVA_SHORT, i));
            }
        }
        return copy;
    }
}
