#include "cluster/amqp_connection.hpp"

#include <amqp_tcp_socket.h>

#include <spdlog/spdlog.h>
#include <sys/time.h>

#include <set>

namespace rc {

// -- health -------------------------------------------------------------------------

void amqp_health::up(const std::string& who) {
  std::lock_guard<std::mutex> guard{mutex_};
  down_.erase(who);
  any_up_ = true;
}

void amqp_health::down(const std::string& who, const std::string& why) {
  std::lock_guard<std::mutex> guard{mutex_};
  down_[who] = why;
}

std::string amqp_health::not_ready_reason() const {
  std::lock_guard<std::mutex> guard{mutex_};
  if (!down_.empty())
    return "broker unavailable: " + down_.begin()->second;
  if (!any_up_)
    return "broker unavailable: connecting";
  return {};
}

// -- helpers ------------------------------------------------------------------------

namespace {

constexpr amqp_channel_t main_channel = 1;
constexpr amqp_channel_t probe_channel = 2;

amqp_bytes_t bytes(const std::string& s) {
  return amqp_bytes_t{s.size(), const_cast<char*>(s.data())};
}

std::string to_string(amqp_bytes_t b) {
  return std::string{static_cast<const char*>(b.bytes), b.len};
}

timeval to_timeval(std::chrono::milliseconds d) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(d.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((d.count() % 1000) * 1000);
  return tv;
}

std::string read_message_id(const amqp_basic_properties_t& props) {
  if ((props._flags & AMQP_BASIC_MESSAGE_ID_FLAG) == 0)
    return {};
  return to_string(props.message_id);
}

/// The type of a header value that is not a string, in words for a dead letter's reason.
std::string kind_name(std::uint8_t kind) {
  switch (kind) {
    case AMQP_FIELD_KIND_BOOLEAN:
      return "boolean";
    case AMQP_FIELD_KIND_TABLE:
      return "table";
    case AMQP_FIELD_KIND_ARRAY:
      return "array";
    case AMQP_FIELD_KIND_TIMESTAMP:
      return "timestamp";
    case AMQP_FIELD_KIND_VOID:
      return "void";
    default:
      return "number";
  }
}

/// Reads the headers into `in`: strings into `headers`, the type of others into `other_headers`.
void read_headers(const amqp_basic_properties_t& props, amqp_incoming& in) {
  if ((props._flags & AMQP_BASIC_HEADERS_FLAG) == 0)
    return;
  for (int i = 0; i < props.headers.num_entries; ++i) {
    auto& e = props.headers.entries[i];
    if (e.value.kind == AMQP_FIELD_KIND_UTF8 || e.value.kind == AMQP_FIELD_KIND_BYTES)
      in.headers.emplace(to_string(e.key), to_string(e.value.value.bytes));
    else
      in.other_headers.emplace(to_string(e.key), kind_name(e.value.kind));
  }
}

/// Text of an RPC failure, e.g. "server closed the channel: 404 NOT_FOUND - ...".
std::string describe(const amqp_rpc_reply_t& r) {
  switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
      return "ok";
    case AMQP_RESPONSE_NONE:
      return "missing RPC reply";
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
      return amqp_error_string2(r.library_error);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        auto m = static_cast<amqp_connection_close_t*>(r.reply.decoded);
        return "connection closed by the broker: " + std::to_string(m->reply_code) + " "
               + to_string(m->reply_text);
      }
      if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        auto m = static_cast<amqp_channel_close_t*>(r.reply.decoded);
        return "channel closed by the broker: " + std::to_string(m->reply_code) + " "
               + to_string(m->reply_text);
      }
      return "unexpected method from the broker";
  }
  return "unknown RPC reply";
}

} // namespace

// -- connection -----------------------------------------------------------------------

amqp_connection::amqp_connection(amqp_endpoint ep) : ep_(std::move(ep)) {
}

amqp_connection::~amqp_connection() {
  close();
}

bool amqp_connection::fail(const std::string& why) {
  error_ = why;
  if (conn_) {
    amqp_destroy_connection(conn_);
    conn_ = nullptr;
  }
  return false;
}

bool amqp_connection::check_rpc(const char* what) {
  auto r = amqp_get_rpc_reply(conn_);
  if (r.reply_type == AMQP_RESPONSE_NORMAL)
    return true;
  return fail(std::string{what} + ": " + describe(r));
}

bool amqp_connection::open(int heartbeat_s) {
  close();
  confirming_ = false;
  next_publish_seq_ = 1;
  conn_ = amqp_new_connection();
  auto sock = amqp_tcp_socket_new(conn_);
  if (!sock)
    return fail("cannot create a socket");
  auto tv = to_timeval(std::chrono::milliseconds{3000});
  if (auto rc = amqp_socket_open_noblock(sock, ep_.host.c_str(), ep_.port, &tv); rc != AMQP_STATUS_OK)
    return fail("cannot connect to " + ep_.host + ":" + std::to_string(ep_.port) + ": "
                + amqp_error_string2(rc));
  // Without consumer_cancel_notify the broker cancels a consumer whose queue
  // is deleted without a word, and the node would never consume again.
  // (rabbitmq-c merges these capabilities into its own.)
  amqp_table_entry_t cancel_notify{};
  cancel_notify.key = amqp_cstring_bytes("consumer_cancel_notify");
  cancel_notify.value.kind = AMQP_FIELD_KIND_BOOLEAN;
  cancel_notify.value.value.boolean = 1;
  amqp_table_entry_t capabilities{};
  capabilities.key = amqp_cstring_bytes("capabilities");
  capabilities.value.kind = AMQP_FIELD_KIND_TABLE;
  capabilities.value.value.table = amqp_table_t{1, &cancel_notify};
  amqp_table_t properties{1, &capabilities};
  auto login = amqp_login_with_properties(conn_, ep_.vhost.c_str(), 0, 131072, heartbeat_s,
                                          &properties, AMQP_SASL_METHOD_PLAIN, ep_.user.c_str(),
                                          ep_.password.c_str());
  if (login.reply_type != AMQP_RESPONSE_NORMAL)
    return fail("login to " + ep_.host + ":" + std::to_string(ep_.port) + " failed: "
                + describe(login));
  amqp_channel_open(conn_, main_channel);
  if (!check_rpc("channel.open"))
    return false;
  amqp_channel_open(conn_, probe_channel);
  if (!check_rpc("channel.open"))
    return false;
  error_.clear();
  return true;
}

void amqp_connection::close() {
  if (!conn_)
    return;
  amqp_connection_close(conn_, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(conn_);
  conn_ = nullptr;
}

bool amqp_connection::reopen_probe_channel() {
  // The broker closed channel 2 (404): confirm, then open it again.
  amqp_channel_close_ok_t ok{};
  amqp_send_method(conn_, probe_channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
  amqp_channel_open(conn_, probe_channel);
  return check_rpc("channel.open");
}

bool amqp_connection::declare_topology(const amqp_settings& cfg) {
  if (!conn_)
    return false;
  amqp_exchange_declare(conn_, main_channel, bytes(cfg.exchange), amqp_cstring_bytes("topic"), 0,
                        1, 0, 0, amqp_empty_table);
  if (!check_rpc("exchange.declare"))
    return false;
  // One consumer at a time takes the shared queue (the broker hands it to
  // another node's when that one goes): competing consumers took messages
  // published back to back on different nodes, and they overtook each other.
  amqp_table_entry_t single{};
  single.key = amqp_cstring_bytes("x-single-active-consumer");
  single.value.kind = AMQP_FIELD_KIND_BOOLEAN;
  single.value.value.boolean = 1;
  if (!declare_queue(cfg.queue, amqp_table_t{1, &single}) || !declare_queue("roomcast.dead"))
    return false;
  for (const char* key : {"room.#", "user.#", "broadcast"}) {
    amqp_queue_bind(conn_, main_channel, bytes(cfg.queue), bytes(cfg.exchange),
                    amqp_cstring_bytes(key), amqp_empty_table);
    if (!check_rpc("queue.bind"))
      return false;
  }
  return true;
}

bool amqp_connection::declare_queue(const std::string& queue, amqp_table_t arguments) {
  if (!conn_)
    return false;
  amqp_queue_declare(conn_, main_channel, bytes(queue), 0, 1, 0, 0, arguments);
  return check_rpc("queue.declare");
}

bool amqp_connection::check_exchange(const std::string& exchange) {
  if (!conn_)
    return false;
  amqp_exchange_declare(conn_, probe_channel, bytes(exchange), amqp_cstring_bytes("topic"), 1, 1,
                        0, 0, amqp_empty_table);
  auto r = amqp_get_rpc_reply(conn_);
  if (r.reply_type == AMQP_RESPONSE_NORMAL)
    return true;
  if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && r.reply.id == AMQP_CHANNEL_CLOSE_METHOD)
    return fail("exchange '" + exchange + "' was deleted; reconnecting declares it again");
  return fail("exchange.declare: " + describe(r));
}

std::optional<std::uint32_t> amqp_connection::probe_queue(const std::string& queue) {
  if (!conn_)
    return std::nullopt;
  auto ok = amqp_queue_declare(conn_, probe_channel, bytes(queue), 1, 1, 0, 0, amqp_empty_table);
  if (ok)
    return ok->message_count;
  auto r = amqp_get_rpc_reply(conn_);
  if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && r.reply.id == AMQP_CHANNEL_CLOSE_METHOD)
    reopen_probe_channel(); // 404: not found
  else
    fail("queue.declare: " + describe(r));
  return std::nullopt;
}

bool amqp_connection::confirm_select() {
  if (!conn_)
    return false;
  amqp_confirm_select(conn_, main_channel);
  if (!check_rpc("confirm.select"))
    return false;
  confirming_ = true;
  return true;
}

bool amqp_connection::handle_unexpected_frame(const amqp_frame_t& frame) {
  if (frame.frame_type != AMQP_FRAME_METHOD)
    return true;
  switch (frame.payload.method.id) {
    case AMQP_CONNECTION_CLOSE_METHOD: {
      auto m = static_cast<amqp_connection_close_t*>(frame.payload.method.decoded);
      return fail("connection closed by the broker: " + std::to_string(m->reply_code) + " "
                  + to_string(m->reply_text));
    }
    case AMQP_CHANNEL_CLOSE_METHOD: {
      auto m = static_cast<amqp_channel_close_t*>(frame.payload.method.decoded);
      return fail("channel closed by the broker: " + std::to_string(m->reply_code) + " "
                  + to_string(m->reply_text));
    }
    case AMQP_BASIC_CANCEL_METHOD:
      // The queue was deleted under us: reconnect, which declares it again.
      return fail("the broker cancelled the consumer (queue deleted?)");
    default:
      return true;
  }
}

bool amqp_connection::publish_confirmed(const std::vector<amqp_outgoing>& msgs,
                                        std::vector<bool>& ok,
                                        std::chrono::milliseconds timeout) {
  ok.assign(msgs.size(), false);
  if (!conn_ || !confirming_)
    return false;
  auto first_seq = next_publish_seq_;
  std::vector<bool> returned(msgs.size(), false);
  for (auto& m : msgs) {
    std::vector<amqp_table_entry_t> entries;
    for (auto& [k, v] : m.headers) {
      amqp_table_entry_t e{};
      e.key = bytes(k);
      e.value.kind = AMQP_FIELD_KIND_UTF8;
      e.value.value.bytes = bytes(v);
      entries.push_back(e);
    }
    amqp_basic_properties_t props{};
    props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.content_type = amqp_cstring_bytes("application/json");
    props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    if (!entries.empty()) {
      props._flags |= AMQP_BASIC_HEADERS_FLAG;
      props.headers.num_entries = static_cast<int>(entries.size());
      props.headers.entries = entries.data();
    }
    auto rc = amqp_basic_publish(conn_, main_channel, bytes(m.exchange), bytes(m.routing_key), 1, 0,
                                 &props, bytes(m.body));
    if (rc != AMQP_STATUS_OK)
      return fail(std::string{"basic.publish: "} + amqp_error_string2(rc));
    ++next_publish_seq_;
  }
  // rabbitmq-c 0.11 has no amqp_publisher_confirm_wait: read the acks,
  // nacks and returns ourselves. A return precedes the ack of its message.
  std::size_t settled = 0;
  std::vector<bool> done(msgs.size(), false);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto settle = [&](std::uint64_t tag, bool multiple, bool acked) {
    for (std::size_t i = 0; i < msgs.size(); ++i) {
      auto seq = first_seq + i;
      if (done[i] || seq > tag || (!multiple && seq != tag))
        continue;
      done[i] = true;
      ok[i] = acked && !returned[i];
      ++settled;
    }
  };
  while (settled < msgs.size()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      return fail("no publisher confirm within " + std::to_string(timeout.count()) + " ms");
    amqp_frame_t frame;
    auto tv = to_timeval(left);
    auto rc = amqp_simple_wait_frame_noblock(conn_, &frame, &tv);
    if (rc == AMQP_STATUS_TIMEOUT)
      continue;
    if (rc != AMQP_STATUS_OK)
      return fail(std::string{"waiting for confirms: "} + amqp_error_string2(rc));
    if (frame.frame_type != AMQP_FRAME_METHOD)
      continue;
    switch (frame.payload.method.id) {
      case AMQP_BASIC_ACK_METHOD: {
        auto m = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
        settle(m->delivery_tag, m->multiple, true);
        break;
      }
      case AMQP_BASIC_NACK_METHOD: {
        auto m = static_cast<amqp_basic_nack_t*>(frame.payload.method.decoded);
        settle(m->delivery_tag, m->multiple, false);
        break;
      }
      case AMQP_BASIC_RETURN_METHOD: {
        auto m = static_cast<amqp_basic_return_t*>(frame.payload.method.decoded);
        auto key = to_string(m->routing_key);
        amqp_message_t msg;
        auto r = amqp_read_message(conn_, frame.channel, &msg, 0);
        if (r.reply_type != AMQP_RESPONSE_NORMAL)
          return fail("reading a returned message: " + describe(r));
        amqp_destroy_message(&msg);
        // Unroutable: the oldest unsettled message with that key.
        for (std::size_t i = 0; i < msgs.size(); ++i)
          if (!done[i] && !returned[i] && msgs[i].routing_key == key) {
            returned[i] = true;
            break;
          }
        break;
      }
      default:
        if (!handle_unexpected_frame(frame))
          return false;
    }
  }
  return true;
}

std::optional<amqp_incoming> amqp_connection::get(const std::string& queue) {
  if (!conn_)
    return std::nullopt;
  auto r = amqp_basic_get(conn_, main_channel, bytes(queue), 0);
  if (r.reply_type != AMQP_RESPONSE_NORMAL) {
    fail("basic.get: " + describe(r));
    return std::nullopt;
  }
  if (r.reply.id != AMQP_BASIC_GET_OK_METHOD)
    return std::nullopt; // get-empty
  auto get_ok = static_cast<amqp_basic_get_ok_t*>(r.reply.decoded);
  amqp_incoming in;
  in.delivery_tag = get_ok->delivery_tag;
  in.routing_key = to_string(get_ok->routing_key);
  amqp_message_t msg;
  auto rr = amqp_read_message(conn_, main_channel, &msg, 0);
  if (rr.reply_type != AMQP_RESPONSE_NORMAL) {
    fail("basic.get body: " + describe(rr));
    return std::nullopt;
  }
  in.body = to_string(msg.body);
  read_headers(msg.properties, in);
  amqp_destroy_message(&msg);
  return in;
}

bool amqp_connection::ack(std::uint64_t delivery_tag) {
  if (!conn_)
    return false;
  if (auto rc = amqp_basic_ack(conn_, main_channel, delivery_tag, 0); rc != AMQP_STATUS_OK)
    return fail(std::string{"basic.ack: "} + amqp_error_string2(rc));
  return true;
}

bool amqp_connection::reject(std::uint64_t delivery_tag, bool requeue) {
  if (!conn_)
    return false;
  if (auto rc = amqp_basic_reject(conn_, main_channel, delivery_tag, requeue ? 1 : 0);
      rc != AMQP_STATUS_OK)
    return fail(std::string{"basic.reject: "} + amqp_error_string2(rc));
  return true;
}

bool amqp_connection::consume(const std::string& queue, std::uint16_t prefetch) {
  if (!conn_)
    return false;
  amqp_basic_qos(conn_, main_channel, 0, prefetch, 0);
  if (!check_rpc("basic.qos"))
    return false;
  amqp_basic_consume(conn_, main_channel, bytes(queue), amqp_empty_bytes, 0, 0, 0,
                     amqp_empty_table);
  return check_rpc("basic.consume");
}

std::optional<amqp_incoming> amqp_connection::next_delivery(std::chrono::milliseconds timeout) {
  if (!conn_)
    return std::nullopt;
  amqp_maybe_release_buffers(conn_);
  amqp_envelope_t env;
  auto tv = to_timeval(timeout);
  auto r = amqp_consume_message(conn_, &env, &tv, 0);
  if (r.reply_type == AMQP_RESPONSE_NORMAL) {
    amqp_incoming in;
    in.delivery_tag = env.delivery_tag;
    in.routing_key = to_string(env.routing_key);
    in.body = to_string(env.message.body);
    read_headers(env.message.properties, in);
    in.message_id = read_message_id(env.message.properties);
    amqp_destroy_envelope(&env);
    return in;
  }
  if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT)
    return std::nullopt;
  if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION
      && r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
    // Not a delivery: a close from the broker, or something harmless.
    amqp_frame_t frame;
    auto tv0 = to_timeval(std::chrono::milliseconds{0});
    auto rc = amqp_simple_wait_frame_noblock(conn_, &frame, &tv0);
    if (rc == AMQP_STATUS_OK)
      handle_unexpected_frame(frame);
    else if (rc != AMQP_STATUS_TIMEOUT)
      fail(std::string{"consume: "} + amqp_error_string2(rc));
    return std::nullopt;
  }
  fail("consume: " + describe(r));
  return std::nullopt;
}

bool amqp_connection::poll() {
  if (!conn_)
    return false;
  for (;;) {
    amqp_frame_t frame;
    auto tv = to_timeval(std::chrono::milliseconds{0});
    auto rc = amqp_simple_wait_frame_noblock(conn_, &frame, &tv);
    if (rc == AMQP_STATUS_TIMEOUT)
      return true;
    if (rc != AMQP_STATUS_OK)
      return fail(std::string{"connection lost: "} + amqp_error_string2(rc));
    if (!handle_unexpected_frame(frame))
      return false;
  }
}

// -- link ------------------------------------------------------------------------------

amqp_link::amqp_link(std::string who, amqp_endpoint ep, const amqp_settings& cfg,
                     std::shared_ptr<amqp_health> health, setup_fn setup)
  : who_(std::move(who)), conn_(std::move(ep)), min_(cfg.reconnect_min), max_(cfg.reconnect_max),
    backoff_(cfg.reconnect_min), health_(std::move(health)), setup_(std::move(setup)) {
  health_->down(who_, "connecting");
}

bool amqp_link::ensure() {
  if (conn_.is_open())
    return true;
  auto now = std::chrono::steady_clock::now();
  if (now < next_attempt_)
    return false;
  if (conn_.open() && setup_(conn_)) {
    ++generation_;
    backoff_ = min_;
    last_error_.clear();
    health_->up(who_);
    spdlog::info("amqp {}: connected", who_);
    return true;
  }
  conn_.close();
  next_attempt_ = now + backoff_;
  backoff_ = std::min(backoff_ * 2, max_);
  if (conn_.error() != last_error_) {
    spdlog::warn("amqp {}: {} (retrying with backoff up to {} ms)", who_, conn_.error(),
                 max_.count());
    last_error_ = conn_.error();
  }
  health_->down(who_, conn_.error());
  return false;
}

void publish_redeclaring(amqp_link& link, const std::vector<amqp_outgoing>& msgs,
                         std::vector<bool>& ok, std::chrono::milliseconds timeout) {
  if (!link.conn().publish_confirmed(msgs, ok, timeout) && !link.is_open())
    return link.lost();
  std::vector<std::size_t> again;
  std::set<std::string> queues;
  for (std::size_t i = 0; i < msgs.size(); ++i)
    if (!ok[i] && msgs[i].exchange.empty()) {
      again.push_back(i);
      queues.insert(msgs[i].routing_key);
    }
  if (again.empty())
    return;
  for (auto& q : queues) {
    if (!link.conn().declare_queue(q))
      return link.lost(); // a channel error closes the connection too
    spdlog::warn("amqp {}: queue '{}' refused a message (was it deleted?); declared it again",
                 link.who(), q);
  }
  std::vector<amqp_outgoing> retry;
  for (auto i : again)
    retry.push_back(msgs[i]);
  std::vector<bool> retried;
  if (!link.conn().publish_confirmed(retry, retried, timeout) && !link.is_open())
    link.lost();
  for (std::size_t j = 0; j < again.size(); ++j)
    ok[again[j]] = retried[j];
}

void amqp_link::lost() {
  spdlog::warn("amqp {}: {}", who_, conn_.error());
  last_error_ = conn_.error();
  health_->down(who_, conn_.error());
  conn_.close();
  next_attempt_ = std::chrono::steady_clock::now() + backoff_;
}

std::chrono::milliseconds amqp_link::until_next_attempt() const {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
    next_attempt_ - std::chrono::steady_clock::now());
  return std::max(left, std::chrono::milliseconds{1});
}

std::optional<std::uint64_t> amqp_link::current(std::uint64_t tag) const {
  if ((tag >> 40) != generation_ || !conn_.is_open())
    return std::nullopt;
  return tag & ((std::uint64_t{1} << 40) - 1);
}

} // namespace rc
