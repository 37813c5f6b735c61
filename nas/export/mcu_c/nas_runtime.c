/* ofa-nas int8 runtime: the kernels (see nas_runtime.h). */
#include "nas_runtime.h"

#include <string.h>

/* onnxruntime's int8 kernels requantize in float32; these integer functions give the same results bit for bit.
 * A float32 constant c is passed as a mantissa m (|m| < 2^24) and a shift s with c = m * 2^-s. */

static int bit_length(uint64_t a)
{
#if defined(__GNUC__) || defined(__clang__)
    return a ? 64 - __builtin_clzll(a) : 0;
#else
    int n = 0;
    while (a) {
        a >>= 1;
        n++;
    }
    return n;
#endif
}

/* v rounded to float32 precision: 24 significant bits, ties to even (v and the result at the same scale). */
static int64_t f32_round(int64_t v)
{
    uint64_t a = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    if (a < ((uint64_t)1 << 24)) {
        return v;
    }
    int drop = bit_length(a) - 24;
    uint64_t q = a >> drop, rem = a & (((uint64_t)1 << drop) - 1), half = (uint64_t)1 << (drop - 1);
    if (rem > half || (rem == half && (q & 1))) {
        q++;
    }
    a = q << drop;
    return v < 0 ? -(int64_t)a : (int64_t)a;
}

/* v * 2^-s rounded to an integer, ties to even (0 <= s <= 62). */
static int64_t round_shift(int64_t v, int32_t s)
{
    if (s == 0) {
        return v;
    }
    int64_t q = v >> s; /* floor (arithmetic shift) */
    uint64_t rem = (uint64_t)v & (((uint64_t)1 << s) - 1), half = (uint64_t)1 << (s - 1);
    if (rem > half || (rem == half && (q & 1))) {
        q++;
    }
    return q;
}

static int8_t sat8(int64_t v)
{
    return (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v));
}

/* An int32 sum requantized as onnxruntime's convolution, gemm and pooling kernels do:
 * round(float32(float32(acc) * scale)) + zp, saturated, with scale = m * 2^-s. */
static int8_t requant(int32_t acc, int32_t m, int32_t s, int32_t zp)
{
    return sat8(round_shift(f32_round(f32_round(acc) * (int64_t)m), s) + zp);
}

/* The k x k window at output (oy, ox) of one channel plane: sum of (x - zp) * w over the taps inside the map (the
 * int8 model pads with the real value 0, i.e. with the zero point: padded taps add nothing). */
static int32_t window(const int8_t *plane, const int8_t *w, int hi, int k, int s, int oy, int ox, int32_t zp)
{
    const int pad = k / 2;
    int32_t acc = 0;
    for (int ky = 0; ky < k; ky++) {
        const int iy = oy * s - pad + ky;
        if (iy < 0 || iy >= hi) {
            continue;
        }
        for (int kx = 0; kx < k; kx++) {
            const int ix = ox * s - pad + kx;
            if (ix >= 0 && ix < hi) {
                acc += (plane[iy * hi + ix] - zp) * w[ky * k + kx];
            }
        }
    }
    return acc;
}

static void conv(const nas_op_t *op, const int8_t *x, int8_t *y)
{
    const int k = op->kernel, hi = op->hin, ho = op->hout;
    for (int co = 0; co < op->cout; co++) {
        const int8_t *wc = op->weight + co * op->cin * k * k;
        for (int oy = 0; oy < ho; oy++) {
            for (int ox = 0; ox < ho; ox++) {
                int32_t acc = op->bias[co];
                for (int ci = 0; ci < op->cin; ci++) {
                    acc += window(x + ci * hi * hi, wc + ci * k * k, hi, k, op->stride, oy, ox, op->in_zp);
                }
                y[(co * ho + oy) * ho + ox] = requant(acc, op->mult[co], op->shifts[co], op->out_zp);
            }
        }
    }
}

/* Output positions in chunks of NAS_PW_CHUNK accumulated side by side (a contiguous inner loop the compiler
 * vectorizes), so the int32 accumulators stay on the stack whatever the map size. */
#define NAS_PW_CHUNK 32

static void pointwise(const nas_op_t *op, const int8_t *x, int8_t *y)
{
    const int hw = op->hin * op->hin, cin = op->cin;
    int32_t acc[NAS_PW_CHUNK];
    for (int p0 = 0; p0 < hw; p0 += NAS_PW_CHUNK) {
        const int n = hw - p0 < NAS_PW_CHUNK ? hw - p0 : NAS_PW_CHUNK;
        for (int co = 0; co < op->cout; co++) {
            const int8_t *w = op->weight + co * cin;
            for (int p = 0; p < n; p++) {
                acc[p] = op->bias[co]; /* bias - in_zp * sum(w): the zero point folded in at generation */
            }
            for (int ci = 0; ci < cin; ci++) {
                const int8_t *xp = x + ci * hw + p0;
                const int32_t wv = w[ci];
                for (int p = 0; p < n; p++) {
                    acc[p] += xp[p] * wv;
                }
            }
            for (int p = 0; p < n; p++) {
                y[co * hw + p0 + p] = requant(acc[p], op->mult[co], op->shifts[co], op->out_zp);
            }
        }
    }
}

/* In place through one scratch plane: channel c's input is copied out before its output is written; channels
 * go upward when the buffer sits at the arena's low end and downward at the high end, so the output planes never
 * reach an input plane not yet read. */
static void depthwise(const nas_op_t *op, const int8_t *x, int8_t *y, int8_t *plane)
{
    const int k = op->kernel, hi = op->hin, ho = op->hout, n = op->cout;
    for (int i = 0; i < n; i++) {
        const int c = (op->flags & 1) ? n - 1 - i : i;
        memcpy(plane, x + c * hi * hi, (size_t)(hi * hi));
        for (int oy = 0; oy < ho; oy++) {
            for (int ox = 0; ox < ho; ox++) {
                const int32_t acc = op->bias[c] + window(plane, op->weight + c * k * k, hi, k, op->stride, oy, ox,
                                                         op->in_zp);
                y[(c * ho + oy) * ho + ox] = requant(acc, op->mult[c], op->shifts[c], op->out_zp);
            }
        }
    }
}

static void pool(const nas_op_t *op, const int8_t *x, int8_t *y)
{
    const int hw = op->hin * op->hin;
    for (int c = 0; c < op->cin; c++) {
        int32_t acc = 0;
        for (int p = 0; p < hw; p++) {
            acc += x[c * hw + p] - op->in_zp;
        }
        y[c] = requant(acc, op->m0, op->shift, op->out_zp);
    }
}

static void lut(const nas_op_t *op, int8_t *x)
{
    const int n = op->cin * op->hin * op->hin;
    for (int i = 0; i < n; i++) {
        x[i] = op->lut[x[i] + 128];
    }
}

/* Per-channel multiply (squeeze-excite), as onnxruntime's QLinearMul: round(float32(float32(p * ratio) + zc)) with
 * p = (x - zx) * (s - zs) exact, ratio = m0 * 2^-shift. */
static void scale(const nas_op_t *op, int8_t *x, const int8_t *s)
{
    const int hw = op->hin * op->hin;
    const int64_t zc = (int64_t)op->out_zp * ((int64_t)1 << op->shift);
    for (int c = 0; c < op->cin; c++) {
        const int32_t sc = s[c] - op->aux_zp;
        for (int p = 0; p < hw; p++) {
            const int64_t prod = f32_round((int64_t)((x[c * hw + p] - op->in_zp) * sc) * op->m0);
            x[c * hw + p] = sat8(round_shift(f32_round(prod + zc), op->shift));
        }
    }
}

/* Residual add, as onnxruntime's QLinearAdd (x86): round(fma(a, ra, fma(b, rb, fixed))) in float32 on the raw int8
 * values, zero points folded into `fixed`; ra = m0 * 2^-sa, rb = m1 * 2^-sb, fixed = in_zp * 2^-sf with the shifts
 * packed in `shift` (sa | sb << 8 | sf << 16). Computed at the scale 2^-t, t the largest of the three. */
static void add(const nas_op_t *op, const int8_t *a, const int8_t *b, int8_t *y)
{
    const int32_t sa = op->shift & 0xff, sb = (op->shift >> 8) & 0xff, sf = (op->shift >> 16) & 0xff;
    const int32_t t = sa > sb ? (sa > sf ? sa : sf) : (sb > sf ? sb : sf);
    const int64_t ra = (int64_t)op->m0 << (t - sa), rb = (int64_t)op->m1 << (t - sb);
    const int64_t fixed = (int64_t)op->in_zp * ((int64_t)1 << (t - sf));
    const int n = op->cin * op->hin * op->hin;
    for (int i = 0; i < n; i++) {
        const int64_t inner = f32_round(b[i] * rb + fixed);
        y[i] = sat8(round_shift(f32_round(a[i] * ra + inner), t));
    }
}

void nas_run_ops(const nas_op_t *ops, int count, int8_t *arena, int8_t *scratch)
{
    for (int i = 0; i < count; i++) {
        const nas_op_t *op = &ops[i];
        int8_t *x = arena + op->in, *y = arena + op->out;
        switch (op->type) {
        case NAS_OP_CONV: conv(op, x, y); break;
        case NAS_OP_POINTWISE: pointwise(op, x, y); break;
        case NAS_OP_DEPTHWISE: depthwise(op, x, y, scratch); break;
        case NAS_OP_POOL: pool(op, x, y); break;
        case NAS_OP_LUT: lut(op, x); break;
        case NAS_OP_SCALE: scale(op, x, arena + op->aux); break;
        case NAS_OP_ADD: add(op, x, arena + op->aux, y); break;
        default: break;
        }
    }
}
