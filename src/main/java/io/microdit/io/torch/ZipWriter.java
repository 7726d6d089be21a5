package io.microdit.io.torch;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.CRC32;

/**
 * Writes a zip archive the way PyTorch's stream writer does: every entry stored, its data aligned to
 * {@value #ALIGNMENT} bytes by a padding extra field (id "FB") in the local header, so readers can map storages in
 * place; zip64 records only where a size or offset needs them. Dates are fixed, so equal inputs give equal bytes.
 */
final class ZipWriter {
    static final int ALIGNMENT = 64;
    private static final long SATURATED = 0xffffffffL;
    private static final short DOS_DATE_1980_01_01 = 0x21;
    private static final int PADDING_FIELD = 0x4246; // "FB" little-endian, the id PyTorch's writer uses

    private record Written(byte[] name, long size, int crc, long localOffset) {
        boolean wide() {
            return size >= SATURATED || localOffset >= SATURATED;
        }
    }

    private final FileChannel channel;
    private final List<Written> written = new ArrayList<>();
    private long offset;

    ZipWriter(FileChannel channel) {
        this.channel = channel;
    }

    void add(String name, MemorySegment data) throws IOException {
        byte[] nameBytes = name.getBytes(StandardCharsets.UTF_8);
        CRC32 crc = new CRC32();
        long chunk = 1 << 30;
        for (long done = 0; done < data.byteSize(); done += chunk) {
            crc.update(data.asSlice(done, Math.min(chunk, data.byteSize() - done)).asByteBuffer());
        }
        long size = data.byteSize();
        boolean wideSize = size >= SATURATED;
        int zip64Length = wideSize ? 4 + 16 : 0;
        long headerEnd = offset + 30 + nameBytes.length + zip64Length;
        int padding = (int) Math.floorMod(-(headerEnd + 4), (long) ALIGNMENT);
        ByteBuffer header = buffer(30 + nameBytes.length + zip64Length + 4 + padding);
        header.putInt(0x04034b50).putShort((short) (wideSize ? 45 : 20)).putShort((short) 0).putShort((short) 0)
                .putShort((short) 0).putShort(DOS_DATE_1980_01_01).putInt((int) crc.getValue())
                .putInt((int) Math.min(size, SATURATED)).putInt((int) Math.min(size, SATURATED))
                .putShort((short) nameBytes.length).putShort((short) (zip64Length + 4 + padding)).put(nameBytes);
        if (wideSize) {
            header.putShort((short) 1).putShort((short) 16).putLong(size).putLong(size);
        }
        header.putShort((short) PADDING_FIELD).putShort((short) padding);
        while (header.hasRemaining()) {
            header.put((byte) 'Z');
        }
        written.add(new Written(nameBytes, size, (int) crc.getValue(), offset));
        write(header.flip());
        for (long done = 0; done < size; done += chunk) {
            write(data.asSlice(done, Math.min(chunk, size - done)).asByteBuffer());
        }
    }

    /** Writes the central directory and end records; the archive is complete afterwards. */
    void finish() throws IOException {
        long directoryStart = offset;
        for (Written entry : written) {
            List<Long> wide = new ArrayList<>();
            if (entry.size() >= SATURATED) {
                wide.add(entry.size());
                wide.add(entry.size());
            }
            if (entry.localOffset() >= SATURATED) {
                wide.add(entry.localOffset());
            }
            int extraLength = wide.isEmpty() ? 0 : 4 + 8 * wide.size();
            ByteBuffer header = buffer(46 + entry.name().length + extraLength);
            header.putInt(0x02014b50).putShort((short) (entry.wide() ? 45 : 20))
                    .putShort((short) (entry.wide() ? 45 : 20)).putShort((short) 0).putShort((short) 0)
                    .putShort((short) 0).putShort(DOS_DATE_1980_01_01).putInt(entry.crc())
                    .putInt((int) Math.min(entry.size(), SATURATED)).putInt((int) Math.min(entry.size(), SATURATED))
                    .putShort((short) entry.name().length).putShort((short) extraLength).putShort((short) 0)
                    .putShort((short) 0).putShort((short) 0).putInt(0)
                    .putInt((int) Math.min(entry.localOffset(), SATURATED)).put(entry.name());
            if (!wide.isEmpty()) {
                header.putShort((short) 1).putShort((short) (8 * wide.size()));
                wide.forEach(header::putLong);
            }
            write(header.flip());
        }
        long directorySize = offset - directoryStart;
        boolean zip64 = directoryStart >= SATURATED || directorySize >= SATURATED || written.size() >= 0xffff;
        if (zip64) {
            long record = offset;
            ByteBuffer end64 = buffer(56 + 20);
            end64.putInt(0x06064b50).putLong(44).putShort((short) 45).putShort((short) 45).putInt(0).putInt(0)
                    .putLong(written.size()).putLong(written.size()).putLong(directorySize).putLong(directoryStart);
            end64.putInt(0x07064b50).putInt(0).putLong(record).putInt(1);
            write(end64.flip());
        }
        ByteBuffer end = buffer(22);
        short count = (short) (zip64 ? 0xffff : written.size());
        end.putInt(0x06054b50).putShort((short) 0).putShort((short) 0).putShort(count).putShort(count)
                .putInt((int) Math.min(directorySize, SATURATED))
                .putInt((int) (zip64 ? SATURATED : directoryStart)).putShort((short) 0);
        write(end.flip());
    }

    private static ByteBuffer buffer(int size) {
        return ByteBuffer.allocate(size).order(ByteOrder.LITTLE_ENDIAN);
    }

    private void write(ByteBuffer buffer) throws IOException {
        offset += buffer.remaining();
        while (buffer.hasRemaining()) {
            channel.write(buffer);
        }
    }
}
