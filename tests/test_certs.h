// tests/test_certs.h — a throwaway PKI made at test time with the OpenSSL API (nothing to
// install, nothing checked in): a CA, and leaf certificates it signs that serve as TLS server
// and client certificates both (as a cluster node's does), written as PEM files into a fresh
// temporary directory that is removed with the object.
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <string>

namespace weir::test_certs {

class TempDir {
 public:
  TempDir() {
    char dir[] = "/tmp/weir-certs-XXXXXX";
    if (::mkdtemp(dir)) path_ = dir;
  }
  ~TempDir() {
    if (!path_.empty()) std::filesystem::remove_all(path_);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

class CertificateAuthority {
 public:
  // A fresh EC P-256 key and a self-signed CA certificate for CN=`name`.
  explicit CertificateAuthority(const char* name) {
    key_ = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
    cert_ = X509_new();
    ok_ = key_ && cert_ && fill(cert_, key_, name, 1, nullptr) &&
          extend(cert_, cert_, NID_basic_constraints, "critical,CA:TRUE") &&
          extend(cert_, cert_, NID_key_usage, "critical,keyCertSign,cRLSign") &&
          extend(cert_, cert_, NID_subject_key_identifier, "hash") &&
          X509_sign(cert_, key_, EVP_sha256()) > 0;
  }
  ~CertificateAuthority() {
    X509_free(cert_);
    EVP_PKEY_free(key_);
  }
  CertificateAuthority(const CertificateAuthority&) = delete;
  CertificateAuthority& operator=(const CertificateAuthority&) = delete;

  bool ok() const { return ok_; }
  bool write_certificate(const std::string& path) const {
    return write_pem(path, [&](FILE* f) { return PEM_write_X509(f, cert_); });
  }
  // A leaf for CN=`name` signed by this CA (EKU serverAuth and clientAuth), with its key.
  bool issue(const std::string& cert_path, const std::string& key_path, const char* name,
             long serial) const {
    EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
    X509* cert = X509_new();
    bool ok = ok_ && key && cert && fill(cert, key, name, serial, cert_) &&
              extend(cert, cert_, NID_basic_constraints, "critical,CA:FALSE") &&
              extend(cert, cert_, NID_key_usage, "critical,digitalSignature") &&
              extend(cert, cert_, NID_ext_key_usage, "serverAuth,clientAuth") &&
              extend(cert, cert_, NID_subject_key_identifier, "hash") &&
              extend(cert, cert_, NID_authority_key_identifier, "keyid") &&
              X509_sign(cert, key_, EVP_sha256()) > 0;
    ok = ok && write_pem(key_path, [&](FILE* f) {
           return PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
         });
    ok = ok && write_pem(cert_path, [&](FILE* f) { return PEM_write_X509(f, cert); });
    X509_free(cert);
    EVP_PKEY_free(key);
    return ok;
  }

 private:
  // Subject, validity, key; the issuer is `issuer`'s subject (or our own: self-signed).
  static bool fill(X509* cert, EVP_PKEY* key, const char* name, long serial, X509* issuer) {
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), serial);
    X509_gmtime_adj(X509_getm_notBefore(cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert), 24 * 3600);
    X509_set_pubkey(cert, key);
    X509_NAME* subject = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(name), -1, -1, 0);
    return X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : subject) == 1;
  }
  static bool extend(X509* cert, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value);
    bool ok = ext && X509_add_ext(cert, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok;
  }
  template <typename WriteFn>
  static bool write_pem(const std::string& path, WriteFn write) {
    FILE* f = std::fopen(path.c_str(), "w");
    if (!f) return false;
    bool ok = write(f) == 1;
    return std::fclose(f) == 0 && ok;
  }

  EVP_PKEY* key_ = nullptr;
  X509* cert_ = nullptr;
  bool ok_ = false;
};

}  // namespace weir::test_certs
