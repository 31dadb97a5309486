// tests/redis_server.h — a real redis-server for the Redis store tests: started on a free
// loopback port in its own temporary directory with persistence off, stopped by PID. It can
// be stopped and started again on the same port, or frozen with SIGSTOP, to play outages.
// The child gets SIGKILL if the test process dies first, so a crashed test leaks no server.
//
// Thread-safety: none; a RedisServer belongs to the test thread that made it.
#pragma once

#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace weir::harness {

inline constexpr char kRedisServerPath[] = "/usr/bin/redis-server";

class RedisServer {
 public:
  static bool installed() { return ::access(kRedisServerPath, X_OK) == 0; }

  RedisServer() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/weir-redis-XXXXXX";
    if (::mkdtemp(pattern.data())) dir_ = pattern;
  }
  ~RedisServer() {
    stop();
    std::error_code ignored;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
  }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  // Starts the server (on a new free port the first time, on the same port after stop())
  // and waits until it answers PING.
  bool start(std::string* error) {
    if (dir_.empty()) return fail(error, "cannot create a temporary directory");
    for (int attempt = 0; attempt < 3; ++attempt) {
      if (port_ == 0 || (attempt > 0 && !restarted_)) port_ = free_port();
      if (spawn(error)) return true;
    }
    return false;
  }

  // SIGTERM, then SIGKILL if it is still there after 5 s; waits for the exit.
  void stop() {
    if (pid_ <= 0) return;
    if (paused_) resume();
    ::kill(pid_, SIGTERM);
    if (!wait_exit(std::chrono::seconds(5))) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    pid_ = 0;
    restarted_ = true;  // the next start() reuses the port
  }

  // Freezes the server: connections are accepted by the kernel but nothing answers.
  void pause() {
    if (pid_ > 0 && ::kill(pid_, SIGSTOP) == 0) paused_ = true;
  }
  void resume() {
    if (pid_ > 0 && ::kill(pid_, SIGCONT) == 0) paused_ = false;
  }

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string spec(int db = 0) const {
    return "redis://127.0.0.1:" + std::to_string(port_) + "/" + std::to_string(db);
  }

  // Runs one command on a fresh connection; returns the reply's text (status, string,
  // error, or an integer's digits), "" when the server does not answer.
  std::string command(const std::vector<std::string>& args) const {
    redisContext* context = redisConnectWithTimeout("127.0.0.1", port_, {0, 200 * 1000});
    if (!context || context->err) {
      if (context) redisFree(context);
      return "";
    }
    redisSetTimeout(context, {0, 500 * 1000});
    std::vector<const char*> argv;
    std::vector<size_t> argvlen;
    for (const std::string& a : args) {
      argv.push_back(a.data());
      argvlen.push_back(a.size());
    }
    auto* reply = static_cast<redisReply*>(
        redisCommandArgv(context, static_cast<int>(args.size()), argv.data(), argvlen.data()));
    std::string text;
    if (reply && reply->str) text.assign(reply->str, reply->len);
    if (reply && reply->type == REDIS_REPLY_INTEGER) text = std::to_string(reply->integer);
    if (reply) freeReplyObject(reply);
    redisFree(context);
    return text;
  }

  bool answers_ping() const { return command({"PING"}) == "PONG"; }

 private:
  static bool fail(std::string* error, const std::string& why) {
    *error = "redis-server: " + why;
    return false;
  }

  static int free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    int port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port = ntohs(addr.sin_port);
    }
    ::close(fd);
    return port;
  }

  bool spawn(std::string* error) {
    std::vector<std::string> args = {kRedisServerPath,
                                     "--port",
                                     std::to_string(port_),
                                     "--bind",
                                     "127.0.0.1",
                                     "--save",
                                     "",
                                     "--appendonly",
                                     "no",
                                     "--daemonize",
                                     "no",
                                     "--dir",
                                     dir_,
                                     "--logfile",
                                     dir_ + "/redis.log"};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid < 0) return fail(error, "fork failed");
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(1);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    pid_ = pid;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
      if (answers_ping()) return true;
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = 0;
        return fail(error, "exited at start on port " + std::to_string(port_) + ": " + log_tail());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    stop();
    return fail(error, "no PONG within 5 s on port " + std::to_string(port_) + ": " + log_tail());
  }

  bool wait_exit(std::chrono::milliseconds budget) {
    auto deadline = std::chrono::steady_clock::now() + budget;
    while (std::chrono::steady_clock::now() < deadline) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }

  std::string log_tail() const {
    std::ifstream in(dir_ + "/redis.log");
    std::stringstream text;
    text << in.rdbuf();
    std::string all = text.str();
    return all.size() > 400 ? all.substr(all.size() - 400) : all;
  }

  std::string dir_;
  int port_ = 0;
  pid_t pid_ = 0;
  bool paused_ = false;
  bool restarted_ = false;
};

// One server for the whole test binary, started on first use and stopped at exit. nullptr
// with *error when it cannot start (or redis-server is not installed).
inline RedisServer* shared_redis_server(std::string* error) {
  static std::string start_error;
  static std::unique_ptr<RedisServer> server = [] {
    if (!RedisServer::installed()) {
      start_error = std::string(kRedisServerPath) + " is not installed";
      return std::unique_ptr<RedisServer>();
    }
    auto s = std::make_unique<RedisServer>();
    if (!s->start(&start_error)) s.reset();
    return s;
  }();
  if (!server) *error = start_error;
  return server.get();
}

}  // namespace weir::harness
