// The loading pipeline end to end on small documents: short and long
// syntaxes, normalization, merging, extends, include, profiles, names,
// environment precedence, x-processes, warnings and located errors.
#include <gtest/gtest.h>

#include "base/error.h"
#include "base/fs.h"
#include "spec/spec.h"
#include "tests/support/run.h"

using namespace berth::spec;
using berth::test::TempDir;

namespace {

class SpecLoad : public ::testing::Test {
 protected:
  TempDir dir;

  LoadOptions options(std::map<std::string, std::string> env = {}) {
    LoadOptions o;
    o.working_directory = dir.path();
    o.environment = std::move(env);
    return o;
  }

  Project load(const std::string& yaml, std::map<std::string, std::string> env = {}) {
    dir.write("compose.yaml", yaml);
    return load_project(options(std::move(env)));
  }

  std::string error_of(const std::string& yaml, std::map<std::string, std::string> env = {}) {
    try {
      load(yaml, std::move(env));
    } catch (const berth::Error& e) {
      return e.what();
    }
    return "(no error)";
  }

  std::string file() const { return dir.path() + "/compose.yaml"; }
};

}  // namespace

// ---------------------------------------------------------------- ports

TEST_F(SpecLoad, PortShortSyntaxes) {
  Project p = load(R"(services:
  web:
    image: x
    ports:
      - 80
      - "8080:80"
      - "127.0.0.1:5432:5432/udp"
      - "[::1]:53:53/udp"
      - "9000-9001:9000-9001"
      - "3000"
)");
  auto& ports = p.services.at("web").ports;
  ASSERT_EQ(ports.size(), 7u);
  EXPECT_EQ(ports[0].target, 80);
  EXPECT_EQ(ports[0].published, "");
  EXPECT_EQ(ports[0].protocol, "tcp");
  EXPECT_EQ(ports[0].mode, "ingress");
  EXPECT_EQ(ports[1].published, "8080");
  EXPECT_EQ(ports[2].host_ip, "127.0.0.1");
  EXPECT_EQ(ports[2].protocol, "udp");
  EXPECT_EQ(ports[3].host_ip, "::1");
  EXPECT_EQ(ports[4].target, 9000);
  EXPECT_EQ(ports[4].published, "9000");
  EXPECT_EQ(ports[5].target, 9001);
  EXPECT_EQ(ports[5].published, "9001");
  EXPECT_EQ(ports[6].target, 3000);
}

TEST_F(SpecLoad, PortLongSyntaxEqualsShort) {
  Project a = load("services:\n  web:\n    image: x\n    ports: [\"8080:80/tcp\"]\n");
  Project b = load(
      "services:\n  web:\n    image: x\n    ports:\n      - target: 80\n        published: 8080\n"
      "        protocol: tcp\n        mode: ingress\n");
  EXPECT_EQ(a.services.at("web").ports, b.services.at("web").ports);
}

TEST_F(SpecLoad, BadPortsAreLocated) {
  EXPECT_EQ(error_of("services:\n  web:\n    image: x\n    ports: [\"80:99999\"]\n"),
            file() + ":4:13: services.web.ports[0]: invalid port \"80:99999\": container port must be a number 1-65535 or a range");
  EXPECT_NE(error_of("services:\n  web:\n    image: x\n    ports: [\"80/icmp\"]\n").find(":4:13: services.web.ports[0]: invalid port \"80/icmp\": protocol"),
            std::string::npos);
  EXPECT_NE(error_of("services:\n  web:\n    image: x\n    ports: [\"1-3:1-2\"]\n").find("ranges differ"), std::string::npos);
  EXPECT_NE(error_of("services:\n  web:\n    image: x\n    ports:\n      - published: 80\n").find(":5:9: services.web.ports[0]: \"target\" is required"),
            std::string::npos);
}

// ---------------------------------------------------------------- volumes

TEST_F(SpecLoad, VolumeShortSyntaxes) {
  Project p = load(R"(services:
  db:
    image: x
    volumes:
      - data:/var/lib/db
      - ./conf:/etc/conf:ro,z
      - /abs:/abs2:rshared
      - /anonymous
      - ~/cache:/cache
volumes:
  data: {}
)", {{"HOME", "/home/me"}});
  auto& v = p.services.at("db").volumes;
  ASSERT_EQ(v.size(), 5u);
  EXPECT_EQ(v[0].type, "volume");
  EXPECT_EQ(v[0].source, "data");
  EXPECT_TRUE(v[0].volume.has_value());
  EXPECT_EQ(v[1].type, "bind");
  EXPECT_EQ(v[1].source, dir.path() + "/conf");
  EXPECT_TRUE(v[1].read_only);
  EXPECT_EQ(v[1].bind->selinux, "z");
  EXPECT_EQ(v[1].bind->create_host_path, true);
  EXPECT_EQ(v[2].bind->propagation, "rshared");
  EXPECT_EQ(v[3].type, "volume");
  EXPECT_EQ(v[3].source, "");
  EXPECT_EQ(v[3].target, "/anonymous");
  EXPECT_EQ(v[4].source, "/home/me/cache");
  EXPECT_EQ(p.volumes.at("data").name, p.name + "_data");
}

TEST_F(SpecLoad, VolumeLongSyntax) {
  Project p = load(R"(services:
  db:
    image: x
    volumes:
      - type: tmpfs
        target: /tmp
        tmpfs: {size: 64m, mode: 1777}
      - type: bind
        source: ./src
        target: /src
        read_only: true
)");
  auto& v = p.services.at("db").volumes;
  EXPECT_EQ(v[0].tmpfs->size->value, 64 << 20);
  EXPECT_EQ(v[1].source, dir.path() + "/src");
  EXPECT_TRUE(v[1].read_only);
}

TEST_F(SpecLoad, VolumeErrors) {
  EXPECT_EQ(error_of("services:\n  db:\n    image: x\n    volumes: [\"data:relative\"]\n"),
            file() + ":4:15: services.db.volumes[0]: invalid volume \"data:relative\": the container path must be absolute");
  EXPECT_NE(error_of("services:\n  db:\n    image: x\n    volumes: [\"data:/d:bogus\"]\n").find("invalid volume option \"bogus\""),
            std::string::npos);
  EXPECT_EQ(error_of("services:\n  db:\n    image: x\n    volumes: [\"data:/d\"]\n"),
            file() + ":4:15: services.db: refers to undefined volume \"data\"");
  EXPECT_NE(error_of("services:\n  db:\n    image: x\n    volumes:\n      - type: floppy\n        target: /x\n")
                .find(":5:15: services.db.volumes[0]: invalid volume type \"floppy\""),
            std::string::npos);
}

// ---------------------------------------------------------------- depends_on, environment, healthcheck

TEST_F(SpecLoad, DependsOnShortAndLong) {
  Project p = load(R"(services:
  a: {image: x, depends_on: [b]}
  b: {image: x, depends_on: {c: {condition: service_healthy, restart: true}}}
  c: {image: x}
)");
  EXPECT_EQ(p.services.at("a").depends_on.at("b"), DependsOn{});
  DependsOn healthy{"service_healthy", true, true};
  EXPECT_EQ(p.services.at("b").depends_on.at("c"), healthy);
  EXPECT_EQ(p.service_order(), (std::vector<std::string>{"c", "b", "a"}));
}

TEST_F(SpecLoad, DependsOnErrors) {
  EXPECT_EQ(error_of("services:\n  a:\n    image: x\n    depends_on: [ghost]\n"),
            file() + ":4:18: services.a: depends on undefined service \"ghost\"");
  std::string cycle = error_of(
      "services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [c]\n"
      "  c:\n    image: x\n    depends_on: [a]\n");
  EXPECT_NE(cycle.find("dependency cycle: a -> b -> c -> a"), std::string::npos) << cycle;
  EXPECT_EQ(cycle.rfind(file() + ":4:5: services.a:", 0), 0u) << cycle;
  EXPECT_NE(error_of("services:\n  a:\n    image: x\n    depends_on:\n      b: {condition: service_ready}\n  b: {image: x}\n")
                .find(":5:22: services.a.depends_on.b: invalid condition \"service_ready\""),
            std::string::npos);
}

TEST_F(SpecLoad, EnvironmentListAndMapAreTheSame) {
  Project a = load("services:\n  w:\n    image: x\n    environment: [A=1, B=, C]\n", {{"C", "from-env"}});
  Project b = load("services:\n  w:\n    image: x\n    environment: {A: 1, B: '', C: null}\n", {{"C", "from-env"}});
  EXPECT_EQ(a.services.at("w").environment, b.services.at("w").environment);
  EXPECT_EQ(a.services.at("w").environment.at("A"), "1");
  EXPECT_EQ(a.services.at("w").environment.at("B"), "");
  EXPECT_EQ(a.services.at("w").environment.at("C"), "from-env");
  Project c = load("services:\n  w:\n    image: x\n    environment: [UNSET_ONE]\n");
  EXPECT_FALSE(c.services.at("w").environment.at("UNSET_ONE").has_value());
}

TEST_F(SpecLoad, EnvFileWithRequiredFalse) {
  dir.write("common.env", "A=from-file\nB=also\n");
  Project p = load(R"(services:
  w:
    image: x
    env_file:
      - common.env
      - path: missing.env
        required: false
    environment:
      B: explicit
)");
  auto& env = p.services.at("w").environment;
  EXPECT_EQ(env.at("A"), "from-file");
  EXPECT_EQ(env.at("B"), "explicit");
  EXPECT_EQ(p.services.at("w").env_file[0].path, dir.path() + "/common.env");
  EXPECT_FALSE(p.services.at("w").env_file[1].required);
  EXPECT_EQ(error_of("services:\n  w:\n    image: x\n    env_file: nope.env\n"),
            file() + ":4:15: services.w: env file " + dir.path() + "/nope.env not found");
}

TEST_F(SpecLoad, EnvFileRawFormatIsLiteral) {
  dir.write("raw.env", "# comment\nQ=\"quoted value\"\nREF=${HOME}\n\nBARE\n");
  dir.write("dot.env", "Q=\"quoted value\"\n");
  Project p = load(R"(services:
  w:
    image: x
    env_file:
      - path: raw.env
        format: raw
  d:
    image: x
    env_file:
      - path: dot.env
        format: dotenv
)");
  auto& env = p.services.at("w").environment;
  EXPECT_EQ(env.at("Q"), "\"quoted value\"");
  EXPECT_EQ(env.at("REF"), "${HOME}");
  EXPECT_EQ(env.at("BARE"), "");
  EXPECT_EQ(p.services.at("d").environment.at("Q"), "quoted value");
  dir.write("x.env", "A=1\n");
  EXPECT_EQ(error_of("services:\n  w:\n    image: x\n    env_file:\n      - path: x.env\n        format: yaml\n"),
            file() + ":5:7: services.w: env file " + dir.path() + "/x.env: unsupported format \"yaml\" (want dotenv or raw)");
}

TEST_F(SpecLoad, HealthcheckStringAndListAndDurations) {
  Project p = load(R"(services:
  a:
    image: x
    healthcheck:
      test: curl -f http://localhost
      interval: 1m30s
      timeout: 500ms
      start_period: 10
      retries: 3
  b:
    image: x
    healthcheck:
      test: ["CMD", "pg_isready"]
  c:
    image: x
    healthcheck: {disable: true}
)");
  auto& a = *p.services.at("a").healthcheck;
  EXPECT_EQ(a.test, (std::vector<std::string>{"CMD-SHELL", "curl -f http://localhost"}));
  EXPECT_EQ(a.interval->nanoseconds, 90'000'000'000);
  EXPECT_EQ(a.interval->str(), "1m30s");
  EXPECT_EQ(a.timeout->str(), "500ms");
  EXPECT_EQ(a.start_period->str(), "10s");
  EXPECT_EQ(p.services.at("b").healthcheck->test, (std::vector<std::string>{"CMD", "pg_isready"}));
  EXPECT_EQ(p.services.at("c").healthcheck->test, (std::vector<std::string>{"NONE"}));
}

TEST_F(SpecLoad, DurationAndSizeErrorsAreLocated) {
  EXPECT_EQ(error_of("services:\n  a:\n    image: x\n    stop_grace_period: 10 parsecs\n"),
            file() + ":4:24: services.a.stop_grace_period: invalid duration \"10 parsecs\" (want e.g. 10s, 1m30s, 500ms)");
  EXPECT_EQ(error_of("services:\n  a:\n    image: x\n    mem_limit: 12zb\n"),
            file() + ":4:16: services.a.mem_limit: invalid byte size \"12zb\" (want e.g. 512m, 1g, 1048576)");
}

TEST_F(SpecLoad, ByteSizesAndCommands) {
  Project p = load(R"(services:
  a:
    image: x
    mem_limit: 512m
    shm_size: 1g
    memswap_limit: -1
    command: sh -c 'echo "hi there"'
    entrypoint: ["/bin/tini", "--"]
)");
  auto& a = p.services.at("a");
  EXPECT_EQ(a.mem_limit->value, 512ll << 20);
  EXPECT_EQ(a.shm_size->value, 1ll << 30);
  EXPECT_EQ(a.memswap_limit->value, -1);
  EXPECT_EQ(*a.command, (std::vector<std::string>{"sh", "-c", "echo \"hi there\""}));
  EXPECT_EQ(*a.entrypoint, (std::vector<std::string>{"/bin/tini", "--"}));
}

// ---------------------------------------------------------------- deploy / scale / conflicts

TEST_F(SpecLoad, DeployResourcesAndRestartPolicy) {
  Project p = load(R"(services:
  a:
    image: x
    deploy:
      replicas: 3
      resources:
        limits: {cpus: '0.5', memory: 256M, pids: 100}
        reservations: {memory: 64m}
      restart_policy: {condition: on-failure, delay: 5s, max_attempts: 3}
)");
  auto& d = *p.services.at("a").deploy;
  EXPECT_EQ(p.services.at("a").replicas(), 3);
  EXPECT_DOUBLE_EQ(*d.resources->limits->cpus, 0.5);
  EXPECT_EQ(d.resources->limits->memory->value, 256ll << 20);
  EXPECT_EQ(*d.resources->limits->pids, 100);
  EXPECT_EQ(d.resources->reservations->memory->value, 64ll << 20);
  EXPECT_EQ(d.restart_policy->condition, "on-failure");
  EXPECT_EQ(d.restart_policy->delay->str(), "5s");
}

TEST_F(SpecLoad, ScaleAndReplicas) {
  EXPECT_EQ(load("services:\n  a: {image: x, scale: 2}\n").services.at("a").replicas(), 2);
  EXPECT_NE(error_of("services:\n  a:\n    image: x\n    scale: 2\n    deploy: {replicas: 3}\n").find("disagree"), std::string::npos);
}

TEST_F(SpecLoad, Conflicts) {
  EXPECT_EQ(error_of("services:\n  a:\n    image: x\n    network_mode: host\n    networks: [front]\nnetworks:\n  front: {}\n"),
            file() + ":4:5: services.a: network_mode and networks cannot be combined");
  EXPECT_EQ(error_of("services:\n  a:\n    image: x\n    container_name: solo\n    deploy: {replicas: 2}\n"),
            file() + ":4:5: services.a: container_name \"solo\" cannot be used with 2 replicas (names must be unique)");
}

TEST_F(SpecLoad, UndefinedReferences) {
  EXPECT_EQ(error_of("services:\n  a:\n    image: x\n    networks: [back]\n"),
            file() + ":4:16: services.a: refers to undefined network \"back\"");
  EXPECT_EQ(error_of("services:\n  a:\n    image: x\n    secrets: [token]\n"),
            file() + ":4:15: services.a: refers to undefined secret \"token\"");
  EXPECT_EQ(error_of("services:\n  a:\n    image: x\n    configs: [conf]\n"),
            file() + ":4:15: services.a: refers to undefined config \"conf\"");
  EXPECT_NE(error_of("services:\n  a:\n    image: x\n    network_mode: service:ghost\n").find("undefined service \"ghost\""),
            std::string::npos);
  EXPECT_NE(error_of("services:\n  a:\n    image: x\n    volumes_from: [ghost]\n").find("undefined service \"ghost\""),
            std::string::npos);
  EXPECT_NE(error_of("services:\n  a: {}\n").find("services.a: has neither an image nor a build context"), std::string::npos);
}

// ---------------------------------------------------------------- keys and types

TEST_F(SpecLoad, UnknownKeyWithDidYouMean) {
  EXPECT_EQ(error_of("services:\n  web:\n    imgae: nginx\n"),
            file() + ":3:5: services.web: unknown key \"imgae\" (did you mean \"image\"?)");
  EXPECT_EQ(error_of("services:\n  web:\n    image: x\n    healthcheck:\n      intervl: 5s\n"),
            file() + ":5:7: services.web.healthcheck: unknown key \"intervl\" (did you mean \"interval\"?)");
  EXPECT_EQ(error_of("services:\n  web:\n    image: x\n    frobnicate: 1\n"),
            file() + ":4:5: services.web: unknown key \"frobnicate\"");
  EXPECT_EQ(error_of("servces:\n  web: {image: x}\n"), file() + ":1:1: unknown top-level key \"servces\" (did you mean \"services\"?)");
}

TEST_F(SpecLoad, WrongTypes) {
  EXPECT_EQ(error_of("services:\n  web:\n    image: [a, b]\n"),
            file() + ":3:12: services.web.image: expected a string, got a sequence");
  EXPECT_EQ(error_of("services:\n  web:\n    image: x\n    privileged: maybe\n"),
            file() + ":4:17: services.web.privileged: expected a boolean (true or false), got \"maybe\"");
  EXPECT_EQ(error_of("services:\n  web:\n    image: x\n    cpu_shares: lots\n"),
            file() + ":4:17: services.web.cpu_shares: expected an integer, got \"lots\"");
  EXPECT_EQ(error_of("services:\n  web: 3\n"), file() + ":2:8: services.web: expected a mapping, got a scalar");
}

TEST_F(SpecLoad, AllErrorsAreReportedOnePerLine) {
  std::string e = error_of("services:\n  a:\n    imagee: x\n  b:\n    image: x\n    tty: sometimes\n");
  EXPECT_NE(e.find(":3:5: services.a: unknown key \"imagee\""), std::string::npos) << e;
  EXPECT_NE(e.find("\n"), std::string::npos) << e;
  EXPECT_NE(e.find(":6:10: services.b.tty:"), std::string::npos) << e;
}

TEST_F(SpecLoad, ExtensionsAreKeptAndUnsupportedKeysWarn) {
  Project p = load(R"(x-top: {a: 1}
services:
  web:
    image: x
    x-note: hello
    isolation: hyperv
    cpu_count: 2
)");
  EXPECT_EQ(p.extensions["x-top"]["a"], 1);
  EXPECT_EQ(p.services.at("web").extensions["x-note"], "hello");
  ASSERT_EQ(p.warnings.size(), 2u);
  EXPECT_EQ(p.warnings[0].where, file() + ":6:5");
  EXPECT_NE(p.warnings[0].message.find("services.web.isolation: not supported by berth on Linux"), std::string::npos);
  EXPECT_EQ(p.warnings[1].where, file() + ":7:5");
}

TEST_F(SpecLoad, VersionIsIgnoredWithAWarning) {
  Project p = load("version: '3.8'\nservices:\n  a: {image: x}\n");
  ASSERT_EQ(p.warnings.size(), 1u);
  EXPECT_EQ(p.warnings[0].where, file() + ":1:1");
  EXPECT_NE(p.warnings[0].message.find("obsolete"), std::string::npos);
}

// ---------------------------------------------------------------- x-processes

TEST_F(SpecLoad, ProcessesWithSupervisordDefaults) {
  Project p = load(R"(services:
  app:
    image: x
    x-processes:
      web:
        command: gunicorn app:app
      worker:
        command: [python, worker.py]
        autorestart: false
        exitcodes: "0,2"
        stopsignal: SIGINT
        priority: 10
        environment: {QUEUE: jobs}
)");
  auto& procs = p.services.at("app").processes;
  const Process& web = procs.at("web");
  EXPECT_EQ(web.command, (std::vector<std::string>{"gunicorn", "app:app"}));
  EXPECT_TRUE(web.autostart);
  EXPECT_EQ(web.autorestart, "unexpected");
  EXPECT_EQ(web.startsecs, 1);
  EXPECT_EQ(web.startretries, 3);
  EXPECT_EQ(web.exitcodes, (std::vector<std::int64_t>{0}));
  EXPECT_EQ(web.stopsignal, "TERM");
  EXPECT_EQ(web.stopwaitsecs, 10);
  EXPECT_EQ(web.priority, 999);
  const Process& worker = procs.at("worker");
  EXPECT_EQ(worker.autorestart, "false");
  EXPECT_EQ(worker.exitcodes, (std::vector<std::int64_t>{0, 2}));
  EXPECT_EQ(worker.stopsignal, "INT");
  EXPECT_EQ(worker.environment.at("QUEUE"), "jobs");
}

TEST_F(SpecLoad, ProcessErrors) {
  EXPECT_EQ(error_of("services:\n  a:\n    image: x\n    x-processes:\n      w:\n        command: run\n        autorestart: sometimes\n"),
            file() + ":7:22: services.a.x-processes.w.autorestart: invalid autorestart \"sometimes\" (want true, false or unexpected)");
  EXPECT_EQ(error_of("services:\n  a:\n    image: x\n    x-processes:\n      w:\n        autostart: true\n"),
            file() + ":6:9: services.a.x-processes.w: \"command\" is required");
  EXPECT_NE(error_of("services:\n  a:\n    image: x\n    x-processes:\n      w: {command: run, stopsignal: BOOM}\n").find("invalid stopsignal \"BOOM\""),
            std::string::npos);
  EXPECT_NE(error_of("services:\n  a:\n    image: x\n    x-processes:\n      w: {command: run, startsecs: -1}\n").find("startsecs must not be negative"),
            std::string::npos);
  EXPECT_NE(error_of("services:\n  a:\n    image: x\n    x-processes:\n      w: {command: run, autostrat: true}\n").find("(did you mean \"autostart\"?)"),
            std::string::npos);
}

// ---------------------------------------------------------------- interpolation & environment precedence

TEST_F(SpecLoad, ProcessEnvironmentBeatsDotEnv) {
  dir.write(".env", "TAG=from-dotenv\nONLY_DOTENV=yes\n");
  Project p = load("services:\n  a:\n    image: img:${TAG}\n    labels: {d: $ONLY_DOTENV}\n", {{"TAG", "from-process"}});
  EXPECT_EQ(p.services.at("a").image, "img:from-process");
  EXPECT_EQ(p.services.at("a").labels.at("d"), "yes");
}

TEST_F(SpecLoad, EnvFileFlagReplacesDotEnv) {
  dir.write(".env", "TAG=from-dotenv\nOTHER=dotenv\n");
  dir.write("a.env", "TAG=from-a\n");
  dir.write("b.env", "TAG=from-b\n");
  dir.write("compose.yaml", "services:\n  a:\n    image: img:${TAG}-${OTHER:-none}\n");
  LoadOptions o = options();
  o.env_files = {"a.env", "b.env"};
  Project p = load_project(o);
  EXPECT_EQ(p.services.at("a").image, "img:from-b-none");
}

TEST_F(SpecLoad, RequiredVariableErrorIsLocated) {
  EXPECT_EQ(error_of("services:\n  a:\n    image: ${IMAGE:?set IMAGE}\n"),
            file() + ":3:12: required variable IMAGE is missing a value: set IMAGE in \"${IMAGE:?set IMAGE}\"");
}

TEST_F(SpecLoad, MissingVariableWarns) {
  Project p = load("services:\n  a:\n    image: img${NOPE}\n");
  EXPECT_EQ(p.services.at("a").image, "img");
  ASSERT_EQ(p.warnings.size(), 1u);
  EXPECT_EQ(p.warnings[0].where, file() + ":3:12");
  EXPECT_NE(p.warnings[0].message.find("\"NOPE\""), std::string::npos);
}

// ---------------------------------------------------------------- project name

TEST_F(SpecLoad, ProjectNamePrecedenceAndNormalization) {
  dir.write("compose.yaml", "name: From_File\nservices:\n  a: {image: x}\n");
  LoadOptions o = options();
  EXPECT_EQ(load_project(o).name, "from_file");
  o.environment["COMPOSE_PROJECT_NAME"] = "from-env";
  EXPECT_EQ(load_project(o).name, "from-env");
  o.project_name = "flag_name";
  EXPECT_EQ(load_project(o).name, "flag_name");
  // Imperative names are checked, not silently rewritten.
  o.project_name = "Flag.Name!";
  try {
    load_project(o);
    ADD_FAILURE() << "an invalid -p was accepted";
  } catch (const berth::Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "invalid project name \"Flag.Name!\" (-p): it must contain only lowercase letters, digits, \"-\" and "
              "\"_\", and start with a letter or digit");
  }
  o.project_name.clear();
  o.environment["COMPOSE_PROJECT_NAME"] = "FromEnv";
  EXPECT_THROW(load_project(o), berth::Error);
  o.environment.erase("COMPOSE_PROJECT_NAME");
  dir.write("compose.yaml", "services:\n  a: {image: x}\n");
  EXPECT_EQ(load_project(options()).name, normalize_project_name(berth::path_basename(dir.path())));
  EXPECT_EQ(normalize_project_name("-_My App_1"), "myapp_1");
  EXPECT_EQ(normalize_project_name("!!!"), "");
}

TEST_F(SpecLoad, DefaultNetworkAndNames) {
  Project p = load("name: proj\nservices:\n  a: {image: x}\nnetworks:\n  ext: {external: true}\n  named: {name: custom}\n");
  EXPECT_EQ(p.networks.at("default").name, "proj_default");
  EXPECT_EQ(p.networks.at("ext").name, "ext");
  EXPECT_EQ(p.networks.at("named").name, "custom");
  EXPECT_TRUE(p.services.at("a").networks.count("default"));
}

// ---------------------------------------------------------------- files, merge, extends, include

TEST_F(SpecLoad, FileDiscoveryAndOverride) {
  dir.write("docker-compose.yml", "services:\n  a: {image: base, ports: ['80:80']}\n");
  dir.write("docker-compose.override.yml", "services:\n  a: {image: over, ports: ['443:443']}\n");
  Project p = load_project(options());
  EXPECT_EQ(p.services.at("a").image, "over");
  EXPECT_EQ(p.services.at("a").ports.size(), 2u);
  EXPECT_EQ(p.config_files.size(), 2u);
}

TEST_F(SpecLoad, NoFileIsAClearError) {
  LoadOptions o = options();
  o.project_directory = dir.path();  // no parent search: the tree above may hold anything
  try {
    load_project(o);
    FAIL();
  } catch (const berth::Error& e) {
    EXPECT_NE(std::string(e.what()).find("no configuration file provided"), std::string::npos);
  }
}

TEST_F(SpecLoad, MultiFileMergeRules) {
  dir.write("base.yaml", R"(services:
  web:
    image: nginx
    command: ["a", "b"]
    environment: [A=1, B=2]
    labels: {keep: "1"}
    ports: ["80:80"]
    volumes: ["./a:/data", "./b:/other"]
    dns: 1.1.1.1
    healthcheck: {test: ["CMD", "old"], interval: 5s}
)");
  dir.write("override.yaml", R"(services:
  web:
    command: ["c"]
    environment: {B: "3", C: "4"}
    ports: ["443:443", "80:80"]
    volumes: ["./c:/data"]
    dns: [8.8.8.8]
    healthcheck: {test: ["CMD", "new"]}
    labels: !reset {}
)");
  LoadOptions o = options();
  o.files = {"base.yaml", "override.yaml"};
  Project p = load_project(o);
  const Service& web = p.services.at("web");
  EXPECT_EQ(*web.command, std::vector<std::string>{"c"});
  EXPECT_EQ(web.environment.at("A"), "1");
  EXPECT_EQ(web.environment.at("B"), "3");
  EXPECT_EQ(web.environment.at("C"), "4");
  EXPECT_EQ(web.ports.size(), 2u);
  ASSERT_EQ(web.volumes.size(), 2u);
  EXPECT_EQ(web.volumes[0].source, dir.path() + "/c");
  EXPECT_EQ(web.volumes[0].target, "/data");
  EXPECT_EQ(web.dns, (std::vector<std::string>{"1.1.1.1", "8.8.8.8"}));
  EXPECT_EQ(web.healthcheck->test, (std::vector<std::string>{"CMD", "new"}));
  EXPECT_EQ(web.healthcheck->interval->str(), "5s");
  EXPECT_TRUE(web.labels.empty());
}

TEST_F(SpecLoad, ExtendsSameFileAndOtherFile) {
  dir.write("lib/common.yaml", R"(services:
  base:
    image: base-img
    env_file: base.env
    volumes: ["./data:/data"]
    environment: {FROM: lib}
)");
  dir.write("lib/base.env", "LIB=1\n");
  Project p = load(R"(services:
  tmpl:
    image: tmpl-img
    environment: {T: "1"}
  same:
    extends: tmpl
    environment: {S: "2"}
  other:
    extends: {file: lib/common.yaml, service: base}
    environment: {FROM: main}
)");
  const Service& same = p.services.at("same");
  EXPECT_EQ(same.image, "tmpl-img");
  EXPECT_EQ(same.environment.at("T"), "1");
  EXPECT_EQ(same.environment.at("S"), "2");
  EXPECT_FALSE(same.extends.has_value());
  const Service& other = p.services.at("other");
  EXPECT_EQ(other.image, "base-img");
  EXPECT_EQ(other.environment.at("FROM"), "main");
  EXPECT_EQ(other.environment.at("LIB"), "1");
  // Relative paths of the extended service resolve against its own file.
  EXPECT_EQ(other.volumes[0].source, dir.path() + "/lib/data");
  EXPECT_EQ(other.env_file[0].path, dir.path() + "/lib/base.env");
}

TEST_F(SpecLoad, ExtendsErrors) {
  EXPECT_NE(error_of("services:\n  a:\n    image: x\n    extends: ghost\n").find(":4:14: services.a.extends: service \"ghost\" not found"),
            std::string::npos);
  std::string cycle = error_of("services:\n  a: {extends: b}\n  b: {extends: a}\n");
  EXPECT_NE(cycle.find("extends cycle"), std::string::npos) << cycle;
}

TEST_F(SpecLoad, IncludeBringsInAnotherProject) {
  dir.write("db/compose.yaml", "services:\n  db:\n    image: postgres:${PG:-15}\n    volumes: ['./init:/init']\n");
  dir.write("db/.env", "PG=16\n");
  Project p = load("include:\n  - db/compose.yaml\nservices:\n  app: {image: x, depends_on: [db]}\n");
  EXPECT_EQ(p.services.at("db").image, "postgres:16");
  EXPECT_EQ(p.services.at("db").volumes[0].source, dir.path() + "/db/init");
  EXPECT_NE(error_of("include: [db/compose.yaml]\nservices:\n  db: {image: y}\n").find("conflicts"), std::string::npos);
}

// ---------------------------------------------------------------- profiles

TEST_F(SpecLoad, Profiles) {
  const char* yaml = R"(services:
  app: {image: x, depends_on: [helper]}
  helper: {image: x, profiles: [tools]}
  debug: {image: x, profiles: [debug]}
  admin: {image: x, profiles: [admin, debug]}
)";
  Project p = load(yaml);
  EXPECT_EQ(p.services.size(), 2u) << "app, and helper because app depends on it";
  EXPECT_TRUE(p.services.count("helper"));
  EXPECT_EQ(p.all_profiles, (std::vector<std::string>{"admin", "debug", "tools"}));
  LoadOptions o = options();
  o.profiles = {"debug"};
  Project d = load_project(o);
  EXPECT_TRUE(d.services.count("debug"));
  EXPECT_TRUE(d.services.count("admin"));
  o.profiles = {"*"};
  EXPECT_EQ(load_project(o).services.size(), 4u);
  o.profiles = {};
  o.environment["COMPOSE_PROFILES"] = "admin";
  Project a = load_project(o);
  EXPECT_TRUE(a.services.count("admin"));
  EXPECT_FALSE(a.services.count("debug"));
}

// ---------------------------------------------------------------- other syntaxes

TEST_F(SpecLoad, MiscShortSyntaxes) {
  Project p = load(R"(services:
  a:
    image: x
    build: ./ctx
    ulimits: {nofile: {soft: 1024, hard: 2048}, nproc: 512}
    extra_hosts: ["db:10.0.0.2", "cache=10.0.0.3"]
    devices: ["/dev/ttyUSB0"]
    sysctls: [net.core.somaxconn=1024]
    labels: [com.example=1]
    tmpfs: /run
    dns_search: example.com
    secrets: [token]
    logging: {driver: json-file, options: {max-size: 10m}}
secrets:
  token: {file: ./token.txt}
)");
  const Service& a = p.services.at("a");
  EXPECT_EQ(a.build->context, dir.path() + "/ctx");
  EXPECT_EQ(a.build->dockerfile, "Dockerfile");
  EXPECT_EQ(*a.ulimits.at("nofile").soft, 1024);
  EXPECT_EQ(*a.ulimits.at("nproc").single, 512);
  EXPECT_EQ(a.extra_hosts.at("db"), std::vector<std::string>{"10.0.0.2"});
  EXPECT_EQ(a.extra_hosts.at("cache"), std::vector<std::string>{"10.0.0.3"});
  EXPECT_EQ(a.devices[0].target, "/dev/ttyUSB0");
  EXPECT_EQ(a.devices[0].permissions, "rwm");
  EXPECT_EQ(a.sysctls.at("net.core.somaxconn"), "1024");
  EXPECT_EQ(a.labels.at("com.example"), "1");
  EXPECT_EQ(a.tmpfs, std::vector<std::string>{"/run"});
  EXPECT_EQ(a.dns_search, std::vector<std::string>{"example.com"});
  EXPECT_EQ(a.secrets[0].source, "token");
  EXPECT_EQ(p.secrets.at("token").file, dir.path() + "/token.txt");
  EXPECT_EQ(a.logging->options.at("max-size"), "10m");
}

TEST_F(SpecLoad, LoadFromStringUsesTheGivenName) {
  LoadOptions o = options();
  Project p = load_project_from_string("services:\n  a: {image: x}\n", o, "mem.yaml");
  EXPECT_EQ(p.services.size(), 1u);
  try {
    load_project_from_string("services:\n  a: {imag: x}\n", o, "mem.yaml");
    FAIL();
  } catch (const berth::Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind(dir.path() + "/mem.yaml:2:7: services.a: unknown key \"imag\"", 0), 0u) << e.what();
  }
}

TEST_F(SpecLoad, ComposeFileVariableAndParentDirectorySearch) {
  dir.write("one.yaml", "services:\n  a: {image: one}\n");
  dir.write("two.yaml", "services:\n  a: {image: two}\n");
  LoadOptions o = options({{"COMPOSE_FILE", "one.yaml:two.yaml"}});
  EXPECT_EQ(load_project(o).services.at("a").image, "two");

  dir.write("compose.yaml", "services:\n  a: {image: parent}\n");
  dir.write("sub/deeper/.keep", "");
  LoadOptions nested = options();
  nested.working_directory = dir.path() + "/sub/deeper";
  Project p = load_project(nested);
  EXPECT_EQ(p.services.at("a").image, "parent");
  EXPECT_EQ(p.working_dir, dir.path());
}

TEST_F(SpecLoad, ComposeFileFromDotEnv) {
  dir.write("one.yaml", "services:\n  a: {image: one}\n");
  dir.write("two.yaml", "services:\n  a: {image: two}\n");
  dir.write(".env", "COMPOSE_FILE=one.yaml;two.yaml\nCOMPOSE_PATH_SEPARATOR=;\n");
  EXPECT_EQ(load_project(options()).services.at("a").image, "two");
  // The process environment wins over .env.
  EXPECT_EQ(load_project(options({{"COMPOSE_FILE", "one.yaml"}})).services.at("a").image, "one");
}

TEST_F(SpecLoad, MergedPortsInShortAndLongSyntaxAreOne) {
  dir.write("base.yaml", "services:\n  web:\n    image: x\n    ports: ['80:80', '9000:9000/udp']\n");
  dir.write("over.yaml",
            "services:\n  web:\n    ports:\n      - {target: 80, published: '80'}\n      - '8443:443'\n");
  LoadOptions o = options();
  o.files = {"base.yaml", "over.yaml"};
  const Service& web = load_project(o).services.at("web");
  ASSERT_EQ(web.ports.size(), 3u);
  EXPECT_EQ(web.ports[0].target, 80);
  EXPECT_EQ(web.ports[1].protocol, "udp");
  EXPECT_EQ(web.ports[2].published, "8443");
}

TEST_F(SpecLoad, OverrideTagReplacesInsteadOfMerging) {
  dir.write("base.yaml", "services:\n  web:\n    image: x\n    ports: ['80:80', '443:443']\n    environment: {A: '1'}\n");
  dir.write("over.yaml", "services:\n  web:\n    ports: !override ['8080:80']\n    environment: !override {B: '2'}\n");
  LoadOptions o = options();
  o.files = {"base.yaml", "over.yaml"};
  Project p = load_project(o);
  const Service& web = p.services.at("web");
  ASSERT_EQ(web.ports.size(), 1u);
  EXPECT_EQ(web.ports[0].published, "8080");
  EXPECT_EQ(web.environment.size(), 1u);
  EXPECT_EQ(web.environment.at("B"), "2");
}

TEST_F(SpecLoad, MoreLocatedErrors) {
  EXPECT_EQ(error_of("services:\n  a:\n    image: x\n    ulimits:\n      nofile: {soft: 1}\n"),
            file() + ":5:15: services.a.ulimits.nofile: ulimit needs both \"soft\" and \"hard\"");
  EXPECT_EQ(error_of("services:\n  a:\n    image: x\n    extra_hosts: [nohost]\n"),
            file() + ":4:19: services.a.extra_hosts[0]: invalid extra host \"nohost\" (want host=ip or host:ip)");
  EXPECT_EQ(error_of("services:\n  a:\n    image: x\n    devices: ['/a:/b:c:d']\n"),
            file() + ":4:15: services.a.devices[0]: invalid device \"/a:/b:c:d\" (want /dev/host[:/dev/container[:rwm]])");
  EXPECT_EQ(error_of("services:\n  a:\n    image: x\n    secrets: [{source: s, mode: 0999}]\nsecrets:\n  s: {file: ./s}\n"),
            file() + ":4:33: services.a.secrets[0].mode: invalid file mode \"0999\" (want e.g. 0440)");
  EXPECT_EQ(error_of("services:\n  a: {image: x}\nsecrets:\n  s: {file: ./s, environment: S}\n"),
            file() + ":4:3: secrets.s: a secret needs exactly one of file, environment or external");
  EXPECT_EQ(error_of("services:\n  a:\n    image: x\n    healthcheck:\n      test: [RUN, x]\n"),
            file() + ":5:13: services.a.healthcheck.test: a healthcheck test list must start with \"CMD\", \"CMD-SHELL\" or \"NONE\", not \"RUN\"");
  EXPECT_EQ(error_of("services:\n  a:\n    image: x\n    pull_policy: sometimes\n"),
            file() + ":4:18: services.a: invalid pull_policy \"sometimes\"");
  EXPECT_EQ(error_of("services:\n  a:\n    image: x\n    command: echo 'open\n"),
            file() + ":4:14: services.a.command: bad command: unterminated quote in \"echo 'open\"");
  EXPECT_NE(error_of("include: [missing/compose.yaml]\nservices:\n  a: {image: x}\n").find(":1:11: include: "), std::string::npos);
  EXPECT_EQ(error_of("services:\n  a:\n    image: x\n    networks:\n      front: {aliasses: [x]}\nnetworks:\n  front: {}\n"),
            file() + ":5:15: services.a.networks.front: unknown key \"aliasses\" (did you mean \"aliases\"?)");
  EXPECT_EQ(error_of("services:\n  a: {image: x}\nnetworks:\n  n: {drvier: bridge}\n"),
            file() + ":4:7: networks.n: unknown key \"drvier\" (did you mean \"driver\"?)");
}
