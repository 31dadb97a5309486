// tests/rooms_test.cc — the rooms layer over real sockets: every envelope and error code on /ws,
// the HTTP API, one gap-free total order per room across reactor threads, each slow-consumer
// policy, and membership teardown under connect/join/disconnect churn. The server runs
// in-process, wired like server/http_service.cc (RoomService attached per reactor thread,
// RoomsEndpoint on /ws, RoomsApi under /api/rooms/).
#include "tests/rooms_harness.h"

namespace weir {
namespace {

using harness::ReadStatus;
using std::chrono::milliseconds;

// ---------------------------------------------------------------- envelopes on /ws

TEST(RoomsProtocol, SessionIsTheFirstFrameWithTokenMemberIdAndNoRooms) {
  RoomsServer s(1);
  ASSERT_TRUE(s.started());
  WsConn a(s.port()), b(s.port());
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok());
  // "<member_id>.<expires_ms>.<64 hex of HMAC-SHA256>"
  const std::string token = a.session().s("token");
  EXPECT_EQ(token.rfind(a.member_id() + ".", 0), 0u) << a.session().raw;
  EXPECT_EQ(token.size() - token.rfind('.') - 1, 64u) << a.session().raw;
  EXPECT_FALSE(a.member_id().empty());
  EXPECT_EQ(a.session().arrays.count("rooms"), 1u) << a.session().raw;
  EXPECT_EQ(a.session().arrays.at("rooms"), 0u);
  EXPECT_NE(a.session().s("token"), b.session().s("token"));
  EXPECT_NE(a.member_id(), b.member_id());
}

TEST(RoomsProtocol, ChoosesWeirV1WhenOfferedAndWorksTheSameWithoutASubprotocol) {
  RoomsServer s(1);
  WsConn v1(s.port(), "Sec-WebSocket-Protocol: chat, weir.v1\r\n");
  WsConn plain(s.port());  // a GoAkt client offers none
  ASSERT_TRUE(v1.ok());
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(v1.header("Sec-WebSocket-Protocol"), "weir.v1");
  EXPECT_EQ(plain.header("Sec-WebSocket-Protocol"), "<absent>");
  for (WsConn* c : {&v1, &plain}) c->join("proto");
  plain.publish("proto", "from-plain");
  for (WsConn* c : {&v1, &plain}) EXPECT_EQ(c->expect("message").s("content"), "from-plain");
  v1.publish("proto", "from-v1");
  for (WsConn* c : {&v1, &plain}) EXPECT_EQ(c->expect("message").s("content"), "from-v1");
}

TEST(RoomsProtocol, JoinAnswersOffsetAndEpochAndLeaveAnswersRoomLeft) {
  RoomsServer s(2);
  WsConn a(s.port()), b(s.port()), c(s.port());
  Env ja = a.join("lobby");
  EXPECT_EQ(ja.n("offset"), 0u);
  EXPECT_GT(ja.n("epoch"), 0u);
  EXPECT_LT(ja.n("epoch"), 1ull << 53) << "epochs must survive a JSON double";
  Env jb = b.join("lobby");
  EXPECT_EQ(jb.n("offset"), 0u);
  EXPECT_EQ(jb.n("epoch"), ja.n("epoch"));
  a.publish("lobby", "one");
  EXPECT_EQ(a.expect("message").n("offset"), 1u);
  EXPECT_EQ(b.expect("message").n("offset"), 1u);
  Env jc = c.join("lobby");
  EXPECT_EQ(jc.n("offset"), 1u) << "a late joiner learns the last offset";
  EXPECT_EQ(jc.n("epoch"), ja.n("epoch"));

  b.send(R"({"leave_room":{"room_id":"lobby"}})");
  EXPECT_EQ(b.expect("room_left").s("room_id"), "lobby");
  a.publish("lobby", "two");
  EXPECT_EQ(a.expect("message").n("offset"), 2u);
  EXPECT_EQ(c.expect("message").n("offset"), 2u);
  EXPECT_TRUE(b.quiet_for(200)) << "a member that left gets nothing more";
  b.publish("lobby", "after-leave");
  EXPECT_EQ(b.expect("error").s("code"), "not_member");
}

// A message pipelined right behind its join_room (clients do this) waits for the join's answer
// instead of failing with not_member, and what follows it keeps its place behind it.
TEST(RoomsProtocol, AMessagePipelinedBehindItsJoinIsPublishedInOrder) {
  RoomsServer s(2);
  WsConn a(s.port()), b(s.port());
  a.join("probe");
  const int a_thread = s.members_on(0, "probe").count(a.member_id()) ? 0 : 1;
  for (bool same_thread : {true, false}) {
    SCOPED_TRACE(same_thread ? "owner on the client's thread" : "owner on the other thread");
    std::string room;
    for (int i = 0; room.empty(); ++i) {
      std::string name = "piped-" + std::to_string(i);
      if ((s.service().owner_of(name) == a_thread) == same_thread) room = name;
    }
    b.join(room);
    auto text = [&](const std::string& json) { return a.frame(harness::kOpText, json); };
    auto msg = [&](const std::string& content) {
      return text(R"({"message":{"target":")" + room + R"(","content":")" + content + R"("}})");
    };
    a.send_bytes(text(R"({"join_room":{"room_id":")" + room + R"("}})") + msg("one") + msg("two") +
                 text(R"({"message":{"target":"nowhere","content":"x"}})") + msg("three"));
    EXPECT_EQ(a.expect("room_joined").n("offset"), 0u);
    // An error answers at once; a message comes back through the room's fan-out, so the two
    // kinds interleave freely. Among the messages the order is the sending order.
    std::vector<std::string> contents, codes;
    for (int i = 0; i < 4; ++i) {
      Env e;
      ASSERT_EQ(a.recv(&e, 3000), ReadStatus::kOk);
      (e.type == "message" ? contents : codes)
          .push_back(e.type == "message" ? e.s("content") : e.s("code"));
    }
    EXPECT_EQ(contents, (std::vector<std::string>{"one", "two", "three"}));
    EXPECT_EQ(codes, (std::vector<std::string>{"not_member"}));
    for (const char* content : {"one", "two", "three"})
      EXPECT_EQ(b.expect("message").s("content"), content);
    a.publish(room, "live");  // reading resumed
    EXPECT_EQ(a.expect("message").s("content"), "live");
    b.expect("message");
  }
}

// A client may pipeline envelopes without waiting for answers. When the room's owner is the
// client's own thread a join completes at once; otherwise it is in flight, a second join is
// refused and a leave cancels it. Either way the member ends up in the room exactly once.
TEST(RoomsProtocol, PipelinedJoinJoinLeaveJoinEndsInTheRoomOnce) {
  RoomsServer s(2);
  WsConn a(s.port()), b(s.port());
  a.join("probe");
  const int a_thread = s.members_on(0, "probe").count(a.member_id()) ? 0 : 1;
  for (bool same_thread : {true, false}) {
    SCOPED_TRACE(same_thread ? "owner on the client's thread" : "owner on the other thread");
    std::string room;
    for (int i = 0; room.empty(); ++i) {
      std::string name = "pipe-" + std::to_string(i);
      if ((s.service().owner_of(name) == a_thread) == same_thread) room = name;
    }
    b.join(room);
    const std::string join = R"({"join_room":{"room_id":")" + room + R"("}})";
    const std::string leave = R"({"leave_room":{"room_id":")" + room + R"("}})";
    auto text = [&](const std::string& json) { return a.frame(harness::kOpText, json); };
    a.send_bytes(text(join) + text(join) + text(leave) + text(join));  // one write, one read
    if (same_thread) {
      EXPECT_EQ(a.expect("room_joined").n("offset"), 0u);
      EXPECT_EQ(a.expect("error").s("code"), "already_member");
    } else {
      EXPECT_EQ(a.expect("error").s("code"), "already_member") << "the first join is in flight";
    }
    EXPECT_EQ(a.expect("room_left").s("room_id"), room);
    EXPECT_EQ(a.expect("room_joined").n("offset"), 0u);
    b.publish(room, "once");
    EXPECT_EQ(a.expect("message").n("offset"), 1u);
    EXPECT_TRUE(a.quiet_for(150)) << "delivered once, not once per join";
    harness::Response r = http(s.port(), "GET", "/api/rooms/" + room, bearer());
    EXPECT_EQ(json_body(r).n("members"), 2u) << r.body;
    b.expect("message");
  }
}

TEST(RoomsProtocol, MessageFansOutToEveryMemberIncludingTheSenderOnEveryThread) {
  RoomsServer s(2);
  std::vector<std::unique_ptr<WsConn>> members;
  uint64_t epoch = 0;
  for (int i = 0; i < 10; ++i) {
    members.push_back(std::make_unique<WsConn>(s.port()));
    ASSERT_TRUE(members.back()->ok());
    epoch = members.back()->join("fan").n("epoch");
  }
  ASSERT_FALSE(s.members_on(0, "fan").empty());
  ASSERT_FALSE(s.members_on(1, "fan").empty())
      << "SO_REUSEPORT put all 10 connections on one thread";
  WsConn outsider(s.port());
  members[3]->publish("fan", "hello");
  std::string first_raw;
  for (auto& m : members) {
    Env e = m->expect("message");
    EXPECT_EQ(e.s("target"), "fan");
    EXPECT_EQ(e.s("content"), "hello");
    EXPECT_EQ(e.s("sender"), members[3]->member_id());
    EXPECT_EQ(e.n("offset"), 1u);
    EXPECT_EQ(e.n("epoch"), epoch);
    if (first_raw.empty()) first_raw = e.raw;
    EXPECT_EQ(e.raw, first_raw) << "one encoding for every recipient";
  }
  EXPECT_TRUE(outsider.quiet_for(150));
}

TEST(RoomsProtocol, MessageIdAndSentAtAreFilledWhenAbsentAndKeptWhenGiven) {
  RoomsServer s(1);
  WsConn a(s.port());
  a.join("ids");
  a.publish("ids", "x");
  a.publish("ids", "y");
  Env m1 = a.expect("message"), m2 = a.expect("message");
  EXPECT_FALSE(m1.s("message_id").empty());
  EXPECT_NE(m1.s("message_id"), m2.s("message_id")) << "generated ids are unique";
  std::tm tm{};
  const std::string sent_at = m1.s("sent_at");
  const char* end = strptime(sent_at.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  ASSERT_NE(end, nullptr) << m1.s("sent_at");
  const std::string rest(end);  // fraction and zone
  EXPECT_TRUE(!rest.empty() && rest.back() == 'Z') << "RFC 3339 in UTC: " << sent_at;
  EXPECT_LT(std::llabs(static_cast<long long>(timegm(&tm) - std::time(nullptr))), 5)
      << m1.s("sent_at");

  a.send(R"({"message":{"target":"ids","content":"q\"b\\n\n\u00e9 \ud83d\ude00",)"
         R"("message_id":"client-7","sent_at":"2024-01-02T03:04:05Z"}})");
  Env m3 = a.expect("message");
  EXPECT_EQ(m3.s("message_id"), "client-7");
  EXPECT_EQ(m3.s("sent_at"), "2024-01-02T03:04:05Z");
  EXPECT_EQ(m3.s("content"), "q\"b\\n\n\xC3\xA9 \xF0\x9F\x98\x80")
      << "content survives escaping both ways";
}

TEST(RoomsProtocol, TraceContextIsPassedThroughUntouchedAndOmittedWhenAbsent) {
  RoomsServer s(2);
  WsConn a(s.port()), b(s.port());
  a.join("trace");
  b.join("trace");
  const std::string tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  const std::string ts = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";
  a.send(R"({"message":{"target":"trace","content":"t","traceparent":")" + tp +
         R"(","tracestate":")" + ts + R"("}})");
  for (WsConn* c : {&a, &b}) {
    Env e = c->expect("message");
    EXPECT_EQ(e.s("traceparent"), tp);
    EXPECT_EQ(e.s("tracestate"), ts);
  }
  a.send(R"({"message":{"target":"trace","content":"only-parent","traceparent":")" + tp + R"("}})");
  for (WsConn* c : {&a, &b}) {
    Env e = c->expect("message");
    EXPECT_EQ(e.s("traceparent"), tp);
    EXPECT_FALSE(e.has("tracestate")) << e.raw;
  }
  a.publish("trace", "none");
  a.send(
      R"({"message":{"target":"trace","content":"nulls","traceparent":null,"tracestate":null}})");
  for (int i = 0; i < 2; ++i) {
    for (WsConn* c : {&a, &b}) {
      Env e = c->expect("message");
      EXPECT_EQ(e.raw.find("traceparent"), std::string::npos) << e.raw;
      EXPECT_EQ(e.raw.find("tracestate"), std::string::npos) << e.raw;
    }
  }
}

struct BadInput {
  std::string frame;  // a text frame, or "binary:<payload>" for a binary one
  std::string code;
  std::string ref;  // "*" when any
};

TEST(RoomsProtocol, EveryErrorCodeIsAnsweredAndLeavesTheConnectionOpen) {
  cluster::RoomsConfig limits;
  limits.max_rooms_per_connection = 2;
  limits.max_room_id_bytes = 16;
  limits.max_content_bytes = 32;
  RoomsServer s(2, limits);
  WsConn a(s.port());
  ASSERT_TRUE(a.ok());
  a.join("home");
  const std::vector<BadInput> cases = {
      {"not json", "invalid_json", "*"},
      {R"({"join_room":{"room_id":"a"})", "invalid_json", "*"},
      {R"([1,2])", "invalid_json", "*"},
      {R"({"join_room":{"room_id":"a"},"leave_room":{"room_id":"a"}})", "invalid_json", "*"},
      {R"({"shout":{"room_id":"a"}})", "unknown_envelope", "shout"},
      {R"({})", "unknown_envelope", "*"},
      {R"({"join_room":{}})", "missing_field", "join_room"},
      {R"({"message":{"target":"home"}})", "missing_field", "message"},
      {R"({"message":{"content":"x"}})", "missing_field", "message"},
      {R"({"join_room":{"room_id":7}})", "invalid_field", "join_room"},
      {R"({"join_room":"home"})", "invalid_field", "join_room"},
      {R"({"message":{"target":"home","content":5}})", "invalid_field", "message"},
      {R"({"message":{"target":"elsewhere","content":"x"}})", "not_member", "elsewhere"},
      {R"({"message":{"target":"elsewhere","content":"x","message_id":"m-9"}})", "not_member",
       "m-9"},
      {R"({"leave_room":{"room_id":"elsewhere"}})", "not_member", "elsewhere"},
      {R"({"join_room":{"room_id":"has space"}})", "invalid_room_id", "has space"},
      {R"({"join_room":{"room_id":"semi;colon"}})", "invalid_room_id", "semi;colon"},
      {R"({"join_room":{"room_id":"abcdefghijklmnopq"}})", "room_id_too_long", "*"},
      {R"({"message":{"target":"home","content":")" + pad(33) + R"(","message_id":"big-1"}})",
       "content_too_large", "big-1"},
      {R"({"join_room":{"room_id":"home"}})", "already_member", "home"},
      {"binary:\x01\x02", "unsupported_frame", "*"},
      {R"({"resume":{"token":"t","rooms":{"home":{"offset":1,"epoch":2}}}})", "store_unavailable",
       "*"},
  };
  uint64_t offset = 0;
  for (const BadInput& c : cases) {
    SCOPED_TRACE(c.frame);
    if (c.frame.rfind("binary:", 0) == 0)
      a.send_frame(harness::kOpBinary, c.frame.substr(7));
    else
      a.send(c.frame);
    Env e = a.expect("error");
    EXPECT_EQ(e.s("code"), c.code) << e.raw;
    EXPECT_FALSE(e.s("message").empty());
    EXPECT_TRUE(e.str.count("ref")) << e.raw;
    if (c.ref != "*") {
      EXPECT_EQ(e.s("ref"), c.ref);
    }
    a.publish("home", "still-open");  // the connection still works
    Env m = a.expect("message");
    EXPECT_EQ(m.n("offset"), ++offset);
  }
  // The limits' boundaries: exactly max bytes is accepted.
  a.join("abcdefghijklmnop");  // 16 bytes, now 2 rooms
  a.send(R"({"message":{"target":"home","content":")" + pad(32) + R"("}})");
  EXPECT_EQ(a.expect("message").s("content"), pad(32));
  a.send(R"({"join_room":{"room_id":"third"}})");
  Env e = a.expect("error");
  EXPECT_EQ(e.s("code"), "too_many_rooms");
  EXPECT_EQ(e.s("ref"), "third");
  a.send(R"({"leave_room":{"room_id":"abcdefghijklmnop"}})");
  a.expect("room_left");
  a.join("third");  // a slot freed by leaving is usable again
}

// ---------------------------------------------------------------- the HTTP API

TEST(RoomsApi, PublishAnswersOffsetAndEpochAndEveryMemberReceivesIt) {
  RoomsServer s(2);
  WsConn a(s.port()), b(s.port());
  uint64_t epoch = a.join("news").n("epoch");
  b.join("news");
  harness::Response r =
      api_publish(s.port(), "news", R"({"content":"breaking","message_id":"api-given"})");
  ASSERT_EQ(r.status, 200) << r.body;
  Env body = json_body(r);
  EXPECT_EQ(body.n("offset"), 1u) << r.body;
  EXPECT_EQ(body.n("epoch"), epoch);
  for (WsConn* c : {&a, &b}) {
    Env m = c->expect("message");
    EXPECT_EQ(m.s("content"), "breaking");
    EXPECT_EQ(m.s("message_id"), "api-given");
    EXPECT_EQ(m.s("sender"), "api");
    EXPECT_FALSE(m.s("sent_at").empty());
    EXPECT_EQ(m.n("offset"), 1u);
  }
  // X-API-Key works too; a missing message_id is generated; trace context passes through.
  r = http(s.port(), "POST", "/api/rooms/news/messages",
           std::string("X-API-Key: ") + kApiKey + "\r\n",
           R"({"content":"second","traceparent":"00-aa-bb-01"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json_body(r).n("offset"), 2u);
  for (WsConn* c : {&a, &b}) {
    Env m = c->expect("message");
    EXPECT_FALSE(m.s("message_id").empty());
    EXPECT_EQ(m.s("traceparent"), "00-aa-bb-01");
    EXPECT_FALSE(m.has("tracestate"));
  }
  r = http(s.port(), "GET", "/api/rooms/news", bearer());
  ASSERT_EQ(r.status, 200) << r.body;
  body = json_body(r);
  EXPECT_EQ(body.s("room_id"), "news");
  EXPECT_EQ(body.n("members"), 2u);
  EXPECT_EQ(body.n("last_offset"), 2u);
  EXPECT_EQ(body.n("epoch"), epoch);
}

TEST(RoomsApi, RefusesMissingOrWrongKeysWith401) {
  RoomsServer s(1);
  WsConn a(s.port());
  a.join("locked");
  const std::vector<std::string> headers = {
      "",
      "Authorization: Bearer wrong\r\n",
      "Authorization: Bearer test-key-0123456780\r\n",  // same length, last byte differs
      std::string("Authorization: Basic ") + kApiKey + "\r\n",
      "X-API-Key: nope\r\n",
  };
  for (const std::string& h : headers) {
    SCOPED_TRACE(h);
    harness::Response r =
        http(s.port(), "POST", "/api/rooms/locked/messages", h, R"({"content":"x"})");
    EXPECT_EQ(r.status, 401);
    EXPECT_TRUE(r.has("WWW-Authenticate"));
    EXPECT_EQ(http(s.port(), "GET", "/api/rooms/locked", h).status, 401);
  }
  EXPECT_TRUE(a.quiet_for(100)) << "nothing was published";
}

TEST(RoomsApi, Answers403WhenTheServerHasNoApiKey) {
  RoomsServer s(1, {}, "");
  WsConn a(s.port());
  a.join("open");
  EXPECT_EQ(
      http(s.port(), "POST", "/api/rooms/open/messages", bearer(), R"({"content":"x"})").status,
      403);
  EXPECT_EQ(
      http(s.port(), "POST", "/api/rooms/open/messages", bearer(""), R"({"content":"x"})").status,
      403);
  EXPECT_EQ(http(s.port(), "GET", "/api/rooms/open").status, 403);
  EXPECT_TRUE(a.quiet_for(100));
}

TEST(RoomsApi, Answers404ForARoomWithoutMembers) {
  RoomsServer s(2);
  EXPECT_EQ(api_publish(s.port(), "ghost", R"({"content":"x"})").status, 404);
  EXPECT_EQ(http(s.port(), "GET", "/api/rooms/ghost", bearer()).status, 404);
  {
    WsConn a(s.port());
    a.join("ghost");
    EXPECT_EQ(http(s.port(), "GET", "/api/rooms/ghost", bearer()).status, 200);
    a.send(R"({"leave_room":{"room_id":"ghost"}})");
    a.expect("room_left");
  }
  EXPECT_TRUE(eventually([&] {
    return http(s.port(), "GET", "/api/rooms/ghost", bearer()).status == 404;
  })) << "a room whose last member left is gone";
  EXPECT_EQ(api_publish(s.port(), "ghost", R"({"content":"x"})").status, 404);
}

TEST(RoomsApi, Answers400ForBadBodiesAndBadRoomIds) {
  cluster::RoomsConfig limits;
  limits.max_content_bytes = 16;
  RoomsServer s(1, limits);
  WsConn a(s.port());
  a.join("r1");
  for (const std::string& body : {std::string("not json"), std::string("{\"content\":5}"),
                                  std::string("{}"), std::string("[\"content\"]")}) {
    SCOPED_TRACE(body);
    EXPECT_EQ(api_publish(s.port(), "r1", body).status, 400);
  }
  EXPECT_EQ(api_publish(s.port(), "bad%20id", R"({"content":"x"})").status, 400);
  EXPECT_EQ(api_publish(s.port(), pad(200), R"({"content":"x"})").status, 400);
  EXPECT_EQ(http(s.port(), "GET", "/api/rooms/bad%20id", bearer()).status, 400);
  EXPECT_EQ(http(s.port(), "GET", "/api/rooms/", bearer()).status, 400);
  EXPECT_EQ(api_publish(s.port(), "r1", "{\"content\":\"" + pad(17) + "\"}").status, 413);
  EXPECT_EQ(http(s.port(), "DELETE", "/api/rooms/r1", bearer()).status, 405);
  EXPECT_TRUE(a.quiet_for(100)) << "no bad request published anything";
  ASSERT_EQ(api_publish(s.port(), "r1", "{\"content\":\"" + pad(16) + "\"}").status, 200);
  EXPECT_EQ(a.expect("message").n("offset"), 1u);
}

// ---------------------------------------------------------------- total order across threads

// Members on both threads; one publisher per thread plus one on the HTTP API; late joiners
// arrive mid-stream. Every member must see the same offsets, +1 from its join offset, and the
// same message at each.
void check_total_order(RoomsServer& s, const std::string& room) {
  constexpr int kPerPublisher = 1500, kPerApi = 200;
  std::vector<std::unique_ptr<WsConn>> members;
  std::vector<WsConn*> by_thread[2];
  for (int i = 0; i < 40 && (by_thread[0].size() < 3 || by_thread[1].size() < 3); ++i) {
    members.push_back(std::make_unique<WsConn>(s.port()));
    ASSERT_TRUE(members.back()->ok());
    ASSERT_EQ(members.back()->join(room).n("offset"), 0u);
    for (int t = 0; t < 2; ++t)
      if (s.members_on(t, room).count(members.back()->member_id()))
        by_thread[t].push_back(members.back().get());
  }
  ASSERT_GE(by_thread[0].size(), 3u) << "SO_REUSEPORT never picked thread 0";
  ASSERT_GE(by_thread[1].size(), 3u) << "SO_REUSEPORT never picked thread 1";
  WsConn* publishers[2] = {by_thread[0][0], by_thread[1][0]};

  std::vector<std::unique_ptr<Collector>> collectors;
  for (auto& m : members) collectors.push_back(std::make_unique<Collector>(*m, 3));
  std::vector<std::jthread> senders;  // joined on every way out
  senders.emplace_back([&] {          // a backend on the HTTP API, its requests on either thread
    for (int i = 0; i < kPerApi; ++i)
      EXPECT_EQ(
          api_publish(s.port(), room, R"({"content":"a-)" + std::to_string(i) + R"("})").status,
          200);
    EXPECT_EQ(api_publish(s.port(), room, R"({"content":"end-api"})").status, 200);
  });
  std::atomic<bool> late_joined{false};  // the second half waits for the late joiners
  for (int p = 0; p < 2; ++p)
    senders.emplace_back([&, p] {
      for (int i = 0; i < kPerPublisher; ++i) {
        if (i == kPerPublisher / 2) eventually([&] { return late_joined.load(); });
        publishers[p]->publish(room, "p" + std::to_string(p) + "-" + std::to_string(i));
      }
      publishers[p]->publish(room, "end-p" + std::to_string(p));
    });
  // Late joiners, mid-stream.
  EXPECT_TRUE(eventually([&] { return collectors[0]->count > 100; }));
  std::vector<std::unique_ptr<WsConn>> late;
  std::vector<uint64_t> late_offsets;
  std::vector<std::unique_ptr<Collector>> late_collectors;
  for (int i = 0; i < 6; ++i) {
    late.push_back(std::make_unique<WsConn>(s.port()));
    if (!late.back()->ok()) {
      ADD_FAILURE() << "a late joiner could not connect";
      late.pop_back();
      break;
    }
    late_offsets.push_back(late.back()->join(room).n("offset"));
    late_collectors.push_back(std::make_unique<Collector>(*late.back(), 3));
  }
  late_joined = true;
  for (auto& t : senders) t.join();
  for (auto& c : collectors) c->join();
  for (auto& c : late_collectors) c->join();

  const size_t total = 2 * kPerPublisher + kPerApi + 3;
  const std::vector<std::string>& reference = collectors[0]->contents;
  for (size_t i = 0; i < collectors.size(); ++i) {
    SCOPED_TRACE("member " + std::to_string(i));
    ASSERT_EQ(collectors[i]->offsets.size(), total);
    EXPECT_TRUE(contiguous(collectors[i]->offsets, 1));
    EXPECT_EQ(collectors[i]->contents, reference)
        << "every member sees the same message at each offset";
  }
  ASSERT_FALSE(late_offsets.empty());
  EXPECT_GT(late_offsets.front(), 0u) << "the late joiners should have joined mid-stream";
  EXPECT_LT(late_offsets.back(), total - 3);
  for (size_t i = 0; i < late.size(); ++i) {
    SCOPED_TRACE("late member " + std::to_string(i) + " joined at " +
                 std::to_string(late_offsets[i]));
    ASSERT_EQ(late_collectors[i]->offsets.size(), total - late_offsets[i]);
    EXPECT_TRUE(contiguous(late_collectors[i]->offsets, late_offsets[i] + 1));
    EXPECT_TRUE(std::equal(late_collectors[i]->contents.begin(), late_collectors[i]->contents.end(),
                           reference.begin() + static_cast<long>(late_offsets[i])));
  }
  // No duplicates, and each publisher's messages keep their order inside the total order.
  EXPECT_EQ(std::set<std::string>(reference.begin(), reference.end()).size(), total);
  int next[2] = {0, 0}, next_api = 0;
  for (const std::string& c : reference) {
    if (c[0] == 'a') {
      EXPECT_EQ(c, "a-" + std::to_string(next_api++));
    }
    if (c[0] != 'p') continue;
    int p = c[1] - '0';
    EXPECT_EQ(c, "p" + std::to_string(p) + "-" + std::to_string(next[p]));
    ++next[p];
  }
  EXPECT_EQ(next_api, kPerApi);
}

TEST(RoomsOrder, OneGapFreeSequencePerRoomWithPublishersOnBothThreads) {
  RoomsServer s(2);
  ASSERT_TRUE(s.started());
  // One room owned by each thread, so both the local and the mailbox publish paths are crossed.
  std::string rooms[2];
  for (int i = 0; rooms[0].empty() || rooms[1].empty(); ++i) {
    std::string name = "order-" + std::to_string(i);
    rooms[s.service().owner_of(name)] = name;
  }
  for (const std::string& room : rooms) {
    SCOPED_TRACE(room);
    check_total_order(s, room);
  }
}

// ---------------------------------------------------------------- churn

// One connect/join/.../disconnect cycle, in one of several shapes.
void churn_cycle(uint16_t port, int i, std::mutex& mu, std::set<uint64_t>& epochs) {
  WsConn c(port);
  ASSERT_TRUE(c.ok());
  c.ignore_messages = true;
  const std::string room = "churn-" + std::to_string(i % 8);
  auto remember = [&](const Env& joined) {
    if (room != "churn-0") return;
    std::lock_guard<std::mutex> lock(mu);
    epochs.insert(joined.n("epoch"));
  };
  switch (i % 5) {
    case 0:  // join, then close TCP without a close frame
      remember(c.join(room));
      c.close();
      break;
    case 1:  // join, leave, rejoin, then the close handshake
      c.join(room);
      c.send(R"({"leave_room":{"room_id":")" + room + R"("}})");
      c.expect("room_left");
      remember(c.join(room));
      c.send_frame(harness::kOpClose, harness::close_body(1000));
      EXPECT_EQ(c.expect("close").close_code, 1000);
      break;
    case 2:  // the join still in flight when the connection is reset
      c.send(R"({"join_room":{"room_id":")" + room + R"("}})");
      c.reset();
      break;
    case 3:  // several rooms and a message, then a reset
      remember(c.join(room));
      c.join("churn-x" + std::to_string(i % 3));
      c.join("churn-y" + std::to_string(i % 7));
      c.publish(room, "bye");
      c.reset();
      break;
    case 4:  // join, leave and rejoin pipelined without waiting, then FIN
      c.send(R"({"join_room":{"room_id":")" + room + R"("}})");
      c.send(R"({"leave_room":{"room_id":")" + room + R"("}})");
      c.send(R"({"join_room":{"room_id":")" + room + R"("}})");
      if (i % 2) c.reset();  // else FIN
      break;
  }
}

TEST(RoomsChurn, ThousandsOfJoinDisconnectCyclesLeaveNoRoomMembershipOrDescriptorBehind) {
  RoomsServer s(2);
  ASSERT_TRUE(s.started());
  const double rooms_before = metric(s.port(), "weir_rooms");
  const double memberships_before = metric(s.port(), "weir_room_memberships");
  ASSERT_GE(rooms_before, 0);
  ASSERT_GE(memberships_before, 0);
  const size_t fds_before = open_descriptors();
  std::mutex mu;
  std::set<uint64_t> epochs;
  constexpr int kThreads = 4, kCycles = 750;  // 3000 cycles
  std::vector<std::thread> clients;
  for (int t = 0; t < kThreads; ++t)
    clients.emplace_back([&, t] {
      for (int i = 0; i < kCycles; ++i) churn_cycle(s.port(), t * kCycles + i, mu, epochs);
    });
  for (auto& t : clients) t.join();

  EXPECT_TRUE(eventually([&] { return s.open_connections() == 0; }))
      << s.open_connections() << " still open";
  EXPECT_TRUE(eventually([&] { return s.room_state() == 0; })) << "shards still hold room state";
  EXPECT_TRUE(eventually([&] { return metric(s.port(), "weir_rooms") == rooms_before; }))
      << "weir_rooms " << metric(s.port(), "weir_rooms") << ", was " << rooms_before;
  EXPECT_TRUE(eventually([&] {
    return metric(s.port(), "weir_room_memberships") == memberships_before;
  })) << "weir_room_memberships "
      << metric(s.port(), "weir_room_memberships") << ", was " << memberships_before;
  EXPECT_TRUE(eventually([&] { return open_descriptors() <= fds_before; }))
      << open_descriptors() << " descriptors open, " << fds_before << " before";

  ASSERT_FALSE(epochs.empty());
  WsConn fresh(s.port());
  Env joined = fresh.join("churn-0");
  EXPECT_EQ(joined.n("offset"), 0u);
  EXPECT_EQ(epochs.count(joined.n("epoch")), 0u)
      << "a room that emptied comes back as a new incarnation";
  EXPECT_GT(joined.n("epoch"), *epochs.rbegin());
}

// ---------------------------------------------------------------- slow consumers

constexpr size_t kSlowReceiveBuffer = 4096;

cluster::RoomsConfig slow_config(cluster::SlowConsumerPolicy policy) {
  cluster::RoomsConfig c;
  c.policy = policy;
  c.high_watermark = 512 << 10;
  c.low_watermark = 128 << 10;
  c.max_buffer = 2 << 20;
  c.slow_grace_ms = 0;
  return c;
}

#if defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define ROOMS_TEST_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define ROOMS_TEST_SANITIZED 1
#endif
#ifdef ROOMS_TEST_SANITIZED
constexpr int kPacePerMs = 2;  // sanitized builds read several times slower
#else
constexpr int kPacePerMs = 8;
#endif

// A steady publisher of 1 KiB messages (8 MB/s), which a reading member absorbs without ever
// reaching the high watermark, even when a busy machine deschedules it for a while.
void publish_paced(WsConn& pub, const std::string& room, int n) {
  for (int i = 0; i < n; ++i) {
    pub.publish(room, pad(1024));
    if (i % kPacePerMs == kPacePerMs - 1) std::this_thread::sleep_for(milliseconds(1));
  }
}

uint64_t room_members(uint16_t port, const std::string& room) {
  harness::Response r = http(port, "GET", "/api/rooms/" + room, bearer());
  return r.status == 200 ? json_body(r).n("members") : 0;
}

// Reads what a member that stopped reading finally gets: message offsets, then whatever else.
struct Backlog {
  std::vector<uint64_t> offsets;
  std::vector<Env> others;
};
// Reads until an envelope of `until_type`, or a message whose content is `until_content`; a
// read that ends otherwise is recorded as an Env typed "eof", "reset" or "timeout".
Backlog drain(WsConn& c, const std::string& until_type, const std::string& until_content = {},
              int timeout_ms = 3000) {
  Backlog b;
  Env e;
  ReadStatus st;
  while ((st = c.recv(&e, timeout_ms)) == ReadStatus::kOk) {
    if (e.type == "message") {
      b.offsets.push_back(e.n("offset"));
      if (!until_content.empty() && e.s("content") == until_content) break;
    } else {
      b.others.push_back(e);
      if (e.type == until_type) break;
    }
  }
  if (st != ReadStatus::kOk) {
    b.others.emplace_back();
    b.others.back().type = harness::to_string(st);
  }
  return b;
}

TEST(RoomsSlowConsumer, DisconnectClosesTheSlowMemberWith1008AndFastMembersLoseNothing) {
  RoomsServer s(2, slow_config(cluster::SlowConsumerPolicy::kDisconnect));
  WsConn slow(s.port(), {}, kSlowReceiveBuffer), fast(s.port()), pub(s.port());
  ASSERT_TRUE(slow.ok() && fast.ok() && pub.ok());
  for (WsConn* c : {&slow, &fast, &pub}) c->join("busy");
  const double before = slow_actions(s.port(), "disconnect");
  Collector fast_in(fast), pub_in(pub);
  int sent = 0;
  for (; sent < 20000 && room_members(s.port(), "busy") == 3; sent += 32)
    publish_paced(pub, "busy", 32);
  ASSERT_EQ(room_members(s.port(), "busy"), 2u)
      << "the slow member is still in after " << sent << " messages";
  pub.publish("busy", "end");
  fast_in.join();
  pub_in.join();
  for (Collector* c : {&fast_in, &pub_in}) {
    EXPECT_EQ(c->offsets.size(), static_cast<size_t>(sent + 1));
    EXPECT_TRUE(contiguous(c->offsets, 1));
  }
  EXPECT_TRUE(eventually([&] { return slow_actions(s.port(), "disconnect") == before + 1; }))
      << "one disconnect counted once: " << slow_actions(s.port(), "disconnect") - before;

  Backlog got = drain(slow, "close");
  EXPECT_TRUE(contiguous(got.offsets, 1));
  EXPECT_LT(got.offsets.size(), static_cast<size_t>(sent));
  ASSERT_FALSE(got.others.empty());
  EXPECT_EQ(got.others.back().type, "close");
  EXPECT_EQ(got.others.back().close_code, 1008);
  EXPECT_EQ(got.others.back().close_reason, "slow consumer");
  slow.send_frame(harness::kOpClose, harness::close_body(1008));
  ReadStatus end = slow.wait_closed();
  EXPECT_TRUE(end == ReadStatus::kEof || end == ReadStatus::kReset) << harness::to_string(end);
}

TEST(RoomsSlowConsumer, SkipSendsLaggedWithExactlyTheOffsetsTheMemberMissed) {
  RoomsServer s(2, slow_config(cluster::SlowConsumerPolicy::kSkip));
  WsConn slow(s.port(), {}, kSlowReceiveBuffer), fast(s.port()), pub(s.port());
  ASSERT_TRUE(slow.ok() && fast.ok() && pub.ok());
  for (WsConn* c : {&slow, &fast, &pub}) c->join("busy");
  const double skips = slow_actions(s.port(), "skip"),
               notices = slow_actions(s.port(), "lagged_notice");
  Collector fast_in(fast), pub_in(pub);
  constexpr int kBurst = 6000, kTail = 10;  // the kernel takes ~2.5 MB first
  publish_paced(pub, "busy", kBurst);
  ASSERT_TRUE(eventually([&] { return fast_in.count == kBurst; }))
      << fast_in.count << " of " << kBurst;
  EXPECT_GT(slow_actions(s.port(), "skip"), skips);
  EXPECT_EQ(room_members(s.port(), "busy"), 3u) << "skip never disconnects";

  Backlog first = drain(slow, "lagged");  // reading lets the queue drain under the low watermark
  for (int i = 0; i < kTail; ++i) pub.publish("busy", "tail");
  pub.publish("busy", "end");
  Backlog rest = drain(slow, "", "end");
  fast_in.join();
  pub_in.join();
  EXPECT_EQ(fast_in.offsets.size(), static_cast<size_t>(kBurst + kTail + 1));
  EXPECT_TRUE(contiguous(fast_in.offsets, 1));

  ASSERT_EQ(first.others.size(), 1u);
  const Env& lagged = first.others[0];
  ASSERT_EQ(lagged.type, "lagged") << lagged.raw;
  EXPECT_EQ(lagged.s("room_id"), "busy");
  const uint64_t from = lagged.n("from_offset"), to = lagged.n("to_offset");
  EXPECT_TRUE(contiguous(first.offsets, 1)) << "what came before the notice";
  EXPECT_EQ(from, first.offsets.size() + 1) << "the range starts right after the last delivery";
  EXPECT_GE(to, from);
  EXPECT_EQ(to, static_cast<uint64_t>(kBurst)) << "everything published while it lagged";
  EXPECT_TRUE(rest.others.empty());
  EXPECT_TRUE(contiguous(rest.offsets, to + 1)) << "deliveries resume right after the range";
  EXPECT_EQ(rest.offsets.size(), static_cast<size_t>(kTail + 1));
  EXPECT_EQ(slow_actions(s.port(), "lagged_notice"), notices + 1);
}

// True once `c` stops receiving for 300 ms short of `total` messages: its room is paused.
bool stalls(Collector& c, size_t total) {
  return eventually(
      [&] {
        size_t before = c.count;
        std::this_thread::sleep_for(milliseconds(300));
        return c.count == before && before > 0 && before < total;
      },
      10000);
}

std::vector<uint64_t> offsets_in(const Collector& c, const std::string& room) {
  std::vector<uint64_t> out;
  for (size_t i = 0; i < c.offsets.size(); ++i)
    if (c.rooms[i] == room) out.push_back(c.offsets[i]);
  return out;
}

// How long a member of a paused room may hear nothing (sanitized builds are slow to release).
constexpr int kPausedMs = 30000;

// Backpressure: a member that stops reading pauses the room's publishers; nothing is lost.
// `release` is what finally lets the room go on.
enum class Release { kSlowReads, kSlowLeaves, kSlowResets };

void check_backpressure(Release release) {
  cluster::RoomsConfig config = slow_config(cluster::SlowConsumerPolicy::kBackpressure);
  config.max_buffer = 8 << 20;
  RoomsServer s(2, config);
  WsConn slow(s.port(), {}, kSlowReceiveBuffer), fast(s.port()), pub(s.port());
  ASSERT_TRUE(slow.ok() && fast.ok() && pub.ok());
  for (WsConn* c : {&slow, &fast, &pub}) c->join("busy");
  const double pauses = slow_actions(s.port(), "pause_publisher");
  const double disconnects = slow_actions(s.port(), "disconnect");
  Collector fast_in(fast, 1, kPausedMs), pub_in(pub, 1, kPausedMs);  // silent while paused
  constexpr int kMessages = 6000;  // the kernel takes ~2.5 MB before the server queues
  std::thread sender([&] {
    publish_paced(pub, "busy", kMessages);
    pub.publish("busy", "end");
  });
  // The room stalls: the fast member's count stops moving short of everything.
  bool stalled = stalls(fast_in, kMessages);
  EXPECT_TRUE(stalled) << "the fast member got " << fast_in.count << " of " << kMessages;
  EXPECT_GT(slow_actions(s.port(), "pause_publisher"), pauses);
  harness::Response api = api_publish(s.port(), "busy", R"({"content":"from-api"})");
  EXPECT_EQ(api.status, 503) << "API publishers wait too";
  EXPECT_TRUE(api.has("Retry-After"));

  switch (release) {
    case Release::kSlowReads: {
      Collector slow_in(slow);
      slow_in.join();
      EXPECT_EQ(slow_in.offsets.size(), static_cast<size_t>(kMessages + 1)) << "lossless";
      EXPECT_TRUE(contiguous(slow_in.offsets, 1));
      break;
    }
    case Release::kSlowLeaves:
      slow.send(R"({"leave_room":{"room_id":"busy"}})");
      break;
    case Release::kSlowResets:
      slow.reset();
      break;
  }
  sender.join();
  fast_in.join();
  pub_in.join();
  for (Collector* c : {&fast_in, &pub_in}) {
    EXPECT_EQ(c->offsets.size(), static_cast<size_t>(kMessages + 1))
        << "publishers resumed, nothing lost";
    EXPECT_TRUE(contiguous(c->offsets, 1));
  }
  EXPECT_EQ(slow_actions(s.port(), "disconnect"), disconnects)
      << "backpressure pauses, it does not drop";
}

TEST(RoomsSlowConsumer, BackpressurePausesPublishersLosslesslyAndResumesWhenTheMemberReads) {
  check_backpressure(Release::kSlowReads);
}

TEST(RoomsSlowConsumer, BackpressureResumesTheRoomWhenTheBlockedMemberLeavesIt) {
  check_backpressure(Release::kSlowLeaves);
}

TEST(RoomsSlowConsumer, BackpressureResumesTheRoomWhenTheBlockedMemberIsReset) {
  check_backpressure(Release::kSlowResets);
}

// A member that joins a room while above its high watermark holds that room paused as well, so
// its release when it catches up cannot cancel another member's hold on the room.
TEST(RoomsSlowConsumer, BackpressureKeepsARoomPausedWhileAnyMemberIsAboveHigh) {
  cluster::RoomsConfig config = slow_config(cluster::SlowConsumerPolicy::kBackpressure);
  config.max_buffer = 8 << 20;
  RoomsServer s(2, config);
  WsConn slow_a(s.port(), {}, kSlowReceiveBuffer), slow_b(s.port(), {}, kSlowReceiveBuffer);
  WsConn pub_a(s.port()), pub_b(s.port());
  ASSERT_TRUE(slow_a.ok() && slow_b.ok() && pub_a.ok() && pub_b.ok());
  slow_a.join("room-a");
  pub_a.join("room-a");
  slow_b.join("room-b");
  pub_b.join("room-b");
  constexpr int kMessages = 6000;
  Collector a_in(pub_a, 1, kPausedMs), b_in(pub_b, 1, kPausedMs);
  std::thread a_sender([&] {
    publish_paced(pub_a, "room-a", kMessages);
    pub_a.publish("room-a", "end");
  });
  std::thread b_sender([&] {
    publish_paced(pub_b, "room-b", kMessages);
    pub_b.publish("room-b", "end");
  });
  EXPECT_TRUE(stalls(a_in, kMessages)) << "room-a never paused";
  EXPECT_TRUE(stalls(b_in, kMessages)) << "room-b never paused";

  // slow_a, above its high watermark, joins room-b and then catches up with everything.
  slow_a.send(R"({"join_room":{"room_id":"room-b"}})");
  Collector slow_a_in(slow_a, 2, kPausedMs);
  EXPECT_TRUE(eventually([&] { return a_in.count == kMessages + 1; }, 10000)) << "room-a resumed";
  const size_t b_count = b_in.count;
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_EQ(b_in.count, b_count) << "room-b resumed while slow_b is still above its high watermark";
  EXPECT_LT(b_count, static_cast<size_t>(kMessages + 1));

  Collector slow_b_in(slow_b);  // now room-b can go on, losslessly
  a_sender.join();
  b_sender.join();
  for (Collector* c : {&a_in, &b_in, &slow_b_in, &slow_a_in}) c->join();
  for (Collector* c : {&a_in, &b_in, &slow_b_in}) {
    EXPECT_EQ(c->offsets.size(), static_cast<size_t>(kMessages + 1));
    EXPECT_TRUE(contiguous(c->offsets, 1));
  }
  std::vector<uint64_t> a_part = offsets_in(slow_a_in, "room-a"),
                        b_part = offsets_in(slow_a_in, "room-b");
  EXPECT_TRUE(contiguous(a_part, 1));
  EXPECT_EQ(a_part.size(), static_cast<size_t>(kMessages + 1));
  ASSERT_FALSE(b_part.empty());
  EXPECT_TRUE(contiguous(b_part, b_part.front()));
  EXPECT_EQ(b_part.back(), static_cast<uint64_t>(kMessages + 1));
}

// The slow member's queue under backpressure, sampled on its own thread while it reads at
// 4 MB/s behind a publisher with a backlog: the room's publishers must be paused within about
// 128 KiB of the high watermark, whichever threads the room, its publisher and its slow member
// live on. The pause travels slow member -> owner -> publisher's thread through the mailboxes;
// what can pass meanwhile is bounded three ways: the owner holds the room paused while more
// than 64 KiB of it is in transit to a thread, a publisher waits while 32 KiB of its content
// has not come back to it, and what a paused publisher had already read waits in the server.
// (Before those bounds it peaked at 1.6 MB and 10 MB with a 256 KiB watermark.)
TEST(RoomsSlowConsumer, BackpressureHoldsTheQueueNearHighWhicheverThreadOwnsTheRoom) {
  cluster::RoomsConfig config = slow_config(cluster::SlowConsumerPolicy::kBackpressure);
  config.high_watermark = 256 << 10;
  config.low_watermark = 64 << 10;
  config.max_buffer = 64 << 20;  // no disconnect: the queue itself is measured
  for (bool owner_is_publishers : {true, false}) {
    SCOPED_TRACE(owner_is_publishers ? "room owned by the publisher's thread"
                                     : "room owned by the other thread");
    RoomsServer s(2, config);
    WsConn pub(s.port()), slow(s.port(), {}, kSlowReceiveBuffer), fast(s.port());
    ASSERT_TRUE(pub.ok() && slow.ok() && fast.ok());
    pub.join("probe");
    const int pub_thread = s.members_on(0, "probe").count(pub.member_id()) ? 0 : 1;
    std::string room;
    for (int i = 0; room.empty(); ++i) {
      std::string name = "bp-" + std::to_string(i);
      if ((s.service().owner_of(name) == pub_thread) == owner_is_publishers) room = name;
    }
    for (WsConn* c : {&pub, &slow, &fast}) c->join(room);
    const int slow_thread = s.members_on(0, room).count(slow.member_id()) ? 0 : 1;
    auto slow_queue = [&] {
      return s.on_thread(slow_thread, [&] {
        size_t queued = 0;
        if (cluster::LocalRoom* r = s.service().shard(slow_thread).local_room(room))
          for (cluster::Member* m : r->members)
            if (m->name() == slow.member_id()) queued = m->session().queued_bytes();
        return queued;
      });
    };
    constexpr int kMessages = 12000;
    Collector fast_in(fast, 1, kPausedMs), pub_in(pub, 1, kPausedMs);
    std::jthread sender([&] {
      for (int i = 0; i < kMessages; ++i) pub.publish(room, pad(1024));  // a backlog builds up
      pub.publish(room, "end");
    });
    EXPECT_TRUE(stalls(fast_in, kMessages));
    std::atomic<bool> done{false};
    std::jthread reader([&] {  // the slow member reads again, at 4 MB/s
      harness::Frame f;
      const int64_t start = core::monotonic_ms();
      size_t bytes = 0;
      while (!done && slow.read_frame(&f, 100) != ReadStatus::kEof) {
        bytes += f.payload.size();
        int64_t ahead = static_cast<int64_t>(bytes / 4000) - (core::monotonic_ms() - start);
        if (ahead > 0) std::this_thread::sleep_for(milliseconds(ahead));
      }
    });
    size_t peak = 0;
    for (int i = 0; i < 3000 && fast_in.count <= kMessages; ++i) {
      peak = std::max(peak, slow_queue());
      std::this_thread::sleep_for(milliseconds(1));
    }
    done = true;
    EXPECT_LE(peak, config.high_watermark + (128 << 10))
        << "the slow member's queue peaked at " << peak << " bytes";
  }
}

TEST(RoomsSlowConsumer, SlowGraceDisconnectsAMemberStuckAboveTheHighWatermark) {
  cluster::RoomsConfig config = slow_config(cluster::SlowConsumerPolicy::kDisconnect);
  config.max_buffer = 64 << 20;  // far away: only the grace can end it
  config.slow_grace_ms = 500;
  RoomsServer s(2, config);
  WsConn slow(s.port(), {}, kSlowReceiveBuffer), pub(s.port());
  ASSERT_TRUE(slow.ok() && pub.ok());
  for (WsConn* c : {&slow, &pub}) c->join("busy");
  const double disconnects = slow_actions(s.port(), "disconnect");
  const double crossings = metric(s.port(), "weir_high_watermark_crossings_total");
  Collector pub_in(pub);
  int sent = 0;
  for (; sent < 20000 && metric(s.port(), "weir_high_watermark_crossings_total") == crossings;
       sent += 32)
    publish_paced(pub, "busy", 32);
  const int64_t crossed = core::monotonic_ms();
  ASSERT_GT(metric(s.port(), "weir_high_watermark_crossings_total"), crossings);
  std::this_thread::sleep_for(milliseconds(150));
  EXPECT_EQ(room_members(s.port(), "busy"), 2u) << "disconnected before --slow-grace";
  ASSERT_TRUE(eventually([&] { return room_members(s.port(), "busy") == 1; }, 3000));
  const int64_t elapsed = core::monotonic_ms() - crossed;
  EXPECT_GE(elapsed, 250) << "the grace is " << config.slow_grace_ms << " ms";
  EXPECT_EQ(slow_actions(s.port(), "disconnect"), disconnects + 1);
  Backlog got = drain(slow, "close");
  EXPECT_TRUE(contiguous(got.offsets, 1));
  ASSERT_FALSE(got.others.empty());
  EXPECT_EQ(got.others.back().close_code, 1008);
  EXPECT_EQ(got.others.back().close_reason, "slow consumer");
  pub.publish("busy", "end");
}

}  // namespace
}  // namespace weir
