#include "serve/idle_connections.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace mf {

namespace {

// The port of an IPv4/IPv6 socket address, or -1 for any other family.
int port_of(const sockaddr_storage& a) {
  if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(a).sin_port);
  if (a.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(a).sin6_port);
  return -1;
}

}  // namespace

int shut_reading_side_of_connections(int port) {
  namespace fs = std::filesystem;
  std::error_code ec;
  int shut = 0;
  for (fs::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code link_ec;
    const std::string target = fs::read_symlink(it->path(), link_ec).string();
    if (link_ec || target.rfind("socket:", 0) != 0) continue;
    char* name_end = nullptr;
    const std::string name = it->path().filename().string();
    const long fd = std::strtol(name.c_str(), &name_end, 10);
    if (name_end == name.c_str() || *name_end != '\0') continue;
    sockaddr_storage local{}, peer{};
    socklen_t local_len = sizeof local, peer_len = sizeof peer;
    if (::getsockname(int(fd), reinterpret_cast<sockaddr*>(&local), &local_len) != 0) continue;
    if (port_of(local) != port) continue;
    // Only connected sockets have a peer: this skips the listening socket.
    if (::getpeername(int(fd), reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) continue;
    if (::shutdown(int(fd), SHUT_RD) == 0) ++shut;
  }
  return shut;
}

}  // namespace mf
