// Status helpers shared by both libraries: a failing call records a detailed, thread-local message
// (mdt_last_error_message) and returns its status.
#ifndef MDT_STATUS_H
#define MDT_STATUS_H

namespace mdt {
int fail(int status, const char *format, ...) __attribute__((format(printf, 2, 3)));
}

#endif
