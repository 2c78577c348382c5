// Volumes through the binary: `berth volume create/ls/inspect/rm/prune`
// with docker's output and errors, and volumes in containers (-v NAME:/dst,
// -v /dst, --mount, an image's VOLUME): data that outlives containers,
// copy-up of the image's content, nocopy, read-only, and which volumes go
// with their container (anonymous ones with rm -v and --rm, named never).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "tests/integration/container_fixture.h"

namespace berth::test {
namespace {

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

bool is_hex64(const std::string& s) { return std::regex_match(s, std::regex("^[0-9a-f]{64}$")); }

class VolumeTest : public ContainerTest {
 protected:
  void SetUp() override {
    ContainerTest::SetUp();
    if (IsSkipped()) return;
    tar_ = tmp_.path() + "/busybox.tar";
    make_busybox_tar(tar_);
    auto r = berth({"import", tar_, "busybox:latest"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  // Names of the volumes `volume ls -q` lists.
  std::vector<std::string> volumes() { return lines(berth({"volume", "ls", "-q"}).out); }
  bool has_volume(const std::string& name) {
    auto v = volumes();
    return std::find(v.begin(), v.end(), name) != v.end();
  }
  // The entries under <root>/volumes other than the store's lock.
  std::vector<std::string> volume_dirs() {
    std::vector<std::string> out;
    if (DIR* d = ::opendir((root_ + "/volumes").c_str())) {
      while (auto* e = ::readdir(d))
        if (std::string n = e->d_name; n != "." && n != ".." && n != ".lock") out.push_back(n);
      ::closedir(d);
    }
    return out;
  }
  std::string data_dir(const std::string& name) { return root_ + "/volumes/" + name + "/_data"; }

  // `berth run --network none FLAGS... busybox CMD...`
  Result run_image(std::vector<std::string> flags, std::vector<std::string> cmd, const std::string& image = "busybox") {
    std::vector<std::string> args{"run", "--network", "none"};
    args.insert(args.end(), flags.begin(), flags.end());
    args.push_back(image);
    args.insert(args.end(), cmd.begin(), cmd.end());
    return berth(args);
  }

  std::string create_container(std::vector<std::string> flags) {
    std::vector<std::string> args{"create", "--network", "none"};
    args.insert(args.end(), flags.begin(), flags.end());
    args.insert(args.end(), {"busybox", "true"});
    auto r = berth(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return trim(r.out);
  }

  // The volume names of a container's Mounts, by destination.
  std::map<std::string, std::string> mounted_volumes(const std::string& id) {
    std::map<std::string, std::string> out;
    auto j = inspect(id);
    for (auto& m : j["Mounts"])
      if (m["Type"] == "volume") out[m["Destination"]] = m["Name"];
    return out;
  }

  std::string tar_;
};

TEST_F(VolumeTest, CreateIsIdempotentAndListsAsDocker) {
  // Names without hex letters, so that no name filter matches the random one.
  auto r = berth({"volume", "create", "store"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "store\n");
  ASSERT_TRUE(is_directory(data_dir("store")));
  // Writing into it, then creating it again, returns the same volume untouched.
  write_file_atomic(data_dir("store") + "/kept", "x");
  r = berth({"volume", "create", "--name", "store"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "store\n");
  EXPECT_TRUE(path_exists(data_dir("store") + "/kept"));

  r = berth({"volume", "create", "--label", "tier=pg", "--label", "owner=me", "pg-store"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = berth({"volume", "create"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string random = trim(r.out);
  EXPECT_TRUE(is_hex64(random)) << random;

  r = berth({"volume", "ls"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "DRIVER    VOLUME NAME\n"
                   "local     " + random + "\n"
                   "local     pg-store\n"
                   "local     store\n");
  r = berth({"volume", "ls", "-q"});
  EXPECT_EQ(r.out, random + "\npg-store\nstore\n");

  // Filters: same key ORs, different keys AND.
  EXPECT_EQ(berth({"volume", "ls", "-q", "--filter", "label=tier"}).out, "pg-store\n");
  EXPECT_EQ(berth({"volume", "ls", "-q", "--filter", "label=tier=pg"}).out, "pg-store\n");
  EXPECT_EQ(berth({"volume", "ls", "-q", "--filter", "label=tier=web"}).out, "");
  EXPECT_EQ(berth({"volume", "ls", "-q", "-f", "name=stor"}).out, "pg-store\nstore\n");
  EXPECT_EQ(berth({"volume", "ls", "-q", "-f", "name=pg", "-f", "name=" + random.substr(0, 8)}).out,
            random + "\npg-store\n");
  EXPECT_EQ(berth({"volume", "ls", "-q", "-f", "name=stor", "-f", "label=owner=me"}).out, "pg-store\n");
  EXPECT_EQ(berth({"volume", "ls", "-q", "-f", "driver=local", "-f", "name=pg"}).out, "pg-store\n");
  EXPECT_EQ(berth({"volume", "ls", "-q", "-f", "driver=other"}).out, "");

  // --format: a template, json, and a table with docker's headers.
  r = berth({"volume", "ls", "--format", "{{.Name}} {{.Driver}} {{.Labels}} {{.Scope}}", "-f", "name=pg"});
  EXPECT_EQ(r.out, "pg-store local owner=me,tier=pg local\n");
  r = berth({"volume", "ls", "--format", "json", "-f", "name=pg"});
  auto j = nlohmann::json::parse(trim(r.out), nullptr, false);
  ASSERT_TRUE(j.is_object()) << r.out;
  EXPECT_EQ(j["Name"], "pg-store");
  EXPECT_EQ(j["Mountpoint"], data_dir("pg-store"));
  EXPECT_EQ(j["Labels"], "owner=me,tier=pg");
  r = berth({"volume", "ls", "--format", "table {{.Name}}\\t{{.Driver}}", "-f", "name=stor"});
  EXPECT_EQ(r.out, "VOLUME NAME   DRIVER\npg-store      local\nstore         local\n");

  // Bad filters fail with docker's words, exit 1.
  r = berth({"volume", "ls", "-f", "bogus=1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("Invalid filter 'bogus'"), std::string::npos) << r.err;
  r = berth({"volume", "ls", "-f", "dangling=maybe"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("Invalid filter 'dangling=[maybe]'"), std::string::npos) << r.err;
  r = berth({"volume", "ls", "-f", "nofilter"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("bad format of filter (expected name=value)"), std::string::npos) << r.err;
}

TEST_F(VolumeTest, InspectShowsDockersFields) {
  ASSERT_EQ(berth({"volume", "create", "plain"}).exit_code, 0);
  ASSERT_EQ(berth({"volume", "create", "--label", "a=b", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o",
                   "o=size=1m", "opts"})
                .exit_code,
            0);
  auto r = berth({"volume", "inspect", "plain", "opts"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_TRUE(j.is_array() && j.size() == 2) << r.out;
  EXPECT_EQ(j[0]["Name"], "plain");
  EXPECT_EQ(j[0]["Driver"], "local");
  EXPECT_TRUE(j[0]["Labels"].is_null());
  EXPECT_TRUE(j[0]["Options"].is_null());
  EXPECT_EQ(j[0]["Scope"], "local");
  EXPECT_EQ(j[0]["Mountpoint"], data_dir("plain"));
  EXPECT_TRUE(std::regex_match(j[0]["CreatedAt"].get<std::string>(),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d))")))
      << j[0]["CreatedAt"];
  EXPECT_EQ(j[1]["Labels"], (nlohmann::json{{"a", "b"}}));
  EXPECT_EQ(j[1]["Options"], (nlohmann::json{{"device", "tmpfs"}, {"o", "size=1m"}, {"type", "tmpfs"}}));
  // Docker's indentation of four.
  EXPECT_NE(r.out.find("\n    {\n        \"CreatedAt\""), std::string::npos) << r.out;

  r = berth({"volume", "inspect", "-f", "{{.Name}}:{{.Mountpoint}}", "plain"});
  EXPECT_EQ(r.out, "plain:" + data_dir("plain") + "\n");

  // Missing: what exists is still printed, the error names the volume, exit 1.
  r = berth({"volume", "inspect", "plain", "nosuch"});
  EXPECT_EQ(r.exit_code, 1);
  j = nlohmann::json::parse(r.out, nullptr, false);
  EXPECT_TRUE(j.is_array() && j.size() == 1) << r.out;
  EXPECT_NE(r.err.find("get nosuch: no such volume"), std::string::npos) << r.err;
  r = berth({"volume", "inspect", "nosuch"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "[]\n");
}

TEST_F(VolumeTest, BadCreateFailsClearlyAndMakesNothing) {
  struct Case {
    std::vector<std::string> args;
    std::string error;
  } cases[] = {
      {{"bad/name"},
       "create bad/name: \"bad/name\" includes invalid characters for a local volume name, only "
       "\"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"},
      {{"-x"}, ""},  // an unknown flag: a usage error
      {{"a"}, "create a: volume name is too short, names should be at least two alphanumeric characters"},
      {{"-o", "foo=bar", "x1"}, "create x1: invalid option: \"foo\""},
      {{"-o", "type=tmpfs", "x3"}, "create x3: missing required option: \"device\""},
      {{"-o", "device=tmpfs", "x4"}, "create x4: missing required option: \"type\""},
      {{"-d", "nodriver", "x2"}, "create x2: error looking up volume plugin nodriver: plugin \"nodriver\" not found"},
      {{"--name", "one", "two"}, "conflicting options: either specify --name or provide positional arg, not both"},
  };
  for (auto& c : cases) {
    std::vector<std::string> args{"volume", "create"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    auto r = berth(args);
    EXPECT_NE(r.exit_code, 0) << c.args[0];
    if (!c.error.empty()) {
      EXPECT_EQ(r.exit_code, 1) << c.args[0];
      EXPECT_NE(r.err.find(c.error), std::string::npos) << r.err;
    }
  }
  EXPECT_EQ(volume_dirs(), std::vector<std::string>{});
  EXPECT_EQ(berth({"volume", "ls", "-q"}).out, "");
}

TEST_F(VolumeTest, DataPersistsAcrossContainers) {
  auto r = run_image({"--rm", "-v", "keep:/data"}, {"sh", "-c", "echo hello > /data/file; mkdir /data/dir"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Created on first use, and named volumes survive --rm.
  EXPECT_TRUE(has_volume("keep"));
  std::string text;
  ASSERT_TRUE(read_file_if_exists(data_dir("keep") + "/file", text));
  EXPECT_EQ(text, "hello\n");
  r = run_image({"--rm", "--mount", "type=volume,source=keep,target=/other"}, {"cat", "/other/file"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "hello\n");
  // Two running containers share the volume.
  std::string a = trim(run_image({"-d", "-v", "keep:/data"}, {"sleep", "30"}).out);
  ASSERT_FALSE(a.empty());
  r = run_image({"--rm", "-v", "keep:/data"}, {"sh", "-c", "echo second >> /data/file"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = berth({"exec", a, "cat", "/data/file"});
  EXPECT_EQ(r.out, "hello\nsecond\n");
  EXPECT_EQ(berth({"rm", "-f", "-v", a}).exit_code, 0);
  EXPECT_TRUE(has_volume("keep")) << "rm -v removed a named volume";
}

TEST_F(VolumeTest, RemovingAVolumeInUseIsRefused) {
  std::string id = create_container({"-v", "busy:/data"});
  ASSERT_TRUE(has_volume("busy"));
  // In use by a container in any state, created included.
  auto r = berth({"volume", "rm", "busy"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "Error response from daemon: remove busy: volume is in use - [" + id + "]\n");
  EXPECT_TRUE(is_directory(data_dir("busy")));
  EXPECT_EQ(berth({"volume", "ls", "-q", "-f", "dangling=false"}).out, "busy\n");
  EXPECT_EQ(berth({"volume", "ls", "-q", "-f", "dangling=true"}).out, "");
  // Nor does prune -a touch it.
  r = berth({"volume", "prune", "-a", "-f"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(has_volume("busy"));

  // Several names: each is tried, the missing one reported, exit 1.
  ASSERT_EQ(berth({"volume", "create", "free"}).exit_code, 0);
  r = berth({"volume", "rm", "free", "nosuch", "busy"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "free\n");
  EXPECT_NE(r.err.find("get nosuch: no such volume"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("remove busy: volume is in use"), std::string::npos) << r.err;
  EXPECT_FALSE(has_volume("free"));
  r = berth({"volume", "rm", "-f", "nosuch"});
  EXPECT_EQ(r.exit_code, 0) << r.err;

  ASSERT_EQ(berth({"rm", id}).exit_code, 0);
  r = berth({"volume", "rm", "busy"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "busy\n");
  EXPECT_EQ(volume_dirs(), std::vector<std::string>{});
}

TEST_F(VolumeTest, EmptyVolumeGetsTheImagesContent) {
  // /etc of the image (passwd, group) is copied into the new volume, with
  // the directory's owner and mode; the generated hosts file still shows.
  auto r = run_image({"--rm", "-v", "etc:/etc"}, {"sh", "-c", "cat /etc/passwd; echo ---; cat /etc/hosts"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("root:x:0:0:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("---\n127.0.0.1\tlocalhost"), std::string::npos) << r.out;
  std::string passwd;
  ASSERT_TRUE(read_file_if_exists(data_dir("etc") + "/passwd", passwd));
  std::string image_passwd;
  read_file_if_exists(rootfs_ + "/etc/passwd", image_passwd);
  EXPECT_EQ(passwd, image_passwd);
  struct stat st {};
  ASSERT_EQ(::stat(data_dir("etc").c_str(), &st), 0);
  struct stat img {};
  ASSERT_EQ(::stat((rootfs_ + "/etc").c_str(), &img), 0);
  EXPECT_EQ(st.st_mode & 07777, img.st_mode & 07777);

  // A volume that has content is not copied into again: a change made in
  // it stays, and a file the image has but the volume lost stays lost.
  r = run_image({"--rm", "-v", "etc:/etc"}, {"sh", "-c", "rm /etc/group; echo changed > /etc/passwd"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_image({"--rm", "-v", "etc:/etc"}, {"sh", "-c", "cat /etc/passwd; ls /etc"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("changed\n", 0), 0u) << r.out;
  EXPECT_EQ(r.out.find("group"), std::string::npos) << r.out;

  // An image directory that is empty or missing gives an empty volume.
  r = run_image({"--rm", "-v", "fresh:/nothing/here"}, {"ls", "-A", "/nothing/here"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST_F(VolumeTest, NocopyLeavesTheVolumeEmpty) {
  auto r = run_image({"--rm", "-v", "nc:/etc:nocopy"}, {"ls", "/etc"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find("passwd"), std::string::npos) << r.out;
  EXPECT_FALSE(path_exists(data_dir("nc") + "/passwd"));
  r = run_image({"--rm", "--mount", "type=volume,src=nc2,dst=/etc,volume-nocopy"}, {"ls", "/etc"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find("passwd"), std::string::npos) << r.out;
  EXPECT_FALSE(path_exists(data_dir("nc2") + "/passwd"));
  // Without nocopy the same mount does copy (the test above is not vacuous).
  r = run_image({"--rm", "--mount", "type=volume,src=nc3,dst=/etc"}, {"ls", "/etc"});
  EXPECT_NE(r.out.find("passwd"), std::string::npos) << r.out;
}

TEST_F(VolumeTest, ReadOnlyVolumes) {
  ASSERT_EQ(run_image({"--rm", "-v", "ro:/data"}, {"sh", "-c", "echo x > /data/f"}).exit_code, 0);
  for (auto flags : std::vector<std::vector<std::string>>{{"-v", "ro:/data:ro"},
                                                          {"--mount", "type=volume,src=ro,dst=/data,readonly"},
                                                          {"--mount", "src=ro,target=/data,ro=true"}}) {
    flags.insert(flags.begin(), "--rm");
    auto r = run_image(flags, {"sh", "-c", "cat /data/f && echo y > /data/g"});
    EXPECT_NE(r.exit_code, 0) << flags[2];
    EXPECT_EQ(r.out, "x\n");
    EXPECT_NE(r.err.find("Read-only file system"), std::string::npos) << r.err;
  }
  EXPECT_FALSE(path_exists(data_dir("ro") + "/g"));
  // And inspect says so, as docker.
  std::string id = create_container({"-v", "ro:/data:ro", "-v", "rw:/rw"});
  auto j = inspect(id);
  bool saw_ro = false, saw_rw = false;
  for (auto& m : j["Mounts"]) {
    if (m["Destination"] == "/data") {
      saw_ro = true;
      EXPECT_EQ(m["RW"], false);
      EXPECT_EQ(m["Mode"], "ro");
      EXPECT_EQ(m["Name"], "ro");
      EXPECT_EQ(m["Source"], data_dir("ro"));
    }
    if (m["Destination"] == "/rw") {
      saw_rw = true;
      EXPECT_EQ(m["RW"], true);
    }
  }
  EXPECT_TRUE(saw_ro && saw_rw) << j["Mounts"].dump();
}

TEST_F(VolumeTest, AnonymousVolumesGoWithRmVAndRunRm) {
  // -v /dst: a new 64-hex volume per container, labelled as docker labels it.
  std::string id = create_container({"-v", "/anon", "-v", "named:/named"});
  auto mv = mounted_volumes(id);
  ASSERT_EQ(mv.size(), 2u) << inspect(id)["Mounts"].dump();
  std::string anon = mv["/anon"];
  EXPECT_TRUE(is_hex64(anon)) << anon;
  EXPECT_EQ(mv["/named"], "named");
  auto r = berth({"volume", "inspect", "-f", "{{json .Labels}}", anon});
  EXPECT_EQ(trim(r.out), "{\"com.docker.volume.anonymous\":\"\"}");
  // Plain rm keeps both.
  ASSERT_EQ(berth({"rm", id}).exit_code, 0);
  EXPECT_TRUE(has_volume(anon));
  EXPECT_TRUE(has_volume("named"));

  // rm -v removes the anonymous one only.
  id = create_container({"-v", "/anon", "-v", "named:/named"});
  std::string anon2 = mounted_volumes(id)["/anon"];
  ASSERT_TRUE(is_hex64(anon2));
  EXPECT_NE(anon2, anon);
  r = berth({"rm", "-v", id});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(has_volume(anon2));
  EXPECT_FALSE(path_exists(root_ + "/volumes/" + anon2));
  EXPECT_TRUE(has_volume("named"));

  // run --rm: the monitor removes the anonymous volumes with the container.
  auto before = volumes();
  r = run_image({"--rm", "-v", "/scratch", "-v", "named:/named"}, {"sh", "-c", "echo x > /scratch/f"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(eventually([&] { return volumes() == before; })) << "left: " << berth({"volume", "ls", "-q"}).out;
  // Detached too, after the CLI is gone.
  std::string d = trim(run_image({"-d", "--rm", "-v", "/scratch"}, {"sleep", "0.3"}).out);
  ASSERT_FALSE(d.empty());
  EXPECT_TRUE(eventually([&] { return container_dirs().empty() && volumes() == before; }))
      << "left: " << berth({"volume", "ls", "-q"}).out;

  // An anonymous volume that another container mounts stays.
  id = create_container({"-v", "/shared"});
  std::string shared = mounted_volumes(id)["/shared"];
  std::string other = create_container({"-v", shared + ":/x"});
  ASSERT_EQ(berth({"rm", "-v", id}).exit_code, 0);
  EXPECT_TRUE(has_volume(shared));
  ASSERT_EQ(berth({"rm", "-v", other}).exit_code, 0);
  EXPECT_FALSE(has_volume(shared));
}

TEST_F(VolumeTest, PruneRemovesUnusedAnonymousVolumesUnlessAll) {
  std::string user = create_container({"-v", "/used", "-v", "named-used:/n"});
  std::string used = mounted_volumes(user)["/used"];
  std::string dropped = create_container({"-v", "/free"});
  std::string free_anon = mounted_volumes(dropped)["/free"];
  ASSERT_EQ(berth({"rm", dropped}).exit_code, 0);
  ASSERT_EQ(berth({"volume", "create", "--label", "keep=yes", "named-keep"}).exit_code, 0);
  ASSERT_EQ(berth({"volume", "create", "named-free"}).exit_code, 0);
  write_file_atomic(data_dir(free_anon) + "/f", std::string(1500, 'x'));

  // Without -f it asks; anything but y keeps everything.
  auto r = berth({"volume", "prune"}, "n\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("WARNING! This will remove anonymous local volumes not used by at least one container."),
            std::string::npos)
      << r.out;
  EXPECT_TRUE(has_volume(free_anon));

  // Default: unused anonymous volumes only.
  r = berth({"volume", "prune", "-f"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Deleted Volumes:\n" + free_anon + "\n\nTotal reclaimed space: 1.5kB\n");
  EXPECT_FALSE(has_volume(free_anon));
  EXPECT_TRUE(has_volume(used));
  EXPECT_TRUE(has_volume("named-free"));

  // Label filters select among the rest; -a takes named ones too.
  r = berth({"volume", "prune", "-f", "-a", "--filter", "label!=keep"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Deleted Volumes:\nnamed-free\n\nTotal reclaimed space: 0B\n");
  r = berth({"volume", "prune", "-f", "--filter", "all=true", "--filter", "label=keep=yes"});
  EXPECT_EQ(r.out, "Deleted Volumes:\nnamed-keep\n\nTotal reclaimed space: 0B\n");
  r = berth({"volume", "prune", "-f", "-a"});
  EXPECT_EQ(r.out, "Total reclaimed space: 0B\n");
  auto left = volumes();
  std::sort(left.begin(), left.end());
  std::vector<std::string> want{used, "named-used"};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(left, want);
  r = berth({"volume", "prune", "-f", "--filter", "until=1h"});
  EXPECT_EQ(r.exit_code, 1);
}

TEST_F(VolumeTest, ImageVolumesBecomeAnonymousVolumes) {
  auto r = berth({"import", "--change", "VOLUME /data /etc", tar_, "withvol:latest"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string id = trim(berth({"create", "--network", "none", "withvol", "ls", "/etc"}).out);
  auto mv = mounted_volumes(id);
  ASSERT_EQ(mv.size(), 2u) << inspect(id)["Mounts"].dump();
  EXPECT_TRUE(is_hex64(mv["/data"]));
  EXPECT_TRUE(is_hex64(mv["/etc"]));
  // Copied up from the image like any empty volume.
  r = berth({"start", "-a", id});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("passwd"), std::string::npos) << r.out;
  EXPECT_TRUE(path_exists(data_dir(mv["/etc"]) + "/passwd"));
  // A -v on the same path takes the image volume's place.
  id = trim(berth({"create", "--network", "none", "-v", "mine:/data", "withvol", "true"}).out);
  mv = mounted_volumes(id);
  EXPECT_EQ(mv["/data"], "mine");
  EXPECT_TRUE(is_hex64(mv["/etc"]));
  // --rm takes the image's volumes with it.
  auto before = volumes();
  r = run_image({"--rm"}, {"true"}, "withvol");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(eventually([&] { return volumes() == before; }));
}

TEST_F(VolumeTest, BadVolumeFlagsFailWith125AndLeaveNothing) {
  struct Case {
    std::vector<std::string> flags;
    std::string error;
  } cases[] = {
      {{"-v", "foo:/data:xyz"}, "invalid mode: xyz"},
      {{"-v", "foo:data"},
       "invalid volume specification: 'foo:data': invalid mount config for type \"volume\": invalid mount path: "
       "'data' mount path must be absolute"},
      {{"-v", "foo:/"},
       "invalid volume specification: 'foo:/': invalid mount config for type \"volume\": invalid specification: "
       "destination can't be '/'"},
      {{"-v", ":::"}, "invalid spec: :::: empty section between colons"},
      {{"-v", "a:b:c:d"}, "invalid volume specification: 'a:b:c:d'"},
      {{"-v", "bad$name:/x"}, "\"bad$name\" includes invalid characters for a local volume name"},
      {{"--mount", "type=volume,src=foo"}, "invalid argument \"type=volume,src=foo\" for \"--mount\" flag: target is required"},
      {{"--mount", "type=bind,src=/nonexistent-berth,dst=/x"},
       "invalid mount config for type \"bind\": bind source path does not exist: /nonexistent-berth"},
      {{"--mount", "type=foo,dst=/x"}, "invalid mount config for type \"foo\": mount type unknown"},
      {{"--mount", "type=volume,dst=/x,bogus=1"}, "unexpected key 'bogus' in 'bogus=1'"},
      {{"--mount", "type=bind,src=/tmp,dst=/x,volume-nocopy"}, "volume-nocopy is only valid for type=volume"},
      {{"-v", "dup:/x", "-v", "/x"}, "Duplicate mount point: /x"},
  };
  for (auto& c : cases) {
    auto r = run_image(c.flags, {"true"});
    EXPECT_EQ(r.exit_code, 125) << c.flags[1] << ": " << r.err;
    EXPECT_NE(r.err.find(c.error), std::string::npos) << c.flags[1] << ": " << r.err;
  }
  EXPECT_EQ(container_dirs(), std::vector<std::string>{});
  EXPECT_EQ(volume_dirs(), std::vector<std::string>{});
}

}  // namespace
}  // namespace berth::test
