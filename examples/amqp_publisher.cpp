// amqp_publisher: publishes one JSON message to roomcast through RabbitMQ,
// the way another C++ service would, with nothing but rabbitmq-c 0.11
// (Debian's librabbitmq-dev). It waits for the broker's publisher confirm,
// so exit code 0 means the broker has the message (roomcast then delivers
// it, or keeps it for an offline user).
//
//   amqp_publisher URL ROUTING_KEY JSON [FROM]
//   amqp_publisher amqp://guest:guest@localhost:5672/%2f room.lobby '{"text":"hi"}' billing
//
// Routing keys: room.<R>, user.<U>, broadcast (see docs/amqp.md).

#include <amqp.h>
#include <amqp_tcp_socket.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

int die(const char* what, const std::string& why) {
  std::fprintf(stderr, "amqp_publisher: %s: %s\n", what, why.c_str());
  return 1;
}

bool rpc_ok(amqp_connection_state_t conn) {
  return amqp_get_rpc_reply(conn).reply_type == AMQP_RESPONSE_NORMAL;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 4 || argc > 5) {
    std::fprintf(stderr, "usage: %s URL ROUTING_KEY JSON [FROM]\n", argv[0]);
    return 2;
  }
  std::vector<char> url(argv[1], argv[1] + std::strlen(argv[1]) + 1); // parsed in place
  const char* key = argv[2];
  const char* body = argv[3];
  const char* from = argc == 5 ? argv[4] : nullptr;

  amqp_connection_info info;
  amqp_default_connection_info(&info);
  if (amqp_parse_url(url.data(), &info) != AMQP_STATUS_OK)
    return die("bad URL", argv[1]);

  auto conn = amqp_new_connection();
  auto sock = amqp_tcp_socket_new(conn);
  if (int rc = amqp_socket_open(sock, info.host, info.port); rc != AMQP_STATUS_OK)
    return die("connect", amqp_error_string2(rc));
  if (amqp_login(conn, info.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, info.user, info.password)
        .reply_type
      != AMQP_RESPONSE_NORMAL)
    return die("login", "refused");
  amqp_channel_open(conn, 1);
  if (!rpc_ok(conn))
    return die("channel.open", "failed");
  // The exchange is declared by roomcast; declaring it here too (same
  // arguments) lets this work before any node has started.
  amqp_exchange_declare(conn, 1, amqp_cstring_bytes("roomcast"), amqp_cstring_bytes("topic"), 0, 1,
                        0, 0, amqp_empty_table);
  amqp_confirm_select(conn, 1);
  if (!rpc_ok(conn))
    return die("declare/confirm.select", "failed");

  amqp_table_entry_t header{};
  header.key = amqp_cstring_bytes("from");
  header.value.kind = AMQP_FIELD_KIND_UTF8;
  header.value.value.bytes = amqp_cstring_bytes(from ? from : "");
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
  props.content_type = amqp_cstring_bytes("application/json");
  props.delivery_mode = AMQP_DELIVERY_PERSISTENT; // survives a broker restart
  if (from) {
    props._flags |= AMQP_BASIC_HEADERS_FLAG;
    props.headers = amqp_table_t{1, &header};
  }
  if (int rc = amqp_basic_publish(conn, 1, amqp_cstring_bytes("roomcast"), amqp_cstring_bytes(key),
                                  0, 0, &props, amqp_cstring_bytes(body));
      rc != AMQP_STATUS_OK)
    return die("publish", amqp_error_string2(rc));

  // rabbitmq-c 0.11 has no amqp_publisher_confirm_wait(): read the ack.
  for (;;) {
    amqp_frame_t frame;
    timeval tv{5, 0};
    if (int rc = amqp_simple_wait_frame_noblock(conn, &frame, &tv); rc != AMQP_STATUS_OK)
      return die("waiting for the confirm", amqp_error_string2(rc));
    if (frame.frame_type != AMQP_FRAME_METHOD)
      continue;
    if (frame.payload.method.id == AMQP_BASIC_ACK_METHOD)
      break;
    if (frame.payload.method.id == AMQP_BASIC_NACK_METHOD)
      return die("publish", "the broker refused the message (nack)");
  }
  amqp_channel_close(conn, 1, AMQP_REPLY_SUCCESS);
  amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(conn);
  std::printf("published to %s\n", key);
  return 0;
}
