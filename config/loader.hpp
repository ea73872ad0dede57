#pragma once

#include <map>
#include <string>
#include <vector>

#include "config/settings.hpp"

namespace rc {

/// What the command line asked for, and the settings it resolved to.
struct load_result {
  enum class action { run, help, version, fail };
  action what = action::run;
  settings cfg;
  /// The help text, or the error message for `fail`.
  std::string message;
};

/// Resolves settings as defaults < file (`--config FILE` or ROOMCAST_CONFIG,
/// JSON or CAF INI) < `ROOMCAST_*` environment < command line (`--name value`
/// or `--name=value`). Unknown options, unknown `ROOMCAST_*` variables,
/// unknown file keys and bad values all fail with a message naming them.
load_result load_settings(const std::vector<std::string>& args,
                          const std::map<std::string, std::string>& env);

/// The same, reading argv and the process environment.
load_result load_settings(int argc, char** argv);

/// `--help`: every option with its environment variable, default and meaning.
std::string help_text();

/// One line with every resolved setting; secrets are masked.
std::string describe(const settings& cfg);

} // namespace rc
