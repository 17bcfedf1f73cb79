/* dist_nccl.h - the NCCL adapter of examples/dist (nccl.cu), callable from C.
 *
 * One process per GPU. Rank 0 makes a unique id (dist_nccl_unique_id), the
 * launcher hands it to every rank (mpi.c broadcasts it over MPI; a shared
 * file works as well), and each rank opens a communicator on its GPU.
 * dist_nccl_collective is a dl_collective for dl_net_set_collective: device
 * buffers go straight to ncclAllReduce (sum, then a division by the rank
 * count on the GPU) or ncclBroadcast; host buffers (the loss) go through a
 * device scratch buffer. It first waits for the device to finish (dl_cuda
 * runs on its own stream), runs NCCL on the adapter's stream and waits for
 * that with a deadline: past `timeout` seconds it aborts the communicator
 * and fails, so a dead peer turns into an error, never a hang.
 */
#ifndef DIST_NCCL_H
#define DIST_NCCL_H
#include <stddef.h>
#ifdef __cplusplus
extern "C" {
#endif

#define DIST_NCCL_ID_BYTES 128      /* sizeof(ncclUniqueId) */
typedef struct dist_nccl dist_nccl;

int dist_nccl_unique_id(unsigned char id[DIST_NCCL_ID_BYTES], char *err, size_t errlen);   /* rank 0 */
dist_nccl *dist_nccl_new(const unsigned char id[DIST_NCCL_ID_BYTES], int rank, int size, int device,
                         double timeout, char *err, size_t errlen);
int dist_nccl_collective(float *buf, size_t count, int op, int on_device, void *user);     /* user: dist_nccl* */
const char *dist_nccl_error(const dist_nccl *c);
void dist_nccl_free(dist_nccl *c);

#ifdef __cplusplus
}
#endif
#endif
