// The launch trace shared by both libraries (native/trace.cpp, ABI in microdit.h): every kernel launch made
// through MDT_LAUNCH while a trace is open is recorded with its shape. A dry run (emulator only) also skips the
// kernels and lets grid-stride kernels size their grids as on a GPU.
#ifndef MDT_TRACE_H
#define MDT_TRACE_H

#include <stddef.h>

#include <string>

namespace mdt {
/**
 * The name a launch is reported by: MDT_LAUNCH's kernel expression without namespace qualifiers and without the
 * template arguments that name types (token_rows_kernel<H> → token_rows_kernel: an instance per element type is
 * the same kernel to a reader); numeric arguments stay (tc::attention_forward_bf16_kernel<64, Out> →
 * attention_forward_bf16_kernel<64>), as they tell which ptxas instance ran.
 */
std::string launch_label(const char *kernel);
/** True while a trace is open (a relaxed atomic load: cheap enough for every launch). */
bool tracing();
/** True while a dry-run trace is open: launches are recorded but not run. */
bool dry_run();
void trace_launch(const char *kernel, unsigned grid_x, unsigned grid_y, unsigned grid_z, unsigned block_x,
                  unsigned block_y, unsigned block_z, size_t shared_bytes);
}  // namespace mdt

#endif
