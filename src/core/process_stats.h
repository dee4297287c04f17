// What this process has used, for reports (training summaries, benchmarks).
#pragma once
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace mf {

// Peak resident set of this process image in MiB: VmHWM from /proc/self/status. (getrusage's
// ru_maxrss survives exec, so a process started by a big parent, e.g. Python with torch
// imported, would report the parent's size.) 0 if unavailable.
inline double peak_rss_mib() {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  double kib = 0;
  while (std::fgets(line, sizeof line, f))
    if (std::strncmp(line, "VmHWM:", 6) == 0) kib = std::atof(line + 6);
  std::fclose(f);
  return kib / 1024.0;
}

// CPU seconds used so far by every thread of this process (user + system).
inline double process_cpu_seconds() {
  timespec ts{};
  if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) return 0;
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

}  // namespace mf
