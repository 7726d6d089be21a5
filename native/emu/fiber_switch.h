// The emulator's context switch (fiber_switch.cpp): a fiber is a stack pointer under which its callee-saved
// registers and floating-point control state are saved. Switching is a function call that saves those and loads
// another fiber's, with no system call (ucontext's swapcontext saves the signal mask with one on every switch).
#ifndef MDT_EMU_FIBER_SWITCH_H
#define MDT_EMU_FIBER_SWITCH_H

#include <cstddef>

namespace mdt_emu {

/**
 * Saves the running context (callee-saved registers, floating-point control) on its own stack, stores that stack
 * pointer in {@code *save} and resumes the context saved at {@code resume}. Returns when another switch resumes
 * {@code *save}.
 */
extern "C" void mdt_emu_fiber_switch(void **save, void *resume);

/**
 * Lays out, at the top of [stack, stack + bytes), a context whose first resumption calls entry(argument) on that
 * stack with the caller's floating-point control state; entry must never return (it switches away for good).
 * Returns the context to pass to mdt_emu_fiber_switch.
 */
void *fiber_context(char *stack, size_t bytes, void (*entry)(void *), void *argument);

}  // namespace mdt_emu

#endif
