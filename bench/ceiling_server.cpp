// roomcast-ceiling: the smallest Beast fan-out server speaking the protocol
// subset the benchmark uses (welcome; join -> joined; publish -> message
// with seq to every other member, ack with id; ping -> pong). No actors, no
// limits beyond the outgoing queue, no metrics: it is what roomcast's own
// stack (Asio, Beast, one process) can do with nothing in the way, and every
// table of bench/run shows roomcast as a ratio of it.
//
// The two levers it pulls:
// - one shared, pre-framed buffer per message: the WebSocket header and the
//   payload are built once; server frames are unmasked, so the bytes are the
//   same for every recipient;
// - one gathered write per socket: whatever queued while the previous write
//   was in flight leaves in one `asio::async_write` of a buffer sequence.
// To write raw frames, a session leaves Beast's WebSocket stream right after
// the handshake and owns the TCP socket alone (Beast would otherwise answer
// pings and closes on the same socket behind our back).

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "wire.hpp"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using json = nlohmann::json;
using namespace rc::bench;

namespace {

/// A complete server frame (header + payload), shared by every recipient.
using frame_ptr = std::shared_ptr<const std::string>;

frame_ptr make_frame(std::string_view payload) {
  std::string f;
  f.reserve(max_header_bytes + payload.size());
  append_frame(f, opcode::text, payload, false);
  return std::make_shared<const std::string>(std::move(f));
}

struct limits {
  std::size_t max_queue_frames = 1024;
  std::size_t max_queue_bytes = 4u << 20;
};

class session;

/// A room: members and the seq counter under one mutex, so that frames are
/// queued to every member in seq order.
struct room {
  explicit room(std::string n) : name(std::move(n)) {}
  const std::string name;
  std::mutex mutex;
  std::uint64_t seq = 0;
  std::vector<std::shared_ptr<session>> members;
};

struct server_state {
  limits lim;
  std::mutex rooms_mutex;
  std::unordered_map<std::string, std::shared_ptr<room>> rooms;

  std::shared_ptr<room> find_or_create(const std::string& name) {
    std::lock_guard<std::mutex> guard{rooms_mutex};
    auto& slot = rooms[name];
    if (!slot)
      slot = std::make_shared<room>(name);
    return slot;
  }
};

/// A buffer sequence viewing a vector owned by the session: passing the
/// vector itself would copy it into every write operation.
struct buffer_span {
  using value_type = asio::const_buffer;
  using const_iterator = const asio::const_buffer*;
  const asio::const_buffer* first;
  const asio::const_buffer* last;
  const_iterator begin() const { return first; }
  const_iterator end() const { return last; }
};

std::string user_from_target(beast::string_view target) {
  auto q = target.find("user=");
  if (q == beast::string_view::npos)
    return "anon";
  auto v = target.substr(q + 5);
  return std::string{v.substr(0, v.find('&'))};
}

/// One client. Lives on one io_context thread (no strand needed); other
/// threads touch only the outgoing queue, under `mutex_`.
class session : public std::enable_shared_from_this<session> {
public:
  session(tcp::socket sock, server_state& st) : sock_(std::move(sock)), st_(st) {}

  void run() {
    http::async_read(sock_, http_buffer_, req_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       if (!ec)
                         self->on_request();
                     });
  }

  /// Queues a frame; any thread. Over the queue limit the session closes
  /// (slow consumer), as roomcast does.
  void deliver(const frame_ptr& f) {
    {
      std::lock_guard<std::mutex> guard{mutex_};
      if (closed_)
        return;
      queued_bytes_ += f->size();
      queue_.push_back(f);
      if (queue_.size() > st_.lim.max_queue_frames ||
          queued_bytes_ > st_.lim.max_queue_bytes) {
        closed_ = true;
        queue_.clear();
        asio::post(sock_.get_executor(),
                   [self = shared_from_this()] { self->shutdown(); });
        return;
      }
      if (writing_)
        return;
      writing_ = true;
    }
    asio::post(sock_.get_executor(), [self = shared_from_this()] { self->do_write(); });
  }

private:
  // -- handshake --------------------------------------------------------------

  void on_request() {
    if (!websocket::is_upgrade(req_)) {
      // Plain HTTP: answer the readiness probe of bench/run, then hang up.
      auto res =
          std::make_shared<http::response<http::string_body>>(http::status::ok, 11);
      res->body() = "{\"status\":\"ok\"}";
      res->prepare_payload();
      http::async_write(sock_, *res,
                        [self = shared_from_this(), res](beast::error_code, std::size_t) {
                          beast::error_code ignored;
                          self->sock_.shutdown(tcp::socket::shutdown_both, ignored);
                        });
      return;
    }
    user_ = user_from_target(req_.target());
    ws_ = std::make_unique<websocket::stream<tcp::socket>>(std::move(sock_));
    ws_->async_accept(req_, [self = shared_from_this()](beast::error_code ec) {
      self->sock_ = std::move(self->ws_->next_layer());
      self->ws_.reset();
      if (ec)
        return;
      self->on_open();
    });
  }

  void on_open() {
    sock_.set_option(tcp::no_delay{true});
    // A client may have sent frames right behind its request.
    auto left = http_buffer_.data();
    rbuf_.resize(std::max<std::size_t>(4096, left.size()));
    std::memcpy(rbuf_.data(), left.data(), left.size());
    rlen_ = left.size();
    http_buffer_ = beast::flat_buffer{};
    req_ = {};
    deliver(
        make_frame(R"({"type":"welcome","user":")" + user_ + R"(","node":"ceiling"})"));
    if (rlen_ > 0)
      on_read(0);
    else
      do_read();
  }

  // -- reading ----------------------------------------------------------------

  void do_read() {
    if (rlen_ == rbuf_.size())
      rbuf_.resize(rbuf_.size() * 2);
    sock_.async_read_some(
        asio::buffer(rbuf_.data() + rlen_, rbuf_.size() - rlen_),
        [self = shared_from_this()](beast::error_code ec, std::size_t n) {
          if (ec)
            return self->shutdown();
          self->on_read(n);
        });
  }

  void on_read(std::size_t n) {
    rlen_ += n;
    std::size_t at = 0;
    for (;;) {
      frame_view f;
      auto r = parse_frame(rbuf_.data() + at, rlen_ - at, f, 1u << 16);
      if (r == parse_result::invalid)
        return shutdown();
      if (r == parse_result::incomplete) {
        if (f.total > rbuf_.size())
          rbuf_.resize(f.total);
        break;
      }
      at += f.total;
      switch (f.op) {
      case opcode::text:
        handle({f.payload, f.size});
        break;
      case opcode::ping: {
        std::string pong;
        append_frame(pong, opcode::pong, {f.payload, f.size}, false);
        deliver(std::make_shared<const std::string>(std::move(pong)));
        break;
      }
      case opcode::close:
        return shutdown();
      default:
        break;
      }
    }
    std::memmove(rbuf_.data(), rbuf_.data() + at, rlen_ - at);
    rlen_ -= at;
    do_read();
  }

  void reply(std::string text) { deliver(make_frame(text)); }

  void error(const std::string& id, const char* code) {
    reply(std::string{R"({"type":"error",)"} + (id.empty() ? "" : R"("id":)" + id + ",") +
          R"("code":")" + code + R"(","message":")" + code + R"("})");
  }

  void handle(std::string_view text) {
    auto req = json::parse(text, nullptr, false);
    if (req.is_discarded() || !req.is_object())
      return error("", "bad_json");
    std::string id = req.contains("id") ? req["id"].dump() : "";
    auto tail = id.empty() ? std::string{"}"} : R"(,"id":)" + id + "}";
    auto type = req.value("type", "");
    if (type == "ping")
      return reply(R"({"type":"pong")" + tail);
    if (type != "join" && type != "publish")
      return error(id, "unknown_type");
    if (!req.contains("room") || !req["room"].is_string())
      return error(id, "bad_request");
    const auto& name = req["room"].get_ref<const std::string&>();
    if (type == "join") {
      auto r = st_.find_or_create(name);
      std::uint64_t seq;
      {
        std::lock_guard<std::mutex> guard{r->mutex};
        if (std::find(rooms_.begin(), rooms_.end(), r) == rooms_.end())
          r->members.push_back(shared_from_this());
        seq = r->seq;
      }
      if (std::find(rooms_.begin(), rooms_.end(), r) == rooms_.end())
        rooms_.push_back(r);
      return reply(R"({"type":"joined","room":)" + json(name).dump() + R"(,"seq":)" +
                   std::to_string(seq) + R"(,"epoch":"ceiling")" + tail);
    }
    auto it = std::find_if(rooms_.begin(), rooms_.end(),
                           [&](auto& r) { return r->name == name; });
    if (it == rooms_.end())
      return error(id, "not_member");
    if (!req.contains("data"))
      return error(id, "bad_request");
    auto& r = **it;
    auto prefix = R"({"type":"message","room":)" + json(name).dump() + R"(,"from":)" +
                  json(user_).dump() + R"(,"seq":)";
    auto data = req["data"].dump();
    std::uint64_t seq;
    {
      std::lock_guard<std::mutex> guard{r.mutex};
      seq = ++r.seq;
      auto f = make_frame(prefix + std::to_string(seq) + R"(,"data":)" + data + "}");
      for (auto& m : r.members)
        if (m.get() != this)
          m->deliver(f);
    }
    if (!id.empty())
      reply(R"({"type":"ack","id":)" + id + R"(,"seq":)" + std::to_string(seq) + "}");
  }

  // -- writing ----------------------------------------------------------------

  /// Writes everything queued so far in one gathered write.
  void do_write() {
    {
      std::lock_guard<std::mutex> guard{mutex_};
      if (queue_.empty() || closed_) {
        writing_ = false;
        return;
      }
      inflight_.swap(queue_);
      queued_bytes_ = 0;
    }
    buffers_.clear();
    for (auto& f : inflight_)
      buffers_.emplace_back(f->data(), f->size());
    asio::async_write(sock_,
                      buffer_span{buffers_.data(), buffers_.data() + buffers_.size()},
                      [self = shared_from_this()](beast::error_code ec, std::size_t) {
                        self->inflight_.clear(); // keeps its capacity
                        if (ec)
                          return self->shutdown();
                        self->do_write();
                      });
  }

  // -- closing ----------------------------------------------------------------

  void shutdown() {
    if (shut_)
      return;
    shut_ = true;
    {
      std::lock_guard<std::mutex> guard{mutex_};
      closed_ = true;
      queue_.clear();
    }
    for (auto& r : rooms_) {
      std::lock_guard<std::mutex> guard{r->mutex};
      auto& m = r->members;
      for (std::size_t i = 0; i < m.size(); ++i)
        if (m[i].get() == this) {
          m[i] = std::move(m.back());
          m.pop_back();
          break;
        }
    }
    rooms_.clear();
    beast::error_code ignored;
    sock_.close(ignored);
  }

  tcp::socket sock_;
  server_state& st_;
  beast::flat_buffer http_buffer_;
  http::request<http::string_body> req_;
  std::unique_ptr<websocket::stream<tcp::socket>> ws_; // during the handshake only
  std::string user_;
  std::vector<char> rbuf_;
  std::size_t rlen_ = 0;
  std::vector<std::shared_ptr<room>> rooms_; // own thread only
  bool shut_ = false;                        // own thread only
  // Outgoing: `queue_` is filled by any thread; `inflight_` and `buffers_`
  // belong to the write in flight.
  std::mutex mutex_;
  std::vector<frame_ptr> queue_;
  std::size_t queued_bytes_ = 0;
  bool writing_ = false;
  bool closed_ = false;
  std::vector<frame_ptr> inflight_;
  std::vector<asio::const_buffer> buffers_;
};

[[noreturn]] void usage(const std::string& why) {
  if (!why.empty())
    std::cerr << "roomcast-ceiling: " << why << "\n";
  std::cerr
      << "usage: roomcast-ceiling [--port P (0 = any)] [--bind ADDR] [--threads N]\n"
         "                        [--max-queue-frames N] [--max-queue-bytes N]\n";
  std::exit(why.empty() ? 0 : 2);
}

} // namespace

int main(int argc, char** argv) {
  std::string bind = "127.0.0.1";
  unsigned short port = 0;
  unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  server_state st;
  for (int i = 1; i < argc; ++i) {
    std::string key = argv[i];
    if (key == "--help" || key == "-h")
      usage("");
    if (i + 1 >= argc)
      usage("missing value for " + key);
    std::string value = argv[++i];
    try {
      if (key == "--port")
        port = static_cast<unsigned short>(std::stoul(value));
      else if (key == "--bind")
        bind = value;
      else if (key == "--threads")
        threads = static_cast<unsigned>(std::max(1ul, std::stoul(value)));
      else if (key == "--max-queue-frames")
        st.lim.max_queue_frames = std::stoul(value);
      else if (key == "--max-queue-bytes")
        st.lim.max_queue_bytes = std::stoul(value);
      else
        usage("unknown option " + key);
    } catch (const std::logic_error&) {
      usage("bad value for " + key + ": " + value);
    }
  }

  // One io_context per thread; each accepted socket is bound to one of them.
  std::vector<std::unique_ptr<asio::io_context>> iocs;
  for (unsigned i = 0; i < threads; ++i)
    iocs.push_back(std::make_unique<asio::io_context>(1));
  tcp::acceptor acceptor{*iocs[0]};
  tcp::endpoint ep{asio::ip::make_address(bind), port};
  acceptor.open(ep.protocol());
  acceptor.set_option(asio::socket_base::reuse_address(true));
  acceptor.bind(ep);
  acceptor.listen(asio::socket_base::max_listen_connections);
  std::cout << "listening on " << acceptor.local_endpoint().port() << std::endl;

  std::size_t next = 0;
  std::function<void()> accept = [&] {
    auto& target = *iocs[next++ % iocs.size()];
    acceptor.async_accept(target, [&](beast::error_code ec, tcp::socket sock) {
      if (!ec)
        std::make_shared<session>(std::move(sock), st)->run();
      if (acceptor.is_open())
        accept();
    });
  };
  accept();

  asio::signal_set signals{*iocs[0], SIGINT, SIGTERM};
  signals.async_wait([&](beast::error_code, int) {
    for (auto& ioc : iocs)
      ioc->stop();
  });

  std::vector<std::thread> pool;
  for (unsigned i = 1; i < threads; ++i)
    pool.emplace_back([&ioc = *iocs[i]] {
      auto guard = asio::make_work_guard(ioc);
      ioc.run();
    });
  iocs[0]->run();
  for (auto& ioc : iocs)
    ioc->stop();
  for (auto& t : pool)
    t.join();
  return 0;
}
