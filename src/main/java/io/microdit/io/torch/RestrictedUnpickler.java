package io.microdit.io.torch;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Decodes the pickle of a tensor state dict without executing anything. It implements the opcodes of pickle
 * protocols 2 to 5 that {@code torch.save} emits for dictionaries, lists, tuples, scalars, strings and tensors, and
 * resolves only the globals such a pickle needs, each to a fixed Java meaning:
 * {@code collections.OrderedDict} (a map), {@code torch._utils._rebuild_tensor_v2} and
 * {@code torch._utils._rebuild_parameter} (a {@link TorchTensor}), {@code torch.Size} (a tuple) and the storage
 * classes of {@link StorageType} (only as the type inside a storage's persistent id). Any other global, and every
 * opcode that can call arbitrary code (INST, OBJ, NEWOBJ, EXT, text persistent ids), is refused when it is read.
 *
 * <p>Values come back as {@code null}, {@link Boolean}, {@link Long}, {@link Double}, {@link String},
 * {@code byte[]}, {@link List} (tuples are unmodifiable lists), {@link LinkedHashMap} and {@link TorchTensor}.
 * Every length is checked against the bytes left before anything is allocated; containers may nest at most
 * {@value #MAX_DEPTH} deep (as built bottom-up, the order a pickler writes), and so may MARKs.
 */
final class RestrictedUnpickler {
    static final int MAX_DEPTH = 100;

    private static final String TORCH_SIZE = "torch.Size";
    private static final String ORDERED_DICT = "collections.OrderedDict";
    private static final String REBUILD_TENSOR = "torch._utils._rebuild_tensor_v2";
    private static final String REBUILD_PARAMETER = "torch._utils._rebuild_parameter";

    /** A resolved, allowed global: only ever compared by name, never called. */
    private record Global(String qualifiedName) {
    }

    /** A storage's persistent id after its checks: which {@code data/<key>} entry, its type and element count. */
    private record Storage(String key, StorageType type, long numel) {
    }

    private final Path file;
    private final String entryName;
    private final byte[] bytes;
    private final Map<String, Long> storageBytes;
    private int position;
    private int opcodeStart;
    private final List<Object> stack = new ArrayList<>();
    private final List<Integer> marks = new ArrayList<>();
    private final Map<Long, Object> memo = new LinkedHashMap<>();
    private final Map<Object, Integer> depths = new IdentityHashMap<>();
    private final Set<Object> orderedDicts = Collections.newSetFromMap(new IdentityHashMap<>());

    private RestrictedUnpickler(Path file, String entryName, byte[] bytes, Map<String, Long> storageBytes) {
        this.file = file;
        this.entryName = entryName;
        this.bytes = bytes;
        this.storageBytes = storageBytes;
    }

    /**
     * Decodes {@code bytes} (the archive's {@code entryName}); {@code storageBytes} maps each storage key present
     * in the archive to its entry's size, against which every persistent id is checked.
     */
    static Object load(Path file, String entryName, byte[] bytes, Map<String, Long> storageBytes)
            throws TorchFileException {
        return new RestrictedUnpickler(file, entryName, bytes, storageBytes).run();
    }

    private Object run() throws TorchFileException {
        while (true) {
            opcodeStart = position;
            int opcode = u8();
            switch (opcode) {
                case 0x80 -> { // PROTO
                    int protocol = u8();
                    if (protocol < 2 || protocol > 5) {
                        throw fail("pickle protocol " + protocol + " (supported: 2 to 5, torch.save writes 2)");
                    }
                }
                case 0x95 -> take(8); // FRAME: a length hint for buffered readers; the data follows inline
                case '.' -> { // STOP
                    if (stack.size() != 1 || !marks.isEmpty()) {
                        throw fail("STOP with " + stack.size() + " values on the stack and " + marks.size()
                                + " open MARKs (a well-formed pickle leaves exactly one value)");
                    }
                    if (position != bytes.length) {
                        throw fail((bytes.length - position) + " bytes after STOP");
                    }
                    return stack.getFirst();
                }
                case '(' -> { // MARK
                    if (marks.size() >= MAX_DEPTH) {
                        throw fail("more than " + MAX_DEPTH + " nested MARKs");
                    }
                    marks.add(stack.size());
                }
                case '0' -> pop(); // POP
                case '1' -> popMark(); // POP_MARK
                case '2' -> push(peek()); // DUP
                case 'N' -> push(null);
                case 0x88 -> push(Boolean.TRUE);
                case 0x89 -> push(Boolean.FALSE);
                case 'J' -> push((long) ByteBuffer.wrap(take(4)).order(ByteOrder.LITTLE_ENDIAN).getInt());
                case 'K' -> push((long) u8());
                case 'M' -> push((long) (u8() | u8() << 8));
                case 0x8a -> push(longOfBytes(u8())); // LONG1
                case 0x8b -> push(longOfBytes(length(4))); // LONG4
                case 'G' -> push(ByteBuffer.wrap(take(8)).getDouble()); // BINFLOAT, big-endian
                case 'X' -> push(utf8(take(length(4)))); // BINUNICODE
                case 0x8c -> push(utf8(take(u8()))); // SHORT_BINUNICODE
                case 0x8d -> push(utf8(take(length(8)))); // BINUNICODE8
                case 'B' -> push(take(length(4))); // BINBYTES
                case 'C' -> push(take(u8())); // SHORT_BINBYTES
                case 0x8e -> push(take(length(8))); // BINBYTES8
                case ')' -> push(Collections.unmodifiableList(new ArrayList<>()));
                case 't' -> push(tuple(popMark()));
                case 0x85 -> push(tuple(popN(1)));
                case 0x86 -> push(tuple(popN(2)));
                case 0x87 -> push(tuple(popN(3)));
                case ']' -> push(new ArrayList<>());
                case 'l' -> {
                    List<Object> items = popMark();
                    ArrayList<Object> list = new ArrayList<>();
                    appendAll(list, items);
                    push(list);
                }
                case 'a' -> appendAll(listOnStack(1), popN(1));
                case 'e' -> {
                    List<Object> items = popMark();
                    appendAll(listOnStack(1), items);
                }
                case '}' -> push(new LinkedHashMap<>());
                case 'd' -> {
                    List<Object> items = popMark();
                    LinkedHashMap<Object, Object> dict = new LinkedHashMap<>();
                    putAll(dict, items);
                    push(dict);
                }
                case 's' -> putAll(dictOnStack(2), popN(2));
                case 'u' -> {
                    List<Object> items = popMark();
                    putAll(dictOnStack(0), items);
                }
                case 'c' -> push(global(line("module"), line("name"))); // GLOBAL
                case 0x93 -> { // STACK_GLOBAL
                    List<Object> names = popN(2);
                    if (!(names.get(0) instanceof String module) || !(names.get(1) instanceof String name)) {
                        throw fail("STACK_GLOBAL needs two strings");
                    }
                    push(global(module, name));
                }
                case 'R' -> { // REDUCE
                    List<Object> argsAndCallable = popN(2);
                    push(reduce(argsAndCallable.get(0), argsAndCallable.get(1)));
                }
                case 'b' -> build(pop()); // BUILD
                case 'Q' -> push(storage(pop())); // BINPERSID
                case 'q' -> memo.put((long) u8(), peek()); // BINPUT
                case 'r' -> memo.put(length(4), peek()); // LONG_BINPUT
                case 0x94 -> memo.put((long) memo.size(), peek()); // MEMOIZE
                case 'h' -> push(memoGet(u8())); // BINGET
                case 'j' -> push(memoGet(length(4))); // LONG_BINGET
                case 'i', 'o', 0x81, 0x92 -> throw fail("opcode " + opcodeName(opcode)
                        + " creates an object of an arbitrary class and is not allowed in a tensor state dict");
                case 0x82, 0x83, 0x84 -> throw fail("opcode " + opcodeName(opcode)
                        + " (copyreg extension registry) is not allowed in a tensor state dict");
                case 'P' -> throw fail("text persistent ids (opcode PERSID) are not used by torch.save");
                default -> throw fail("opcode " + opcodeName(opcode) + " is not supported (this reader accepts"
                        + " the opcodes torch.save writes for a tensor state dict)");
            }
        }
    }

    private Object global(String module, String name) throws TorchFileException {
        String qualified = module + "." + name;
        boolean storageType = module.equals("torch") && StorageType.byClassName(name).isPresent();
        if (!storageType && !qualified.equals(TORCH_SIZE) && !qualified.equals(ORDERED_DICT)
                && !qualified.equals(REBUILD_TENSOR) && !qualified.equals(REBUILD_PARAMETER)) {
            throw fail("global " + qualified + " is not allowed: a tensor state dict needs only "
                    + ORDERED_DICT + ", " + REBUILD_TENSOR + ", " + REBUILD_PARAMETER + ", torch.Size and the"
                    + " storage types torch.FloatStorage/HalfStorage/BFloat16Storage/LongStorage/IntStorage;"
                    + " nothing in the file was executed");
        }
        return new Global(qualified);
    }

    private Object reduce(Object callable, Object arguments) throws TorchFileException {
        if (!(callable instanceof Global global)) {
            throw fail("REDUCE of a " + typeName(callable) + ", not of an allowed global");
        }
        List<Object> args = tupleArgument(arguments, global.qualifiedName());
        switch (global.qualifiedName()) {
            case ORDERED_DICT -> {
                if (!args.isEmpty()) {
                    throw fail(ORDERED_DICT + " called with arguments; torch.save pickles it empty and fills it"
                            + " with SETITEMS");
                }
                LinkedHashMap<Object, Object> dict = new LinkedHashMap<>();
                orderedDicts.add(dict);
                return dict;
            }
            case REBUILD_TENSOR -> {
                return rebuildTensor(args);
            }
            case REBUILD_PARAMETER -> {
                if (args.size() != 3 || !(args.get(0) instanceof TorchTensor tensor)) {
                    throw fail(REBUILD_PARAMETER + " needs (tensor, requires_grad, backward_hooks)");
                }
                checkHooks(args.get(2));
                return tensor;
            }
            case TORCH_SIZE -> {
                if (args.size() != 1 || !(args.get(0) instanceof List<?> dims)) {
                    throw fail("torch.Size needs one tuple of dimensions");
                }
                for (Object dim : dims) {
                    if (!(dim instanceof Long)) {
                        throw fail("torch.Size dimension " + typeName(dim) + " is not an integer");
                    }
                }
                return tuple(new ArrayList<>(dims));
            }
            default -> throw fail(global.qualifiedName() + " may only appear as a storage type in a persistent id,"
                    + " never be called");
        }
    }

    private List<Object> tupleArgument(Object arguments, String callable) throws TorchFileException {
        if (!(arguments instanceof List<?> list)) {
            throw fail(callable + " called with a " + typeName(arguments) + " instead of an argument tuple");
        }
        return new ArrayList<>(list);
    }

    /** {@code _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])}. */
    private TorchTensor rebuildTensor(List<Object> args) throws TorchFileException {
        if (args.size() != 6 && args.size() != 7) {
            throw fail(REBUILD_TENSOR + " needs 6 or 7 arguments, got " + args.size());
        }
        if (!(args.get(0) instanceof Storage storage)) {
            throw fail(REBUILD_TENSOR + ": first argument is a " + typeName(args.get(0)) + ", not a storage");
        }
        if (!(args.get(1) instanceof Long offset) || offset < 0) {
            throw fail(REBUILD_TENSOR + ": storage offset " + args.get(1) + " is not a non-negative integer");
        }
        long[] size = integers(args.get(2), "size");
        long[] stride = integers(args.get(3), "stride");
        if (size.length != stride.length) {
            throw fail(REBUILD_TENSOR + ": size has " + size.length + " dimensions but stride has " + stride.length);
        }
        if (!(args.get(4) instanceof Boolean)) {
            throw fail(REBUILD_TENSOR + ": requires_grad is a " + typeName(args.get(4)) + ", not a bool");
        }
        checkHooks(args.get(5));
        if (args.size() == 7 && args.get(6) != null && !(args.get(6) instanceof Map)) {
            throw fail(REBUILD_TENSOR + ": metadata is a " + typeName(args.get(6)) + ", not a dict");
        }
        int[] shape = new int[size.length];
        long last = offset;
        long numel = 1;
        try {
            for (int i = 0; i < size.length; i++) {
                if (size[i] > Integer.MAX_VALUE) {
                    throw fail(REBUILD_TENSOR + ": dimension " + size[i] + " is larger than 2^31 - 1");
                }
                shape[i] = (int) size[i];
                numel = Math.multiplyExact(numel, size[i]);
                last = Math.addExact(last, Math.multiplyExact(Math.max(size[i] - 1, 0), stride[i]));
            }
        } catch (ArithmeticException e) {
            throw fail(REBUILD_TENSOR + ": the view of size " + Arrays.toString(size) + " and stride "
                    + Arrays.toString(stride) + " spans more than 2^63 elements");
        }
        // A stride-0 (expanded) view could make a tiny storage claim terabytes; state dicts never hold one.
        if (numel > storage.numel()) {
            throw fail("a tensor of size " + Arrays.toString(size) + " has " + numel + " elements, more than its"
                    + " storage " + storage.key() + " holds (" + storage.numel() + ")");
        }
        if (numel > 0 && last >= storage.numel()) {
            throw fail("a tensor of size " + Arrays.toString(size) + ", stride "
                    + Arrays.toString(stride) + " and offset " + offset + " reaches element " + last
                    + " of storage " + storage.key() + ", which holds " + storage.numel() + " elements");
        }
        return new TorchTensor(storage.key(), storage.type(), storage.numel(), offset, shape, stride);
    }

    private void checkHooks(Object hooks) throws TorchFileException {
        if (!(hooks instanceof Map<?, ?> map) || !map.isEmpty()) {
            throw fail("backward hooks must be an empty OrderedDict, got " + typeName(hooks));
        }
    }

    private long[] integers(Object value, String what) throws TorchFileException {
        if (!(value instanceof List<?> list)) {
            throw fail(REBUILD_TENSOR + ": " + what + " is a " + typeName(value) + ", not a tuple");
        }
        long[] out = new long[list.size()];
        for (int i = 0; i < out.length; i++) {
            if (!(list.get(i) instanceof Long n) || n < 0) {
                throw fail(REBUILD_TENSOR + ": " + what + " element " + list.get(i)
                        + " is not a non-negative integer");
            }
            out[i] = n;
        }
        return out;
    }

    /** A persistent id {@code ('storage', type, key, location, numel)}, checked against the archive's entries. */
    private Storage storage(Object pid) throws TorchFileException {
        if (!(pid instanceof List<?> id) || id.size() != 5 || !"storage".equals(id.get(0))) {
            throw fail("persistent id is not ('storage', type, key, location, numel)");
        }
        if (!(id.get(1) instanceof Global type) || !type.qualifiedName().startsWith("torch.")
                || StorageType.byClassName(type.qualifiedName().substring("torch.".length())).isEmpty()) {
            throw fail("persistent id names a storage type that is not a torch storage class: "
                    + (id.get(1) instanceof Global g ? g.qualifiedName() : typeName(id.get(1))));
        }
        StorageType storageType = StorageType.byClassName(type.qualifiedName().substring("torch.".length()))
                .orElseThrow();
        if (!(id.get(2) instanceof String key)) {
            throw fail("persistent id key is a " + typeName(id.get(2)) + ", not a string");
        }
        if (!(id.get(3) instanceof String)) {
            throw fail("persistent id location is a " + typeName(id.get(3)) + ", not a string");
        }
        if (!(id.get(4) instanceof Long numel) || numel < 0) {
            throw fail("storage " + key + ": element count " + id.get(4) + " is not a non-negative integer");
        }
        Long actual = storageBytes.get(key);
        if (actual == null) {
            throw fail("storage " + key + " has no entry data/" + key + " in the archive");
        }
        if (numel > Long.MAX_VALUE / storageType.elementSize() || numel * storageType.elementSize() != actual) {
            throw fail("storage " + key + " declares " + numel + " elements of " + storageType.className()
                    + " but its entry data/" + key + " holds " + actual + " bytes");
        }
        return new Storage(key, storageType, numel);
    }

    private void build(Object state) throws TorchFileException {
        Object target = peek();
        if (!orderedDicts.contains(target) || !(state instanceof Map<?, ?>)) {
            throw fail("BUILD (setting an object's state) is allowed only for an OrderedDict's attributes, not on"
                    + " a " + typeName(target));
        }
        // A state dict carries its _metadata (module versions) as attributes; tensors need none of it.
    }

    private Object memoGet(long index) throws TorchFileException {
        if (!memo.containsKey(index)) {
            throw fail("memo index " + index + " was never stored");
        }
        return memo.get(index);
    }

    private void appendAll(Object target, List<Object> items) throws TorchFileException {
        @SuppressWarnings("unchecked")
        List<Object> list = (List<Object>) target;
        for (Object item : items) {
            nest(list, item);
            list.add(item);
        }
    }

    private ArrayList<?> listOnStack(int below) throws TorchFileException {
        Object target = stack.size() > below ? stack.get(stack.size() - 1 - below) : null;
        if (!(target instanceof ArrayList<?> list)) {
            throw fail("APPEND to a " + typeName(target) + ", not a list");
        }
        return list;
    }

    private LinkedHashMap<?, ?> dictOnStack(int below) throws TorchFileException {
        Object target = stack.size() > below ? stack.get(stack.size() - 1 - below) : null;
        if (!(target instanceof LinkedHashMap<?, ?> dict)) {
            throw fail("SETITEM on a " + typeName(target) + ", not a dict");
        }
        return dict;
    }

    private void putAll(Map<?, ?> target, List<Object> items) throws TorchFileException {
        if (items.size() % 2 != 0) {
            throw fail("SETITEMS with an odd number of values");
        }
        @SuppressWarnings("unchecked")
        Map<Object, Object> dict = (Map<Object, Object>) target;
        for (int i = 0; i < items.size(); i += 2) {
            Object key = items.get(i);
            // Only immutable scalar keys: hashing a container could recurse without end on a cyclic pickle.
            if (key != null && !(key instanceof String || key instanceof Long || key instanceof Boolean
                    || key instanceof Double)) {
                throw fail("dict key of type " + typeName(key) + " (keys must be strings, numbers, bools or None)");
            }
            nest(dict, items.get(i + 1));
            dict.put(key, items.get(i + 1));
        }
    }

    private List<Object> tuple(List<Object> items) throws TorchFileException {
        List<Object> tuple = Collections.unmodifiableList(new ArrayList<>(items));
        for (Object item : items) {
            nest(tuple, item);
        }
        return tuple;
    }

    /** Records that {@code child} sits inside {@code container}, refusing nesting deeper than the limit. */
    private void nest(Object container, Object child) throws TorchFileException {
        int depth = 1 + depths.getOrDefault(child, 0);
        if (depth > MAX_DEPTH) {
            throw fail("containers nested more than " + MAX_DEPTH + " deep");
        }
        if (depth > depths.getOrDefault(container, 0)) {
            depths.put(container, depth);
        }
    }

    private long longOfBytes(long count) throws TorchFileException {
        if (count > 8) {
            throw fail("an integer of " + count + " bytes (at most 64-bit integers are accepted)");
        }
        byte[] digits = take(count);
        long value = 0;
        for (int i = digits.length - 1; i >= 0; i--) {
            value = value << 8 | (digits[i] & 0xff);
        }
        if (digits.length > 0 && digits.length < 8 && digits[digits.length - 1] < 0) {
            value -= 1L << (8 * digits.length); // two's complement sign of the top byte
        }
        return value;
    }

    private String line(String what) throws TorchFileException {
        int end = position;
        while (end < bytes.length && bytes[end] != '\n') {
            end++;
        }
        if (end == bytes.length) {
            throw fail("GLOBAL " + what + " runs past the end of the pickle");
        }
        String text = new String(bytes, position, end - position, StandardCharsets.US_ASCII);
        position = end + 1;
        return text;
    }

    private String utf8(byte[] data) throws TorchFileException {
        try {
            return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(data)).toString();
        } catch (CharacterCodingException e) {
            throw fail("string is not valid UTF-8");
        }
    }

    private int u8() throws TorchFileException {
        if (position >= bytes.length) {
            throw fail("the pickle ends without STOP (truncated)");
        }
        return bytes[position++] & 0xff;
    }

    /** An unsigned little-endian length of {@code width} bytes; the caller checks it against the bytes left. */
    private long length(int width) throws TorchFileException {
        byte[] field = take(width);
        long value = 0;
        for (int i = width - 1; i >= 0; i--) {
            value = value << 8 | (field[i] & 0xff);
        }
        if (value < 0) {
            throw fail("a declared length above 2^63");
        }
        return value;
    }

    private byte[] take(long count) throws TorchFileException {
        if (count > bytes.length - position) {
            throw fail("declares " + count + " bytes but only " + (bytes.length - position)
                    + " remain in " + entryName);
        }
        byte[] out = Arrays.copyOfRange(bytes, position, position + (int) count);
        position += (int) count;
        return out;
    }

    private void push(Object value) {
        stack.add(value);
    }

    private Object peek() throws TorchFileException {
        if (stack.size() <= currentMark()) {
            throw fail("stack underflow");
        }
        return stack.getLast();
    }

    private Object pop() throws TorchFileException {
        if (stack.size() <= currentMark()) {
            throw fail("stack underflow");
        }
        return stack.removeLast();
    }

    private List<Object> popN(int count) throws TorchFileException {
        if (stack.size() - currentMark() < count) {
            throw fail("stack underflow");
        }
        List<Object> top = stack.subList(stack.size() - count, stack.size());
        List<Object> out = new ArrayList<>(top);
        top.clear();
        return out;
    }

    private List<Object> popMark() throws TorchFileException {
        if (marks.isEmpty()) {
            throw fail("no MARK to pop to");
        }
        int mark = marks.removeLast();
        List<Object> top = stack.subList(mark, stack.size());
        List<Object> out = new ArrayList<>(top);
        top.clear();
        return out;
    }

    private int currentMark() {
        return marks.isEmpty() ? 0 : marks.getLast();
    }

    private static String typeName(Object value) {
        return switch (value) {
            case null -> "None";
            case Global g -> "global " + g.qualifiedName();
            case Storage s -> "storage";
            case TorchTensor t -> "tensor";
            case String s -> "str";
            case Long n -> "int";
            case Double d -> "float";
            case Boolean b -> "bool";
            case byte[] b -> "bytes";
            case Map<?, ?> m -> "dict";
            case ArrayList<?> l -> "list";
            case List<?> l -> "tuple";
            default -> value.getClass().getSimpleName();
        };
    }

    private static String opcodeName(int opcode) {
        String name = switch (opcode) {
            case 'i' -> "INST";
            case 'o' -> "OBJ";
            case 0x81 -> "NEWOBJ";
            case 0x92 -> "NEWOBJ_EX";
            case 0x82 -> "EXT1";
            case 0x83 -> "EXT2";
            case 0x84 -> "EXT4";
            default -> "";
        };
        return (name.isEmpty() ? "" : name + " ") + String.format("0x%02x", opcode);
    }

    private TorchFileException fail(String problem) {
        return new TorchFileException(file, entryName + " byte " + opcodeStart + ": " + problem);
    }
}
