// JWT verification (ws/jwt.h), room ACL patterns (cluster/room_acl.h) and the handshake's
// token lookup (cluster/authenticator.h). Keys are generated here with OpenSSL and tokens are
// signed here, so every case is built from scratch.
#include "ws/jwt.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "cluster/authenticator.h"
#include "cluster/room_acl.h"

namespace weir {
namespace {

using ws::JwtError;
using ws::JwtKeySet;

constexpr int64_t kNow = 1'800'000'000;
const std::string kSecret = "0123456789abcdef0123456789abcdef-test-secret";

struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

Pkey rsa_key(size_t bits = 2048) {
  return Pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", bits));
}
Pkey ec_key(const char* curve = "P-256") {
  return Pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve));
}

std::string public_pem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, key);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(n));
  BIO_free(bio);
  return pem;
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &len);
  return std::string(reinterpret_cast<char*>(mac), len);
}

std::string evp_sign(EVP_PKEY* key, std::string_view data) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  size_t len = 0;
  EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key);
  EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(data.data()),
                 data.size());
  std::string sig(len, '\0');
  EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                 reinterpret_cast<const unsigned char*>(data.data()), data.size());
  sig.resize(len);
  EVP_MD_CTX_free(ctx);
  return sig;
}

std::string header(std::string_view alg, std::string_view kid = {}) {
  std::string h = "{\"alg\":\"" + std::string(alg) + "\",\"typ\":\"JWT\"";
  if (!kid.empty()) h += ",\"kid\":\"" + std::string(kid) + "\"";
  return h + "}";
}

std::string claims(std::string_view sub = "alice", int64_t exp = kNow + 3600, int64_t nbf = 0,
                   std::string_view rooms = {}) {
  std::string c = "{\"sub\":\"" + std::string(sub) + "\",\"exp\":" + std::to_string(exp);
  if (nbf) c += ",\"nbf\":" + std::to_string(nbf);
  if (!rooms.empty()) c += ",\"rooms\":" + std::string(rooms);
  return c + "}";
}

std::string signing_input(std::string_view h, std::string_view c) {
  return ws::base64url_encode(h) + "." + ws::base64url_encode(c);
}

std::string hs256(std::string_view secret, std::string_view h, std::string_view c) {
  std::string input = signing_input(h, c);
  return input + "." + ws::base64url_encode(hmac_sha256(secret, input));
}

std::string rs256(EVP_PKEY* key, std::string_view h, std::string_view c) {
  std::string input = signing_input(h, c);
  return input + "." + ws::base64url_encode(evp_sign(key, input));
}

std::string es256(EVP_PKEY* key, std::string_view h, std::string_view c) {
  std::string input = signing_input(h, c);
  std::string raw;
  EXPECT_TRUE(ws::ecdsa_der_to_raw(evp_sign(key, input), &raw));
  return input + "." + ws::base64url_encode(raw);
}

// One RSA and one EC key for the whole suite: RSA generation takes a moment.
class Jwt : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    rsa_ = rsa_key().release();
    ec_ = ec_key().release();
  }
  static void TearDownTestSuite() {
    EVP_PKEY_free(rsa_);
    EVP_PKEY_free(ec_);
  }
  // The HMAC secret (no kid), the RSA key as kid "rsa", the EC key as kid "ec".
  JwtKeySet& keys() {
    if (keys_.empty()) {
      std::string error;
      EXPECT_TRUE(keys_.add_hmac_secret(kSecret, "", &error)) << error;
      EXPECT_TRUE(keys_.add_public_key_pem(public_pem(rsa_), "rsa", &error)) << error;
      EXPECT_TRUE(keys_.add_public_key_pem(public_pem(ec_), "ec", &error)) << error;
    }
    return keys_;
  }
  ws::JwtResult verify(const std::string& token, int64_t leeway = 0) {
    return keys().verify(token, kNow, leeway);
  }

  static EVP_PKEY* rsa_;
  static EVP_PKEY* ec_;
  JwtKeySet keys_;
};
EVP_PKEY* Jwt::rsa_ = nullptr;
EVP_PKEY* Jwt::ec_ = nullptr;

TEST_F(Jwt, ValidHs256GivesTheClaims) {
  auto r = verify(hs256(
      kSecret, header("HS256"),
      claims("alice", kNow + 60, 0, R"({"subscribe":["chat.*"],"publish":["chat.general"]})")));
  ASSERT_TRUE(r.ok()) << r.reason;
  EXPECT_EQ(r.claims.sub, "alice");
  EXPECT_EQ(r.claims.exp, kNow + 60);
  EXPECT_TRUE(r.claims.has_rooms);
  EXPECT_EQ(r.claims.subscribe, std::vector<std::string>{"chat.*"});
  EXPECT_EQ(r.claims.publish, std::vector<std::string>{"chat.general"});
  EXPECT_EQ(r.claims.alg, ws::JwtAlg::kHS256);
}

TEST_F(Jwt, ValidRs256ByKid) {
  auto r = verify(rs256(rsa_, header("RS256", "rsa"), claims("bob")));
  ASSERT_TRUE(r.ok()) << r.reason;
  EXPECT_EQ(r.claims.sub, "bob");
  EXPECT_EQ(r.claims.kid, "rsa");
}

TEST_F(Jwt, ValidRs256WithoutKidTriesEveryRsaKey) {
  EXPECT_TRUE(verify(rs256(rsa_, header("RS256"), claims())).ok());
}

TEST_F(Jwt, ValidEs256RawSignature) {
  auto r = verify(es256(ec_, header("ES256", "ec"), claims("carol")));
  ASSERT_TRUE(r.ok()) << r.reason;
  EXPECT_EQ(r.claims.sub, "carol");
}

TEST_F(Jwt, Es256DerSignatureIsRefused) {
  std::string input = signing_input(header("ES256", "ec"), claims());
  std::string token = input + "." + ws::base64url_encode(evp_sign(ec_, input));
  EXPECT_EQ(verify(token).error, JwtError::kBadSignature);
}

TEST_F(Jwt, ExpiredIsRefused) {
  auto r = verify(hs256(kSecret, header("HS256"), claims("alice", kNow - 1)));
  EXPECT_EQ(r.error, JwtError::kExpired);
  EXPECT_EQ(ws::jwt_error_name(r.error), "expired");
  EXPECT_EQ(verify(hs256(kSecret, header("HS256"), claims("alice", kNow))).error,
            JwtError::kExpired);  // exp is the first second it is no longer valid
}

TEST_F(Jwt, NotYetValidIsRefused) {
  auto r = verify(hs256(kSecret, header("HS256"), claims("alice", kNow + 600, kNow + 10)));
  EXPECT_EQ(r.error, JwtError::kNotYetValid);
  EXPECT_TRUE(verify(hs256(kSecret, header("HS256"), claims("alice", kNow + 600, kNow))).ok());
}

TEST_F(Jwt, LeewayCoversClockSkewOnBothEnds) {
  std::string expired = hs256(kSecret, header("HS256"), claims("alice", kNow - 20));
  EXPECT_TRUE(verify(expired, 30).ok());
  EXPECT_EQ(verify(expired, 20).error, JwtError::kExpired);
  std::string early = hs256(kSecret, header("HS256"), claims("alice", kNow + 600, kNow + 20));
  EXPECT_TRUE(verify(early, 30).ok());
  EXPECT_EQ(verify(early, 10).error, JwtError::kNotYetValid);
}

TEST_F(Jwt, WrongKeyIsBadSignature) {
  EXPECT_EQ(verify(hs256("another-secret-of-at-least-32-bytes!!", header("HS256"), claims())).error,
            JwtError::kBadSignature);
  Pkey other = rsa_key();
  EXPECT_EQ(verify(rs256(other.get(), header("RS256", "rsa"), claims())).error,
            JwtError::kBadSignature);
  Pkey other_ec = ec_key();
  EXPECT_EQ(verify(es256(other_ec.get(), header("ES256"), claims())).error,
            JwtError::kBadSignature);
}

TEST_F(Jwt, TamperedClaimsAreBadSignature) {
  std::string token = hs256(kSecret, header("HS256"), claims("alice"));
  size_t dot1 = token.find('.'), dot2 = token.rfind('.');
  std::string forged =
      token.substr(0, dot1 + 1) + ws::base64url_encode(claims("mallory")) + token.substr(dot2);
  EXPECT_EQ(verify(forged).error, JwtError::kBadSignature);
}

TEST_F(Jwt, UnknownKidIsRefused) {
  auto r = verify(rs256(rsa_, header("RS256", "nope"), claims()));
  EXPECT_EQ(r.error, JwtError::kUnknownKid);
  EXPECT_EQ(ws::jwt_error_name(r.error), "unknown_kid");
}

TEST_F(Jwt, AlgNoneIsRefused) {
  std::string input = signing_input(R"({"alg":"none","typ":"JWT"})", claims());
  EXPECT_EQ(verify(input + ".").error, JwtError::kAlgNotAllowed);
  EXPECT_EQ(verify(input + "." + ws::base64url_encode("x")).error, JwtError::kAlgNotAllowed);
  EXPECT_EQ(verify(signing_input(R"({"alg":"None"})", claims()) + ".").error,
            JwtError::kAlgNotAllowed);
}

TEST_F(Jwt, OtherAlgorithmsAreRefused) {
  for (const char* alg : {"HS384", "HS512", "RS512", "PS256", "ES384", "EdDSA"})
    EXPECT_EQ(verify(hs256(kSecret, header(alg), claims())).error, JwtError::kAlgNotAllowed) << alg;
}

// Algorithm confusion, one way: an RS256 token signed (HMAC) with the HMAC secret, or an RS256
// token checked where only the HMAC secret is configured.
TEST_F(Jwt, Rs256TokenIsNeverCheckedWithTheHmacSecret) {
  JwtKeySet hmac_only;
  std::string error;
  ASSERT_TRUE(hmac_only.add_hmac_secret(kSecret, "", &error));
  std::string forged = hs256(kSecret, header("RS256"), claims());
  EXPECT_EQ(hmac_only.verify(forged, kNow, 0).error, JwtError::kAlgNotAllowed);
  EXPECT_EQ(hmac_only.verify(rs256(rsa_, header("RS256"), claims()), kNow, 0).error,
            JwtError::kAlgNotAllowed);
  EXPECT_EQ(verify(forged).error, JwtError::kBadSignature);  // the RSA key does not verify it
}

// ... and the other: an HS256 token whose "secret" is the public key's PEM.
TEST_F(Jwt, Hs256SignedWithThePublicKeyPemIsRefused) {
  std::string pem = public_pem(rsa_);
  JwtKeySet rsa_only;
  std::string error;
  ASSERT_TRUE(rsa_only.add_public_key_pem(pem, "", &error)) << error;
  std::string forged = hs256(pem, header("HS256"), claims("mallory"));
  EXPECT_EQ(rsa_only.verify(forged, kNow, 0).error, JwtError::kAlgNotAllowed);
  EXPECT_EQ(verify(forged).error, JwtError::kBadSignature);  // only the real secret verifies HS256
  EXPECT_EQ(verify(hs256(pem, header("HS256", "rsa"), claims())).error, JwtError::kAlgNotAllowed);
}

TEST_F(Jwt, KidOfAnotherKeyTypeIsRefused) {
  EXPECT_EQ(verify(es256(ec_, header("ES256", "rsa"), claims())).error, JwtError::kAlgNotAllowed);
  EXPECT_EQ(verify(rs256(rsa_, header("RS256", "ec"), claims())).error, JwtError::kAlgNotAllowed);
}

TEST_F(Jwt, MalformedTokensAreRefused) {
  std::string good = hs256(kSecret, header("HS256"), claims());
  for (const std::string& token : {
           std::string(), std::string("abc"), std::string("a.b"), good + ".x",
           std::string("!!.") + good.substr(good.find('.') + 1),  // not base64url
           good.substr(0, good.find('.')) + "=.e30.x",            // padding
           ws::base64url_encode("not json") + ".e30.",            // header not JSON
           ws::base64url_encode("[1]") + ".e30.",                 // header not an object
           ws::base64url_encode(R"({"typ":"JWT"})") + ".e30.",    // no alg
           ws::base64url_encode(R"({"alg":7})") + ".e30.",        // alg not a string
           std::string(9000, 'a') + ".b.c",                       // too long
       })
    EXPECT_EQ(verify(token).error, JwtError::kMalformed) << token.substr(0, 80);
  EXPECT_EQ(verify(hs256(kSecret, R"({"alg":"HS256","crit":["x"]})", claims())).error,
            JwtError::kMalformed);
  EXPECT_EQ(verify(hs256(kSecret, header("HS256"), "not json")).error, JwtError::kMalformed);
}

TEST_F(Jwt, ClaimsWithoutSubOrExpOrOfTheWrongTypeAreRefused) {
  for (const char* c : {R"({"exp":1900000000})", R"({"sub":"a"})", R"({"sub":7,"exp":1900000000})",
                        R"({"sub":"","exp":1900000000})", R"({"sub":"a","exp":"soon"})",
                        R"({"sub":"a","exp":1900000000,"sub":"b"})",
                        R"({"sub":"a","exp":1900000000,"rooms":["x"]})",
                        R"({"sub":"a","exp":1900000000,"rooms":{"subscribe":"x"}})",
                        R"({"sub":"a","exp":1900000000,"rooms":{"publish":[1]}})"})
    EXPECT_EQ(verify(hs256(kSecret, header("HS256"), c)).error, JwtError::kInvalidClaims) << c;
  auto r = verify(hs256(kSecret, header("HS256"), R"({"sub":"a","exp":1900000000.5})"));
  ASSERT_TRUE(r.ok()) << r.reason;
  EXPECT_EQ(r.claims.exp, 1900000000);
  EXPECT_FALSE(r.claims.has_rooms);
}

TEST_F(Jwt, WeakKeysAreRefusedAtLoad) {
  JwtKeySet keys;
  std::string error;
  EXPECT_FALSE(keys.add_hmac_secret("short", "", &error));
  Pkey small = rsa_key(1024);
  EXPECT_FALSE(keys.add_public_key_pem(public_pem(small.get()), "", &error));
  Pkey p384 = ec_key("P-384");
  EXPECT_FALSE(keys.add_public_key_pem(public_pem(p384.get()), "", &error));
  EXPECT_FALSE(keys.add_public_key_pem("-----BEGIN PUBLIC KEY-----\nxx\n", "", &error));
  EXPECT_TRUE(keys.empty());
  ASSERT_TRUE(keys.add_public_key_pem(public_pem(rsa_), "k", &error));
  EXPECT_FALSE(keys.add_public_key_pem(public_pem(ec_), "k", &error)) << "duplicate kid";
}

TEST_F(Jwt, EcdsaSignatureConversionRoundTrips) {
  std::string der = evp_sign(ec_, "data"), raw, back;
  ASSERT_TRUE(ws::ecdsa_der_to_raw(der, &raw));
  EXPECT_EQ(raw.size(), 64u);
  ASSERT_TRUE(ws::ecdsa_raw_to_der(raw, &back));
  EXPECT_EQ(back, der);
  EXPECT_FALSE(ws::ecdsa_raw_to_der(raw.substr(1), &back));
}

TEST_F(Jwt, Base64urlIsStrict) {
  std::string out;
  EXPECT_TRUE(ws::base64url_decode("aGk", &out));
  EXPECT_EQ(out, "hi");
  out.clear();
  EXPECT_FALSE(ws::base64url_decode("aGk=", &out));
  EXPECT_FALSE(ws::base64url_decode("aGl", &out));  // non-zero trailing bits
  EXPECT_FALSE(ws::base64url_decode("a", &out));
  EXPECT_FALSE(ws::base64url_decode("a+b/", &out));
  EXPECT_EQ(ws::base64url_encode("\xfb\xff"), "-_8");
}

std::string write_temp(const std::string& name, const std::string& bytes) {
  std::string path = ::testing::TempDir() + "/weir_jwt_" + std::to_string(getpid()) + "_" + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

// ---------------------------------------------------------------- iss and aud

// The claims of claims() plus `extra` members, e.g. R"("iss":"a","aud":"b")".
std::string claims_with(std::string_view extra) {
  std::string c = claims();
  c.pop_back();
  return c + "," + std::string(extra) + "}";
}

const ws::JwtRequirements kBoth{"weir-api", "https://issuer.example"};

TEST_F(Jwt, RequiredIssuerAndAudienceMatch) {
  auto r = keys().verify(hs256(kSecret, header("HS256"),
                               claims_with(R"("iss":"https://issuer.example","aud":"weir-api")")),
                         kNow, 0, kBoth);
  ASSERT_TRUE(r.ok()) << r.reason;
  EXPECT_EQ(r.claims.iss, "https://issuer.example");
  EXPECT_EQ(r.claims.aud, std::vector<std::string>{"weir-api"});
}

TEST_F(Jwt, AudienceMayBeAnArrayHoldingTheRequiredOne) {
  auto r = keys().verify(
      hs256(kSecret, header("HS256"),
            claims_with(R"("iss":"https://issuer.example","aud":["other","weir-api"])")),
      kNow, 0, kBoth);
  ASSERT_TRUE(r.ok()) << r.reason;
  EXPECT_EQ(r.claims.aud, (std::vector<std::string>{"other", "weir-api"}));
  auto none = keys().verify(
      hs256(kSecret, header("HS256"),
            claims_with(R"("iss":"https://issuer.example","aud":["other","weir-api-2"])")),
      kNow, 0, kBoth);
  EXPECT_EQ(none.error, JwtError::kWrongAudience) << none.reason;
  auto empty = keys().verify(
      hs256(kSecret, header("HS256"), claims_with(R"("iss":"https://issuer.example","aud":[])")),
      kNow, 0, kBoth);
  EXPECT_EQ(empty.error, JwtError::kWrongAudience) << empty.reason;
}

TEST_F(Jwt, WrongIssuerOrAudienceIsRefusedWithAReason) {
  auto iss = keys().verify(hs256(kSecret, header("HS256"),
                                 claims_with(R"("iss":"https://evil.example","aud":"weir-api")")),
                           kNow, 0, kBoth);
  EXPECT_EQ(iss.error, JwtError::kWrongIssuer);
  EXPECT_NE(iss.reason.find("https://evil.example"), std::string::npos) << iss.reason;
  EXPECT_EQ(iss.reason.find("issuer.example"), std::string::npos)
      << "the required issuer is not told to the client: " << iss.reason;
  EXPECT_EQ(ws::jwt_error_name(iss.error), "wrong_issuer");
  auto aud = keys().verify(hs256(kSecret, header("HS256"),
                                 claims_with(R"("iss":"https://issuer.example","aud":"weir-API")")),
                           kNow, 0, kBoth);
  EXPECT_EQ(aud.error, JwtError::kWrongAudience) << "string equality, case included";
  EXPECT_EQ(ws::jwt_error_name(aud.error), "wrong_audience");
}

TEST_F(Jwt, MissingIssuerOrAudienceIsRefusedWhenRequired) {
  auto no_iss = keys().verify(hs256(kSecret, header("HS256"), claims_with(R"("aud":"weir-api")")),
                              kNow, 0, kBoth);
  EXPECT_EQ(no_iss.error, JwtError::kWrongIssuer);
  EXPECT_NE(no_iss.reason.find("no iss"), std::string::npos) << no_iss.reason;
  auto no_aud = keys().verify(
      hs256(kSecret, header("HS256"), claims_with(R"("iss":"https://issuer.example")")), kNow, 0,
      kBoth);
  EXPECT_EQ(no_aud.error, JwtError::kWrongAudience);
  EXPECT_NE(no_aud.reason.find("no aud"), std::string::npos) << no_aud.reason;
  // Each requirement alone checks its own claim only.
  EXPECT_TRUE(keys()
                  .verify(hs256(kSecret, header("HS256"), claims_with(R"("aud":"weir-api")")), kNow,
                          0, ws::JwtRequirements{"weir-api", ""})
                  .ok());
  EXPECT_TRUE(keys()
                  .verify(hs256(kSecret, header("HS256"), claims_with(R"("iss":"i")")), kNow, 0,
                          ws::JwtRequirements{"", "i"})
                  .ok());
}

TEST_F(Jwt, RequiredIssuerOrAudienceOfTheWrongTypeIsInvalid) {
  for (const char* extra :
       {R"("iss":7,"aud":"weir-api")", R"("iss":"https://issuer.example","aud":{"a":1})",
        R"("iss":"https://issuer.example","aud":["weir-api",3])",
        R"("iss":"https://issuer.example","aud":"weir-api","aud":"x")"}) {
    auto r = keys().verify(hs256(kSecret, header("HS256"), claims_with(extra)), kNow, 0, kBoth);
    EXPECT_EQ(r.error, JwtError::kInvalidClaims) << extra << ": " << r.reason;
  }
}

TEST_F(Jwt, IssuerAndAudienceAreIgnoredWhenNotRequired) {
  for (const char* extra : {R"("iss":"anyone","aud":"anything")", R"("iss":7,"aud":{"x":[1]})",
                            R"("aud":"a","aud":"b")"}) {
    auto r = verify(hs256(kSecret, header("HS256"), claims_with(extra)));
    EXPECT_TRUE(r.ok()) << extra << ": " << r.reason;
    EXPECT_TRUE(r.claims.iss.empty() && r.claims.aud.empty()) << "not even read";
  }
}

TEST_F(Jwt, AudienceIsCheckedOnlyOnceTheSignatureVerified) {
  std::string token = hs256(kSecret, header("HS256"), claims_with(R"("aud":"elsewhere")"));
  char& c = token[token.size() - 10];  // inside the signature, all six bits used
  c = c == 'A' ? 'B' : 'A';
  EXPECT_EQ(keys().verify(token, kNow, 0, kBoth).error, JwtError::kBadSignature);
}

TEST_F(Jwt, AuthenticatorRefusesATokenForAnotherAudienceWithItsCode) {
  std::string path = write_temp("aud", kSecret);
  cluster::Authenticator auth(cluster::AuthMode::kRequired, 0, ws::JwtKeyFiles{path, {}},
                              ws::JwtRequirements{"weir-api", "https://issuer.example"});
  std::string error;
  ASSERT_TRUE(auth.reload(&error)) << error;
  auto ok = auth.verify(hs256(kSecret, header("HS256"),
                              claims_with(R"("iss":"https://issuer.example","aud":"weir-api")")),
                        kNow);
  EXPECT_TRUE(ok.ok) << ok.message;
  auto refused = auth.verify(
      hs256(kSecret, header("HS256"), claims_with(R"("iss":"https://issuer.example","aud":"x")")),
      kNow);
  EXPECT_FALSE(refused.ok);
  EXPECT_EQ(refused.code, "wrong_audience");
  EXPECT_FALSE(refused.message.empty());
  std::remove(path.c_str());
}

TEST_F(Jwt, KeyRingReloadSwapsTheWholeSet) {
  std::string path = write_temp("secret", kSecret + "\n");
  cluster::Authenticator auth(cluster::AuthMode::kRequired, 0, ws::JwtKeyFiles{path, {}});
  std::string error;
  ASSERT_TRUE(auth.reload(&error)) << error;
  std::string old_token = hs256(kSecret, header("HS256"), claims());
  EXPECT_TRUE(auth.verify(old_token, kNow).ok);
  const std::string fresh = "a-completely-different-secret-of-32-bytes-or-more";
  write_temp("secret", fresh);
  ASSERT_TRUE(auth.reload(&error)) << error;
  EXPECT_EQ(auth.verify(old_token, kNow).code, "bad_signature");
  EXPECT_TRUE(auth.verify(hs256(fresh, header("HS256"), claims()), kNow).ok);
  write_temp("secret", "short");  // a bad file keeps the keys in use
  EXPECT_FALSE(auth.reload(&error));
  EXPECT_TRUE(auth.verify(hs256(fresh, header("HS256"), claims()), kNow).ok);
  std::remove(path.c_str());
}

// ---------------------------------------------------------------- room ACL

TEST(AuthAcl, StarMatchesOneOrMoreCharactersAtTheEnd) {
  using cluster::RoomAcl;
  EXPECT_TRUE(RoomAcl::pattern_matches("chat.*", "chat.general"));
  EXPECT_TRUE(RoomAcl::pattern_matches("chat.*", "chat.eu.paris"));
  EXPECT_TRUE(RoomAcl::pattern_matches("chat.*", "chat.x"));
  EXPECT_FALSE(RoomAcl::pattern_matches("chat.*", "chat."));
  EXPECT_FALSE(RoomAcl::pattern_matches("chat.*", "chat"));
  EXPECT_FALSE(RoomAcl::pattern_matches("chat.*", "chatx.general"));
  EXPECT_TRUE(RoomAcl::pattern_matches("*", "anything"));
  EXPECT_TRUE(RoomAcl::pattern_matches("lobby", "lobby"));
  EXPECT_FALSE(RoomAcl::pattern_matches("lobby", "lobby2"));
  EXPECT_FALSE(RoomAcl::pattern_matches("lobby", "Lobby"));
}

TEST(AuthAcl, StarAnywhereButTheEndIsInvalid) {
  using cluster::RoomAcl;
  EXPECT_TRUE(RoomAcl::valid_pattern("chat.*"));
  EXPECT_TRUE(RoomAcl::valid_pattern("*"));
  EXPECT_FALSE(RoomAcl::valid_pattern(""));
  EXPECT_FALSE(RoomAcl::valid_pattern("*.general"));
  EXPECT_FALSE(RoomAcl::valid_pattern("chat.**"));
  RoomAcl acl;
  std::string error;
  EXPECT_FALSE(RoomAcl::compile({"ok"}, {"a*b"}, &acl, &error));
  EXPECT_NE(error.find("a*b"), std::string::npos);
}

TEST(AuthAcl, SubscribeAndPublishAreSeparateRights) {
  cluster::RoomAcl acl;
  std::string error;
  ASSERT_TRUE(cluster::RoomAcl::compile({"chat.*", "news"}, {"chat.general"}, &acl, &error));
  EXPECT_TRUE(acl.may_join("chat.random"));
  EXPECT_TRUE(acl.may_join("news"));
  EXPECT_FALSE(acl.may_join("admin"));
  EXPECT_TRUE(acl.may_publish("chat.general"));
  EXPECT_FALSE(acl.may_publish("chat.random"));
  EXPECT_FALSE(acl.may_publish("news"));
}

TEST(AuthAcl, NoPatternsGrantNothingAndAnonymousGetsEverything) {
  cluster::RoomAcl none;
  std::string error;
  ASSERT_TRUE(cluster::RoomAcl::compile({}, {}, &none, &error));
  EXPECT_FALSE(none.may_join("lobby"));
  EXPECT_FALSE(none.may_publish("lobby"));
  cluster::RoomAcl all = cluster::RoomAcl::allow_all();
  EXPECT_TRUE(all.may_join("lobby"));
  EXPECT_TRUE(all.may_publish("x.y"));
}

// ---------------------------------------------------------------- handshake token lookup

ws::HttpRequest upgrade_request(std::string_view target) {
  ws::HttpRequest r;
  r.set_target(target);
  r.add_header("Host", "localhost");
  return r;
}

TEST(AuthHandshake, TokenFromHeaderQueryOrSubprotocol) {
  ws::HttpRequest a = upgrade_request("/ws");
  a.add_header("Authorization", "Bearer abc.def.ghi");
  EXPECT_EQ(cluster::Authenticator::find_token(a), "abc.def.ghi");
  ws::HttpRequest q = upgrade_request("/ws?resume=x&token=t1.t2.t3");
  EXPECT_EQ(cluster::Authenticator::find_token(q), "t1.t2.t3");
  ws::HttpRequest s = upgrade_request("/ws");
  s.add_header("Sec-WebSocket-Protocol", "weir.v1, bearer.s1.s2.s3");
  EXPECT_EQ(cluster::Authenticator::find_token(s), "s1.s2.s3");
  ws::HttpRequest none = upgrade_request("/ws?tokens=x");
  none.add_header("Authorization", "Basic Zm9v");
  EXPECT_EQ(cluster::Authenticator::find_token(none), "");
}

TEST(AuthHandshake, ModesDecideWhatAMissingTokenMeans) {
  std::string path = write_temp("modes", kSecret);
  ws::JwtKeyFiles files{path, {}};
  std::string error;
  cluster::Authenticator off(cluster::AuthMode::kOff, 0, files);
  cluster::Authenticator optional(cluster::AuthMode::kOptional, 0, files);
  cluster::Authenticator required(cluster::AuthMode::kRequired, 0, files);
  ASSERT_TRUE(optional.reload(&error) && required.reload(&error)) << error;
  ws::HttpRequest bare = upgrade_request("/ws");
  EXPECT_TRUE(off.authenticate(bare, kNow).ok);
  auto anonymous = optional.authenticate(bare, kNow);
  EXPECT_TRUE(anonymous.ok);
  EXPECT_FALSE(anonymous.identity.authenticated);
  EXPECT_TRUE(anonymous.identity.acl.may_publish("any"));
  auto refused = required.authenticate(bare, kNow);
  EXPECT_FALSE(refused.ok);
  EXPECT_EQ(refused.code, "missing_token");

  ws::HttpRequest bad = upgrade_request("/ws?token=x.y.z");
  EXPECT_EQ(optional.authenticate(bad, kNow).code, "malformed") << "a bad token is never anonymous";
  ws::HttpRequest good = upgrade_request(
      "/ws?token=" +
      hs256(kSecret, header("HS256"), claims("dave", kNow + 60, 0, R"({"subscribe":["a.*"]})")));
  auto ok = required.authenticate(good, kNow);
  ASSERT_TRUE(ok.ok) << ok.message;
  EXPECT_TRUE(ok.identity.authenticated);
  EXPECT_EQ(ok.identity.sub, "dave");
  EXPECT_TRUE(ok.identity.acl.may_join("a.b"));
  EXPECT_FALSE(ok.identity.acl.may_publish("a.b"));
  ws::HttpRequest bad_pattern = upgrade_request(
      "/ws?token=" +
      hs256(kSecret, header("HS256"), claims("dave", kNow + 60, 0, R"({"subscribe":["*.b"]})")));
  EXPECT_EQ(required.authenticate(bad_pattern, kNow).code, "invalid_claims");
  std::remove(path.c_str());
}

}  // namespace
}  // namespace weir
