// Image reference parsing and normalization, docker's rules.
#include <gtest/gtest.h>

#include "base/error.h"
#include "images/reference.h"

using berth::images::parse_reference;
using berth::images::parse_reference_no_default;

TEST(ImagesReference, OfficialImageGetsDomainLibraryAndLatest) {
  auto r = parse_reference("busybox");
  EXPECT_EQ(r.domain, "docker.io");
  EXPECT_EQ(r.path, "library/busybox");
  EXPECT_EQ(r.tag, "latest");
  EXPECT_EQ(r.full(), "docker.io/library/busybox:latest");
  EXPECT_EQ(r.familiar(), "busybox:latest");
  EXPECT_EQ(r.familiar_repository(), "busybox");
}

TEST(ImagesReference, UserRepositoryAndTag) {
  auto r = parse_reference("me/app:1.2");
  EXPECT_EQ(r.full(), "docker.io/me/app:1.2");
  EXPECT_EQ(r.familiar(), "me/app:1.2");
}

TEST(ImagesReference, RegistryWithPortIsNotATag) {
  auto r = parse_reference("host:5000/a/b");
  EXPECT_EQ(r.domain, "host:5000");
  EXPECT_EQ(r.path, "a/b");
  EXPECT_EQ(r.tag, "latest");
  EXPECT_EQ(r.familiar(), "host:5000/a/b:latest");
  EXPECT_EQ(parse_reference("host:5000/a/b:v2").tag, "v2");
  EXPECT_EQ(parse_reference("localhost/x").domain, "localhost");
  EXPECT_EQ(parse_reference("index.docker.io/library/alpine").familiar(), "alpine:latest");
  EXPECT_EQ(parse_reference("docker.io/library/alpine:3").familiar(), "alpine:3");
}

TEST(ImagesReference, DigestReference) {
  std::string digest = "sha256:" + std::string(64, 'a');
  auto r = parse_reference("host:5000/a/b@" + digest);
  EXPECT_EQ(r.digest, digest);
  EXPECT_TRUE(r.tag.empty());
  EXPECT_EQ(r.full(), "host:5000/a/b@" + digest);
  auto both = parse_reference("busybox:1@" + digest);
  EXPECT_EQ(both.tag, "1");
  EXPECT_EQ(both.digest, digest);
  EXPECT_TRUE(parse_reference_no_default("busybox").tag.empty());
}

TEST(ImagesReference, BadReferencesExplainThemselves) {
  auto expect_error = [](const std::string& text, const std::string& needle) {
    try {
      parse_reference(text);
      ADD_FAILURE() << text << " was accepted";
    } catch (const berth::Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << text << ": " << e.what();
    }
  };
  expect_error("", "empty");
  expect_error("BusyBox", "lowercase");
  expect_error("busybox:", "tag");
  expect_error("busybox:-x", "tag");
  expect_error("busybox@sha256:abc", "digest");
  expect_error("a//b", "component");
  expect_error("a/-b", "component");
  expect_error("a/b_", "component");
  expect_error(":tag", "missing repository");
  expect_error("a b", "component");
}

TEST(ImagesReference, SeparatorsInComponents) {
  EXPECT_NO_THROW(parse_reference("me/a.b_c__d-e---f"));
  EXPECT_THROW(parse_reference("a___b"), berth::Error);
  EXPECT_THROW(parse_reference("a..b"), berth::Error);
}
