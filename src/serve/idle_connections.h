// Ends the kept-alive HTTP connections of a stopping server.
// cpp-httplib (0.11, Debian 12) keeps an idle keep-alive connection's thread waiting for the
// next request until the keep-alive timeout, and stop() joins those threads, so without this a
// client holding an idle connection would hold up SIGTERM by the whole timeout.
#pragma once

namespace mf {

// Shuts down the reading side of every connected socket of this process whose local port is
// `port` (the server's accepted connections; the listening socket has no peer and is left
// alone). A connection waiting for its next request then sees end-of-file and closes; one still
// writing a response finishes writing it. Returns how many sockets it shut. Linux (/proc).
int shut_reading_side_of_connections(int port);

}  // namespace mf
