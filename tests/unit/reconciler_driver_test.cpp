// The real driver's pure half: a compose service plus an image config
// become a runtime::ContainerSpec and a network request, with compose's
// merge rules. (tests/integration/network_compose_test.cpp runs them.)
#include <gtest/gtest.h>

#include "reconciler/driver.h"
#include "reconciler/reconciler.h"
#include "spec/spec.h"

namespace berth::reconciler {
namespace {

ContainerSpec container_of(const std::string& yaml, const std::string& service, int number = 1) {
  spec::LoadOptions o;
  o.project_name = "app";
  o.project_directory = "/srv/app";
  spec::Project p = spec::load_project_from_string(yaml, o, "/srv/app/compose.yaml");
  DesiredState d = desired_state(p);
  return d.services.at(service).containers.at(static_cast<std::size_t>(number - 1));
}

ImageRootfs image(nlohmann::json config = nlohmann::json::object()) {
  return ImageRootfs{"busybox", "sha256:" + std::string(64, 'a'), {"/layers/1"}, std::move(config)};
}

TEST(RuntimeSpec, CommandAndEntrypointFollowCompose) {
  auto img = image({{"Entrypoint", {"/ep"}}, {"Cmd", {"default"}}});
  auto plain = runtime_spec(container_of("services: {web: {image: busybox}}", "web"), img);
  EXPECT_EQ(plain.process.args, (std::vector<std::string>{"/ep", "default"}));
  auto cmd = runtime_spec(container_of("services: {web: {image: busybox, command: [a, b]}}", "web"), img);
  EXPECT_EQ(cmd.process.args, (std::vector<std::string>{"/ep", "a", "b"}));
  // A new entrypoint drops the image's Cmd.
  auto ep = runtime_spec(container_of("services: {web: {image: busybox, entrypoint: [sh, -c]}}", "web"), img);
  EXPECT_EQ(ep.process.args, (std::vector<std::string>{"sh", "-c"}));
  EXPECT_THROW(runtime_spec(container_of("services: {web: {image: busybox}}", "web"), image()), Error);
}

TEST(RuntimeSpec, EnvironmentLabelsUserAndWorkdirOverTheImage) {
  auto img = image({{"Cmd", {"sh"}},
                    {"Env", {"PATH=/bin", "A=image"}},
                    {"WorkingDir", "/img"},
                    {"User", "daemon"},
                    {"Labels", {{"from", "image"}, {"tier", "image"}}}});
  auto s = runtime_spec(container_of(R"(services:
  web:
    image: busybox
    environment: {A: svc, B: "2"}
    working_dir: /w
    labels: {tier: front}
)",
                                     "web"),
                        img);
  EXPECT_EQ(s.process.env, (std::vector<std::string>{"PATH=/bin", "A=svc", "B=2"}));
  EXPECT_EQ(s.process.cwd, "/w");
  EXPECT_EQ(s.process.user, "daemon");
  EXPECT_EQ(s.labels.at("from"), "image");
  EXPECT_EQ(s.labels.at("tier"), "front");
  EXPECT_EQ(s.labels.at("com.docker.compose.project"), "app");
  EXPECT_EQ(s.labels.at("com.docker.compose.service"), "web");
  EXPECT_EQ(s.annotations.at(kImageIdAnnotation), img.id);
  EXPECT_EQ(s.name, "app-web-1");
}

TEST(RuntimeSpec, MountsLimitsSecurityAndPolicies) {
  auto s = runtime_spec(container_of(R"(services:
  db:
    image: busybox
    command: [sleep, "1"]
    volumes: ["data:/data:ro", "/tmp:/host", {type: tmpfs, target: /t, tmpfs: {size: 1m}}, "/anon"]
    tmpfs: ["/run:size=64k"]
    read_only: true
    cap_add: [NET_ADMIN]
    cap_drop: [ALL]
    security_opt: ["no-new-privileges:true"]
    ulimits: {nofile: {soft: 100, hard: 200}, nproc: 50}
    shm_size: 8m
    stop_signal: SIGINT
    stop_grace_period: 3s
    pids_limit: 20
    deploy:
      resources: {limits: {cpus: "0.5", memory: 64m}}
      restart_policy: {condition: on-failure, max_attempts: 3}
    logging: {driver: json-file, options: {max-size: 1k, max-file: "2"}}
    healthcheck: {test: ["CMD", "true"], interval: 2s, retries: 5}
volumes:
  data: {}
)",
                                     "db"),
                        image({{"Healthcheck", {{"Test", {"CMD-SHELL", "img"}}, {"Timeout", 7}}}}));
  ASSERT_EQ(s.mounts.size(), 5u);
  EXPECT_EQ(s.mounts[0].type, runtime::MountSpec::Type::Volume);
  EXPECT_EQ(s.mounts[0].source, "app_data");
  EXPECT_TRUE(s.mounts[0].read_only);
  EXPECT_EQ(s.mounts[1].type, runtime::MountSpec::Type::Bind);
  EXPECT_EQ(s.mounts[1].source, "/tmp");
  EXPECT_EQ(s.mounts[2].type, runtime::MountSpec::Type::Tmpfs);
  EXPECT_EQ(s.mounts[2].options, "size=1048576");
  EXPECT_EQ(s.mounts[3].type, runtime::MountSpec::Type::Volume);
  EXPECT_EQ(s.mounts[3].source, "");  // anonymous
  EXPECT_EQ(s.mounts[4].destination, "/run");
  EXPECT_EQ(s.mounts[4].options, "size=64k");
  EXPECT_TRUE(s.read_only_rootfs);
  EXPECT_EQ(s.security.cap_add, std::vector<std::string>{"NET_ADMIN"});
  EXPECT_TRUE(s.security.no_new_privileges);
  ASSERT_EQ(s.rlimits.size(), 2u);
  EXPECT_EQ(s.rlimits[0].name, "nofile");
  EXPECT_EQ(s.rlimits[0].hard, 200u);
  EXPECT_EQ(s.rlimits[1].soft, 50u);
  EXPECT_EQ(s.shm_size, 8 << 20);
  EXPECT_EQ(s.stop_signal, "SIGINT");
  EXPECT_EQ(s.annotations.at(kStopTimeoutAnnotation), "3");
  EXPECT_EQ(s.limits.nano_cpus, 500000000);
  EXPECT_EQ(s.limits.memory_bytes, 64 << 20);
  EXPECT_EQ(s.limits.pids_limit, 20);
  EXPECT_EQ(s.restart_policy, "on-failure:3");
  EXPECT_EQ(s.log.max_size, 1024);
  EXPECT_EQ(s.log.max_file, 2);
  EXPECT_EQ(s.healthcheck.test, (std::vector<std::string>{"CMD", "true"}));
  EXPECT_EQ(s.healthcheck.interval_ns, 2000000000);
  EXPECT_EQ(s.healthcheck.timeout_ns, 7);  // from the image
  EXPECT_EQ(s.healthcheck.retries, 5);
}

TEST(RuntimeSpec, ImageHealthcheckAppliesAndCanBeDisabled) {
  auto img = image({{"Cmd", {"sh"}}, {"Healthcheck", {{"Test", {"CMD-SHELL", "true"}}, {"Retries", 2}}}});
  auto s = runtime_spec(container_of("services: {web: {image: busybox, restart: always}}", "web"), img);
  EXPECT_EQ(s.healthcheck.test, (std::vector<std::string>{"CMD-SHELL", "true"}));
  EXPECT_EQ(s.healthcheck.retries, 2);
  EXPECT_EQ(s.restart_policy, "always");
  auto off = runtime_spec(container_of("services: {web: {image: busybox, healthcheck: {disable: true}}}", "web"), img);
  EXPECT_FALSE(off.healthcheck.enabled());
}

TEST(RuntimeSpec, BadValuesNameTheService) {
  try {
    runtime_spec(container_of("services: {web: {image: busybox, command: [x], logging: {driver: syslog}}}", "web"),
                 image());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("service web: ", 0), 0u) << e.what();
  }
}

TEST(NetworkRequest, ServiceNetworksModesAndPorts) {
  auto web = container_of(R"(services:
  web:
    image: busybox
    hostname: www
    ports: ["8080:80", "127.0.0.1::53/udp"]
    networks:
      front: {aliases: [site], ipv4_address: 10.9.0.5}
      back: {}
    extra_hosts: ["h:10.0.0.1"]
networks:
  front: {}
  back: {}
)",
                          "web");
  auto r = network_request(web);
  ASSERT_EQ(r.networks.size(), 2u);
  EXPECT_EQ(r.networks[0].network, "app_back");
  EXPECT_EQ(r.networks[0].aliases, std::vector<std::string>{"web"});
  EXPECT_EQ(r.networks[1].network, "app_front");
  EXPECT_EQ(r.networks[1].aliases, (std::vector<std::string>{"web", "site"}));
  EXPECT_EQ(r.networks[1].ipv4_address, "10.9.0.5");
  EXPECT_EQ(r.publish, (std::vector<std::string>{"8080:80/tcp", "127.0.0.1::53/udp"}));
  EXPECT_EQ(r.extra_hosts, std::vector<std::string>{"h:10.0.0.1"});
  EXPECT_EQ(r.hostname, "www");

  auto deflt = network_request(container_of("services: {web: {image: busybox}}", "web"));
  ASSERT_EQ(deflt.networks.size(), 1u);
  EXPECT_EQ(deflt.networks[0].network, "app_default");

  auto none = network_request(container_of("services: {web: {image: busybox, network_mode: none}}", "web"));
  ASSERT_EQ(none.networks.size(), 1u);
  EXPECT_EQ(none.networks[0].network, "none");

  auto shared = container_of("services: {db: {image: busybox}, web: {image: busybox, network_mode: \"service:db\"}}", "web");
  EXPECT_THROW(network_request(shared), Error);
  EXPECT_EQ(network_request(shared, "abc").networks[0].network, "container:abc");
}

TEST(Signals, NamesAndNumbers) {
  EXPECT_EQ(signal_number("SIGTERM"), 15);
  EXPECT_EQ(signal_number("kill"), 9);
  EXPECT_EQ(signal_number("2"), 2);
  EXPECT_THROW(signal_number("NOPE"), Error);
}

}  // namespace
}  // namespace berth::reconciler
