#pragma once

// What the load generator reads about the server processes it measures:
// CPU time (utime+stime from /proc/PID/stat) and resident memory (VmRSS
// from /proc/PID/status). Summed over every PID given, so a server made of
// several processes (two Node workers and Redis) is measured as a whole.

#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace rc::bench {

/// CPU seconds (user + system) used so far by `pid`; 0 if it is gone.
inline double process_cpu_seconds(int pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/stat"};
  std::string text{std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
  // The command name may hold spaces and parentheses: fields start after the last ')'.
  auto at = text.rfind(')');
  if (at == std::string::npos)
    return 0;
  std::istringstream fields{text.substr(at + 2)};
  std::string skip;
  // Field 3 (state) is the first after ')'; utime and stime are fields 14 and 15.
  for (int i = 3; i < 14; ++i)
    fields >> skip;
  unsigned long long utime = 0, stime = 0;
  fields >> utime >> stime;
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

/// Resident set size of `pid` in KiB; 0 if it is gone.
inline long process_rss_kib(int pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/status"};
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0)
      return std::stol(line.substr(6));
  return 0;
}

inline double cpu_seconds(const std::vector<int>& pids) {
  double sum = 0;
  for (int pid : pids)
    sum += process_cpu_seconds(pid);
  return sum;
}

inline long rss_kib(const std::vector<int>& pids) {
  long sum = 0;
  for (int pid : pids)
    sum += process_rss_kib(pid);
  return sum;
}

} // namespace rc::bench
