// zlib, for crc32() (SIMD-accelerated) used to checksum weight chunks.
#pragma once
#include <zlib.h>
