// Decode-packed copies made on demand, under one memory budget: a MoE's routed experts.
//
// A copy is made the first time a token routes to its matrix, so an expert no token picks costs
// neither a copy nor a read of its pages of a memory-mapped file. Under a budget the least
// recently used copies are dropped to stay within it, and the dropped matrix's stored pages are
// handed back to the kernel (madvise MADV_PAGEOUT: clean file pages leave the resident set);
// a dropped expert is packed again when a token next routes to it. Callers hold the copy they
// multiply by (a shared_ptr), so a copy dropped while another thread uses it lives until that
// use ends: the budget can be passed by the copies one step multiplies at once.
#pragma once
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>

#include "core/tensor.h"
#include "kernels/cpu/packed_quant.h"

namespace mf {

class PackedOnDemand;

// The budget and recency order shared by one model's on-demand copies. Thread-safe.
class PackedCopies {
 public:
  explicit PackedCopies(size_t budget_bytes = 0);  // 0: no limit, every copy is kept
  size_t budget_bytes() const { return budget_; }
  size_t resident_bytes() const;
  int64_t copies_made() const;     // packings so far, repackings of dropped copies included
  int64_t copies_dropped() const;

 private:
  friend class PackedOnDemand;
  std::shared_ptr<const PackedQuantMatrix> get(PackedOnDemand& m, const Tensor& w);
  void forget(PackedOnDemand& m);

  mutable std::mutex mu_;
  std::list<PackedOnDemand*> recent_;  // those holding a copy, most recently used first
  const size_t budget_;
  size_t resident_ = 0;
  int64_t made_ = 0, dropped_ = 0;
};

// One matrix's copy, made by get() when first needed (and again after a drop).
class PackedOnDemand {
 public:
  explicit PackedOnDemand(std::shared_ptr<PackedCopies> copies = std::make_shared<PackedCopies>());
  ~PackedOnDemand();
  PackedOnDemand(const PackedOnDemand&) = delete;
  PackedOnDemand& operator=(const PackedOnDemand&) = delete;

  // The copy of `w` (always the same tensor for one object), made now if there is none.
  std::shared_ptr<const PackedQuantMatrix> get(const Tensor& w) { return copies_->get(*this, w); }
  // Bytes of the copy held now; 0 before the first use and after a drop.
  size_t bytes() const;

 private:
  friend class PackedCopies;
  std::shared_ptr<PackedCopies> copies_;
  // Guarded by copies_->mu_:
  std::shared_ptr<const PackedQuantMatrix> packed_;
  std::list<PackedOnDemand*>::iterator place_;  // in copies_->recent_ while packed_ is set
  const void* stored_ = nullptr;                // the stored tensor's bytes, for the page release
  size_t stored_bytes_ = 0;
};

}  // namespace mf
