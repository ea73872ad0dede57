// roomcast-bench: the load generator of bench/run.
//
// Opens many WebSocket connections to one or more servers speaking the
// roomcast protocol subset (welcome, join -> joined, publish -> message with
// seq, ack with id), runs one scenario and prints one JSON line of results.
//
// Shape: one io_context per thread, each owning a share of the connections
// (no strands, no locks on the receive path), plus one thread for the
// publisher of the single-room scenarios so its timing does not queue behind
// thousands of receives. After the HTTP upgrade (Beast) every connection
// reads raw frames into its own buffer and scans them for the few fields it
// needs (wire.hpp): no per-frame allocation and no JSON parse.

#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "histogram.hpp"
#include "proc_stats.hpp"
#include "wire.hpp"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace rc::bench;

namespace {

// -- options ------------------------------------------------------------------

enum class scenario { idle, fanout, tick, many_rooms };

struct options {
  std::vector<std::string> urls;
  std::string scenario_name = "fanout";
  scenario kind = scenario::fanout;
  std::string label;
  long connections = -1;  ///< subscribers / connections; -1 = scenario default
  long room_size = 10;    ///< idle and many-rooms
  int threads = 2;        ///< receiving threads (the publisher gets one more)
  double duration = -1;   ///< publishing seconds; -1 = scenario default
  long window = 4;        ///< fanout: publishes in flight (unacked or undelivered)
  double rate = 10;       ///< tick: publishes per second
  double interval = 1;    ///< many-rooms: seconds between publishes of one room
  double hold = 3;        ///< idle: seconds to hold the connections before measuring
  long payload_bytes = 0; ///< padding added to every publish's data
  long concurrency = 256; ///< handshakes in progress at once
  double connect_timeout = 120;
  double drain_timeout = 10; ///< seconds to wait for the last deliveries
  std::size_t read_buffer = 8192;
  std::vector<int> pids; ///< server processes to measure
  std::string metric;    ///< Prometheus counter to diff over the publishing phase
  std::string writes_metric; ///< the servers' socket writes, for frames per write
  bool socketio = false; ///< Socket.IO peer: Engine.IO v4 packets around our frames
};

[[noreturn]] void usage(const std::string& why) {
  if (!why.empty())
    std::cerr << "roomcast-bench: " << why << "\n";
  std::cerr << "usage: roomcast-bench --scenario idle|fanout|tick|many-rooms|cluster\n"
               "         --url ws://127.0.0.1:PORT/ws [--url ...] [--pid PID[,PID...]]\n"
               "         [--connections N] [--room-size N] [--duration S] [--window N]\n"
               "         [--rate R] [--interval S] [--hold S] [--threads N] "
               "[--payload-bytes N]\n"
               "         [--concurrency N] [--connect-timeout S] [--drain-timeout S]\n"
               "         [--read-buffer BYTES] [--metric NAME] [--writes-metric NAME] [--label TEXT]\n"
               "         [--protocol roomcast|socketio]\n";
  std::exit(why.empty() ? 0 : 2);
}

options parse_options(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string key = argv[i];
    std::string value;
    if (key == "--help" || key == "-h")
      usage("");
    if (auto eq = key.find('='); eq != std::string::npos) {
      value = key.substr(eq + 1);
      key = key.substr(0, eq);
    } else if (key.rfind("--", 0) == 0) {
      if (i + 1 >= argc)
        usage("missing value for " + key);
      value = argv[++i];
    } else {
      o.urls.push_back(key); // a bare argument is a URL
      continue;
    }
    auto num = [&] {
      try {
        return std::stod(value);
      } catch (...) {
        usage("not a number for " + key + ": " + value);
      }
    };
    if (key == "--url")
      o.urls.push_back(value);
    else if (key == "--scenario")
      o.scenario_name = value;
    else if (key == "--label")
      o.label = value;
    else if (key == "--connections" || key == "--subscribers")
      o.connections = static_cast<long>(num());
    else if (key == "--room-size")
      o.room_size = static_cast<long>(num());
    else if (key == "--threads")
      o.threads = static_cast<int>(num());
    else if (key == "--duration")
      o.duration = num();
    else if (key == "--window")
      o.window = static_cast<long>(num());
    else if (key == "--rate")
      o.rate = num();
    else if (key == "--interval")
      o.interval = num();
    else if (key == "--hold")
      o.hold = num();
    else if (key == "--payload-bytes")
      o.payload_bytes = static_cast<long>(num());
    else if (key == "--concurrency")
      o.concurrency = static_cast<long>(num());
    else if (key == "--connect-timeout")
      o.connect_timeout = num();
    else if (key == "--drain-timeout")
      o.drain_timeout = num();
    else if (key == "--read-buffer")
      o.read_buffer = static_cast<std::size_t>(num());
    else if (key == "--metric")
      o.metric = value;
    else if (key == "--writes-metric")
      o.writes_metric = value;
    else if (key == "--protocol") {
      if (value != "roomcast" && value != "socketio")
        usage("--protocol is roomcast or socketio");
      o.socketio = value == "socketio";
    } else if (key == "--pid") {
      std::size_t at = 0;
      while (at <= value.size()) {
        auto comma = value.find(',', at);
        auto part =
            value.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
        if (!part.empty())
          o.pids.push_back(std::stoi(part));
        if (comma == std::string::npos)
          break;
        at = comma + 1;
      }
    } else
      usage("unknown option " + key);
  }
  if (o.urls.empty())
    usage("no --url");
  const auto& s = o.scenario_name;
  if (s == "idle")
    o.kind = scenario::idle;
  else if (s == "fanout" || s == "cluster")
    o.kind =
        scenario::fanout; // cluster is fanout with subscribers spread over several URLs
  else if (s == "tick")
    o.kind = scenario::tick;
  else if (s == "many-rooms")
    o.kind = scenario::many_rooms;
  else
    usage("unknown scenario " + s);
  if (o.connections < 0)
    o.connections = o.kind == scenario::idle     ? 15000
                    : o.kind == scenario::fanout ? 2000
                    : o.kind == scenario::tick   ? 5000
                                                 : 10000;
  if (o.duration < 0)
    o.duration = o.kind == scenario::tick ? 20 : o.kind == scenario::many_rooms ? 10 : 5;
  if (o.threads < 1 || o.room_size < 2 || o.window < 1 || o.rate <= 0 ||
      o.interval <= 0 || o.connections < 1)
    usage("a size is out of range");
  return o;
}

struct target {
  std::string host, port, path;
  tcp::endpoint endpoint;
};

target parse_url(const std::string& url) {
  constexpr std::string_view scheme = "ws://";
  if (url.rfind(scheme, 0) != 0)
    usage("only ws:// URLs: " + url);
  auto rest = url.substr(scheme.size());
  auto slash = rest.find('/');
  auto hostport = rest.substr(0, slash);
  target t;
  t.path = slash == std::string::npos ? "/" : rest.substr(slash);
  auto colon = hostport.rfind(':');
  t.host = hostport.substr(0, colon);
  t.port = colon == std::string::npos ? "80" : hostport.substr(colon + 1);
  asio::io_context ioc;
  tcp::resolver resolver{ioc};
  t.endpoint = *resolver.resolve(t.host, t.port).begin();
  return t;
}

// -- clock --------------------------------------------------------------------

using clock_type = std::chrono::steady_clock;
const clock_type::time_point epoch = clock_type::now();

/// Nanoseconds since the program started; the timestamps carried in `data`.
std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - epoch)
      .count();
}

double seconds(std::int64_t ns) {
  return static_cast<double>(ns) / 1e9;
}

// -- shared run state ---------------------------------------------------------

struct worker;

/// State shared between the threads. Each worker writes only its own
/// counters; these are the few cross-thread ones, all atomics.
struct run_state {
  options opt;
  std::vector<target> targets;
  std::vector<std::unique_ptr<worker>> workers; // receivers, then the publisher's
  worker* pub_worker = nullptr;
  long subscribers = 0; ///< receivers per message in the single-room scenarios
  std::string padding;
  // Publisher (fanout, tick).
  std::atomic<bool> stop_publishing{false};
  std::atomic<bool> pub_waiting{false};
  std::atomic<std::int64_t> first_publish_ns{0};
  std::atomic<bool> shutting_down{false};

  std::uint64_t delivered_total() const;
};

// -- connections ---------------------------------------------------------------

/// Beast HTTP state needed only during the upgrade.
struct handshake {
  http::request<http::empty_body> req;
  http::response<http::string_body> res;
  beast::flat_buffer buffer;
};

enum class conn_state { idle, connecting, upgrading, open, joined, dead };

struct conn {
  conn(worker& w, std::uint32_t index, std::uint32_t url, std::uint32_t room);

  worker& w;
  std::uint32_t index;
  std::uint32_t url;
  std::uint32_t room;
  bool publishes = false;    ///< many-rooms: this member publishes for its room
  bool is_publisher = false; ///< fanout/tick: the dedicated publisher
  conn_state state = conn_state::idle;
  tcp::socket sock;
  std::unique_ptr<char[]> rbuf;
  std::size_t rlen = 0;
  std::size_t rcap = 0;
  std::string out;  ///< being written
  std::string next; ///< queued behind it
  bool writing = false;
  bool batching = false; ///< publishes being queued: the caller flushes once
  std::uint64_t last_seq = 0;
  std::uint32_t mask;
  std::unique_ptr<handshake> hs;
  std::unique_ptr<asio::steady_timer> timer;
  std::uint64_t sent = 0;   ///< publishes sent
  std::uint64_t acked = 0;  ///< publishes acknowledged
  std::uint64_t fanout = 0; ///< receivers of each of its publishes (echo is off)
  std::int64_t t0 = 0;      ///< first intended publish time (tick, many-rooms)
};

struct worker {
  worker(run_state& rs, int id) : rs(rs), id(id), guard(asio::make_work_guard(ioc)) {}

  run_state& rs;
  int id;
  asio::io_context ioc{1};
  asio::executor_work_guard<asio::io_context::executor_type> guard;
  std::thread thread;
  std::vector<std::unique_ptr<conn>> conns;
  std::size_t next_connect = 0;
  long in_progress = 0;
  long max_in_progress = 1;

  // Read by the main thread while running.
  std::atomic<std::uint64_t> joined{0};
  std::atomic<std::uint64_t> failed{0};
  std::atomic<std::uint64_t> delivered{0};
  std::atomic<std::uint64_t> closed{0};
  std::atomic<std::uint64_t> published{0};
  std::atomic<std::uint64_t> acked{0};
  std::atomic<std::uint64_t> expected{0}; ///< deliveries owed for the acked publishes
  std::atomic<std::uint64_t> errors{0};
  std::atomic<std::int64_t> last_rx_ns{0};
  // Read by the main thread only after the worker stopped.
  std::uint64_t gaps = 0;
  std::uint64_t dups = 0;
  histogram latency;
  std::vector<std::string> error_samples;
  std::map<int, std::uint64_t> close_codes;

  void connect_more();
  void start(conn& c);
  void fail(conn& c, std::string what, const beast::error_code& ec);
  void upgrade(conn& c);
  void opened(conn& c);
  void read(conn& c);
  void on_read(conn& c, std::size_t n);
  void on_text(conn& c, char* p, std::size_t n, std::int64_t& now, std::uint64_t& msgs);
  void send(conn& c, opcode op, std::string_view payload);
  void send_request(conn& c, std::string_view json);
  void flush(conn& c);
  void publish(conn& c, std::int64_t t);
  void pump(conn& c);
  void schedule_tick(conn& c);
  void schedule_room(conn& c);
  void close_all();
};

std::uint64_t run_state::delivered_total() const {
  std::uint64_t sum = 0;
  for (auto& w : workers)
    sum += w->delivered.load(std::memory_order_relaxed);
  return sum;
}

conn::conn(worker& w, std::uint32_t index, std::uint32_t url, std::uint32_t room)
    : w(w), index(index), url(url), room(room), sock(w.ioc),
      mask(static_cast<std::uint32_t>(index * 2654435761u) | 1u) {}

std::string room_name(const run_state& rs, const conn& c) {
  switch (rs.opt.kind) {
  case scenario::idle:
    return "idle-" + std::to_string(c.room);
  case scenario::many_rooms:
    return "mr-" + std::to_string(c.room);
  case scenario::tick:
    return "tick";
  case scenario::fanout:
    break;
  }
  return "fan";
}

std::string user_name(const conn& c) {
  return c.is_publisher ? std::string{"pub"} : "u" + std::to_string(c.index);
}

// -- connecting -----------------------------------------------------------------

void worker::connect_more() {
  while (in_progress < max_in_progress && next_connect < conns.size()) {
    ++in_progress;
    start(*conns[next_connect++]);
  }
}

void worker::start(conn& c) {
  c.state = conn_state::connecting;
  c.sock.async_connect(rs.targets[c.url].endpoint, [this, &c](beast::error_code ec) {
    if (ec)
      return fail(c, "connect", ec);
    c.sock.set_option(tcp::no_delay{true});
    upgrade(c);
  });
}

void worker::fail(conn& c, std::string what, const beast::error_code& ec) {
  bool was_joined = c.state == conn_state::joined;
  bool counted = c.state == conn_state::dead;
  c.state = conn_state::dead;
  beast::error_code ignored;
  c.sock.close(ignored);
  if (counted || rs.shutting_down.load(std::memory_order_relaxed))
    return;
  if (error_samples.size() < 5)
    error_samples.push_back(ec ? what + ": " + ec.message() : what);
  if (was_joined) {
    closed.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  // Still handshaking or joining: it counts against the connect phase.
  failed.fetch_add(1, std::memory_order_relaxed);
  --in_progress;
  connect_more();
}

void worker::upgrade(conn& c) {
  c.state = conn_state::upgrading;
  c.hs = std::make_unique<handshake>();
  auto& t = rs.targets[c.url];
  auto& req = c.hs->req;
  req.method(http::verb::get);
  req.target(t.path + (t.path.find('?') == std::string::npos ? "?" : "&") +
             "user=" + user_name(c));
  req.version(11);
  req.set(http::field::host, t.host + ":" + t.port);
  req.set(http::field::upgrade, "websocket");
  req.set(http::field::connection, "Upgrade");
  // Any 16 bytes base64-encoded; the server's answer is not verified (loopback, our
  // servers).
  req.set(http::field::sec_websocket_key, "dGhlIHNhbXBsZSBub25jZQ==");
  req.set(http::field::sec_websocket_version, "13");
  http::async_write(c.sock, req, [this, &c](beast::error_code ec, std::size_t) {
    if (ec)
      return fail(c, "upgrade write", ec);
    http::async_read(c.sock, c.hs->buffer, c.hs->res,
                     [this, &c](beast::error_code ec, std::size_t) {
                       if (ec)
                         return fail(c, "upgrade read", ec);
                       if (c.hs->res.result() != http::status::switching_protocols)
                         return fail(c,
                                     "upgrade refused: HTTP " +
                                         std::to_string(c.hs->res.result_int()) + " " +
                                         c.hs->res.body(),
                                     beast::error_code{});
                       opened(c);
                     });
  });
}

void worker::opened(conn& c) {
  c.state = conn_state::open;
  // Frames the server sent right behind the 101 (the welcome) may sit in Beast's buffer.
  auto left = c.hs->buffer.data();
  c.rcap = std::max(rs.opt.read_buffer, left.size());
  c.rbuf = std::make_unique<char[]>(c.rcap);
  c.rlen = left.size();
  std::memcpy(c.rbuf.get(), left.data(), c.rlen);
  c.hs.reset();
  if (c.rlen > 0)
    on_read(c, 0);
  else
    read(c);
}

// -- receiving ------------------------------------------------------------------

void worker::read(conn& c) {
  c.sock.async_read_some(asio::buffer(c.rbuf.get() + c.rlen, c.rcap - c.rlen),
                         [this, &c](beast::error_code ec, std::size_t n) {
                           if (ec)
                             return fail(c, "read", ec);
                           on_read(c, n);
                         });
}

void worker::on_read(conn& c, std::size_t n) {
  c.rlen += n;
  std::size_t at = 0;
  std::int64_t now = -1; // taken once per read, when a timestamped frame needs it
  std::uint64_t msgs = 0;
  while (c.state != conn_state::dead) {
    frame_view f;
    auto r = parse_frame(c.rbuf.get() + at, c.rlen - at, f);
    if (r == parse_result::invalid) {
      fail(c, "frame", beast::error_code{});
      break;
    }
    if (r == parse_result::incomplete) {
      if (f.total > c.rcap) {
        // A frame larger than the buffer: grow once, keep the bytes.
        auto bigger = std::make_unique<char[]>(f.total);
        std::memcpy(bigger.get(), c.rbuf.get() + at, c.rlen - at);
        c.rbuf = std::move(bigger);
        c.rcap = f.total;
        c.rlen -= at;
        at = 0;
      }
      break;
    }
    switch (f.op) {
    case opcode::text:
      if (!f.fin) // our servers never fragment; say so instead of misreading
        fail(c, "fragmented frame", beast::error_code{});
      else
        on_text(c, f.payload, f.size, now, msgs);
      break;
    case opcode::ping:
      send(c, opcode::pong, {f.payload, f.size});
      break;
    case opcode::close: {
      int code = f.size >= 2 ? (static_cast<unsigned char>(f.payload[0]) << 8) |
                                   static_cast<unsigned char>(f.payload[1])
                             : 1005;
      if (!rs.shutting_down.load(std::memory_order_relaxed))
        ++close_codes[code];
      fail(c, "closed by server", beast::error_code{});
      break;
    }
    default:
      break;
    }
    at += f.total;
  }
  if (msgs > 0) {
    last_rx_ns.store(now, std::memory_order_relaxed);
    delivered.fetch_add(msgs, std::memory_order_seq_cst);
    if (rs.pub_waiting.load(std::memory_order_relaxed) &&
        rs.pub_waiting.exchange(false)) {
      auto* pc = rs.pub_worker->conns.front().get();
      asio::post(rs.pub_worker->ioc, [pc] { pc->w.pump(*pc); });
    }
  }
  if (c.state == conn_state::dead)
    return;
  if (at > 0) {
    std::memmove(c.rbuf.get(), c.rbuf.get() + at, c.rlen - at);
    c.rlen -= at;
  }
  read(c);
}

void worker::on_text(conn& c, char* p, std::size_t n, std::int64_t& now,
                     std::uint64_t& msgs) {
  if (rs.opt.socketio && n > 0 && p[0] != '4') {
    // Engine.IO: "0{...}" open -> connect the default namespace; "2" ping -> "3" pong.
    if (p[0] == '0')
      send(c, opcode::text, "40");
    else if (p[0] == '2')
      send(c, opcode::text, "3");
    return;
  }
  auto type = scan_type(p, n);
  if (type == "message") {
    ++msgs;
    if (now < 0)
      now = now_ns();
    if (auto t = scan_uint(p, n, R"("t":)"))
      latency.record(now - static_cast<std::int64_t>(*t));
    if (auto seq = scan_uint(p, n, R"("seq":)")) {
      if (*seq == c.last_seq + 1)
        c.last_seq = *seq;
      else if (*seq > c.last_seq + 1) {
        gaps += *seq - c.last_seq - 1;
        c.last_seq = *seq;
      } else
        ++dups;
    }
  } else if (type == "ack") {
    ++c.acked;
    expected.fetch_add(c.fanout, std::memory_order_relaxed);
    acked.fetch_add(1, std::memory_order_relaxed);
    if (c.is_publisher && rs.opt.kind == scenario::fanout)
      pump(c);
  } else if (type == "joined") {
    if (c.state == conn_state::open) {
      c.state = conn_state::joined;
      c.last_seq = scan_uint(p, n, R"("seq":)").value_or(0);
      joined.fetch_add(1, std::memory_order_relaxed);
      --in_progress;
      connect_more();
    }
  } else if (type == "welcome") {
    std::string join = R"({"type":"join","room":")" + room_name(rs, c) + R"(","id":0})";
    send_request(c, join);
  } else if (type == "error") {
    errors.fetch_add(1, std::memory_order_relaxed);
    if (error_samples.size() < 5)
      error_samples.emplace_back(p, std::min<std::size_t>(n, 200));
  }
}

// -- sending --------------------------------------------------------------------

void worker::send(conn& c, opcode op, std::string_view payload) {
  append_frame(c.writing ? c.next : c.out, op, payload, true, c.mask);
  if (!c.writing && !c.batching)
    flush(c);
}

/// Queues a request; Socket.IO gets it as the event "r".
void worker::send_request(conn& c, std::string_view json) {
  if (!rs.opt.socketio)
    return send(c, opcode::text, json);
  std::string event;
  event.reserve(json.size() + 8);
  event.append(R"(42["r",)").append(json).append("]");
  send(c, opcode::text, event);
}

void worker::flush(conn& c) {
  if (c.out.empty() || c.state == conn_state::dead) {
    c.writing = false;
    return;
  }
  c.writing = true;
  asio::async_write(c.sock, asio::buffer(c.out),
                    [this, &c](beast::error_code ec, std::size_t) {
                      if (ec)
                        return fail(c, "write", ec);
                      c.out.clear();
                      std::swap(c.out, c.next);
                      flush(c);
                    });
}

/// Queues one publish stamped with `t` (its intended send time). The
/// caller flushes; several publishes then leave in one write.
void worker::publish(conn& c, std::int64_t t) {
  char head[160];
  auto room = room_name(rs, c);
  int hn = std::snprintf(head, sizeof head,
                         R"({"type":"publish","room":"%s","id":%llu,"data":{"t":%lld)",
                         room.c_str(), static_cast<unsigned long long>(c.sent + 1),
                         static_cast<long long>(t));
  std::string payload{head, static_cast<std::size_t>(hn)};
  if (!rs.padding.empty())
    payload += R"(,"p":")" + rs.padding + '"';
  payload += "}}";
  send_request(c, payload);
  ++c.sent;
  published.fetch_add(1, std::memory_order_relaxed);
  std::int64_t expected = 0;
  rs.first_publish_ns.compare_exchange_strong(expected, t);
}

/// Fanout: publishes while fewer than `window` messages are unacknowledged
/// and the subscribers as a whole are less than `window` messages behind,
/// so the server's queues stay bounded whatever its speed.
void worker::pump(conn& c) {
  if (c.state == conn_state::dead)
    return;
  const auto window = static_cast<std::uint64_t>(rs.opt.window);
  const auto subs = static_cast<std::uint64_t>(rs.subscribers);
  c.batching = true; // one write for the whole burst
  while (!rs.stop_publishing.load(std::memory_order_relaxed) &&
         c.sent - c.acked < window) {
    auto delivered = rs.delivered_total();
    if (c.sent * subs > delivered + window * subs) {
      // Receivers wake us (on_read); re-check after raising the flag so a
      // delivery between the check and the flag is not missed.
      rs.pub_waiting.store(true, std::memory_order_seq_cst);
      if (c.sent * subs > rs.delivered_total() + window * subs)
        break;
      if (!rs.pub_waiting.exchange(false))
        break; // a receiver already posted a wake-up
    }
    publish(c, now_ns());
  }
  c.batching = false;
  if (!c.writing)
    flush(c);
}

/// Tick: publish k is stamped with its intended time t0 + k/rate, so a late
/// timer shows up as latency (no coordinated omission).
void worker::schedule_tick(conn& c) {
  auto total = static_cast<std::uint64_t>(rs.opt.rate * rs.opt.duration + 0.5);
  if (c.sent >= total || c.state == conn_state::dead)
    return;
  auto period_ns = static_cast<std::int64_t>(1e9 / rs.opt.rate);
  auto intended = c.t0 + static_cast<std::int64_t>(c.sent) * period_ns;
  c.timer->expires_at(epoch + std::chrono::nanoseconds{intended});
  c.timer->async_wait([this, &c, intended](beast::error_code ec) {
    if (ec)
      return;
    publish(c, intended);
    if (!c.writing)
      flush(c);
    schedule_tick(c);
  });
}

/// Many rooms: this room's publisher, once per interval from its phase.
void worker::schedule_room(conn& c) {
  auto total = static_cast<std::uint64_t>(rs.opt.duration / rs.opt.interval + 0.5);
  if (c.sent >= total || c.state == conn_state::dead)
    return;
  auto period_ns = static_cast<std::int64_t>(rs.opt.interval * 1e9);
  auto intended = c.t0 + static_cast<std::int64_t>(c.sent) * period_ns;
  c.timer->expires_at(epoch + std::chrono::nanoseconds{intended});
  c.timer->async_wait([this, &c, intended](beast::error_code ec) {
    if (ec)
      return;
    publish(c, intended);
    if (!c.writing)
      flush(c);
    schedule_room(c);
  });
}

void worker::close_all() {
  for (auto& c : conns) {
    beast::error_code ignored;
    if (c->timer)
      c->timer->cancel();
    c->sock.close(ignored);
    c->state = conn_state::dead;
  }
  guard.reset();
}

// -- the main thread --------------------------------------------------------------

/// Polls `done` every 5 ms until it holds or `limit_s` passes; true if it held.
template <class Pred> bool wait_for(Pred done, double limit_s) {
  auto until = clock_type::now() + std::chrono::duration<double>(limit_s);
  while (!done()) {
    if (clock_type::now() >= until)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds{5});
  }
  return true;
}

/// The servers' CPU seconds since `from` once they have gone quiet: sampled
/// every 250 ms until two samples in a row add less than one clock tick
/// (10 ms), or until `limit_s` passes.
double cpu_until_quiet(const std::vector<int>& pids, double from, double limit_s) {
  auto until = clock_type::now() + std::chrono::duration<double>(limit_s);
  double last = cpu_seconds(pids);
  int quiet = 0;
  while (quiet < 2 && clock_type::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds{250});
    double now = cpu_seconds(pids);
    quiet = now - last < 0.01 ? quiet + 1 : 0;
    last = now;
  }
  return last - from;
}

void sleep_s(double s) {
  std::this_thread::sleep_for(std::chrono::duration<double>(s));
}

/// Sum of the samples of Prometheus metric `name` at one server (0 on failure).
double scrape_metric(const target& t, const std::string& name) {
  try {
    asio::io_context ioc;
    tcp::socket sock{ioc};
    sock.connect(t.endpoint);
    http::request<http::empty_body> req{http::verb::get, "/metrics", 11};
    req.set(http::field::host, t.host);
    http::write(sock, req);
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    http::read(sock, buf, res);
    double sum = 0;
    std::istringstream lines{res.body()};
    std::string line;
    // `name` alone sums every series of the metric; `name{labels}` picks one.
    bool one_series = name.find('{') != std::string::npos;
    while (std::getline(lines, line)) {
      if (line.rfind(name, 0) != 0 || line.size() <= name.size())
        continue;
      char after = line[name.size()];
      if (after != ' ' && (one_series || after != '{'))
        continue;
      sum += std::stod(line.substr(line.rfind(' ') + 1));
    }
    return sum;
  } catch (const std::exception&) {
    return 0;
  }
}

/// Sum of metric `name` over every server (0 for none).
double scrape_all(const run_state& rs, const std::string& name) {
  if (name.empty())
    return 0;
  double sum = 0;
  for (auto& t : rs.targets)
    sum += scrape_metric(t, name);
  return sum;
}

template <class F> std::uint64_t sum_of(const run_state& rs, F field) {
  std::uint64_t sum = 0;
  for (auto& w : rs.workers)
    sum += field(*w).load(std::memory_order_relaxed);
  return sum;
}

double ms(std::uint64_t ns) {
  return static_cast<double>(ns) / 1e6;
}

} // namespace

int main(int argc, char** argv) {
  run_state rs;
  rs.opt = parse_options(argc, argv);
  auto& opt = rs.opt;
  for (auto& url : opt.urls)
    rs.targets.push_back(parse_url(url));
  rs.padding.assign(static_cast<std::size_t>(std::max(0L, opt.payload_bytes)), 'x');

  // -- lay out connections over threads and URLs
  const bool single_room = opt.kind == scenario::fanout || opt.kind == scenario::tick;
  for (int i = 0; i < opt.threads; ++i)
    rs.workers.push_back(std::make_unique<worker>(rs, i));
  for (long i = 0; i < opt.connections; ++i) {
    auto& w = *rs.workers[static_cast<std::size_t>(i) % rs.workers.size()];
    auto room = single_room ? 0u : static_cast<std::uint32_t>(i / opt.room_size);
    auto c = std::make_unique<conn>(
        w, static_cast<std::uint32_t>(i),
        static_cast<std::uint32_t>(i % static_cast<long>(rs.targets.size())), room);
    if (opt.kind == scenario::many_rooms && i % opt.room_size == 0) {
      c->publishes = true;
      c->fanout =
          static_cast<std::uint64_t>(std::min(opt.room_size, opt.connections - i) - 1);
      c->timer = std::make_unique<asio::steady_timer>(w.ioc);
    }
    w.conns.push_back(std::move(c));
  }
  for (auto& w : rs.workers)
    w->max_in_progress = std::max(1L, opt.concurrency / opt.threads);
  if (single_room) {
    // The publisher: its own thread, on the first URL, member of the room.
    rs.workers.push_back(std::make_unique<worker>(rs, opt.threads));
    rs.pub_worker = rs.workers.back().get();
    auto c = std::make_unique<conn>(*rs.pub_worker,
                                    static_cast<std::uint32_t>(opt.connections), 0u, 0u);
    c->is_publisher = true;
    c->fanout = static_cast<std::uint64_t>(opt.connections);
    c->timer = std::make_unique<asio::steady_timer>(rs.pub_worker->ioc);
    rs.pub_worker->conns.push_back(std::move(c));
    rs.subscribers = opt.connections;
  }
  for (auto& w : rs.workers)
    w->thread = std::thread{[&w = *w] { w.ioc.run(); }};

  nlohmann::ordered_json out;
  out["scenario"] = opt.scenario_name;
  if (!opt.label.empty())
    out["server"] = opt.label;
  out["urls"] = opt.urls.size();
  out["connections"] = opt.connections;

  // -- connect and join every receiver
  long rss_before = rss_kib(opt.pids);
  double cpu_before_connect = cpu_seconds(opt.pids);
  auto t_connect = now_ns();
  auto receivers = static_cast<std::uint64_t>(opt.connections);
  for (std::size_t i = 0; i < static_cast<std::size_t>(opt.threads); ++i)
    asio::post(rs.workers[i]->ioc, [&w = *rs.workers[i]] { w.connect_more(); });
  auto settled = [&] {
    return sum_of(
               rs, [](worker & w) -> auto& { return w.joined; }) +
               sum_of(
                   rs, [](worker & w) -> auto& { return w.failed; }) >=
           receivers;
  };
  bool connect_ok = wait_for(settled, opt.connect_timeout);
  auto joined = sum_of(
      rs, [](worker & w) -> auto& { return w.joined; });
  auto connect_s = seconds(now_ns() - t_connect);
  out["connected"] = joined;
  out["failed"] = receivers - std::min(receivers, joined); // refused, broken or timed out
  if (!connect_ok)
    out["connect_timed_out"] = true;
  out["connect_s"] = connect_s;
  out["connect_cpu_s"] = cpu_seconds(opt.pids) - cpu_before_connect;

  bool publisher_ok = true;
  if (rs.pub_worker) {
    asio::post(rs.pub_worker->ioc, [w = rs.pub_worker] { w->connect_more(); });
    publisher_ok =
        wait_for(
            [&] {
              return rs.pub_worker->joined.load() + rs.pub_worker->failed.load() > 0;
            },
            opt.connect_timeout) &&
        rs.pub_worker->joined.load() == 1;
    if (!publisher_ok)
      out["publisher"] = "failed";
  }

  // -- the scenario
  double cpu0 = cpu_seconds(opt.pids);
  double self_cpu0 = process_cpu_seconds(getpid());
  double metric0 = scrape_all(rs, opt.metric);
  double writes0 = scrape_all(rs, opt.writes_metric);
  std::int64_t phase_start = now_ns();
  std::uint64_t expected = 0;
  auto acked_total = [&] {
    return sum_of(
        rs, [](worker & w) -> auto& { return w.acked; });
  };
  auto published_total = [&] {
    return sum_of(
        rs, [](worker & w) -> auto& { return w.published; });
  };

  if (opt.kind == scenario::idle) {
    sleep_s(opt.hold);
    long rss_after = rss_kib(opt.pids);
    out["hold_s"] = opt.hold;
    out["rss_before_kib"] = rss_before;
    out["rss_after_kib"] = rss_after;
    out["rss_per_conn_kib"] =
        joined ? static_cast<double>(rss_after - rss_before) / static_cast<double>(joined)
               : 0.0;
  } else if (publisher_ok) {
    auto* pc = rs.pub_worker ? rs.pub_worker->conns.front().get() : nullptr;
    if (opt.kind == scenario::fanout) {
      asio::post(rs.pub_worker->ioc, [pc] { pc->w.pump(*pc); });
      sleep_s(opt.duration);
      rs.stop_publishing = true;
    } else if (opt.kind == scenario::tick) {
      pc->t0 = now_ns() + 50'000'000;
      asio::post(rs.pub_worker->ioc, [pc] { pc->w.schedule_tick(*pc); });
      sleep_s(opt.duration + 0.05);
    } else { // many rooms: each room's first member, phases spread over the interval
      auto t0 = now_ns() + 100'000'000;
      long rooms = (opt.connections + opt.room_size - 1) / opt.room_size;
      for (std::size_t i = 0; i < static_cast<std::size_t>(opt.threads); ++i) {
        auto& w = *rs.workers[i];
        asio::post(w.ioc, [&w, t0, rooms, &opt] {
          for (auto& c : w.conns)
            if (c->publishes && c->state == conn_state::joined) {
              c->t0 =
                  t0 + static_cast<std::int64_t>(opt.interval * 1e9 * c->room / rooms);
              w.schedule_room(*c);
            }
        });
      }
      sleep_s(opt.duration + 0.1);
    }
    // Drain: every publish answered, then every delivery in (or the timeout).
    auto expected_total = [&] {
      return sum_of(
          rs, [](worker & w) -> auto& { return w.expected; });
    };
    bool drained = wait_for(
        [&] {
          auto errs = sum_of(
              rs, [](worker & w) -> auto& { return w.errors; });
          return acked_total() + errs >= published_total() &&
                 rs.delivered_total() >= expected_total();
        },
        opt.drain_timeout);
    expected = expected_total();
    out["drained"] = drained;
  }
  double cpu1 = cpu_seconds(opt.pids);
  double self_cpu1 = process_cpu_seconds(getpid());
  double metric1 = scrape_all(rs, opt.metric);
  double writes1 = scrape_all(rs, opt.writes_metric);
  std::int64_t phase_end = now_ns();

  // -- stop every thread, then read their counters
  rs.shutting_down = true;
  for (auto& w : rs.workers)
    asio::post(w->ioc, [&w = *w] { w.close_all(); });
  for (auto& w : rs.workers)
    w->thread.join();
  if (opt.kind == scenario::idle)
    // All connections closed at once: a server with per-connection work that
    // grows with the number of connections shows it here.
    out["close_cpu_s"] = cpu_until_quiet(opt.pids, cpu1, 30.0);

  histogram latency;
  std::uint64_t gaps = 0, dups = 0;
  std::int64_t last_rx = 0;
  nlohmann::json samples = nlohmann::json::array();
  std::map<int, std::uint64_t> close_codes;
  for (auto& w : rs.workers) {
    latency.merge(w->latency);
    gaps += w->gaps;
    dups += w->dups;
    last_rx = std::max(last_rx, w->last_rx_ns.load());
    for (auto& s : w->error_samples)
      if (samples.size() < 5)
        samples.push_back(s);
    for (auto& [code, n] : w->close_codes)
      close_codes[code] += n;
  }
  auto delivered = rs.delivered_total();
  auto errors = sum_of(
      rs, [](worker & w) -> auto& { return w.errors; });
  auto closed = sum_of(
      rs, [](worker & w) -> auto& { return w.closed; });

  if (opt.kind != scenario::idle) {
    auto published = published_total();
    auto acks = acked_total();
    auto first = rs.first_publish_ns.load();
    // The rate window: first publish to last delivery (drain waits excluded).
    double window_s = last_rx > first ? seconds(last_rx - first) : 0.0;
    double cpu = cpu1 - cpu0;
    out["published"] = published;
    out["acked"] = acks;
    out["expected"] = expected;
    out["delivered"] = delivered;
    out["lost"] = expected > delivered ? expected - delivered : 0;
    out["gaps"] = gaps;
    out["duplicates"] = dups;
    out["duration_s"] = window_s;
    out["deliveries_per_s"] =
        window_s > 0 ? static_cast<double>(delivered) / window_s : 0.0;
    out["publishes_per_s"] =
        window_s > 0 ? static_cast<double>(published) / window_s : 0.0;
    out["cpu_s"] = cpu;
    out["cpu_s_per_million"] =
        delivered ? cpu / (static_cast<double>(delivered) / 1e6) : 0.0;
    out["phase_s"] = seconds(phase_end - phase_start);
    // The load generator's own CPU over the same phase: it shares the cores.
    out["bench_cpu_s"] = self_cpu1 - self_cpu0;
    out["latency_ms"] = {{"p50", ms(latency.quantile(0.5))},
                         {"p99", ms(latency.quantile(0.99))},
                         {"p999", ms(latency.quantile(0.999))},
                         {"max", ms(latency.max())}};
    if (!opt.metric.empty()) {
      out["metric"] = opt.metric;
      out["metric_delta"] = metric1 - metric0;
      out["metric_per_publish"] =
          acks ? (metric1 - metric0) / static_cast<double>(acks) : 0.0;
    }
    if (!opt.writes_metric.empty()) {
      // Frames the subscribers got per write the servers made (acks,
      // pings and the publisher's echo are in the writes too: a floor).
      out["socket_writes"] = writes1 - writes0;
      out["frames_per_write"] =
          writes1 > writes0 ? static_cast<double>(delivered) / (writes1 - writes0) : 0.0;
    }
  }
  out["errors"] = errors;
  out["closed_by_server"] = closed;
  if (!close_codes.empty()) {
    nlohmann::json codes = nlohmann::json::object();
    for (auto& [code, n] : close_codes)
      codes[std::to_string(code)] = n;
    out["close_codes"] = codes;
  }
  if (!samples.empty())
    out["error_samples"] = samples;
  std::cout << out.dump() << std::endl;
  return 0;
}
