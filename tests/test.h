/* test.h - the smallest test harness that can fail loudly.
 *
 * Each test program includes this once, defines tests as plain functions that
 * call CHECK, runs them with RUN, and ends main with `return test_summary();`.
 * The summary's last line is "N passed, N failed"; tests/run.sh adds these up
 * over all programs. A test passes when none of its CHECKs failed. */
#ifndef DL_TEST_H
#define DL_TEST_H
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int test__passed, test__failed, test__cur_failed;

/* CHECK(cond, printf-args): report and count a failure, keep going. */
#define CHECK(cond, ...) do { if (!(cond)) { \
    if (test__cur_failed++ < 5) { printf("    FAIL %s:%d: ", __FILE__, __LINE__); \
    printf(__VA_ARGS__); printf("\n"); } } } while (0)

#define RUN(fn) do { test__cur_failed = 0; fn(); \
    if (test__cur_failed) { test__failed++; printf("FAIL %s (%d checks failed)\n", #fn, test__cur_failed); } \
    else { test__passed++; printf("ok   %s\n", #fn); } fflush(stdout); } while (0)

static inline int test_summary(void) {
    printf("%d passed, %d failed\n", test__passed, test__failed);
    return test__failed ? 1 : 0;
}

/* Threads for tests that call dl.h from several threads at once: POSIX or
 * Win32, like the library's own pool. */
typedef void (*test_thread_fn)(void *arg);
#ifdef _WIN32
#include <windows.h>
typedef struct test_thread { test_thread_fn fn; void *arg; HANDLE h; } test_thread;
static DWORD WINAPI test__thread_main(LPVOID p) { ((test_thread *)p)->fn(((test_thread *)p)->arg); return 0; }
static inline int test_thread_start(test_thread *t, test_thread_fn fn, void *arg) {
    t->fn = fn; t->arg = arg;
    return (t->h = CreateThread(NULL, 0, test__thread_main, t, 0, NULL)) != NULL;
}
static inline void test_thread_join(test_thread *t) { WaitForSingleObject(t->h, INFINITE); CloseHandle(t->h); }
#else
#include <pthread.h>
typedef struct test_thread { test_thread_fn fn; void *arg; pthread_t t; } test_thread;
static void *test__thread_main(void *p) { ((test_thread *)p)->fn(((test_thread *)p)->arg); return NULL; }
static inline int test_thread_start(test_thread *t, test_thread_fn fn, void *arg) {
    t->fn = fn; t->arg = arg;
    return pthread_create(&t->t, NULL, test__thread_main, t) == 0;
}
static inline void test_thread_join(test_thread *t) { pthread_join(t->t, NULL); }
#endif

/* NaN by its bits: under make test-fastmath, x != x and isnan(x) may be folded to 0. */
static inline int test_nan(double x) {
    uint64_t u;
    memcpy(&u, &x, sizeof u);
    return (u & 0x7fffffffffffffffULL) > 0x7ff0000000000000ULL;
}

/* Closeness used by every numeric comparison: |a-b| <= atol + rtol*|b|. NaN never passes. */
static inline int test_close(double a, double b, double atol, double rtol) {
    double d = fabs(a - b);
    return !test_nan(d) && d <= atol + rtol * fabs(b);
}

/* Copies n bytes through a function the compiler cannot see: a test's own
   loop then computes from values unknown at compile time, as the library
   does, so -ffast-math cannot specialise one of two "same calls" (folding a
   division by a known period into a multiplication, say) and not the other. */
static void *(*volatile test__copy)(void *, const void *, size_t) = memcpy;
static inline void test_opaque(void *dst, const void *src, size_t n) { test__copy(dst, src, n); }
#endif
