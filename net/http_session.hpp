#pragma once

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <memory>
#include <optional>

#include "net/io_pool.hpp"
#include "net/server_context.hpp"

namespace rc::net {

/// One HTTP connection: serves `/healthz`, `/readyz`, `/metrics`,
/// `POST /api/publish` and `GET` of the files under `--web-root` (with
/// keep-alive), and hands `/ws` upgrades that pass the checks (draining,
/// capacity, Origin, identity) to a websocket_session.
class http_session : public std::enable_shared_from_this<http_session> {
public:
  http_session(boost::asio::ip::tcp::socket&& socket, io_worker& worker, server_context_ptr ctx);
  void run();

private:
  using request = boost::beast::http::request<boost::beast::http::string_body>;
  using response = boost::beast::http::response<boost::beast::http::string_body>;

  void do_read();
  void on_header(boost::beast::error_code ec, std::size_t bytes);
  void on_read(boost::beast::error_code ec, std::size_t bytes);
  void route(request req);
  void upgrade(request req);
  void send(response res);
  void on_write(bool keep_alive, boost::beast::error_code ec, std::size_t bytes);
  response make_json(unsigned status, std::string body) const;
  response make_error(unsigned status, std::string_view code, std::string_view message) const;
  /// 405 with the `Allow` header RFC 9110 asks for.
  response method_not_allowed(std::string_view allow) const;

  boost::beast::tcp_stream stream_;
  io_worker& worker_;
  boost::beast::flat_buffer buffer_;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
  std::shared_ptr<response> pending_;
  server_context_ptr ctx_;
  unsigned version_ = 11;
  bool keep_alive_ = false;
  bool head_ = false; ///< answering a HEAD: headers only
};

} // namespace rc::net
