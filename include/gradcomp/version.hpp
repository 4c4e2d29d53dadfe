#pragma once
// The library version. CMake reads the three numbers below (keep them on their own lines).
#define GRADCOMP_VERSION_MAJOR 0
#define GRADCOMP_VERSION_MINOR 1
#define GRADCOMP_VERSION_PATCH 0

// One integer that orders versions: MAJOR * 10000 + MINOR * 100 + PATCH.
#define GRADCOMP_VERSION \
  (GRADCOMP_VERSION_MAJOR * 10000 + GRADCOMP_VERSION_MINOR * 100 + GRADCOMP_VERSION_PATCH)

namespace gradcomp {
inline constexpr int version_major = GRADCOMP_VERSION_MAJOR;
inline constexpr int version_minor = GRADCOMP_VERSION_MINOR;
inline constexpr int version_patch = GRADCOMP_VERSION_PATCH;
}  // namespace gradcomp
