// A driver for the fuzz harnesses without libFuzzer, for the `fuzz` ctest label in ordinary
// builds: every corpus file, then mutations of them (bit flips, byte changes, truncations,
// duplicated and deleted runs) from a fixed seed for a bounded time. Real coverage-guided fuzzing
// is scripts/fuzz.sh (clang, libFuzzer, ASan + UBSan).
//   fuzz_X CORPUS_DIR [--seconds S] [--seed N] [--slow-ms MS] [--dict FILE]
// --dict reads libFuzzer's dictionary format ("word" per line, \\ \" \xAB escapes, # comments);
// its words are inserted or written over the input as one more mutation.
// An input that takes longer than --slow-ms (default 2000) is written to slow-input.bin in the
// working directory and the driver fails: a hang is a finding too.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

std::vector<uint8_t> read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

using Word = std::vector<uint8_t>;

// One dictionary line: optional name=, then a quoted string with \\, \" and \xAB escapes.
bool parse_dict_line(const std::string& line, Word& word) {
  const size_t open = line.find('"'), close = line.rfind('"');
  if (line.empty() || line[0] == '#' || open == std::string::npos || close <= open) return false;
  word.clear();
  for (size_t i = open + 1; i < close; ++i) {
    if (line[i] != '\\' || i + 1 >= close) {
      word.push_back(uint8_t(line[i]));
    } else if (line[i + 1] == 'x' && i + 3 < close) {
      word.push_back(uint8_t(std::stoi(line.substr(i + 2, 2), nullptr, 16)));
      i += 3;
    } else {
      word.push_back(uint8_t(line[++i]));
    }
  }
  return !word.empty();
}

std::vector<Word> read_dict(const char* path) {
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "cannot read dictionary %s\n", path);
    std::exit(2);
  }
  std::vector<Word> words;
  Word w;
  for (std::string line; std::getline(in, line);)
    if (parse_dict_line(line, w)) words.push_back(w);
  return words;
}

void mutate(std::vector<uint8_t>& x, std::mt19937_64& rng, const std::vector<Word>& dict) {
  auto pick = [&](size_t n) { return n ? size_t(rng() % n) : 0; };
  const int edits = 1 + int(rng() % 4);
  for (int i = 0; i < edits; ++i) {
    switch (rng() % 8) {
      case 6:
      case 7: {  // a word of the format, inserted or written over
        if (dict.empty()) break;
        const Word& w = dict[pick(dict.size())];
        const size_t a = pick(x.size() + 1);
        if (rng() % 2 || a + w.size() > x.size()) x.insert(x.begin() + long(a), w.begin(), w.end());
        else std::copy(w.begin(), w.end(), x.begin() + long(a));
        break;
      }
      case 0:
        if (!x.empty()) x[pick(x.size())] ^= uint8_t(1u << (rng() % 8));
        break;
      case 1:
        if (!x.empty()) x[pick(x.size())] = uint8_t(rng());
        break;
      case 2:
        x.resize(pick(x.size() + 1));
        break;
      case 3: {  // duplicate a run (deep nesting, repeated keys)
        if (x.empty()) break;
        const size_t a = pick(x.size()), n = 1 + pick(std::min<size_t>(64, x.size() - a));
        const std::vector<uint8_t> run(x.begin() + long(a), x.begin() + long(a + n));
        const int copies = 1 + int(rng() % 32);
        for (int c = 0; c < copies; ++c) x.insert(x.begin() + long(a), run.begin(), run.end());
        break;
      }
      case 4: {
        if (x.empty()) break;
        const size_t a = pick(x.size()), n = pick(x.size() - a + 1);
        x.erase(x.begin() + long(a), x.begin() + long(a + n));
        break;
      }
      case 5: {  // an interesting integer somewhere (sizes, counts, offsets)
        static const uint64_t kValues[] = {0, 1, 0x7f, 0xff, 0x7fffffff, 0xffffffff, 0x4000000000000000ull,
                                           0x7fffffffffffffffull, 0xffffffffffffffffull};
        if (x.size() < 8) break;
        const size_t a = pick(x.size() - 7);
        const uint64_t v = kValues[rng() % std::size(kValues)];
        for (int b = 0; b < 8; ++b) x[a + size_t(b)] = uint8_t(v >> (8 * b));
      }
    }
  }
  if (x.size() > (size_t(1) << 20)) x.resize(size_t(1) << 20);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR [--seconds S] [--seed N] [--slow-ms MS] [--dict FILE]\n", argv[0]);
    return 2;
  }
  double seconds = 5, slow_ms = 2000;
  std::vector<Word> dict;
  uint64_t seed = 1;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--seconds") seconds = std::atof(argv[i + 1]);
    else if (a == "--seed") seed = std::strtoull(argv[i + 1], nullptr, 10);
    else if (a == "--slow-ms") slow_ms = std::atof(argv[i + 1]);
    else if (a == "--dict") dict = read_dict(argv[i + 1]);
  }
  // A watchdog thread: an input still running after slow_ms is saved and the process ends, so a
  // hang is reported as a finding with its input instead of as a ctest timeout.
  std::mutex current_mutex;
  std::vector<uint8_t> current;
  std::atomic<int64_t> started_ms{-1};
  std::atomic<bool> done{false};
  auto now_ms = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  };
  std::thread watchdog([&] {
    while (!done) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      const int64_t s = started_ms.load();
      if (s < 0 || double(now_ms() - s) <= slow_ms) continue;
      std::lock_guard<std::mutex> lock(current_mutex);
      std::ofstream("slow-input.bin", std::ios::binary).write(reinterpret_cast<const char*>(current.data()),
                                                               std::streamsize(current.size()));
      std::fprintf(stderr, "%s: an input ran longer than %.0f ms: written to slow-input.bin\n", argv[0], slow_ms);
      std::fflush(stderr);
      ::_exit(1);
    }
  });
  auto run = [&](const std::vector<uint8_t>& x) {
    {
      std::lock_guard<std::mutex> lock(current_mutex);
      current = x;
    }
    started_ms = now_ms();
    LLVMFuzzerTestOneInput(x.data(), x.size());
    started_ms = -1;
  };
  std::vector<std::vector<uint8_t>> corpus;
  if (!std::filesystem::is_directory(argv[1])) {
    std::fprintf(stderr, "%s: no corpus directory %s\n", argv[0], argv[1]);
    return 2;
  }
  for (const auto& e : std::filesystem::directory_iterator(argv[1]))
    if (e.is_regular_file()) corpus.push_back(read_file(e.path()));
  if (corpus.empty()) corpus.emplace_back();
  int64_t runs = 0;
  for (const auto& c : corpus) {
    run(c);
    ++runs;
  }
  std::mt19937_64 rng(seed);
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    std::vector<uint8_t> x = corpus[size_t(rng() % corpus.size())];
    mutate(x, rng, dict);
    run(x);
    ++runs;
  }
  done = true;
  watchdog.join();
  std::printf("%s: %lld inputs (%zu corpus files, then mutations for %.0f s), no crash\n", argv[0], (long long)runs,
              corpus.size(), seconds);
  return 0;
}
