#define CAF_SUITE config

#include "config/loader.hpp"

#include <caf/test/unit_test.hpp>

#include <cstdio>
#include <fstream>
#include <sys/stat.h>
#include <unistd.h>

using namespace rc;
using action = load_result::action;

namespace {

/// A config file in /tmp that is removed with the object.
struct temp_file {
  std::string path;
  temp_file(const std::string& suffix, const std::string& text) {
    char name[] = "/tmp/roomcast-config-XXXXXX";
    int fd = mkstemp(name);
    CAF_REQUIRE(fd >= 0);
    ::close(fd);
    std::remove(name);
    path = std::string{name} + suffix;
    std::ofstream{path} << text;
  }
  ~temp_file() { std::remove(path.c_str()); }
};

load_result load(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
  return load_settings(args, env);
}

} // namespace

CAF_TEST(defaults are those the docs promise) {
  auto r = load({});
  CAF_REQUIRE(r.what == action::run);
  CAF_CHECK_EQUAL(r.cfg.http_port, 8080u);
  CAF_CHECK_EQUAL(r.cfg.write_delay.count(), 5);
  CAF_CHECK_EQUAL(r.cfg.write_delay_min_lag_us, 300u); // the delay only on a busy thread
  CAF_CHECK_EQUAL(r.cfg.bind, "0.0.0.0");
  CAF_CHECK_EQUAL(r.cfg.limits.max_frame_bytes, 65536u);
  CAF_CHECK_EQUAL(r.cfg.limits.max_queue_frames, 1024u);
  CAF_CHECK_EQUAL(r.cfg.limits.max_queue_bytes, 4u * 1024 * 1024);
  CAF_CHECK_EQUAL(r.cfg.limits.rate_limit, 100.0);
  CAF_CHECK_EQUAL(r.cfg.limits.rate_burst, 200u);
  CAF_CHECK_EQUAL(r.cfg.limits.max_connections, 100000u);
  CAF_CHECK_EQUAL(r.cfg.limits.handshake_timeout.count(), 10000);
  CAF_CHECK_EQUAL(r.cfg.limits.ping_interval.count(), 20000);
  CAF_CHECK_EQUAL(r.cfg.limits.max_missed_pongs, 2u);
  CAF_CHECK_EQUAL(r.cfg.drain_timeout.count(), 10000);
}

CAF_TEST(file beats defaults environment beats file command line beats environment) {
  temp_file f{".json", R"({"http-port": 9001, "node-name": "file", "bind": "127.0.0.1",
                          "limits": {"rate-burst": 7}})"};
  auto r = load({"--config", f.path});
  CAF_REQUIRE(r.what == action::run);
  CAF_CHECK_EQUAL(r.cfg.http_port, 9001u);
  CAF_CHECK_EQUAL(r.cfg.node_name, "file");
  CAF_CHECK_EQUAL(r.cfg.limits.rate_burst, 7u);
  r = load({"--config", f.path}, {{"ROOMCAST_NODE_NAME", "env"}, {"ROOMCAST_HTTP_PORT", "9002"}});
  CAF_CHECK_EQUAL(r.cfg.node_name, "env");
  CAF_CHECK_EQUAL(r.cfg.http_port, 9002u);
  CAF_CHECK_EQUAL(r.cfg.bind, "127.0.0.1");
  r = load({"--config", f.path, "--node-name", "cli", "--http-port=9003"},
           {{"ROOMCAST_NODE_NAME", "env"}, {"ROOMCAST_HTTP_PORT", "9002"}});
  CAF_CHECK_EQUAL(r.cfg.node_name, "cli");
  CAF_CHECK_EQUAL(r.cfg.http_port, 9003u);
  CAF_CHECK_EQUAL(r.cfg.limits.rate_burst, 7u);
}

CAF_TEST(the config file may come from ROOMCAST_CONFIG) {
  temp_file f{".json", R"({"node-name": "via-env"})"};
  auto r = load({}, {{"ROOMCAST_CONFIG", f.path}});
  CAF_REQUIRE(r.what == action::run);
  CAF_CHECK_EQUAL(r.cfg.node_name, "via-env");
}

CAF_TEST(caf ini files are read with sections and durations) {
  temp_file f{".ini", "[global]\nnode-name=\"from-ini\"\nallowed-origins=[\"http://a\", \"http://b\"]\n"
                      "drain-timeout=2s\n[limits]\nping-interval=250ms\nmax-connections=5\n"};
  auto r = load({"--config", f.path});
  CAF_REQUIRE(r.what == action::run);
  CAF_CHECK_EQUAL(r.cfg.node_name, "from-ini");
  CAF_REQUIRE_EQUAL(r.cfg.allowed_origins.size(), 2u);
  CAF_CHECK_EQUAL(r.cfg.allowed_origins[1], "http://b");
  CAF_CHECK_EQUAL(r.cfg.drain_timeout.count(), 2000);
  CAF_CHECK_EQUAL(r.cfg.limits.ping_interval.count(), 250);
  CAF_CHECK_EQUAL(r.cfg.limits.max_connections, 5u);
}

CAF_TEST(unknown or invalid settings fail with a message naming them) {
  auto r = load({"--no-such-option", "1"});
  CAF_CHECK(r.what == action::fail);
  CAF_CHECK(r.message.find("--no-such-option") != std::string::npos);
  r = load({"--http-port", "http"});
  CAF_CHECK(r.what == action::fail);
  CAF_CHECK(r.message.find("http-port") != std::string::npos);
  r = load({"--http-port", "70000"});
  CAF_CHECK(r.what == action::fail);
  r = load({"--ping-interval", "soon"});
  CAF_CHECK(r.what == action::fail);
  r = load({}, {{"ROOMCAST_TYPO", "1"}});
  CAF_CHECK(r.what == action::fail);
  CAF_CHECK(r.message.find("ROOMCAST_TYPO") != std::string::npos);
  temp_file f{".json", R"({"htp-port": 1})"};
  r = load({"--config", f.path});
  CAF_CHECK(r.what == action::fail);
  CAF_CHECK(r.message.find("htp-port") != std::string::npos);
  temp_file g{".ini", "[limits]\nnode-name=\"x\"\n"};
  r = load({"--config", g.path});
  CAF_CHECK(r.what == action::fail);
  r = load({"--config", "/nonexistent/roomcast.json"});
  CAF_CHECK(r.what == action::fail);
  r = load({"--max-missed-pongs", "0"});
  CAF_CHECK(r.what == action::fail);
  CAF_CHECK(r.message.find("max-missed-pongs") != std::string::npos);
  r = load({"--log-level", "loud"});
  CAF_CHECK(r.what == action::fail);
  r = load({"--write-delay", "2s"});
  CAF_CHECK(r.what == action::fail);
  CAF_CHECK(r.message.find("write-delay") != std::string::npos);
  r = load({"--write-delay-min-lag-us", "soon"});
  CAF_CHECK(r.what == action::fail);
  CAF_CHECK(r.message.find("write-delay-min-lag-us") != std::string::npos);
  r = load({"--http-port"});
  CAF_CHECK(r.what == action::fail);
  CAF_CHECK(r.message.find("--http-port needs a value") != std::string::npos);
  // An unknown option is named as such, with a value or without one.
  for (auto args : {std::vector<std::string>{"--bogus"}, {"--bogus", "1"}, {"--bogus=1"}}) {
    r = load(args);
    CAF_CHECK(r.what == action::fail);
    CAF_CHECK(r.message.find("unknown option --bogus") != std::string::npos);
  }
  r = load({"--config"});
  CAF_CHECK(r.what == action::fail);
  CAF_CHECK(r.message.find("--config needs a value") != std::string::npos);
}

CAF_TEST(help lists every option with its default and variable) {
  auto r = load({"--help"});
  CAF_REQUIRE(r.what == action::help);
  for (auto needle : {"--http-port", "ROOMCAST_HTTP_PORT", "default: 8080", "--max-frame-bytes",
                      "default: 65536", "--jwt-secret", "--allowed-origins", "--log-level"})
    CAF_CHECK(r.message.find(needle) != std::string::npos);
  // What the server does over the limit (http_session.cpp), not an HTTP status.
  auto max_conn = r.message.substr(r.message.find("--max-connections"));
  max_conn = max_conn.substr(0, max_conn.find("\n  --", 1));
  CAF_CHECK(max_conn.find("1013 node_full") != std::string::npos);
  CAF_CHECK(max_conn.find("503") == std::string::npos);
}

CAF_TEST(describe masks secrets) {
  auto r = load({"--jwt-secret", "s3cret", "--api-key", "k3y"});
  auto line = describe(r.cfg);
  CAF_CHECK(line.find("s3cret") == std::string::npos);
  CAF_CHECK(line.find("k3y") == std::string::npos);
  CAF_CHECK(line.find("jwt-secret=***") != std::string::npos);
}

CAF_TEST(amqp urls parse into their parts with defaults) {
  amqp_endpoint ep;
  std::string err;
  CAF_REQUIRE(parse_amqp_url("amqp://bob:p%40ss@mq.internal:5673/prod", ep, err));
  CAF_CHECK_EQUAL(ep.user, "bob");
  CAF_CHECK_EQUAL(ep.password, "p@ss");
  CAF_CHECK_EQUAL(ep.host, "mq.internal");
  CAF_CHECK_EQUAL(ep.port, 5673u);
  CAF_CHECK_EQUAL(ep.vhost, "prod");
  CAF_REQUIRE(parse_amqp_url("amqp://localhost", ep, err));
  CAF_CHECK_EQUAL(ep.user, "guest");
  CAF_CHECK_EQUAL(ep.port, 5672u);
  CAF_CHECK_EQUAL(ep.vhost, "/");
  CAF_REQUIRE(parse_amqp_url("amqp://guest:guest@127.0.0.1:5672/%2f", ep, err));
  CAF_CHECK_EQUAL(ep.vhost, "/");
}

CAF_TEST(ipv6 addresses are written in brackets in seeds amqp urls and the advertised address) {
  auto r = load({"--cluster-port", "7000", "--seeds", "[::1]:7001,10.0.0.2:7002,[fe80::2]:7003"});
  CAF_REQUIRE(r.what == action::run);
  CAF_CHECK_EQUAL(r.cfg.seeds.size(), 3u);
  for (auto bad : {"[::1]", "[::1:7001", "[::1]7001", "[]:7001", ":7001"}) {
    r = load({"--cluster-port", "7000", "--seeds", bad});
    CAF_CHECK(r.what == action::fail);
    CAF_CHECK(r.message.find("seeds must be host:port") != std::string::npos);
  }
  amqp_endpoint ep;
  std::string err;
  CAF_REQUIRE(parse_amqp_url("amqp://guest:guest@[::1]:5673/%2f", ep, err));
  CAF_CHECK_EQUAL(ep.host, "::1");
  CAF_CHECK_EQUAL(ep.port, 5673u);
  CAF_REQUIRE(parse_amqp_url("amqp://[::1]", ep, err));
  CAF_CHECK_EQUAL(ep.host, "::1");
  CAF_CHECK_EQUAL(ep.port, 5672u);
  CAF_CHECK(!parse_amqp_url("amqp://[::1/vh", ep, err));
  r = load({"--cluster-port", "7000", "--cluster-advertise", "[fd00::5]"});
  CAF_REQUIRE(r.what == action::run);
  CAF_CHECK_EQUAL(r.cfg.effective_cluster_advertise(), "fd00::5");
  r = load({"--cluster-port", "7000", "--cluster-bind", "::1"});
  CAF_CHECK_EQUAL(r.cfg.effective_cluster_advertise(), "::1");
  r = load({"--cluster-port", "7000", "--cluster-advertise", "fd00::5"});
  CAF_CHECK(r.what == action::run);
  // A port in the advertised address would be looked up as part of a name.
  for (auto bad : {"node-1:7000", "10.0.0.1:7000", "[fd00::5]:7000", "[fd00::5", "[]"}) {
    r = load({"--cluster-port", "7000", "--cluster-advertise", bad});
    CAF_CHECK(r.what == action::fail);
    CAF_CHECK(r.message.find("cluster-advertise is a host or address without a port") !=
              std::string::npos);
  }
}

CAF_TEST(the cluster port may not be the http port on the same address) {
  auto r = load({"--http-port", "7000", "--cluster-port", "7000"});
  CAF_CHECK(r.what == action::fail);
  CAF_CHECK(r.message.find("cluster-port must differ from http-port (both are 7000)")
            != std::string::npos);
  r = load({"--bind", "127.0.0.1", "--http-port", "7000", "--cluster-port", "7000",
            "--cluster-bind", "127.0.0.1"});
  CAF_CHECK(r.what == action::fail);
  // Two addresses may share a port number.
  r = load({"--bind", "127.0.0.1", "--http-port", "7000", "--cluster-port", "7000",
            "--cluster-bind", "10.0.0.1"});
  CAF_CHECK(r.what == action::run);
  r = load({"--http-port", "7000", "--cluster-port", "7001"});
  CAF_CHECK(r.what == action::run);
}

CAF_TEST(a bad amqp url or amqp setting fails with a message naming it) {
  for (auto url : {"http://localhost", "amqp://", "amqp://host:0", "amqp://host:99999",
                   "amqp://host:12x", "amqp://u:p@/vh", "amqp://host/%zz"}) {
    auto r = load({"--amqp-url", url});
    CAF_CHECK(r.what == action::fail);
    CAF_CHECK(r.message.find("amqp-url") != std::string::npos);
  }
  auto r = load({"--amqp-url", "amqp://h", "--amqp-prefetch", "0"});
  CAF_CHECK(r.what == action::fail);
  r = load({"--amqp-url", "amqp://h", "--amqp-reconnect-min", "10s", "--amqp-reconnect-max", "1s"});
  CAF_CHECK(r.what == action::fail);
  r = load({"--amqp-url", "amqp://h", "--amqp-events", "true", "--amqp-prefetch", "10"});
  CAF_REQUIRE(r.what == action::run);
  CAF_CHECK(r.cfg.amqp.events);
  CAF_CHECK_EQUAL(r.cfg.amqp.prefetch, 10u);
}

CAF_TEST(describe masks the password of the amqp url) {
  auto r = load({"--amqp-url", "amqp://bob:s3cret@mq:5672/%2f"});
  auto line = describe(r.cfg);
  CAF_CHECK(line.find("s3cret") == std::string::npos);
  CAF_CHECK(line.find("amqp-url=amqp://bob:***@mq:5672/%2f") != std::string::npos);
}

CAF_TEST(durations longer than a year are refused wherever they come from) {
  for (auto opt : {"--ping-interval", "--handshake-timeout", "--room-idle-timeout",
                   "--drain-timeout", "--failure-timeout", "--amqp-reconnect-max"}) {
    auto r = load({opt, "3000000h"});
    CAF_CHECK(r.what == action::fail);
    CAF_CHECK(r.message.find(std::string{opt}.substr(2)) != std::string::npos);
    CAF_CHECK(r.message.find("365 days") != std::string::npos);
  }
  auto r = load({}, {{"ROOMCAST_PING_INTERVAL", "1e30"}});
  CAF_CHECK(r.what == action::fail);
  r = load({"--room-idle-timeout", "9000h"});
  CAF_CHECK(r.what == action::fail);
  temp_file f{".json", R"({"limits": {"ping-interval": "3000000h"}, "drain-timeout": 1e12})"};
  r = load({"--config", f.path});
  CAF_CHECK(r.what == action::fail);
  // CAF's INI parser wraps this one into a negative number of nanoseconds.
  temp_file ini{".ini", "[limits]\nping-interval=3000000h\n"};
  r = load({"--config", ini.path});
  CAF_CHECK(r.what == action::fail);
  CAF_CHECK_EQUAL(r.message, "config file '" + ini.path
                               + "': limits.ping-interval must be a duration from 0 to 8760h (365 "
                                 "days)");
  r = load({"--room-idle-timeout", "8760h", "--drain-timeout", "365d"});
  CAF_CHECK(r.what == action::fail); // no `d` unit
  r = load({"--room-idle-timeout", "8760h", "--ping-interval", "1.5s"});
  CAF_REQUIRE(r.what == action::run);
  CAF_CHECK_EQUAL(r.cfg.room_idle_timeout.count(), 8760ll * 3600 * 1000);
  CAF_CHECK_EQUAL(r.cfg.limits.ping_interval.count(), 1500);
  r = load({"--ping-interval", "1.2.3s"});
  CAF_CHECK(r.what == action::fail);
}

CAF_TEST(bind must be a numeric address because the listener resolves no names) {
  for (auto addr : {"999.1.1.1", "localhost", "", "1.2.3", "::g"}) {
    auto r = load({"--bind", addr});
    CAF_CHECK(r.what == action::fail);
    CAF_CHECK(r.message.find("bind") != std::string::npos);
  }
  for (auto addr : {"0.0.0.0", "127.0.0.1", "::", "::1", "fe80::1%lo"}) {
    auto r = load({"--bind", addr});
    CAF_CHECK(r.what == action::run);
  }
}

CAF_TEST(file values of the wrong type are refused instead of read as text) {
  // `null` must not become the secret "null": tokens signed with it would pass.
  for (auto text : {R"({"jwt-secret": null})", R"({"api-key": false})", R"({"node-name": null})",
                    R"({"node-name": true})", R"({"bind": 127})",
                    R"({"global": {"jwt-secret": {}}})",
                    R"({"limits": {"rate-limit": [1]}})", R"({"http-port": null})",
                    R"({"allow-broadcast": 1})", R"({"limits": {"ping-interval": true}})",
                    R"({"allowed-origins": [1, 2]})", R"({"seeds": null})"}) {
    temp_file f{".json", text};
    auto r = load({"--config", f.path});
    CAF_CHECK(r.what == action::fail);
    CAF_CHECK(r.message.find(" must be ") != std::string::npos);
  }
  temp_file ini{".ini", "[global]\njwt-secret=true\n"};
  auto r = load({"--config", ini.path});
  CAF_CHECK(r.what == action::fail);
  CAF_CHECK(r.message.find("jwt-secret must be a string") != std::string::npos);
}

CAF_TEST(file values keep their documented forms) {
  temp_file f{".json", R"({"http-port": 9000, "node-name": "edge-1", "allow-broadcast": false,
                          "allowed-origins": ["https://a", "https://b"], "seeds": "h:1,h:2",
                          "cluster-port": 9100, "drain-timeout": 2.5, "amqp-reconnect-max": "7s",
                          "limits": {"rate-limit": 0.5, "ping-interval": "15s",
                                     "max-connections": "7"}})"};
  auto r = load({"--config", f.path});
  CAF_REQUIRE(r.what == action::run);
  CAF_CHECK_EQUAL(r.cfg.http_port, 9000u);
  CAF_CHECK_EQUAL(r.cfg.node_name, "edge-1");
  CAF_CHECK(!r.cfg.allow_broadcast);
  CAF_CHECK_EQUAL(r.cfg.allowed_origins.size(), 2u);
  CAF_CHECK_EQUAL(r.cfg.seeds.size(), 2u);
  CAF_CHECK_EQUAL(r.cfg.drain_timeout.count(), 2500);
  CAF_CHECK_EQUAL(r.cfg.amqp.reconnect_max.count(), 7000);
  CAF_CHECK_EQUAL(r.cfg.limits.rate_limit, 0.5);
  CAF_CHECK_EQUAL(r.cfg.limits.ping_interval.count(), 15000);
  CAF_CHECK_EQUAL(r.cfg.limits.max_connections, 7u);
  temp_file ini{".ini", "[global]\nallow-broadcast=false\nroom-idle-timeout=48h\n"
                        "drain-timeout=3\n[limits]\nrate-limit=2.5\nmax-connections=9\n"};
  r = load({"--config", ini.path});
  CAF_REQUIRE(r.what == action::run);
  CAF_CHECK(!r.cfg.allow_broadcast);
  CAF_CHECK_EQUAL(r.cfg.room_idle_timeout.count(), 48ll * 3600 * 1000); // CAF prints it "2d"
  CAF_CHECK_EQUAL(r.cfg.drain_timeout.count(), 3000);
  CAF_CHECK_EQUAL(r.cfg.limits.rate_limit, 2.5);
  CAF_CHECK_EQUAL(r.cfg.limits.max_connections, 9u);
}

CAF_TEST(a config path that is a directory or unreadable is refused) {
  auto r = load({"--config", "/tmp"});
  CAF_CHECK(r.what == action::fail);
  CAF_CHECK(r.message.find("/tmp") != std::string::npos);
  CAF_CHECK(r.message.find("directory") != std::string::npos);
  r = load({}, {{"ROOMCAST_CONFIG", "/tmp/"}});
  CAF_CHECK(r.what == action::fail);
  if (geteuid() != 0) { // root reads any file
    temp_file f{".json", "{}"};
    ::chmod(f.path.c_str(), 0);
    r = load({"--config", f.path});
    CAF_CHECK(r.what == action::fail);
    CAF_CHECK(r.message.find("cannot read") != std::string::npos);
  }
}

CAF_TEST(values that would quietly disable a check or crash the node are refused) {
  auto refused = [](std::vector<std::string> args, std::map<std::string, std::string> env,
                    const std::string& names) {
    auto r = load(std::move(args), std::move(env));
    CAF_CHECK(r.what == action::fail);
    CAF_MESSAGE(r.message);
    CAF_CHECK(r.message.find(names) != std::string::npos);
  };
  // Blank secrets, keys and lists would mean "no security".
  refused({"--jwt-secret", "   "}, {}, "jwt-secret");
  refused({}, {{"ROOMCAST_API_KEY", " \t"}}, "api-key");
  refused({"--allowed-origins", ","}, {}, "allowed-origins");
  refused({"--allowed-origins", "https://a.example,,https://b.example"}, {}, "allowed-origins");
  // nan and inf compare false with every bound; hex is not what anyone means.
  for (auto v : {"nan", "inf", "-inf", "0x10", "1e999"})
    refused({"--rate-limit", v}, {}, "rate-limit");
  // Ports beyond 64 bits threw out of std::stoul.
  refused({"--cluster-port", "7000", "--seeds", "a:99999999999999999999"}, {}, "seeds");
  refused({"--max-frame-bytes", "18446744073709551615", "--max-queue-bytes",
           "18446744073709551615"}, {}, "max-frame-bytes");
  refused({"--threads", "100000"}, {}, "threads");
  refused({"--actor-threads", "4294967295"}, {}, "actor-threads");
  refused({"--max-rooms-per-connection", "0"}, {}, "max-rooms-per-connection");
  refused({"--write-delay", "500us"}, {}, "write-delay");
  refused({"--write-delay", "0.5ms"}, {}, "write-delay");
  refused({"--config", ""}, {}, "--config");
  refused({}, {{"ROOMCAST_CONFIG", ""}}, "ROOMCAST_CONFIG");
  temp_file ini{".ini", "[global]\nwrite-delay=500us\n"};
  refused({"--config", ini.path}, {}, "write-delay");
  // What is still fine.
  auto r = load({"--rate-limit", "2.5e1", "--allowed-origins", " https://a.example , https://b.example ",
            "--write-delay", "0.5s", "--jwt-secret", " s3cret ", "--threads", "256"});
  CAF_REQUIRE(r.what == action::run);
  CAF_CHECK_EQUAL(r.cfg.limits.rate_limit, 25.0);
  CAF_CHECK_EQUAL(r.cfg.allowed_origins.size(), 2u);
  CAF_CHECK_EQUAL(r.cfg.write_delay.count(), 500);
  CAF_CHECK_EQUAL(r.cfg.jwt_secret, "s3cret");
}

CAF_TEST(errors about the amqp url do not show its password) {
  for (auto url : {"amqp://user:S3CRET@:5672", "amqp://user:S3CRET@host:99999",
                   "amqp://u:S3/CRET@host", "amqp://user:S3CRET%zz@host"}) {
    auto r = load({"--amqp-url", url});
    CAF_CHECK(r.what == action::fail);
    CAF_MESSAGE(r.message);
    CAF_CHECK(r.message.find("S3") == std::string::npos);
    CAF_CHECK(r.message.find("***") != std::string::npos);
  }
}
