#include "status.h"

#include <cstdarg>
#include <cstdio>

#include "microdit.h"

namespace {
thread_local char last_message[1024] = "";
}

namespace mdt {
int fail(int status, const char *format, ...) {
    va_list arguments;
    va_start(arguments, format);
    std::vsnprintf(last_message, sizeof last_message, format, arguments);
    va_end(arguments);
    return status;
}
}  // namespace mdt

extern "C" const char *mdt_error_string(int status) {
    switch (status) {
        case MDT_SUCCESS: return "success";
        case MDT_ERROR_INVALID_ARGUMENT: return "invalid argument";
        case MDT_ERROR_NO_DEVICE: return "no CUDA device";
        case MDT_ERROR_OUT_OF_MEMORY: return "out of device memory";
        case MDT_ERROR_LAUNCH_SHAPE: return "invalid launch shape";
        case MDT_ERROR_SHARED_MEMORY: return "shared memory over the limit";
        case MDT_ERROR_DEADLOCK: return "kernel deadlocked (emulator)";
        case MDT_ERROR_RUNTIME: return "CUDA runtime error";
        case MDT_ERROR_DRIVER_TOO_OLD: return "NVIDIA driver too old for the CUDA runtime";
        case MDT_ERROR_OUT_OF_BOUNDS: return "out-of-bounds memory access (checked emulator)";
        case MDT_ERROR_RACE: return "data race (checked emulator)";
        case MDT_ERROR_COMMUNICATION: return "collective communication failed";
        default: return "unknown status";
    }
}

extern "C" const char *mdt_last_error_message(void) { return last_message; }
