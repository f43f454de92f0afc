/* lm_gz: zlib's inflate over a stdio file, member by member (lm_gz.h). */
#include "lm_gz.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define IN_SIZE (1u << 17)

struct lm_gz {
    FILE *fp;
    char *path;
    bool compressed;
    bool in_member; /* inside a gzip member (else between members, or before the first) */
    z_stream z;
    unsigned char in[IN_SIZE];
};

/* More compressed bytes when the buffer is empty; false at the end of the file. */
static lm_status fill(lm_gz *g, bool *more) {
    *more = true;
    if (g->z.avail_in > 0) return LM_OK;
    size_t got = fread(g->in, 1, IN_SIZE, g->fp);
    if (got == 0 && ferror(g->fp))
        return lm_fail(LM_ERR_IO, "'%s': read error: %s", g->path, strerror(errno));
    g->z.next_in = g->in;
    g->z.avail_in = (uInt)got;
    *more = got > 0;
    return LM_OK;
}

lm_status lm_gz_open(lm_gz **out, const char *path) {
    *out = NULL;
    lm_gz *g = calloc(1, sizeof *g);
    size_t len = strlen(path) + 1;
    char *copy = malloc(len);
    if (!g || !copy) {
        free(g);
        free(copy);
        return lm_fail(LM_ERR_MEMORY, "out of memory opening '%s'", path);
    }
    memcpy(copy, path, len);
    g->path = copy;
    g->fp = fopen(path, "rb");
    if (!g->fp) {
        lm_status s = lm_fail(LM_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
        lm_gz_close(g);
        return s;
    }
    bool more;
    lm_status s = fill(g, &more);
    /* a gzip file starts with 1f 8b; anything else is read as it is */
    g->compressed = s == LM_OK && g->z.avail_in >= 2 && g->in[0] == 0x1f && g->in[1] == 0x8b;
    if (s == LM_OK && g->compressed && inflateInit2(&g->z, 16 + MAX_WBITS) != Z_OK) {
        g->compressed = false; /* nothing to end in close */
        s = lm_fail(LM_ERR_MEMORY, "out of memory opening '%s'", path);
    }
    if (s != LM_OK) {
        lm_gz_close(g);
        return s;
    }
    g->in_member = g->compressed;
    *out = g;
    return LM_OK;
}

bool lm_gz_compressed(const lm_gz *g) {
    return g->compressed;
}

/* Between members: the next one starts, or the file ends; *end when it does. */
static lm_status next_member(lm_gz *g, bool *end) {
    for (;;) {
        bool more;
        LM_TRY(fill(g, &more));
        *end = !more;
        if (!more) return LM_OK;
        /* zero bytes after a member are padding, which Python's reader skips too */
        while (g->z.avail_in > 0 && *g->z.next_in == 0) g->z.next_in++, g->z.avail_in--;
        if (g->z.avail_in > 0) break;
    }
    if (g->z.avail_in < 2) { /* a member's magic split across two reads */
        memmove(g->in, g->z.next_in, g->z.avail_in);
        size_t got = fread(g->in + g->z.avail_in, 1, IN_SIZE - g->z.avail_in, g->fp);
        g->z.next_in = g->in;
        g->z.avail_in += (uInt)got;
    }
    if (g->z.avail_in < 2 || g->z.next_in[0] != 0x1f || g->z.next_in[1] != 0x8b)
        return lm_fail(LM_ERR_FORMAT,
                       "'%s' has bytes after its compressed data that are not another gzip member",
                       g->path);
    inflateReset(&g->z);
    g->in_member = true;
    return LM_OK;
}

lm_status lm_gz_read(lm_gz *g, void *buf, size_t n, size_t *got) {
    *got = 0;
    if (!g->compressed) { /* the bytes open looked at first, then the rest */
        size_t head = g->z.avail_in < n ? g->z.avail_in : n;
        memcpy(buf, g->z.next_in, head);
        g->z.next_in += head;
        g->z.avail_in -= (uInt)head;
        *got = head + fread((char *)buf + head, 1, n - head, g->fp);
        if (*got < n && ferror(g->fp))
            return lm_fail(LM_ERR_IO, "'%s': read error: %s", g->path, strerror(errno));
        return LM_OK;
    }
    g->z.next_out = buf;
    while (*got < n) {
        if (!g->in_member) {
            bool end;
            LM_TRY(next_member(g, &end));
            if (end) break;
        }
        bool more;
        LM_TRY(fill(g, &more));
        if (!more)
            return lm_fail(LM_ERR_FORMAT, "'%s': the compressed file ends early (truncated)",
                           g->path);
        size_t want = n - *got;
        g->z.avail_out = want > (1u << 30) ? (1u << 30) : (uInt)want;
        int ret = inflate(&g->z, Z_NO_FLUSH);
        *got = (size_t)((unsigned char *)g->z.next_out - (unsigned char *)buf);
        if (ret == Z_STREAM_END) {
            g->in_member = false;
        } else if (ret != Z_OK && ret != Z_BUF_ERROR) {
            return lm_fail(LM_ERR_FORMAT, "'%s': the compressed data are corrupt (%s)", g->path,
                           g->z.msg ? g->z.msg : "zlib error");
        }
    }
    return LM_OK;
}

void lm_gz_close(lm_gz *g) {
    if (!g) return;
    if (g->compressed) inflateEnd(&g->z);
    if (g->fp) fclose(g->fp);
    free(g->path);
    free(g);
}
