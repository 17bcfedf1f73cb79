/* pgm.h - read a w x h binary PGM (P5, 8-bit) into floats in [0, 1], or
 * write one from bytes. Part of the dl.h examples (classify.c, fashion.c,
 * embed/classify_pgm.c); static, include it where needed. Both return 0, or
 * -1 when the file is missing, malformed or cannot be written. */
#ifndef PGM_H
#define PGM_H
#include <ctype.h>
#include <stdio.h>
#if defined(__GNUC__) || defined(__clang__)
#define PGM_DEF static __attribute__((unused))   /* a program takes what it needs */
#else
#define PGM_DEF static
#endif

PGM_DEF int read_pgm(const char *path, float *x, int w, int h) {
    FILE *f = fopen(path, "rb");
    int v[3], k = 0, c, i;
    if (!f) return -1;
    if (fgetc(f) != 'P' || fgetc(f) != '5') goto bad;
    while (k < 3) {                             /* width, height, maxval; # starts a comment */
        c = fgetc(f);
        if (c == '#') while (c != '\n' && c != EOF) c = fgetc(f);
        else if (isdigit(c)) { ungetc(c, f); if (fscanf(f, "%d", &v[k++]) != 1) goto bad; }
        else if (!isspace(c)) goto bad;
    }
    if (!isspace(fgetc(f)) || v[0] != w || v[1] != h || v[2] < 1 || v[2] > 255) goto bad;
    for (i = 0; i < w * h; i++) {
        if ((c = fgetc(f)) == EOF) goto bad;
        x[i] = (float)c / (float)v[2];
    }
    fclose(f);
    return 0;
bad:
    fclose(f);
    return -1;
}

PGM_DEF int write_pgm(const char *path, const unsigned char *pixels, int w, int h) {
    FILE *f = fopen(path, "wb");
    int ok;
    if (!f) return -1;
    ok = fprintf(f, "P5\n%d %d\n255\n", w, h) > 0 && fwrite(pixels, 1, (size_t)w * h, f) == (size_t)w * h;
    return fclose(f) || !ok ? -1 : 0;
}
#endif
