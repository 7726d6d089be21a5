package io.microdit.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * The header and the Java bindings agree: every declared function is bound with its C signature, in exactly one of the
 * binding classes, and back.
 */
class MicroditHeaderTest {
    /** The binding classes, one per op family of the header; together they bind every function once. */
    private static final List<Class<?>> BINDINGS = List.of(RuntimeBindings.class, ElementwiseBindings.class,
            NormBindings.class, TokenBindings.class, OptimizerBindings.class, DiffusionBindings.class,
            GemmBindings.class, AttentionBindings.class, CommunicationBindings.class);
    private static final Pattern DECLARATION = Pattern.compile("^MDT_API\\s+(.+?)\\s*\\b(mdt_\\w+)\\((.*?)\\);",
            Pattern.MULTILINE);

    private static Map<String, FunctionDescriptor> parseHeader() throws IOException {
        String header = Files.readString(Path.of("native", "include", "microdit.h"));
        Map<String, FunctionDescriptor> functions = new LinkedHashMap<>();
        Matcher m = DECLARATION.matcher(header);
        while (m.find()) {
            List<MemoryLayout> arguments = new ArrayList<>();
            String parameters = m.group(3).trim();
            if (!parameters.equals("void") && !parameters.isEmpty()) {
                for (String parameter : parameters.split(",")) {
                    String type = parameter.trim().replaceAll("\\w+$", "");
                    arguments.add(layoutOf(type));
                }
            }
            functions.put(m.group(2), FunctionDescriptor.of(layoutOf(m.group(1)),
                    arguments.toArray(MemoryLayout[]::new)));
        }
        return functions;
    }

    private static MemoryLayout layoutOf(String cType) {
        String type = cType.replace("const", "").trim();
        if (type.contains("*") || type.equals("mdt_stream_t") || type.equals("mdt_event_t")
                || type.equals("mdt_comm_t")) {
            return ValueLayout.ADDRESS;
        }
        return switch (type) {
            case "int" -> ValueLayout.JAVA_INT;
            case "int64_t", "uint64_t", "size_t" -> ValueLayout.JAVA_LONG;
            case "float" -> ValueLayout.JAVA_FLOAT;
            case "double" -> ValueLayout.JAVA_DOUBLE;
            default -> throw new AssertionError("microdit.h uses C type '" + type + "' that the test cannot map");
        };
    }

    @Test
    void everyHeaderFunctionHasADescriptorAndBack() throws IOException {
        Map<String, FunctionDescriptor> header = parseHeader();
        assertTrue(header.size() > 40, "parsed only " + header.size() + " declarations from microdit.h");
        assertEquals(header.keySet(), MicroditAbi.FUNCTIONS.keySet(), "functions declared vs bound");
        header.forEach((name, descriptor) -> assertEquals(descriptor, MicroditAbi.FUNCTIONS.get(name), name));
    }

    @Test
    void everyFunctionHasAStaticMethodOfTheMatchingJavaTypes() throws IOException {
        Map<String, FunctionDescriptor> header = parseHeader();
        Map<String, Method> methods = new LinkedHashMap<>();
        for (Class<?> bindings : BINDINGS) {
            for (Method method : bindings.getDeclaredMethods()) {
                if (Modifier.isPublic(method.getModifiers()) && Modifier.isStatic(method.getModifiers())) {
                    assertNull(methods.put(method.getName(), method), method.getName() + " is bound twice");
                }
            }
        }
        assertEquals(header.keySet(), methods.keySet(), "functions declared vs Java methods");
        header.forEach((name, descriptor) -> {
            Method method = methods.get(name);
            List<MemoryLayout> arguments = descriptor.argumentLayouts();
            assertEquals(arguments.size(), method.getParameterCount(), name + " parameter count");
            for (int i = 0; i < arguments.size(); i++) {
                assertEquals(carrier(arguments.get(i)), method.getParameterTypes()[i], name + " parameter " + i);
            }
            assertEquals(carrier(descriptor.returnLayout().orElseThrow()), method.getReturnType(), name + " return");
        });
    }

    private static Class<?> carrier(MemoryLayout layout) {
        return layout instanceof ValueLayout value ? value.carrier() : MemorySegment.class;
    }
}
