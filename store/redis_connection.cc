// store/redis_connection.cc — the hiredis connection, its pipeline and its circuit breaker.
#include "store/redis_connection.h"

#include <openssl/sha.h>
#include <sys/time.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <utility>

namespace weir::store {

namespace {

timeval to_timeval(std::chrono::milliseconds ms) {
  timeval tv;
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

// Errors with which a live server says it cannot serve right now: treated like an outage.
bool cannot_serve(std::string_view error) {
  for (std::string_view code : {"LOADING", "BUSY", "MASTERDOWN", "READONLY", "TRYAGAIN"})
    if (error.starts_with(code)) return true;
  return false;
}

}  // namespace

std::string_view reply_text(const redisReply* reply) {
  if (!reply || !reply->str) return {};
  return std::string_view(reply->str, reply->len);
}

bool is_error(const redisReply* reply) {
  return reply && reply->type == REDIS_REPLY_ERROR;
}

// ---------------------------------------------------------------- scripts and commands

RedisScript::RedisScript(std::string_view lua) : source(lua) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(source.data()), source.size(), digest);
  char hex[2 * SHA_DIGEST_LENGTH + 1];
  for (int i = 0; i < SHA_DIGEST_LENGTH; ++i) std::snprintf(hex + 2 * i, 3, "%02x", digest[i]);
  sha1.assign(hex, 2 * SHA_DIGEST_LENGTH);
}

RedisCommand::RedisCommand(std::initializer_list<std::string_view> args) {
  args_.reserve(args.size());
  for (std::string_view a : args) args_.emplace_back(a);
}

RedisCommand RedisCommand::script(const RedisScript& script, int numkeys) {
  RedisCommand command{"EVALSHA", script.sha1};
  command.arg(numkeys);
  command.script_ = &script;
  return command;
}

RedisCommand& RedisCommand::arg(std::string_view value) {
  args_.emplace_back(value);
  return *this;
}

RedisCommand RedisCommand::as_eval() const {
  RedisCommand command = *this;
  command.args_[0] = "EVAL";
  command.args_[1] = script_->source;
  return command;
}

// ---------------------------------------------------------------- the connection

RedisConnection::RedisConnection(RedisOptions options, std::vector<const RedisScript*> scripts)
    : options_(std::move(options)), scripts_(std::move(scripts)), backoff_(options_.backoff_min) {}

RedisConnection::~RedisConnection() {
  if (context_) redisFree(context_);
}

std::string RedisConnection::endpoint() const {
  return options_.host + ":" + std::to_string(options_.port) + "/" + std::to_string(options_.db);
}

Status RedisConnection::connect_if_closed() {
  if (context_) return Status::kOk;
  Clock::time_point now = Clock::now();
  if (now < retry_at_) {
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(retry_at_ - now).count();
    last_error_ = "redis " + endpoint() + " unavailable (circuit open, next try in " +
                  std::to_string(wait) + " ms): " + cause_;
    return Status::kUnavailable;
  }
  redisContext* context = redisConnectWithTimeout(options_.host.c_str(), options_.port,
                                                  to_timeval(options_.connect_timeout));
  if (!context || context->err) {
    std::string reason = context ? context->errstr : "cannot allocate a context";
    if (context) redisFree(context);
    open_circuit("connect: " + reason);
    return Status::kUnavailable;
  }
  redisSetTimeout(context, to_timeval(options_.command_timeout));
  redisEnableKeepAlive(context);
  context_ = context;
  if (Status s = handshake(); s != Status::kOk) return s;
  backoff_ = options_.backoff_min;
  cause_.clear();
  return Status::kOk;
}

// Selects the database and loads every script, in one round trip.
Status RedisConnection::handshake() {
  if (options_.db != 0) send(RedisCommand{"SELECT", std::to_string(options_.db)});
  for (const RedisScript* script : scripts_) send(RedisCommand{"SCRIPT", "LOAD", script->source});
  std::vector<RedisReply> replies;
  if (Status s = exchange(&replies); s != Status::kOk) return s;
  for (const RedisReply& reply : replies) {
    if (is_error(reply.get())) {
      open_circuit("handshake: " + std::string(reply_text(reply.get())));
      return Status::kUnavailable;
    }
  }
  return Status::kOk;
}

Status RedisConnection::send(RedisCommand command) {
  if (Status s = connect_if_closed(); s != Status::kOk) return s;
  const std::vector<std::string>& args = command.args();
  std::vector<const char*> argv(args.size());
  std::vector<size_t> argvlen(args.size());
  for (size_t i = 0; i < args.size(); ++i) {
    argv[i] = args[i].data();
    argvlen[i] = args[i].size();
  }
  if (redisAppendCommandArgv(context_, static_cast<int>(args.size()), argv.data(),
                             argvlen.data()) != REDIS_OK) {
    open_circuit("cannot queue a command: " + std::string(context_->errstr));
    return Status::kUnavailable;
  }
  pending_.push_back(std::move(command));
  return Status::kOk;
}

Status RedisConnection::exchange(std::vector<RedisReply>* replies) {
  replies->clear();
  if (pending_.empty()) return Status::kOk;
  if (Status s = read_replies(replies); s != Status::kOk) return s;
  return rerun_unknown_scripts(replies);
}

// Reads one reply per pending command; pending_ keeps the commands until the caller is done
// with rerun_unknown_scripts().
Status RedisConnection::read_replies(std::vector<RedisReply>* replies) {
  replies->reserve(pending_.size());
  for (size_t i = 0; i < pending_.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(context_, &raw) != REDIS_OK) {
      open_circuit(io_error());
      replies->clear();
      return Status::kUnavailable;
    }
    replies->emplace_back(static_cast<redisReply*>(raw));
  }
  for (const RedisReply& reply : *replies) {
    if (is_error(reply.get()) && cannot_serve(reply_text(reply.get()))) {
      open_circuit(std::string(reply_text(reply.get())));
      replies->clear();
      return Status::kUnavailable;
    }
  }
  return Status::kOk;
}

// A script flushed from the server (SCRIPT FLUSH, or a failover to a server that never saw
// it) answers NOSCRIPT: run those commands again, in their order, with their source.
Status RedisConnection::rerun_unknown_scripts(std::vector<RedisReply>* replies) {
  std::deque<RedisCommand> sent = std::move(pending_);
  pending_.clear();
  std::vector<size_t> rerun;
  for (size_t i = 0; i < replies->size(); ++i) {
    const redisReply* reply = (*replies)[i].get();
    if (sent[i].lua() && is_error(reply) && reply_text(reply).starts_with("NOSCRIPT")) {
      rerun.push_back(i);
      if (Status s = send(sent[i].as_eval()); s != Status::kOk) return s;
    }
  }
  if (rerun.empty()) return Status::kOk;
  std::vector<RedisReply> again;
  if (Status s = read_replies(&again); s != Status::kOk) return s;
  pending_.clear();
  for (size_t i = 0; i < rerun.size(); ++i) (*replies)[rerun[i]] = std::move(again[i]);
  return Status::kOk;
}

std::string RedisConnection::io_error() const {
  bool timed_out = context_->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK);
  if (timed_out) {
    return "no answer within " + std::to_string(options_.command_timeout.count()) + " ms";
  }
  return context_->errstr[0] ? context_->errstr : "connection lost";
}

void RedisConnection::open_circuit(std::string reason) {
  if (context_) {
    redisFree(context_);
    context_ = nullptr;
  }
  pending_.clear();
  retry_at_ = Clock::now() + backoff_;
  cause_ = std::move(reason);
  last_error_ = "redis " + endpoint() + ": " + cause_;
  backoff_ = std::min(backoff_ * 2, options_.backoff_max);
}

}  // namespace weir::store
