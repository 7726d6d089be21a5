package io.microdit.io.torch;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * The pickle (protocol 2) of a state dict, byte for byte the shape {@code torch.save} gives it: an
 * {@code OrderedDict} filled by SETITEMS in batches of 1000 (as Python's pickler batches), each value
 * {@code _rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())} whose storage is the persistent id
 * {@code ('storage', torch.<Type>Storage, key, 'cpu', numel)}. Nothing is memoised: unpicklers do not need it.
 */
final class StateDictPickle {
    private static final int BATCH = 1000;

    /** One tensor to pickle: its name, storage type and key, and shape (row-major, offset 0). */
    record Item(String name, StorageType type, String storageKey, int[] shape) {
    }

    private final ByteArrayOutputStream out = new ByteArrayOutputStream();

    private StateDictPickle() {
    }

    static byte[] of(List<Item> items) {
        StateDictPickle pickle = new StateDictPickle();
        pickle.write(items);
        return pickle.out.toByteArray();
    }

    private void write(List<Item> items) {
        out.write(0x80);
        out.write(2);
        global("collections", "OrderedDict");
        out.write(')');
        out.write('R');
        for (int start = 0; start < items.size(); start += BATCH) {
            List<Item> batch = items.subList(start, Math.min(items.size(), start + BATCH));
            if (batch.size() > 1) {
                out.write('(');
            }
            for (Item item : batch) {
                string(item.name());
                tensor(item);
            }
            out.write(batch.size() > 1 ? 'u' : 's');
        }
        out.write('.');
    }

    private void tensor(Item item) {
        global("torch._utils", "_rebuild_tensor_v2");
        out.write('(');
        out.write('(');
        string("storage");
        global("torch", item.type().className());
        string(item.storageKey());
        string("cpu");
        long numel = 1;
        for (int d : item.shape()) {
            numel *= d;
        }
        integer(numel);
        out.write('t');
        out.write('Q');
        integer(0);
        long[] stride = new long[item.shape().length];
        long step = 1;
        for (int i = stride.length - 1; i >= 0; i--) {
            stride[i] = step;
            step *= item.shape()[i];
        }
        out.write('(');
        for (int d : item.shape()) {
            integer(d);
        }
        out.write('t');
        out.write('(');
        for (long s : stride) {
            integer(s);
        }
        out.write('t');
        out.write(0x89);
        global("collections", "OrderedDict");
        out.write(')');
        out.write('R');
        out.write('t');
        out.write('R');
    }

    private void global(String module, String name) {
        out.write('c');
        out.writeBytes((module + "\n" + name + "\n").getBytes(StandardCharsets.US_ASCII));
    }

    private void string(String value) {
        byte[] utf8 = value.getBytes(StandardCharsets.UTF_8);
        out.write('X');
        littleEndian(utf8.length, 4);
        out.writeBytes(utf8);
    }

    /** The smallest encoding the pickler would choose: BININT1, BININT2, BININT, else LONG1. */
    private void integer(long value) {
        if (value >= 0 && value < 0x100) {
            out.write('K');
            out.write((int) value);
        } else if (value >= 0 && value < 0x10000) {
            out.write('M');
            littleEndian(value, 2);
        } else if (value >= Integer.MIN_VALUE && value <= Integer.MAX_VALUE) {
            out.write('J');
            littleEndian(value, 4);
        } else {
            int length = 8;
            while (length > 1 && (value >> (8 * (length - 1) - 1)) == (value >> 63)) {
                length--;
            }
            out.write(0x8a);
            out.write(length);
            littleEndian(value, length);
        }
    }

    private void littleEndian(long value, int bytes) {
        for (int i = 0; i < bytes; i++) {
            out.write((int) (value >>> (8 * i)) & 0xff);
        }
    }
}
