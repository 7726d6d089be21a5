package io.microdit.train;

import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.lang.reflect.Proxy;
import java.util.function.Consumer;

/**
 * The JDK's only way to handle SIGTERM and SIGINT, {@code sun.misc.Signal} (module jdk.unsupported, which the module
 * requires), reached through method handles: javac and javadoc warn on every compile-time use of a {@code sun.*}
 * API ("internal proprietary API"), with no option or annotation to silence it, and the build keeps no warnings.
 */
final class SignalHandlers {
    private static final Class<?> SIGNAL;
    private static final Class<?> HANDLER;
    private static final MethodHandle NEW_SIGNAL;
    private static final MethodHandle HANDLE;
    private static final MethodHandle GET_NAME;

    static {
        try {
            SIGNAL = Class.forName("sun.misc.Signal");
            HANDLER = Class.forName("sun.misc.SignalHandler");
            MethodHandles.Lookup lookup = MethodHandles.publicLookup();
            NEW_SIGNAL = lookup.findConstructor(SIGNAL, MethodType.methodType(void.class, String.class));
            HANDLE = lookup.findStatic(SIGNAL, "handle", MethodType.methodType(HANDLER, SIGNAL, HANDLER));
            GET_NAME = lookup.findVirtual(SIGNAL, "getName", MethodType.methodType(String.class));
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private SignalHandlers() {
    }

    /**
     * Calls {@code handler} with the signal's name ("TERM", "INT") on the JVM's signal thread whenever the signal
     * {@code name} arrives, until {@link #restore}; returns the handler it replaced (opaque: give it back to restore).
     *
     * @throws IllegalArgumentException when the JVM keeps the signal for itself (-Xrs, a debugger)
     */
    static Object install(String name, Consumer<String> handler) {
        Object proxy = Proxy.newProxyInstance(SignalHandlers.class.getClassLoader(), new Class<?>[] {HANDLER},
                (self, method, args) -> switch (method.getName()) {
                    case "handle" -> {
                        handler.accept((String) GET_NAME.invoke(args[0]));
                        yield null;
                    }
                    case "hashCode" -> System.identityHashCode(self);
                    case "equals" -> self == args[0];
                    default -> "microdit handler of SIG" + name;
                });
        return handle(name, proxy);
    }

    /** Puts back the handler {@link #install} returned for {@code name}. */
    static void restore(String name, Object previous) {
        handle(name, previous);
    }

    private static Object handle(String name, Object handler) {
        try {
            return HANDLE.invoke(NEW_SIGNAL.invoke(name), handler);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable e) {
            throw new IllegalStateException("sun.misc.Signal.handle(" + name + ") failed", e);
        }
    }
}
