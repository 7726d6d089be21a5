package io.microdit;

import com.sun.source.util.DocTrees;
import java.io.PrintWriter;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.HashSet;
import java.util.Locale;
import java.util.Set;
import java.util.stream.Collectors;
import javax.lang.model.SourceVersion;
import javax.lang.model.element.Element;
import javax.lang.model.element.ElementKind;
import javax.lang.model.element.ExecutableElement;
import javax.lang.model.element.TypeElement;
import javax.lang.model.type.DeclaredType;
import javax.lang.model.type.TypeMirror;
import javax.lang.model.util.ElementFilter;
import javax.lang.model.util.Elements;
import javax.lang.model.util.Types;
import jdk.javadoc.doclet.Doclet;
import jdk.javadoc.doclet.DocletEnvironment;
import jdk.javadoc.doclet.Reporter;

/**
 * A doclet that writes no documentation: it walks the types, constructors, methods, fields and enum constants the
 * javadoc run includes (public and protected by default) and prints one line per element to the tool's standard
 * writer, {@code + name} when the element has a doc comment and {@code - name} when it has none. Names read
 * {@code package.Type} and {@code package.Type#member}, with a method's parameter types erased and unqualified.
 *
 * <p>An element without a comment of its own still counts as documented where javadoc gives it one: a method that
 * overrides or implements a documented method (javadoc copies that comment; a supertype read from a class file,
 * such as the JDK's, counts as documented), and the members the compiler declares, which no source can comment on:
 * an enum's {@code values()} and {@code valueOf(String)}, a record's implicit canonical constructor, accessors,
 * {@code equals}, {@code hashCode} and {@code toString} (javadoc describes them from the record's {@code @param}
 * tags and the JDK's comments); these are left out of the output. A class's implicit default constructor is
 * reported: it is public API with nothing to say what it makes, and declaring it is the remedy.
 */
public final class UndocumentedElements implements Doclet {
    private Reporter reporter;

    /** Instantiated by the javadoc tool, which takes the doclet as a class. */
    public UndocumentedElements() {
    }

    @Override
    public void init(Locale locale, Reporter reporter) {
        this.reporter = reporter;
    }

    @Override
    public String getName() {
        return getClass().getSimpleName();
    }

    @Override
    public Set<? extends Option> getSupportedOptions() {
        return Set.of();
    }

    @Override
    public SourceVersion getSupportedSourceVersion() {
        return SourceVersion.latest();
    }

    @Override
    public boolean run(DocletEnvironment environment) {
        Walk walk = new Walk(environment);
        PrintWriter out = reporter.getStandardWriter();
        for (TypeElement type : ElementFilter.typesIn(environment.getIncludedElements())) {
            out.println((walk.documented(type) ? "+ " : "- ") + type.getQualifiedName());
            for (Element member : type.getEnclosedElements()) {
                // Nested types are included elements of their own; record components are described by the
                // record's @param tags.
                boolean checked = switch (member.getKind()) {
                    case CONSTRUCTOR, METHOD, FIELD, ENUM_CONSTANT -> environment.isIncluded(member);
                    default -> false;
                };
                if (checked && !walk.implicitAndDescribedByJavadoc(type, member)) {
                    out.println((walk.documented(member) ? "+ " : "- ") + type.getQualifiedName() + "#"
                            + memberName(member));
                }
            }
        }
        out.flush();
        return true;
    }

    private static String memberName(Element member) {
        if (!(member instanceof ExecutableElement executable)) {
            return member.getSimpleName().toString();
        }
        String name = member.getKind() == ElementKind.CONSTRUCTOR
                ? member.getEnclosingElement().getSimpleName().toString()
                : member.getSimpleName().toString();
        return executable.getParameters().stream()
                .map(p -> simpleErasure(p.asType()))
                .collect(Collectors.joining(",", name + "(", ")"));
    }

    private static String simpleErasure(TypeMirror type) {
        String erased = type.toString().replaceAll("<.*>", "");
        return erased.substring(erased.lastIndexOf('.') + 1);
    }

    /** The questions asked of one element, over the run's trees and type utilities. */
    private static final class Walk {
        private final DocTrees trees;
        private final Elements elements;
        private final Types types;

        Walk(DocletEnvironment environment) {
            this.trees = environment.getDocTrees();
            this.elements = environment.getElementUtils();
            this.types = environment.getTypeUtils();
        }

        boolean documented(Element element) {
            if (trees.getPath(element) == null) {
                return true; // read from a class file: another library's API, documented there
            }
            if (trees.getDocCommentTree(element) != null) {
                return true;
            }
            return element instanceof ExecutableElement method && element.getKind() == ElementKind.METHOD
                    && overridesDocumented(method);
        }

        private boolean overridesDocumented(ExecutableElement method) {
            TypeElement owner = (TypeElement) method.getEnclosingElement();
            Deque<TypeMirror> pending = new ArrayDeque<>(types.directSupertypes(owner.asType()));
            Set<Element> seen = new HashSet<>();
            while (!pending.isEmpty()) {
                TypeMirror supertype = pending.pop();
                if (!(supertype instanceof DeclaredType declared) || !seen.add(declared.asElement())) {
                    continue;
                }
                for (ExecutableElement candidate : ElementFilter.methodsIn(declared.asElement()
                        .getEnclosedElements())) {
                    if (elements.overrides(method, candidate, owner) && documented(candidate)) {
                        return true;
                    }
                }
                pending.addAll(types.directSupertypes(supertype));
            }
            return false;
        }

        boolean implicitAndDescribedByJavadoc(TypeElement type, Element member) {
            // javac gives the members it declares for an enum or a record (values(), valueOf, equals, hashCode,
            // toString, the accessors) no tree; a record's implicit canonical constructor has one but is mandated.
            return trees.getPath(member) == null
                    || type.getKind() == ElementKind.RECORD && elements.getOrigin(member) == Elements.Origin.MANDATED;
        }
    }
}
