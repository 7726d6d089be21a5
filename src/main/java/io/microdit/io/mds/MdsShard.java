package io.microdit.io.mds;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Map;

/**
 * One MDS shard file, memory-mapped (or, when compressed, decompressed into memory), with every structural fact
 * checked when it is opened so that reading a sample afterwards cannot run outside it. The raw layout, all
 * integers little-endian uint32:
 * <pre>
 *   n | offsets[0..n] | writer config (JSON) | sample 0 | … | sample n-1
 * </pre>
 * where {@code offsets[i]} is sample i's first byte from the start of the file and {@code offsets[n]} the file's
 * size. A sample is the sizes of its variable-size columns (uint32 each, in column order) then every column's
 * bytes, in column order (the columns sorted by name, as the writer stores them).
 */
final class MdsShard {
    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final String name;
    /** "the index (…/index.json)": a shard that disagrees with it may be its fault, so messages name both files. */
    private final String index;
    private final MdsIndex.Shard entry;
    private final MemorySegment data;
    private final int samples;

    private MdsShard(String name, String index, MdsIndex.Shard entry, MemorySegment data) {
        this.name = name;
        this.index = index;
        this.entry = entry;
        this.data = data;
        this.samples = (int) entry.samples();
    }

    /**
     * Opens the shard {@code entry} describes in {@code folder}, its memory belonging to {@code arena}; digests the
     * index lists are checked, and the names of those that cannot be are added to {@code unchecked}.
     */
    static MdsShard open(Path folder, MdsIndex.Shard entry, Arena arena, List<String> unchecked)
            throws MdsException {
        String index = "the index (" + folder.resolve("index.json") + ")";
        MdsIndex.FileInfo stored = entry.stored();
        Path file = folder.resolve(stored.basename());
        if (entry.samples() > Integer.MAX_VALUE - 2) {
            throw new MdsException(file + ": " + entry.samples() + " samples in one shard are more than this reader "
                    + "takes (2^31 - 3)");
        }
        MemorySegment raw = map(file, index, arena);
        String name = file.toString();
        if (entry.zipData() != null) {
            if (raw.byteSize() != stored.bytes()) {
                throw new MdsException(name + ": " + raw.byteSize() + " bytes, " + index + " says " + stored.bytes()
                        + (raw.byteSize() < stored.bytes() ? " (truncated)" : ""));
            }
            verify(name, index, raw, stored.hashes(), unchecked);
            raw = MdsCompression.decompress(raw, entry.rawData().bytes(), arena, name, index);
            name = file + " (decompressed)";
        }
        MdsShard shard = new MdsShard(name, index, entry, raw);
        // The layout first, so that a cut file is reported with the first sample it lost.
        shard.checkLayout();
        verify(name, index, raw, entry.rawData().hashes(), unchecked);
        return shard;
    }

    private static MemorySegment map(Path file, String index, Arena arena) throws MdsException {
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            // Mapping reads nothing: pages are faulted in only as samples are read.
            return channel.map(FileChannel.MapMode.READ_ONLY, 0, channel.size(), arena);
        } catch (NoSuchFileException e) {
            throw new MdsException(file + ": " + index + " lists this shard, but there is no such file", e);
        } catch (IOException e) {
            throw new MdsException(file + ": " + e.getMessage(), e);
        }
    }

    private static void verify(String name, String index, MemorySegment data, Map<String, String> hashes,
                               List<String> unchecked) throws MdsException {
        for (Map.Entry<String, String> h : hashes.entrySet()) {
            if (!MdsHashes.supported(h.getKey())) {
                unchecked.add(name + ": " + h.getKey());
                continue;
            }
            String actual = MdsHashes.digest(h.getKey(), data);
            if (!actual.equalsIgnoreCase(h.getValue())) {
                throw new MdsException(name + ": " + h.getKey() + " is " + actual + ", " + index + " says "
                        + h.getValue());
            }
        }
    }

    private long u32(long at) {
        return data.get(U32, at) & 0xffffffffL;
    }

    /** Checks the header, the offsets table and every sample's column sizes against the index. */
    private void checkLayout() throws MdsException {
        long size = data.byteSize();
        long tableEnd = 4L * (samples + 2);
        if (size < 4) {
            throw new MdsException(name + ": " + size + " bytes, too short for the sample count (truncated)");
        }
        long count = u32(0);
        if (count != samples) {
            throw new MdsException(name + ": holds " + count + " samples, " + index + " says " + samples);
        }
        if (size < tableEnd) {
            throw new MdsException(name + ": " + size + " bytes end inside the offsets table of " + samples
                    + " samples (" + tableEnd + " bytes; truncated)");
        }
        long previous = u32(4);
        if (previous < tableEnd) {
            throw new MdsException(name + ": sample 0 starts at offset " + previous + ", inside the header ("
                    + tableEnd + " bytes)");
        }
        for (int i = 0; i < samples; i++) {
            long end = u32(4L * (i + 2));
            if (end < previous) {
                throw new MdsException(name + ": sample " + i + " ends at offset " + end + ", before it starts ("
                        + previous + ")");
            }
            if (end > size) {
                throw new MdsException(name + ": sample " + i + " ends at offset " + end + ", beyond the file's "
                        + size + " bytes (truncated)");
            }
            previous = end;
        }
        if (previous != size) {
            throw new MdsException(name + ": the samples end at offset " + previous + " but the file has " + size
                    + " bytes");
        }
        long declared = entry.rawData().bytes();
        if (size != declared) {
            throw new MdsException(name + ": " + size + " bytes, " + index + " says " + declared);
        }
        for (int i = 0; i < samples; i++) {
            columns(i);
        }
    }

    String name() {
        return name;
    }

    /** The bytes of every column of sample {@code i}, in the index's column order. */
    MemorySegment[] columns(int i) throws MdsException {
        long begin = u32(4L * (i + 1));
        long end = u32(4L * (i + 2));
        List<MdsEncoding> encodings = entry.columnEncodings();
        long[] sizes = new long[encodings.size()];
        long at = begin;
        for (int c = 0; c < sizes.length; c++) {
            sizes[c] = encodings.get(c).fixedSize();
            if (sizes[c] < 0) {
                if (at + 4 > end) {
                    throw new MdsException(name + ": sample " + i + ": its " + (end - begin) + " bytes end inside "
                            + "the sizes of its variable-size columns");
                }
                sizes[c] = u32(at);
                at += 4;
            }
        }
        MemorySegment[] out = new MemorySegment[sizes.length];
        for (int c = 0; c < sizes.length; c++) {
            if (sizes[c] > end - at) {
                throw new MdsException(name + ": sample " + i + ": column '" + entry.columnNames().get(c) + "' ("
                        + encodings.get(c) + ") of " + sizes[c] + " bytes runs past the sample's end");
            }
            out[c] = data.asSlice(at, sizes[c]);
            at += sizes[c];
        }
        if (at != end) {
            throw new MdsException(name + ": sample " + i + ": its columns take " + (at - begin) + " of its "
                    + (end - begin) + " bytes");
        }
        return out;
    }
}
