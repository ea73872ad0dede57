// roomcast-send-floor: what the kernel alone charges a server for the
// many-rooms scenario, with no server in the way.
//
// Two processes joined by N loopback TCP connections. The clients (the
// child) send one fixed-size "publish" per room, rooms in turn at --rate
// publishes a second, each on its room's first connection, and read every
// byte sent to them. The server (the parent) is one thread on one epoll set
// and nothing else: for each publish it reads, it sends one pre-built
// "ack" back and one pre-built frame to every other member of the room,
// each with one send() as nothing else is queued. Its CPU time (user + system,
// getrusage) per million deliveries is the floor of the many-rooms figure
// for any server that writes a message as soon as it arrives: no parsing,
// no framing, no allocation, no locks, no second thread to wake. The bytes
// are not WebSocket frames; their sizes are those of roomcast's.
//
// `--io-uring 1` asks whether the system calls are the cost: the server then
// queues every send of one epoll wake-up on an io_uring and submits them
// with one io_uring_enter; `--batch-us N` holds the queued sends up to N us
// longer, as a write delay would (both need liburing at build time).
//
// Prints one JSON line. Exits 1 if a byte is missing on either side.

#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#ifdef ROOMCAST_HAVE_URING
#include <liburing.h>
#endif

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct options {
  long connections = 10000;
  long room_size = 10;
  double rate = 1000;       ///< publishes a second, all rooms together
  double seconds = 10;
  long publish_bytes = 80;  ///< one client publish
  long frame_bytes = 120;   ///< one delivered message
  long ack_bytes = 40;      ///< the answer to the publisher
  bool io_uring = false;    ///< submit a wake-up's sends together
  long batch_us = 0;        ///< with io_uring: hold sends this much longer
};

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "roomcast-send-floor: %s: %s\n", what, std::strerror(errno));
  std::exit(2);
}

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "roomcast-send-floor: %s\n"
               "usage: roomcast-send-floor [--connections N] [--room-size N] [--rate PUBLISHES_PER_S]\n"
               "                           [--seconds S] [--publish-bytes N] [--frame-bytes N]\n"
               "                           [--ack-bytes N] [--io-uring 1 [--batch-us N]]\n",
               why.c_str());
  std::exit(2);
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view key = argv[i];
    if (i + 1 >= argc)
      usage("missing value for " + std::string{key});
    char* end = nullptr;
    double v = std::strtod(argv[++i], &end);
    if (*end != '\0' || !(v > 0))
      usage("bad value for " + std::string{key} + ": " + argv[i]);
    if (key == "--connections") o.connections = static_cast<long>(v);
    else if (key == "--room-size") o.room_size = static_cast<long>(v);
    else if (key == "--rate") o.rate = v;
    else if (key == "--seconds") o.seconds = v;
    else if (key == "--publish-bytes") o.publish_bytes = static_cast<long>(v);
    else if (key == "--frame-bytes") o.frame_bytes = static_cast<long>(v);
    else if (key == "--ack-bytes") o.ack_bytes = static_cast<long>(v);
    else if (key == "--io-uring") o.io_uring = true;
    else if (key == "--batch-us") o.batch_us = static_cast<long>(v);
    else usage("unknown option " + std::string{key});
  }
#ifndef ROOMCAST_HAVE_URING
  if (o.io_uring)
    usage("--io-uring: built without liburing (apt-get install liburing-dev, then rebuild)");
#endif
  if (o.batch_us > 0 && !o.io_uring)
    usage("--batch-us needs --io-uring 1");
  if (o.room_size < 2 || o.connections < o.room_size)
    usage("need --room-size >= 2 and --connections >= --room-size");
  return o;
}

std::int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

double cpu_seconds(double* user = nullptr, double* sys = nullptr) {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  double u = static_cast<double>(ru.ru_utime.tv_sec) + static_cast<double>(ru.ru_utime.tv_usec) / 1e6;
  double s = static_cast<double>(ru.ru_stime.tv_sec) + static_cast<double>(ru.ru_stime.tv_usec) / 1e6;
  if (user) *user = u;
  if (sys) *sys = s;
  return u + s;
}

/// Writes all of `n` bytes; the sockets are blocking on this side, and the
/// peer reads everything, so a short send only means "call again".
void send_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    ssize_t k = ::send(fd, p, n, MSG_NOSIGNAL);
    if (k < 0) {
      if (errno == EINTR) continue;
      die("send");
    }
    p += k;
    n -= static_cast<std::size_t>(k);
  }
}

/// A listening loopback socket on a free port; its address in `addr`.
int listen_loopback(sockaddr_in& addr) {
  int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  if (listener < 0) die("socket");
  addr = sockaddr_in{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) die("bind");
  if (::listen(listener, 4096) < 0) die("listen");
  socklen_t len = sizeof addr;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  return listener;
}

/// As every WebSocket server and client does: a frame leaves as soon as it is sent.
void no_delay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/// An epoll set watching every socket for input; events carry the index.
int watch_all(const std::vector<int>& fds) {
  int ep = epoll_create1(0);
  if (ep < 0) die("epoll_create1");
  for (std::size_t i = 0; i < fds.size(); ++i) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) < 0) die("epoll_ctl");
  }
  return ep;
}

/// The clients: publish on schedule, read everything. Returns the number of
/// bytes read (the parent checks it against what it sent).
long long run_clients(const options& o, const std::vector<int>& fds, std::int64_t t0,
                      long publishes) {
  int ep = watch_all(fds);
  long rooms = o.connections / o.room_size;
  std::string publish(static_cast<std::size_t>(o.publish_bytes), 'p');
  long long expected = publishes * (o.ack_bytes + (o.room_size - 1) * o.frame_bytes);
  long long got = 0;
  long sent = 0;
  std::vector<epoll_event> events(256);
  std::vector<char> buf(1 << 16);
  std::int64_t give_up = t0 + static_cast<std::int64_t>((o.seconds + 10) * 1e9);
  while ((sent < publishes || got < expected) && now_ns() < give_up) {
    std::int64_t next = sent < publishes
                            ? t0 + static_cast<std::int64_t>(static_cast<double>(sent) * 1e9 / o.rate)
                            : give_up;
    std::int64_t wait = next - now_ns();
    if (wait <= 0) {
      long room = sent % rooms;
      send_all(fds[static_cast<std::size_t>(room * o.room_size)], publish.data(), publish.size());
      ++sent;
      continue;
    }
    int timeout_ms = static_cast<int>((wait + 999'999) / 1'000'000);
    int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), timeout_ms);
    for (int i = 0; i < n; ++i) {
      int fd = fds[events[i].data.u64];
      ssize_t k = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
      if (k > 0) got += k;
    }
  }
  ::close(ep);
  return got;
}

/// How the server's sends leave: one send() each, or queued on an io_uring
/// and submitted together by `flush`.
class sender {
public:
  explicit sender(const options& o) : batch_ns_(o.batch_us * 1000) {
#ifdef ROOMCAST_HAVE_URING
    uring_ = o.io_uring;
    if (uring_ && io_uring_queue_init(4096, &ring_, 0) < 0)
      die("io_uring_queue_init");
#endif
  }
  sender(const sender&) = delete;
  sender& operator=(const sender&) = delete;

  ~sender() {
#ifdef ROOMCAST_HAVE_URING
    if (uring_)
      io_uring_queue_exit(&ring_);
#endif
  }

  /// Submits what is queued and waits until every send has completed.
  void finish() {
#ifdef ROOMCAST_HAVE_URING
    flush(true);
    while (uring_ && inflight_ > 0) {
      if (io_uring_submit_and_wait(&ring_, 1) < 0) die("io_uring_submit_and_wait");
      reap();
    }
#endif
  }

  /// `b` must outlive the send (the server's buffers are built once).
  void send(int fd, const std::string& b) {
#ifdef ROOMCAST_HAVE_URING
    if (uring_) {
      io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
      if (!sqe) { // the ring is full: submit what it holds
        submit();
        sqe = io_uring_get_sqe(&ring_);
      }
      io_uring_prep_send(sqe, fd, b.data(), b.size(), MSG_NOSIGNAL);
      if (queued_++ == 0)
        first_queued_ = now_ns();
      return;
    }
#endif
    send_all(fd, b.data(), b.size());
  }

  /// Submits the queued sends once the batch delay has passed (or `now`).
  void flush(bool now = false) {
#ifdef ROOMCAST_HAVE_URING
    if (uring_ && queued_ > 0 && (now || now_ns() - first_queued_ >= batch_ns_))
      submit();
    if (uring_)
      reap();
#else
    (void)now;
#endif
  }

  /// How long epoll may wait: `otherwise`, or until the batch delay ends.
  int wait_ms(int otherwise) const {
    if (queued_ == 0)
      return otherwise;
    auto left = batch_ns_ - (now_ns() - first_queued_);
    return left <= 0 ? 0 : static_cast<int>((left + 999'999) / 1'000'000);
  }

private:
#ifdef ROOMCAST_HAVE_URING
  void submit() {
    int n = io_uring_submit(&ring_);
    if (n < 0) die("io_uring_submit");
    inflight_ += n;
    queued_ = 0;
  }

  /// Every send is small and the peer reads everything: a short or failed
  /// one is an error of this tool, not a case to handle.
  void reap() {
    io_uring_cqe* cqe = nullptr;
    unsigned head = 0, n = 0;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      if (cqe->res < 0) {
        errno = -cqe->res;
        die("io_uring send");
      }
      ++n;
    }
    io_uring_cq_advance(&ring_, n);
    inflight_ -= n;
  }

  bool uring_ = false;
  io_uring ring_{};
  long inflight_ = 0;
#endif
  long queued_ = 0;
  std::int64_t first_queued_ = 0;
  std::int64_t batch_ns_ = 0;
};

struct server_result {
  long publishes = 0;
  long long deliveries = 0;
  double cpu = 0, user = 0, sys = 0, wall = 0;
};

/// The server: one thread, one epoll set, one send() per recipient.
server_result run_server(const options& o, const std::vector<int>& fds, long publishes) {
  int ep = watch_all(fds);
  std::string frame(static_cast<std::size_t>(o.frame_bytes), 'm');
  std::string ack(static_cast<std::size_t>(o.ack_bytes), 'a');
  std::vector<long> pending(fds.size(), 0); // bytes of a publish read so far
  std::vector<epoll_event> events(256);
  std::vector<char> buf(1 << 16);
  server_result r;
  sender out{o};
  double user0 = 0, sys0 = 0;
  std::int64_t start = 0;
  std::int64_t give_up = now_ns() + static_cast<std::int64_t>((o.seconds + 15) * 1e9);
  while (r.publishes < publishes && now_ns() < give_up) {
    int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), out.wait_ms(1000));
    for (int i = 0; i < n; ++i) {
      auto idx = static_cast<long>(events[i].data.u64);
      ssize_t k = ::recv(fds[static_cast<std::size_t>(idx)], buf.data(), buf.size(), MSG_DONTWAIT);
      if (k <= 0) continue;
      if (r.publishes == 0 && start == 0) { // the window opens with the first publish
        start = now_ns();
        cpu_seconds(&user0, &sys0);
      }
      pending[static_cast<std::size_t>(idx)] += k;
      long first = idx - idx % o.room_size;
      while (pending[static_cast<std::size_t>(idx)] >= o.publish_bytes) {
        pending[static_cast<std::size_t>(idx)] -= o.publish_bytes;
        out.send(fds[static_cast<std::size_t>(idx)], ack);
        for (long m = first; m < first + o.room_size; ++m)
          if (m != idx) {
            out.send(fds[static_cast<std::size_t>(m)], frame);
            ++r.deliveries;
          }
        ++r.publishes;
      }
    }
    out.flush();
  }
  out.finish(); // the last sends count
  double user1 = 0, sys1 = 0;
  cpu_seconds(&user1, &sys1);
  r.user = user1 - user0;
  r.sys = sys1 - sys0;
  r.cpu = r.user + r.sys;
  r.wall = static_cast<double>(now_ns() - start) / 1e9;
  ::close(ep);
  return r;
}

} // namespace

int main(int argc, char** argv) {
  options o = parse(argc, argv);
  long rooms = o.connections / o.room_size;
  o.connections = rooms * o.room_size;
  auto publishes = static_cast<long>(o.rate * o.seconds);
  sockaddr_in addr{};
  int listener = listen_loopback(addr);
  // Each side holds only its own ends (a process may hold 20000 files here).
  int ready[2], report[2];
  if (::pipe(ready) < 0 || ::pipe(report) < 0) die("pipe");
  pid_t child = ::fork();
  if (child < 0) die("fork");
  if (child == 0) {
    ::close(listener);
    std::vector<int> client;
    for (long i = 0; i < o.connections; ++i) { // one at a time: accepted in this order
      int c = ::socket(AF_INET, SOCK_STREAM, 0);
      if (c < 0) die("socket");
      if (::connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) die("connect");
      no_delay(c);
      client.push_back(c);
    }
    char go = 0;
    if (::read(ready[0], &go, 1) != 1) std::_Exit(2);
    std::int64_t t0 = now_ns() + 200'000'000;
    long long got = run_clients(o, client, t0, publishes);
    if (::write(report[1], &got, sizeof got) != sizeof got) std::_Exit(2);
    std::_Exit(0);
  }
  std::vector<int> server;
  for (long i = 0; i < o.connections; ++i) {
    int s = ::accept(listener, nullptr, nullptr);
    if (s < 0) die("accept (raise ulimit -n above --connections)");
    no_delay(s);
    server.push_back(s);
  }
  ::close(listener);
  if (::write(ready[1], "g", 1) != 1) die("write to the clients");
  server_result r = run_server(o, server, publishes);
  long long got = 0;
  if (::read(report[0], &got, sizeof got) != sizeof got) die("read from the clients");
  int status = 0;
  ::waitpid(child, &status, 0);
  long long sent = r.publishes * o.ack_bytes + r.deliveries * o.frame_bytes;
  bool complete = r.publishes == publishes && got == sent;
  std::printf("{\"tool\":\"roomcast-send-floor\",\"connections\":%ld,\"room_size\":%ld,"
              "\"rate\":%.0f,\"publishes\":%ld,\"deliveries\":%lld,\"deliveries_per_s\":%.0f,"
              "\"server_cpu_s\":%.3f,\"server_user_s\":%.3f,\"server_sys_s\":%.3f,"
              "\"cpu_s_per_m_deliveries\":%.2f,\"bytes_sent\":%lld,\"bytes_read\":%lld,"
              "\"complete\":%s}\n",
              o.connections, o.room_size, o.rate, r.publishes, r.deliveries,
              r.wall > 0 ? static_cast<double>(r.deliveries) / r.wall : 0.0, r.cpu, r.user,
              r.sys, r.deliveries ? r.cpu * 1e6 / static_cast<double>(r.deliveries) : 0.0,
              sent, got, complete ? "true" : "false");
  if (!complete) {
    std::fprintf(stderr, "roomcast-send-floor: incomplete: %ld of %ld publishes, %lld of %lld bytes\n",
                 r.publishes, publishes, got, sent);
    return 1;
  }
  return 0;
}
