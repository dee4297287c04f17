#include "kernels/cpu/packed_on_demand.h"

#include <sys/mman.h>
#include <unistd.h>

#include <utility>
#include <vector>

namespace mf {
namespace {

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21  // Linux 5.4; older kernels answer EINVAL and keep the pages
#endif

// Asks the kernel to reclaim the whole pages inside [p, p + n). For pages of a mapped file this
// drops them from the resident set (they are read again if used again); anonymous memory keeps
// its contents whatever happens (it is swapped or left alone), so this is safe on any tensor.
void release_pages(const void* p, size_t n) {
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + n) / page * page;
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_PAGEOUT);  // a hint: errors ignored
}

}  // namespace

PackedCopies::PackedCopies(size_t budget_bytes) : budget_(budget_bytes) {}

size_t PackedCopies::resident_bytes() const {
  const std::lock_guard lock(mu_);
  return resident_;
}

int64_t PackedCopies::copies_made() const {
  const std::lock_guard lock(mu_);
  return made_;
}

int64_t PackedCopies::copies_dropped() const {
  const std::lock_guard lock(mu_);
  return dropped_;
}

std::shared_ptr<const PackedQuantMatrix> PackedCopies::get(PackedOnDemand& m, const Tensor& w) {
  // m's copy, now the most recently used, or null; mu_ held.
  auto held_copy = [&] {
    if (m.packed_) recent_.splice(recent_.begin(), recent_, m.place_);
    return m.packed_;
  };
  {
    const std::lock_guard lock(mu_);
    if (auto copy = held_copy()) return copy;
  }
  // Packing is the slow part: outside the lock, so other matrices' copies stay available. Two
  // threads may both pack one matrix the first time; the second finds the first's copy and
  // drops its own.
  auto made = std::make_shared<const PackedQuantMatrix>(w);
  std::vector<std::pair<const void*, size_t>> released;
  {
    const std::lock_guard lock(mu_);
    if (auto copy = held_copy()) return copy;
    m.packed_ = made;
    m.stored_ = w.raw();
    m.stored_bytes_ = w.nbytes();
    recent_.push_front(&m);
    m.place_ = recent_.begin();
    resident_ += made->bytes();
    ++made_;
    while (budget_ && resident_ > budget_ && recent_.back() != &m) {
      PackedOnDemand* old = recent_.back();
      recent_.pop_back();
      resident_ -= old->packed_->bytes();
      old->packed_.reset();  // a caller still multiplying by it holds its own reference
      ++dropped_;
      released.emplace_back(old->stored_, old->stored_bytes_);
    }
  }
  for (const auto& [p, n] : released) release_pages(p, n);
  return made;
}

void PackedCopies::forget(PackedOnDemand& m) {
  const std::lock_guard lock(mu_);
  if (!m.packed_) return;
  resident_ -= m.packed_->bytes();
  recent_.erase(m.place_);
  m.packed_.reset();
}

PackedOnDemand::PackedOnDemand(std::shared_ptr<PackedCopies> copies) : copies_(std::move(copies)) {}

PackedOnDemand::~PackedOnDemand() { copies_->forget(*this); }

size_t PackedOnDemand::bytes() const {
  const std::lock_guard lock(copies_->mu_);
  return packed_ ? packed_->bytes() : 0;
}

}  // namespace mf
