// Two CPU hints the Swift kernels need and Swift cannot spell: a software prefetch and a spin-wait pause.
// Both are static inline so that LLVM inlines them into the Swift loops that call them (no call per use).
#ifndef RLIF_KERNEL_SUPPORT_H
#define RLIF_KERNEL_SUPPORT_H

/// Asks the core to bring the cache line holding `p` into L1 (read, high temporal locality). A hint only:
/// never faults, also for addresses past the end of a buffer.
static inline void rlif_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }

/// Spin-wait hint (x86 PAUSE): cheaper polling and less pressure on the sibling core.
static inline void rlif_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#endif
