// slot_tree.cpp: the fixed tree over micro slots (see slot_tree.hpp).
#include "engine/slot_tree.hpp"

#include <algorithm>
#include <bit>

#include "config/error.hpp"

namespace lz::engine {

namespace {

// The largest power of two strictly below n (n >= 2).
int64_t split_of(int64_t n) {
  return static_cast<int64_t>(std::bit_floor(static_cast<uint64_t>(n - 1)));
}

void collect(slot_node n, int64_t first, int64_t last, std::vector<slot_node>& out) {
  if (n.end <= first || n.begin >= last) return;
  if (n.begin >= first && n.end <= last) {
    out.push_back(n);
    return;
  }
  collect(left_child(n), first, last, out);
  collect(right_child(n), first, last, out);
}

}  // namespace

slot_node left_child(slot_node n) {
  LZ_CHECK(n.end - n.begin > 1, "a leaf [{}, {}) has no children", n.begin, n.end);
  return {n.begin, n.begin + split_of(n.end - n.begin)};
}

slot_node right_child(slot_node n) {
  LZ_CHECK(n.end - n.begin > 1, "a leaf [{}, {}) has no children", n.begin, n.end);
  return {n.begin + split_of(n.end - n.begin), n.end};
}

std::vector<slot_node> maximal_subtrees(int64_t slots, int64_t first, int64_t last) {
  LZ_CHECK(0 <= first && first <= last && last <= slots && slots >= 1, "slots [{}, {}) of {}",
           first, last, slots);
  std::vector<slot_node> out;
  if (first < last) collect({0, slots}, first, last, out);
  return out;
}

slot_node slot_range(int64_t slots, int world, int rank) {
  LZ_CHECK(world >= 1 && rank >= 0 && rank < world, "rank {} of {}", rank, world);
  return {slots * rank / world, slots * (rank + 1) / world};
}

bool are_children_within(slot_node within, slot_node left, slot_node right) {
  slot_node n = within;
  while (n.end - n.begin > 1) {
    const slot_node l = left_child(n), r = right_child(n);
    if (l == left && r == right) return true;
    if (right.end <= l.end) {
      n = l;
    } else if (left.begin >= r.begin) {
      n = r;
    } else {
      return false;
    }
  }
  return false;
}

int64_t peak_subtree_values(int64_t slots, int64_t first, int64_t last) {
  int64_t live = 0, peak = 0;
  subtree_builder<int> builder(slots, first, last, [&live](int&, int&&) { live--; });
  for (int64_t s = first; s < last; s++) {
    peak = std::max(peak, ++live);
    builder.push(s, 0);
  }
  return peak;
}

int64_t peak_subtree_values(int64_t slots, int world) {
  int64_t peak = 0;
  for (int r = 0; r < world; r++) {
    const slot_node mine = slot_range(slots, world, r);
    peak = std::max(peak, peak_subtree_values(slots, mine.begin, mine.end));
  }
  return peak;
}

}  // namespace lz::engine
