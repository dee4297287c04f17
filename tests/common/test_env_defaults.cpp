// Gives every test binary its environment (CLI path, fixture dir, Python, source dir) even when
// run directly rather than through ctest. ctest cannot pass several ENVIRONMENT entries through
// gtest_discover_tests' PROPERTIES in CMake 3.25 (the list is flattened), so the build bakes the
// values in here and a variable that is already set in the environment still wins.
#include <cstdlib>

namespace {

struct TestEnvironmentDefaults {
  TestEnvironmentDefaults() {
    setenv("MOEFORGE_BIN", MOEFORGE_TEST_BIN, 0);
    setenv("MOEFORGE_PYTHON", MOEFORGE_TEST_PYTHON, 0);
    setenv("MOEFORGE_SOURCE_DIR", MOEFORGE_TEST_SOURCE_DIR, 0);
    setenv("MOEFORGE_FIXTURES", MOEFORGE_TEST_FIXTURES, 0);
    setenv("OMP_NUM_THREADS", "2", 0);
  }
};

const TestEnvironmentDefaults install_defaults;

}  // namespace
