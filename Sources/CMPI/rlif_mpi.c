// See include/rlif_mpi.h: Open MPI resolved with dlopen/dlsym, no link-time dependency on libmpi.
#include "rlif_mpi.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

// Open MPI's handles are pointers to opaque structs; the predefined ones are the addresses of exported globals.
typedef void *Handle;

typedef int (*init_thread_fn)(int *, char ***, int, int *);
typedef int (*finalize_fn)(void);
typedef int (*comm_int_fn)(Handle, int *);
typedef int (*allreduce_fn)(const void *, void *, int, Handle, Handle, Handle);
typedef int (*allgather_fn)(const void *, int, Handle, void *, int, Handle, Handle);
typedef int (*bcast_fn)(void *, int, Handle, int, Handle);
typedef int (*ibcast_fn)(void *, int, Handle, int, Handle, Handle *);
typedef int (*test_fn)(Handle *, int *, void *);
typedef int (*barrier_fn)(Handle);
typedef int (*abort_fn)(Handle, int);
typedef int (*error_string_fn)(int, char *, int *);
typedef int (*library_version_fn)(char *, int *);

static struct {
    void *lib;
    init_thread_fn init_thread;
    finalize_fn finalize;
    comm_int_fn comm_rank, comm_size;
    allreduce_fn allreduce;
    allgather_fn allgather;
    bcast_fn bcast;
    ibcast_fn ibcast;
    test_fn test;
    barrier_fn barrier;
    abort_fn abort;
    error_string_fn error_string;
    library_version_fn library_version;
    Handle comm_world, type_float, type_double, type_byte, type_u64, op_sum;
} M;

#define MPI_THREAD_SERIALIZED_ 2  /* enum value in Open MPI's (and MPICH's) mpi.h */
#define MPI_IN_PLACE_ ((void *)1)  /* Open MPI's MPI_IN_PLACE */
#define MPI_ERR_OTHER_ 16          /* Open MPI's MPI_ERR_OTHER, returned when not loaded */

static int resolve(const char *name, void **slot, char *err, size_t errlen) {
    *slot = dlsym(M.lib, name);
    if (*slot == NULL) {
        snprintf(err, errlen, "%s in the loaded libmpi: not Open MPI's ABI (rlif needs Open MPI 4 or 5)", name);
        return -1;
    }
    return 0;
}

int rlif_mpi_load(const char *path, char *err, size_t errlen) {
    if (M.lib != NULL) return 0;
    const char *candidates[] = {path, "libmpi.so.40", "libmpi.so"};
    void *lib = NULL;
    char why[512] = "";
    for (int i = path ? 0 : 1; i < 3 && lib == NULL; i++) {
        // RTLD_GLOBAL: Open MPI's own plugins (mca_*.so) resolve libmpi's symbols through the global scope.
        lib = dlopen(candidates[i], RTLD_NOW | RTLD_GLOBAL);
        if (lib == NULL && why[0] == 0) snprintf(why, sizeof why, "%s", dlerror());
        if (path) break;
    }
    if (lib == NULL) {
        snprintf(err, errlen, "cannot load Open MPI (%s); install it with `apt-get install openmpi-bin libopenmpi-dev` or set RLIF_MPI_LIBRARY",
                 why);
        return -1;
    }
    M.lib = lib;
    struct { const char *name; void **slot; } syms[] = {
        {"MPI_Init_thread", (void **)&M.init_thread}, {"MPI_Finalize", (void **)&M.finalize},
        {"MPI_Comm_rank", (void **)&M.comm_rank}, {"MPI_Comm_size", (void **)&M.comm_size},
        {"MPI_Allreduce", (void **)&M.allreduce}, {"MPI_Allgather", (void **)&M.allgather},
        {"MPI_Bcast", (void **)&M.bcast}, {"MPI_Ibcast", (void **)&M.ibcast}, {"MPI_Test", (void **)&M.test},
        {"MPI_Barrier", (void **)&M.barrier}, {"MPI_Abort", (void **)&M.abort},
        {"MPI_Error_string", (void **)&M.error_string}, {"MPI_Get_library_version", (void **)&M.library_version},
        {"ompi_mpi_comm_world", &M.comm_world}, {"ompi_mpi_float", &M.type_float},
        {"ompi_mpi_double", &M.type_double}, {"ompi_mpi_byte", &M.type_byte},
        {"ompi_mpi_uint64_t", &M.type_u64}, {"ompi_mpi_op_sum", &M.op_sum},
    };
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
        if (resolve(syms[i].name, syms[i].slot, err, errlen) != 0) {
            dlclose(lib);
            memset(&M, 0, sizeof M);
            return -1;
        }
    }
    return 0;
}

#define LOADED_OR_FAIL if (M.lib == NULL) return MPI_ERR_OTHER_

int rlif_mpi_init_serialized(int *provided) {
    LOADED_OR_FAIL;
    return M.init_thread(NULL, NULL, MPI_THREAD_SERIALIZED_, provided);
}

int rlif_mpi_finalize(void) { LOADED_OR_FAIL; return M.finalize(); }

int rlif_mpi_world(int *rank, int *size) {
    LOADED_OR_FAIL;
    int rc = M.comm_rank(M.comm_world, rank);
    return rc != 0 ? rc : M.comm_size(M.comm_world, size);
}

int rlif_mpi_allreduce_sum_float(float *buffer, int count) {
    LOADED_OR_FAIL;
    return M.allreduce(MPI_IN_PLACE_, buffer, count, M.type_float, M.op_sum, M.comm_world);
}

int rlif_mpi_allreduce_sum_double(double *buffer, int count) {
    LOADED_OR_FAIL;
    return M.allreduce(MPI_IN_PLACE_, buffer, count, M.type_double, M.op_sum, M.comm_world);
}

int rlif_mpi_allgather_u64(uint64_t value, uint64_t *out) {
    LOADED_OR_FAIL;
    return M.allgather(&value, 1, M.type_u64, out, 1, M.type_u64, M.comm_world);
}

int rlif_mpi_bcast_bytes(void *buffer, int count, int root) {
    LOADED_OR_FAIL;
    return M.bcast(buffer, count, M.type_byte, root, M.comm_world);
}

int rlif_mpi_ibcast_bytes(void *buffer, int count, int root, void **request) {
    LOADED_OR_FAIL;
    return M.ibcast(buffer, count, M.type_byte, root, M.comm_world, request);
}

int rlif_mpi_test(void **request, int *done) {
    LOADED_OR_FAIL;
    return M.test(request, done, NULL /* MPI_STATUS_IGNORE */);
}

int rlif_mpi_barrier(void) { LOADED_OR_FAIL; return M.barrier(M.comm_world); }

int rlif_mpi_abort(int code) { LOADED_OR_FAIL; return M.abort(M.comm_world, code); }

void rlif_mpi_error_string(int code, char *buffer, int length) {
    int n = 0;
    if (M.lib == NULL || length < 256 /* MPI_MAX_ERROR_STRING is 256 */ || M.error_string(code, buffer, &n) != 0) {
        snprintf(buffer, (size_t)length, "MPI error %d", code);
    }
}

int rlif_mpi_library_version(char *buffer, int length) {
    LOADED_OR_FAIL;
    int n = 0;
    if (length < 256) return MPI_ERR_OTHER_;  // MPI_MAX_LIBRARY_VERSION_STRING is 256 in Open MPI
    return M.library_version(buffer, &n);
}
