// rlif's door to MPI: the few collectives the data-parallel learner uses, resolved at run time with dlopen(3)
// from Open MPI's libmpi.so.40 (Debian 12: libopenmpi3, `apt-get install openmpi-bin libopenmpi-dev`).
//
// Why dlopen and not a link-time dependency: only `rlif learner` under mpirun/srun needs MPI; every other
// command (and the whole build and test suite) keeps working on a machine without Open MPI, and the rlif binary
// does not pull Open MPI's ~20 shared libraries into every actor. The price is that the handles (MPI_Comm,
// MPI_Datatype, MPI_Op, MPI_Request) are Open MPI's ABI: pointers to its predefined global objects, looked up by
// their exported names (ompi_mpi_comm_world, ompi_mpi_float, ompi_mpi_op_sum, ...). MPICH's ABI differs (integer
// handles); rlif_mpi_load refuses a library that lacks Open MPI's symbols, naming the first one missing.
//
// Every function returns an MPI error code (0 = MPI_SUCCESS) unless stated otherwise. Counts are ints as in MPI;
// callers split larger buffers (the Swift side reduces gradients in buckets).
#ifndef RLIF_MPI_H
#define RLIF_MPI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Loads libmpi (`path`, or "libmpi.so.40" then "libmpi.so" when NULL) and resolves every symbol the other
/// functions use. Returns 0, or -1 with a one-line reason in `err` (dlerror or the missing symbol). Idempotent.
int rlif_mpi_load(const char *path, char *err, size_t errlen);

/// MPI_Init_thread(MPI_THREAD_SERIALIZED): the learner calls MPI from its training thread and, before and after
/// training, from the main thread, never from two at once. `provided` receives the level granted (0..3).
int rlif_mpi_init_serialized(int *provided);
int rlif_mpi_finalize(void);
/// Rank and size in MPI_COMM_WORLD.
int rlif_mpi_world(int *rank, int *size);
/// In-place sums over MPI_COMM_WORLD (every rank ends with the total).
int rlif_mpi_allreduce_sum_float(float *buffer, int count);
int rlif_mpi_allreduce_sum_double(double *buffer, int count);
/// `out[r]` = `value` of rank r (out has `size` entries).
int rlif_mpi_allgather_u64(uint64_t value, uint64_t *out);
/// Blocking broadcast of `count` bytes from `root`.
int rlif_mpi_bcast_bytes(void *buffer, int count, int root);
/// Non-blocking broadcast; poll with rlif_mpi_test until `done` (idle ranks sleep between polls instead of
/// spinning a core the actors and rank 0 need).
int rlif_mpi_ibcast_bytes(void *buffer, int count, int root, void **request);
int rlif_mpi_test(void **request, int *done);
int rlif_mpi_barrier(void);
/// MPI_Abort(MPI_COMM_WORLD, code): ends every rank (used when one rank fails so the others do not wait forever).
int rlif_mpi_abort(int code);
/// The text of an MPI error code (into `buffer`, NUL-terminated).
void rlif_mpi_error_string(int code, char *buffer, int length);
/// "Open MPI v4.1.4, ..." (MPI_Get_library_version).
int rlif_mpi_library_version(char *buffer, int length);

#ifdef __cplusplus
}
#endif
#endif
