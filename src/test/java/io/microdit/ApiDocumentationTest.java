package io.microdit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import javax.tools.Diagnostic;
import javax.tools.DiagnosticCollector;
import javax.tools.DocumentationTool;
import javax.tools.JavaFileObject;
import javax.tools.StandardJavaFileManager;
import javax.tools.ToolProvider;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The public API is documented: every public or protected type, constructor, method, field and enum constant of the
 * packages that module-info.java exports has a doc comment. pom.xml's javadoc run checks everything else doclint
 * checks but leaves out its "missing" group, which would also demand a {@code @param} and {@code @return} for every
 * parameter and result; this test keeps the part of that group the API's style does want.
 *
 * <p>Exempt: the members of the public binding classes of {@code io.microdit.backend.cuda} ({@code RuntimeBindings},
 * {@code CommunicationBindings}), one static binding per C function of native/include/microdit.h, which documents
 * them there (the class comments say so). What javadoc documents by itself (overrides of documented methods, members
 * the compiler declares) is not reported by the doclet, {@link UndocumentedElements}.
 */
class ApiDocumentationTest {
    private static final Path MAIN_SOURCES = Path.of("src", "main", "java");
    private static final List<String> EXEMPT_MEMBERS_OF = List.of("io.microdit.backend.cuda.RuntimeBindings#",
            "io.microdit.backend.cuda.CommunicationBindings#");
    private static final Pattern EXPORTS = Pattern.compile("^\\s*exports\\s+([\\w.]+)\\s*;", Pattern.MULTILINE);

    @Test
    void everyExportedElementHasADocComment() throws IOException {
        List<Path> files = new ArrayList<>();
        for (String exported : exportedPackages()) {
            try (Stream<Path> listing = Files.list(MAIN_SOURCES.resolve(exported.replace('.', '/')))) {
                listing.filter(file -> file.toString().endsWith(".java")).sorted().forEach(files::add);
            }
        }
        List<String> lines = walk(files);
        // A walk that reached nothing would pass: it must have seen the API's core type and a realistic count.
        assertTrue(lines.contains("+ io.microdit.tensor.Tensor"), "the doclet did not reach Tensor");
        assertTrue(lines.size() > 1000, "the doclet saw only " + lines.size() + " elements");
        List<String> undocumented = lines.stream()
                .filter(line -> line.startsWith("- "))
                .map(line -> line.substring(2))
                .filter(name -> EXEMPT_MEMBERS_OF.stream().noneMatch(name::startsWith))
                .toList();
        assertEquals("", String.join("\n", undocumented),
                undocumented.size() + " exported elements have no doc comment");
    }

    @Test
    void theDocletReportsWhatJavadocCannotDocumentByItself(@TempDir Path sources) throws IOException {
        write(sources, "Contract", """
                /** A contract. */
                public interface Contract {
                    /** Runs. */
                    void run(int times);

                    void silent();
                }
                """);
        write(sources, "Impl", """
                /** Implements the contract. */
                public class Impl implements Contract, Comparable<Impl> {
                    public int count;
                    /** Running total. */
                    protected long total;
                    private int hidden;

                    Impl() {
                    }

                    @Override
                    public void run(int times) {
                    }

                    @Override
                    public void silent() {
                    }

                    @Override
                    public int compareTo(Impl other) {
                        return 0;
                    }

                    @Override
                    public String toString() {
                        return "";
                    }

                    public java.util.List<String> names(java.util.Map<String, Integer> byName, float... weights) {
                        return null;
                    }

                    public static class Nested {
                    }

                    /** Has only the default constructor. */
                    protected static class Inner {
                    }
                }
                """);
        write(sources, "Kind", """
                /** Kinds. */
                public enum Kind {
                    /** The first. */
                    FIRST,
                    SECOND;

                    public int weight() {
                        return ordinal();
                    }
                }
                """);
        write(sources, "Pair", """
                /**
                 * A pair.
                 * @param left the left one
                 * @param right the right one
                 */
                public record Pair(int left, int right) {
                    public int sum() {
                        return left + right;
                    }
                }
                """);
        write(sources, "Hidden", """
                class Hidden {
                    public void reachableOnlyInside() {
                    }
                }
                """);
        write(sources, "Plain", """
                public class Plain {
                }
                """);
        List<String> lines;
        try (Stream<Path> listing = Files.list(sources.resolve("p"))) {
            lines = walk(listing.sorted().toList());
        }
        assertEquals(List.of(
                        "+ p.Contract",
                        "+ p.Contract#run(int)",
                        "+ p.Impl",
                        "+ p.Impl#compareTo(Impl)",
                        "+ p.Impl#run(int)",
                        "+ p.Impl#toString()",
                        "+ p.Impl#total",
                        "+ p.Impl.Inner",
                        "+ p.Kind",
                        "+ p.Kind#FIRST",
                        "+ p.Pair",
                        "- p.Contract#silent()",
                        "- p.Impl#count",
                        "- p.Impl#names(Map,float[])",
                        "- p.Impl#silent()",
                        "- p.Impl.Inner#Inner()",
                        "- p.Impl.Nested",
                        "- p.Impl.Nested#Nested()",
                        "- p.Kind#SECOND",
                        "- p.Kind#weight()",
                        "- p.Pair#sum()",
                        "- p.Plain",
                        "- p.Plain#Plain()"),
                lines);
    }

    private static List<String> exportedPackages() throws IOException {
        Matcher exports = EXPORTS.matcher(Files.readString(MAIN_SOURCES.resolve("module-info.java")));
        List<String> packages = new ArrayList<>();
        while (exports.find()) {
            packages.add(exports.group(1));
        }
        assertTrue(packages.size() > 10, "read only " + packages + " from module-info.java");
        return packages;
    }

    private static void write(Path sources, String type, String body) throws IOException {
        Path file = sources.resolve("p").resolve(type + ".java");
        Files.createDirectories(file.getParent());
        Files.writeString(file, "package p;\n\n" + body);
    }

    /**
     * Runs the doclet over the files, its types resolved against this JVM's class path (the engine's classes and
     * their libraries), and returns its lines sorted.
     */
    private static List<String> walk(List<Path> files) throws IOException {
        DocumentationTool javadoc = ToolProvider.getSystemDocumentationTool();
        DiagnosticCollector<JavaFileObject> diagnostics = new DiagnosticCollector<>();
        StringWriter out = new StringWriter();
        try (StandardJavaFileManager fileManager = javadoc.getStandardFileManager(diagnostics, null,
                StandardCharsets.UTF_8)) {
            List<String> options = List.of("-quiet", "--add-modules", "jdk.incubator.vector",
                    "-classpath", System.getProperty("java.class.path"));
            boolean ran = javadoc.getTask(out, fileManager, diagnostics, UndocumentedElements.class, options,
                    fileManager.getJavaFileObjectsFromPaths(files)).call();
            List<Diagnostic<? extends JavaFileObject>> errors = diagnostics.getDiagnostics().stream()
                    .filter(d -> d.getKind() == Diagnostic.Kind.ERROR)
                    .toList();
            assertTrue(ran && errors.isEmpty(), "javadoc failed: " + errors + "\n" + out);
        }
        return out.toString().lines().filter(line -> line.startsWith("+ ") || line.startsWith("- ")).sorted()
                .toList();
    }
}
