// slot_tree.hpp: the fixed binary tree over the micro slots of a global batch, along which
// the exact reduction adds per-slot gradients, losses and partial sums.
//
// The contract: the global gradient is the sum of the per-slot gradients added up this tree,
// left + right at every inner node, and the tree depends on the slot count only. A node
// [a, b) with b - a > 1 splits at a + p, where p is the largest power of two below b - a.
// Whoever computes which slots, the additions and their order are the same, so the result
// is bitwise the same on any number of ranks.
//
// A rank owning slots [first, last) computes the maximal subtrees inside its range (at most
// 2 log2(slots) of them, in slot order); the ranks' subtrees partition the leaves, and
// whoever adds them up the tree (tree_sum) gets the root.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace lz::engine {

struct slot_node {
  int64_t begin = 0;  // slots [begin, end)
  int64_t end = 0;
  bool operator==(const slot_node&) const = default;
};

// The two children of an inner node [a, b) (b - a > 1).
slot_node left_child(slot_node n);
slot_node right_child(slot_node n);

// The maximal nodes of the tree over [0, slots) that lie inside [first, last), in slot
// order (empty when first == last).
std::vector<slot_node> maximal_subtrees(int64_t slots, int64_t first, int64_t last);

// The slots of `world` ranks: rank r owns [r * slots / world, (r + 1) * slots / world)
// (uneven splits allowed; a rank may own none when world > slots).
slot_node slot_range(int64_t slots, int world, int rank);

// Adds up the tree over [0, slots): `part(node)` returns the value of a node that is one of
// the given parts (a partition of the leaves into maximal subtrees), and `add(a, b)` returns
// a + b. The values are anything a caller can add: scalars, or handles to buffers.
template <class T>
T tree_sum(int64_t slots, const std::function<const T*(slot_node)>& part,
           const std::function<T(const T&, const T&)>& add) {
  std::function<T(slot_node)> value = [&](slot_node n) -> T {
    if (const T* p = part(n)) return *p;
    return add(value(left_child(n)), value(right_child(n)));
  };
  return value({0, slots});
}

// Whether `left` and `right` are the children of one node of the subtree rooted at `within`.
bool are_children_within(slot_node within, slot_node left, slot_node right);

// Incremental evaluation of one rank's maximal subtrees from its slots, left to right, with
// at most log2(slots) + 1 values held: push(slot value) for each slot of [first, last) in
// order; each completed node is combined as soon as both its children are there.
template <class T>
class subtree_builder {
public:
  using adder = std::function<void(T& left, T&& right)>;  // left = left + right
  subtree_builder(int64_t slots, int64_t first, int64_t last, adder add)
    : targets_(maximal_subtrees(slots, first, last)), add_(std::move(add)) {}

  void push(int64_t slot, T value) {
    stack_.push_back({{slot, slot + 1}, std::move(value)});
    // Merge while the two top nodes are siblings and their parent lies within a target.
    while (stack_.size() >= 2) {
      auto& right = stack_[stack_.size() - 1];
      auto& left = stack_[stack_.size() - 2];
      if (!is_sibling_pair(left.node, right.node)) break;
      add_(left.value, std::move(right.value));
      left.node.end = right.node.end;
      stack_.pop_back();
    }
  }

  // The maximal subtrees' values in slot order (after every slot was pushed).
  std::vector<T> take() {
    std::vector<T> out;
    for (auto& e : stack_) out.push_back(std::move(e.value));
    stack_.clear();
    return out;
  }
  const std::vector<slot_node>& subtrees() const { return targets_; }

private:
  struct entry {
    slot_node node;
    T value;
  };
  // Whether left and right are the two children of one node inside a target subtree.
  bool is_sibling_pair(slot_node left, slot_node right) const {
    for (const slot_node& t : targets_) {
      if (left.begin >= t.begin && right.end <= t.end) return are_children_within(t, left, right);
    }
    return false;
  }

  std::vector<slot_node> targets_;
  adder add_;
  std::vector<entry> stack_;
};

// The most values a subtree_builder over [first, last) holds at once (the exact reduction's
// gradient buffers on that rank), and the largest such figure over the ranks of a world.
int64_t peak_subtree_values(int64_t slots, int64_t first, int64_t last);
int64_t peak_subtree_values(int64_t slots, int world);

}  // namespace lz::engine
