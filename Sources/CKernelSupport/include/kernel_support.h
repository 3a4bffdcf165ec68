// CPU hints and vector operations the Swift kernels need and Swift cannot spell (or compiles badly): a software
// prefetch, a spin-wait pause, BF16 widening, a vector square root.
// All are static inline so that LLVM inlines them into the Swift loops that call them (no call per use).
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

/// 8 floats in a 256-bit register; Swift imports it as SIMD8<Float>.
typedef float rlif_float8 __attribute__((ext_vector_type(8)));

/// 8 bfloat16 values (16 bytes at `p`, unaligned) widened exactly to F32: zero-extend each to 32 bits and shift
/// left 16 (one vpmovzxwd + vpslld with AVX2). In C because Swift's generic SIMD integer widening
/// (`SIMD8<UInt32>(truncatingIfNeeded:)`) compiles to a call per load here, 4× slower in the decode kernel.
static inline rlif_float8 rlif_load_bf16x8(const unsigned short *p) {
    typedef unsigned short rlif_u16x8 __attribute__((ext_vector_type(8)));
    typedef unsigned int rlif_u32x8 __attribute__((ext_vector_type(8)));
    rlif_u16x8 h;
    __builtin_memcpy(&h, p, sizeof h);
    rlif_u32x8 w = __builtin_convertvector(h, rlif_u32x8) << 16;
    rlif_float8 f;
    __builtin_memcpy(&f, &w, sizeof f);
    return f;
}

/// Square root of 8 floats, correctly rounded (IEEE), so each lane equals `sqrtf` of it bitwise: one vsqrtps with
/// AVX. In C because Swift's `SIMD8<Float>.squareRoot()` compiles to 8 scalar vsqrtss, each with a `sqrtf` call
/// path for negative inputs, plus lane shuffles — it made AdamW's update ~4× slower than its memory traffic.
static inline rlif_float8 rlif_sqrt8(rlif_float8 x) { return __builtin_elementwise_sqrt(x); }

#endif
