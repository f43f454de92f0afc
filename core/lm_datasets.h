/* Readers for the image data sets of the method: IDX (MNIST, Fashion-MNIST)
 * and the CIFAR-10 binary version. Files may be gzip-compressed or raw
 * (lm_gz.h reads both). Everything is validated against what the header
 * promises: a wrong magic number, a truncated or over-long file (a cut gzip
 * trailer, bytes after the gzip data), a label out of range is an error
 * naming the file and the problem. */
#ifndef LM_DATASETS_H
#define LM_DATASETS_H

#include "lm_tensor.h"

/* A new CPU tensor for a data set's rows, which a shuffled batch reads a
 * few at a time: its block asks for transparent huge pages before anything
 * is written (lm_cpu_advise_huge_pages). The readers below make theirs so;
 * lm.data.cifar10 joins its five batch files in one. */
lm_status lm_data_set_new(lm_tensor **out, lm_dtype dtype, int ndim, const int64_t *shape);

/* An IDX file of unsigned bytes (type 0x08) as a CPU tensor of its shape:
 * float32 values times `scale` (1/255 for images in [0, 1]) or, for
 * LM_INT32 and LM_UINT8, the bytes as integers (labels; images kept as
 * bytes, a quarter of the memory). max_value >= 0 checks every byte
 * against it (labels: 9). */
lm_status lm_idx_load(const char *path, lm_dtype dtype, double scale, int max_value,
                      lm_tensor **out);

/* A CIFAR-10 binary batch: records of 1 label byte and 3072 pixel bytes
 * (3 x 32 x 32, channel planes, rows). images [N, 3, 32, 32]: float32 in
 * [0, 1], or the bytes as uint8 (image_dtype); labels [N] int32, 0-based,
 * checked to be < 10. */
lm_status lm_cifar_load(const char *path, lm_dtype image_dtype, lm_tensor **images,
                        lm_tensor **labels);

#endif
