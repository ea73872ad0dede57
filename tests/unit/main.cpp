// The only TU that includes unit_test_impl.hpp: it defines the test runner.
#include <caf/test/unit_test_impl.hpp>
