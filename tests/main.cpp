#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
#include <cstdlib>

namespace {
// One intra-op thread unless the caller says otherwise: in-process runs and the htga processes
// the tests start use the same reductions, so results compare bit for bit (and golden values
// do not depend on the machine's core count). Tests that want more threads ask for them.
const int kOneThread = setenv("OMP_NUM_THREADS", "1", /*overwrite=*/0);
}  // namespace
