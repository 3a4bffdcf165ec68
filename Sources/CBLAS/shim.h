// OpenBLAS' cblas interface. The include path comes from pkg-config `openblas` (the openblas-pthread dir),
// not the bare /usr/include/x86_64-linux-gnu/cblas.h, which is an alternatives symlink.
#pragma once
#include <cblas.h>
// Thread control (OpenBLAS extension, declared in its cblas.h as well; repeated for clarity).
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
