package io.microdit.train;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The process's minor page faults so far (field 10 of Linux's {@code /proc/self/stat}): each first touch of a
 * freshly mapped page is one, and on a virtual machine each costs microseconds in the kernel, so the per-step count
 * shows whether a step reuses its memory or maps it anew.
 */
final class MinorPageFaults {
    private static final Path STAT = Path.of("/proc/self/stat");

    private MinorPageFaults() {
    }

    /** The count so far, or -1 where there is no {@code /proc} (not Linux). */
    static long count() {
        String stat;
        try {
            stat = Files.readString(STAT);
        } catch (IOException | UnsupportedOperationException e) {
            return -1;
        }
        return parse(stat);
    }

    /**
     * Field 10 of a {@code /proc/<pid>/stat} line. The command name (field 2) is in parentheses and may hold spaces
     * and parentheses itself, so fields are counted from the last ')': state is field 3, minflt the 8th after it.
     */
    static long parse(String stat) {
        String[] fields = stat.substring(stat.lastIndexOf(')') + 2).trim().split(" ");
        return Long.parseLong(fields[7]);
    }
}
