/* The check harness: runs the model on the bundle's test vectors, prints every output, and exits 0 only if each
 * output is within NAS_CHECK_TOLERANCE LSB (make: TOLERANCE, default 0: equal) of the int8 ONNX model's and the
 * top-1 class is the same on every image. Host build: stdout; Cortex-M build: semihosting. */
#include "model.h"
#include "test_vectors.h"

#ifndef NAS_CHECK_TOLERANCE
#define NAS_CHECK_TOLERANCE 0
#endif

#ifdef NAS_SEMIHOSTING
static int semihost(int op, const void *arg)
{
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}
static void put(const char *s) { semihost(0x04, s); } /* SYS_WRITE0 */
static void finish(int code)
{
    /* SYS_EXIT with ADP_Stopped_ApplicationExit (0x20026) and the exit code (extended form) */
    static int block[2];
    block[0] = 0x20026;
    block[1] = code;
    semihost(0x20, block);
    for (;;) {
    }
}
#else
#include <stdio.h>
#include <stdlib.h>
static void put(const char *s) { fputs(s, stdout); }
static void finish(int code) { exit(code); }
#endif

static char *fmt_int(char *p, int v)
{
    char tmp[12];
    int n = 0;
    unsigned u = v < 0 ? (unsigned)(-v) : (unsigned)v;
    if (v < 0) {
        *p++ = '-';
    }
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    while (n) {
        *p++ = tmp[--n];
    }
    return p;
}

static int argmax(const int8_t *v)
{
    int best = 0;
    for (int i = 1; i < NAS_OUTPUT_BYTES; i++) {
        if (v[i] > v[best]) {
            best = i;
        }
    }
    return best;
}

int main(void)
{
    static int8_t out[NAS_OUTPUT_BYTES];
    static char line[16 + 5 * NAS_OUTPUT_BYTES];
    int equal = 0, max_diff = 0, top1_bad = 0;
    for (int i = 0; i < NAS_TEST_COUNT; i++) {
        nas_infer(nas_test_inputs[i], out);
        char *p = fmt_int(line, i);
        *p++ = ':';
        for (int j = 0; j < NAS_OUTPUT_BYTES; j++) {
            int d = out[j] - nas_test_expected[i][j];
            d = d < 0 ? -d : d;
            equal += d == 0;
            max_diff = d > max_diff ? d : max_diff;
            *p++ = ' ';
            p = fmt_int(p, out[j]);
        }
        *p++ = '\n';
        *p = 0;
        put(line);
        top1_bad += argmax(out) != argmax(nas_test_expected[i]);
    }
    char *p = line;
    const char *s = "equal ";
    while (*s) *p++ = *s++;
    p = fmt_int(p, equal);
    *p++ = '/';
    p = fmt_int(p, NAS_TEST_COUNT * NAS_OUTPUT_BYTES);
    s = " max_diff ";
    while (*s) *p++ = *s++;
    p = fmt_int(p, max_diff);
    s = " top1_mismatches ";
    while (*s) *p++ = *s++;
    p = fmt_int(p, top1_bad);
    *p++ = '\n';
    *p = 0;
    put(line);
    finish(max_diff <= NAS_CHECK_TOLERANCE && top1_bad == 0 ? 0 : 1);
    return 0;
}
