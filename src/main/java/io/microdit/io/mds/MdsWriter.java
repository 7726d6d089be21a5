package io.microdit.io.mds;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Writes an MDS dataset folder as MosaicML Streaming's {@code MDSWriter} does: columns sorted by name, samples
 * gathered into shards of at most {@code sizeLimit} bytes (counting 4 bytes of offset per sample and the header),
 * each shard {@code shard.NNNNN.mds} (or, compressed, only {@code shard.NNNNN.mds.zstd}), and {@code index.json}
 * when closed. The layout is {@link MdsShard}'s.
 */
public final class MdsWriter implements AutoCloseable {
    /** Streaming's default shard size limit, 64 MiB. */
    public static final long DEFAULT_SIZE_LIMIT = 1L << 26;

    private final Path folder;
    private final List<String> names = new ArrayList<>();
    private final List<MdsEncoding> encodings = new ArrayList<>();
    private final String compression;
    private final List<String> hashes;
    private final Long sizeLimit;
    private final byte[] config;
    private final List<byte[]> pending = new ArrayList<>();
    private final List<MdsIndex.Shard> written = new ArrayList<>();
    private long pendingBytes;
    private long samplesWritten;
    private boolean closed;

    /**
     * A writer into {@code folder} (created if missing) of samples with {@code columns} (name → encoding name),
     * compressed with {@code compression} (null, {@code zstd} or {@code zstd:L}), listing the {@code hashes} digests
     * ({@code sha1}, {@code md5}, {@code xxh64}, …) of every file, in shards of at most {@code sizeLimit} bytes
     * (0 for no limit).
     */
    public MdsWriter(Path folder, Map<String, String> columns, String compression, List<String> hashes,
                     long sizeLimit) throws MdsException {
        if (columns.isEmpty()) {
            throw new IllegalArgumentException("an MDS dataset needs at least one column");
        }
        for (Map.Entry<String, String> c : new TreeMap<>(columns).entrySet()) {
            names.add(c.getKey());
            encodings.add(MdsEncoding.parse(c.getValue()));
        }
        if (compression != null) {
            MdsCompression.check(compression);
        }
        for (String h : hashes) {
            if (!MdsHashes.supported(h)) {
                throw new IllegalArgumentException("hash '" + h + "' cannot be written (supported: "
                        + MdsHashes.supportedNames() + ")");
            }
        }
        if (sizeLimit < 0 || sizeLimit > MdsIndex.MAX_SAMPLES) {
            throw new IllegalArgumentException("size limit must be in [0, 2^32), got " + sizeLimit);
        }
        this.folder = folder;
        this.compression = compression;
        this.hashes = hashes.stream().sorted().toList();
        this.sizeLimit = sizeLimit == 0 ? null : sizeLimit;
        this.config = PythonJson.write(shard(0, null, null).config()).getBytes(StandardCharsets.UTF_8);
        this.pendingBytes = headerBytes();
        try {
            Files.createDirectories(folder);
        } catch (IOException e) {
            throw new MdsException(folder + ": " + e.getMessage(), e);
        }
    }

    private MdsIndex.Shard shard(long samples, MdsIndex.FileInfo raw, MdsIndex.FileInfo zip) {
        return new MdsIndex.Shard(List.copyOf(names), List.copyOf(encodings), compression, raw, zip, samples,
                sizeLimit, hashes);
    }

    private long headerBytes() {
        return 4 + 4 + config.length;
    }

    /** Adds a sample: a value for every column, of the Java type its encoding takes ({@link MdsEncoding}). */
    public void write(Map<String, ?> sample) throws MdsException {
        if (closed) {
            throw new IllegalStateException("the writer is closed");
        }
        if (!sample.keySet().equals(new HashSet<>(names))) {
            throw new IllegalArgumentException("sample " + samplesWritten + " has columns " + sample.keySet()
                    + ", the dataset " + names);
        }
        ByteArrayOutputStream head = new ByteArrayOutputStream();
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        for (int c = 0; c < names.size(); c++) {
            byte[] datum;
            try {
                datum = encodings.get(c).encode(sample.get(names.get(c)));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("sample " + samplesWritten + ", column '" + names.get(c) + "': "
                        + e.getMessage(), e);
            }
            if (encodings.get(c).fixedSize() < 0) {
                head.writeBytes(u32(datum.length));
            }
            body.writeBytes(datum);
        }
        head.writeBytes(body.toByteArray());
        byte[] encoded = head.toByteArray();
        long size = encoded.length + 4L;
        if (sizeLimit != null && sizeLimit < pendingBytes + size && !pending.isEmpty()) {
            flush();
        }
        if (pendingBytes + size > MdsIndex.MAX_SAMPLES) {
            throw new IllegalArgumentException("sample " + samplesWritten + " would take its shard past 4 GiB, "
                    + "which uint32 offsets cannot address");
        }
        pending.add(encoded);
        pendingBytes += size;
        samplesWritten++;
    }

    private static byte[] u32(long value) {
        return ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt((int) value).array();
    }

    private void flush() throws MdsException {
        int n = pending.size();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(u32(n));
        long offset = 4L * (n + 2) + config.length;
        out.writeBytes(u32(offset));
        for (byte[] sample : pending) {
            offset += sample.length;
            out.writeBytes(u32(offset));
        }
        out.writeBytes(config);
        for (byte[] sample : pending) {
            out.writeBytes(sample);
        }
        byte[] raw = out.toByteArray();
        String rawName = String.format("shard.%05d.mds", written.size());
        MdsIndex.FileInfo rawInfo = info(rawName, raw);
        MdsIndex.FileInfo zipInfo = null;
        byte[] stored = raw;
        if (compression != null) {
            stored = MdsCompression.compress(compression, raw);
            zipInfo = info(rawName + "." + MdsCompression.extension(compression), stored);
        }
        Path file = folder.resolve(compression == null ? rawName : zipInfo.basename());
        try {
            Files.write(file, stored);
        } catch (IOException e) {
            throw new MdsException(file + ": " + e.getMessage(), e);
        }
        written.add(shard(n, rawInfo, zipInfo));
        pending.clear();
        pendingBytes = headerBytes();
    }

    private MdsIndex.FileInfo info(String basename, byte[] data) {
        Map<String, String> digests = new LinkedHashMap<>();
        for (String h : hashes) {
            digests.put(h, MdsHashes.digest(h, MemorySegment.ofArray(data)));
        }
        return new MdsIndex.FileInfo(basename, data.length, digests);
    }

    /** Writes the last shard and {@code index.json}. */
    @Override
    public void close() throws MdsException {
        if (closed) {
            return;
        }
        closed = true;
        if (!pending.isEmpty()) {
            flush();
        }
        Map<String, Object> index = new LinkedHashMap<>();
        index.put("shards", written.stream().map(MdsIndex.Shard::toJson).toList());
        index.put("version", 2L);
        Path file = folder.resolve(MdsIndex.FILE);
        try {
            Files.writeString(file, PythonJson.write(index), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new MdsException(file + ": " + e.getMessage(), e);
        }
    }
}
