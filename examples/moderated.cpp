// roomcast-moderated: `moderated:*` rooms refuse messages by rule, with an
// error frame to the sender (the message is not fanned out):
//   - longer than 200 characters (text of a string, or of `data.text`): `bad_request`
//   - containing a word of the word list (banned_words below), as a
//     whole word in any case ("SPAM!" but not "scampi"):               `forbidden`
//   - more than 5 messages from one user within 10 seconds, all of its
//     connections together, leaving and rejoining included:            `rate_limited`
//     (the counts move with the room to another node: snapshot/restore)
// Same command line as roomcastd (`roomcast-moderated --help`).

#include <algorithm>
#include <cctype>
#include <deque>
#include <iterator>
#include <map>

#include "node/daemon.hpp"

namespace {

using nlohmann::json;
// Wall time, not steady: the counts move with the room to another node,
// whose steady clock has another origin (the nodes' clocks are in sync).
using clock_type = std::chrono::system_clock;

const std::vector<std::string> banned_words = {"spam", "scam", "darn"};

/// Characters (UTF-8 code points) of valid UTF-8 text: the bytes that do not continue one.
std::size_t characters(const std::string& text) {
  return static_cast<std::size_t>(std::count_if(
    text.begin(), text.end(), [](unsigned char c) { return (c & 0xC0) != 0x80; }));
}

/// Letters and digits make words; any byte of a non-ASCII character does
/// too, so that "spamé" is one word and not "spam".
bool word_byte(unsigned char c) {
  return c >= 0x80 || std::isalnum(c);
}

/// Whether a word of the list occurs in `text` as a whole word, in any case.
bool has_banned_word(const std::string& text) {
  for (std::size_t i = 0; i < text.size();) {
    auto end = i;
    while (end < text.size() && word_byte(static_cast<unsigned char>(text[end])))
      ++end;
    std::string word;
    for (auto k = i; k < end; ++k)
      word += static_cast<char>(std::tolower(static_cast<unsigned char>(text[k])));
    if (std::find(banned_words.begin(), banned_words.end(), word) != banned_words.end())
      return true;
    i = end + 1;
  }
  return false;
}

class moderated_room : public rc::room_logic {
public:
  static constexpr std::size_t max_length = 200;
  static constexpr std::size_t max_messages = 5;
  static constexpr auto window = std::chrono::seconds{10};

  rc::publish_decision on_publish(rc::room_context& ctx, const rc::member& from,
                                  const json& data) override {
    std::string text;
    if (data.is_string())
      text = data.get<std::string>();
    else if (data.is_object() && data.contains("text") && data["text"].is_string())
      text = data["text"].get<std::string>();
    if (characters(text) > max_length)
      return rc::publish_decision::refuse(rc::error_code::bad_request,
                                          "messages are limited to 200 characters");
    if (has_banned_word(text))
      return rc::publish_decision::refuse(rc::error_code::forbidden,
                                          "the message contains a banned word");
    // Services (id 0) are not rate limited.
    if (from.id != 0 && !take_turn(ctx, from.user))
      return rc::publish_decision::refuse(rc::error_code::rate_limited,
                                          "at most 5 messages per 10 seconds in this room");
    return rc::publish_decision::forward(data);
  }

  /// {"user": [ms since 1970, ...], ...}: the counts of the window.
  std::string snapshot() const override {
    json out = json::object();
    for (auto& [user, sent] : recent_) {
      std::vector<std::int64_t> times;
      for (auto t : sent)
        times.push_back(
          std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count());
      out[user] = times;
    }
    return out.dump();
  }

  void restore(rc::room_context&, const std::string& state) override {
    auto counts = json::parse(state).get<std::map<std::string, std::vector<std::int64_t>>>();
    for (auto& [user, times] : counts)
      for (auto ms : times)
        recent_[user].push_back(clock_type::time_point{std::chrono::milliseconds{ms}});
  }

private:
  /// Counts a message of `user` unless it had its 5 in the window. Keyed by
  /// user, not connection: leaving and rejoining (or a second tab) does not
  /// give a fresh allowance.
  bool take_turn(rc::room_context& ctx, const std::string& user) {
    auto now = clock_type::now();
    if (recent_.size() > ctx.members().size())
      forget_idle(now); // users who left keep their count only while it matters
    auto& sent = recent_[user];
    while (!sent.empty() && now - sent.front() > window)
      sent.pop_front();
    if (sent.size() >= max_messages)
      return false;
    sent.push_back(now);
    return true;
  }

  /// Drops the users whose last message is older than the window.
  void forget_idle(clock_type::time_point now) {
    for (auto it = recent_.begin(); it != recent_.end();)
      it = it->second.empty() || now - it->second.back() > window ? recent_.erase(it) : std::next(it);
  }

  std::map<std::string, std::deque<clock_type::time_point>> recent_;
};

} // namespace

int main(int argc, char** argv) {
  return rc::run_daemon(argc, argv, "roomcast-moderated", [](rc::node& n) {
    n.kinds().add("moderated:*",
                  [](const std::string&) { return std::make_unique<moderated_room>(); });
  });
}
