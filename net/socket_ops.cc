// net/socket_ops.cc — socket syscall wrappers.
#include "net/socket_ops.h"

#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace weir::net {

int create_listen_socket(const SocketAddress& addr, bool reuse_port, int backlog, std::string* error) {
  int fd = ::socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuse_port && ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
    *error = std::string("SO_REUSEPORT: ") + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  if (::bind(fd, addr.sockaddr(), addr.length()) < 0) {
    *error = "bind " + addr.to_string() + ": " + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  if (::listen(fd, backlog) < 0) {
    *error = std::string("listen: ") + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

int connect_nonblocking(const SocketAddress& addr, std::string* error) {
  int fd = ::socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  if (::connect(fd, addr.sockaddr(), addr.length()) < 0 && errno != EINPROGRESS) {
    *error = "connect " + addr.to_string() + ": " + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

void set_tcp_nodelay(int fd, bool on) {
  int v = on ? 1 : 0;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v);
}

void set_linger_abort(int fd) {
  struct linger lg{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
}

SocketAddress local_address(int fd) {
  struct sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(fd, reinterpret_cast<struct sockaddr*>(&ss), &len);
  return SocketAddress::from_sockaddr(reinterpret_cast<struct sockaddr*>(&ss), len);
}

SocketAddress peer_address(int fd) {
  struct sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getpeername(fd, reinterpret_cast<struct sockaddr*>(&ss), &len);
  return SocketAddress::from_sockaddr(reinterpret_cast<struct sockaddr*>(&ss), len);
}

int socket_error(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return errno;
  return err;
}

}  // namespace weir::net
