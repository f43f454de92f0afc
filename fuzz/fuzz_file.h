/* The readers take paths: each input goes to a per-process file in /tmp
 * (tmpfs on most machines) before the reader sees it. */
#ifndef FUZZ_FILE_H
#define FUZZ_FILE_H

#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

static const char *fuzz_file(const uint8_t *data, size_t size, const char *ext) {
    static char path[64];
    snprintf(path, sizeof path, "/tmp/lumen-fuzz-%d.%s", (int)getpid(), ext);
    FILE *f = fopen(path, "wb");
    if (!f) return NULL;
    if (size) fwrite(data, 1, size, f);
    fclose(f);
    return path;
}

#endif
