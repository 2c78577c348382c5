// bench/pull: pulling a ~200 MB, 5-layer image from a loopback registry
// (Debian's docker-registry on 127.0.0.1) into an empty store, with berth,
// `skopeo copy docker://... oci:...` and, when a Docker engine is installed,
// `docker pull` on a private dockerd, in the same run. The image is pushed
// by skopeo, so its layers are gzip-compressed as on a real registry.
// A fourth line, for reading the ratios: `skopeo copy docker://...
// containers-storage:...` into a private overlay store, which is what
// `podman pull` does: like berth (and docker) it unpacks every layer and
// checks its DiffID, which `skopeo copy ... oci:` does not.
// Prints seconds, ratios and berth's peak RSS, and for each tool its CPU
// time and the bytes it wrote (berth unpacks and keeps blobs; skopeo only
// stores blobs), so that a ratio can be read against the work behind it.
// Targets: berth faster than skopeo and docker; peak RSS under 30 MiB.
//
// Usage: bench_pull [--size-mb N] [--rounds N] [--keep] [--fs journal|here]
//   --fs journal (default): berth's store, skopeo's OCI dir and dockerd's
//   data on a fresh ext4 with a journal on a loop device (as
//   bench_images_load_save, but with direct I/O to the backing file, so
//   that what the pulls write is cached once, as on a disk); --fs here: on
//   this machine's disk as it is.
// Each round pulls into a new, empty directory (berth's --root, skopeo's
// oci: dir); berth, skopeo and docker take turns round by round, and each
// figure is the best of the rounds (the medians are printed beside).
// BENCH_BERTH_LOG=debug: berth's pulls log their timeline (manifest, config,
// each layer's start, download and unpack, staged, committed) to stderr.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "base/fs.h"
#include "tests/support/dockerd.h"
#include "tests/support/registry.h"
#include "tests/support/run.h"
#include "bench/support.h"

using berth::test::PrivateDockerd;
using berth::test::Result;
using berth::test::run;

namespace {

using namespace berth::bench;

bool g_keep = false;

// One pull: seconds, and from the child's rusage its peak RSS (KiB), its
// CPU time (user + system) and what it wrote to files (ru_oublock: bytes
// dirtied in the page cache or written direct, in 512-byte units), so a
// ratio can be read against the work each tool does.
struct Run {
  double seconds = 1e9;
  long rss_kib = 0;
  double cpu = 0;
  double written_mb = 0;
};

Run timed(const std::vector<std::string>& argv, const std::string& what) {
  ::sync();
  auto start = std::chrono::steady_clock::now();
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    int null = ::open("/dev/null", O_RDWR);
    ::dup2(null, 0);
    ::dup2(null, 1);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  int status = 0;
  rusage usage{};
  while (::wait4(pid, &status, 0, &usage) < 0 && errno == EINTR) {
  }
  Run r;
  r.seconds = seconds_since(start);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw std::runtime_error(what + " failed (status " + std::to_string(status) + ")");
  r.rss_kib = usage.ru_maxrss;
  auto secs = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6; };
  r.cpu = secs(usage.ru_utime) + secs(usage.ru_stime);
  r.written_mb = static_cast<double>(usage.ru_oublock) * 512 / 1e6;
  return r;
}

struct LayerSpec {
  size_t files;
  size_t file_size;
  bool random;
};

}  // namespace

static int run_bench(int argc, char** argv) {
  size_t total_mb = 200;
  int rounds = 3;
  std::string fs_mode = "journal";
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--size-mb") && i + 1 < argc) total_mb = std::strtoul(argv[++i], nullptr, 10);
    else if (!std::strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = std::max(1, std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--keep")) g_keep = true;
    else if (!std::strcmp(argv[i], "--fs") && i + 1 < argc) {
      fs_mode = argv[++i];
      if (fs_mode != "journal" && fs_mode != "here") throw std::runtime_error("--fs: journal (a fresh ext4 on a loop device, the default) or here");
    } else
      throw std::runtime_error(std::string("unknown argument ") + argv[i] +
                               " (usage: bench_pull [--size-mb N] [--rounds N] [--keep] [--fs journal|here])");
  }
  if (!berth::test::have_docker_registry()) throw std::runtime_error("docker-registry is not installed (scripts/deps test)");
  if (::access("/usr/bin/skopeo", X_OK) != 0) throw std::runtime_error("skopeo is not installed (scripts/deps test)");
  char tmpl[] = "/var/tmp/berth-bench-pull-XXXXXX";
  if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
  std::string dir = tmpl;
  remove_at_exit(dir, g_keep);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::printf("bench pull: %zu MB, 5-layer image from docker-registry on 127.0.0.1, work dir %s\n", total_mb, dir.c_str());

  // ---- the image: 5 layers, big random files and many small text files ----
  double scale = static_cast<double>(total_mb) / 200.0;
  std::vector<LayerSpec> specs = {
      {static_cast<size_t>(6 * scale) + 1, 10u << 20, true},
      {static_cast<size_t>(3000 * scale) + 1, 16u << 10, false},
      {static_cast<size_t>(150 * scale) + 1, 256u << 10, true},
      {static_cast<size_t>(4000 * scale) + 1, 4u << 10, false},
      {static_cast<size_t>(2 * scale) + 1, 8u << 20, true},
  };
  std::mt19937_64 rng(7);
  std::string archive_dir = dir + "/archive";
  berth::make_dirs(archive_dir);
  nlohmann::json diff_ids = nlohmann::json::array(), layer_names = nlohmann::json::array();
  uint64_t content = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    std::string src = dir + "/src" + std::to_string(i);
    for (size_t f = 0; f < specs[i].files; ++f) {
      std::string sub = src + "/l" + std::to_string(i) + "/d" + std::to_string(f / 500);
      if (f % 500 == 0) berth::make_dirs(sub);
      write_file(sub + "/f" + std::to_string(f), specs[i].random ? random_bytes(rng, specs[i].file_size) : text_bytes(rng, specs[i].file_size));
      content += specs[i].file_size;
    }
    std::string name = "layer" + std::to_string(i) + ".tar";
    must(run({"/bin/tar", "--numeric-owner", "-C", src, "-cf", archive_dir + "/" + name, "."}), "tar");
    diff_ids.push_back("sha256:" + run({"/usr/bin/sha256sum", archive_dir + "/" + name}).out.substr(0, 64));
    layer_names.push_back(name);
    run({"/bin/rm", "-rf", src});
  }
  nlohmann::json config = {{"architecture", "amd64"}, {"os", "linux"}, {"created", "2024-01-01T00:00:00Z"},
                           {"config", {{"Cmd", {"/bin/sh"}}}}, {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}}};
  berth::write_file_atomic(archive_dir + "/config.json", config.dump());
  berth::write_file_atomic(archive_dir + "/manifest.json",
                           nlohmann::json::array({{{"Config", "config.json"}, {"RepoTags", {"bench/pull:1"}}, {"Layers", layer_names}}}).dump());
  std::vector<std::string> tar_args{"/bin/tar", "-C", archive_dir, "-cf", dir + "/image.tar", "manifest.json", "config.json"};
  for (auto& n : layer_names) tar_args.push_back(n.get<std::string>());
  must(run(tar_args), "tar");
  run({"/bin/rm", "-rf", archive_dir});

  berth::test::RegistryServer registry;
  std::string ref = registry.address() + "/bench/pull:1";
  must(run({"/usr/bin/skopeo", "copy", "-q", "--dest-tls-verify=false", "docker-archive:" + dir + "/image.tar", "docker://" + ref}),
       "skopeo copy (push to the registry)");
  struct stat st {};
  ::stat((dir + "/image.tar").c_str(), &st);
  std::printf("image: 5 layers, %.1f MB of layer tars (%.1f MB of file content), gzip layers in the registry\n",
              static_cast<double>(st.st_size) / 1e6, static_cast<double>(content) / 1e6);

  // Where the pulls write. This VM's root is ext4 without a journal, where
  // the inode allocator skips, one buffer lookup each, every inode freed in
  // the last 60 s (360 s while its table block is dirty): a round that pulls
  // where the previous round's store was just removed paid ~0.3-1 s of
  // system time for those 7000 files (skopeo, writing 7 files, nothing),
  // and berth's ratio moved between 0.7x and 1x from run to run. So by
  // default the pulls go to a fresh ext4 with a journal, where that search
  // does not happen, and each round to a directory of its own, removed at
  // the end.
  std::string area = dir;
  if (fs_mode == "journal") {
    area = mount_fresh_ext4(dir, std::max<size_t>(4096, total_mb * 8 * static_cast<size_t>(rounds + 1)), true);
    std::printf("filesystem: a fresh ext4 with a journal on a loop device, direct I/O to its file (%s)\n", area.c_str());
  } else {
    std::printf("filesystem: this machine's own (%s)\n", dir.c_str());
  }
  std::printf("(best of %d rounds; berth, skopeo and docker take turns; each round into a new empty directory)\n", rounds);
  std::printf("load average before: %s", berth::read_file("/proc/loadavg").c_str());

  std::string berth_bin = berth::test::berth_binary();
  std::unique_ptr<PrivateDockerd> dockerd;
  std::string why = PrivateDockerd::unavailable_reason();
  if (why.empty()) {
    try {
      dockerd = std::make_unique<PrivateDockerd>(60, area);
    } catch (const std::exception& e) {
      why = std::string("the private dockerd failed to start: ") + e.what();
    }
  }
  std::string client = PrivateDockerd::docker_client();
  Run berth_pull, skopeo, skopeo_cs, docker;
  // The best round's time; the highest RSS of any round; CPU and bytes written of the best round.
  // Every round's seconds too, for the medians.
  std::map<const Run*, std::vector<double>> all;
  auto keep_best = [&all](Run& best, const Run& r) {
    all[&best].push_back(r.seconds);
    long rss = std::max(best.rss_kib, r.rss_kib);
    if (r.seconds < best.seconds) best = r;
    best.rss_kib = rss;
  };
  auto median = [&all](const Run& r) {
    std::vector<double> v = all[&r];
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  };
  for (int r = 0; r < rounds; ++r) {
    std::string n = std::to_string(r);
    // Its own --run-root: the pull runs in this process, not in a `berth serve` that may run on this machine.
    keep_best(berth_pull, timed({berth_bin, "--log-level", std::getenv("BENCH_BERTH_LOG") ? std::getenv("BENCH_BERTH_LOG") : "info", "--root", area + "/berth-root-" + n, "--run-root", area + "/berth-run-" + n, "pull", "-q", ref},
                                "berth pull"));
    keep_best(skopeo, timed({"/usr/bin/skopeo", "copy", "-q", "--src-tls-verify=false", "docker://" + ref, "oci:" + area + "/skopeo-oci-" + n + ":pull"},
                            "skopeo copy"));
    {
      // containers/storage bind-mounts its overlay directory onto itself: gone before the next round.
      std::string store = area + "/skopeo-cs-" + n;
      struct Unmount {
        std::string path;
        ~Unmount() { run({"/bin/umount", path}); }
      } unmount{store + "/root/overlay"};
      keep_best(skopeo_cs, timed({"/usr/bin/skopeo", "copy", "-q", "--src-tls-verify=false", "docker://" + ref,
                                  "containers-storage:[overlay@" + store + "/root+" + store + "/run]" + ref},
                                 "skopeo copy (containers-storage:)"));
    }
    if (dockerd) {
      dockerd->docker({"rmi", "-f", ref});
      keep_best(docker, timed({client, "--host", dockerd->docker_host(), "pull", "-q", ref}, "docker pull"));
    }
  }
  std::printf("load average after:  %s\n", berth::read_file("/proc/loadavg").c_str());
  // What each did, for reading the ratio: berth also inflates each layer,
  // hashes its tar (DiffID), creates its files and keeps the blob; skopeo
  // into oci: writes the blobs only; into containers-storage: it unpacks
  // and checks DiffIDs as berth does (and keeps no blob).
  auto line = [&median](const char* name, const Run& r) {
    std::printf("%-24s %8.2f s   (median %.2f s)   peak RSS %6.1f MiB   CPU %5.2f s   wrote %6.1f MB\n", name, r.seconds, median(r),
                r.rss_kib / 1024.0, r.cpu, r.written_mb);
  };
  // Every round, in order, so that a slow round can be told from a slow tool.
  auto rounds_line = [&all](const char* name, const Run& r) {
    std::printf("%-24s", name);
    for (double s : all[&r]) std::printf(" %.2f", s);
    std::printf("\n");
  };
  std::printf("rounds (s, in order):\n");
  rounds_line("  berth pull", berth_pull);
  rounds_line("  skopeo copy", skopeo);
  rounds_line("  skopeo (storage)", skopeo_cs);
  if (dockerd) rounds_line("  docker pull", docker);
  line("berth pull", berth_pull);
  line("skopeo copy (oci:)", skopeo);
  std::printf("%-24s %8.2fx  (target > 1x; medians %.2fx)\n", "berth vs skopeo", skopeo.seconds / berth_pull.seconds,
              median(skopeo) / median(berth_pull));
  line("skopeo copy (storage:)", skopeo_cs);
  std::printf("%-24s %8.2fx  (medians %.2fx; both unpack and check DiffIDs, as podman pull)\n", "berth vs skopeo storage",
              skopeo_cs.seconds / berth_pull.seconds, median(skopeo_cs) / median(berth_pull));
  if (dockerd) {
    std::printf("%-24s %8.2f s   (median %.2f s; client RSS not comparable: dockerd does the work)\n", "docker pull", docker.seconds,
                median(docker));
    std::printf("%-24s %8.2fx  (target > 1x; medians %.2fx)\n", "berth vs docker", docker.seconds / berth_pull.seconds,
                median(docker) / median(berth_pull));
  } else {
    std::printf("docker pull: skipped: %s\n", why.c_str());
  }
  std::printf("%-24s %8.1f MiB (target < 30 MiB)\n", "berth peak RSS", berth_pull.rss_kib / 1024.0);
  return 0;
}

int main(int argc, char** argv) {
  try {
    return run_bench(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench pull: %s\n", e.what());
    return 1;
  }
}
