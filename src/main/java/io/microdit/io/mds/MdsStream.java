package io.microdit.io.mds;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One MDS dataset folder ({@code index.json} and the shards it lists), what MosaicML Streaming calls a stream's
 * local directory. Every shard is opened and checked when the stream is ({@link MdsShard}); uncompressed shards are
 * memory-mapped, zstd shards decompressed into memory; both belong to this stream and are released by
 * {@link #close()}. Samples are numbered through the shards in index order.
 */
public final class MdsStream implements AutoCloseable {
    private final Path folder;
    private final Arena arena = Arena.ofShared();
    private final List<MdsShard> shards = new ArrayList<>();
    private final int[] shardStart;
    private final List<String> columnNames;
    private final List<MdsEncoding> encodings;
    private final List<String> uncheckedHashes = new ArrayList<>();

    private MdsStream(Path folder) throws MdsException {
        this.folder = folder;
        Path indexFile = folder.resolve(MdsIndex.FILE);
        if (!Files.isRegularFile(indexFile)) {
            throw new MdsException(folder + ": no " + MdsIndex.FILE + " (an MDS dataset folder holds index.json and "
                    + "shard.NNNNN.mds files)");
        }
        List<MdsIndex.Shard> entries = MdsIndex.read(indexFile);
        shardStart = new int[entries.size() + 1];
        try {
            openShards(indexFile, entries);
        } catch (MdsException | RuntimeException e) {
            arena.close();
            throw e;
        }
        this.columnNames = entries.isEmpty() ? List.of() : entries.getFirst().columnNames();
        this.encodings = entries.isEmpty() ? List.of() : entries.getFirst().columnEncodings();
    }

    private void openShards(Path indexFile, List<MdsIndex.Shard> entries) throws MdsException {
        List<String> names = null;
        List<MdsEncoding> kinds = null;
        for (int i = 0; i < entries.size(); i++) {
            MdsIndex.Shard entry = entries.get(i);
            List<String> entryKinds = entry.columnEncodings().stream().map(MdsEncoding::name).toList();
            if (names == null) {
                names = entry.columnNames();
                kinds = entry.columnEncodings();
            } else if (!names.equals(entry.columnNames())
                    || !kinds.stream().map(MdsEncoding::name).toList().equals(entryKinds)) {
                throw new MdsException(indexFile + ": shards[" + i + "] has columns " + entry.columnNames() + " "
                        + entryKinds + ", shards[0] has " + names + " " + kinds);
            }
            long end = shardStart[i] + entry.samples();
            if (end > Integer.MAX_VALUE) {
                throw new MdsException(indexFile + ": more than 2^31 - 1 samples");
            }
            shardStart[i + 1] = (int) end;
            shards.add(MdsShard.open(folder, entry, arena, uncheckedHashes));
        }
    }

    /** Opens and checks the dataset in {@code folder}. */
    public static MdsStream open(Path folder) throws MdsException {
        return new MdsStream(folder);
    }

    /** The dataset folder this stream was opened from, for messages. */
    public Path folder() {
        return folder;
    }

    /** Number of samples over all shards. */
    public int size() {
        return shardStart[shards.size()];
    }

    /** The column names, in the order samples store them. */
    public List<String> columnNames() {
        return columnNames;
    }

    /** The encoding of {@code column}, as the index names it, or null when there is no such column. */
    public String encoding(String column) {
        int c = columnNames.indexOf(column);
        return c < 0 ? null : encodings.get(c).name();
    }

    /** Digests the index lists that this reader cannot compute ("file: algorithm"); the others were checked. */
    public List<String> uncheckedHashes() {
        return List.copyOf(uncheckedHashes);
    }

    /** Sample {@code index}'s columns decoded (see {@link MdsEncoding} for the Java type of each encoding). */
    public Map<String, Object> read(int index) throws MdsException {
        int s = shardOf(index);
        MdsShard shard = shards.get(s);
        int local = index - shardStart[s];
        MemorySegment[] columns = shard.columns(local);
        Map<String, Object> out = new LinkedHashMap<>();
        for (int c = 0; c < columns.length; c++) {
            try {
                out.put(columnNames.get(c), encodings.get(c).decode(columns[c]));
            } catch (IllegalArgumentException e) {
                throw new MdsException(shard.name() + ": sample " + local + ": column '" + columnNames.get(c) + "': "
                        + e.getMessage(), e);
            }
        }
        return out;
    }

    /**
     * The stored bytes of {@code column} in sample {@code index}, without a copy: a view of the mapped shard, valid
     * until this stream is closed.
     */
    public MemorySegment column(int index, String column) throws MdsException {
        int c = columnNames.indexOf(column);
        if (c < 0) {
            throw new MdsException(folder + ": no column '" + column + "' (columns: " + columnNames + ")");
        }
        int s = shardOf(index);
        return shards.get(s).columns(index - shardStart[s])[c];
    }

    /** "file: sample k", the place sample {@code index} is stored, for messages. */
    public String locate(int index) {
        int s = shardOf(index);
        return shards.get(s).name() + ": sample " + (index - shardStart[s]);
    }

    private int shardOf(int index) {
        if (index < 0 || index >= size()) {
            throw new IndexOutOfBoundsException("sample " + index + " of " + size() + " in " + folder);
        }
        int s = Arrays.binarySearch(shardStart, index);
        s = s >= 0 ? s : -s - 2;
        while (shardStart[s + 1] <= index) {
            s++; // skips empty shards
        }
        return s;
    }

    @Override
    public void close() {
        arena.close();
    }
}
