// A linked list of symbols with a priority queue of candidate pairs; a popped candidate whose
// symbols changed since it was queued is stale and skipped.
#include "tokenizer/bpe_merge.h"

#include <functional>
#include <queue>

namespace mf {

void merge_by_rank(std::vector<int32_t>& ids, const BpeMergeTable& merges) {
  if (ids.size() < 2) return;
  struct Symbol {
    int32_t id;
    int32_t prev, next;  // -1 at the ends
    bool alive;
  };
  std::vector<Symbol> sym;
  sym.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i)
    sym.push_back({ids[i], static_cast<int32_t>(i) - 1, static_cast<int32_t>(i) + 1, true});
  sym.back().next = -1;

  struct Candidate {
    int32_t rank, pos, left, right;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  auto consider = [&](int32_t pos) {
    if (pos < 0 || sym[pos].next < 0) return;
    if (const BpeMerge* m = merges.find(sym[pos].id, sym[sym[pos].next].id))
      queue.push({m->rank, pos, sym[pos].id, sym[sym[pos].next].id});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(sym.size()); ++i) consider(i);
  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    Symbol& left = sym[c.pos];
    if (!left.alive || left.id != c.left || left.next < 0 || sym[left.next].id != c.right) continue;
    Symbol& right = sym[left.next];
    left.id = merges.find(c.left, c.right)->result;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) sym[right.next].prev = c.pos;
    consider(left.prev);
    consider(c.pos);
  }
  ids.clear();
  for (int32_t i = 0; i >= 0; i = sym[i].next) ids.push_back(sym[i].id);
}

}  // namespace mf
