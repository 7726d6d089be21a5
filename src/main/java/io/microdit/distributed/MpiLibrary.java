package io.microdit.distributed;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/**
 * FFM bindings to the MPI functions microdit calls, in Open MPI's {@code libmpi.so.40} (Debian's
 * {@code libopenmpi-dev}), resolved once. Open MPI's predefined handles ({@code MPI_COMM_WORLD}, {@code MPI_FLOAT},
 * …) are macros over the addresses of global objects; they are looked up here and nowhere else, since another
 * MPI (MPICH uses integer handles) would change only this class.
 */
final class MpiLibrary {
    /** The library to open: {@code -Dmicrodit.mpi.library} names another file or path. */
    static final String LIBRARY = System.getProperty("microdit.mpi.library", "libmpi.so.40");
    /** mpi.h's {@code MPI_THREAD_SERIALIZED}: calls from any thread, one at a time. */
    static final int THREAD_SERIALIZED = 2;
    private static final int MAX_ERROR_STRING = 256;
    private static final ValueLayout ADDRESS = ValueLayout.ADDRESS;
    private static final ValueLayout.OfInt INT = ValueLayout.JAVA_INT;

    final MemorySegment commWorld;
    final MemorySegment floatType;
    final MemorySegment intType;
    final MemorySegment shortType;
    final MemorySegment errorsReturn;

    private final MethodHandle initialized;
    private final MethodHandle initThread;
    private final MethodHandle finalized;
    private final MethodHandle finalizeHandle;
    private final MethodHandle commRank;
    private final MethodHandle commSize;
    private final MethodHandle commSetErrhandler;
    private final MethodHandle alltoallv;
    private final MethodHandle allgatherv;
    private final MethodHandle bcast;
    private final MethodHandle barrier;
    private final MethodHandle abort;
    private final MethodHandle errorString;

    private MpiLibrary(SymbolLookup lookup) {
        commWorld = symbol(lookup, "ompi_mpi_comm_world");
        floatType = symbol(lookup, "ompi_mpi_float");
        intType = symbol(lookup, "ompi_mpi_int");
        shortType = symbol(lookup, "ompi_mpi_short");
        errorsReturn = symbol(lookup, "ompi_mpi_errors_return");
        initialized = function(lookup, "MPI_Initialized", ADDRESS);
        initThread = function(lookup, "MPI_Init_thread", ADDRESS, ADDRESS, INT, ADDRESS);
        finalized = function(lookup, "MPI_Finalized", ADDRESS);
        finalizeHandle = function(lookup, "MPI_Finalize");
        commRank = function(lookup, "MPI_Comm_rank", ADDRESS, ADDRESS);
        commSize = function(lookup, "MPI_Comm_size", ADDRESS, ADDRESS);
        commSetErrhandler = function(lookup, "MPI_Comm_set_errhandler", ADDRESS, ADDRESS);
        alltoallv = function(lookup, "MPI_Alltoallv", ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                ADDRESS, ADDRESS);
        allgatherv = function(lookup, "MPI_Allgatherv", ADDRESS, INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                ADDRESS);
        bcast = function(lookup, "MPI_Bcast", ADDRESS, INT, ADDRESS, INT, ADDRESS);
        barrier = function(lookup, "MPI_Barrier", ADDRESS);
        abort = function(lookup, "MPI_Abort", ADDRESS, INT);
        errorString = function(lookup, "MPI_Error_string", INT, ADDRESS, ADDRESS);
    }

    /**
     * Opens the library (kept for the process's life: MPI cannot be initialised twice). A missing library is an
     * error naming it and the Debian packages that provide it.
     */
    static MpiLibrary load() {
        SymbolLookup lookup;
        try {
            lookup = SymbolLookup.libraryLookup(LIBRARY, Arena.global());
        } catch (IllegalArgumentException error) {
            throw new IllegalStateException("this process was started by mpirun but Open MPI's " + LIBRARY
                    + " could not be loaded (" + error.getMessage() + "): install Debian's openmpi-bin and "
                    + "libopenmpi-dev (apt-get install openmpi-bin libopenmpi-dev), or name the library with "
                    + "-Dmicrodit.mpi.library", error);
        }
        return new MpiLibrary(lookup);
    }

    private static MemorySegment symbol(SymbolLookup lookup, String name) {
        return lookup.find(name).orElseThrow(() -> new IllegalStateException(LIBRARY + " has no symbol " + name
                + ": microdit's MPI binding needs Open MPI 4 or later"));
    }

    private static MethodHandle function(SymbolLookup lookup, String name, MemoryLayout... arguments) {
        return Linker.nativeLinker().downcallHandle(symbol(lookup, name), FunctionDescriptor.of(INT, arguments));
    }

    /** Throws for a status other than MPI_SUCCESS, naming the call and MPI's message for the status. */
    void check(int status, String call) {
        if (status == 0) {
            return;
        }
        String message;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment text = arena.allocate(MAX_ERROR_STRING);
            MemorySegment length = arena.allocate(INT);
            message = (int) errorString.invokeExact(status, text, length) == 0 ? text.getString(0)
                    : "unknown MPI error";
        } catch (Throwable t) {
            message = "unknown MPI error (" + t + ")";
        }
        throw new IllegalStateException(call + " failed with MPI error " + status + ": " + message);
    }

    boolean initialized() {
        return flag(initialized, "MPI_Initialized");
    }

    boolean finalized() {
        return flag(finalized, "MPI_Finalized");
    }

    private boolean flag(MethodHandle function, String call) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment value = arena.allocate(INT);
            check((int) function.invokeExact(value), call);
            return value.get(INT, 0) != 0;
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(call + ": " + t, t);
        }
    }

    /** MPI_Init_thread without command-line arguments; returns the thread level MPI provides. */
    int initThread(int required) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment provided = arena.allocate(INT);
            check((int) initThread.invokeExact(MemorySegment.NULL, MemorySegment.NULL, required, provided),
                    "MPI_Init_thread");
            return provided.get(INT, 0);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("MPI_Init_thread: " + t, t);
        }
    }

    void finalizeMpi() {
        try {
            check((int) finalizeHandle.invokeExact(), "MPI_Finalize");
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("MPI_Finalize: " + t, t);
        }
    }

    int commRank(MemorySegment comm) {
        return intOut(commRank, comm, "MPI_Comm_rank");
    }

    int commSize(MemorySegment comm) {
        return intOut(commSize, comm, "MPI_Comm_size");
    }

    private int intOut(MethodHandle function, MemorySegment comm, String call) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment value = arena.allocate(INT);
            check((int) function.invokeExact(comm, value), call);
            return value.get(INT, 0);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(call + ": " + t, t);
        }
    }

    void commSetErrhandler(MemorySegment comm, MemorySegment handler) {
        try {
            check((int) commSetErrhandler.invokeExact(comm, handler), "MPI_Comm_set_errhandler");
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("MPI_Comm_set_errhandler: " + t, t);
        }
    }

    void alltoallv(MemorySegment send, MemorySegment sendCounts, MemorySegment sendDisplacements,
                   MemorySegment type, MemorySegment receive, MemorySegment receiveCounts,
                   MemorySegment receiveDisplacements, MemorySegment comm) {
        try {
            check((int) alltoallv.invokeExact(send, sendCounts, sendDisplacements, type, receive, receiveCounts,
                    receiveDisplacements, type, comm), "MPI_Alltoallv");
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("MPI_Alltoallv: " + t, t);
        }
    }

    void allgatherv(MemorySegment send, int sendCount, MemorySegment type, MemorySegment receive,
                    MemorySegment receiveCounts, MemorySegment displacements, MemorySegment comm) {
        try {
            check((int) allgatherv.invokeExact(send, sendCount, type, receive, receiveCounts, displacements, type,
                    comm), "MPI_Allgatherv");
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("MPI_Allgatherv: " + t, t);
        }
    }

    void bcast(MemorySegment buffer, int count, MemorySegment type, int root, MemorySegment comm) {
        try {
            check((int) bcast.invokeExact(buffer, count, type, root, comm), "MPI_Bcast");
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("MPI_Bcast: " + t, t);
        }
    }

    void barrier(MemorySegment comm) {
        try {
            check((int) barrier.invokeExact(comm), "MPI_Barrier");
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("MPI_Barrier: " + t, t);
        }
    }

    /** MPI_Abort: ends every rank of the job with {@code code} (mpirun then reports which rank aborted). */
    void abort(MemorySegment comm, int code) {
        try {
            int ignored = (int) abort.invokeExact(comm, code);
        } catch (Throwable t) {
            throw new IllegalStateException("MPI_Abort: " + t, t);
        }
    }
}
