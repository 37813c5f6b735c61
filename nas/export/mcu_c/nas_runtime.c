/* ofa-nas int8 runtime: the kernels (see nas_runtime.h). */
#include "nas_runtime.h"

#include <string.h>

/* acc * m * 2^-shift rounded half to even (nearbyint, as QuantizeLinear rounds), then + zp, clamped to int8. */
static int8_t requant(int64_t acc, int32_t m, int32_t shift, int32_t zp)
{
    int64_t p = acc * (int64_t)m;
    int64_t q = p >> shift; /* floor */
    int64_t rem = p - (q << shift);
    int64_t half = (int64_t)1 << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) {
        q++;
    }
    q += zp;
    return (int8_t)(q < -128 ? -128 : (q > 127 ? 127 : q));
}

static void conv(const nas_op_t *op, const int8_t *x, int8_t *y)
{
    const int k = op->kernel, s = op->stride, pad = op->kernel / 2, hi = op->hin, ho = op->hout;
    for (int co = 0; co < op->cout; co++) {
        const int8_t *wc = op->weight + co * op->cin * k * k;
        for (int oy = 0; oy < ho; oy++) {
            for (int ox = 0; ox < ho; ox++) {
                int32_t acc = op->bias[co];
                for (int ci = 0; ci < op->cin; ci++) {
                    const int8_t *xc = x + ci * hi * hi;
                    const int8_t *wk = wc + ci * k * k;
                    for (int ky = 0; ky < k; ky++) {
                        int iy = oy * s - pad + ky;
                        if (iy < 0 || iy >= hi) {
                            continue;
                        }
                        for (int kx = 0; kx < k; kx++) {
                            int ix = ox * s - pad + kx;
                            if (ix >= 0 && ix < hi) {
                                acc += (xc[iy * hi + ix] - op->in_zp) * wk[ky * k + kx];
                            }
                        }
                    }
                }
                y[(co * ho + oy) * ho + ox] = requant(acc, op->mult[co], op->shifts[co], op->out_zp);
            }
        }
    }
}

static void pointwise(const nas_op_t *op, const int8_t *x, int8_t *y)
{
    const int hw = op->hin * op->hin, cin = op->cin;
    for (int co = 0; co < op->cout; co++) {
        const int8_t *w = op->weight + co * cin;
        const int32_t m = op->mult[co], sh = op->shifts[co];
        for (int p = 0; p < hw; p++) {
            int32_t acc = op->bias[co]; /* bias - in_zp * sum(w): the zero point folded in at generation */
            const int8_t *xp = x + p;
            for (int ci = 0; ci < cin; ci++) {
                acc += xp[ci * hw] * w[ci];
            }
            y[co * hw + p] = requant(acc, m, sh, op->out_zp);
        }
    }
}

/* In place through one scratch plane: channel c's input is copied out before its output is written; channels
 * go upward when the buffer sits at the arena's low end and downward at the high end, so the output planes never
 * reach an input plane not yet read. */
static void depthwise(const nas_op_t *op, const int8_t *x, int8_t *y, int8_t *plane)
{
    const int k = op->kernel, s = op->stride, pad = op->kernel / 2, hi = op->hin, ho = op->hout;
    const int n = op->cout;
    for (int i = 0; i < n; i++) {
        const int c = (op->flags & 1) ? n - 1 - i : i;
        const int8_t *w = op->weight + c * k * k;
        memcpy(plane, x + c * hi * hi, (size_t)(hi * hi));
        for (int oy = 0; oy < ho; oy++) {
            for (int ox = 0; ox < ho; ox++) {
                int32_t acc = op->bias[c];
                for (int ky = 0; ky < k; ky++) {
                    int iy = oy * s - pad + ky;
                    if (iy < 0 || iy >= hi) {
                        continue;
                    }
                    for (int kx = 0; kx < k; kx++) {
                        int ix = ox * s - pad + kx;
                        if (ix >= 0 && ix < hi) {
                            acc += (plane[iy * hi + ix] - op->in_zp) * w[ky * k + kx];
                        }
                    }
                }
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

static void scale(const nas_op_t *op, int8_t *x, const int8_t *s)
{
    const int hw = op->hin * op->hin;
    for (int c = 0; c < op->cin; c++) {
        const int32_t sc = s[c] - op->aux_zp;
        for (int p = 0; p < hw; p++) {
            x[c * hw + p] = requant((int32_t)(x[c * hw + p] - op->in_zp) * sc, op->m0, op->shift, op->out_zp);
        }
    }
}

static void add(const nas_op_t *op, const int8_t *a, const int8_t *b, int8_t *y)
{
    const int n = op->cin * op->hin * op->hin;
    for (int i = 0; i < n; i++) {
        int64_t acc = (int64_t)(a[i] - op->in_zp) * op->m0 + (int64_t)(b[i] - op->aux_zp) * op->m1;
        y[i] = requant(acc, 1, op->shift, op->out_zp);
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
