// net/socket_ops.h — thin wrappers over socket syscalls that return an errno-style result.
#pragma once

#include <string>

#include "net/address.h"

namespace weir::net {

// Creates a non-blocking listening socket bound to `addr` (SO_REUSEADDR, and SO_REUSEPORT when
// `reuse_port`, so each reactor can own a listener on the same port). Returns -1 and sets
// `error` on failure.
int create_listen_socket(const SocketAddress& addr, bool reuse_port, int backlog, std::string* error);
// Non-blocking connect (returns the fd; EINPROGRESS is not an error). Used by tools and tests.
int connect_nonblocking(const SocketAddress& addr, std::string* error);
void set_tcp_nodelay(int fd, bool on);
// Makes close(2) send RST and drop unsent data.
void set_linger_abort(int fd);
SocketAddress local_address(int fd);
SocketAddress peer_address(int fd);
// The pending error of a socket (SO_ERROR), 0 when none.
int socket_error(int fd);

}  // namespace weir::net
