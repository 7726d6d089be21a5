package io.microdit.io.mds;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * One MDS column encoding, as named in an index's {@code column_encodings}, with its value's bytes (all numbers
 * little-endian, as NumPy writes them):
 * <ul>
 *   <li>{@code bytes} (a {@code byte[]}) and {@code str} (a {@code String}, UTF-8): the bytes as they are, variable
 *       size;</li>
 *   <li>{@code int} (NumPy int64) and the scalars {@code uint8} … {@code int64} (a {@code Long}; a {@code uint64}
 *       above {@code Long.MAX_VALUE} reads as the negative long with the same bits), {@code float16},
 *       {@code float32}, {@code float64} (a {@code Double}): fixed size;</li>
 *   <li>{@code ndarray[:dtype[:d0,d1,…]]} (an {@link MdsArray}): a dtype byte unless the encoding fixes the dtype,
 *       then, unless it fixes the shape, one byte {@code ndim << 2 | w} and the {@code ndim} dimensions as unsigned
 *       integers of {@code 1 << w} bytes, then the elements; fixed size when both dtype and shape are given.</li>
 * </ul>
 * The pickled, JSON, image and stringified-number encodings are not read: a column using one is refused.
 */
public final class MdsEncoding {
    /** NumPy dtypes an {@code ndarray} may hold, with the codes MDS writes for them (the code's bits / 8 is the
     * element size). */
    static final Map<String, Integer> ARRAY_DTYPES = new LinkedHashMap<>();
    static final int MAX_ARRAY_RANK = 63;

    static {
        ARRAY_DTYPES.put("uint8", 8);
        ARRAY_DTYPES.put("int8", 9);
        ARRAY_DTYPES.put("uint16", 16);
        ARRAY_DTYPES.put("int16", 17);
        ARRAY_DTYPES.put("float16", 18);
        ARRAY_DTYPES.put("uint32", 32);
        ARRAY_DTYPES.put("int32", 33);
        ARRAY_DTYPES.put("float32", 34);
        ARRAY_DTYPES.put("uint64", 64);
        ARRAY_DTYPES.put("int64", 65);
        ARRAY_DTYPES.put("float64", 66);
    }

    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt INT = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong LONG = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private enum Kind { BYTES, STR, INTEGER, FLOAT, ARRAY }

    private final String name;
    private final Kind kind;
    /** Scalars: the width in bytes; arrays: the fixed dtype's element width, or 0. */
    private final int width;
    private final boolean unsigned;
    private final String arrayDtype;
    private final long[] arrayShape;
    private final long size;

    private MdsEncoding(String name, Kind kind, int width, boolean unsigned, String arrayDtype, long[] arrayShape) {
        this.name = name;
        this.kind = kind;
        this.width = width;
        this.unsigned = unsigned;
        this.arrayDtype = arrayDtype;
        this.arrayShape = arrayShape;
        if (kind == Kind.INTEGER || kind == Kind.FLOAT) {
            size = width;
        } else if (kind == Kind.ARRAY && arrayDtype != null && arrayShape != null) {
            long count = 1;
            for (long d : arrayShape) {
                count = Math.multiplyExact(count, d);
            }
            size = Math.multiplyExact(count, width);
        } else {
            size = -1;
        }
    }

    /** The encoding an index names, or an error for one this reader does not support. */
    public static MdsEncoding parse(String text) {
        return switch (text) {
            case "bytes" -> new MdsEncoding(text, Kind.BYTES, 0, false, null, null);
            case "str" -> new MdsEncoding(text, Kind.STR, 0, false, null, null);
            case "int", "int64" -> new MdsEncoding(text, Kind.INTEGER, 8, false, null, null);
            case "uint8" -> new MdsEncoding(text, Kind.INTEGER, 1, true, null, null);
            case "uint16" -> new MdsEncoding(text, Kind.INTEGER, 2, true, null, null);
            case "uint32" -> new MdsEncoding(text, Kind.INTEGER, 4, true, null, null);
            case "uint64" -> new MdsEncoding(text, Kind.INTEGER, 8, true, null, null);
            case "int8" -> new MdsEncoding(text, Kind.INTEGER, 1, false, null, null);
            case "int16" -> new MdsEncoding(text, Kind.INTEGER, 2, false, null, null);
            case "int32" -> new MdsEncoding(text, Kind.INTEGER, 4, false, null, null);
            case "float16" -> new MdsEncoding(text, Kind.FLOAT, 2, false, null, null);
            case "float32" -> new MdsEncoding(text, Kind.FLOAT, 4, false, null, null);
            case "float64" -> new MdsEncoding(text, Kind.FLOAT, 8, false, null, null);
            default -> text.equals("ndarray") || text.startsWith("ndarray:") ? array(text)
                    : unsupported(text, "this reader takes bytes, str, int, uint8…int64, float16/32/64 and ndarray");
        };
    }

    private static MdsEncoding array(String text) {
        String[] parts = text.split(":", -1);
        if (parts.length > 3) {
            return unsupported(text, "an ndarray encoding is ndarray[:dtype[:d0,d1,…]]");
        }
        String dtype = parts.length > 1 ? parts[1] : null;
        if (dtype != null && !ARRAY_DTYPES.containsKey(dtype)) {
            return unsupported(text, "ndarray dtypes are " + ARRAY_DTYPES.keySet());
        }
        long[] shape = null;
        if (parts.length > 2) {
            String[] dims = parts[2].split(",", -1);
            if (dims.length > MAX_ARRAY_RANK) {
                return unsupported(text, "at most " + MAX_ARRAY_RANK + " axes");
            }
            shape = new long[dims.length];
            for (int i = 0; i < dims.length; i++) {
                try {
                    shape[i] = Long.parseLong(dims[i].strip());
                } catch (NumberFormatException e) {
                    return unsupported(text, "the shape is a comma-separated list of positive integers");
                }
                if (shape[i] < 1 || shape[i] > Integer.MAX_VALUE) {
                    return unsupported(text, "dimensions are positive integers");
                }
            }
        }
        try {
            return new MdsEncoding(text, Kind.ARRAY, dtype == null ? 0 : elementBytes(dtype), false, dtype, shape);
        } catch (ArithmeticException e) {
            return unsupported(text, "the shape's size overflows");
        }
    }

    private static MdsEncoding unsupported(String text, String why) {
        throw new IllegalArgumentException("unsupported MDS encoding '" + text + "': " + why);
    }

    /** The element size of an ndarray dtype, or -1 for a name MDS does not define. */
    static int elementBytes(String dtype) {
        Integer code = ARRAY_DTYPES.get(dtype);
        return code == null ? -1 : Math.max(1, code >> 3);
    }

    /** The name the index uses. */
    public String name() {
        return name;
    }

    /** The encoded size in bytes when every value has it (the index's {@code column_sizes} entry), else -1. */
    public long fixedSize() {
        return size;
    }

    /** The value stored in {@code data} (exactly one value's bytes), or an error saying what is wrong with them. */
    public Object decode(MemorySegment data) {
        long n = data.byteSize();
        if (size >= 0 && n != size) {
            throw new IllegalArgumentException(name + " takes " + size + " bytes, got " + n);
        }
        return switch (kind) {
            case BYTES -> data.toArray(ValueLayout.JAVA_BYTE);
            case STR -> utf8(data.toArray(ValueLayout.JAVA_BYTE));
            case INTEGER -> switch (width) {
                case 1 -> unsigned ? (long) (data.get(ValueLayout.JAVA_BYTE, 0) & 0xff)
                        : (long) data.get(ValueLayout.JAVA_BYTE, 0);
                case 2 -> unsigned ? (long) (data.get(SHORT, 0) & 0xffff) : (long) data.get(SHORT, 0);
                case 4 -> unsigned ? data.get(INT, 0) & 0xffffffffL : (long) data.get(INT, 0);
                default -> data.get(LONG, 0);
            };
            case FLOAT -> switch (width) {
                case 2 -> (double) Float.float16ToFloat(data.get(SHORT, 0));
                case 4 -> (double) Float.intBitsToFloat(data.get(INT, 0));
                default -> Double.longBitsToDouble(data.get(LONG, 0));
            };
            case ARRAY -> decodeArray(data);
        };
    }

    private static String utf8(byte[] bytes) {
        try {
            return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(bytes)).toString();
        } catch (CharacterCodingException e) {
            throw new IllegalArgumentException("a str value is not valid UTF-8");
        }
    }

    private MdsArray decodeArray(MemorySegment data) {
        long at = 0;
        long n = data.byteSize();
        String dtype = arrayDtype;
        if (dtype == null) {
            need(at + 1, n, "its dtype byte");
            int code = data.get(ValueLayout.JAVA_BYTE, at++) & 0xff;
            dtype = ARRAY_DTYPES.entrySet().stream().filter(e -> e.getValue() == code).map(Map.Entry::getKey)
                    .findFirst().orElseThrow(() -> new IllegalArgumentException("ndarray dtype code " + code
                            + " is none of MDS's " + ARRAY_DTYPES.values()));
        }
        long[] shape = arrayShape;
        if (shape == null) {
            need(at + 1, n, "its shape byte");
            int head = data.get(ValueLayout.JAVA_BYTE, at++) & 0xff;
            int rank = head >> 2;
            int dimBytes = 1 << (head & 3);
            if (rank == 0) {
                throw new IllegalArgumentException("an ndarray with 0 axes");
            }
            need(at + (long) rank * dimBytes, n, "its " + rank + " dimensions");
            shape = new long[rank];
            for (int i = 0; i < rank; i++) {
                shape[i] = switch (dimBytes) {
                    case 1 -> data.get(ValueLayout.JAVA_BYTE, at) & 0xff;
                    case 2 -> data.get(SHORT, at) & 0xffff;
                    case 4 -> data.get(INT, at) & 0xffffffffL;
                    default -> data.get(LONG, at);
                };
                at += dimBytes;
            }
        }
        long count = 1;
        for (long d : shape) {
            if (d < 1 || d > Integer.MAX_VALUE) {
                throw new IllegalArgumentException("ndarray dimensions " + Arrays.toString(shape)
                        + " are not all in [1, 2^31)");
            }
            count = Math.min(Long.MAX_VALUE / 8, count * d);
        }
        long expected = count * elementBytes(dtype);
        if (n - at != expected) {
            throw new IllegalArgumentException("an ndarray of " + dtype + " " + Arrays.toString(shape) + " needs "
                    + expected + " bytes of elements, got " + (n - at));
        }
        return new MdsArray(dtype, shape, data.asSlice(at).toArray(ValueLayout.JAVA_BYTE));
    }

    private static void need(long end, long size, String what) {
        if (end > size) {
            throw new IllegalArgumentException("an ndarray value of " + size + " bytes ends before " + what);
        }
    }

    /** The bytes that store {@code value} in this encoding. */
    public byte[] encode(Object value) {
        byte[] out = switch (kind) {
            case BYTES -> value instanceof byte[] b ? b.clone() : wrongType(value, "byte[]");
            case STR -> value instanceof String s ? s.getBytes(StandardCharsets.UTF_8) : wrongType(value, "String");
            case INTEGER -> {
                if (!(value instanceof Long || value instanceof Integer || value instanceof Short
                        || value instanceof Byte)) {
                    yield wrongType(value, "an integer");
                }
                long v = ((Number) value).longValue();
                if (width < 8) {
                    long min = unsigned ? 0 : -(1L << (8 * width - 1));
                    long max = unsigned ? (1L << (8 * width)) - 1 : (1L << (8 * width - 1)) - 1;
                    if (v < min || v > max) {
                        throw new IllegalArgumentException(v + " does not fit " + name);
                    }
                }
                yield littleEndian(v, width);
            }
            case FLOAT -> {
                if (!(value instanceof Number number)) {
                    yield wrongType(value, "a number");
                }
                double v = number.doubleValue();
                yield switch (width) {
                    case 2 -> littleEndian(Float.floatToFloat16((float) v), 2);
                    case 4 -> littleEndian(Float.floatToRawIntBits((float) v), 4);
                    default -> littleEndian(Double.doubleToRawLongBits(v), 8);
                };
            }
            case ARRAY -> value instanceof MdsArray a ? encodeArray(a) : wrongType(value, "an MdsArray");
        };
        if (size >= 0 && out.length != size) {
            throw new IllegalArgumentException(name + " takes " + size + " bytes, the value has " + out.length);
        }
        return out;
    }

    private byte[] encodeArray(MdsArray a) {
        if (arrayDtype != null && !arrayDtype.equals(a.dtype())) {
            throw new IllegalArgumentException(name + " holds " + arrayDtype + ", got " + a.dtype());
        }
        long[] shape = a.shape();
        if (arrayShape != null && !Arrays.equals(arrayShape, shape)) {
            throw new IllegalArgumentException(name + " holds shape " + Arrays.toString(arrayShape) + ", got "
                    + Arrays.toString(shape));
        }
        byte[] values = a.values();
        int dimBytes = 0;
        if (arrayShape == null) {
            long max = Arrays.stream(shape).max().orElseThrow();
            int w = max < 1L << 8 ? 0 : max < 1L << 16 ? 1 : max < 1L << 32 ? 2 : 3;
            dimBytes = 1 << w;
            ByteBuffer head = ByteBuffer.allocate(1 + shape.length * dimBytes).order(ByteOrder.LITTLE_ENDIAN);
            head.put((byte) (shape.length << 2 | w));
            for (long d : shape) {
                head.put(littleEndian(d, dimBytes));
            }
            values = concat(head.array(), values);
        }
        return arrayDtype == null ? concat(new byte[] {(byte) (int) ARRAY_DTYPES.get(a.dtype())}, values) : values;
    }

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    private static byte[] littleEndian(long v, int bytes) {
        byte[] out = new byte[bytes];
        for (int i = 0; i < bytes; i++) {
            out[i] = (byte) (v >>> (8 * i));
        }
        return out;
    }

    private byte[] wrongType(Object value, String expected) {
        throw new IllegalArgumentException(name + " encodes " + expected + ", got "
                + (value == null ? "null" : value.getClass().getSimpleName()));
    }

    @Override
    public String toString() {
        return name;
    }
}
