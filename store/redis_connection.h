// store/redis_connection.h — one synchronous hiredis connection to Redis behind a circuit
// breaker, with a pipeline of commands and Lua scripts run by their SHA-1.
//
// Why a breaker: the store thread must not spend a command timeout on every call while Redis
// is down, or its queues would back up behind a dead server. After a failure (refused connect,
// timeout, I/O error, a server that is loading) the circuit opens: every call answers
// kUnavailable without touching the network until a backoff elapses (doubling from
// backoff_min to backoff_max), then the next call tries to reconnect; success closes the
// circuit and resets the backoff. No call blocks longer than the connect timeout plus one
// command timeout (SO_RCVTIMEO / SO_SNDTIMEO: a read or write that makes no progress for that
// long fails). Host names are resolved by getaddrinfo(), which has no timeout: give an address.
//
// Thread-safety: none; one store thread owns a connection.
#pragma once

#include <hiredis/hiredis.h>

#include <chrono>
#include <concepts>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "store/backend.h"
#include "store/redis_backend.h"

namespace weir::store {

struct ReplyDeleter {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using RedisReply = std::unique_ptr<redisReply, ReplyDeleter>;

// A Lua script, sent as EVALSHA with the SHA-1 computed here; the connection loads every
// script it knows with SCRIPT LOAD when it connects, and falls back to EVAL on NOSCRIPT.
struct RedisScript {
  explicit RedisScript(std::string_view lua);
  std::string source;
  std::string sha1;  // lowercase hex
};

// One command's arguments, binary-safe.
class RedisCommand {
 public:
  RedisCommand() = default;
  RedisCommand(std::initializer_list<std::string_view> args);
  // EVALSHA <sha> <numkeys>: append the keys, then the arguments.
  static RedisCommand script(const RedisScript& script, int numkeys);

  RedisCommand& arg(std::string_view value);
  template <std::integral T>
  RedisCommand& arg(T value) {
    return arg(std::string_view(std::to_string(value)));
  }

  const std::vector<std::string>& args() const { return args_; }
  const RedisScript* lua() const { return script_; }
  // The same command as EVAL with the script's source.
  RedisCommand as_eval() const;

 private:
  std::vector<std::string> args_;
  const RedisScript* script_ = nullptr;
};

class RedisConnection {
 public:
  // `scripts` (not owned, must outlive the connection) are loaded on every connect.
  RedisConnection(RedisOptions options, std::vector<const RedisScript*> scripts);
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // kOk with a live connection; kUnavailable while the circuit is open or when reconnecting
  // fails (which opens it again, for longer).
  Status connect_if_closed();

  // Queues a command in the pipeline: no I/O until exchange(). kUnavailable when the
  // circuit is open and reconnecting fails.
  Status send(RedisCommand command);

  // Sends what is queued and reads one reply per queued command, in order, into *replies
  // (a reply may be a Redis error: the caller judges it). A script the server did not know
  // is re-run with EVAL. kUnavailable (the circuit opens) on an I/O error or timeout, or
  // when the server answers that it cannot serve (LOADING, BUSY, MASTERDOWN, READONLY).
  Status exchange(std::vector<RedisReply>* replies);

  // Commands queued and not exchanged yet.
  size_t pending() const { return pending_.size(); }
  bool connected() const { return context_ != nullptr; }

  const std::string& last_error() const { return last_error_; }
  void set_error(std::string error) { last_error_ = std::move(error); }

 private:
  using Clock = std::chrono::steady_clock;

  Status read_replies(std::vector<RedisReply>* replies);
  Status rerun_unknown_scripts(std::vector<RedisReply>* replies);
  Status handshake();
  std::string io_error() const;
  void open_circuit(std::string reason);
  std::string endpoint() const;

  RedisOptions options_;
  std::vector<const RedisScript*> scripts_;
  redisContext* context_ = nullptr;
  std::deque<RedisCommand> pending_;  // queued in hiredis' output buffer, replies not read yet
  std::chrono::milliseconds backoff_;
  Clock::time_point retry_at_{};
  std::string cause_;  // why the circuit opened
  std::string last_error_;
};

// A reply's text when it is a status, string or error; "" otherwise.
std::string_view reply_text(const redisReply* reply);
// True when the reply is an error reply.
bool is_error(const redisReply* reply);

}  // namespace weir::store
