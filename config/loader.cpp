#include "config/loader.hpp"

#include <caf/config_option_set.hpp>
#include <caf/config_value.hpp>
#include <caf/detail/ini_consumer.hpp>
#include <caf/detail/parser/read_ini.hpp>
#include <caf/parser_state.hpp>
#include <caf/settings.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <variant>

extern char** environ;

namespace rc {

namespace {

// -- option table -------------------------------------------------------------

/// What a setting holds; it decides which JSON and INI value types a config
/// file may give it (the command line and environment only have text).
enum class value_kind { text, flag, duration, number, list };

/// One configurable field: its names, its documentation and how to read and
/// print it. Values from every source arrive as text and go through `set`.
struct option {
  std::string name;     ///< kebab-case: `--name`, file key, ROOMCAST_NAME
  std::string category; ///< file section ("global" or "limits")
  std::string help;
  value_kind kind;
  std::function<std::string(const settings&)> get;
  /// Returns an error message, or an empty string on success.
  std::function<std::string(settings&, const std::string&)> set;
};

std::string env_name(const std::string& opt) {
  std::string out = "ROOMCAST_";
  for (char c : opt)
    out += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::string trim(std::string s) {
  auto not_space = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  return s;
}

std::optional<std::uint64_t> parse_uint(const std::string& text) {
  if (text.empty() || !std::all_of(text.begin(), text.end(), ::isdigit))
    return std::nullopt;
  try {
    return std::stoull(text);
  } catch (...) {
    return std::nullopt;
  }
}

/// Durations: `250ms`, `10s`, `2min`/`2m`, `1h`; a bare number means seconds.
/// Timers count whole milliseconds: a finer value is refused, not rounded.
/// Returns milliseconds as a double so that absurd values can be refused
/// before they are rounded into an integer that would overflow.
std::optional<double> parse_duration_ms(const std::string& text) {
  size_t pos = 0;
  while (pos < text.size() && (std::isdigit(static_cast<unsigned char>(text[pos])) || text[pos] == '.'))
    ++pos;
  if (pos == 0)
    return std::nullopt;
  double value;
  try {
    size_t used = 0;
    value = std::stod(text.substr(0, pos), &used);
    if (used != pos) // "1.2.3s"
      return std::nullopt;
  } catch (...) {
    return std::nullopt;
  }
  auto unit = text.substr(pos);
  if (unit.empty() || unit == "s")
    return value * 1000;
  if (unit == "ms")
    return value;
  if (unit == "m" || unit == "min")
    return value * 60000;
  if (unit == "h")
    return value * 3600000;
  return std::nullopt;
}

std::string print_duration(duration d) {
  auto ms = d.count();
  if (ms % 1000 == 0)
    return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

/// Comma-separated items, trimmed; none if an item is empty (`a,,b`, `,`):
/// an allow-list that quietly lost its items would allow everything.
std::optional<std::vector<std::string>> split_list(const std::string& text) {
  std::vector<std::string> out;
  if (text.empty())
    return out;
  std::stringstream in{text + ","};
  std::string item;
  while (std::getline(in, item, ',')) {
    auto t = trim(item);
    if (t.empty())
      return std::nullopt;
    out.push_back(std::move(t));
  }
  return out;
}

template <class T>
constexpr value_kind kind_of() {
  if constexpr (std::is_same_v<T, std::string>)
    return value_kind::text;
  else if constexpr (std::is_same_v<T, bool>)
    return value_kind::flag;
  else if constexpr (std::is_same_v<T, duration>)
    return value_kind::duration;
  else if constexpr (std::is_same_v<T, std::vector<std::string>>)
    return value_kind::list;
  else
    return value_kind::number;
}

template <class Field>
option make(std::string name, std::string category, std::string help, Field field) {
  using value_type = std::decay_t<decltype(field(std::declval<settings&>()))>;
  option o{std::move(name), std::move(category), std::move(help), kind_of<value_type>(), {}, {}};
  o.get = [field](const settings& s) -> std::string {
    auto& v = field(const_cast<settings&>(s));
    if constexpr (std::is_same_v<value_type, std::string>)
      return v;
    else if constexpr (std::is_same_v<value_type, bool>)
      return v ? "true" : "false";
    else if constexpr (std::is_same_v<value_type, duration>)
      return print_duration(v);
    else if constexpr (std::is_same_v<value_type, double>) {
      std::ostringstream out;
      out << v;
      return out.str();
    } else if constexpr (std::is_same_v<value_type, std::vector<std::string>>) {
      std::string out;
      for (auto& x : v)
        out += (out.empty() ? "" : ",") + x;
      return out;
    } else
      return std::to_string(v);
  };
  o.set = [field, n = o.name](settings& s, const std::string& raw) -> std::string {
    auto text = trim(raw);
    auto& v = field(s);
    auto bad = [&](const char* what) {
      return "invalid value '" + raw + "' for " + n + ": expected " + what;
    };
    // Surrounding spaces are dropped; a value of spaces alone is refused
    // rather than read as empty, which for a secret means "no security".
    if (text.empty() && !raw.empty())
      return "invalid value '" + raw + "' for " + n
             + ": expected a value that is not only spaces (leave it unset for the default)";
    if constexpr (std::is_same_v<value_type, std::string>) {
      v = text;
    } else if constexpr (std::is_same_v<value_type, bool>) {
      if (text == "true" || text == "1" || text == "yes" || text == "on")
        v = true;
      else if (text == "false" || text == "0" || text == "no" || text == "off")
        v = false;
      else
        return bad("true or false");
    } else if constexpr (std::is_same_v<value_type, duration>) {
      auto ms = parse_duration_ms(text);
      if (!ms)
        return bad("a duration such as 500ms, 10s or 2min");
      // Timers add durations to now in nanoseconds: beyond ~292 years they
      // wrap and fire at once. Nothing needs more than a year.
      if (*ms > static_cast<double>(max_duration.count()))
        return bad("a duration of at most 8760h (365 days)");
      if (*ms != std::floor(*ms))
        return bad("a whole number of milliseconds");
      v = duration{static_cast<duration::rep>(std::llround(*ms))};
    } else if constexpr (std::is_same_v<value_type, double>) {
      // Decimal only: std::stod also takes "nan", "inf" and hex.
      if (text.empty() || text.find_first_not_of("0123456789.eE+-") != std::string::npos)
        return bad("a decimal number");
      try {
        size_t used = 0;
        v = std::stod(text, &used);
        if (used != text.size() || !std::isfinite(v))
          return bad("a decimal number");
      } catch (...) {
        return bad("a decimal number");
      }
    } else if constexpr (std::is_same_v<value_type, std::vector<std::string>>) {
      auto list = split_list(text);
      if (!list)
        return bad("comma-separated items, none of them empty");
      v = std::move(*list);
    } else {
      auto x = parse_uint(text);
      if (!x || *x > std::numeric_limits<value_type>::max())
        return bad("a non-negative integer in range");
      v = static_cast<value_type>(*x);
    }
    return {};
  };
  return o;
}

#define RC_FIELD(expr) [](settings& s) -> auto& { return s.expr; }

const std::vector<option>& options() {
  static const std::vector<option> table = {
    make("bind", "global",
         "IPv4 or IPv6 address the HTTP/WebSocket listener binds to (no host names)",
         RC_FIELD(bind)),
    make("http-port", "global", "HTTP/WebSocket port; 0 picks a free port and logs it",
         RC_FIELD(http_port)),
    make("node-name", "global", "this node's name (welcome frames, logs); empty = host name",
         RC_FIELD(node_name)),
    make("threads", "global",
         "asio I/O threads; 0 = the cores this process may use (its CPU affinity and cgroup quota); "
         "at most 256",
         RC_FIELD(threads)),
    make("actor-threads", "global",
         "CAF scheduler threads; 0 = the cores this process may use (its CPU affinity and cgroup quota); "
         "at most 256",
         RC_FIELD(actor_threads)),
    make("write-delay", "global",
         "on a busy I/O thread, a socket written less than this long ago collects frames for up to this long (twice this long if written less than twice this long ago); 0 = off",
         RC_FIELD(write_delay)),
    make("write-delay-min-lag-us", "global",
         "mean wait of an I/O thread's write kicks (microseconds) from which the write delay "
         "applies; 0 = always",
         RC_FIELD(write_delay_min_lag_us)),
    make("jwt-secret", "global", "HS256 secret for client JWTs; empty = development mode",
         RC_FIELD(jwt_secret)),
    make("api-key", "global", "key for POST /api/publish (Authorization: apikey K); empty = open",
         RC_FIELD(api_key)),
    make("allowed-origins", "global",
         "comma-separated Origin allow-list for upgrades; empty = any", RC_FIELD(allowed_origins)),
    make("allow-broadcast", "global", "whether clients may send broadcast requests",
         RC_FIELD(allow_broadcast)),
    make("room-idle-timeout", "global", "lifetime of a room actor without members",
         RC_FIELD(room_idle_timeout)),
    make("drain-timeout", "global", "time a graceful stop may take to flush and close",
         RC_FIELD(drain_timeout)),
    make("cluster-port", "global", "CAF remoting port of the cluster; 0 = single node",
         RC_FIELD(cluster_port)),
    make("cluster-bind", "global", "address the cluster port binds to; empty = bind",
         RC_FIELD(cluster_bind)),
    make("cluster-advertise", "global",
         "host other nodes use to reach this node; empty = cluster-bind or host name",
         RC_FIELD(cluster_advertise)),
    make("seeds", "global", "comma-separated host:port cluster ports to contact first",
         RC_FIELD(seeds)),
    make("failure-timeout", "global", "a frozen or unreachable node is declared down after this",
         RC_FIELD(failure_timeout)),
    make("log-level", "global", "trace, debug, info, warn, error, critical or off",
         RC_FIELD(log_level)),
    make("web-root", "global",
         "directory of static files served over HTTP (/ = index.html); empty = none",
         RC_FIELD(web_root)),
    make("max-frame-bytes", "limits", "largest inbound message (64 to 256 MiB); larger closes with 1009",
         RC_FIELD(limits.max_frame_bytes)),
    make("max-queue-frames", "limits", "outgoing frames queued per connection before 1008",
         RC_FIELD(limits.max_queue_frames)),
    make("max-queue-bytes", "limits", "outgoing bytes queued per connection before 1008",
         RC_FIELD(limits.max_queue_bytes)),
    make("rate-limit", "limits", "requests per second per connection", RC_FIELD(limits.rate_limit)),
    make("rate-burst", "limits",
         "requests a connection may send at once (the bucket holds this many; it refills at the rate)",
         RC_FIELD(limits.rate_burst)),
    make("max-connections", "limits",
         "WebSocket connections per node; more are closed with 1013 node_full after the upgrade",
         RC_FIELD(limits.max_connections)),
    make("handshake-timeout", "limits", "TCP accept to completed WebSocket handshake",
         RC_FIELD(limits.handshake_timeout)),
    make("ping-interval", "limits", "interval of server pings", RC_FIELD(limits.ping_interval)),
    make("max-missed-pongs", "limits", "unanswered pings before the connection is closed",
         RC_FIELD(limits.max_missed_pongs)),
    make("inbox-limit", "limits", "private messages kept per offline user",
         RC_FIELD(limits.inbox_limit)),
    make("inbox-memory", "limits",
         "bytes the memory inboxes of all users of this node may hold; then sends to offline users "
         "are refused with unavailable",
         RC_FIELD(limits.inbox_memory)),
    make("max-rooms-per-connection", "limits", "rooms one connection may join at once (at least 1)",
         RC_FIELD(limits.max_rooms_per_connection)),
    make("amqp-url", "amqp", "RabbitMQ broker, amqp://user:pass@host:port/vhost; empty = none",
         RC_FIELD(amqp.url)),
    make("amqp-exchange", "amqp", "durable topic exchange other services publish to",
         RC_FIELD(amqp.exchange)),
    make("amqp-queue", "amqp", "durable inbound queue shared by all nodes",
         RC_FIELD(amqp.queue)),
    make("amqp-events", "amqp", "also publish every room message as event.room.<R>",
         RC_FIELD(amqp.events)),
    make("amqp-prefetch", "amqp", "unacknowledged inbound messages per node",
         RC_FIELD(amqp.prefetch)),
    make("amqp-reconnect-min", "amqp", "first wait before reconnecting to the broker",
         RC_FIELD(amqp.reconnect_min)),
    make("amqp-reconnect-max", "amqp", "longest wait between reconnection attempts",
         RC_FIELD(amqp.reconnect_max)),
  };
  return table;
}

#undef RC_FIELD

const option* find_option(const std::string& name) {
  for (auto& o : options())
    if (o.name == name)
      return &o;
  return nullptr;
}

// -- config files ---------------------------------------------------------------

/// Flattens a file into (option name, value) pairs, each value as its file
/// typed it. Keys may sit at the top level or inside their category
/// (`[limits]` / `"limits": {...}`).
using file_value = std::variant<nlohmann::json, caf::config_value>;
using pairs = std::vector<std::pair<std::string, file_value>>;

/// How a file must spell a value of `kind`.
const char* expected_in_file(value_kind kind) {
  switch (kind) {
    case value_kind::text:
      return "a string";
    case value_kind::flag:
      return "true or false";
    case value_kind::duration:
      return "a duration (a string such as \"10s\", or a number of seconds)";
    case value_kind::number:
      return "a number";
    case value_kind::list:
      return "a string or a list of strings";
  }
  return "";
}

/// A JSON value as the text `set` parses, or nothing when its type cannot
/// hold the setting: a string setting takes only a string (`null` is not the
/// secret "null"), a flag also a boolean, a number or duration also a number,
/// a list also an array of strings.
std::optional<std::string> file_text(const nlohmann::json& v, value_kind kind) {
  if (v.is_string())
    return v.get<std::string>();
  if ((kind == value_kind::flag && v.is_boolean())
      || ((kind == value_kind::number || kind == value_kind::duration) && v.is_number()))
    return v.dump();
  if (kind != value_kind::list || !v.is_array())
    return std::nullopt;
  std::string out;
  for (auto& x : v) {
    if (!x.is_string())
      return std::nullopt;
    out += (out.empty() ? "" : ",") + x.get<std::string>();
  }
  return out;
}

/// The same for a CAF INI value, whose parser types unquoted values itself
/// (`true`, `5`, `2.5`, `10s`, `[...]`).
std::optional<std::string> file_text(const caf::config_value& v, value_kind kind) {
  if (auto s = caf::get_if<std::string>(&v))
    return *s;
  if (kind == value_kind::flag && caf::holds_alternative<bool>(v))
    return caf::to_string(v);
  if (kind == value_kind::duration)
    if (auto t = caf::get_if<caf::timespan>(&v)) {
      // CAF prints 48h as "2d", a unit `set` does not take: hand on milliseconds.
      std::ostringstream out;
      out.precision(17);
      out << static_cast<double>(t->count()) / 1e6 << "ms";
      return out.str();
    }
  if ((kind == value_kind::number || kind == value_kind::duration)
      && (caf::holds_alternative<caf::config_value::integer>(v)
          || caf::holds_alternative<caf::config_value::real>(v)))
    return caf::to_string(v);
  auto list = caf::get_if<caf::config_value::list>(&v);
  if (kind != value_kind::list || !list)
    return std::nullopt;
  std::string out;
  for (auto& x : *list) {
    auto s = caf::get_if<std::string>(&x);
    if (!s)
      return std::nullopt;
    out += (out.empty() ? "" : ",") + *s;
  }
  return out;
}

/// CAF's INI parser multiplies durations into 64-bit nanoseconds without a
/// check: `3000000h` arrives negative. Its text is gone by then, so the
/// value cannot be shown; only that it is out of range.
bool wrapped_duration(const file_value& v, value_kind kind) {
  auto c = std::get_if<caf::config_value>(&v);
  auto t = c ? caf::get_if<caf::timespan>(c) : nullptr;
  return kind == value_kind::duration && t && t->count() < 0;
}

std::string print_file_value(const file_value& v) {
  if (auto j = std::get_if<nlohmann::json>(&v))
    return j->dump();
  return caf::to_string(std::get<caf::config_value>(v));
}

std::string read_json(const std::string& text, pairs& out) {
  auto doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object())
    return "not a JSON object";
  for (auto& [key, value] : doc.items()) {
    if (value.is_object()) {
      for (auto& [k2, v2] : value.items())
        out.emplace_back(key + "." + k2, v2);
    } else {
      out.emplace_back(key, value);
    }
  }
  return {};
}

void flatten(const caf::settings& xs, const std::string& prefix, pairs& out) {
  for (auto& [key, value] : xs) {
    if (auto nested = caf::get_if<caf::settings>(&value))
      flatten(*nested, prefix + key + ".", out);
    else
      out.emplace_back(prefix + key, value);
  }
}

std::string read_ini(const std::string& text, pairs& out) {
  caf::config_option_set no_declared_options;
  caf::settings parsed;
  caf::detail::ini_consumer consumer{no_declared_options, parsed};
  caf::string_view view{text};
  caf::string_parser_state ps{view.begin(), view.end()};
  caf::detail::parser::read_ini(ps, consumer);
  if (ps.code != caf::pec::success)
    return "INI syntax error at line " + std::to_string(ps.line) + ", column "
           + std::to_string(ps.column) + " (strings must be quoted: node-name=\"edge-1\")";
  flatten(parsed, "", out);
  return {};
}

/// The whole file. A directory opens as an empty stream on Linux: refuse it
/// by name rather than run on defaults.
std::string read_file(const std::string& path, std::string& text) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    return "config file '" + path + "' is a directory";
  std::ifstream in{path, std::ios::binary};
  if (!in)
    return "cannot read config file '" + path + "': " + std::strerror(errno);
  std::stringstream buf;
  buf << in.rdbuf();
  if (in.bad())
    return "cannot read config file '" + path + "'";
  text = buf.str();
  return {};
}

std::string apply_file(const std::string& path, settings& cfg) {
  std::string text;
  if (auto err = read_file(path, text); !err.empty())
    return err;
  auto first = text.find_first_not_of(" \t\r\n");
  bool is_json = (path.size() > 5 && path.substr(path.size() - 5) == ".json")
                 || (first != std::string::npos && text[first] == '{');
  pairs kv;
  if (auto err = is_json ? read_json(text, kv) : read_ini(text, kv); !err.empty())
    return "config file '" + path + "': " + err;
  for (auto& [key, value] : kv) {
    auto name = key;
    if (auto dot = key.find('.'); dot != std::string::npos) {
      auto section = key.substr(0, dot);
      name = key.substr(dot + 1);
      auto opt = find_option(name);
      if (!opt || (section != "global" && section != opt->category))
        return "config file '" + path + "': unknown key '" + key + "'";
    }
    auto opt = find_option(name);
    if (!opt)
      return "config file '" + path + "': unknown key '" + key + "'";
    if (wrapped_duration(value, opt->kind))
      return "config file '" + path + "': " + key
             + " must be a duration from 0 to 8760h (365 days)";
    auto as_text = std::visit([&](auto& v) { return file_text(v, opt->kind); }, value);
    if (!as_text)
      return "config file '" + path + "': " + key + " must be " + expected_in_file(opt->kind)
             + ", got " + print_file_value(value);
    if (auto err = opt->set(cfg, *as_text); !err.empty())
      return "config file '" + path + "': " + err;
  }
  return {};
}

} // namespace

// -- public API -----------------------------------------------------------------

load_result load_settings(const std::vector<std::string>& args,
                          const std::map<std::string, std::string>& env) {
  load_result res;
  auto fail = [&](std::string msg) {
    res.what = load_result::action::fail;
    res.message = std::move(msg);
    return res;
  };
  // Split the command line first: it decides the config file and may ask for help.
  std::vector<std::pair<std::string, std::string>> cli;
  std::string config_file;
  if (auto it = env.find("ROOMCAST_CONFIG"); it != env.end()) {
    if (it->second.empty())
      return fail("ROOMCAST_CONFIG is empty: give a file name or unset it");
    config_file = it->second;
  }
  for (size_t i = 0; i < args.size(); ++i) {
    const auto& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      res.what = load_result::action::help;
      res.message = help_text();
      return res;
    }
    if (arg == "--version") {
      res.what = load_result::action::version;
      return res;
    }
    if (arg.rfind("--", 0) != 0)
      return fail("unexpected argument '" + arg + "' (options start with --; see --help)");
    auto name = arg.substr(2);
    std::string value;
    auto eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    }
    // Named before its value: `--bogus` alone is an unknown option, not
    // one that lacks a value.
    if (name != "config" && !find_option(name))
      return fail("unknown option --" + name + " (see --help)");
    if (eq == std::string::npos) {
      if (i + 1 == args.size())
        return fail("option --" + name + " needs a value");
      value = args[++i];
    }
    if (name == "config") {
      if (value.empty())
        return fail("option --config needs a file name");
      config_file = value;
      continue;
    }
    cli.emplace_back(name, value);
  }
  if (!config_file.empty())
    if (auto err = apply_file(config_file, res.cfg); !err.empty())
      return fail(err);
  for (auto& [key, value] : env) {
    if (key.rfind("ROOMCAST_", 0) != 0 || key == "ROOMCAST_CONFIG")
      continue;
    const option* match = nullptr;
    for (auto& o : options())
      if (env_name(o.name) == key)
        match = &o;
    if (!match)
      return fail("unknown environment variable " + key + " (see --help)");
    if (auto err = match->set(res.cfg, value); !err.empty())
      return fail(err + " (from " + key + ")");
  }
  for (auto& [name, value] : cli)
    if (auto err = find_option(name)->set(res.cfg, value); !err.empty())
      return fail(err);
  if (auto err = res.cfg.validate(); !err.empty())
    return fail(err);
  return res;
}

load_result load_settings(int argc, char** argv) {
  std::vector<std::string> args{argv + 1, argv + argc};
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string kv{*e};
    if (auto eq = kv.find('='); eq != std::string::npos)
      env.emplace(kv.substr(0, eq), kv.substr(eq + 1));
  }
  return load_settings(args, env);
}

std::string help_text() {
  settings defaults;
  std::string out =
    "usage: roomcastd [--config FILE] [--OPTION VALUE | --OPTION=VALUE]...\n\n"
    "Settings are resolved as defaults < config file (JSON or CAF INI) < ROOMCAST_*\n"
    "environment < command line. Durations take whole ms, s, min or h (bare numbers\n"
    "are seconds), at most 8760h (365 days); lists are comma-separated.\n\n"
    "  --config FILE  (ROOMCAST_CONFIG)\n      config file, JSON or CAF INI\n";
  for (auto& o : options()) {
    auto def = o.get(defaults);
    out += "  --" + o.name + "  (" + env_name(o.name) + ", default: "
           + (def.empty() ? "\"\"" : def) + ")\n      " + o.help + "\n";
  }
  out += "  --help\n      print this text\n  --version\n      print the version\n";
  return out;
}

std::string describe(const settings& cfg) {
  std::string out;
  for (auto& o : options()) {
    auto value = o.get(cfg);
    if ((o.name == "jwt-secret" || o.name == "api-key") && !value.empty())
      value = "***";
    if (o.name == "amqp-url")
      value = mask_url_password(value);
    out += (out.empty() ? "" : " ") + o.name + "=" + value;
  }
  return out;
}

} // namespace rc
