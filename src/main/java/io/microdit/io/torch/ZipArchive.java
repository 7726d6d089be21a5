package io.microdit.io.torch;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.zip.CRC32;

/**
 * The entries of a zip archive as {@code torch.save} writes it: every entry stored (uncompressed), so each one is a
 * slice of the memory-mapped file. Reads the end-of-central-directory record (zip64 too, for archives over 4 GiB),
 * then the central directory, and checks each entry's local header, range and name; a CRC is checked when an
 * entry's bytes are first used ({@link #bytes}), since checking gigabytes of storages up front would double the
 * cost of a conversion that reads each once anyway.
 */
final class ZipArchive implements AutoCloseable {
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final int END_RECORD = 0x06054b50;
    private static final int ZIP64_END_RECORD = 0x06064b50;
    private static final int ZIP64_LOCATOR = 0x07064b50;
    private static final int CENTRAL_HEADER = 0x02014b50;
    private static final int LOCAL_HEADER = 0x04034b50;
    private static final int MAX_COMMENT = 0xffff;

    /** One stored entry: where its bytes start in the file, how many, and their CRC-32. */
    record Entry(String name, long dataStart, long size, int crc) {
    }

    private final Path file;
    private final Arena arena;
    private final MemorySegment mapped;
    private final Map<String, Entry> entries;
    private final Map<String, Boolean> crcChecked = new LinkedHashMap<>();

    private ZipArchive(Path file, Arena arena, MemorySegment mapped, Map<String, Entry> entries) {
        this.file = file;
        this.arena = arena;
        this.mapped = mapped;
        this.entries = entries;
    }

    static ZipArchive open(Path file) throws IOException {
        Arena arena = Arena.ofShared();
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            MemorySegment mapped = channel.size() == 0 ? MemorySegment.ofArray(new byte[0])
                    : channel.map(FileChannel.MapMode.READ_ONLY, 0, channel.size(), arena);
            return new ZipArchive(file, arena, mapped, readDirectory(file, mapped));
        } catch (IOException | RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    Map<String, Entry> entries() {
        return entries;
    }

    /** The entry's bytes (a view of the mapped file, valid until {@link #close}), CRC-checked on first use. */
    MemorySegment bytes(Entry entry) throws TorchFileException {
        MemorySegment data = mapped.asSlice(entry.dataStart(), entry.size());
        if (crcChecked.putIfAbsent(entry.name(), Boolean.TRUE) == null) {
            CRC32 crc = new CRC32();
            long chunk = 1 << 30;
            for (long done = 0; done < entry.size(); done += chunk) {
                crc.update(data.asSlice(done, Math.min(chunk, entry.size() - done)).asByteBuffer());
            }
            if ((int) crc.getValue() != entry.crc()) {
                crcChecked.remove(entry.name());
                throw new TorchFileException(file, "entry " + entry.name() + " fails its CRC-32 check (the file is"
                        + " corrupt)");
            }
        }
        return data;
    }

    @Override
    public void close() {
        arena.close();
    }

    private static Map<String, Entry> readDirectory(Path file, MemorySegment zip) throws TorchFileException {
        long size = zip.byteSize();
        long end = -1;
        for (long at = size - 22; at >= Math.max(0, size - 22 - MAX_COMMENT); at--) {
            if (zip.get(U32, at) == END_RECORD && at + 22 + u16(zip, at + 20) == size) {
                end = at;
                break;
            }
        }
        if (end < 0) {
            throw new TorchFileException(file, "no zip end-of-central-directory record: not a zip-format .pt"
                    + " (torch.save since 1.6), or truncated");
        }
        long count = u16(zip, end + 10);
        long directorySize = u32(zip, end + 12);
        long directoryStart = u32(zip, end + 16);
        if (count == 0xffff || directorySize == 0xffffffffL || directoryStart == 0xffffffffL) {
            long locator = end - 20;
            if (locator < 0 || zip.get(U32, locator) != ZIP64_LOCATOR) {
                throw new TorchFileException(file, "zip64 sizes without a zip64 locator");
            }
            long record = zip.get(U64, locator + 8);
            if (record < 0 || record > locator - 56 || zip.get(U32, record) != ZIP64_END_RECORD) {
                throw new TorchFileException(file, "zip64 end record offset " + record + " is not a zip64 end record");
            }
            count = zip.get(U64, record + 32);
            directorySize = zip.get(U64, record + 40);
            directoryStart = zip.get(U64, record + 48);
        }
        if (directoryStart < 0 || directorySize < 0 || directoryStart > end || directorySize > end - directoryStart
                || count < 0 || count > directorySize / 46) {
            throw new TorchFileException(file, "central directory (" + count + " entries, " + directorySize
                    + " bytes at " + directoryStart + ") does not fit before its end record at " + end);
        }
        Map<String, Entry> entries = new LinkedHashMap<>();
        long at = directoryStart;
        long directoryEnd = directoryStart + directorySize;
        for (long i = 0; i < count; i++) {
            if (at + 46 > directoryEnd || zip.get(U32, at) != CENTRAL_HEADER) {
                throw new TorchFileException(file, "central directory entry " + i + " at " + at + " is malformed");
            }
            int flags = u16(zip, at + 8);
            int method = u16(zip, at + 10);
            int crc = zip.get(U32, at + 16);
            long compressed = u32(zip, at + 20);
            long uncompressed = u32(zip, at + 24);
            int nameLength = u16(zip, at + 28);
            int extraLength = u16(zip, at + 30);
            int commentLength = u16(zip, at + 32);
            long localOffset = u32(zip, at + 42);
            long next = at + 46 + nameLength + extraLength + commentLength;
            if (next > directoryEnd) {
                throw new TorchFileException(file, "central directory entry " + i + " runs past the directory");
            }
            String name = new String(zip.asSlice(at + 46, nameLength).toArray(ValueLayout.JAVA_BYTE),
                    StandardCharsets.UTF_8);
            long[] wide = zip64(zip, at + 46 + nameLength, extraLength, uncompressed, compressed, localOffset);
            uncompressed = wide[0];
            compressed = wide[1];
            localOffset = wide[2];
            if ((flags & 1) != 0) {
                throw new TorchFileException(file, "entry " + name + " is encrypted");
            }
            if (method != 0 || compressed != uncompressed) {
                throw new TorchFileException(file, "entry " + name + " is compressed (method " + method
                        + "); torch.save stores every entry uncompressed");
            }
            if (localOffset < 0 || localOffset > directoryStart - 30 || zip.get(U32, localOffset) != LOCAL_HEADER) {
                throw new TorchFileException(file, "entry " + name + ": no local header at offset " + localOffset);
            }
            int localNameLength = u16(zip, localOffset + 26);
            long dataStart = localOffset + 30 + localNameLength + u16(zip, localOffset + 28);
            if (localNameLength != nameLength || !name.equals(new String(zip.asSlice(localOffset + 30,
                    localNameLength).toArray(ValueLayout.JAVA_BYTE), StandardCharsets.UTF_8))) {
                throw new TorchFileException(file, "entry " + name + ": its local header names another entry");
            }
            if (uncompressed < 0 || dataStart > directoryStart || uncompressed > directoryStart - dataStart) {
                throw new TorchFileException(file, "entry " + name + " declares " + uncompressed + " bytes at "
                        + dataStart + ", past the end of the entries (" + directoryStart + "): truncated or corrupt");
            }
            if (entries.put(name, new Entry(name, dataStart, uncompressed, crc)) != null) {
                throw new TorchFileException(file, "entry " + name + " appears twice");
            }
            at = next;
        }
        return Collections.unmodifiableMap(entries);
    }

    /** Replaces 32-bit fields saturated at 0xffffffff by their zip64 extra-field values, in the format's order. */
    private static long[] zip64(MemorySegment zip, long extra, int length, long uncompressed, long compressed,
            long offset) {
        long[] values = {uncompressed, compressed, offset};
        long at = extra;
        while (at + 4 <= extra + length) {
            int id = u16(zip, at);
            int size = u16(zip, at + 2);
            if (id == 1) {
                long field = at + 4;
                long fieldsEnd = Math.min(at + 4 + size, extra + length);
                for (int i = 0; i < 3 && field + 8 <= fieldsEnd; i++) {
                    if (values[i] == 0xffffffffL) {
                        values[i] = zip.get(U64, field);
                        field += 8;
                    }
                }
            }
            at += 4 + size;
        }
        return values;
    }

    private static int u16(MemorySegment zip, long at) {
        return zip.get(U16, at) & 0xffff;
    }

    private static long u32(MemorySegment zip, long at) {
        return zip.get(U32, at) & 0xffffffffL;
    }
}
