// Header-only target (see include/kernel_support.h); SwiftPM needs one source file per C target.
#include "kernel_support.h"
