/* Every malloc, free and aligned allocation of a process, in memory, for benchmarks/heap_trace.py.
 * Loaded with LD_PRELOAD; glibc's own entry points (__libc_malloc...) do the work. Recording starts at
 * heap_trace_start() and ends at heap_trace_stop(path), which writes the records: three uint64 each, (kind << 56 |
 * size), the address, and the caller's return address (kind 0 free, 1 malloc/calloc/realloc/new, 2 aligned). */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

typedef struct { uint64_t kind_size, address, caller; } record;
static record *records;
static uint64_t capacity = 100000000ULL; /* 2.4 GB of address space, touched only as used */
static volatile uint64_t count;
static volatile int recording;

static inline void put(uint64_t kind, void *p, size_t size, void *caller) {
    if (!recording || !p) return;
    uint64_t i = __atomic_fetch_add(&count, 1, __ATOMIC_RELAXED);
    if (i < capacity) {
        records[i].kind_size = (kind << 56) | (size & ((1ULL << 56) - 1));
        records[i].address = (uint64_t)p;
        records[i].caller = (uint64_t)caller;
    }
}

int heap_trace_start(void) {
    if (!records) {
        void *m = mmap(0, capacity * sizeof(record), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) return -1;
        records = m;
    }
    count = 0;
    recording = 1;
    return 0;
}

/* Returns how many allocations were seen (more than were kept if past the capacity), or -1. */
int64_t heap_trace_stop(const char *path) {
    recording = 0;
    uint64_t kept = count < capacity ? count : capacity;
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t written = fwrite(records, sizeof(record), kept, f);
    fclose(f);
    return written == kept ? (int64_t)count : -1;
}

void *malloc(size_t size) { void *p = __libc_malloc(size); put(1, p, size, __builtin_return_address(0)); return p; }
void *calloc(size_t n, size_t size) { void *p = __libc_calloc(n, size); put(1, p, n * size, __builtin_return_address(0)); return p; }
void free(void *p) { put(0, p, 0, __builtin_return_address(0)); __libc_free(p); }
void *realloc(void *old, size_t size) {
    void *p = __libc_realloc(old, size);
    if (p || size == 0) put(0, old, 0, __builtin_return_address(0)); /* a failed realloc leaves old allocated */
    put(1, p, size, __builtin_return_address(0));
    return p;
}
void *memalign(size_t a, size_t size) { void *p = __libc_memalign(a, size); put(2, p, size, __builtin_return_address(0)); return p; }
void *aligned_alloc(size_t a, size_t size) { void *p = __libc_memalign(a, size); put(2, p, size, __builtin_return_address(0)); return p; }
int posix_memalign(void **out, size_t a, size_t size) {
    void *p = __libc_memalign(a, size);
    if (!p) return ENOMEM;
    *out = p;
    put(2, p, size, __builtin_return_address(0));
    return 0;
}

/* C++'s operator new and new[] (size_t), so that a C++ object is recorded with the code that made it rather than
 * libstdc++; out of memory aborts, where C++ would throw. */
static void *cxx_new(size_t size, void *caller) {
    void *p = __libc_malloc(size ? size : 1);
    if (!p) abort();
    put(1, p, size, caller);
    return p;
}
void *_Znwm(size_t size) { return cxx_new(size, __builtin_return_address(0)); }
void *_Znam(size_t size) { return cxx_new(size, __builtin_return_address(0)); }
