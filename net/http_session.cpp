#include "net/http_session.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/websocket.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "common/metrics.hpp"
#include "net/websocket_session.hpp"

namespace rc::net {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;

namespace {

/// How long writing one response may take (nginx's send_timeout is a
/// minute between writes).
constexpr auto response_timeout = std::chrono::seconds{60};

/// The 503 a draining node gives what would start new work: its actors are
/// stopping, so a publish might not be kept and a page's WebSocket refused.
constexpr std::string_view draining_message = "node is shutting down";

/// The credentials of an `Authorization` value whose scheme is `scheme`
/// (compared without case, RFC 9110 11.1), or empty.
std::string_view credentials(std::string_view value, std::string_view scheme) {
  auto space = value.find(' ');
  if (space == std::string_view::npos
      || !beast::iequals(beast::string_view{value.data(), space},
                         beast::string_view{scheme.data(), scheme.size()}))
    return {};
  auto rest = value.substr(space + 1);
  return rest.substr(std::min(rest.find_first_not_of(' '), rest.size()));
}

/// Decodes `%XX` (and `+` as a space, as in a query component).
std::string url_decode(std::string_view in, bool plus_is_space = true) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '+' && plus_is_space) {
      out += ' ';
    } else if (c == '%' && i + 2 < in.size() && std::isxdigit(static_cast<unsigned char>(in[i + 1]))
               && std::isxdigit(static_cast<unsigned char>(in[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string{in.substr(i + 1, 2)}, nullptr, 16));
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

/// The raw (still encoded) values of `key` in a query string, in order; an
/// empty one for a bare `key`.
std::vector<std::string_view> query_values(std::string_view query, std::string_view key) {
  std::vector<std::string_view> out;
  while (!query.empty()) {
    auto amp = query.find('&');
    auto pair = query.substr(0, amp);
    auto eq = pair.find('=');
    if (pair.substr(0, eq) == key)
      out.push_back(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1));
    if (amp == std::string_view::npos)
      break;
    query.remove_prefix(amp + 1);
  }
  return out;
}

/// The decoded value of `key` in a query string ("" for a bare `key`), or
/// none when absent.
std::optional<std::string> query_param(std::string_view query, std::string_view key) {
  auto values = query_values(query, key);
  if (values.empty())
    return {};
  return url_decode(values.front());
}

// -- static files ---------------------------------------------------------------

namespace fs = std::filesystem;

/// Content types of what a web root holds; anything else is served as bytes.
std::string_view content_type_of(const fs::path& file) {
  static const std::pair<std::string_view, std::string_view> types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".json", "application/json"},
    {".map", "application/json"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".txt", "text/plain; charset=utf-8"},
  };
  auto ext = file.extension().string();
  for (auto& [e, type] : types)
    if (ext == e)
      return type;
  return "application/octet-stream";
}

/// The file under `root` that the URL path `target` names (`/` and paths
/// ending in `/` mean `index.html`), or nullopt. Refuses what could leave
/// the root or expose hidden files: `..` and dot-segments, NUL, and any file
/// whose resolved path (symlinks followed) is outside the resolved root.
std::optional<fs::path> static_file(const std::string& root, std::string_view target) {
  auto decoded = url_decode(target, false);
  if (decoded.empty() || decoded[0] != '/' || decoded.find('\0') != std::string::npos)
    return std::nullopt;
  fs::path rel;
  std::string_view rest{decoded};
  rest.remove_prefix(1);
  while (!rest.empty()) {
    auto slash = rest.find('/');
    auto segment = rest.substr(0, slash);
    if (!segment.empty()) {
      if (segment.front() == '.') // "..", ".", .git, .env
        return std::nullopt;
      rel /= std::string{segment};
    }
    if (slash == std::string_view::npos)
      break;
    rest.remove_prefix(slash + 1);
  }
  std::error_code ec;
  auto base = fs::weakly_canonical(root, ec);
  if (ec)
    return std::nullopt;
  auto inside = [&](const fs::path& p) {
    return std::mismatch(base.begin(), base.end(), p.begin(), p.end()).first == base.end();
  };
  auto file = fs::weakly_canonical(base / rel, ec);
  if (ec || !inside(file))
    return std::nullopt;
  if (decoded.back() == '/' || fs::is_directory(file, ec)) {
    file = fs::weakly_canonical(file / "index.html", ec);
    if (ec || !inside(file))
      return std::nullopt;
  }
  if (!fs::is_regular_file(file, ec))
    return std::nullopt;
  return file;
}

/// Why an upgrade request that passed `is_upgrade` would still fail Beast's
/// handshake (boost/beast/websocket/impl/accept.hpp, in its order), as an
/// HTTP status and message; nothing when it will pass.
std::optional<std::pair<unsigned, std::string>>
handshake_problem(const http::request<http::string_body>& req) {
  if (req.version() != 11)
    return std::pair{400u, std::string{"WebSocket upgrades need HTTP/1.1"}};
  if (req.find(http::field::host) == req.end())
    return std::pair{400u, std::string{"missing Host header"}};
  auto key = req.find(http::field::sec_websocket_key);
  if (key == req.end() || key->value().empty()
      || key->value().size() > websocket::detail::sec_ws_key_type::max_size_n)
    return std::pair{400u, std::string{"missing or invalid Sec-WebSocket-Key"}};
  auto version = req.find(http::field::sec_websocket_version);
  if (version == req.end())
    return std::pair{400u, std::string{"missing Sec-WebSocket-Version"}};
  if (version->value() != "13")
    return std::pair{426u, std::string{"unsupported Sec-WebSocket-Version (this server speaks 13)"}};
  return std::nullopt;
}

} // namespace

http_session::http_session(boost::asio::ip::tcp::socket&& socket, io_worker& worker,
                           server_context_ptr ctx)
  : stream_(std::move(socket)), worker_(worker), ctx_(std::move(ctx)) {
}

void http_session::run() {
  boost::asio::dispatch(stream_.get_executor(),
                        beast::bind_front_handler(&http_session::do_read, shared_from_this()));
}

void http_session::do_read() {
  head_ = false; // until this request's method is known
  parser_.emplace();
  parser_->header_limit(16 * 1024);
  parser_->body_limit(ctx_->cfg.limits.max_frame_bytes);
  // An HTTP request (or the upgrade) must arrive within the handshake time.
  stream_.expires_after(ctx_->cfg.limits.handshake_timeout);
  http::async_read_header(stream_, buffer_, *parser_,
                          beast::bind_front_handler(&http_session::on_header, shared_from_this()));
}

void http_session::on_header(beast::error_code ec, std::size_t bytes) {
  if (ec || parser_->is_done())
    return on_read(ec, bytes);
  auto read_body = [self = shared_from_this()] {
    http::async_read(self->stream_, self->buffer_, *self->parser_,
                     beast::bind_front_handler(&http_session::on_read, self));
  };
  // A client that asks first (`Expect: 100-continue`, curl and PHP for
  // larger bodies) sends the body only after this, or after waiting a
  // second for it.
  auto& req = parser_->get();
  if (req.version() < 11 || !beast::iequals(req[http::field::expect], "100-continue"))
    return read_body();
  static constexpr std::string_view go_on = "HTTP/1.1 100 Continue\r\n\r\n";
  boost::asio::async_write(stream_, boost::asio::buffer(go_on.data(), go_on.size()),
                           [read_body](beast::error_code ec, std::size_t) {
                             if (!ec)
                               read_body();
                           });
}

void http_session::on_read(beast::error_code ec, std::size_t) {
  if (ec == http::error::end_of_stream || ec == beast::error::timeout
      || ec == boost::asio::error::operation_aborted) {
    beast::error_code ignored;
    stream_.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_send, ignored);
    return;
  }
  if (ec == boost::asio::error::connection_reset || ec == boost::asio::error::eof
      || ec == http::error::partial_message)
    return; // the client hung up
  if (ec) {
    // Input that is not HTTP: answer, then close, as the parser cannot go on.
    keep_alive_ = false;
    spdlog::debug("bad HTTP request: {}", ec.message());
    if (ec == http::error::body_limit)
      return send(make_error(413, "too_large", "request body exceeds max-frame-bytes"));
    if (ec == http::error::header_limit)
      return send(make_error(431, "too_large", "request header exceeds 16 KiB"));
    return send(make_error(400, "bad_request", "malformed HTTP request: " + ec.message()));
  }
  route(parser_->release());
}

http_session::response http_session::make_json(unsigned status, std::string body) const {
  response res{static_cast<http::status>(status), version_};
  res.set(http::field::server, "roomcast");
  res.set(http::field::content_type, "application/json");
  res.keep_alive(keep_alive_);
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

http_session::response http_session::method_not_allowed(std::string_view allow) const {
  auto res = make_error(405, "method_not_allowed", "use " + std::string{allow});
  res.set(http::field::allow, std::string{allow});
  return res;
}

http_session::response http_session::make_error(unsigned status, std::string_view code,
                                                std::string_view message) const {
  nlohmann::json body{{"error", {{"code", code}, {"message", message}}}};
  return make_json(status, body.dump());
}

void http_session::route(request req) {
  version_ = req.version();
  keep_alive_ = req.keep_alive();
  head_ = req.method() == http::verb::head;
  std::string_view target{req.target().data(), req.target().size()};
  auto path = target.substr(0, target.find('?'));
  auto method = req.method();
  bool get_or_head = method == http::verb::get || method == http::verb::head;
  if (path == "/ws") {
    if (method != http::verb::get)
      return send(method_not_allowed("GET"));
    return upgrade(std::move(req));
  }
  if (path == "/healthz") {
    if (!get_or_head)
      return send(method_not_allowed("GET, HEAD"));
    if (ctx_->draining)
      return send(make_json(503, R"({"status":"draining"})"));
    return send(make_json(200, R"({"status":"ok"})"));
  }
  if (path == "/readyz") {
    if (!get_or_head)
      return send(method_not_allowed("GET, HEAD"));
    auto reason = ctx_->draining ? std::string{"draining"} : ctx_->hooks.not_ready_reason();
    if (!reason.empty())
      return send(make_json(503, nlohmann::json{{"ready", false}, {"reason", reason}}.dump()));
    return send(make_json(200, R"({"ready":true})"));
  }
  if (path == "/metrics") {
    if (!get_or_head)
      return send(method_not_allowed("GET, HEAD"));
    auto text = metrics::global().render();
    if (ctx_->hooks.node_metrics)
      text += ctx_->hooks.node_metrics();
    auto res = make_json(200, std::move(text));
    res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
    return send(std::move(res));
  }
  if (path == "/api/cluster") {
    if (!get_or_head)
      return send(method_not_allowed("GET, HEAD"));
    ctx_->hooks.cluster_info([self = shared_from_this()](unsigned status, std::string body) {
      boost::asio::post(self->stream_.get_executor(), [self, status, body] {
        self->send(self->make_json(status, body));
      });
    });
    return;
  }
  if (path == "/api/publish") {
    if (method != http::verb::post)
      return send(method_not_allowed("POST"));
    if (ctx_->draining) // its actors are stopping: a 202 might not be kept
      return send(make_error(503, "unavailable", draining_message));
    auto& key = ctx_->cfg.api_key;
    if (!key.empty()) {
      auto auth = req[http::field::authorization];
      if (credentials(std::string_view{auth.data(), auth.size()}, "apikey") != key)
        return send(make_error(401, "unauthorized", "missing or wrong API key (Authorization: apikey K)"));
    }
    // The reply may come from any thread: hop back onto this session's strand.
    ctx_->hooks.publish(std::move(req.body()),
                        [self = shared_from_this()](unsigned status, std::string body) {
                          boost::asio::post(self->stream_.get_executor(), [self, status, body] {
                            self->send(self->make_json(status, body));
                          });
                        });
    return;
  }
  if (!ctx_->cfg.web_root.empty()) {
    if (auto file = static_file(ctx_->cfg.web_root, path)) {
      if (!get_or_head)
        return send(method_not_allowed("GET, HEAD"));
      if (ctx_->draining) // the page would open a WebSocket this node refuses
        return send(make_error(503, "unavailable", draining_message));
      std::ifstream in{*file, std::ios::binary};
      std::ostringstream body;
      body << in.rdbuf();
      if (in) {
        auto res = make_json(200, std::move(body).str());
        res.set(http::field::content_type, std::string{content_type_of(*file)});
        res.set(http::field::cache_control, "no-cache");
        res.set("X-Content-Type-Options", "nosniff");
        return send(std::move(res));
      }
    }
  }
  send(make_error(404, "not_found", "no such endpoint"));
}

void http_session::upgrade(request req) {
  auto refuse = [&](unsigned status, std::string_view code, std::string_view message) {
    metrics::global().upgrades_refused++;
    beast::error_code ep_ec;
    auto peer = stream_.socket().remote_endpoint(ep_ec);
    // Behind a load balancer the peer is the proxy; name the client it reports
    // (only logged, never trusted for anything).
    std::string via;
    if (auto it = req.find("X-Forwarded-For"); it != req.end())
      via = " (X-Forwarded-For: " + std::string{it->value().substr(0, 200)} + ")";
    spdlog::warn("refused WebSocket upgrade from {}{}: {} {}",
                 ep_ec ? std::string{"?"} : peer.address().to_string(), via, status, message);
    keep_alive_ = false;
    auto res = make_error(status, code, message);
    if (status == 426) // RFC 6455 4.4: name the version we speak
      res.set(http::field::sec_websocket_version, "13");
    send(std::move(res));
  };
  if (!websocket::is_upgrade(req))
    return refuse(400, "bad_request", "/ws expects a WebSocket upgrade");
  // What Beast's handshake would refuse with a plain-text body of its own.
  if (auto problem = handshake_problem(req))
    return refuse(problem->first, "bad_request", problem->second);
  if (ctx_->draining)
    return refuse(503, "unavailable", draining_message);
  auto& allowed = ctx_->cfg.allowed_origins;
  auto origin_it = req.find(http::field::origin);
  if (!allowed.empty() && origin_it != req.end()) {
    std::string origin{origin_it->value()};
    if (std::find(allowed.begin(), allowed.end(), origin) == allowed.end())
      return refuse(403, "forbidden", "origin '" + origin + "' is not allowed");
  }
  std::string_view target{req.target().data(), req.target().size()};
  auto q = target.find('?');
  auto query = q == std::string_view::npos ? std::string_view{} : target.substr(q + 1);
  std::string bearer;
  if (auto it = req.find(http::field::authorization); it != req.end()) {
    std::string_view value{it->value().data(), it->value().size()};
    bearer = std::string{credentials(value, "bearer")};
  }
  // Two values of one identity parameter are ambiguous: a proxy that adds
  // one must not be outvoted (or silently win) by the client's own.
  for (std::string_view key : {"user", "token"})
    if (query_values(query, key).size() > 1)
      return refuse(400, "bad_request", "?" + std::string{key} + "= is given more than once");
  auto token = query_param(query, "token");
  // An empty ?token= is a client that meant to authenticate (an unset
  // variable, say): without this it would connect as anon-<n>.
  if (token && token->empty())
    return refuse(401, "unauthorized", "?token= is empty");
  auto user = query_param(query, "user");
  auto who = ctx_->auth.resolve(token.value_or(""), bearer,
                                user ? std::optional<std::string_view>{*user} : std::nullopt);
  if (auto refusal = std::get_if<http_refusal>(&who))
    return refuse(refusal->status, refusal->code, refusal->message);
  // Reserve a slot before the handshake so concurrent upgrades cannot
  // overshoot. Over the limit the upgrade still succeeds, but only to close
  // with 1013 (PROTOCOL.md): a browser cannot read an HTTP status.
  bool full = ++ctx_->websockets > ctx_->cfg.limits.max_connections;
  if (full) // a refused upgrade holds no slot, however long its close takes
    --ctx_->websockets;
  // Bytes a client sent right behind its request belong to the WebSocket.
  auto ahead = buffer_.data();
  std::string leftover{static_cast<const char*>(ahead.data()), ahead.size()};
  std::make_shared<websocket_session>(std::move(stream_), worker_, ctx_,
                                      std::get<identity>(std::move(who)), std::move(leftover), full)
    ->run(std::move(req));
}

void http_session::send(response res) {
  if (head_)
    res.body().clear(); // Content-Length stays that of the body a GET gets
  pending_ = std::make_shared<response>(std::move(res));
  // The read's deadline (the handshake timeout, counted from the wait for
  // the request) cut off large files for slow readers; a response gets a
  // minute, like nginx's send_timeout.
  stream_.expires_after(response_timeout);
  http::async_write(stream_, *pending_,
                    beast::bind_front_handler(&http_session::on_write, shared_from_this(),
                                              pending_->keep_alive()));
}

void http_session::on_write(bool keep_alive, beast::error_code ec, std::size_t) {
  pending_.reset();
  if (ec)
    return;
  if (!keep_alive) {
    beast::error_code ignored;
    stream_.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_send, ignored);
    return;
  }
  do_read();
}

} // namespace rc::net
