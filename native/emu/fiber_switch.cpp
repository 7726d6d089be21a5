// The context switch behind the emulator's fibers, for x86-64 (System V) and aarch64 (AAPCS64). A switch is an
// ordinary call, so the compiler has already saved the caller-saved registers around it; the routine saves what
// the ABI makes callee-saved (general registers, the stack pointer, and on x86-64 the x87 control word and MXCSR,
// on aarch64 d8-d15 and FPCR) below the stack pointer, stores the stack pointer, loads the other fiber's and
// restores in reverse. That is about twenty instructions, against swapcontext's rt_sigprocmask system call, which
// costs microseconds on a virtual machine and dominated the emulator's time. The signal mask is not switched:
// fibers never change it.
//
// A new fiber's stack holds a saved frame whose return address is a trampoline: the first switch to it "returns"
// into the trampoline, which calls entry(argument) from two callee-saved registers of that frame. The trampoline's
// unwind information marks the return address undefined, so debuggers and unwinders stop there.
#include "fiber_switch.h"

#include <cstdint>

#if defined(__x86_64__)

// Frame, from the saved stack pointer up: MXCSR (4 bytes) and the x87 control word (2 bytes) in one 8-byte slot,
// r15, r14, r13, r12, rbx, rbp, return address.
asm(R"(
    .text
    .globl mdt_emu_fiber_switch
    .hidden mdt_emu_fiber_switch
    .type mdt_emu_fiber_switch, @function
    .p2align 4
mdt_emu_fiber_switch:
    .cfi_startproc
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .cfi_endproc
    .size mdt_emu_fiber_switch, .-mdt_emu_fiber_switch

    .globl mdt_emu_fiber_trampoline
    .hidden mdt_emu_fiber_trampoline
    .type mdt_emu_fiber_trampoline, @function
    .p2align 4
mdt_emu_fiber_trampoline:
    .cfi_startproc
    .cfi_undefined rip
    movq %r12, %rdi
    callq *%r13
    ud2
    .cfi_endproc
    .size mdt_emu_fiber_trampoline, .-mdt_emu_fiber_trampoline
)");

#elif defined(__aarch64__)

// Frame, 176 bytes from the saved stack pointer up (16-byte aligned, as sp must always be): x19-x30 in pairs,
// d8-d15 in pairs, FPCR, one slot of padding.
asm(R"(
    .text
    .globl mdt_emu_fiber_switch
    .hidden mdt_emu_fiber_switch
    .type mdt_emu_fiber_switch, %function
    .p2align 4
mdt_emu_fiber_switch:
    .cfi_startproc
    sub sp, sp, #176
    stp x19, x20, [sp, #0]
    stp x21, x22, [sp, #16]
    stp x23, x24, [sp, #32]
    stp x25, x26, [sp, #48]
    stp x27, x28, [sp, #64]
    stp x29, x30, [sp, #80]
    stp d8, d9, [sp, #96]
    stp d10, d11, [sp, #112]
    stp d12, d13, [sp, #128]
    stp d14, d15, [sp, #144]
    mrs x9, fpcr
    str x9, [sp, #160]
    mov x9, sp
    str x9, [x0]
    mov sp, x1
    ldp x19, x20, [sp, #0]
    ldp x21, x22, [sp, #16]
    ldp x23, x24, [sp, #32]
    ldp x25, x26, [sp, #48]
    ldp x27, x28, [sp, #64]
    ldp x29, x30, [sp, #80]
    ldp d8, d9, [sp, #96]
    ldp d10, d11, [sp, #112]
    ldp d12, d13, [sp, #128]
    ldp d14, d15, [sp, #144]
    ldr x9, [sp, #160]
    msr fpcr, x9
    add sp, sp, #176
    ret
    .cfi_endproc
    .size mdt_emu_fiber_switch, .-mdt_emu_fiber_switch

    .globl mdt_emu_fiber_trampoline
    .hidden mdt_emu_fiber_trampoline
    .type mdt_emu_fiber_trampoline, %function
    .p2align 4
mdt_emu_fiber_trampoline:
    .cfi_startproc
    .cfi_undefined x30
    mov x0, x19
    blr x20
    brk #0
    .cfi_endproc
    .size mdt_emu_fiber_trampoline, .-mdt_emu_fiber_trampoline
)");

#else
#error "the emulator's fibers switch with hand-written code for x86-64 and aarch64 only (native/emu/fiber_switch.cpp)"
#endif

extern "C" void mdt_emu_fiber_trampoline();

namespace mdt_emu {

void *fiber_context(char *stack, size_t bytes, void (*entry)(void *), void *argument) {
    uintptr_t top = (reinterpret_cast<uintptr_t>(stack) + bytes) & ~static_cast<uintptr_t>(15);
    uint64_t *slots;
#if defined(__x86_64__)
    // The return address sits 8 bytes below the 16-byte aligned top, so the trampoline runs with rsp aligned and
    // its call gives entry the alignment the ABI promises at a function's first instruction.
    uint32_t mxcsr;
    uint16_t control_word;
    asm volatile("stmxcsr %0" : "=m"(mxcsr));
    asm volatile("fnstcw %0" : "=m"(control_word));
    slots = reinterpret_cast<uint64_t *>(top - 8) - 7;
    slots[0] = mxcsr | static_cast<uint64_t>(control_word) << 32;
    slots[1] = 0;                                         // r15
    slots[2] = 0;                                         // r14
    slots[3] = reinterpret_cast<uint64_t>(entry);         // r13
    slots[4] = reinterpret_cast<uint64_t>(argument);      // r12
    slots[5] = 0;                                         // rbx
    slots[6] = 0;                                         // rbp: ends frame-pointer chains
    slots[7] = reinterpret_cast<uint64_t>(&mdt_emu_fiber_trampoline);
#else
    uint64_t fpcr;
    asm volatile("mrs %0, fpcr" : "=r"(fpcr));
    slots = reinterpret_cast<uint64_t *>(top) - 22;
    for (int i = 0; i < 22; i++) slots[i] = 0;  // x29 = 0 ends frame-pointer chains
    slots[0] = reinterpret_cast<uint64_t>(argument);  // x19
    slots[1] = reinterpret_cast<uint64_t>(entry);     // x20
    slots[11] = reinterpret_cast<uint64_t>(&mdt_emu_fiber_trampoline);  // x30
    slots[20] = fpcr;
#endif
    return slots;
}

}  // namespace mdt_emu
