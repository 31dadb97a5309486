// cluster/rooms_endpoint.cc — /ws and the rooms HTTP API.
#include "cluster/rooms_endpoint.h"

#include <openssl/crypto.h>

#include <atomic>

#include "cluster/member.h"
#include "core/clock.h"
#include "ws/envelope.h"

namespace weir::cluster {
namespace {

std::atomic<uint64_t> g_api_message_ids{1};
// One per reactor thread, made on first use and freed when the thread exits.
ws::EnvelopeDecoder& api_decoder() {
  thread_local ws::EnvelopeDecoder t_api_decoder;
  return t_api_decoder;
}

std::string json_error(std::string_view code, std::string_view message) {
  std::string out;
  ws::encode_error(&out, code, message, "api");
  out += '\n';
  return out;
}

}  // namespace

std::unique_ptr<ws::WebSocketHandler> RoomsEndpoint::create(ws::WebSocketSession& session,
                                                            const ws::HttpRequest& request) {
  ws::Admission admitted;
  return create_admitted(session, request, admitted);
}

void RoomsEndpoint::admit(const ws::HttpRequest& request, ws::Admission* admission) {
  if (!auth_) return;
  AuthOutcome outcome = auth_->authenticate(request, core::wall_ms() / 1000);
  if (outcome.ok) {
    admission->context = std::move(outcome.identity);
    return;
  }
  admission->status = 401;
  admission->content_type = "application/json";
  ws::encode_error(&admission->body, outcome.code, outcome.message, "auth");
  admission->body += '\n';
  // RFC 6750 3: no error attribute when the request carried no token at all.
  admission->headers = outcome.code == "missing_token"
                           ? "WWW-Authenticate: Bearer realm=\"weir\"\r\n"
                           : "WWW-Authenticate: Bearer realm=\"weir\", error=\"invalid_token\", "
                             "error_description=\"" +
                                 outcome.code + "\"\r\n";
}

std::unique_ptr<ws::WebSocketHandler> RoomsEndpoint::create_admitted(ws::WebSocketSession& session,
                                                                     const ws::HttpRequest& request,
                                                                     ws::Admission& admission) {
  // ?resume=TOKEN: the connection picks up a session (tokens never need percent-decoding).
  std::string_view query = request.query(), token;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    if (pair.substr(0, 7) == "resume=") token = pair.substr(7);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
  }
  Identity identity;
  if (Identity* verified = std::any_cast<Identity>(&admission.context))
    identity = std::move(*verified);
  return std::make_unique<Member>(service_, session, std::string(token), std::move(identity),
                                  auth_);
}

bool RoomsApi::authorized(const ws::HttpRequest& request) const {
  std::string_view given = request.header("X-API-Key");
  std::string_view auth = request.header("Authorization");
  if (given.empty() && auth.size() > 7 && ws::ascii_iequals(auth.substr(0, 7), "Bearer "))
    given = auth.substr(7);
  if (api_key_.empty() || given.size() != api_key_.size()) return false;
  return CRYPTO_memcmp(given.data(), api_key_.data(), given.size()) == 0;  // constant time
}

bool RoomsApi::handle(const ws::HttpRequest& request, ws::HttpReply& reply) {
  constexpr std::string_view kPrefix = "/api/rooms/";
  std::string_view path = request.path();
  if (path.substr(0, kPrefix.size()) != kPrefix) return false;
  std::string_view rest = path.substr(kPrefix.size());
  constexpr std::string_view kMessages = "/messages";
  bool messages =
      rest.size() > kMessages.size() && rest.substr(rest.size() - kMessages.size()) == kMessages;
  std::string_view room_id = messages ? rest.substr(0, rest.size() - kMessages.size()) : rest;

  if (api_key_.empty()) {
    reply.respond(403, "application/json",
                  json_error("forbidden", "the API is disabled: start weir with --api-key"));
    return true;
  }
  if (!authorized(request)) {
    reply.respond(401, "application/json", json_error("unauthorized", "missing or wrong API key"),
                  "WWW-Authenticate: Bearer\r\n");
    return true;
  }
  if (const char* code = check_room_id(room_id, service_.config().max_room_id_bytes)) {
    reply.respond(400, "application/json", json_error(code, "bad room id in the path"));
    return true;
  }
  ws::HttpMethod method = request.method();
  if (messages && method == ws::HttpMethod::kPost) {
    publish(std::string(room_id), request, reply);
  } else if (!messages && (method == ws::HttpMethod::kGet || method == ws::HttpMethod::kHead)) {
    inspect(std::string(room_id), reply);
  } else {
    reply.respond(405, "application/json",
                  json_error("method_not_allowed", "POST .../messages, GET the room"),
                  messages ? "Allow: POST\r\n" : "Allow: GET, HEAD\r\n");
  }
  return true;
}

void RoomsApi::publish(std::string room_id, const ws::HttpRequest& request, ws::HttpReply& reply) {
  ws::InboundEnvelope body;
  ws::EnvelopeError error;
  if (!ws::decode_publish_body(api_decoder(), request.body(), &body, &error)) {
    reply.respond(400, "application/json", json_error(error.code, error.message));
    return;
  }
  if (body.content.size() > service_.config().max_content_bytes) {
    reply.respond(413, "application/json",
                  json_error("content_too_large", "content is over --max-content-bytes"));
    return;
  }
  std::string message_id(body.message_id);
  bool client_id = !message_id.empty();
  if (!client_id) message_id = "api-" + std::to_string(g_api_message_ids.fetch_add(1));
  ws::DeferredReply deferred = reply.defer();
  service_.local().api_publish(
      std::move(room_id), std::string(body.content), std::move(message_id), client_id,
      std::string(body.traceparent), std::string(body.tracestate),
      [deferred](int status, uint64_t offset, uint64_t epoch) mutable {
        switch (status) {
          case 404:
            return deferred.respond(
                404, "application/json",
                json_error("no_such_room", "the room has no members (rooms exist while joined)"));
          case 429:
            return deferred.respond(
                429, "application/json",
                json_error("rate_limited", "the room is over --room-rate-limit"),
                "Retry-After: " + std::to_string((offset + 999) / 1000) + "\r\n");
          case 503:
            return deferred.respond(
                503, "application/json",
                json_error("room_paused", "a slow member holds the room (backpressure policy)"),
                "Retry-After: 1\r\n");
          case 507:
            return deferred.respond(
                503, "application/json",
                json_error("store_unavailable",
                           "the store did not commit the message (sync durability): not delivered"),
                "Retry-After: 1\r\n");
        }
        deferred.respond(200, "application/json",
                         "{\"offset\":" + std::to_string(offset) +
                             ",\"epoch\":" + std::to_string(epoch) +
                             (status == 409 ? ",\"duplicate\":true}\n" : "}\n"));
      });
}

void RoomsApi::inspect(std::string room_id, ws::HttpReply& reply) {
  ws::DeferredReply deferred = reply.defer();
  std::string id = room_id;
  service_.local().api_inspect(
      std::move(room_id),
      [deferred, id](int status, uint64_t members, uint64_t offset, uint64_t epoch) mutable {
        if (status != 200)
          return deferred.respond(404, "application/json",
                                  json_error("no_such_room", "the room has no members"));
        std::string body = "{\"room_id\":";
        ws::append_json_string(&body, id);
        body += ",\"members\":" + std::to_string(members) +
                ",\"last_offset\":" + std::to_string(offset) +
                ",\"epoch\":" + std::to_string(epoch) + "}\n";
        deferred.respond(200, "application/json", body);
      });
}

}  // namespace weir::cluster
