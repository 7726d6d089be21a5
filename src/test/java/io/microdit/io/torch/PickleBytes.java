package io.microdit.io.torch;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Map;

/**
 * Builds pickles opcode by opcode, per the pickle protocol (Lib/pickletools.py documents each opcode), so tests
 * can write the files torch.save writes and the ones an attacker would, independently of the writer under test.
 */
public final class PickleBytes {
    private final ByteArrayOutputStream out = new ByteArrayOutputStream();

    public PickleBytes proto(int protocol) {
        return op(0x80).op(protocol);
    }

    public PickleBytes op(int... bytes) {
        for (int b : bytes) {
            out.write(b);
        }
        return this;
    }

    /** GLOBAL: {@code c module\nname\n}. */
    public PickleBytes global(String module, String name) {
        op('c');
        out.writeBytes((module + "\n" + name + "\n").getBytes(StandardCharsets.US_ASCII));
        return this;
    }

    /** BINUNICODE: {@code X}, 4-byte little-endian length, UTF-8. */
    public PickleBytes string(String value) {
        byte[] utf8 = value.getBytes(StandardCharsets.UTF_8);
        return op('X').little(utf8.length, 4).raw(utf8);
    }

    /** BININT1 below 256, else BININT (4 bytes), else LONG1 with 8 bytes. */
    public PickleBytes integer(long value) {
        if (value >= 0 && value < 256) {
            return op('K', (int) value);
        }
        if (value == (int) value) {
            return op('J').little(value, 4);
        }
        return op(0x8a, 8).little(value, 8);
    }

    public PickleBytes mark() {
        return op('(');
    }

    public PickleBytes tuple() {
        return op('t');
    }

    public PickleBytes reduce() {
        return op('R');
    }

    public PickleBytes stop() {
        return op('.');
    }

    public PickleBytes little(long value, int bytes) {
        for (int i = 0; i < bytes; i++) {
            out.write((int) (value >>> (8 * i)) & 0xff);
        }
        return this;
    }

    public PickleBytes raw(byte[] bytes) {
        out.writeBytes(bytes);
        return this;
    }

    /** {@code collections.OrderedDict()}. */
    public PickleBytes orderedDict() {
        return global("collections", "OrderedDict").op(')').reduce();
    }

    /** The persistent id {@code ('storage', torch.<type>, key, 'cpu', numel)} and BINPERSID. */
    public PickleBytes storage(String type, String key, long numel) {
        return mark().string("storage").global("torch", type).string(key).string("cpu").integer(numel).tuple()
                .op('Q');
    }

    /** {@code _rebuild_tensor_v2(<storage already on the stack>, offset, size, stride, False, OrderedDict())}. */
    public PickleBytes rebuildTensorAround(Runnable storage, long offset, long[] size, long[] stride) {
        global("torch._utils", "_rebuild_tensor_v2").mark();
        storage.run();
        integer(offset).mark();
        for (long s : size) {
            integer(s);
        }
        tuple().mark();
        for (long s : stride) {
            integer(s);
        }
        return tuple().op(0x89).orderedDict().tuple().reduce();
    }

    /** A contiguous tensor over a whole new storage. */
    public PickleBytes tensor(String type, String key, long... shape) {
        long[] stride = new long[shape.length];
        long step = 1;
        for (int i = shape.length - 1; i >= 0; i--) {
            stride[i] = step;
            step *= shape[i];
        }
        long numel = step;
        return rebuildTensorAround(() -> storage(type, key, numel), 0, shape, stride);
    }

    public byte[] bytes() {
        return out.toByteArray();
    }

    /**
     * Writes a torch.save-shaped archive: {@code archive/data.pkl}, {@code archive/byteorder} (when not null),
     * {@code archive/data/<key>} per storage and {@code archive/version}.
     */
    public static Path archive(Path file, byte[] pickle, Map<String, byte[]> storages, String byteOrder)
            throws IOException {
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            ZipWriter zip = new ZipWriter(channel);
            zip.add("archive/data.pkl", MemorySegment.ofArray(pickle));
            if (byteOrder != null) {
                zip.add("archive/byteorder", MemorySegment.ofArray(byteOrder.getBytes(StandardCharsets.US_ASCII)));
            }
            for (Map.Entry<String, byte[]> storage : storages.entrySet()) {
                zip.add("archive/data/" + storage.getKey(), MemorySegment.ofArray(storage.getValue()));
            }
            zip.add("archive/version", MemorySegment.ofArray("3\n".getBytes(StandardCharsets.US_ASCII)));
            zip.finish();
        }
        return file;
    }
}
