package io.microdit.io;

import io.microdit.tensor.DType;
import io.microdit.tensor.MemoryScope;
import io.microdit.tensor.Tensor;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.CharBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Reads and writes safetensors files, the checkpoint and tensor-exchange format shared with PyTorch.
 *
 * <h2>Format</h2>
 * An unsigned 64-bit little-endian header length {@code N}; {@code N} bytes of UTF-8 JSON (an object mapping
 * each tensor name to {@code {"dtype": ..., "shape": [...], "data_offsets": [begin, end]}}, plus an optional
 * {@code "__metadata__"} object of string values); then the data buffer. Offsets are relative to the start of the
 * data buffer; tensor bytes are little-endian and row-major.
 *
 * <h2>Writing</h2>
 * F32, BF16 and I32 tensors. Tensors are laid out by element size, largest first, then by name, so every tensor
 * starts at a multiple of its element size (the reference implementation sorts by dtype for the same reason),
 * whatever order the caller's map has; the header lists
 * {@code __metadata__} first (sorted keys, omitted when empty), then the tensors in data order, as compact JSON
 * padded with spaces to a multiple of 8 bytes. The same tensors and metadata always give the same bytes. The file
 * is written to a temporary file in the target directory, forced to disk, and renamed over the target with an
 * atomic move, so a crash leaves either the old file or the new one, never a mix.
 *
 * <h2>Reading</h2>
 * The file is untrusted: every check below fails with a {@link SafetensorsException} whose message names the
 * file and the problem, and no byte outside the file is ever requested. The header length must be at most
 * {@value #MAX_HEADER_BYTES} bytes and fit in the file; the header must be valid UTF-8 and strict JSON
 * ({@link Json}: duplicate names are rejected) holding an object; each entry needs a known dtype, a shape of
 * integers in [0, 2^31 - 1] whose byte size fits in 63 bits, and data offsets {@code begin <= end} with
 * {@code end - begin} equal to that byte size, inside the data buffer. Like the reference implementation, the
 * tensors must cover the data buffer exactly: overlaps, gaps and trailing bytes are all rejected, since none of
 * them is produced by a correct writer and each hides bytes from the header. Unknown fields inside an entry are
 * ignored, as in the reference. F32, BF16 and I32 load as they are; F16 loads as F32 (exactly: every half,
 * subnormals, infinities and NaN included, is a float). Other known dtypes (F64, I64, U8, ...) can be listed with
 * {@link #readHeader} but not loaded.
 */
public final class Safetensors {
    /** Largest header accepted: real headers are kilobytes; this only stops hostile lengths. */
    public static final long MAX_HEADER_BYTES = 100L << 20;
    /** The header key whose value is the file's string-to-string metadata rather than a tensor. */
    public static final String METADATA_KEY = "__metadata__";

    /** Every dtype name of the safetensors format with its element size in bytes. */
    private static final Map<String, Integer> KNOWN_DTYPES = Map.ofEntries(
            Map.entry("BOOL", 1), Map.entry("U8", 1), Map.entry("I8", 1), Map.entry("F8_E5M2", 1),
            Map.entry("F8_E4M3", 1), Map.entry("F8_E8M0", 1), Map.entry("I16", 2), Map.entry("U16", 2),
            Map.entry("F16", 2), Map.entry("BF16", 2), Map.entry("I32", 4), Map.entry("U32", 4),
            Map.entry("F32", 4), Map.entry("F64", 8), Map.entry("I64", 8), Map.entry("U64", 8));
    private static final int COPY_CHUNK = 1 << 20;

    private Safetensors() {
    }

    /** One tensor of a header; {@code begin} and {@code end} are byte offsets into the data buffer. */
    public record Entry(String name, String dtype, int[] shape, long begin, long end) {
        /** Copies {@code shape}, so that the entry is immutable. */
        public Entry {
            shape = shape.clone();
        }

        /** A copy of the dimensions. */
        @Override
        public int[] shape() {
            return shape.clone();
        }

        /** Bytes of the tensor's data: {@code end - begin}. */
        public long byteSize() {
            return end - begin;
        }

        @Override
        public String toString() {
            return name + " " + dtype + Arrays.toString(shape) + " [" + begin + ", " + end + ")";
        }
    }

    /**
     * A file's header: its metadata, its tensors in data order, and where the data buffer starts in the file
     * ({@code 8 + N}).
     */
    public record Header(Path file, Map<String, String> metadata, Map<String, Entry> entries, long dataStart) {
    }

    /** A loaded file: metadata and tensors (in data order). */
    public record Contents(Map<String, String> metadata, Map<String, Tensor> tensors) {
    }

    // ---------------------------------------------------------------- reading

    /** Reads and validates the header only: names, dtypes, shapes and offsets, without loading tensor data. */
    public static Header readHeader(Path file) throws IOException {
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            return readHeader(file, channel);
        }
    }

    /** Loads every tensor into {@code scope}. Tensors already loaded stay in the scope if a later one fails. */
    public static Contents read(Path file, MemoryScope scope) throws IOException {
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            Header header = readHeader(file, channel);
            for (Entry entry : header.entries().values()) {
                loadableDType(file, entry);
            }
            Map<String, Tensor> tensors = new LinkedHashMap<>();
            for (Entry entry : header.entries().values()) {
                tensors.put(entry.name(), load(file, channel, header, entry, scope));
            }
            return new Contents(header.metadata(), Collections.unmodifiableMap(tensors));
        }
    }

    /** Loads one named tensor into {@code scope}. */
    public static Tensor readTensor(Path file, String name, MemoryScope scope) throws IOException {
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            Header header = readHeader(file, channel);
            Entry entry = header.entries().get(name);
            if (entry == null) {
                throw new SafetensorsException(file, "no tensor " + Json.quote(name) + " (the file has "
                        + header.entries().size() + " tensors)");
            }
            return load(file, channel, header, entry, scope);
        }
    }

    private static Header readHeader(Path file, FileChannel channel) throws IOException {
        long fileSize = channel.size();
        if (fileSize < 8) {
            throw new SafetensorsException(file, "file is " + fileSize
                    + " bytes, shorter than the 8-byte header length");
        }
        ByteBuffer lengthBytes = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
        readFully(file, channel, lengthBytes, 0);
        long headerLength = lengthBytes.getLong(0);
        if (headerLength < 0 || headerLength > MAX_HEADER_BYTES) {
            throw new SafetensorsException(file, "header length " + Long.toUnsignedString(headerLength)
                    + " exceeds the limit of " + MAX_HEADER_BYTES + " bytes");
        }
        if (headerLength > fileSize - 8) {
            throw new SafetensorsException(file, "header length " + headerLength
                    + " runs past the end of the file (" + fileSize + " bytes): truncated or not safetensors");
        }
        ByteBuffer headerBytes = ByteBuffer.allocate((int) headerLength);
        readFully(file, channel, headerBytes, 8);
        Object root;
        try {
            root = Json.parse(decodeUtf8(file, headerBytes.flip()));
        } catch (JsonException e) {
            throw new SafetensorsException(file, "header is not valid JSON: " + e.getMessage(), e);
        }
        if (!(root instanceof Map<?, ?> object)) {
            throw new SafetensorsException(file, "header is not a JSON object");
        }
        long dataStart = 8 + headerLength;
        long dataLength = fileSize - dataStart;
        Map<String, String> metadata = Map.of();
        List<Entry> entries = new ArrayList<>();
        for (Map.Entry<?, ?> field : object.entrySet()) {
            String name = (String) field.getKey();
            if (name.equals(METADATA_KEY)) {
                metadata = metadata(file, field.getValue());
            } else {
                entries.add(entry(file, name, field.getValue(), dataLength));
            }
        }
        entries.sort(Comparator.comparingLong(Entry::begin).thenComparingLong(Entry::end));
        checkCoverage(file, entries, dataLength);
        Map<String, Entry> byName = new LinkedHashMap<>();
        for (Entry entry : entries) {
            byName.put(entry.name(), entry);
        }
        return new Header(file, metadata, Collections.unmodifiableMap(byName), dataStart);
    }

    private static String decodeUtf8(Path file, ByteBuffer bytes) throws SafetensorsException {
        CharsetDecoder decoder = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT);
        CharBuffer chars = CharBuffer.allocate(bytes.remaining());
        CoderResult result = decoder.decode(bytes, chars, true);
        if (result.isError()) {
            throw new SafetensorsException(file, "header is not valid UTF-8 at byte " + bytes.position()
                    + " of the header");
        }
        decoder.flush(chars);
        return chars.flip().toString();
    }

    private static Map<String, String> metadata(Path file, Object value) throws SafetensorsException {
        if (!(value instanceof Map<?, ?> map)) {
            throw new SafetensorsException(file, METADATA_KEY + " is not a JSON object");
        }
        Map<String, String> metadata = new LinkedHashMap<>();
        for (Map.Entry<?, ?> field : map.entrySet()) {
            if (!(field.getValue() instanceof String text)) {
                throw new SafetensorsException(file, METADATA_KEY + " value of " + Json.quote((String) field.getKey())
                        + " is not a string: " + Json.write(field.getValue()));
            }
            metadata.put((String) field.getKey(), text);
        }
        return Collections.unmodifiableMap(metadata);
    }

    private static Entry entry(Path file, String name, Object value, long dataLength) throws SafetensorsException {
        String where = "tensor " + Json.quote(name);
        if (!(value instanceof Map<?, ?> fields)) {
            throw new SafetensorsException(file, where + ": entry is not a JSON object");
        }
        Object dtypeValue = required(file, where, fields, "dtype");
        if (!(dtypeValue instanceof String dtype)) {
            throw new SafetensorsException(file, where + ": dtype is not a string: " + Json.write(dtypeValue));
        }
        Integer elementSize = KNOWN_DTYPES.get(dtype);
        if (elementSize == null) {
            throw new SafetensorsException(file, where + ": unknown dtype " + Json.quote(dtype));
        }
        List<?> shapeList = list(file, where, fields, "shape");
        int[] shape = new int[shapeList.size()];
        for (int i = 0; i < shape.length; i++) {
            Object dim = shapeList.get(i);
            if (!(dim instanceof Long || dim instanceof BigInteger)) {
                throw new SafetensorsException(file, where + ": shape dimension " + Json.write(dim)
                        + " is not an integer");
            }
            if (dim instanceof BigInteger || (Long) dim > Integer.MAX_VALUE || (Long) dim < 0) {
                boolean negative = dim instanceof BigInteger big ? big.signum() < 0 : (Long) dim < 0;
                throw new SafetensorsException(file, where + ": shape dimension " + dim
                        + (negative ? " is negative" : " is larger than 2^31 - 1"));
            }
            shape[i] = Math.toIntExact((Long) dim);
        }
        long bytes;
        try {
            long numel = 1;
            for (int d : shape) {
                numel = Math.multiplyExact(numel, d);
            }
            bytes = Math.multiplyExact(numel, elementSize);
        } catch (ArithmeticException e) {
            throw new SafetensorsException(file, where + ": shape " + Arrays.toString(shape) + " of " + dtype
                    + " holds more than 2^63 - 1 bytes");
        }
        List<?> offsets = list(file, where, fields, "data_offsets");
        if (offsets.size() != 2) {
            throw new SafetensorsException(file, where + ": data_offsets must be [begin, end], got "
                    + Json.write(offsets));
        }
        for (Object offset : offsets) {
            if (!(offset instanceof Long number) || number < 0) {
                throw new SafetensorsException(file, where + ": data_offsets " + Json.write(offsets)
                        + " are not two non-negative 64-bit integers");
            }
        }
        long begin = (Long) offsets.get(0);
        long end = (Long) offsets.get(1);
        if (begin > end) {
            throw new SafetensorsException(file, where + ": data_offsets [" + begin + ", " + end
                    + "] end before they begin");
        }
        if (end - begin != bytes) {
            throw new SafetensorsException(file, where + ": shape " + Arrays.toString(shape) + " of " + dtype
                    + " needs " + bytes + " bytes but data_offsets [" + begin + ", " + end + "] span "
                    + (end - begin));
        }
        if (end > dataLength) {
            throw new SafetensorsException(file, where + ": data_offsets [" + begin + ", " + end
                    + "] run past the end of the data buffer (" + dataLength + " bytes): the file is truncated");
        }
        return new Entry(name, dtype, shape, begin, end);
    }

    private static Object required(Path file, String where, Map<?, ?> fields, String key)
            throws SafetensorsException {
        Object value = fields.get(key);
        if (value == null) {
            throw new SafetensorsException(file, where + ": " + (fields.containsKey(key) ? key + " is null"
                    : "missing " + key));
        }
        return value;
    }

    private static List<?> list(Path file, String where, Map<?, ?> fields, String key) throws SafetensorsException {
        Object value = required(file, where, fields, key);
        if (!(value instanceof List<?> list)) {
            throw new SafetensorsException(file, where + ": " + key + " is not a JSON array: " + Json.write(value));
        }
        return list;
    }

    /** Entries sorted by offsets must tile [0, dataLength) exactly. */
    private static void checkCoverage(Path file, List<Entry> entries, long dataLength) throws SafetensorsException {
        long covered = 0;
        Entry previous = null;
        for (Entry entry : entries) {
            if (entry.begin() < covered) {
                throw new SafetensorsException(file, "tensors " + Json.quote(previous.name()) + " [" + previous.begin()
                        + ", " + previous.end() + ") and " + Json.quote(entry.name()) + " [" + entry.begin() + ", "
                        + entry.end() + ") overlap");
            }
            if (entry.begin() > covered) {
                throw new SafetensorsException(file, "bytes [" + covered + ", " + entry.begin()
                        + ") of the data buffer belong to no tensor (gaps are not allowed)");
            }
            covered = entry.end();
            previous = entry;
        }
        if (covered != dataLength) {
            throw new SafetensorsException(file, "the data buffer has " + (dataLength - covered)
                    + " bytes after the last tensor");
        }
    }

    private static DType loadableDType(Path file, Entry entry) throws SafetensorsException {
        return switch (entry.dtype()) {
            case "F32", "F16" -> DType.F32;
            case "BF16" -> DType.BF16;
            case "I32" -> DType.I32;
            default -> throw new SafetensorsException(file, "tensor " + Json.quote(entry.name()) + " has dtype "
                    + entry.dtype() + "; microdit loads F32, BF16, I32 and F16 (as F32)");
        };
    }

    private static Tensor load(Path file, FileChannel channel, Header header, Entry entry, MemoryScope scope)
            throws IOException {
        Tensor tensor = Tensor.zeros(scope, loadableDType(file, entry), entry.shape());
        MemorySegment target = tensor.segment();
        long position = header.dataStart() + entry.begin();
        if (entry.dtype().equals("F16")) {
            readHalves(file, channel, position, target, tensor.numel());
            return tensor;
        }
        for (long done = 0; done < target.byteSize(); done += COPY_CHUNK) {
            long length = Math.min(COPY_CHUNK, target.byteSize() - done);
            readFully(file, channel, target.asSlice(done, length).asByteBuffer(), position + done);
        }
        if (ByteOrder.nativeOrder() != ByteOrder.LITTLE_ENDIAN) {
            swapBytes(target, tensor.dtype().byteSize());
        }
        return tensor;
    }

    private static void readHalves(Path file, FileChannel channel, long position, MemorySegment target, long count)
            throws IOException {
        ByteBuffer buffer = ByteBuffer.allocate(COPY_CHUNK).order(ByteOrder.LITTLE_ENDIAN);
        for (long done = 0; done < count; ) {
            int chunk = (int) Math.min(COPY_CHUNK / 2, count - done);
            buffer.clear().limit(chunk * 2);
            readFully(file, channel, buffer, position + done * 2);
            for (int i = 0; i < chunk; i++) {
                target.setAtIndex(ValueLayout.JAVA_FLOAT, done + i, Float.float16ToFloat(buffer.getShort(i * 2)));
            }
            done += chunk;
        }
    }

    /** Reverses the bytes of each element: little-endian to native order and back on big-endian hosts. */
    private static void swapBytes(MemorySegment segment, int elementSize) {
        ValueLayout.OfInt littleInt = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        ValueLayout.OfShort littleShort = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        long count = segment.byteSize() / elementSize;
        for (long i = 0; i < count; i++) {
            if (elementSize == 4) {
                segment.setAtIndex(ValueLayout.JAVA_INT, i, segment.getAtIndex(littleInt, i));
            } else {
                segment.setAtIndex(ValueLayout.JAVA_SHORT, i, segment.getAtIndex(littleShort, i));
            }
        }
    }

    private static void readFully(Path file, FileChannel channel, ByteBuffer buffer, long position)
            throws IOException {
        long start = position - buffer.position();
        while (buffer.hasRemaining()) {
            if (channel.read(buffer, start + buffer.position()) < 0) {
                throw new SafetensorsException(file, "file ended at byte " + (start + buffer.position())
                        + " while reading (was it truncated while being read?)");
            }
        }
    }

    // ---------------------------------------------------------------- writing

    /** Writes {@code tensors} (F32, BF16 or I32) and {@code metadata} to {@code file}, atomically. */
    public static void write(Path file, Map<String, Tensor> tensors, Map<String, String> metadata)
            throws IOException {
        List<Map.Entry<String, Tensor>> order = new ArrayList<>();
        for (Map.Entry<String, Tensor> entry : tensors.entrySet()) {
            if (entry.getKey() == null || entry.getValue() == null) {
                throw new IllegalArgumentException("safetensors write " + file + ": null tensor name or tensor");
            }
            if (entry.getKey().equals(METADATA_KEY)) {
                throw new IllegalArgumentException("safetensors write " + file + ": " + METADATA_KEY
                        + " is reserved and cannot name a tensor");
            }
            order.add(entry);
        }
        order.sort(Comparator.<Map.Entry<String, Tensor>>comparingInt(e -> -e.getValue().dtype().byteSize())
                .thenComparing(Map.Entry::getKey));

        Map<String, Object> header = new LinkedHashMap<>();
        if (!metadata.isEmpty()) {
            for (Map.Entry<String, String> entry : metadata.entrySet()) {
                if (entry.getKey() == null || entry.getValue() == null) {
                    throw new IllegalArgumentException("safetensors write " + file + ": null metadata key or value");
                }
            }
            header.put(METADATA_KEY, new TreeMap<>(metadata));
        }
        long offset = 0;
        for (Map.Entry<String, Tensor> entry : order) {
            Tensor tensor = entry.getValue();
            Map<String, Object> fields = new LinkedHashMap<>();
            fields.put("dtype", tensor.dtype().safetensorsName());
            fields.put("shape", Arrays.stream(tensor.shape()).boxed().toList());
            fields.put("data_offsets", List.of(offset, offset + tensor.byteSize()));
            header.put(entry.getKey(), fields);
            offset += tensor.byteSize();
        }
        byte[] json = Json.write(header).getBytes(StandardCharsets.UTF_8);
        int padded = (json.length + 7) / 8 * 8;
        ByteBuffer prefix = ByteBuffer.allocate(8 + padded).order(ByteOrder.LITTLE_ENDIAN);
        prefix.putLong(padded).put(json);
        while (prefix.hasRemaining()) {
            prefix.put((byte) ' ');
        }
        prefix.flip();

        Path target = file.toAbsolutePath();
        Path directory = target.getParent();
        Path temporary = directory.resolve("." + target.getFileName() + "."
                + HexFormat.of().toHexDigits(ThreadLocalRandom.current().nextLong()) + ".tmp");
        try {
            try (FileChannel channel = FileChannel.open(temporary, StandardOpenOption.CREATE_NEW,
                    StandardOpenOption.WRITE)) {
                writeFully(channel, prefix);
                for (Map.Entry<String, Tensor> entry : order) {
                    writeTensor(channel, entry.getValue());
                }
                channel.force(true);
            }
            Files.move(temporary, target, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException | RuntimeException e) {
            Files.deleteIfExists(temporary);
            throw e;
        }
        forceDirectory(directory);
    }

    private static void writeTensor(FileChannel channel, Tensor tensor) throws IOException {
        MemorySegment segment = tensor.segment();
        boolean swap = ByteOrder.nativeOrder() != ByteOrder.LITTLE_ENDIAN;
        for (long done = 0; done < segment.byteSize(); done += COPY_CHUNK) {
            long length = Math.min(COPY_CHUNK, segment.byteSize() - done);
            MemorySegment slice = segment.asSlice(done, length);
            if (swap) {
                MemorySegment copy = MemorySegment.ofArray(new byte[(int) length]);
                copy.copyFrom(slice);
                swapBytes(copy, tensor.dtype().byteSize());
                slice = copy;
            }
            writeFully(channel, slice.asByteBuffer());
        }
    }

    private static void writeFully(FileChannel channel, ByteBuffer buffer) throws IOException {
        while (buffer.hasRemaining()) {
            channel.write(buffer);
        }
    }

    /** Makes the rename durable; some platforms cannot open a directory, and there the rename must suffice. */
    private static void forceDirectory(Path directory) {
        try (FileChannel channel = FileChannel.open(directory, StandardOpenOption.READ)) {
            channel.force(true);
        } catch (IOException e) {
            // Best effort: the data itself is already on disk and the rename is atomic.
        }
    }
}
