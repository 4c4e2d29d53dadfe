#pragma once
// sparse_vector moved beside the other payloads: include <gradcomp/payload/sparse.hpp>. This
// header stays so that code written against gradcomp 0.1's layout keeps compiling.
#include "payload/sparse.hpp"
